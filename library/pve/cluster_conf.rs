//! Locating what the two-node edit needs in a PVE 3 cluster.conf, with byte spans into the
//! original text: the root `<cluster config_version>`, the `<cman>` element (empty `<cman/>` or
//! with a closing tag) and its attributes, and the `<clusternode>` count. quick-xml checks the
//! document (well-formedness, matching end tags, attributes); edits are spliced into the
//! original text by the caller, never re-serialised, so a BOM, the XML declaration, quote
//! styles, attribute order and all whitespace stay as they are.

use quick_xml::events::Event;
use quick_xml::Reader;
use std::ops::Range;

/// Why a cluster.conf cannot be used, with the 1-based line where known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("line {line}: malformed XML: {what}")]
    Malformed { line: usize, what: String },
    #[error("the root element is <{0}>, not <cluster>")]
    NotCluster(String),
    #[error("the document has no root element")]
    Empty,
}

/// One attribute of a start tag: spans of the whole `name="value"`, of the value (inside the
/// quotes), and the quote character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub name: String,
    pub value: String,
    pub span: Range<usize>,
    pub value_span: Range<usize>,
    pub quote: char,
}

/// A start (or empty-element) tag (`line`: 1-based, 0 when not computed): its whole span (`<` to `>`), where new attributes go
/// (`insert_at`: right after the last attribute, or after the name), and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub span: Range<usize>,
    pub insert_at: usize,
    pub empty: bool,
    pub attrs: Vec<Attr>,
    pub line: usize,
}

impl Tag {
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

/// What the two-node edit needs from cluster.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConf {
    /// 3 when the text starts with a UTF-8 BOM (all spans count it).
    pub bom: usize,
    pub cluster: Tag,
    /// Every `<cman>` child of `<cluster>` (normally exactly one).
    pub cman: Vec<Tag>,
    /// `<clusternode>` elements inside `<cluster><clusternodes>`.
    pub nodes: usize,
    /// Each of those `<clusternode>`s: its `name` and `votes` attribute values (None when the
    /// attribute is absent; cman then counts 1 vote).
    pub node_votes: Vec<(String, Option<String>)>,
}

fn line_of(text: &str, pos: usize) -> usize {
    let end = pos.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Line numbers of increasing positions, counted on from the previous one, so numbering
/// every tag of a file stays linear (from the start each time, 56,000 `<cman>` tags in 4 MB
/// took minutes).
#[derive(Default)]
struct LineCounter {
    pos: usize,
    newlines: usize,
}

impl LineCounter {
    fn line_at(&mut self, text: &str, pos: usize) -> usize {
        let end = pos.min(text.len());
        if end < self.pos {
            return line_of(text, end);
        }
        self.newlines += text.as_bytes()[self.pos..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.pos = end;
        self.newlines + 1
    }
}

/// Scans the attributes of a tag text `<name a="1" b='2'/>` that quick-xml already accepted.
/// Returns the attributes and the insertion point (relative to the tag start).
fn scan_attrs(tag: &str, base: usize) -> Option<(Vec<Attr>, usize)> {
    let b = tag.as_bytes();
    let mut i = 1;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'/' && b[i] != b'>' {
        i += 1;
    }
    let mut insert = i;
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        match b.get(i) {
            None => return None,
            Some(b'/') | Some(b'>') => break,
            _ => {}
        }
        let ns = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let name = tag.get(ns..i)?.to_string();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let q = *b.get(i)?;
        if q != b'"' && q != b'\'' {
            return None;
        }
        let vs = i + 1;
        let ve = vs + tag.get(vs..)?.find(q as char)?;
        i = ve + 1;
        insert = i;
        attrs.push(Attr {
            name,
            value: tag.get(vs..ve)?.to_string(),
            span: base + ns..base + i,
            value_span: base + vs..base + ve,
            quote: q as char,
        });
    }
    Some((attrs, base + insert))
}

fn make_tag(
    text: &str,
    span: Range<usize>,
    e: &quick_xml::events::BytesStart,
    empty: bool,
    line: usize,
) -> Result<Tag, XmlError> {
    let bad = |what: String| XmlError::Malformed {
        line: line_of(text, span.start),
        what,
    };
    // Let quick-xml check the attributes (duplicates, missing quotes, bad `=`).
    let mut names = Vec::new();
    for a in e.attributes().with_checks(true) {
        let a = a.map_err(|err| bad(err.to_string()))?;
        names.push(String::from_utf8_lossy(a.key.as_ref()).into_owned());
    }
    let tag_text = text
        .get(span.clone())
        .ok_or_else(|| bad("tag outside the text".into()))?;
    let (attrs, insert_at) =
        scan_attrs(tag_text, span.start).ok_or_else(|| bad("cannot read the attributes".into()))?;
    if attrs.iter().map(|a| &a.name).ne(names.iter()) {
        return Err(bad("cannot read the attributes".into()));
    }
    Ok(Tag {
        line,
        span,
        insert_at,
        empty,
        attrs,
    })
}

/// Parses cluster.conf text. Linear in the size of the text.
pub fn parse(text: &str) -> Result<ClusterConf, XmlError> {
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let body = &text[bom..];
    let mut reader = Reader::from_str(body);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut cluster: Option<Tag> = None;
    let mut cman = Vec::new();
    let mut nodes = 0;
    let mut node_votes = Vec::new();
    let mut root_done = false;
    let mut lines = LineCounter::default();
    loop {
        let before = bom + reader.buffer_position() as usize;
        let ev = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => {
                let pos = bom + reader.error_position() as usize;
                return Err(XmlError::Malformed {
                    line: line_of(text, pos),
                    what: e.to_string(),
                });
            }
        };
        let after = bom + reader.buffer_position() as usize;
        match ev {
            Event::Start(_) | Event::Empty(_) => {
                let (e, empty) = match ev {
                    Event::Empty(e) => (e, true),
                    Event::Start(e) => (e, false),
                    _ => continue,
                };
                let name = e.name().as_ref().to_vec();
                if stack.is_empty() {
                    if root_done {
                        return Err(XmlError::Malformed {
                            line: line_of(text, before),
                            what: "more than one root element".into(),
                        });
                    }
                    if name != b"cluster" {
                        return Err(XmlError::NotCluster(String::from_utf8_lossy(&name).into()));
                    }
                    cluster = Some(make_tag(
                        text,
                        before..after,
                        &e,
                        empty,
                        lines.line_at(text, before),
                    )?);
                } else if stack.len() == 1 && name == b"cman" {
                    cman.push(make_tag(
                        text,
                        before..after,
                        &e,
                        empty,
                        lines.line_at(text, before),
                    )?);
                } else {
                    // Still check every tag's attributes, so a broken one anywhere is refused.
                    let tag = make_tag(text, before..after, &e, empty, 0)?;
                    if stack.len() == 2
                        && name == b"clusternode"
                        && stack.get(1).map(|v| v.as_slice()) == Some(b"clusternodes")
                    {
                        nodes += 1;
                        node_votes.push((
                            tag.attr("name")
                                .map(|a| a.value.clone())
                                .unwrap_or_default(),
                            tag.attr("votes").map(|a| a.value.clone()),
                        ));
                    }
                }
                if empty {
                    if stack.is_empty() {
                        root_done = true;
                    }
                } else {
                    stack.push(name);
                }
            }
            Event::End(_) => {
                stack.pop();
                if stack.is_empty() {
                    root_done = true;
                }
            }
            Event::Text(t) if stack.is_empty() && !t.iter().all(|b| b.is_ascii_whitespace()) => {
                return Err(XmlError::Malformed {
                    line: line_of(text, before),
                    what: "text outside the root element".into(),
                });
            }
            Event::CData(_) | Event::GeneralRef(_) if stack.is_empty() => {
                return Err(XmlError::Malformed {
                    line: line_of(text, before),
                    what: "text outside the root element".into(),
                });
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError::Malformed {
            line: line_of(text, text.len()),
            what: format!("element <{}> is not closed", String::from_utf8_lossy(open)),
        });
    }
    let cluster = cluster.ok_or(XmlError::Empty)?;
    Ok(ClusterConf {
        bom,
        cluster,
        cman,
        nodes,
        node_votes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PVE3: &str = include_str!("../../tests/fixtures/pve3/cluster.conf");

    #[test]
    fn finds_cluster_cman_and_nodes() {
        let c = parse(PVE3).unwrap();
        let v = c.cluster.attr("config_version").unwrap();
        assert_eq!(v.value, "2");
        assert_eq!(&PVE3[v.value_span.clone()], "2");
        assert_eq!(c.cman.len(), 1);
        let cm = &c.cman[0];
        assert!(!cm.empty);
        assert_eq!(
            &PVE3[cm.span.clone()],
            "<cman keyfile=\"/var/lib/pve-cluster/corosync.authkey\">"
        );
        assert_eq!(&PVE3[cm.insert_at..cm.insert_at + 1], ">");
        assert_eq!(c.nodes, 2);
        assert_eq!(
            c.node_votes,
            vec![
                ("alpha".to_string(), Some("1".to_string())),
                ("beta".to_string(), Some("1".to_string()))
            ]
        );
        assert_eq!(c.cman[0].line, 4);
    }

    #[test]
    fn empty_cman_single_quotes_and_bom() {
        let t =
            "\u{feff}<cluster config_version='7'><cman  two_node = '0' /><clusternodes/></cluster>";
        let c = parse(t).unwrap();
        assert_eq!(c.bom, 3);
        let cm = &c.cman[0];
        assert!(cm.empty);
        let a = cm.attr("two_node").unwrap();
        assert_eq!(a.quote, '\'');
        assert_eq!(&t[a.span.clone()], "two_node = '0'");
        assert_eq!(&t[a.value_span.clone()], "0");
        assert_eq!(&t[cm.insert_at..], " /><clusternodes/></cluster>");
        assert_eq!(c.nodes, 0);
        let t = "<cluster config_version=\"1\"><cman/></cluster>";
        let c = parse(t).unwrap();
        assert_eq!(&t[c.cman[0].insert_at..c.cman[0].span.end], "/>");
    }

    #[test]
    fn tag_lines_are_counted_on_not_from_the_start() {
        let t = format!(
            "<cluster config_version=\"1\">\n{}</cluster>\n",
            "<cman/>\n".repeat(3)
        );
        let c = parse(&t).unwrap();
        assert_eq!(c.cluster.line, 1);
        let lines: Vec<usize> = c.cman.iter().map(|t| t.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
        // 40,000 tags: linear (numbering each from the start took minutes for 56,000).
        let t = format!(
            "<cluster config_version=\"1\">\n{}</cluster>\n",
            "<cman/>\n".repeat(40_000)
        );
        let start = std::time::Instant::now();
        let c = parse(&t).unwrap();
        assert_eq!(c.cman.last().map(|t| t.line), Some(40_001));
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn malformed_is_refused_with_a_line() {
        for t in [
            "<cluster config_version=\"1\">\n<cman>\n</cluster>",
            "<cluster config_version=\"1\">\n<cman a=\"1\" a=\"2\"/>\n</cluster>",
            "<cluster config_version=\"1\">\n<cman a=1/>\n</cluster>",
            "<cluster config_version=\"1\">\n<cman/>\n",
            "<cluster/><cluster/>",
            "<cluster/>junk",
            "",
        ] {
            assert!(parse(t).is_err(), "{t:?}");
        }
        match parse("<cluster config_version=\"1\">\n<cman>\n</cluster>") {
            Err(XmlError::Malformed { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse("<foo/>"), Err(XmlError::NotCluster("foo".into())));
    }
}
