//! A byte-preserving reader for corosync.conf: every line keeps its byte span, so an edit can
//! replace one value or insert one line and leave everything else (comments, blank lines,
//! indentation, CRLF) exactly as it was.
//!
//! Syntax as corosync's own parser (`exec/coroparse.c`) reads it, one item per line:
//! blank lines, `#` comments (first non-blank character), `name {` opening a section,
//! `key: value`, and `}` closing the innermost section. Anything else, a `}` without an open
//! section, or a section left open at the end of the file is an error with its line number.

use std::ops::Range;

/// A syntax error, with the 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct SyntaxError {
    pub line: usize,
    pub what: String,
}

/// What one line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Blank,
    Comment,
    /// `name {`: opens section `section` (index into [`Conf::sections`]).
    Open {
        section: usize,
    },
    /// `}`: closes section `section`.
    Close {
        section: usize,
    },
    /// `key: value` directly inside `section` (None: at the top level).
    KeyValue {
        section: Option<usize>,
        key: Range<usize>,
        value: Range<usize>,
    },
}

/// One line: `span` without its line ending, `eol` the line ending (`\n`, `\r\n` or empty at
/// the end of the file), `indent` its leading whitespace. All ranges are byte offsets into the
/// whole text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub span: Range<usize>,
    pub eol: Range<usize>,
    pub indent: Range<usize>,
    pub kind: Kind,
}

/// A section: its name, parent, and the indices of its opening and closing lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub parent: Option<usize>,
    pub open_line: usize,
    pub close_line: usize,
}

/// A parsed corosync.conf, borrowing nothing: use the ranges on the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    pub lines: Vec<Line>,
    pub sections: Vec<Section>,
}

/// A `key: value` line found by a helper: its line index and the value's text and span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub line: usize,
    pub value: &'a str,
    pub value_span: Range<usize>,
}

fn ws_len(s: &str) -> usize {
    s.len() - s.trim_start_matches([' ', '\t']).len()
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c == '{' || c == '}' || c == ':')
}

/// Parses corosync.conf text. Linear in the size of the text.
pub fn parse(text: &str) -> Result<Conf, SyntaxError> {
    let mut lines = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    let mut pos = 0;
    let bytes = text.as_bytes();
    let mut n = 0;
    while pos < text.len() {
        n += 1;
        let nl = text[pos..].find('\n').map(|i| pos + i);
        let (content_end, next) = match nl {
            Some(i) if i > pos && bytes.get(i - 1) == Some(&b'\r') => (i - 1, i + 1),
            Some(i) => (i, i + 1),
            None => (text.len(), text.len()),
        };
        let raw = &text[pos..content_end];
        let ind = ws_len(raw);
        let body = raw[ind..].trim_end_matches([' ', '\t', '\r']);
        let body_start = pos + ind;
        let err = |what: String| SyntaxError { line: n, what };
        let idx = lines.len();
        let kind = if body.is_empty() {
            Kind::Blank
        } else if body.starts_with('#') {
            Kind::Comment
        } else if let Some(b) = body.find('{') {
            let name = body[..b].trim_end_matches([' ', '\t']);
            if !is_name(name) {
                return Err(err(format!(
                    "section opening `{body}` needs one name before `{{`"
                )));
            }
            if !body[b + 1..].trim().is_empty() {
                return Err(err(format!("unexpected text after `{{` in `{body}`")));
            }
            let s = sections.len();
            sections.push(Section {
                name: name.to_string(),
                parent: stack.last().copied(),
                open_line: idx,
                close_line: idx,
            });
            stack.push(s);
            Kind::Open { section: s }
        } else if let Some(c) = body.find(':') {
            let key = body[..c].trim_end_matches([' ', '\t']);
            if !is_name(key) {
                return Err(err(format!("`{body}` needs one key name before `:`")));
            }
            let after = &body[c + 1..];
            let vs = body_start + c + 1 + ws_len(after);
            let ve = body_start + body.len();
            Kind::KeyValue {
                section: stack.last().copied(),
                key: body_start..body_start + key.len(),
                value: vs..ve.max(vs),
            }
        } else if body == "}" {
            match stack.pop() {
                Some(s) => {
                    if let Some(sec) = sections.get_mut(s) {
                        sec.close_line = idx;
                    }
                    Kind::Close { section: s }
                }
                None => return Err(err("`}` without an open section".into())),
            }
        } else {
            return Err(err(format!(
                "cannot read `{body}`: expected `key: value`, `name {{`, `}}` or a # comment"
            )));
        };
        lines.push(Line {
            span: pos..content_end,
            eol: content_end..next,
            indent: pos..pos + ind,
            kind,
        });
        pos = next;
    }
    if let Some(&s) = stack.last() {
        let (name, open) = sections
            .get(s)
            .map(|x| (x.name.clone(), x.open_line + 1))
            .unwrap_or_default();
        return Err(SyntaxError {
            line: n.max(1),
            what: format!("missing closing brace for section `{name}` opened at line {open}"),
        });
    }
    Ok(Conf { lines, sections })
}

impl Conf {
    /// Indices of the sections called `name` whose parent is `parent` (None: top level).
    pub fn sections_named(&self, parent: Option<usize>, name: &str) -> Vec<usize> {
        self.sections
            .iter()
            .enumerate()
            .filter(|(_, s)| s.parent == parent && s.name == name)
            .map(|(i, _)| i)
            .collect()
    }

    /// The `key: value` entries directly inside `section` called `key`, in file order.
    pub fn entries<'a>(&self, text: &'a str, section: usize, key: &str) -> Vec<Entry<'a>> {
        let (a, b) = match self.sections.get(section) {
            Some(s) => (s.open_line, s.close_line),
            None => return Vec::new(),
        };
        let mut out = Vec::new();
        for (i, l) in self.lines.iter().enumerate().take(b).skip(a + 1) {
            if let Kind::KeyValue {
                section: Some(s),
                key: k,
                value,
            } = &l.kind
            {
                if *s == section && text.get(k.clone()) == Some(key) {
                    out.push(Entry {
                        line: i,
                        value: text.get(value.clone()).unwrap_or(""),
                        value_span: value.clone(),
                    });
                }
            }
        }
        out
    }

    /// Indices of the lines directly inside `section` (keys and sub-section openings).
    pub fn direct_children(&self, section: usize) -> Vec<usize> {
        let (a, b) = match self.sections.get(section) {
            Some(s) => (s.open_line, s.close_line),
            None => return Vec::new(),
        };
        let mut out = Vec::new();
        for (i, l) in self.lines.iter().enumerate().take(b).skip(a + 1) {
            let inside = match &l.kind {
                Kind::KeyValue { section: s, .. } => *s == Some(section),
                Kind::Open { section: s } => {
                    self.sections.get(*s).and_then(|x| x.parent) == Some(section)
                }
                _ => false,
            };
            if inside {
                out.push(i);
            }
        }
        out
    }

    /// The single top-level `totem` section (None when absent; Err text when repeated).
    pub fn single_top(&self, name: &str) -> Result<Option<usize>, String> {
        let v = self.sections_named(None, name);
        match v.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            [_, second, ..] => Err(format!(
                "section `{name}` appears more than once (again at line {})",
                self.sections
                    .get(*second)
                    .map(|s| s.open_line + 1)
                    .unwrap_or(0)
            )),
        }
    }

    /// `totem.config_version` entries (normally exactly one).
    pub fn config_versions<'a>(&self, text: &'a str) -> Vec<Entry<'a>> {
        self.sections_named(None, "totem")
            .into_iter()
            .flat_map(|t| self.entries(text, t, "config_version"))
            .collect()
    }

    /// The top-level `quorum` section.
    pub fn quorum(&self) -> Option<usize> {
        self.sections_named(None, "quorum").into_iter().next()
    }

    /// Whether `quorum` holds a `device` section (a QDevice): the first such `device`.
    /// One pass over the sections (they are numbered in file order, so the first match is
    /// the first quorum's first device).
    pub fn has_quorum_device(&self) -> Option<usize> {
        self.sections
            .iter()
            .position(|s| s.name == "device" && self.is_top(s.parent, "quorum"))
    }

    /// Number of `node` sections in the top-level `nodelist` sections (one pass: a file with
    /// many `nodelist` sections must not cost their number squared).
    pub fn node_count(&self) -> usize {
        self.sections
            .iter()
            .filter(|s| s.name == "node" && self.is_top(s.parent, "nodelist"))
            .count()
    }

    /// Whether `section` is a top-level section called `name`.
    fn is_top(&self, section: Option<usize>, name: &str) -> bool {
        section
            .and_then(|i| self.sections.get(i))
            .is_some_and(|s| s.parent.is_none() && s.name == name)
    }

    /// The text of line `i` without its ending.
    pub fn line_text<'a>(&self, text: &'a str, i: usize) -> &'a str {
        self.lines
            .get(i)
            .and_then(|l| text.get(l.span.clone()))
            .unwrap_or("")
    }
}

/// The first `config_version: N` anywhere in the text, the way pmxcfs finds it
/// (`config_version\s*:\s*(\d+)`, `cfs-utils.c` cluster_config_version).
pub fn pmxcfs_config_version(text: &str) -> Option<u64> {
    let mut from = 0;
    while let Some(i) = text[from..].find("config_version") {
        let rest = &text[from + i + "config_version".len()..];
        let rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(':') {
            let r = r.trim_start();
            let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
            if !digits.is_empty() {
                return digits.parse().ok();
            }
        }
        from += i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PVE8: &str = include_str!("../../tests/fixtures/pve8/corosync.conf");
    const PVE4: &str = include_str!("../../tests/fixtures/pve4/corosync.conf");

    #[test]
    fn finds_version_quorum_and_nodes() {
        for t in [PVE8, PVE4] {
            let c = parse(t).unwrap();
            let v = c.config_versions(t);
            assert_eq!(v.len(), 1);
            assert_eq!(v[0].value, "2");
            assert_eq!(&t[v[0].value_span.clone()], "2");
            assert!(c.quorum().is_some());
            assert_eq!(c.node_count(), 2);
            assert_eq!(c.has_quorum_device(), None);
        }
    }

    #[test]
    fn spans_cover_the_text_exactly() {
        let t = "a {\r\n  # c\r\n  k:  v  \r\n\r\n}\r\nx: y";
        let c = parse(t).unwrap();
        let mut rebuilt = String::new();
        for l in &c.lines {
            rebuilt.push_str(&t[l.span.clone()]);
            rebuilt.push_str(&t[l.eol.clone()]);
        }
        assert_eq!(rebuilt, t);
        assert_eq!(c.lines[1].kind, Kind::Comment);
        match &c.lines[2].kind {
            Kind::KeyValue {
                key,
                value,
                section,
            } => {
                assert_eq!(&t[key.clone()], "k");
                assert_eq!(&t[value.clone()], "v");
                assert_eq!(*section, Some(0));
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(&t[c.lines[2].eol.clone()], "\r\n");
        assert_eq!(&t[c.lines[5].eol.clone()], "");
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("totem {\n  a: b\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e
            .what
            .contains("missing closing brace for section `totem` opened at line 1"));
        let e = parse("a: b\n}\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("q {\n  nonsense here\n}\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("line 2: "));
        assert!(parse("{\n}\n").is_err());
        assert!(parse("a b {\n}\n").is_err());
        assert!(parse("a { x\n}\n").is_err());
        assert!(parse("").unwrap().lines.is_empty());
    }

    #[test]
    fn device_is_detected() {
        let t = "quorum {\n provider: corosync_votequorum\n device {\n  model: net\n }\n}\n";
        let c = parse(t).unwrap();
        assert_eq!(c.has_quorum_device(), Some(1));
    }

    #[test]
    fn nodes_and_devices_count_only_under_top_level_sections() {
        let t = "nodelist {\n node {\n }\n}\nnodelist {\n node {\n }\n node {\n }\n}\n\
                 totem {\n node {\n }\n nodelist {\n  node {\n  }\n }\n}\n\
                 quorum {\n}\nquorum {\n device {\n }\n}\ntotem {\n quorum {\n  device {\n  }\n }\n}\n";
        let c = parse(t).unwrap();
        assert_eq!(
            c.node_count(),
            3,
            "nested nodelist/node sections do not count"
        );
        let dev = c.has_quorum_device().expect("the second quorum's device");
        assert_eq!(c.sections[dev].name, "device");
        assert_eq!(c.sections[c.sections[dev].parent.unwrap()].parent, None);
        // Many sections: counted in one pass (this took minutes when it was quadratic).
        let many = "nodelist {\n node {\n }\n}\n".repeat(50_000);
        let c = parse(&many).unwrap();
        let start = std::time::Instant::now();
        assert_eq!(c.node_count(), 50_000);
        assert_eq!(c.has_quorum_device(), None);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn pmxcfs_version_regex() {
        assert_eq!(
            pmxcfs_config_version("totem {\n config_version :  12\n}"),
            Some(12)
        );
        assert_eq!(
            pmxcfs_config_version("config_version\nconfig_version: x\nconfig_version:3"),
            Some(3)
        );
        assert_eq!(pmxcfs_config_version("nothing"), None);
    }
}
