//! /etc/hosts parsing and lookup the way glibc's `files` NSS backend reads it, plus the
//! validation helpers a module needs before it writes a host name or address into the file.
//!
//! How glibc reads a hosts file (nss/nss_files/files-hosts.c, files-parse.c):
//! - one entry per line; `#` anywhere starts a comment that runs to the end of the line;
//! - leading whitespace is skipped; fields are separated by whitespace (`isspace`: space, tab,
//!   `\r`, `\v`, `\f`), so a CRLF file reads the same as an LF one;
//! - the first field is the address, parsed with `inet_pton` (IPv6 first, then IPv4); a line
//!   whose address does not parse is ignored; the remaining fields are the canonical name and
//!   the aliases;
//! - a lookup compares names without regard to ASCII case (`strcasecmp`), and the first line
//!   naming the host gives its address.
//!
//! [`parse`] keeps every byte: each [`Line`] holds its leading whitespace, address, the
//! separator before each name, the whitespace before the comment, the comment and the line
//! ending, so an unchanged line renders back byte for byte and an edited one keeps its style.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The first address given to `name` in the hosts file `text`, read as glibc's `files`
/// backend reads it: the first non-comment line whose address is valid and that lists `name`
/// (ASCII case-insensitive) as its canonical name or an alias. Either family: an IPv4 line and
/// an IPv6 line compete by their order in the file. `None` when no line names it.
///
/// ```
/// use pve2node::hosts;
/// let text = "127.0.0.1 localhost\n87.37.23.91 tartanpion.elao.local tartanpion\n";
/// assert_eq!(hosts::lookup(text, "Tartanpion"), Some("87.37.23.91".parse().unwrap()));
/// assert_eq!(hosts::lookup(text, "bismuth"), None);
/// ```
pub fn lookup(text: &str, name: &str) -> Option<IpAddr> {
    parse(text)
        .iter()
        .find(|l| l.ip().is_some() && l.has_name(name))
        .and_then(Line::ip)
}

/// Parses an address as glibc's `inet_pton` does for a hosts line: IPv6 first, then IPv4
/// dotted quad (no leading zeros, no shorthand like `127.1`, no `%scope`).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(v6) = s.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Loopback: 127.0.0.0/8, `::1`, and IPv4-mapped `::ffff:127.x.y.z`.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Why a host name is not valid (RFC 1123 section 2.1, RFC 952 letters-digits-hyphen).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than 253 characters")]
    TooLong,
    #[error("it ends with a dot; give the name without the trailing dot")]
    TrailingDot,
    #[error("it has an empty label (two dots in a row or a leading dot)")]
    EmptyLabel,
    #[error("the label '{0}' is longer than 63 characters")]
    LabelTooLong(String),
    #[error("the label '{0}' starts or ends with a hyphen")]
    Hyphen(String),
    #[error("it contains '{0}'; only letters, digits, hyphens and dots are allowed")]
    BadChar(char),
    #[error("it is an IP address, not a name")]
    Address,
}

/// Checks an RFC 1123 host name: dot-separated labels of ASCII letters, digits and hyphens,
/// each 1-63 characters, not starting or ending with a hyphen, 253 characters in all, no
/// trailing dot; a text that parses as an IP address is refused.
pub fn validate_hostname(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(NameError::BadChar(c));
    }
    if name.len() > 253 {
        return Err(NameError::TooLong);
    }
    if name.ends_with('.') {
        return Err(NameError::TrailingDot);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(NameError::LabelTooLong(label.to_string()));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(NameError::Hyphen(label.to_string()));
        }
    }
    if parse_ip(name).is_some() {
        return Err(NameError::Address);
    }
    Ok(())
}

/// True when [`validate_hostname`] accepts `name`.
pub fn is_valid_hostname(name: &str) -> bool {
    validate_hostname(name).is_ok()
}

/// Names that belong to the loopback lines of a stock hosts file (`localhost`,
/// `localhost.localdomain`, Debian's `ip6-localhost`/`ip6-loopback`) or to the reserved
/// `.localhost` domain (RFC 6761). Compared without regard to case.
pub fn is_localhost_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "localhost" | "localhost.localdomain" | "ip6-localhost" | "ip6-loopback"
    ) || n.ends_with(".localhost")
}

/// glibc's `isspace` in the C locale, minus `\n` (which ends the line).
pub fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c')
}

/// One name on a line and the whitespace just before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub sep: &'a str,
    pub name: &'a str,
}

/// One line of a hosts file, split so it renders back byte for byte:
/// `leading + addr + (sep + name)* + trailing + comment + eol == raw`.
/// A blank or comment-only line has an empty `addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub raw: &'a str,
    pub leading: &'a str,
    pub addr: &'a str,
    pub names: Vec<Field<'a>>,
    /// Whitespace after the last field, before the comment or the line ending.
    pub trailing: &'a str,
    /// From `#` to the line ending (empty when none).
    pub comment: &'a str,
    /// `"\n"`, `"\r\n"` or `""` (last line without a final newline).
    pub eol: &'a str,
}

impl<'a> Line<'a> {
    /// Splits one line (with its line ending, if any).
    pub fn parse(raw: &'a str) -> Line<'a> {
        let (body, eol) = if let Some(b) = raw.strip_suffix("\r\n") {
            (b, "\r\n")
        } else if let Some(b) = raw.strip_suffix('\n') {
            (b, "\n")
        } else {
            (raw, "")
        };
        let (content, comment) = match body.find('#') {
            Some(i) => body.split_at(i),
            None => (body, ""),
        };
        let start = content.len() - content.trim_start_matches(is_space).len();
        let end = content.trim_end_matches(is_space).len().max(start);
        let leading = &content[..start];
        let trailing = &content[end..];
        let mut rest = &content[start..end];
        let addr_len = rest.find(is_space).unwrap_or(rest.len());
        let addr = &rest[..addr_len];
        rest = &rest[addr_len..];
        let mut names = Vec::new();
        while !rest.is_empty() {
            let name_start = rest.len() - rest.trim_start_matches(is_space).len();
            let after_sep = &rest[name_start..];
            let name_len = after_sep.find(is_space).unwrap_or(after_sep.len());
            names.push(Field {
                sep: &rest[..name_start],
                name: &after_sep[..name_len],
            });
            rest = &after_sep[name_len..];
        }
        Line {
            raw,
            leading,
            addr,
            names,
            trailing,
            comment,
            eol,
        }
    }

    /// The line's address, when it has one that glibc would accept.
    pub fn ip(&self) -> Option<IpAddr> {
        parse_ip(self.addr)
    }

    /// True for a line the resolver reads: a valid address (names may be missing).
    pub fn is_entry(&self) -> bool {
        self.ip().is_some()
    }

    /// True when `name` is the canonical name or an alias (ASCII case-insensitive).
    pub fn has_name(&self, name: &str) -> bool {
        self.names.iter().any(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Renders the line with other names (same leading, address, trailing, comment, ending).
    pub fn render_with(&self, names: &[Field<'_>]) -> String {
        let mut s = String::with_capacity(self.raw.len() + 32);
        s.push_str(self.leading);
        s.push_str(self.addr);
        for f in names {
            s.push_str(f.sep);
            s.push_str(f.name);
        }
        s.push_str(self.trailing);
        s.push_str(self.comment);
        s.push_str(self.eol);
        s
    }

    /// The names left after removing every name `remove` accepts (a set lookup when there are
    /// many). The separator before a removed name goes with it, except for the first name, whose
    /// separator from the address stays (the next name takes it), so the line keeps its layout.
    pub fn names_without_by(&self, remove: impl Fn(&str) -> bool) -> Vec<Field<'a>> {
        let mut out: Vec<Field<'a>> = Vec::with_capacity(self.names.len());
        let mut lead_sep: Option<&'a str> = None;
        for f in &self.names {
            if remove(f.name) {
                if out.is_empty() && lead_sep.is_none() {
                    lead_sep = Some(f.sep);
                }
                continue;
            }
            match (out.is_empty(), lead_sep) {
                (true, Some(sep)) => out.push(Field { sep, name: f.name }),
                _ => out.push(*f),
            }
        }
        out
    }

    /// The text without its line ending (for messages and return values).
    pub fn text(&self) -> &'a str {
        &self.raw[..self.raw.len() - self.eol.len()]
    }

    /// Column (tabs expanded to multiples of 8) where the first name starts, if any.
    pub fn name_column(&self) -> Option<usize> {
        let first = self.names.first()?;
        Some(advance(
            advance(advance(0, self.leading), self.addr),
            first.sep,
        ))
    }
}

/// The visual column after writing `s` from column `col` (tab stops every 8).
pub fn advance(col: usize, s: &str) -> usize {
    s.chars().fold(
        col,
        |c, ch| if ch == '\t' { (c / 8 + 1) * 8 } else { c + 1 },
    )
}

/// Splits a hosts file into lines (each with its own line ending; the last may have none).
pub fn parse(text: &str) -> Vec<Line<'_>> {
    text.split_inclusive('\n').map(Line::parse).collect()
}

#[cfg(test)]
mod tests;
