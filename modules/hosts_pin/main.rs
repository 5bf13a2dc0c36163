//! hosts_pin: pins a host name (and aliases) to one address in /etc/hosts, so the node name
//! resolves, through the resolver's own reading of the file, to the address the cluster must
//! use, and never to a loopback address.
//!
//! The whole edit is the pure function [`plan`] from (current text, parameters) to the new text
//! and what changed; `logic` only reads the file, calls it and hands the result to `edit`.

use pve2node::edit::{self, EditError, TempStyle};
use pve2node::hosts::{self, Field, Line, NameError};
use pve2node::protocol::{
    self, Ctx, Default, Elem, Failure, Outcome, Param, RequiredIf, Spec, Type,
};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

const SPEC: Spec = Spec {
    module: "hosts_pin",
    params: &[
        Param::new("path", Type::Path).default(Default::Str("/etc/hosts")),
        Param::new("hostname", Type::Str).aliases(&["name"]),
        Param::new("fqdn", Type::Str),
        Param::new("ip", Type::Str),
        Param::new("aliases", Type::List(Elem::Str)).default(Default::List(&[])),
        Param::new("exclusive", Type::Bool).default(Default::Bool(true)),
        Param::new("state", Type::Str)
            .default(Default::Str("present"))
            .choices(&["present", "absent"]),
        Param::new("backup", Type::Bool).default(Default::Bool(false)),
    ],
    mutually_exclusive: &[],
    required_if: &[RequiredIf {
        param: "state",
        value: "present",
        requires: &["ip"],
    }],
    supports_check_mode: true,
};

/// Everything that can make hosts_pin refuse; the file is never changed when one occurs.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum HostsError {
    #[error(
        "ip '{0}' is not a valid IPv4 or IPv6 address; give one such as 172.16.0.1 or 2001:db8::1"
    )]
    InvalidIp(String),
    #[error("ip '{0}' is a loopback address; pin the name to the node's own network address (Proxmox refuses to start the cluster filesystem when the node name resolves to a loopback address)")]
    LoopbackIp(String),
    #[error("ip '{0}' is the unspecified address; pin the name to the node's own network address")]
    UnspecifiedIp(String),
    #[error("ip is required when state is present")]
    MissingIp,
    #[error("{param} '{name}' is not a valid host name (RFC 1123): {why}")]
    InvalidName {
        param: &'static str,
        name: String,
        why: NameError,
    },
    #[error("{param} '{name}' is a loopback name that belongs to the localhost lines; refusing to pin or remove it, give the node's own name")]
    LocalhostName { param: &'static str, name: String },
    #[error("hostname is not given and this system's host name (/proc/sys/kernel/hostname, as uname -n) could not be read; give hostname")]
    NoHostname,
    #[error("fqdn '{fqdn}' does not start with the host name '{hostname}' and a dot; give the node's full name, e.g. {hostname}.example.com, or leave fqdn out")]
    FqdnMismatch { fqdn: String, hostname: String },
    #[error("path is empty; give the hosts file to edit (default /etc/hosts)")]
    EmptyPath,
    #[error("{0} does not exist; hosts_pin edits an existing hosts file and does not create one, check the path parameter")]
    Missing(String),
    #[error("{0} contains a NUL byte, so it is not a hosts file; refusing to edit it")]
    Nul(String),
    #[error(transparent)]
    File(#[from] EditError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Present,
    Absent,
}

/// The module's parameters, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub hostname: String,
    /// The node's full name, put first (canonical) on the address's line.
    pub fqdn: Option<String>,
    pub ip: Option<String>,
    pub aliases: Vec<String>,
    pub exclusive: bool,
    pub state: State,
}

impl Params {
    fn from_ctx(p: &protocol::Params) -> Params {
        Params {
            hostname: p.str_or_empty("hostname").to_string(),
            fqdn: p.str("fqdn").map(str::to_string),
            ip: p.str("ip").map(str::to_string),
            aliases: p.list("aliases"),
            exclusive: p.bool("exclusive").unwrap_or(true),
            state: if p.str("state") == Some("absent") {
                State::Absent
            } else {
                State::Present
            },
        }
    }
}

/// Validated parameters: the names (hostname first, duplicates dropped) and the address.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub names: Vec<String>,
    /// `(parsed, text as given)`; `None` for `state: absent`.
    pub ip: Option<(IpAddr, String)>,
}

fn check_name(param: &'static str, name: &str) -> Result<(), HostsError> {
    hosts::validate_hostname(name).map_err(|why| HostsError::InvalidName {
        param,
        name: name.to_string(),
        why,
    })?;
    if hosts::is_localhost_name(name) {
        return Err(HostsError::LocalhostName {
            param,
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Checks the parameters, before the file is even read.
pub fn check(p: &Params) -> Result<Wanted, HostsError> {
    check_name("hostname", &p.hostname)?;
    let mut names = Vec::with_capacity(p.aliases.len() + 2);
    if let Some(f) = &p.fqdn {
        check_name("fqdn", f)?;
        let prefix = format!("{}.", p.hostname.to_ascii_lowercase());
        if !f.to_ascii_lowercase().starts_with(&prefix) || f.len() == prefix.len() {
            return Err(HostsError::FqdnMismatch {
                fqdn: f.clone(),
                hostname: p.hostname.clone(),
            });
        }
        // the FQDN first: the canonical name of the line (what `hostname -f` answers)
        names.push(f.clone());
    }
    names.push(p.hostname.clone());
    // Linear in the number of aliases: a set of the names seen, lowercased.
    let mut seen: HashSet<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    for a in &p.aliases {
        check_name("aliases item", a)?;
        if seen.insert(a.to_ascii_lowercase()) {
            names.push(a.clone());
        }
    }
    let ip = match (&p.ip, p.state) {
        (Some(text), _) => {
            let ip = hosts::parse_ip(text).ok_or_else(|| HostsError::InvalidIp(text.clone()))?;
            if hosts::is_loopback(ip) {
                return Err(HostsError::LoopbackIp(text.clone()));
            }
            if ip.is_unspecified() {
                return Err(HostsError::UnspecifiedIp(text.clone()));
            }
            Some((ip, text.clone()))
        }
        (None, State::Present) => return Err(HostsError::MissingIp),
        (None, State::Absent) => None,
    };
    // With state=absent the address is validated (bad input is refused) but not used.
    let ip = if p.state == State::Absent { None } else { ip };
    Ok(Wanted { names, ip })
}

/// Where the names went (state=present).
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// Every name was already on a line for the address.
    Already,
    /// Names added to this existing line (its original text).
    AddedTo(String),
    /// This line was appended.
    Appended(String),
    /// state=absent.
    None,
}

/// The result of [`plan`]: the new text and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub after: String,
    pub names: Vec<String>,
    /// Names that were missing on the address's lines and are added.
    pub added: Vec<String>,
    pub placement: Placement,
    /// The original lines (without line ending) the names were taken from.
    pub removed_from: Vec<String>,
    /// How many of those were left without any name and dropped.
    pub dropped: usize,
    /// What `hostname` resolves to through the new text.
    pub resolves_to: Option<IpAddr>,
    pub warnings: Vec<String>,
}

fn mode<T: PartialEq + Copy>(items: impl Iterator<Item = T>) -> Option<T> {
    // The most frequent item; a tie goes to the one seen last (the newest style in the file).
    let mut counts: Vec<(T, usize, usize)> = Vec::new();
    for (i, it) in items.enumerate() {
        match counts.iter_mut().find(|(x, _, _)| *x == it) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 = i;
            }
            None => counts.push((it, 1, i)),
        }
    }
    counts
        .into_iter()
        .max_by_key(|(_, c, last)| (*c, *last))
        .map(|(x, _, _)| x)
}

/// The lines whose style a new line or name should follow: entries with names, of the same
/// address family as `ip` when there are some, else all entries.
fn style_refs<'l, 'a>(lines: &'l [Line<'a>], ip: IpAddr) -> Vec<&'l Line<'a>> {
    let entries: Vec<&Line> = lines
        .iter()
        .filter(|l| l.is_entry() && !l.names.is_empty())
        .collect();
    let same: Vec<&Line> = entries
        .iter()
        .copied()
        .filter(|l| l.ip().map(|i| i.is_ipv4()) == Some(ip.is_ipv4()))
        .collect();
    if same.is_empty() {
        entries
    } else {
        same
    }
}

/// The separator between the address and the first name of a line starting at `start`
/// (the column just after the address), in the file's own style: tabs if most lines use a tab
/// (as many as needed to reach the usual column), spaces padded to the column names are
/// aligned on if the file aligns them, else the file's usual separator; one space by default.
fn first_separator(refs: &[&Line], start: usize) -> String {
    if refs.is_empty() {
        return " ".to_string();
    }
    let tabbed: Vec<&&Line> = refs
        .iter()
        .filter(|l| l.names.first().is_some_and(|f| f.sep.contains('\t')))
        .collect();
    if tabbed.len() * 2 > refs.len() {
        let target = mode(tabbed.iter().filter_map(|l| l.name_column())).unwrap_or(0);
        let mut sep = String::from("\t");
        let mut col = hosts::advance(start, "\t");
        while col < target {
            sep.push('\t');
            col = hosts::advance(col, "\t");
        }
        return sep;
    }
    let spaced: Vec<&&Line> = refs
        .iter()
        .filter(|l| l.names.first().is_some_and(|f| !f.sep.contains('\t')))
        .collect();
    // A column counts as an alignment when two lines share it or a line was padded to it.
    // Counted once (a map, not a scan per line): blocklist hosts files have 100k+ lines.
    let mut col_count = std::collections::HashMap::<usize, usize>::new();
    for c in spaced.iter().filter_map(|l| l.name_column()) {
        *col_count.entry(c).or_default() += 1;
    }
    let aligned = mode(
        spaced
            .iter()
            .filter_map(|l| l.name_column().map(|c| (c, l)))
            .filter(|(c, l)| {
                col_count.get(c).copied().unwrap_or(0) >= 2
                    || l.names.first().is_some_and(|f| f.sep.len() >= 2)
            })
            .map(|(c, _)| c),
    );
    if let Some(col) = aligned {
        return " ".repeat(col.saturating_sub(start).max(1));
    }
    mode(spaced.iter().filter_map(|l| l.names.first().map(|f| f.sep)))
        .unwrap_or(" ")
        .to_string()
}

/// The separator between two names: the file's most usual one, one space by default.
fn name_separator<'a>(refs: &[&Line<'a>]) -> &'a str {
    mode(
        refs.iter()
            .flat_map(|l| l.names.iter().skip(1))
            .map(|f| f.sep),
    )
    .unwrap_or(" ")
}

/// The line ending to use for a new line: the one of the last line that has one.
fn line_ending<'a>(lines: &[Line<'a>]) -> &'a str {
    lines
        .iter()
        .rev()
        .map(|l| l.eol)
        .find(|e| !e.is_empty())
        .unwrap_or("\n")
}

/// The whole edit, as a pure function of the current text and the parameters.
pub fn plan(text: &str, p: &Params) -> Result<Plan, HostsError> {
    let want = check(p)?;
    let names: Vec<&str> = want.names.iter().map(String::as_str).collect();
    // Every test of a name against the wanted ones is a set lookup (10,000s of aliases).
    let wanted: HashSet<String> = want.names.iter().map(|n| n.to_ascii_lowercase()).collect();
    let is_wanted = |n: &str| wanted.contains(&n.to_ascii_lowercase());
    let lines = hosts::parse(text);
    let mut out = String::with_capacity(text.len() + 64);
    let mut removed_from = Vec::new();
    let mut dropped = 0;
    let mut added: Vec<String> = Vec::new();
    let mut placement = Placement::None;

    // On a loopback line (Debian's `127.0.1.1 FQDN short`), the host's FQDNs (`hostname.*`)
    // go too: neither name may resolve to loopback after pinning.
    let fqdn_prefix = format!("{}.", p.hostname.to_ascii_lowercase());
    let goes = |l: &Line, n: &str| {
        is_wanted(n)
            || (p.exclusive
                && want.ip.is_some()
                && l.ip().is_some_and(hosts::is_loopback)
                && n.to_ascii_lowercase().starts_with(&fqdn_prefix))
    };
    let names_it = |l: &Line| l.names.iter().any(|f| goes(l, f.name));
    // Take the names out of a line; false when nothing is left and the line is dropped.
    let mut take = |l: &Line, out: &mut String| {
        removed_from.push(l.text().to_string());
        let rest = l.names_without_by(|n| goes(l, n));
        if rest.is_empty() {
            dropped += 1;
        } else {
            out.push_str(&l.render_with(&rest));
        }
    };

    match &want.ip {
        None => {
            for l in &lines {
                if l.is_entry() && names_it(l) {
                    take(l, &mut out);
                } else {
                    out.push_str(l.raw);
                }
            }
        }
        Some((ip, ip_text)) => {
            let ip = *ip;
            let for_ip = |l: &Line| l.ip() == Some(ip);
            let on_ip: HashSet<String> = lines
                .iter()
                .filter(|l| for_ip(l))
                .flat_map(|l| l.names.iter().map(|f| f.name.to_ascii_lowercase()))
                .collect();
            let missing: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| !on_ip.contains(&n.to_ascii_lowercase()))
                .collect();
            let target = if missing.is_empty() {
                None
            } else {
                lines.iter().position(for_ip)
            };
            let refs = style_refs(&lines, ip);
            for (i, l) in lines.iter().enumerate() {
                if Some(i) == target {
                    let mut fields = l.names.clone();
                    let first_sep = if l.names.is_empty() {
                        let start = hosts::advance(hosts::advance(0, l.leading), l.addr);
                        first_separator(&refs, start)
                    } else {
                        String::new()
                    };
                    let sep_between = if l.names.len() >= 2 {
                        l.names.last().map(|f| f.sep).unwrap_or(" ")
                    } else {
                        name_separator(&refs)
                    };
                    for (k, n) in missing.iter().enumerate() {
                        let sep = if l.names.is_empty() && k == 0 {
                            first_sep.as_str()
                        } else {
                            sep_between
                        };
                        fields.push(Field { sep, name: n });
                    }
                    out.push_str(&l.render_with(&fields));
                    placement = Placement::AddedTo(l.text().to_string());
                } else if p.exclusive && l.is_entry() && !for_ip(l) && names_it(l) {
                    take(l, &mut out);
                } else {
                    out.push_str(l.raw);
                }
            }
            if !missing.is_empty() && target.is_none() {
                let eol = line_ending(&lines);
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push_str(eol);
                }
                let mut new_line = ip_text.clone();
                new_line.push_str(&first_separator(&refs, hosts::advance(0, ip_text)));
                new_line.push_str(&missing.join(name_separator(&refs)));
                out.push_str(&new_line);
                if text.is_empty() || text.ends_with('\n') {
                    out.push_str(eol);
                }
                placement = Placement::Appended(new_line);
            }
            added = missing.iter().map(|s| s.to_string()).collect();
            if matches!(placement, Placement::None) {
                placement = Placement::Already;
            }
        }
    }

    // What each wanted name resolves to through the new text, in one pass over it.
    let mut first: HashMap<String, IpAddr> = HashMap::new();
    for l in hosts::parse(&out) {
        if let Some(ip) = l.ip() {
            for f in &l.names {
                if is_wanted(f.name) {
                    first.entry(f.name.to_ascii_lowercase()).or_insert(ip);
                }
            }
        }
    }
    let resolved = |n: &str| first.get(&n.to_ascii_lowercase()).copied();
    let resolves_to = resolved(&p.hostname);
    let mut warnings = Vec::new();
    if let Some((ip, _)) = &want.ip {
        for n in &want.names {
            let got = resolved(n);
            if got != Some(*ip) {
                let got_text = got.map_or("nothing".to_string(), |g| g.to_string());
                let mut w = format!(
                    "{n} resolves to {got_text}, not {ip}, through the hosts file: an earlier line names it (exclusive is false)"
                );
                if got.is_some_and(hosts::is_loopback) {
                    w.push_str("; a node name resolving to a loopback address keeps the Proxmox cluster filesystem from starting");
                }
                warnings.push(w);
            }
        }
    }
    Ok(Plan {
        after: out,
        names: want.names,
        added,
        placement,
        removed_from,
        dropped,
        resolves_to,
        warnings,
    })
}

fn lines_word(n: usize) -> &'static str {
    if n == 1 {
        "line"
    } else {
        "lines"
    }
}

/// The result message.
pub fn message(plan: &Plan, p: &Params, path: &str, changed: bool, check_mode: bool) -> String {
    let names = plan.names.join(", ");
    let removed = if plan.removed_from.is_empty() {
        String::new()
    } else {
        let n = plan.removed_from.len();
        let mut s = format!("removed from {n} {}", lines_word(n));
        if plan.dropped > 0 {
            s.push_str(&format!(
                " ({} left without names and dropped)",
                plan.dropped
            ));
        }
        s
    };
    let verb = |done: &str, would: &str| {
        if check_mode {
            would.to_string()
        } else {
            done.to_string()
        }
    };
    match (&plan.placement, changed) {
        (Placement::None, false) => format!("{names} not in {path}, nothing to remove"),
        (Placement::None, true) => format!(
            "{} {names} from {path}: {removed}",
            verb("removed", "would remove")
        ),
        (_, false) => format!(
            "{names} already pinned to {} in {path}",
            p.ip.as_deref().unwrap_or("")
        ),
        (placement, true) => {
            let mut parts = Vec::new();
            match placement {
                Placement::AddedTo(l) => {
                    parts.push(format!("added {} to the line '{l}'", plan.added.join(", ")))
                }
                Placement::Appended(l) => parts.push(format!("appended the line '{l}'")),
                _ => {}
            }
            if !removed.is_empty() {
                parts.push(removed);
            }
            format!(
                "{} {names} to {} in {path}: {}",
                verb("pinned", "would pin"),
                p.ip.as_deref().unwrap_or(""),
                parts.join("; ")
            )
        }
    }
}

/// The file's bytes as text: UTF-8 as it is, anything else read byte for byte as Latin-1 (names
/// and addresses are ASCII; a comment may hold any bytes and is kept exact).
fn decode(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (bytes.iter().map(|&b| char::from(b)).collect(), true),
    }
}

/// The bytes of a text from [`decode`] (the plan only adds ASCII).
fn encode(text: &str, latin1: bool) -> Vec<u8> {
    if latin1 {
        text.chars()
            .map(|c| u8::try_from(c).unwrap_or(b'?'))
            .collect()
    } else {
        text.as_bytes().to_vec()
    }
}

/// The running system's short host name (`uname -n` up to the first dot): what pmxcfs and
/// corosync call the node. Test hook PVE2NODE_HOSTNAME (debug builds only).
fn system_short_hostname(ctx: &Ctx) -> Option<String> {
    ctx.test_hook("PVE2NODE_HOSTNAME")
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| short_name(h.trim()).to_string())
        .filter(|h| !h.is_empty())
}

/// A host name up to its first dot.
pub fn short_name(h: &str) -> &str {
    h.split('.').next().unwrap_or("")
}

fn logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let mut p = Params::from_ctx(&ctx.params);
    if p.hostname.is_empty() && ctx.params.str("hostname").is_none() {
        p.hostname = system_short_hostname(ctx).ok_or(HostsError::NoHostname)?;
    }
    // Bad parameters are refused before the file is even read.
    check(&p)?;
    let path_text = ctx.params.str_or_empty("path").to_string();
    if path_text.is_empty() {
        return Err(HostsError::EmptyPath.into());
    }
    let path = Path::new(&path_text);
    // Located once: the file read is the file written.
    let mut target = edit::Target::open(path).map_err(|e| match e {
        EditError::NotFound(p) => HostsError::Missing(p),
        other => HostsError::File(other),
    })?;
    for n in target.notes() {
        ctx.warn(n.clone());
    }
    if target.bytes().contains(&0) {
        return Err(HostsError::Nul(path_text).into());
    }
    let (before, latin1) = decode(target.bytes());
    let plan = plan(&before, &p)?;
    let changed = plan.after != before;
    let mut applied = edit::Applied {
        changed,
        ..edit::Applied::default()
    };
    if changed && !ctx.check_mode {
        let seen = target.notes().len();
        let result = target.write(
            &encode(&plan.after, latin1),
            ctx.params.flag("backup"),
            TempStyle::Hidden,
        );
        for n in target.notes().iter().skip(seen) {
            ctx.warn(n.clone());
        }
        applied = result.map_err(|e| {
            // A failed write that left the file changed says so.
            let changed = e.changed_file();
            let f = Failure::from(HostsError::File(e));
            if changed {
                f.with("changed", true)
            } else {
                f
            }
        })?;
    }
    for w in &plan.warnings {
        ctx.warn(w.clone());
    }
    let msg = message(&plan, &p, &path_text, applied.changed, ctx.check_mode);
    let mut o = Outcome::new(applied.changed, msg)
        .with("hostname", p.hostname.clone())
        .with(
            "removed_from",
            Value::Array(
                plan.removed_from
                    .iter()
                    .cloned()
                    .map(Value::String)
                    .collect(),
            ),
        )
        .with(
            "resolves_to",
            plan.resolves_to
                .map_or(Value::Null, |ip| Value::String(ip.to_string())),
        );
    if let Some(b) = applied.backup_file {
        o.set("backup_file", b.display().to_string());
    }
    o.diff = Some(edit::diff(path, &before, &plan.after));
    Ok(o)
}

fn main() {
    protocol::run(&SPEC, logic)
}

#[cfg(test)]
mod tests;
