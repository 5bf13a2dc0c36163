//! cman_two_node: turn two-node quorum on (or off) in cluster.conf (PVE 3, cman) or
//! corosync.conf (PVE 4+), bump the config version by exactly one in the same write, activate
//! the change the way the era expects, and check the running cluster took it.
//!
//! Shape: argspec as data; `plan()` is a pure function from (text, format, wanted state) to the
//! new text; reading, validating with `corosync -t`, writing, activating and verifying are the
//! edges in `logic()`.

use pve2node::edit::{self, EditError, TempStyle};
use pve2node::protocol::{self, Ctx, Default as D, Failure, Outcome, Param, Spec, Type};
use pve2node::pve::cluster_conf::{self, XmlError};
use pve2node::pve::corosync_conf::{self, Kind, SyntaxError};
use pve2node::run;
use serde_json::{json, Value};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SPEC: Spec = Spec {
    module: "cman_two_node",
    params: &[
        Param::new("path", Type::Path),
        Param::new("format", Type::Str)
            .default(D::Str("auto"))
            .choices(&["auto", "corosync", "cman"]),
        Param::new("state", Type::Str)
            .default(D::Str("present"))
            .choices(&["present", "absent"]),
        Param::new("expected_votes", Type::Int).default(D::Int(1)),
        Param::new("wait_for_all", Type::Bool),
        Param::new("force", Type::Bool).default(D::Bool(false)),
        Param::new("activate", Type::Bool).default(D::Bool(true)),
        Param::new("activate_command", Type::List(protocol::Elem::Str)),
        Param::new("verify", Type::Bool).default(D::Bool(true)),
        Param::new("timeout", Type::Int)
            .default(D::Int(30))
            .range(0, 86_400),
        Param::new("validate", Type::Bool).default(D::Bool(true)),
        Param::new("backup", Type::Bool).default(D::Bool(false)),
    ],
    mutually_exclusive: &[],
    required_if: &[],
    supports_check_mode: true,
};

/// Where pmxcfs keeps the cluster files (overridable for tests: PVE2NODE_PVE_DIR).
const PVE_DIR: &str = "/etc/pve";
/// The local copies pmxcfs writes (overridable for tests: PVE2NODE_COROSYNC_LOCAL,
/// PVE2NODE_CLUSTER_LOCAL).
const COROSYNC_LOCAL: &str = "/etc/corosync/corosync.conf";
const CLUSTER_LOCAL: &str = "/etc/cluster/cluster.conf";
/// Where `backup: true` keeps the copy of a file inside /etc/pve (overridable for tests:
/// PVE2NODE_BACKUP_DIR). Not beside the file: inside /etc/pve a copy would be replicated to
/// every node and count against pmxcfs's size and inode limits.
const BACKUP_DIR: &str = "/var/lib/pve2node/backup";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Corosync,
    Cman,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Corosync => "corosync",
            Format::Cman => "cman",
        }
    }
}

/// What the user wants.
#[derive(Debug, Clone, PartialEq)]
struct Want {
    present: bool,
    expected_votes: i64,
    wait_for_all: Option<bool>,
    force: bool,
}

/// The result of planning: the new text and what to report.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    text: String,
    changed: bool,
    version_before: u64,
    version_after: u64,
    nodes: usize,
    warnings: Vec<String>,
}

/// Why a file cannot be edited. Each text completes "cannot edit FILE: …".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum ConfError {
    #[error("corosync syntax error at {0}; fix the file first")]
    Syntax(SyntaxError),
    #[error("{0}; fix the file first")]
    Xml(XmlError),
    #[error("{0}")]
    Ambiguous(String),
    #[error("it has no top-level `quorum {{ }}` section; add `quorum {{ provider: corosync_votequorum }}` first")]
    NoQuorum,
    #[error("line {0}: the quorum section has a `device` section (a QDevice), and corosync refuses two_node beside one: keep the QDevice as the third vote, or remove it first with the qdevice module's state=absent")]
    QuorumDevice(usize),
    #[error("it has no <cman> element inside <cluster>; add `<cman/>` first")]
    NoCman,
    #[error("{0} is missing; the config version must be present to be bumped")]
    NoVersion(&'static str),
    #[error("line {line}: config_version `{value}` is not a whole number")]
    BadVersion { line: usize, value: String },
    #[error("it lists {0} nodes; two-node mode on three or more nodes invites split brain, so it is refused (set force: true to edit anyway)")]
    TooManyNodes(usize),
    #[error("line {0}: the quorum section turns on auto_tie_breaker, and corosync disables two_node when auto_tie_breaker is on (`two_node has been disabled`); remove auto_tie_breaker or set it to 0 first")]
    AutoTieBreaker(usize),
    #[error("{0}, but cman refuses to start with two_node=\"1\" unless <clusternodes> lists exactly two nodes with one vote each (`two_node set but …`), so it is refused; fix the node list first (or set force: true to edit anyway)")]
    CmanNodes(String),
    #[error("internal check failed: the edited text {0}; nothing was written")]
    Internal(String),
}

/// A byte-range replacement (an insertion when the range is empty).
type Edit = (Range<usize>, String);

/// Applies sorted, non-overlapping edits in one pass (linear time).
fn splice(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let extra: usize = edits.iter().map(|(_, s)| s.len()).sum();
    let mut out = String::with_capacity(text.len() + extra);
    let mut pos = 0;
    for (r, s) in edits {
        if r.start < pos || r.end > text.len() {
            continue;
        }
        out.push_str(text.get(pos..r.start).unwrap_or(""));
        out.push_str(&s);
        pos = r.end;
    }
    out.push_str(text.get(pos..).unwrap_or(""));
    out
}

fn detect(text: &str) -> Format {
    if text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('<')
    {
        Format::Cman
    } else {
        Format::Corosync
    }
}

fn int_value(v: &str) -> Option<i64> {
    v.trim().parse().ok()
}

fn parse_version(value: &str, line: usize) -> Result<u64, ConfError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfError::BadVersion {
            line,
            value: value.to_string(),
        });
    }
    value.parse().map_err(|_| ConfError::BadVersion {
        line,
        value: value.to_string(),
    })
}

/// Applies `edits` and, when there are any, bumps the config version (at `version_span`,
/// read as `before`) by one in the same splice: `(changed, version after, new text)`.
fn splice_bumped(
    text: &str,
    mut edits: Vec<Edit>,
    before: u64,
    version_span: Range<usize>,
    line: usize,
) -> Result<(bool, u64, String), ConfError> {
    if edits.is_empty() {
        return Ok((false, before, text.to_string()));
    }
    let after = bump(before, line)?;
    edits.push((version_span, after.to_string()));
    Ok((true, after, splice(text, edits)))
}

fn bump(v: u64, line: usize) -> Result<u64, ConfError> {
    v.checked_add(1).ok_or(ConfError::BadVersion {
        line,
        value: v.to_string(),
    })
}

/// The pure edit: from the current text to the wanted text.
fn plan(text: &str, format: Format, want: &Want) -> Result<Plan, ConfError> {
    match format {
        Format::Corosync => plan_corosync(text, want),
        Format::Cman => plan_cman(text, want),
    }
}

const WFA_WARNING: &str = "two_node: 1 turns on wait_for_all because the quorum section does not set it: after both nodes have stopped, a lone node that boots will not become quorate until it has seen its peer once. If one node must be able to start alone, run this module with wait_for_all: false (writes `wait_for_all: 0` in the quorum section).";

fn plan_corosync(text: &str, want: &Want) -> Result<Plan, ConfError> {
    let conf = corosync_conf::parse(text).map_err(ConfError::Syntax)?;
    conf.single_top("totem").map_err(ConfError::Ambiguous)?;
    let quorum = conf
        .single_top("quorum")
        .map_err(ConfError::Ambiguous)?
        .ok_or(ConfError::NoQuorum)?;
    if let Some(dev) = conf.has_quorum_device() {
        let line = conf.sections.get(dev).map(|s| s.open_line + 1).unwrap_or(0);
        return Err(ConfError::QuorumDevice(line));
    }
    if want.present {
        let atb = conf.entries(text, quorum, "auto_tie_breaker");
        if let Some(e) = atb.iter().find(|e| int_value(e.value) != Some(0)) {
            return Err(ConfError::AutoTieBreaker(e.line + 1));
        }
    }
    let versions = conf.config_versions(text);
    let version = match versions.as_slice() {
        [] => return Err(ConfError::NoVersion("totem.config_version")),
        [one] => one,
        [_, two, ..] => {
            return Err(ConfError::Ambiguous(format!(
                "line {}: totem.config_version is set more than once",
                two.line + 1
            )))
        }
    };
    let vline = version.line + 1;
    let before = parse_version(version.value, vline)?;
    let nodes = conf.node_count();
    if want.present && nodes > 2 && !want.force {
        return Err(ConfError::TooManyNodes(nodes));
    }

    let mut edits: Vec<Edit> = Vec::new();
    let single = |key: &str| -> Result<Option<corosync_conf::Entry>, ConfError> {
        let e = conf.entries(text, quorum, key);
        if let Some(second) = e.get(1) {
            return Err(ConfError::Ambiguous(format!(
                "line {}: quorum.{key} is set more than once",
                second.line + 1
            )));
        }
        Ok(e.into_iter().next())
    };
    let two = single("two_node")?;
    let wfa = single("wait_for_all")?;
    let mut inserts: Vec<(&str, String)> = Vec::new();
    if want.present {
        match &two {
            Some(e) if int_value(e.value) == Some(1) => {}
            Some(e) => edits.push((e.value_span.clone(), "1".into())),
            None => inserts.push(("two_node", "1".into())),
        }
    } else if let Some(e) = &two {
        if int_value(e.value) != Some(0) {
            if let Some(l) = conf.lines.get(e.line) {
                edits.push((l.span.start..l.eol.end, String::new()));
            }
        }
    }
    if let Some(w) = want.wait_for_all {
        let v = if w { "1" } else { "0" };
        match &wfa {
            Some(e) if int_value(e.value) == Some(w as i64) => {}
            Some(e) => edits.push((e.value_span.clone(), v.into())),
            None => inserts.push(("wait_for_all", v.into())),
        }
    }
    if !inserts.is_empty() {
        let (at, indent, eol) = insertion_point(text, &conf, quorum, inserts[0].0);
        for (k, v) in &inserts {
            edits.push((at..at, format!("{indent}{k}: {v}{eol}")));
        }
    }
    let mut warnings = Vec::new();
    if want.present && wfa.is_none() && want.wait_for_all.is_none() {
        warnings.push(WFA_WARNING.to_string());
    }
    let (changed, after, new) =
        splice_bumped(text, edits, before, version.value_span.clone(), vline)?;
    if changed {
        check_corosync(&new, want, after)?;
        // pmxcfs takes the first `config_version: N` anywhere in the file (even in a comment).
        let seen = corosync_conf::pmxcfs_config_version(&new);
        if seen != Some(after) {
            warnings.push(format!(
                "pmxcfs reads the first `config_version: N` in the file, which is {} here, not totem's {after}; it may refuse to copy the file to /etc/corosync (remove the earlier match, e.g. in a comment)",
                seen.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
            ));
        }
    }
    Ok(Plan {
        text: new,
        changed,
        version_before: before,
        version_after: after,
        nodes,
        warnings,
    })
}

/// Where a new `key: value` line goes in `section`: at its sorted place when the section's keys
/// are sorted (the PVE 5+ writer), else after the last key, else right after `name {`. Returns
/// the byte offset, the indentation and the line ending to use.
fn insertion_point(
    text: &str,
    conf: &corosync_conf::Conf,
    section: usize,
    key: &str,
) -> (usize, String, String) {
    let children = conf.direct_children(section);
    let open = conf.sections.get(section).map(|s| s.open_line).unwrap_or(0);
    let close = conf
        .sections
        .get(section)
        .map(|s| s.close_line)
        .unwrap_or(0);
    let keys: Vec<(usize, &str)> = children
        .iter()
        .filter_map(|&i| match conf.lines.get(i).map(|l| &l.kind) {
            Some(Kind::KeyValue { key, .. }) => Some((i, text.get(key.clone()).unwrap_or(""))),
            _ => None,
        })
        .collect();
    let get = |i: usize| conf.lines.get(i);
    let indent = match children.first().and_then(|&i| get(i)) {
        Some(l) => text.get(l.indent.clone()).unwrap_or("").to_string(),
        None => {
            let base = get(close)
                .and_then(|l| text.get(l.indent.clone()))
                .unwrap_or("");
            let unit = if text.contains("\n\t") { "\t" } else { "  " };
            format!("{base}{unit}")
        }
    };
    let eol_of = |i: usize| {
        get(i)
            .and_then(|l| text.get(l.eol.clone()))
            .filter(|e| !e.is_empty())
            .unwrap_or("\n")
            .to_string()
    };
    let sorted = keys.windows(2).all(|w| w[0].1 <= w[1].1);
    if sorted {
        if let Some(&(i, _)) = keys.iter().find(|(_, k)| *k > key) {
            let at = get(i).map(|l| l.span.start).unwrap_or(0);
            return (at, indent, eol_of(i));
        }
    }
    let after = keys.last().map(|&(i, _)| i).unwrap_or(open);
    let at = get(after).map(|l| l.eol.end).unwrap_or(0);
    (at, indent, eol_of(after))
}

/// Re-reads the new corosync text with the module's own parser and checks the intended state.
fn check_corosync(new: &str, want: &Want, version: u64) -> Result<(), ConfError> {
    let bad = |s: &str| ConfError::Internal(s.to_string());
    let c = corosync_conf::parse(new)
        .map_err(|e| ConfError::Internal(format!("does not parse ({e})")))?;
    let v = c.config_versions(new);
    if v.len() != 1 || v.first().map(|e| e.value.to_string()) != Some(version.to_string()) {
        return Err(bad("does not carry the bumped config_version"));
    }
    let q = c.quorum().ok_or_else(|| bad("lost its quorum section"))?;
    let two: Vec<_> = c.entries(new, q, "two_node");
    let on = two.iter().any(|e| int_value(e.value) == Some(1));
    if on != want.present || two.len() > 1 {
        return Err(bad("does not have the wanted two_node setting"));
    }
    if let Some(w) = want.wait_for_all {
        let e = c.entries(new, q, "wait_for_all");
        if e.len() != 1 || e.first().and_then(|e| int_value(e.value)) != Some(w as i64) {
            return Err(bad("does not have the wanted wait_for_all setting"));
        }
    }
    Ok(())
}

fn plan_cman(text: &str, want: &Want) -> Result<Plan, ConfError> {
    let c = cluster_conf::parse(text).map_err(ConfError::Xml)?;
    let vattr = c
        .cluster
        .attr("config_version")
        .ok_or(ConfError::NoVersion(
            "the config_version attribute of <cluster>",
        ))?;
    let before = parse_version(&vattr.value, c.cluster.line)?;
    let cman = match c.cman.as_slice() {
        [] => return Err(ConfError::NoCman),
        [one] => one,
        [_, two, ..] => {
            return Err(ConfError::Ambiguous(format!(
                "line {}: <cman> appears more than once inside <cluster>",
                two.line
            )))
        }
    };
    let nodes = c.nodes;
    if want.present && nodes > 2 && !want.force {
        return Err(ConfError::TooManyNodes(nodes));
    }
    if want.present && !want.force {
        // cman's own start-up check (cmanconfig.c): node count 2 and vote sum 2, own votes 1.
        // A missing votes attribute counts as 1.
        let odd = c.node_votes.iter().find(|(_, v)| {
            v.as_deref()
                .is_some_and(|v| v.trim().parse::<i64>().ok() != Some(1))
        });
        if nodes != 2 {
            return Err(ConfError::CmanNodes(format!(
                "it lists {nodes} node{}",
                if nodes == 1 { "" } else { "s" }
            )));
        }
        if let Some((name, v)) = odd {
            return Err(ConfError::CmanNodes(format!(
                "clusternode `{name}` has votes=\"{}\"",
                v.as_deref().unwrap_or("")
            )));
        }
    }
    let quote = cman.attrs.last().map(|a| a.quote).unwrap_or('"');
    let mut edits: Vec<Edit> = Vec::new();
    let set = |name: &str, value: &str, edits: &mut Vec<Edit>| match cman.attr(name) {
        Some(a) if a.value == value => {}
        Some(a) => edits.push((a.value_span.clone(), value.to_string())),
        None => edits.push((
            cman.insert_at..cman.insert_at,
            format!(" {name}={quote}{value}{quote}"),
        )),
    };
    if want.present {
        set("two_node", "1", &mut edits);
        set(
            "expected_votes",
            &want.expected_votes.to_string(),
            &mut edits,
        );
    } else {
        if let Some(a) = cman.attr("two_node") {
            if a.value.trim() != "0" {
                let bytes = text.as_bytes();
                let mut start = a.span.start;
                while start > 0
                    && bytes
                        .get(start - 1)
                        .is_some_and(|b| b.is_ascii_whitespace())
                {
                    start -= 1;
                }
                edits.push((start..a.span.end, String::new()));
            }
        }
        if let Some(a) = cman.attr("expected_votes") {
            if nodes > 0 && a.value != nodes.to_string() {
                edits.push((a.value_span.clone(), nodes.to_string()));
            }
        }
    }
    let (changed, after, new) = splice_bumped(
        text,
        edits,
        before,
        vattr.value_span.clone(),
        c.cluster.line,
    )?;
    if changed {
        let bad = |s: &str| ConfError::Internal(s.to_string());
        let n = cluster_conf::parse(&new)
            .map_err(|e| ConfError::Internal(format!("does not parse ({e})")))?;
        if n.cluster.attr("config_version").map(|a| a.value.clone()) != Some(after.to_string()) {
            return Err(bad("does not carry the bumped config_version"));
        }
        let on = n
            .cman
            .first()
            .and_then(|m| m.attr("two_node"))
            .is_some_and(|a| a.value.trim() != "0");
        if on != want.present {
            return Err(bad("does not have the wanted two_node setting"));
        }
    }
    let mut warnings = Vec::new();
    if want.present && want.expected_votes != 1 {
        warnings.push(format!(
            "expected_votes is {} with two_node=\"1\"; cman's schema wants expected_votes=\"1\" in two-node mode",
            want.expected_votes
        ));
    }
    Ok(Plan {
        text: new,
        changed,
        version_before: before,
        version_after: after,
        nodes,
        warnings,
    })
}

// ---------------------------------------------------------------------------------------------
// Edges, in the order `logic` runs them: target, settings (and the environment), validation,
// write-with-retry, activation (argv pure, then activate), verify.

/// Where the module looks, read once at the edge: the real paths, or in debug builds the test
/// hooks PVE2NODE_PVE_DIR, PVE2NODE_COROSYNC_LOCAL, PVE2NODE_CLUSTER_LOCAL and
/// PVE2NODE_BACKUP_DIR (a release binary never reads them).
#[derive(Debug, Clone, PartialEq)]
struct Env {
    pve_dir: PathBuf,
    corosync_local: PathBuf,
    cluster_local: PathBuf,
    backup_dir: PathBuf,
}

impl Env {
    fn read(ctx: &Ctx) -> Env {
        let hook = |name: &str, default: &str| {
            PathBuf::from(ctx.test_hook(name).unwrap_or_else(|| default.to_string()))
        };
        Env {
            pve_dir: hook("PVE2NODE_PVE_DIR", PVE_DIR),
            corosync_local: hook("PVE2NODE_COROSYNC_LOCAL", COROSYNC_LOCAL),
            cluster_local: hook("PVE2NODE_CLUSTER_LOCAL", CLUSTER_LOCAL),
            backup_dir: hook("PVE2NODE_BACKUP_DIR", BACKUP_DIR),
        }
    }
    /// The local copy pmxcfs writes for `format`.
    fn local(&self, format: Format) -> &Path {
        match format {
            Format::Corosync => &self.corosync_local,
            Format::Cman => &self.cluster_local,
        }
    }
}

/// Phase 1, target: the `path` parameter, else the cluster file pmxcfs holds.
fn target(path: Option<&str>, env: &Env) -> Result<PathBuf, Failure> {
    if let Some(s) = path {
        if s.trim().is_empty() {
            return Err(Failure::new(
                "path is empty; set it to the cluster file (e.g. /etc/pve/corosync.conf), or leave it out to use the one in /etc/pve",
            ));
        }
        return Ok(PathBuf::from(s));
    }
    let c = env.pve_dir.join("corosync.conf");
    let x = env.pve_dir.join("cluster.conf");
    if c.exists() {
        Ok(c)
    } else if x.exists() {
        Ok(x)
    } else {
        Err(Failure::new(format!(
            "neither {} nor {} exists: is this node part of a cluster? Create the cluster first or set the path parameter",
            c.display(),
            x.display()
        )))
    }
}

/// Phase 2, settings: the validated parameters.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    want: Want,
    /// `format` when not `auto`.
    format: Option<Format>,
    timeout: Duration,
    /// Empty: the era's own activation.
    activate_command: Vec<String>,
    activate: bool,
    verify: bool,
    validate: bool,
    backup: bool,
}

fn settings(p: &protocol::Params) -> Result<Settings, Failure> {
    let timeout = p.duration("timeout");
    let expected_votes = p.int("expected_votes").unwrap_or(1);
    if expected_votes < 1 {
        return Err(Failure::new("expected_votes must be 1 or more"));
    }
    let activate_command = p.list("activate_command");
    if p.is_set("activate_command") && activate_command.is_empty() {
        return Err(Failure::new(
            "activate_command must hold at least the program to run",
        ));
    }
    Ok(Settings {
        want: Want {
            present: p.str("state") != Some("absent"),
            expected_votes,
            wait_for_all: p.bool("wait_for_all"),
            force: p.flag("force"),
        },
        format: match p.str("format") {
            Some("corosync") => Some(Format::Corosync),
            Some("cman") => Some(Format::Cman),
            _ => None,
        },
        timeout,
        activate_command,
        activate: p.flag("activate"),
        verify: p.flag("verify"),
        validate: p.flag("validate"),
        backup: p.flag("backup"),
    })
}

/// Warnings about settings that do not apply to `format` (pure).
fn ignored_settings(s: &Settings, format: Format) -> Vec<String> {
    let mut w = Vec::new();
    if format == Format::Cman && s.want.wait_for_all.is_some() {
        w.push(
            "wait_for_all applies to corosync.conf only; it was ignored for cluster.conf".into(),
        );
    }
    if format == Format::Corosync && s.want.expected_votes != 1 {
        w.push(format!(
            "expected_votes applies to cluster.conf only; {} was ignored for corosync.conf (votequorum derives expected votes from the nodelist)",
            s.want.expected_votes
        ));
    }
    w
}

enum Validation {
    Valid,
    Invalid(String),
    CannotValidate(String),
}

/// stdout and stderr of a command, trimmed, as one text for messages.
fn output_text(o: &run::Output) -> String {
    let mut s = o.stdout.trim().to_string();
    if !o.stderr.trim().is_empty() {
        if !s.is_empty() {
            s.push_str(" / ");
        }
        s.push_str(o.stderr.trim());
    }
    s
}

/// Runs `corosync -t -c` on `text` written to a private temp file (never inside /etc/pve, never
/// a predictable name: `edit::Scratch`).
fn corosync_check(corosync: &Path, text: &str) -> Result<run::Output, String> {
    let tmp = edit::Scratch::new("cman_two_node-check", text.as_bytes())?;
    let argv = vec![
        corosync.display().to_string(),
        "-t".into(),
        "-c".into(),
        tmp.path().display().to_string(),
    ];
    run::run(&argv, Duration::from_secs(30)).map_err(|e| e.to_string())
}

/// corosync's own verdict on the new text. exit 0: valid. `parser error` / `Value of key` /
/// `configuration error` (exit 8): the text is invalid. Anything else (missing authkey, local
/// node not found, a name that does not resolve): the original text is checked the same way;
/// if it fails too, this host cannot validate (warning), if it passes the edit broke it.
fn validate_corosync(corosync: &Path, old: &str, new: &str) -> Validation {
    let o = match corosync_check(corosync, new) {
        Ok(o) => o,
        Err(e) => return Validation::CannotValidate(e),
    };
    if o.success() {
        return Validation::Valid;
    }
    let msg = output_text(&o);
    let invalid = ["parser error", "Value of key", "configuration error"];
    if invalid.iter().any(|p| msg.contains(p)) {
        return Validation::Invalid(msg);
    }
    match corosync_check(corosync, old) {
        Ok(o2) if o2.success() => Validation::Invalid(msg),
        _ => Validation::CannotValidate(format!(
            "the unchanged file fails the same way, {} ({})",
            msg,
            o.describe()
        )),
    }
}

/// Phase 3, validation: `corosync -t` on the new corosync.conf text, where corosync is
/// installed. A rejection fails before anything is written; a host that cannot validate is a
/// warning.
fn validation(
    ctx: &mut Ctx,
    path: &Path,
    format: Format,
    before: &str,
    plan: &Plan,
) -> Result<(), Failure> {
    if !plan.changed || format != Format::Corosync {
        return Ok(());
    }
    let Some(corosync) = run::which("corosync") else {
        return Ok(());
    };
    match validate_corosync(&corosync, before, &plan.text) {
        Validation::Valid => Ok(()),
        Validation::Invalid(m) => Err(Failure::new(format!(
            "cannot edit {}: corosync -t rejects the edited text, nothing was written: {m}",
            path.display()
        ))),
        Validation::CannotValidate(m) => {
            ctx.warn(format!(
                "corosync -t cannot validate {} on this host, written without it: {m}",
                path.display()
            ));
            Ok(())
        }
    }
}

/// The ONE place that decides whether a refused write inside /etc/pve is pmxcfs without quorum
/// (worth retrying until `timeout`): EROFS, or EACCES, which the real pmxcfs gives without
/// quorum (proxmox.md §8). Decided on the errno the edit kept, never on the message text.
fn refused_without_quorum(e: &EditError) -> bool {
    matches!(e.errno(), Some(libc::EROFS | libc::EACCES))
}

/// `backup: true` for a file inside /etc/pve: a copy of `before` (the text that was read and
/// edited) in `dir` (made 0700), named like Ansible's backups (`<name>.<pid>.<time>~`).
/// Written under a temp name and renamed into its name only once complete and fsynced.
fn backup_outside(path: &Path, before: &str, dir: &Path) -> Result<PathBuf, Failure> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    let fail = |what: String| {
        Failure::new(format!(
            "cannot back up {} to {}: {what}; nothing was written",
            path.display(),
            dir.display()
        ))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail(pve2node::io_reason(&e)))?;
    // The directory must be ours alone: no symlink, owned by this user, writable by no one else.
    let meta = std::fs::symlink_metadata(dir).map_err(|e| fail(pve2node::io_reason(&e)))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(fail(format!(
            "it is not a directory owned by uid {me} and writable by it alone (mode {:o}, owner {}); fix or remove it",
            meta.mode() & 0o7777,
            meta.uid()
        )));
    }
    remove_stale_temps(dir);
    let name = edit::backup_name(path)
        .file_name()
        .map(|n| n.to_os_string())
        .ok_or_else(|| fail("the path has no file name".into()))?;
    let dest = dir.join(&name);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(&name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(before.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &dest));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(pve2node::io_reason(&e)));
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(dest)
}

/// Removes the temp files (`.<backup name>.tmp`) of killed runs from the backup directory: the
/// backup name holds the pid of the run that made it; one whose process is gone is stale.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = stale_temp_pid(&name) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Pure: the pid in a backup temp name `.<file>.<pid>.<time>~.tmp`, else None.
fn stale_temp_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix("~.tmp")?;
    let mut parts = inner.rsplitn(3, '.');
    let _time = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(pid)
}

/// Phase 4, write-with-retry: the backup (outside /etc/pve for a file inside it), then the
/// write; inside /etc/pve a write refused for want of quorum is retried until `timeout`
/// (pmxcfs stays read-only for a moment after a create, a join or a reload).
fn write_with_retry(
    ctx: &Ctx,
    path: &Path,
    before: &str,
    plan: &Plan,
    s: &Settings,
    env: &Env,
    in_pve: bool,
) -> Result<edit::Applied, Failure> {
    let style = if in_pve {
        TempStyle::DotNew
    } else {
        TempStyle::Hidden
    };
    let outside = if in_pve && s.backup && plan.changed && !ctx.check_mode {
        Some(backup_outside(path, before, &env.backup_dir)?)
    } else {
        None
    };
    let beside = s.backup && !in_pve;
    let mut last = None;
    let attempt = pve2node::wait::until(
        s.timeout,
        Duration::from_millis(250),
        |_| match edit::apply(path, before, &plan.text, ctx.check_mode, beside, style) {
            Err(e) if in_pve && refused_without_quorum(&e) => {
                last = Some(e);
                None
            }
            other => Some(other),
        },
    );
    let result = match attempt {
        Ok((r, _)) => r,
        Err(_) => Err(last.unwrap_or_else(|| {
            EditError::Write(
                path.display().to_string(),
                edit::OsError::text("", "no attempt was made"),
            )
        })),
    };
    let fail = |e: EditError| {
        let hint = if in_pve && refused_without_quorum(&e) {
            format!(
                "; {} is read-only while this node has no quorum (pvecm expected 1 lets a lone node write)",
                env.pve_dir.display()
            )
        } else {
            String::new()
        };
        let mut f = Failure::new(format!("{e}{hint}"));
        if e.changed_file() {
            f = f.with("changed", true);
        }
        match &outside {
            Some(b) => f.with("backup_file", b.display().to_string()),
            None => f,
        }
    };
    let mut applied = result.map_err(fail)?;
    if outside.is_some() {
        applied.backup_file = outside;
    }
    Ok(applied)
}

/// Phase 5, activation argv (pure): what runs after a change, and what it waits for first.
#[derive(Debug, Clone, PartialEq)]
struct Activation {
    /// Wait until pmxcfs has copied the new text to this local file first.
    wait_copy: Option<PathBuf>,
    argv: Vec<String>,
    /// The user's activate_command (its failure is always the result).
    custom: bool,
    /// pmxcfs itself reloads on the writer node, inside the rename (`corosync-cfgtool -R`,
    /// on PVE 3 `cman_tool version -r -S`): this reload is a second one, whose failure alone
    /// does not decide; the verification does.
    pmxcfs_reloads: bool,
}

fn activation(format: Format, custom: &[String], in_pve: bool, local: &Path) -> Activation {
    if !custom.is_empty() {
        return Activation {
            wait_copy: None,
            argv: custom.to_vec(),
            custom: true,
            pmxcfs_reloads: false,
        };
    }
    let argv = match format {
        Format::Corosync => vec!["corosync-cfgtool".into(), "-R".into()],
        Format::Cman => vec![
            "cman_tool".into(),
            "version".into(),
            "-r".into(),
            "-S".into(),
        ],
    };
    Activation {
        wait_copy: in_pve.then(|| local.to_path_buf()),
        argv,
        custom: false,
        pmxcfs_reloads: in_pve,
    }
}

/// What the local copy pmxcfs writes shows.
#[derive(Debug, Clone, PartialEq)]
enum Copy {
    /// Byte for byte the new text: pmxcfs copied it.
    Done,
    /// A higher config version than the new one: pmxcfs never copies over it (`local
    /// corosync.conf is newer`).
    Newer(u64),
    /// Not (yet) the new text: the version it shows, if any.
    Pending(Option<u64>),
}

fn local_version(format: Format, text: &str) -> Option<u64> {
    match format {
        Format::Corosync => corosync_conf::pmxcfs_config_version(text),
        Format::Cman => cluster_conf::parse(text).ok().and_then(|c| {
            c.cluster
                .attr("config_version")
                .and_then(|a| a.value.parse().ok())
        }),
    }
}

/// Pure: has pmxcfs copied `new` (version `version`) to the local file that reads `local`?
/// pmxcfs copies a higher or an EQUAL version with other content (proxmox.md §8), so only the
/// bytes tell: a local copy that already shows the new version number may still be another
/// text.
fn copy_state(format: Format, local: Option<&str>, new: &str, version: u64) -> Copy {
    let Some(t) = local else {
        return Copy::Pending(None);
    };
    if t == new {
        return Copy::Done;
    }
    match local_version(format, t) {
        Some(v) if v > version => Copy::Newer(v),
        v => Copy::Pending(v),
    }
}

/// Waits (bounded) until pmxcfs has copied the new text to the local file.
fn wait_for_copy(local: &Path, format: Format, new: &str, version: u64, timeout: Duration) -> Copy {
    let mut last = Copy::Pending(None);
    let r = pve2node::wait::until(timeout, Duration::from_millis(200), |_| {
        let t = std::fs::read_to_string(local).ok();
        last = copy_state(format, t.as_deref(), new, version);
        (!matches!(last, Copy::Pending(_))).then(|| last.clone())
    });
    r.map(|(c, _)| c).unwrap_or(last)
}

/// The `Flags:` words of `corosync-quorumtool -s` / `cman_tool status` output.
fn runtime_flags(out: &str) -> Option<Vec<String>> {
    out.lines().find_map(|l| {
        l.trim_start()
            .strip_prefix("Flags:")
            .map(|rest| rest.split_whitespace().map(str::to_string).collect())
    })
}

struct Written<'a> {
    path: &'a Path,
    format: Format,
    plan: &'a Plan,
}

impl Written<'_> {
    /// A failure after the file was written: says so and keeps `changed: true`.
    fn after_write(&self, what: String) -> Failure {
        Failure::new(format!(
            "{} was changed (config_version {} -> {}) but {what}",
            self.path.display(),
            self.plan.version_before,
            self.plan.version_after
        ))
        .with("changed", true)
        .with("format", self.format.name())
        .with("config_version_before", self.plan.version_before)
        .with("config_version_after", self.plan.version_after)
        .with("nodes", self.plan.nodes)
    }
    /// The same, with the activation command's `{cmd, rc, stdout, stderr, timed_out}`
    /// attached as `activated` (the one way a command's output goes into a result).
    fn after_command(&self, what: String, activated: &Value) -> Failure {
        self.after_write(what).with("activated", activated.clone())
    }
}

/// What the activation left.
struct Activated {
    /// `{cmd, rc, stdout, stderr, timed_out}` of the command, or null when it could not run.
    json: Value,
    /// Our reload failed after pmxcfs's own: the verification decides (the text says how).
    second_reload_failed: Option<String>,
}

/// Phase 6, activate: wait for pmxcfs's copy (when inside /etc/pve), then run the activation.
fn activate(
    a: &Activation,
    w: &Written,
    timeout: Duration,
    want_text: &str,
) -> Result<Activated, Failure> {
    if let Some(local) = &a.wait_copy {
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        match wait_for_copy(local, w.format, want_text, w.plan.version_after, timeout) {
            Copy::Done => {}
            Copy::Newer(v) => {
                return Err(w.after_write(format!(
                    "{} already has config_version {v}, higher than the new {}: pmxcfs does not copy a config over a newer local one (`local {name} is newer`), so the running cluster did not take it; raise config_version in {} above {v} (or make the local copy match it) and run again",
                    local.display(),
                    w.plan.version_after,
                    w.path.display()
                )))
            }
            Copy::Pending(last) => {
                let seen = match last {
                    Some(v) if v == w.plan.version_after => {
                        format!("version {v} with another text than the new one")
                    }
                    Some(v) => format!("version {v}"),
                    None => "no readable version".into(),
                };
                return Err(w.after_write(format!(
                    "{} still shows {seen} after {} s: pmxcfs did not copy it (is this node quorate, is pve-cluster running?), so the running cluster did not take it",
                    local.display(),
                    timeout.as_secs()
                )));
            }
        }
    }
    let run_timeout = timeout.max(Duration::from_secs(10));
    let o = match run::run(&a.argv, run_timeout) {
        Ok(o) => o,
        Err(e) if a.pmxcfs_reloads => {
            return Ok(Activated {
                json: Value::Null,
                second_reload_failed: Some(e.to_string()),
            })
        }
        Err(e) => {
            return Err(w.after_write(format!("activation failed: {e}; the file stays changed")))
        }
    };
    let json = o.to_json();
    let already = w.format == Format::Cman
        && !a.custom
        && output_text(&o).contains("older or equal the running config");
    if o.success() || already {
        return Ok(Activated {
            json,
            second_reload_failed: None,
        });
    }
    let what = format!("`{}` {}: {}", o.cmdline(), o.describe(), output_text(&o));
    if a.pmxcfs_reloads {
        return Ok(Activated {
            json,
            second_reload_failed: Some(what),
        });
    }
    Err(w.after_command(format!("activation {what}; the file stays changed"), &json))
}

/// Phase 7, verify: polls the runtime quorum state (bounded by `timeout`) until its Flags
/// line shows (present) or no longer shows (absent) the two-node flag. `Ok(flags)` or
/// `Err(what was last seen)`.
fn verify(format: Format, present: bool, timeout: Duration) -> Result<Vec<String>, String> {
    let (tool, flag) = verify_tool(format);
    let mut last = String::new();
    let r = pve2node::wait::until(timeout, Duration::from_millis(500), |left| {
        let limit = left.clamp(Duration::from_secs(1), Duration::from_secs(10));
        match run::run(&tool, limit) {
            Ok(o) => match runtime_flags(&o.stdout) {
                Some(flags) if flags.iter().any(|f| f == flag) == present => return Some(flags),
                Some(flags) => last = format!("Flags: {}", flags.join(" ")),
                None => last = format!("{} {}: {}", o.cmdline(), o.describe(), output_text(&o)),
            },
            Err(e) => last = e.to_string(),
        }
        None
    });
    r.map(|(flags, _)| flags).map_err(|_| last)
}

/// The runtime state tool and the two-node flag it shows (pure).
fn verify_tool(format: Format) -> (Vec<String>, &'static str) {
    match format {
        Format::Corosync => (vec!["corosync-quorumtool".into(), "-s".into()], "2Node"),
        Format::Cman => (vec!["cman_tool".into(), "status".into()], "2node"),
    }
}

/// The result of the write (before any activation): what changed, the versions, the diff.
fn written_outcome(
    path: &Path,
    format: Format,
    before: &str,
    plan: &Plan,
    applied: &edit::Applied,
    check_mode: bool,
) -> Outcome {
    let msg = if !applied.changed {
        format!("{} is already in the wanted state", path.display())
    } else if check_mode {
        format!("{} would be changed (check mode)", path.display())
    } else {
        format!(
            "{} changed, config_version {} -> {}",
            path.display(),
            plan.version_before,
            plan.version_after
        )
    };
    let mut out = Outcome::new(applied.changed, msg)
        .with("format", format.name())
        .with("path", path.display().to_string())
        .with("config_version_before", plan.version_before)
        .with("config_version_after", plan.version_after)
        .with("nodes", plan.nodes)
        .with("activated", Value::Null)
        .with("runtime_flags", Value::Null);
    if let Some(b) = &applied.backup_file {
        out.set("backup_file", b.display().to_string());
    }
    if applied.changed {
        out.diff = Some(edit::diff(path, before, &plan.text));
    }
    out
}

/// After the activation: the verification decides, and one result says what happened (a
/// failed second reload after pmxcfs's own is a warning when the cluster took the change,
/// part of the one failure when it did not).
fn verdict(
    ctx: &mut Ctx,
    w: &Written,
    s: &Settings,
    env: &Env,
    activated: &Activated,
    mut out: Outcome,
) -> Result<Outcome, Failure> {
    let (tool, flag) = verify_tool(w.format);
    let second = activated.second_reload_failed.as_ref();
    if !s.verify {
        return match second {
            Some(what) => Err(w.after_command(
                format!(
                    "the reload after pmxcfs's own failed: {what}; pmxcfs normally reloads the cluster itself on this node, set verify: true to check whether the running cluster took it"
                ),
                &activated.json,
            )),
            None => Ok(out),
        };
    }
    match verify(w.format, s.want.present, s.timeout) {
        Ok(flags) => {
            if let Some(what) = second {
                ctx.warn(format!(
                    "the reload after pmxcfs's own failed ({what}), but pmxcfs had already reloaded the cluster on this node (it does when the file is renamed in {}) and `{}` shows the wanted {flag} state",
                    env.pve_dir.display(),
                    tool.join(" ")
                ));
            }
            out.set("runtime_flags", json!(flags));
            Ok(out)
        }
        Err(last) => {
            let hint = if w.format == Format::Cman {
                " (on PVE 3 a two_node change may need cman restarted on both nodes; unconfirmed, see activate_command)"
            } else {
                ""
            };
            let reload = second
                .map(|what| format!("; the reload after pmxcfs's own also failed: {what}"))
                .unwrap_or_default();
            Err(w.after_command(
                format!(
                    "the running cluster did not take it: `{}` did not {} the {flag} flag within {} s (last: {last}){reload}{hint}",
                    tool.join(" "),
                    if s.want.present { "show" } else { "drop" },
                    s.timeout.as_secs()
                ),
                &activated.json,
            ))
        }
    }
}

fn logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let env = Env::read(ctx);
    let path = target(ctx.params.str("path"), &env)?;
    let s = settings(&ctx.params)?;

    let before = edit::read_text(&path)?;
    let format = s.format.unwrap_or_else(|| detect(&before));
    for w in ignored_settings(&s, format) {
        ctx.warn(w);
    }
    let plan = plan(&before, format, &s.want).map_err(|e| {
        Failure::new(format!("cannot edit {}: {e}", path.display())).with("format", format.name())
    })?;
    for w in &plan.warnings {
        ctx.warn(w.clone());
    }
    if s.validate {
        validation(ctx, &path, format, &before, &plan)?;
    }

    let in_pve = edit::resolve(&path)?.starts_with(&env.pve_dir);
    let applied = write_with_retry(ctx, &path, &before, &plan, &s, &env, in_pve)?;
    for n in &applied.notes {
        ctx.warn(n.clone());
    }
    let mut out = written_outcome(&path, format, &before, &plan, &applied, ctx.check_mode);
    if !applied.changed || ctx.check_mode || !s.activate {
        return Ok(out);
    }

    // From here on the file is changed: every failure says so (Written::after_write).
    let w = Written {
        path: &path,
        format,
        plan: &plan,
    };
    let a = activation(format, &s.activate_command, in_pve, env.local(format));
    let activated = activate(&a, &w, s.timeout, &plan.text)?;
    out.set("activated", activated.json.clone());
    verdict(ctx, &w, &s, &env, &activated, out)
}

fn main() {
    protocol::run(&SPEC, logic)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
