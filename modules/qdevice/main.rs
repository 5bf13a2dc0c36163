//! qdevice: a cluster node's side of a QDevice (corosync-qdevice, model net), in steps the
//! controller strings together so no node needs ssh to the qnetd host:
//! `ca` (import the qnetd CA), `request` (one node: create the cluster certificate request and
//! return it), `certificate` (that node: import the certificate qnetd signed, return the
//! cluster `.p12`), `p12` (the other nodes: import it), `config` (write the `quorum.device`
//! block with `config_version` + 1 and `two_node`/`wait_for_all` removed in the same write,
//! start corosync-qdevice, reload, verify). `state: absent` removes the device block (and
//! can put `two_node` back in the same write), stops corosync-qdevice, removes its directory
//! and checks the cluster stays quorate.
//!
//! Shape: argspec as data; `plan_present` / `plan_absent` are pure functions from the current
//! text to the new text (or a refusal); `refuse_membership` is pure over the parsed
//! quorumtool output; the rest are the edges, one function per phase.

use pve2node::edit::{self, TempStyle};
use pve2node::protocol::{self, Ctx, Default as D, Elem, Failure, Outcome, Param, Spec, Type};
use pve2node::pve::corosync_conf::{self, Conf, Kind};
use pve2node::pve::qdevice::{self as qd, PrivateTemp, Quorum};
use pve2node::run;
use serde_json::{json, Value};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SPEC: Spec = Spec {
    module: "qdevice",
    params: &[
        Param::new("state", Type::Str)
            .default(D::Str("present"))
            .choices(&["present", "absent"]),
        Param::new("step", Type::Str)
            .default(D::Str("config"))
            .choices(&["ca", "request", "certificate", "p12", "config"]),
        Param::new("ca_certificate", Type::Str),
        Param::new("cluster_name", Type::Str),
        Param::new("certificate", Type::Str),
        Param::new("p12", Type::Str).no_log(),
        Param::new("host", Type::Str),
        Param::new("algorithm", Type::Str)
            .default(D::Str("ffsplit"))
            .choices(&["ffsplit", "lms"]),
        Param::new("replace", Type::Bool).default(D::Bool(false)),
        Param::new("two_node", Type::Bool).default(D::Bool(false)),
        Param::new("path", Type::Path).default(D::Str("/etc/pve/corosync.conf")),
        Param::new("start_command", Type::List(Elem::Str)).default(D::List(&[
            "systemctl",
            "enable",
            "--now",
            "corosync-qdevice",
        ])),
        Param::new("stop_command", Type::List(Elem::Str)).default(D::List(&[
            "systemctl",
            "disable",
            "--now",
            "corosync-qdevice",
        ])),
        Param::new("verify", Type::Bool).default(D::Bool(true)),
        Param::new("timeout", Type::Int)
            .default(D::Int(60))
            .range(1, 3600),
    ],
    mutually_exclusive: &[],
    required_if: &[],
    supports_check_mode: true,
};

/// corosync-qdevice-net-certutil's fixed directory (test hook: PVE2NODE_QDEVICE_DIR).
const QDEVICE_DIR: &str = "/etc/corosync/qdevice";
/// Where pmxcfs copies corosync.conf (test hook: PVE2NODE_COROSYNC_LOCAL).
const COROSYNC_LOCAL: &str = "/etc/corosync/corosync.conf";
/// pmxcfs's mount (test hook: PVE2NODE_PVE_DIR): files under it are written the /etc/pve way.
const PVE_DIR: &str = "/etc/pve";
const CA_NICK: &str = "QNet CA";
const CLUSTER_NICK: &str = "Cluster Cert";
const ERA3: &str = "this is a PVE 3 (cman era) cluster (cluster.conf): cman has no QDevice of the corosync-qdevice kind; upgrade to PVE 6 or later (corosync 3) first, or keep two-node mode with cman_two_node";

// ---------------------------------------------------------------- pure planning

/// What the user wants written.
#[derive(Debug, Clone, PartialEq)]
struct Want {
    host: String,
    algorithm: String,
    replace: bool,
    two_node: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Plan {
    text: String,
    changed: bool,
    /// The device block itself is new or different (the running daemon must restart).
    device_changed: bool,
    version_before: u64,
    version_after: u64,
    /// Node ids and names/addresses of the nodelist.
    nodes: Vec<(Option<u32>, Vec<String>)>,
}

type Edit = (Range<usize>, String);

fn splice(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len() + 256);
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

/// The parsed file with its single totem.config_version and quorum section.
struct Read<'a> {
    conf: Conf,
    quorum: usize,
    version: corosync_conf::Entry<'a>,
    before: u64,
}

fn read_conf(text: &str) -> Result<Read<'_>, String> {
    if text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('<')
    {
        return Err(ERA3.into());
    }
    let conf = corosync_conf::parse(text)
        .map_err(|e| format!("corosync syntax error at {e}; fix the file first"))?;
    conf.single_top("totem")?;
    let quorum = conf.single_top("quorum")?.ok_or(
        "it has no top-level `quorum { }` section; add `quorum { provider: corosync_votequorum }` first",
    )?;
    let versions = conf.config_versions(text);
    let version = match versions.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err("totem.config_version is missing; it must be present to be bumped".into())
        }
        [_, two, ..] => {
            return Err(format!(
                "line {}: totem.config_version is set more than once",
                two.line + 1
            ))
        }
    };
    let before: u64 = version
        .value
        .parse()
        .ok()
        .filter(|_| version.value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            format!(
                "line {}: config_version `{}` is not a whole number",
                version.line + 1,
                version.value
            )
        })?;
    Ok(Read {
        conf,
        quorum,
        version,
        before,
    })
}

/// The whole lines (with their endings) of `line`.
fn line_range(conf: &Conf, line: usize) -> Range<usize> {
    conf.lines
        .get(line)
        .map(|l| l.span.start..l.eol.end)
        .unwrap_or(0..0)
}

fn indent_unit(text: &str) -> &'static str {
    if text.contains("\n\t") {
        "\t"
    } else {
        "  "
    }
}

/// Finishes a plan: bumps the version when there are edits, re-reads the result.
fn finish(
    text: &str,
    r: &Read,
    mut edits: Vec<Edit>,
    device_changed: bool,
    nodes: Vec<(Option<u32>, Vec<String>)>,
    check: impl Fn(&str, &Conf) -> Result<(), String>,
) -> Result<Plan, String> {
    if edits.is_empty() {
        return Ok(Plan {
            text: text.to_string(),
            changed: false,
            device_changed,
            version_before: r.before,
            version_after: r.before,
            nodes,
        });
    }
    let after = r
        .before
        .checked_add(1)
        .ok_or("config_version cannot be raised any further")?;
    edits.push((r.version.value_span.clone(), after.to_string()));
    let new = splice(text, edits);
    let c = corosync_conf::parse(&new).map_err(|e| {
        format!("internal check failed: the edited text does not parse ({e}); nothing was written")
    })?;
    let v = c.config_versions(&new);
    if v.len() != 1 || v.first().map(|e| e.value) != Some(after.to_string().as_str()) {
        return Err("internal check failed: the edited text lost the bumped config_version; nothing was written".into());
    }
    check(&new, &c)
        .map_err(|e| format!("internal check failed: the edited text {e}; nothing was written"))?;
    Ok(Plan {
        text: new,
        changed: true,
        device_changed,
        version_before: r.before,
        version_after: after,
        nodes,
    })
}

fn is_member(nodes: &[(Option<u32>, Vec<String>)], host: &str) -> bool {
    let ip = |s: &str| s.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok();
    nodes.iter().flat_map(|(_, n)| n).any(|n| {
        n.eq_ignore_ascii_case(host) || matches!((ip(n), ip(host)), (Some(a), Some(b)) if a == b)
    })
}

/// state present, step config: the device block in, two_node and wait_for_all out, one write.
fn plan_present(text: &str, want: &Want) -> Result<Plan, String> {
    if want.two_node {
        return Err("two_node: true and a quorum device exclude each other (corosync refuses to start with both: `two_node and quorum device cannot be configured at the same time!`); drop two_node (it is for state absent)".into());
    }
    let r = read_conf(text)?;
    let conf = &r.conf;
    let nodes = qd::nodelist(conf, text);
    let n = nodes.len();
    if n < 2 {
        return Err(format!(
            "the nodelist has {n} node(s); a QDevice needs a cluster of two or more nodes"
        ));
    }
    if n % 2 == 1 && want.algorithm != "lms" {
        return Err(format!("the cluster has an odd number of nodes ({n}); ffsplit is for even node counts, so set algorithm: lms (as pvecm qdevice setup --force does) or change the nodelist"));
    }
    if is_member(&nodes, &want.host) {
        return Err(format!("host {} is a member of this cluster (nodelist); the qnetd host must be a third machine outside the cluster", want.host));
    }
    let existing = qd::device_conf(conf, text);
    let mut edits: Vec<Edit> = Vec::new();
    let mut device_changed = false;
    let unit = indent_unit(text);
    match &existing {
        Some(d) => {
            let same_host = d.host.as_deref() == Some(want.host.as_str());
            if !same_host && !want.replace {
                let line = conf
                    .sections
                    .get(d.section)
                    .map(|s| s.open_line + 1)
                    .unwrap_or(0);
                return Err(format!(
                    "line {line}: a quorum device with host {} is already configured; set replace: true to switch it to {} (or remove it first with state: absent)",
                    d.host.as_deref().unwrap_or("(none)"),
                    want.host
                ));
            }
            let matches = same_host
                && d.model.as_deref() == Some("net")
                && d.votes.as_deref() == Some("1")
                && d.tls.as_deref() == Some("on")
                && d.algorithm.as_deref() == Some(want.algorithm.as_str());
            if !matches {
                let s = conf
                    .sections
                    .get(d.section)
                    .ok_or("internal error: device section")?;
                let open = conf
                    .lines
                    .get(s.open_line)
                    .ok_or("internal error: device line")?;
                let indent = text.get(open.indent.clone()).unwrap_or("");
                let eol = text
                    .get(open.eol.clone())
                    .filter(|e| !e.is_empty())
                    .unwrap_or("\n");
                let a = line_range(conf, s.open_line).start;
                let b = line_range(conf, s.close_line).end;
                edits.push((
                    a..b,
                    qd::device_block(&want.host, &want.algorithm, indent, unit, eol),
                ));
                device_changed = true;
            }
        }
        None => {
            let s = conf
                .sections
                .get(r.quorum)
                .ok_or("internal error: quorum section")?;
            let open = conf
                .lines
                .get(s.open_line)
                .ok_or("internal error: quorum line")?;
            let close = conf
                .lines
                .get(s.close_line)
                .ok_or("internal error: quorum line")?;
            let child_indent = conf
                .direct_children(r.quorum)
                .first()
                .and_then(|&i| conf.lines.get(i))
                .and_then(|l| text.get(l.indent.clone()))
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!("{}{unit}", text.get(close.indent.clone()).unwrap_or(""))
                });
            let eol = text
                .get(open.eol.clone())
                .filter(|e| !e.is_empty())
                .unwrap_or("\n");
            let mut block = qd::device_block(&want.host, &want.algorithm, &child_indent, unit, eol);
            let at = open.eol.end;
            if open.eol.is_empty() {
                block.insert(0, '\n');
            }
            edits.push((at..at, block));
            device_changed = true;
        }
    }
    for key in ["two_node", "wait_for_all"] {
        for e in conf.entries(text, r.quorum, key) {
            edits.push((line_range(conf, e.line), String::new()));
        }
    }
    let (host, alg) = (want.host.clone(), want.algorithm.clone());
    finish(text, &r, edits, device_changed, nodes, move |new, c| {
        let d = qd::device_conf(c, new).ok_or("has no quorum device")?;
        if d.host.as_deref() != Some(host.as_str()) || d.algorithm.as_deref() != Some(alg.as_str())
        {
            return Err("does not hold the wanted device".into());
        }
        let q = c.quorum().ok_or("lost its quorum section")?;
        if !c.entries(new, q, "two_node").is_empty()
            || !c.entries(new, q, "wait_for_all").is_empty()
        {
            return Err("still sets two_node or wait_for_all".into());
        }
        Ok(())
    })
}

/// state absent: the device block out, optionally `two_node: 1` in, one write.
fn plan_absent(text: &str, two_node: bool) -> Result<Plan, String> {
    let r = read_conf(text)?;
    let conf = &r.conf;
    let nodes = qd::nodelist(conf, text);
    if two_node && nodes.len() != 2 {
        return Err(format!(
            "two_node: true needs exactly two nodes, the nodelist has {}",
            nodes.len()
        ));
    }
    let mut edits: Vec<Edit> = Vec::new();
    let had_device = conf.has_quorum_device();
    if let Some(dev) = had_device {
        let s = conf
            .sections
            .get(dev)
            .ok_or("internal error: device section")?;
        edits.push((
            line_range(conf, s.open_line).start..line_range(conf, s.close_line).end,
            String::new(),
        ));
    }
    // two_node goes back only together with the removal: a later run never adds it.
    if two_node && had_device.is_some() {
        let two = conf.entries(text, r.quorum, "two_node");
        match two.first() {
            Some(e) if e.value.trim() == "1" => {}
            Some(e) => edits.push((e.value_span.clone(), "1".into())),
            None => {
                let s = conf
                    .sections
                    .get(r.quorum)
                    .ok_or("internal error: quorum section")?;
                // Sorted place among the remaining keys (PVE writes them sorted), else last.
                let mut at = None;
                let mut indent = None;
                let mut eol = "\n";
                for i in conf.direct_children(r.quorum) {
                    let Some(l) = conf.lines.get(i) else { continue };
                    if let Kind::KeyValue { key, .. } = &l.kind {
                        indent.get_or_insert_with(|| {
                            text.get(l.indent.clone()).unwrap_or("").to_string()
                        });
                        eol = text
                            .get(l.eol.clone())
                            .filter(|e| !e.is_empty())
                            .unwrap_or("\n");
                        if at.is_none() && text.get(key.clone()).unwrap_or("") > "two_node" {
                            at = Some(l.span.start);
                        }
                    }
                }
                let close = conf
                    .lines
                    .get(s.close_line)
                    .ok_or("internal error: quorum line")?;
                let indent = indent.unwrap_or_else(|| {
                    format!(
                        "{}{}",
                        text.get(close.indent.clone()).unwrap_or(""),
                        indent_unit(text)
                    )
                });
                let at = at.unwrap_or(close.span.start);
                edits.push((at..at, format!("{indent}two_node: 1{eol}")));
            }
        }
    }
    finish(
        text,
        &r,
        edits,
        had_device.is_some(),
        nodes,
        move |new, c| {
            if c.has_quorum_device().is_some() {
                return Err("still has a quorum device".into());
            }
            let q = c.quorum().ok_or("lost its quorum section")?;
            if two_node
                && c.entries(new, q, "two_node")
                    .first()
                    .map(|e| e.value.trim())
                    != Some("1")
            {
                return Err("does not set two_node: 1".into());
            }
            Ok(())
        },
    )
}

/// Every node of the nodelist must be in the current membership (as pvecm qdevice requires).
fn refuse_membership(q: &Quorum, nodes: &[(Option<u32>, Vec<String>)]) -> Result<(), String> {
    if q.rows.is_empty() {
        return Err(
            "corosync-quorumtool -s lists no members; is corosync running on this node?".into(),
        );
    }
    for (id, names) in nodes {
        let Some(id) = id else { continue };
        if !q.rows.iter().any(|r| r.nodeid == *id) {
            let name = names
                .first()
                .cloned()
                .unwrap_or_else(|| format!("nodeid {id}"));
            return Err(format!(
                "node {name} (nodeid {id}) is offline; all nodes must be online to change the quorum device, so nothing was written (start it, or remove it from the cluster first)"
            ));
        }
    }
    Ok(())
}

/// The runtime state verify waits for.
fn verified(q: &Quorum, present: bool, two_node: bool, nodes: usize) -> Result<(), String> {
    let flags = q.flags.join(" ");
    if q.quorate != Some(true) {
        return Err(format!("not quorate (Flags: {flags})"));
    }
    if present {
        if !q.has_flag("Qdevice") || q.has_flag("2Node") {
            return Err(format!("Flags: {flags} (want Qdevice and no 2Node)"));
        }
        if q.expected_votes != Some(nodes as u64 + 1) {
            return Err(format!(
                "expected votes {:?}, want {}",
                q.expected_votes,
                nodes + 1
            ));
        }
        if !q.local_holds_vote() {
            return Err(format!(
                "this node does not hold the device vote (Qdevice column {:?})",
                q.local_qdevice().map(|w| w.join(","))
            ));
        }
    } else {
        if q.has_flag("Qdevice") {
            return Err(format!("Flags: {flags} (Qdevice still there)"));
        }
        if two_node && !q.has_flag("2Node") {
            return Err(format!("Flags: {flags} (want 2Node)"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- edges

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn text_of(o: &run::Output) -> String {
    format!("{} {}", o.stdout.trim(), o.stderr.trim())
        .trim()
        .to_string()
}

fn run_ok(cmd: &[String], timeout: Duration, what: &str) -> Result<run::Output, Failure> {
    let o = run::run(cmd, timeout)
        .map_err(|e| Failure::new(format!("{what}: {e} (is corosync-qdevice installed?)")))?;
    if !o.success() {
        return Err(Failure::new(format!(
            "{what}: `{}` {}: {}",
            o.cmdline(),
            o.describe(),
            text_of(&o)
        ))
        .with("cmd", o.to_json()));
    }
    Ok(o)
}

struct Env {
    qdevice_dir: PathBuf,
    local: PathBuf,
    pve_dir: PathBuf,
    timeout: Duration,
}

impl Env {
    fn nssdb(&self) -> PathBuf {
        self.qdevice_dir.join("net/nssdb")
    }
    fn has_db(&self) -> bool {
        ["cert9.db", "cert8.db"]
            .iter()
            .any(|f| self.nssdb().join(f).is_file())
    }
    /// Nicknames in the node's NSS database (empty when there is none).
    fn nicknames(&self) -> Result<Vec<String>, Failure> {
        if !self.has_db() {
            return Ok(Vec::new());
        }
        let db = self.nssdb().display().to_string();
        let o = run_ok(
            &argv(&["certutil", "-L", "-d", &db]),
            self.timeout,
            "listing the node's certificates failed",
        )?;
        Ok(qd::certutil_nicknames(&o.stdout))
    }
    /// The DER of certificate `nick` in the node's database.
    fn cert_der(&self, nick: &str) -> Option<Vec<u8>> {
        let db = self.nssdb().display().to_string();
        let o = run::run(
            &argv(&["certutil", "-L", "-d", &db, "-n", nick, "-a"]),
            self.timeout,
        )
        .ok()?;
        o.success().then(|| qd::der_from_text(&o.stdout)).flatten()
    }
}

fn temp_of(tag: &str, bytes: &[u8]) -> Result<PrivateTemp, Failure> {
    let dir = std::env::temp_dir();
    PrivateTemp::new(&dir, tag, bytes).map_err(|e| {
        Failure::new(format!(
            "cannot write a private temp file in {}: {}",
            dir.display(),
            pve2node::io_reason(&e)
        ))
    })
}

fn shown(cmd: &[String]) -> Value {
    json!(cmd)
}

/// step ca: import the qnetd CA into a new node database (or confirm it is the same CA).
fn step_ca(ctx: &Ctx, env: &Env) -> Result<Outcome, Failure> {
    if let Some(o) = planned_only(ctx, "ca_certificate", "the qnetd CA") {
        return Ok(o);
    }
    let text = ctx.params.str("ca_certificate").ok_or_else(|| {
        Failure::new(
            "step ca needs ca_certificate: the ca_certificate value the qnetd module returned",
        )
    })?;
    let der = qd::der_from_text(text).filter(|d| qd::cert_info(d).is_some()).ok_or_else(|| {
        Failure::new("ca_certificate holds no certificate (pass the qnetd module's ca_certificate: the text of qnetd-cacert.crt)")
    })?;
    let replace = ctx.params.flag("replace");
    let mut commands = Vec::new();
    if env.has_db() {
        match env.cert_der(CA_NICK) {
            Some(have) if have == der => {
                return Ok(Outcome::new(false, "the qnetd CA is already imported")
                    .with("commands", json!([])));
            }
            _ if !replace => {
                return Err(Failure::new(format!(
                    "{} already holds another qnetd CA (or none); set replace: true to start the node's certificate database over (the cluster certificate must then be imported again)",
                    env.nssdb().display()
                )));
            }
            _ => {}
        }
    }
    let cmd_shown = argv(&["corosync-qdevice-net-certutil", "-i", "-c", "CA.crt"]);
    if ctx.check_mode {
        commands.push(shown(&cmd_shown));
        return Ok(
            Outcome::new(true, "the qnetd CA would be imported (check mode)")
                .with("commands", json!(commands)),
        );
    }
    if env.has_db() || env.nssdb().exists() {
        std::fs::remove_dir_all(env.nssdb()).map_err(|e| {
            Failure::new(format!(
                "cannot remove {}: {}",
                env.nssdb().display(),
                pve2node::io_reason(&e)
            ))
        })?;
    }
    let tmp = temp_of("qnetd-cacert.crt", text.as_bytes())?;
    let cmd = argv(&[
        "corosync-qdevice-net-certutil",
        "-i",
        "-c",
        &tmp.path().display().to_string(),
    ]);
    commands.push(shown(&cmd));
    run_ok(&cmd, env.timeout, "importing the qnetd CA failed")?;
    if env.cert_der(CA_NICK).as_deref() != Some(der.as_slice()) {
        return Err(Failure::new(format!(
            "{} does not show the qnetd CA after the import",
            env.nssdb().display()
        )));
    }
    Ok(Outcome::new(true, "the qnetd CA was imported").with("commands", json!(commands)))
}

fn cluster_name(ctx: &Ctx) -> Result<String, Failure> {
    if let Some(n) = ctx.params.str("cluster_name") {
        return Ok(n.to_string());
    }
    let path = PathBuf::from(ctx.params.str_or_empty("path"));
    let text = edit::read_text(&path)
        .map_err(|e| Failure::new(format!("cluster_name not given and {e}")))?;
    let conf = corosync_conf::parse(&text)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))?;
    conf.sections_named(None, "totem")
        .into_iter()
        .flat_map(|t| conf.entries(&text, t, "cluster_name"))
        .map(|e| e.value.to_string())
        .next()
        .ok_or_else(|| {
            Failure::new(format!(
                "{} has no totem.cluster_name; set cluster_name",
                path.display()
            ))
        })
}

/// step request: the cluster certificate request (kept in the node database; reused).
fn step_request(ctx: &Ctx, env: &Env) -> Result<Outcome, Failure> {
    let name = cluster_name(ctx)?;
    if !env.has_db() && ctx.check_mode {
        // step ca before it only planned the database
        return Ok(Outcome::new(
            true,
            format!("a certificate request for cluster {name} would be created (check mode)"),
        )
        .with("request", Value::Null)
        .with("cluster_name", name.clone())
        .with(
            "commands",
            json!([["corosync-qdevice-net-certutil", "-r", "-n", name]]),
        ));
    }
    if !env.has_db() {
        return Err(Failure::new(format!(
            "{} has no certificate database; run step ca first",
            env.nssdb().display()
        )));
    }
    let crq = env.nssdb().join("qdevice-net-node.crq");
    if let Ok(der) = std::fs::read(&crq) {
        if qd::request_info(&der).is_some_and(|(cn, _)| cn.as_deref() == Some(name.as_str())) {
            return Ok(Outcome::new(
                false,
                format!("the certificate request for cluster {name} exists"),
            )
            .with("request", qd::b64_encode(&der))
            .with("cluster_name", name)
            .with("commands", json!([])));
        }
    }
    let cmd = argv(&["corosync-qdevice-net-certutil", "-r", "-n", &name]);
    if ctx.check_mode {
        return Ok(Outcome::new(
            true,
            format!("a certificate request for cluster {name} would be created (check mode)"),
        )
        .with("request", Value::Null)
        .with("cluster_name", name)
        .with("commands", json!([cmd])));
    }
    run_ok(&cmd, env.timeout, "creating the certificate request failed")?;
    let der = std::fs::read(&crq).map_err(|e| {
        Failure::new(format!(
            "{} is missing after the request: {}",
            crq.display(),
            pve2node::io_reason(&e)
        ))
    })?;
    Ok(Outcome::new(
        true,
        format!("certificate request for cluster {name} created"),
    )
    .with("request", qd::b64_encode(&der))
    .with("cluster_name", name)
    .with("commands", json!([cmd])))
}

/// step certificate: import the signed certificate, export the cluster .p12 (returned).
/// In check mode an input that an earlier step only planned (so it came back null or empty)
/// means "would be done": the chain of steps of a playbook runs through under --check.
fn planned_only(ctx: &Ctx, name: &str, what: &str) -> Option<Outcome> {
    let missing = ctx.params.str(name).is_none_or(|v| v.trim().is_empty());
    (ctx.check_mode && missing).then(|| {
        Outcome::new(
            true,
            format!("{what} would be imported (check mode; {name} is not known yet)"),
        )
        .with("commands", json!([]))
    })
}

fn step_certificate(ctx: &Ctx, env: &Env) -> Result<Outcome, Failure> {
    if let Some(o) = planned_only(ctx, "certificate", "the cluster certificate") {
        return Ok(o.with("p12", Value::Null));
    }
    let text = ctx.params.str("certificate").ok_or_else(|| {
        Failure::new(
            "step certificate needs certificate: the certificate value the qnetd module returned",
        )
    })?;
    let der = qd::der_from_text(text)
        .filter(|d| qd::cert_info(d).is_some())
        .ok_or_else(|| {
            Failure::new(
                "certificate holds no certificate (pass the qnetd module's certificate value)",
            )
        })?;
    let p12 = env.nssdb().join("qdevice-net-node.p12");
    let crq = env.nssdb().join("qdevice-net-node.crq");
    let info = qd::cert_info(&der).ok_or_else(|| Failure::new("certificate cannot be read"))?;
    match std::fs::read(&crq).ok().and_then(|r| qd::request_info(&r)) {
        Some((_, k)) if k == info.spki => {}
        Some(_) => {
            return Err(Failure::new(
                "certificate was signed for another request than this node's qdevice-net-node.crq; sign the request this node returned (step request) on the qnetd host",
            ))
        }
        None if ctx.check_mode => {
            return Ok(Outcome::new(
                true,
                "the cluster certificate would be imported (check mode; no request on this node yet)",
            )
            .with("p12", Value::Null)
            .with("commands", json!([])));
        }
        None => {
            return Err(Failure::new(format!(
                "{} is missing: run step request on this node first (the certificate must match its key)",
                crq.display()
            )))
        }
    }
    let nicks = env.nicknames()?;
    if nicks.iter().any(|n| n == CLUSTER_NICK)
        && env.cert_der(CLUSTER_NICK).as_deref() == Some(der.as_slice())
    {
        if let Ok(bytes) = std::fs::read(&p12) {
            return Ok(
                Outcome::new(false, "the cluster certificate is already imported")
                    .with("p12", qd::b64_encode(&bytes))
                    .with("commands", json!([])),
            );
        }
    }
    let cmd_shown = argv(&["corosync-qdevice-net-certutil", "-M", "-c", "cluster.crt"]);
    if ctx.check_mode {
        return Ok(Outcome::new(
            true,
            "the cluster certificate would be imported (check mode)",
        )
        .with("p12", Value::Null)
        .with("commands", json!([cmd_shown])));
    }
    let mut commands = Vec::new();
    if nicks.iter().any(|n| n == CLUSTER_NICK) {
        let db = env.nssdb().display().to_string();
        let del = argv(&["certutil", "-D", "-d", &db, "-n", CLUSTER_NICK]);
        commands.push(shown(&del));
        run_ok(
            &del,
            env.timeout,
            "removing the old cluster certificate failed",
        )?;
    }
    let tmp = temp_of("cluster.crt", &der)?;
    let cmd = argv(&[
        "corosync-qdevice-net-certutil",
        "-M",
        "-c",
        &tmp.path().display().to_string(),
    ]);
    commands.push(shown(&cmd));
    run_ok(
        &cmd,
        env.timeout,
        "importing the cluster certificate failed",
    )?;
    let bytes = std::fs::read(&p12).map_err(|e| {
        Failure::new(format!(
            "{} is missing after the import: {}",
            p12.display(),
            pve2node::io_reason(&e)
        ))
    })?;
    Ok(Outcome::new(
        true,
        "the cluster certificate was imported and exported as qdevice-net-node.p12",
    )
    .with("p12", qd::b64_encode(&bytes))
    .with("commands", json!(commands)))
}

/// step p12: import the cluster certificate and key on a node (unless it holds one).
fn step_p12(ctx: &Ctx, env: &Env) -> Result<Outcome, Failure> {
    if let Some(o) = planned_only(ctx, "p12", "the cluster certificate") {
        return Ok(o);
    }
    let text = ctx.params.str("p12").ok_or_else(|| {
        Failure::new(
            "step p12 needs p12: the p12 value the qdevice module returned at step certificate",
        )
    })?;
    let bytes = qd::b64_decode(text)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| {
            Failure::new("p12 is not base64 (pass the p12 value the qdevice module returned)")
        })?;
    if !env.has_db() && ctx.check_mode {
        return Ok(Outcome::new(
            true,
            "the cluster certificate would be imported (check mode; step ca only planned)",
        )
        .with("commands", json!([])));
    }
    if !env.has_db() {
        return Err(Failure::new(format!(
            "{} has no certificate database; run step ca first",
            env.nssdb().display()
        )));
    }
    let nicks = env.nicknames()?;
    if nicks.iter().any(|n| n == CLUSTER_NICK) && !ctx.params.flag("replace") {
        return Ok(
            Outcome::new(false, "the cluster certificate is already imported")
                .with("commands", json!([])),
        );
    }
    let cmd_shown = argv(&[
        "corosync-qdevice-net-certutil",
        "-m",
        "-c",
        "qdevice-net-node.p12",
    ]);
    if ctx.check_mode {
        return Ok(Outcome::new(
            true,
            "the cluster certificate would be imported (check mode)",
        )
        .with("commands", json!([cmd_shown])));
    }
    let tmp = temp_of("qdevice-net-node.p12", &bytes)?;
    let cmd = argv(&[
        "corosync-qdevice-net-certutil",
        "-m",
        "-c",
        &tmp.path().display().to_string(),
    ]);
    run_ok(
        &cmd,
        env.timeout,
        "importing the cluster certificate failed",
    )?;
    if !env.nicknames()?.iter().any(|n| n == CLUSTER_NICK) {
        return Err(Failure::new(format!(
            "{} does not list `{CLUSTER_NICK}` after the import",
            env.nssdb().display()
        )));
    }
    Ok(Outcome::new(true, "the cluster certificate was imported").with("commands", json!([cmd])))
}

fn quorumtool(timeout: Duration) -> Result<Quorum, String> {
    let o = run::run(
        &argv(&["corosync-quorumtool", "-s"]),
        timeout.min(Duration::from_secs(10)),
    )
    .map_err(|e| e.to_string())?;
    let q = qd::parse_quorumtool(&o.stdout);
    if q.quorate.is_none() {
        return Err(format!(
            "`corosync-quorumtool -s` {}: {}",
            o.describe(),
            text_of(&o)
        ));
    }
    Ok(q)
}

/// corosync-qdevice's own view (`corosync-qdevice-tool -sv`): None when it does not answer
/// (not running), else the qnetd host it uses (when shown).
fn qdevice_status(timeout: Duration) -> Option<Option<String>> {
    let o = run::run(
        &argv(&["corosync-qdevice-tool", "-sv"]),
        timeout.min(Duration::from_secs(5)),
    )
    .ok()
    .filter(|o| o.success())?;
    Some(qd::qdevice_tool_host(&o.stdout))
}

fn qdevice_running(timeout: Duration) -> bool {
    qdevice_status(timeout).is_some()
}

/// Writes the planned text the /etc/pve way, waits for pmxcfs's local copy, reloads.
fn write_and_reload(
    ctx: &Ctx,
    env: &Env,
    path: &Path,
    before: &str,
    plan: &Plan,
    commands: &mut Vec<Value>,
) -> Result<(), Failure> {
    let target = edit::resolve(path)?;
    let in_pve = target.starts_with(&env.pve_dir);
    let style = if in_pve {
        TempStyle::DotNew
    } else {
        TempStyle::Hidden
    };
    edit::apply(path, before, &plan.text, ctx.check_mode, false, style)?;
    let after_write = |what: String| {
        Failure::new(format!(
            "{} was changed (config_version {} -> {}) but {what}",
            path.display(),
            plan.version_before,
            plan.version_after
        ))
        .with("changed", true)
    };
    if in_pve && target != env.local {
        let r = pve2node::wait::until(env.timeout, Duration::from_millis(200), |_| {
            std::fs::read_to_string(&env.local)
                .ok()
                .and_then(|t| corosync_conf::pmxcfs_config_version(&t))
                .filter(|&v| v >= plan.version_after)
        });
        if r.is_err() {
            return Err(after_write(format!(
                "{} did not get config_version {} within {} s: pmxcfs did not copy it (is pve-cluster running, is this node quorate?)",
                env.local.display(),
                plan.version_after,
                env.timeout.as_secs()
            )));
        }
    }
    let reload = argv(&["corosync-cfgtool", "-R"]);
    commands.push(shown(&reload));
    run_ok(&reload, env.timeout, "reloading corosync failed").map_err(|f| after_write(f.msg))?;
    Ok(())
}

fn present_config(ctx: &mut Ctx, env: &Env, path: &Path) -> Result<Outcome, Failure> {
    let mut warnings = Vec::new();
    let outcome = present_config_inner(ctx, env, path, &mut warnings);
    for w in warnings {
        ctx.warn(w);
    }
    outcome
}

fn present_config_inner(
    ctx: &Ctx,
    env: &Env,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<Outcome, Failure> {
    let p = &ctx.params;
    let host = p
        .str("host")
        .filter(|h| !h.trim().is_empty())
        .ok_or_else(|| {
            Failure::new("step config needs host: the qnetd host's address (as the nodes reach it)")
        })?;
    let want = Want {
        host: host.trim().to_string(),
        algorithm: p.str_or_empty("algorithm").to_string(),
        replace: p.flag("replace"),
        two_node: p.flag("two_node"),
    };
    let before = read_file(path)?;
    let plan = plan_present(&before, &want)
        .map_err(|e| Failure::new(format!("cannot edit {}: {e}", path.display())))?;
    let start_cmd = p.list("start_command");
    let stop_cmd = p.list("stop_command");
    if start_cmd.is_empty() || stop_cmd.is_empty() {
        return Err(Failure::new(
            "start_command and stop_command must hold at least the program to run",
        ));
    }

    // Phase: preflight. Without corosync-qdevice or this node's certificates the written
    // device could never give its vote: refuse before writing (in check mode, a warning, since
    // the certificate steps before it only planned).
    let mut missing = Vec::new();
    if run::which("corosync-qdevice").is_none() {
        missing.push(
            "corosync-qdevice is not installed (apt-get install corosync-qdevice)".to_string(),
        );
    }
    let nicks = env.nicknames().unwrap_or_default();
    for (nick, step) in [(CA_NICK, "ca"), (CLUSTER_NICK, "certificate or p12")] {
        if !nicks.iter().any(|n| n == nick) {
            missing.push(format!(
                "{} does not hold `{nick}` (run step {step} first)",
                env.nssdb().display()
            ));
        }
    }
    if !missing.is_empty() {
        let m = missing.join("; ");
        if !ctx.check_mode {
            return Err(Failure::new(format!(
                "cannot set up the quorum device on this node, nothing was written: {m}"
            )));
        }
        warnings.push(format!("in a real run this would be refused: {m}"));
    }

    // Phase: membership (read-only; also in check mode).
    if plan.changed {
        let q = quorumtool(env.timeout).map_err(|e| {
            Failure::new(format!(
                "cannot edit {}: corosync does not answer ({e})",
                path.display()
            ))
        })?;
        refuse_membership(&q, &plan.nodes)
            .map_err(|e| Failure::new(format!("cannot edit {}: {e}", path.display())))?;
    }
    let status = qdevice_status(env.timeout);
    let running = status.is_some();
    // A daemon that runs with another host (the file was switched by another node) restarts too.
    let stale = status
        .flatten()
        .is_some_and(|h| !h.eq_ignore_ascii_case(&want.host));
    let restart = running && (plan.device_changed || stale);
    let start = !running || restart;
    let mut commands: Vec<Value> = Vec::new();
    let mut out = Outcome::new(plan.changed || start, "")
        .with("config_version_before", plan.version_before)
        .with("config_version_after", plan.version_after)
        .with("path", path.display().to_string());
    if plan.changed {
        out.diff = Some(edit::diff(path, &before, &plan.text));
    }
    if ctx.check_mode {
        if plan.changed {
            commands.push(shown(&argv(&["corosync-cfgtool", "-R"])));
        }
        if restart {
            commands.push(shown(&stop_cmd));
        }
        if start {
            commands.push(shown(&start_cmd));
            commands.push(shown(&argv(&["corosync-cfgtool", "-R"])));
        }
        out.msg = if out.changed {
            "would be changed (check mode)".into()
        } else {
            "the quorum device is configured and corosync-qdevice runs".into()
        };
        return Ok(out
            .with("commands", json!(commands))
            .with("quorum", Value::Null));
    }

    // Phase: write, copy, reload.
    if plan.changed {
        write_and_reload(ctx, env, path, &before, &plan, &mut commands)?;
    }
    // Phase: start corosync-qdevice once corosync answers.
    if start {
        let up = pve2node::wait::until(env.timeout, Duration::from_millis(250), |_| {
            quorumtool(env.timeout).ok()
        });
        if up.is_err() {
            return Err(Failure::new("corosync does not answer (corosync-quorumtool -s); corosync-qdevice was not started").with("changed", plan.changed));
        }
        if restart {
            commands.push(shown(&stop_cmd));
            run_ok(&stop_cmd, env.timeout, "stopping corosync-qdevice failed")
                .map_err(|f| f.with("changed", true))?;
        }
        commands.push(shown(&start_cmd));
        run_ok(&start_cmd, env.timeout, "starting corosync-qdevice failed")
            .map_err(|f| f.with("changed", true))?;
        let reload = argv(&["corosync-cfgtool", "-R"]);
        commands.push(shown(&reload));
        run_ok(&reload, env.timeout, "reloading corosync failed")
            .map_err(|f| f.with("changed", true))?;
    }
    out = out.with("commands", json!(commands));
    out.msg = if plan.changed {
        format!(
            "quorum device {} ({}) configured, config_version {} -> {}",
            want.host, want.algorithm, plan.version_before, plan.version_after
        )
    } else if start {
        "corosync-qdevice started".to_string()
    } else {
        "the quorum device is configured and corosync-qdevice runs".to_string()
    };
    // Phase: verify.
    verify_phase(ctx, env, out, true, false, plan.nodes.len())
}

fn verify_phase(
    ctx: &Ctx,
    env: &Env,
    mut out: Outcome,
    present: bool,
    two_node: bool,
    nodes: usize,
) -> Result<Outcome, Failure> {
    if !ctx.params.flag("verify") {
        return Ok(out.with("quorum", Value::Null));
    }
    let mut last = String::new();
    let r = pve2node::wait::until(
        env.timeout,
        Duration::from_millis(500),
        |_| match quorumtool(env.timeout) {
            Ok(q) => match verified(&q, present, two_node, nodes) {
                Ok(()) => Some(q),
                Err(e) => {
                    last = e;
                    None
                }
            },
            Err(e) => {
                last = e;
                None
            }
        },
    );
    match r {
        Ok((q, took)) => {
            out.set("quorum", q.to_json());
            out.set("verify_seconds", (took.as_secs_f64() * 10.0).round() / 10.0);
            Ok(out)
        }
        Err(_) => Err(Failure::new(format!(
            "{}; but the running cluster did not settle within {} s (last: {last})",
            out.msg,
            env.timeout.as_secs()
        ))
        .with("changed", out.changed)
        .with(
            "commands",
            out.data.get("commands").cloned().unwrap_or(Value::Null),
        )),
    }
}

fn absent(ctx: &Ctx, env: &Env, path: &Path) -> Result<Outcome, Failure> {
    let p = &ctx.params;
    let two_node = p.flag("two_node");
    let stop_cmd = p.list("stop_command");
    if stop_cmd.is_empty() {
        return Err(Failure::new(
            "stop_command must hold at least the program to run",
        ));
    }
    let before = read_file(path)?;
    let plan = plan_absent(&before, two_node)
        .map_err(|e| Failure::new(format!("cannot edit {}: {e}", path.display())))?;
    if plan.changed {
        let q = quorumtool(env.timeout).map_err(|e| {
            Failure::new(format!(
                "cannot edit {}: corosync does not answer ({e})",
                path.display()
            ))
        })?;
        refuse_membership(&q, &plan.nodes)
            .map_err(|e| Failure::new(format!("cannot edit {}: {e}", path.display())))?;
    }
    let running = qdevice_running(env.timeout);
    let dir_there = env.qdevice_dir.exists();
    let mut commands: Vec<Value> = Vec::new();
    let mut out = Outcome::new(plan.changed || running || dir_there, "")
        .with("config_version_before", plan.version_before)
        .with("config_version_after", plan.version_after)
        .with("path", path.display().to_string());
    if plan.changed {
        out.diff = Some(edit::diff(path, &before, &plan.text));
    }
    if ctx.check_mode {
        if plan.changed {
            commands.push(shown(&argv(&["corosync-cfgtool", "-R"])));
        }
        if running {
            commands.push(shown(&stop_cmd));
        }
        out.msg = if out.changed {
            "would be changed (check mode)".into()
        } else {
            "no quorum device".into()
        };
        return Ok(out
            .with("commands", json!(commands))
            .with("quorum", Value::Null));
    }
    if plan.changed {
        write_and_reload(ctx, env, path, &before, &plan, &mut commands)?;
    }
    if running {
        commands.push(shown(&stop_cmd));
        run_ok(&stop_cmd, env.timeout, "stopping corosync-qdevice failed")
            .map_err(|f| f.with("changed", true))?;
        let gone = pve2node::wait::until(env.timeout, Duration::from_millis(200), |_| {
            (!qdevice_running(env.timeout)).then_some(())
        });
        if gone.is_err() {
            return Err(Failure::new(format!(
                "corosync-qdevice still answers {} s after `{}`",
                env.timeout.as_secs(),
                stop_cmd.join(" ")
            ))
            .with("changed", true));
        }
    }
    if dir_there {
        std::fs::remove_dir_all(&env.qdevice_dir).map_err(|e| {
            Failure::new(format!(
                "cannot remove {}: {}",
                env.qdevice_dir.display(),
                pve2node::io_reason(&e)
            ))
            .with("changed", true)
        })?;
    }
    out = out.with("commands", json!(commands));
    out.msg = if plan.changed {
        format!(
            "quorum device removed{}, config_version {} -> {}",
            if two_node { ", two_node back" } else { "" },
            plan.version_before,
            plan.version_after
        )
    } else if out.changed {
        "corosync-qdevice stopped and its certificates removed".into()
    } else {
        "no quorum device".into()
    };
    // 2Node is expected when the file (now) sets two_node: 1, whoever wrote it.
    let want_2node = two_node
        && corosync_conf::parse(&plan.text).is_ok_and(|c| {
            c.quorum().is_some_and(|q| {
                c.entries(&plan.text, q, "two_node")
                    .first()
                    .is_some_and(|e| e.value.trim() == "1")
            })
        });
    verify_phase(ctx, env, out, false, want_2node, plan.nodes.len())
}

/// Reads corosync.conf, naming the PVE 3 era when it is a cman cluster.
fn read_file(path: &Path) -> Result<String, Failure> {
    if !path.exists() {
        let cman = path.parent().map(|d| d.join("cluster.conf"));
        if cman.as_deref().is_some_and(Path::exists) {
            return Err(Failure::new(format!(
                "cannot edit {}: {ERA3}",
                path.display()
            )));
        }
    }
    edit::read_text(path).map_err(Failure::from)
}

fn logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let timeout = ctx.params.duration("timeout");
    let hook = |n: &str, d: &str| {
        ctx.test_hook(n)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(d))
    };
    let env = Env {
        qdevice_dir: hook("PVE2NODE_QDEVICE_DIR", QDEVICE_DIR),
        local: hook("PVE2NODE_COROSYNC_LOCAL", COROSYNC_LOCAL),
        pve_dir: hook("PVE2NODE_PVE_DIR", PVE_DIR),
        timeout,
    };
    let path = PathBuf::from(ctx.params.str_or_empty("path"));
    if ctx.params.str("state") == Some("absent") {
        return absent(ctx, &env, &path);
    }
    match ctx.params.str("step") {
        Some("ca") => step_ca(ctx, &env),
        Some("request") => step_request(ctx, &env),
        Some("certificate") => step_certificate(ctx, &env),
        Some("p12") => step_p12(ctx, &env),
        _ => present_config(ctx, &env, &path),
    }
}

fn main() {
    protocol::run(&SPEC, logic)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
