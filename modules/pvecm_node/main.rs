//! pvecm_node: life after setup for one node of a (two-node) Proxmox VE cluster.
//!
//! - `state: lone` gives a node that is alone quorum, only when its peer is really down: the
//!   peer is not a member now, answers on none of its nodelist addresses, and the user confirmed
//!   it is powered off (`confirm_peer_powered_off: PEER`). Then the era's runtime mechanism:
//!   cancelling wait-for-all (cmap key `quorum.cancel_wait_for_all`, acted on at once by
//!   corosync 3.1.7) when only wait-for-all blocks, falling back to expected votes 1 when
//!   corosync ignores it; `corosync-quorumtool -e 1` without two_node; PVE 3
//!   `cman_tool expected -e 1`. Then it waits until the node is quorate and /etc/pve writable.
//! - `state: absent` removes a node for good (`pvecm delnode`), after the checks Proxmox asks
//!   for (not this node, powered off, quorum, no QDevice), cleans what Proxmox leaves (its
//!   /etc/pve/nodes directory, its ssh keys) and leaves a one-node cluster without `two_node`.
//! - `state: info` reports what an operator checks: quorum, members, flags, expected votes,
//!   QDevice, whether /etc/pve is writable, config-version drift between /etc/pve and the
//!   node's own copy.
//!
//! Shape: argspec as data; the decisions (`plan_lone`, `refuse_absent`, `plan_one_node`,
//! `strip_keys`, `strip_known_hosts`, `Runtime::from_status`) are pure functions; the rest are
//! the edges, one function per phase.

use pve2node::edit::{self, TempStyle};
use pve2node::protocol::{self, Ctx, Default as D, Elem, Failure, Outcome, Param, Spec, Type};
use pve2node::pve::cluster_conf;
use pve2node::pve::corosync_conf::{self, Conf};
use pve2node::pve::qdevice as qd;
use pve2node::pve::status::{self, Status};
use pve2node::run;
use serde_json::{json, Value};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SPEC: Spec = Spec {
    module: "pvecm_node",
    params: &[
        Param::new("state", Type::Str)
            .default(D::Str("info"))
            .choices(&["lone", "absent", "info"]),
        Param::new("peer", Type::Str),
        Param::new("confirm_peer_powered_off", Type::Str),
        Param::new("node", Type::Str),
        Param::new("node_public_key", Type::Str),
        Param::new("remove_guest_configs", Type::Bool).default(D::Bool(false)),
        Param::new("probe_command", Type::List(Elem::Str))
            .default(D::List(&["ping", "-c", "1", "-W", "1"])),
        Param::new("pve_dir", Type::Path).default(D::Str("/etc/pve")),
        Param::new("verify", Type::Bool).default(D::Bool(true)),
        Param::new("timeout", Type::Int)
            .default(D::Int(30))
            .range(1, 3600),
    ],
    mutually_exclusive: &[],
    required_if: &[],
    supports_check_mode: true,
};

/// pmxcfs's copy of corosync.conf (test hook: PVE2NODE_COROSYNC_DIR).
const COROSYNC_DIR: &str = "/etc/corosync";
/// PVE 3: cman's copy of cluster.conf (test hook: PVE2NODE_CLUSTER_DIR).
const CLUSTER_DIR: &str = "/etc/cluster";
const INVALID_PARAM: &str = "CS_ERR_INVALID_PARAM";

// ---------------------------------------------------------------- pure: configuration

/// The cluster stack of the node: corosync (PVE 4+) or cman (PVE 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    Corosync,
    Cman,
}

impl Stack {
    fn as_str(self) -> &'static str {
        match self {
            Stack::Corosync => "corosync",
            Stack::Cman => "cman",
        }
    }
}

/// One node of the nodelist: its id, name and link addresses (`ringN_addr`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    id: Option<u32>,
    name: String,
    addrs: Vec<String>,
}

impl Node {
    /// What to probe: the link addresses, or the name when there are none (PVE 3).
    fn targets(&self) -> Vec<String> {
        if self.addrs.is_empty() {
            vec![self.name.clone()]
        } else {
            self.addrs.clone()
        }
    }
    fn to_json(&self) -> Value {
        json!({"nodeid": self.id, "name": self.name, "addresses": self.addrs})
    }
}

/// corosync.conf's nodelist.
fn corosync_nodes(conf: &Conf, text: &str) -> Vec<Node> {
    let mut out = Vec::new();
    for nl in conf.sections_named(None, "nodelist") {
        for n in conf.sections_named(Some(nl), "node") {
            let one = |k: &str| conf.entries(text, n, k).first().map(|e| e.value.trim());
            let mut addrs: Vec<(u32, String)> = Vec::new();
            for i in conf.direct_children(n) {
                if let Some(corosync_conf::Kind::KeyValue { key, value, .. }) =
                    conf.lines.get(i).map(|l| &l.kind)
                {
                    let k = text.get(key.clone()).unwrap_or("");
                    if let Some(num) = k.strip_prefix("ring").and_then(|r| r.strip_suffix("_addr"))
                    {
                        let v = text.get(value.clone()).unwrap_or("").trim();
                        addrs.push((num.parse().unwrap_or(u32::MAX), v.to_string()));
                    }
                }
            }
            addrs.sort();
            let addrs: Vec<String> = addrs.into_iter().map(|(_, a)| a).collect();
            let name = one("name")
                .map(str::to_string)
                .or_else(|| addrs.first().cloned())
                .unwrap_or_default();
            out.push(Node {
                id: one("nodeid").and_then(|v| v.parse().ok()),
                name,
                addrs,
            });
        }
    }
    out
}

/// cluster.conf's clusternodes (PVE 3: no addresses, the name resolves).
fn cman_nodes(text: &str) -> Result<Vec<Node>, String> {
    let c = cluster_conf::parse(text).map_err(|e| e.to_string())?;
    Ok(c.node_votes
        .iter()
        .map(|(name, _)| Node {
            id: None,
            name: name.clone(),
            addrs: Vec::new(),
        })
        .collect())
}

/// `config_version` of a cluster.conf (`<cluster config_version="N">`).
fn cman_version(text: &str) -> Option<u64> {
    let c = cluster_conf::parse(text).ok()?;
    c.cluster.attr("config_version")?.value.trim().parse().ok()
}

fn same_name(a: &str, b: &str) -> bool {
    let short = |s: &str| s.split('.').next().unwrap_or(s).to_ascii_lowercase();
    a.eq_ignore_ascii_case(b) || short(a) == short(b)
}

fn find_node<'a>(nodes: &'a [Node], who: &str) -> Option<&'a Node> {
    nodes
        .iter()
        .find(|n| same_name(&n.name, who))
        .or_else(|| nodes.iter().find(|n| n.addrs.iter().any(|a| a == who)))
}

type Edit = (Range<usize>, String);

fn splice(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len());
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

/// A one-node cluster keeps no `two_node`: the lines go, `config_version` + 1, all other bytes
/// stay. `None` when there is nothing to change.
#[derive(Debug, Clone, PartialEq)]
struct OneNode {
    text: String,
    version_before: u64,
    version_after: u64,
}

fn plan_one_node(text: &str) -> Result<Option<OneNode>, String> {
    let conf = corosync_conf::parse(text).map_err(|e| format!("corosync syntax error at {e}"))?;
    if conf.node_count() != 1 {
        return Ok(None);
    }
    let mut edits: Vec<Edit> = Vec::new();
    for q in conf.sections_named(None, "quorum") {
        for e in conf.entries(text, q, "two_node") {
            let l = conf.lines.get(e.line).ok_or("internal error: line")?;
            edits.push((l.span.start..l.eol.end, String::new()));
        }
    }
    if edits.is_empty() {
        return Ok(None);
    }
    let versions = conf.config_versions(text);
    let [v] = versions.as_slice() else {
        return Err(format!(
            "totem.config_version appears {} times; it must be there exactly once to be bumped",
            versions.len()
        ));
    };
    let before: u64 = v
        .value
        .trim()
        .parse()
        .map_err(|_| format!("config_version `{}` is not a whole number", v.value))?;
    let after = before
        .checked_add(1)
        .ok_or("config_version is at its maximum")?;
    edits.push((v.value_span.clone(), after.to_string()));
    let new = splice(text, edits);
    let c = corosync_conf::parse(&new)
        .map_err(|e| format!("internal check failed: the edit does not parse ({e})"))?;
    if c.quorum()
        .is_some_and(|q| !c.entries(&new, q, "two_node").is_empty())
        || corosync_conf::pmxcfs_config_version(&new) != Some(after)
    {
        return Err("internal check failed: the edit kept two_node or lost config_version".into());
    }
    Ok(Some(OneNode {
        text: new,
        version_before: before,
        version_after: after,
    }))
}

/// Removes the ssh public keys of `node` from an authorized_keys text: lines whose comment is
/// `root@NODE` (as pvecm writes them), and lines holding the key blob of `public_key`.
/// Returns the new text and how many lines went.
fn strip_keys(text: &str, node: &str, public_key: Option<&str>) -> (String, usize) {
    let blob = public_key.and_then(|k| key_blob(k.trim()));
    let mut out = String::with_capacity(text.len());
    let mut removed = 0;
    for line in text.split_inclusive('\n') {
        let l = line.trim();
        let by_comment = !l.starts_with('#')
            && l.split_whitespace()
                .last()
                .is_some_and(|c| c.strip_prefix("root@").is_some_and(|h| same_name(h, node)));
        let by_key = blob.is_some_and(|b| l.split_whitespace().any(|w| w == b));
        if !l.is_empty() && (by_comment || by_key) {
            removed += 1;
        } else {
            out.push_str(line);
        }
    }
    (out, removed)
}

/// The base64 blob of an ssh public key line (`[options] TYPE BLOB [comment]`).
fn key_blob(line: &str) -> Option<&str> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let i = w
        .iter()
        .position(|t| t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-"))?;
    w.get(i + 1).copied().filter(|b| b.len() > 16)
}

/// Removes known_hosts entries for any of `names` (plain host fields, `[host]:port` too; a
/// line naming other hosts as well keeps them). Hashed (`|1|`) entries are left alone.
fn strip_known_hosts(text: &str, names: &[String]) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut removed = 0;
    for line in text.split_inclusive('\n') {
        let l = line.trim_start();
        let (marker, rest) = match l.split_once(char::is_whitespace) {
            Some((m, r)) if m.starts_with('@') => (Some(m), r.trim_start()),
            _ => (None, l),
        };
        let Some((hosts, tail)) = rest.split_once(char::is_whitespace) else {
            out.push_str(line);
            continue;
        };
        if l.starts_with('#') || hosts.starts_with('|') {
            out.push_str(line);
            continue;
        }
        let host_of = |h: &str| {
            let h = h.trim_start_matches('!');
            let h = h
                .strip_prefix('[')
                .and_then(|x| x.split_once(']'))
                .map(|(a, _)| a)
                .unwrap_or(h);
            names.iter().any(|n| same_name(n, h) || n == h)
        };
        let all: Vec<&str> = hosts.split(',').collect();
        let keep: Vec<&str> = all.iter().copied().filter(|h| !host_of(h)).collect();
        if keep.len() == all.len() {
            out.push_str(line);
            continue;
        }
        removed += 1;
        if !keep.is_empty() {
            if let Some(m) = marker {
                out.push_str(m);
                out.push(' ');
            }
            out.push_str(&keep.join(","));
            out.push(' ');
            out.push_str(tail);
        }
    }
    (out, removed)
}

// ---------------------------------------------------------------- pure: runtime

/// The quorum state of this node as its stack reports it.
#[derive(Debug, Clone, PartialEq, Default)]
struct Runtime {
    quorate: bool,
    blocked: bool,
    flags: Vec<String>,
    expected_votes: Option<u64>,
    total_votes: Option<u64>,
    quorum: Option<u64>,
    /// (nodeid, name as listed, local).
    members: Vec<(u32, String, bool)>,
    qdevice_votes: Option<u64>,
    local_name: Option<String>,
}

impl Runtime {
    fn from_status(st: &Status, nodes: &[status::Row]) -> Runtime {
        let rows = if nodes.is_empty() { &st.members } else { nodes };
        let members: Vec<(u32, String, bool)> = rows
            .iter()
            .filter(|r| r.sts.is_none_or(|c| c == 'M'))
            .map(|r| (r.nodeid, r.name.clone(), r.local))
            .collect();
        let local_name = st.local_name.clone().or_else(|| {
            members
                .iter()
                .find(|m| m.2)
                .map(|m| m.1.clone())
                .filter(|n| n.parse::<std::net::IpAddr>().is_err())
        });
        Runtime {
            quorate: st.quorate.unwrap_or(false) && !st.activity_blocked
                || (st.quorate.is_none() && st.quorum.is_some() && !st.activity_blocked),
            blocked: st.activity_blocked,
            flags: st.flags.clone().unwrap_or_default(),
            expected_votes: st.expected_votes,
            total_votes: st.total_votes,
            quorum: st.quorum,
            members,
            qdevice_votes: st.qdevice_votes,
            local_name,
        }
    }
    fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x.eq_ignore_ascii_case(f))
    }
    /// Only wait-for-all keeps this node inquorate: its votes reach the quorum.
    fn only_wait_for_all(&self) -> bool {
        self.has_flag("WaitForAll")
            && matches!((self.total_votes, self.quorum), (Some(t), Some(q)) if t >= q)
    }
    fn is_member(&self, n: &Node) -> bool {
        self.members.iter().any(|(id, name, _)| {
            n.id == Some(*id) || same_name(name, &n.name) || n.addrs.iter().any(|a| a == name)
        })
    }
    fn to_json(&self) -> Value {
        json!({
            "quorate": self.quorate,
            "activity_blocked": self.blocked,
            "flags": self.flags,
            "expected_votes": self.expected_votes,
            "total_votes": self.total_votes,
            "quorum": self.quorum,
            "qdevice_votes": self.qdevice_votes,
            "members": self.members.iter().map(|(id, name, local)| json!({"nodeid": id, "name": name, "local": local})).collect::<Vec<_>>(),
        })
    }
}

/// How state lone gives this node quorum.
#[derive(Debug, Clone, PartialEq)]
enum Lone {
    Already,
    Run {
        mechanism: &'static str,
        argv: Vec<String>,
        /// Run when corosync does not act on `argv` (a corosync without the cmap key).
        fallback: Option<Vec<String>>,
    },
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The peer's reachability: (address, answered).
type Probes = [(String, bool)];

/// state lone, decided: refuses while the peer is a member or answers on any address.
fn plan_lone(stack: Stack, peer: &Node, rt: &Runtime, probes: &Probes) -> Result<Lone, String> {
    if rt.quorate {
        return Ok(Lone::Already);
    }
    if rt.is_member(peer) {
        return Err(format!(
            "peer {} is a member of the running cluster right now, so it is not powered off; nothing was changed",
            peer.name
        ));
    }
    let up: Vec<&str> = probes
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(a, _)| a.as_str())
        .collect();
    if !up.is_empty() {
        return Err(format!(
            "peer {} answers on {}, so it is not powered off; power it off (or cut it off) first, nothing was changed",
            peer.name,
            up.join(", ")
        ));
    }
    let expected = argv(&["corosync-quorumtool", "-e", "1"]);
    Ok(match stack {
        Stack::Cman => Lone::Run {
            mechanism: "expected_votes",
            argv: argv(&["cman_tool", "expected", "-e", "1"]),
            fallback: None,
        },
        Stack::Corosync if rt.only_wait_for_all() => Lone::Run {
            mechanism: "cancel_wait_for_all",
            argv: argv(&[
                "corosync-cmapctl",
                "-s",
                "quorum.cancel_wait_for_all",
                "u8",
                "1",
            ]),
            fallback: Some(expected),
        },
        Stack::Corosync => Lone::Run {
            mechanism: "expected_votes",
            argv: expected,
            fallback: None,
        },
    })
}

/// What state absent needs before it removes anything.
struct AbsentFacts<'a> {
    node: &'a str,
    local_name: Option<&'a str>,
    member: bool,
    reachable: Vec<String>,
    quorate: bool,
    qdevice: bool,
}

fn refuse_absent(f: &AbsentFacts) -> Result<(), String> {
    if f.local_name.is_some_and(|l| same_name(l, f.node)) {
        return Err(format!(
            "node {} is the node this runs on; run state=absent on a surviving member, naming the node to remove",
            f.node
        ));
    }
    if f.member {
        return Err(format!(
            "node {} is still a member of the running cluster; power it off first (Proxmox: a removed node must never come back as it was), nothing was changed",
            f.node
        ));
    }
    if !f.reachable.is_empty() {
        return Err(format!(
            "node {} still answers on {}; power it off first, nothing was changed",
            f.node,
            f.reachable.join(", ")
        ));
    }
    if f.qdevice {
        return Err("a QDevice is configured (quorum.device); Proxmox requires removing it before removing a node: run the qdevice module with state=absent first, nothing was changed".into());
    }
    if !f.quorate {
        return Err(format!(
            "this node is not quorate, so /etc/pve is read-only and node {} cannot be removed; run state=lone (peer={}, confirm_peer_powered_off={}) first",
            f.node, f.node, f.node
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- edges

struct Env {
    pve_dir: PathBuf,
    corosync_dir: PathBuf,
    cluster_dir: PathBuf,
    timeout: Duration,
    hostname: Option<String>,
}

impl Env {
    fn corosync_conf(&self) -> PathBuf {
        self.pve_dir.join("corosync.conf")
    }
    fn cluster_conf(&self) -> PathBuf {
        self.pve_dir.join("cluster.conf")
    }
    fn stack(&self) -> Result<Stack, Failure> {
        if self.corosync_conf().exists() {
            Ok(Stack::Corosync)
        } else if self.cluster_conf().exists() {
            Ok(Stack::Cman)
        } else {
            Err(Failure::new(format!(
                "neither {} nor {} exists: this node is not in a cluster (or pve_dir is wrong)",
                self.corosync_conf().display(),
                self.cluster_conf().display()
            )))
        }
    }
    /// The nodelist and the config text it came from.
    fn nodes(&self, stack: Stack) -> Result<(Vec<Node>, String), Failure> {
        match stack {
            Stack::Corosync => {
                let p = self.corosync_conf();
                let text = edit::read_text(&p)?;
                let conf = corosync_conf::parse(&text).map_err(|e| {
                    Failure::new(format!("cannot read {}: syntax error at {e}", p.display()))
                })?;
                Ok((corosync_nodes(&conf, &text), text))
            }
            Stack::Cman => {
                let p = self.cluster_conf();
                let text = edit::read_text(&p)?;
                let nodes = cman_nodes(&text)
                    .map_err(|e| Failure::new(format!("cannot read {}: {e}", p.display())))?;
                Ok((nodes, text))
            }
        }
    }
    fn short(&self) -> Duration {
        self.timeout.min(Duration::from_secs(10))
    }
}

fn text_of(o: &run::Output) -> String {
    format!("{} {}", o.stdout.trim(), o.stderr.trim())
        .trim()
        .to_string()
}

/// The stack's quorum view; Err when it does not answer.
fn runtime(env: &Env, stack: Stack) -> Result<Runtime, String> {
    let (cmd, nodes_cmd) = match stack {
        Stack::Corosync => (argv(&["corosync-quorumtool", "-s"]), None),
        Stack::Cman => (
            argv(&["cman_tool", "status"]),
            Some(argv(&["cman_tool", "nodes"])),
        ),
    };
    let o = run::run(&cmd, env.short()).map_err(|e| e.to_string())?;
    let st = status::parse_status(&o.stdout);
    if !st.has_quorum_info() {
        return Err(format!(
            "`{}` {}: {}",
            o.cmdline(),
            o.describe(),
            text_of(&o)
        ));
    }
    let rows = match nodes_cmd {
        Some(c) => run::run(&c, env.short())
            .ok()
            .map(|o| status::parse_nodes(&o.stdout))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Runtime::from_status(&st, &rows))
}

/// Probes every address with `probe_command ADDR` (argv, bounded): (address, answered).
fn probe_all(cmd: &[String], targets: &[String], timeout: Duration) -> Vec<(String, bool)> {
    targets
        .iter()
        .map(|a| {
            let mut c = cmd.to_vec();
            c.push(a.clone());
            let ok = run::run(&c, timeout).is_ok_and(|o| o.success());
            (a.clone(), ok)
        })
        .collect()
}

/// Whether /etc/pve takes writes (pmxcfs quorum) and how that was seen.
fn pve_writable(dir: &Path) -> (Option<bool>, &'static str) {
    pve2node::pve::pmxcfs::writable(dir)
}

fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim();
    (!h.is_empty()).then(|| h.split('.').next().unwrap_or(h).to_string())
}

fn local_name(env: &Env, rt: Option<&Runtime>) -> Option<String> {
    rt.and_then(|r| r.local_name.clone())
        .or_else(|| env.hostname.clone())
}

// ---------------------------------------------------------------- state lone

/// Runs one quorum command of state lone; CS_ERR_INVALID_PARAM (another node still counts) is
/// a refusal.
fn run_lone(cmd: &[String], env: &Env, peer: &str) -> Result<(), Failure> {
    let o = run::run(cmd, env.short())
        .map_err(|e| Failure::new(format!("`{}` could not run: {e}", cmd.join(" "))))?;
    let out_text = text_of(&o);
    if out_text.contains(INVALID_PARAM) {
        return Err(Failure::new(format!(
            "`{}` was refused by the cluster stack ({out_text}): another node still counts as online, so peer {peer} is not really down; nothing was changed",
            o.cmdline()
        ))
        .with("cmd", o.to_json()));
    }
    if !o.success() {
        return Err(
            Failure::new(format!("`{}` {}: {out_text}", o.cmdline(), o.describe()))
                .with("cmd", o.to_json()),
        );
    }
    Ok(())
}

fn lone(ctx: &Ctx, env: &Env) -> Result<Outcome, Failure> {
    let p = &ctx.params;
    let peer_name = p.str("peer").map(str::trim).filter(|s| !s.is_empty());
    let Some(peer_name) = peer_name else {
        return Err(Failure::new(
            "state=lone needs peer: the peer's node name as in the corosync nodelist",
        ));
    };
    let confirm = p.str("confirm_peer_powered_off").map(str::trim);
    if !confirm.is_some_and(|c| same_name(c, peer_name)) {
        return Err(Failure::new(format!(
            "state=lone needs confirm_peer_powered_off: {peer_name} (you state that {peer_name} is powered off); got {}",
            confirm.map(|c| format!("`{c}`")).unwrap_or_else(|| "nothing".into())
        )));
    }
    let probe = p.list("probe_command");
    if probe.is_empty() {
        return Err(Failure::new(
            "probe_command must hold at least the program to run (default: ping -c 1 -W 1)",
        ));
    }
    let stack = env.stack()?;
    let (nodes, _) = env.nodes(stack)?;
    let peer = find_node(&nodes, peer_name).cloned().ok_or_else(|| {
        Failure::new(format!(
            "peer {peer_name} is not in the cluster's nodelist ({}); give its node name",
            nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if nodes.len() > 2 {
        return Err(Failure::new(format!(
            "state=lone is for a two-node cluster and the nodelist has {} nodes ({}); with more nodes a lone quorum could split the cluster, so nothing was changed",
            nodes.len(),
            nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let rt = runtime(env, stack).map_err(|e| {
        Failure::new(format!(
            "the cluster stack ({}) does not answer on this node: {e}",
            stack.as_str()
        ))
    })?;
    if local_name(env, Some(&rt)).is_some_and(|l| same_name(&l, &peer.name)) {
        return Err(Failure::new(format!(
            "peer {} is this node; name the other node (the one that is powered off)",
            peer.name
        )));
    }
    let base = |changed: bool, msg: String| {
        Outcome::new(changed, msg)
            .with("peer", peer.to_json())
            .with("stack", stack.as_str())
            .with("before", rt.to_json())
    };
    if rt.quorate {
        let (w, how) = pve_writable(&env.pve_dir);
        return Ok(
            base(false, "this node is already quorate; nothing to do".into())
                .with("commands", json!([]))
                .with("pve_writable", w)
                .with("pve_writable_from", how),
        );
    }
    // Phase: the peer must be really down (read-only; also in check mode).
    let probes = probe_all(&probe, &peer.targets(), env.short());
    let plan = plan_lone(stack, &peer, &rt, &probes).map_err(|e| {
        Failure::new(e).with(
            "probes",
            json!(probes
                .iter()
                .map(|(a, ok)| json!({"address": a, "answered": ok}))
                .collect::<Vec<_>>()),
        )
    })?;
    let Lone::Run {
        mechanism,
        argv: cmd,
        fallback,
    } = plan
    else {
        return Ok(base(
            false,
            "this node is already quorate; nothing to do".into(),
        ));
    };
    let probes_json = json!(probes
        .iter()
        .map(|(a, ok)| json!({"address": a, "answered": ok}))
        .collect::<Vec<_>>());
    if ctx.check_mode {
        let mut planned = vec![cmd.clone()];
        planned.extend(fallback.clone());
        return Ok(base(
            true,
            format!(
                "peer {} is down (not a member, no answer on {}); would run `{}`{} (check mode)",
                peer.name,
                peer.targets().join(", "),
                cmd.join(" "),
                fallback
                    .as_ref()
                    .map(|f| format!(", or `{}` if corosync does not act on it", f.join(" ")))
                    .unwrap_or_default()
            ),
        )
        .with("mechanism", mechanism)
        .with("commands", json!(planned))
        .with("probes", probes_json));
    }
    // Phase: give quorum.
    let mut ran = vec![cmd.clone()];
    run_lone(&cmd, env, &peer.name)?;
    let mut mechanism = mechanism;
    if let Some(fb) = fallback {
        // corosync consumes the key (reads back 0) and is quorate at once; a corosync without
        // it keeps the value and stays blocked: then expected votes.
        let acted = pve2node::wait::until(
            env.timeout.min(Duration::from_secs(5)),
            Duration::from_millis(200),
            |_| runtime(env, stack).ok().filter(|r| r.quorate),
        );
        if acted.is_err() {
            let _ = run::run(
                &argv(&["corosync-cmapctl", "-d", "quorum.cancel_wait_for_all"]),
                env.short(),
            );
            run_lone(&fb, env, &peer.name)
                .map_err(|f| f.with("commands", json!(ran.clone())).with("changed", true))?;
            ran.push(fb.clone());
            mechanism = "expected_votes";
        }
    }
    let last_cmd = ran.last().cloned().unwrap_or_default();
    let mut out = base(
        true,
        format!(
            "peer {} is down; this node was given quorum with `{}` (runtime only: it ends when the peer rejoins or this node restarts corosync)",
            peer.name,
            last_cmd.join(" ")
        ),
    )
    .with("mechanism", mechanism)
    .with("commands", json!(ran))
    .with("probes", probes_json);
    // Phase: verify quorate and /etc/pve writable.
    if !ctx.params.flag("verify") {
        return Ok(out);
    }
    let mut last = String::new();
    let r = pve2node::wait::until(env.timeout, Duration::from_millis(250), |_| {
        match runtime(env, stack) {
            Ok(rt) if rt.quorate => match pve_writable(&env.pve_dir) {
                (Some(false), how) => {
                    last = format!(
                        "quorate, but {} is read-only ({how})",
                        env.pve_dir.display()
                    );
                    None
                }
                (w, how) => Some((rt, w, how)),
            },
            Ok(rt) => {
                last = format!("not quorate (Flags: {})", rt.flags.join(" "));
                None
            }
            Err(e) => {
                last = e;
                None
            }
        }
    });
    match r {
        Ok(((rt, w, how), took)) => {
            out.set("after", rt.to_json());
            out.set("pve_writable", w);
            out.set("pve_writable_from", how);
            out.set("verify_seconds", (took.as_secs_f64() * 10.0).round() / 10.0);
            Ok(out)
        }
        Err(_) => Err(Failure::new(format!(
            "`{}` ran, but this node was not quorate with a writable {} within {} s (last: {last})",
            last_cmd.join(" "),
            env.pve_dir.display(),
            env.timeout.as_secs()
        ))
        .with("changed", true)),
    }
}

// ---------------------------------------------------------------- state absent

/// What Proxmox leaves behind for a removed node.
struct Leftovers {
    node_dir: Option<PathBuf>,
    authorized_keys: Option<(PathBuf, String, String, usize)>,
    known_hosts: Option<(PathBuf, String, String, usize)>,
}

impl Leftovers {
    fn any(&self) -> bool {
        self.node_dir.is_some() || self.authorized_keys.is_some() || self.known_hosts.is_some()
    }
    fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(d) = &self.node_dir {
            v.push(format!("directory {}", d.display()));
        }
        if let Some((p, _, _, n)) = &self.authorized_keys {
            v.push(format!("{n} key line(s) in {}", p.display()));
        }
        if let Some((p, _, _, n)) = &self.known_hosts {
            v.push(format!("{n} entry(ies) in {}", p.display()));
        }
        v
    }
}

/// Guest configurations (`qemu-server/*.conf`, `lxc/*.conf`, PVE 3 `openvz/*.conf`) under
/// /etc/pve/nodes/NODE, as `qemu-server/100.conf`, sorted.
fn guest_configs(env: &Env, node: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kind in ["qemu-server", "lxc", "openvz"] {
        let Ok(rd) = std::fs::read_dir(env.pve_dir.join("nodes").join(node).join(kind)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                out.push(format!("{kind}/{name}"));
            }
        }
    }
    out.sort();
    out
}

fn leftovers(env: &Env, node: &str, names: &[String], key: Option<&str>) -> Leftovers {
    let dir = env.pve_dir.join("nodes").join(node);
    let node_dir = dir.is_dir().then_some(dir);
    let file = |rel: &str, f: &dyn Fn(&str) -> (String, usize)| {
        let p = env.pve_dir.join(rel);
        let text = std::fs::read_to_string(&p).ok()?;
        let (new, n) = f(&text);
        (n > 0).then_some((p, text, new, n))
    };
    Leftovers {
        node_dir,
        authorized_keys: file("priv/authorized_keys", &|t| strip_keys(t, node, key)),
        known_hosts: file("priv/known_hosts", &|t| strip_known_hosts(t, names)),
    }
}

fn clean(ctx: &Ctx, l: &Leftovers) -> Result<Vec<String>, Failure> {
    let mut done = Vec::new();
    if ctx.check_mode {
        return Ok(l.describe());
    }
    if let Some(d) = &l.node_dir {
        std::fs::remove_dir_all(d).map_err(|e| {
            Failure::new(format!(
                "cannot remove {}: {}",
                d.display(),
                pve2node::io_reason(&e)
            ))
            .with("changed", true)
        })?;
        done.push(d.display().to_string());
    }
    for (p, before, after, _) in [&l.authorized_keys, &l.known_hosts].into_iter().flatten() {
        edit::apply(p, before, after, ctx.check_mode, false, TempStyle::DotNew)
            .map_err(|e| Failure::from(e).with("changed", true))?;
        done.push(p.display().to_string());
    }
    Ok(done)
}

fn absent(ctx: &Ctx, env: &Env, warnings: &mut Vec<String>) -> Result<Outcome, Failure> {
    let p = &ctx.params;
    let Some(node) = p.str("node").map(str::trim).filter(|s| !s.is_empty()) else {
        return Err(Failure::new(
            "state=absent needs node: the name of the node to remove, as in the nodelist",
        ));
    };
    let key = p.str("node_public_key").filter(|k| !k.trim().is_empty());
    if key.is_some_and(|k| key_blob(k.trim()).is_none()) {
        return Err(Failure::new(
            "node_public_key is not an ssh public key line (`ssh-rsa AAAA... root@NAME`)",
        ));
    }
    let probe = p.list("probe_command");
    if probe.is_empty() {
        return Err(Failure::new(
            "probe_command must hold at least the program to run (default: ping -c 1 -W 1)",
        ));
    }
    let stack = env.stack()?;
    let (nodes, text) = env.nodes(stack)?;
    let target = find_node(&nodes, node).cloned();
    // Phase: guests. Removing the node's directory deletes the configurations of its guests:
    // only when asked (they can be moved to a surviving node instead).
    let dir_name = target.as_ref().map_or(node, |t| t.name.as_str());
    let guests = guest_configs(env, dir_name);
    if !guests.is_empty() && !p.flag("remove_guest_configs") {
        return Err(Failure::new(format!(
            "{} still holds guest configurations ({}); move them to a surviving node first (e.g. mv {}/nodes/{dir_name}/{} {}/nodes/SURVIVOR/{}) or set remove_guest_configs: true to delete them with the node; nothing was changed",
            env.pve_dir.join("nodes").join(dir_name).display(),
            guests.join(", "),
            env.pve_dir.display(),
            guests[0],
            env.pve_dir.display(),
            guests[0]
        ))
        .with("guest_configs", json!(guests)));
    }
    let mut names = vec![node.to_string()];
    if let Some(t) = &target {
        names.extend(t.addrs.iter().cloned());
    }
    let Some(target) = target else {
        // Already removed: what Proxmox (or an interrupted run) leaves may remain.
        let left = leftovers(env, node, &names, key);
        let (conf_change, diff) = one_node_phase(ctx, env, stack, &nodes, &text, warnings)?;
        if !left.any() && conf_change.is_null() {
            return Ok(Outcome::new(
                false,
                format!("node {node} is not in the cluster and nothing of it is left"),
            )
            .with("commands", json!([])));
        }
        let mut what = left.describe();
        if !conf_change.is_null() {
            what.push("two_node from corosync.conf (one node left)".into());
        }
        let done = clean(ctx, &left)?;
        let mut out = Outcome::new(
            true,
            format!(
                "node {node} was not in the nodelist; {} {}",
                if ctx.check_mode {
                    "would remove"
                } else {
                    "removed"
                },
                what.join(", ")
            ),
        )
        .with("cleaned", json!(done))
        .with("corosync_conf", conf_change)
        .with("commands", json!([]));
        out.diff = diff;
        return Ok(out);
    };
    // Phase: preflight (read-only; also in check mode).
    let rt = runtime(env, stack).map_err(|e| {
        Failure::new(format!(
            "the cluster stack ({}) does not answer on this node: {e}",
            stack.as_str()
        ))
    })?;
    let local = local_name(env, Some(&rt));
    let is_self = local.as_deref().is_some_and(|l| same_name(l, node));
    let probes = if is_self || rt.is_member(&target) {
        Vec::new()
    } else {
        probe_all(&probe, &target.targets(), env.short())
    };
    let qdevice = stack == Stack::Corosync
        && corosync_conf::parse(&text).is_ok_and(|c| c.has_quorum_device().is_some());
    refuse_absent(&AbsentFacts {
        node,
        local_name: local.as_deref(),
        member: rt.is_member(&target),
        reachable: probes
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(a, _)| a.clone())
            .collect(),
        quorate: rt.quorate,
        qdevice: qdevice || rt.has_flag("Qdevice"),
    })
    .map_err(Failure::new)?;
    let delnode = argv(&["pvecm", "delnode", &target.name]);
    let two_node_after = nodes.len() == 2
        && stack == Stack::Corosync
        && corosync_conf::parse(&text).is_ok_and(|c| {
            c.quorum()
                .is_some_and(|q| !c.entries(&text, q, "two_node").is_empty())
        });
    if ctx.check_mode {
        let left = leftovers(env, &target.name, &names, key);
        let mut msg = format!("would run `{}`", delnode.join(" "));
        let what = left.describe();
        if !what.is_empty() {
            msg.push_str(&format!(", remove {}", what.join(", ")));
        }
        if two_node_after {
            msg.push_str(", and remove two_node from corosync.conf (one node left)");
        }
        return Ok(Outcome::new(true, format!("{msg} (check mode)"))
            .with("commands", json!([delnode]))
            .with("node", target.to_json()));
    }
    // Phase: pvecm delnode, checked by exit status AND by the nodelist (PVE 5+ exits 0).
    let o = run::run(&delnode, env.timeout)
        .map_err(|e| Failure::new(format!("`{}` could not run: {e}", delnode.join(" "))))?;
    let (nodes2, text2) = env.nodes(stack).map_err(|f| f.with("changed", true))?;
    let still = find_node(&nodes2, &target.name).is_some();
    if !o.success() || still {
        let msg = if still {
            format!(
                "`{}` {} but node {} is still in the nodelist (a PVE 5+ task exits 0 on failure), so nothing was cleaned: {}",
                o.cmdline(),
                o.describe(),
                target.name,
                text_of(&o)
            )
        } else {
            format!(
                "`{}` {} although node {} is no longer in the nodelist; check the cluster and run again to clean up: {}",
                o.cmdline(),
                o.describe(),
                target.name,
                text_of(&o)
            )
        };
        return Err(Failure::new(msg)
            .with("cmd", o.to_json())
            .with("changed", !still));
    }
    // Phase: a one-node cluster keeps no two_node.
    let (conf_change, diff) = one_node_phase(ctx, env, stack, &nodes2, &text2, warnings)
        .map_err(|f| f.with("changed", true))?;
    // Phase: clean what Proxmox leaves.
    let left = leftovers(env, &target.name, &names, key);
    let what = left.describe();
    let cleaned = clean(ctx, &left)?;
    let mut out = Outcome::new(
        true,
        format!(
            "node {} removed from the cluster ({} node(s) left){}{}",
            target.name,
            nodes2.len(),
            if what.is_empty() {
                String::new()
            } else {
                format!("; removed {}", what.join(", "))
            },
            if conf_change.is_null() {
                ""
            } else {
                "; two_node removed from corosync.conf"
            }
        ),
    )
    .with("commands", json!([delnode]))
    .with("node", target.to_json())
    .with("cleaned", json!(cleaned))
    .with("corosync_conf", conf_change)
    .with(
        "nodelist",
        json!(nodes2.iter().map(Node::to_json).collect::<Vec<_>>()),
    )
    .with("delnode_output", text_of(&o));
    out.diff = diff;
    Ok(out)
}

/// A one-node cluster keeps no `two_node`: corosync.conf edited (config_version + 1), copied
/// by pmxcfs, reloaded; PVE 3: a warning (cman_two_node owns cluster.conf's two_node).
fn one_node_phase(
    ctx: &Ctx,
    env: &Env,
    stack: Stack,
    nodes: &[Node],
    text: &str,
    warnings: &mut Vec<String>,
) -> Result<(Value, Option<protocol::Diff>), Failure> {
    match stack {
        Stack::Corosync => {
            let path = env.corosync_conf();
            let Some(plan) = plan_one_node(text).map_err(|e| {
                Failure::new(format!(
                    "cannot remove two_node from {}: {e}",
                    path.display()
                ))
            })?
            else {
                return Ok((Value::Null, None));
            };
            edit::apply(
                &path,
                text,
                &plan.text,
                ctx.check_mode,
                false,
                TempStyle::DotNew,
            )?;
            let change = json!({"removed": "two_node", "config_version_before": plan.version_before, "config_version_after": plan.version_after});
            if !ctx.check_mode {
                if let Some(w) = wait_local_copy(env, plan.version_after) {
                    warnings.push(w);
                }
            }
            Ok((change, Some(edit::diff(&path, text, &plan.text))))
        }
        Stack::Cman => {
            if nodes.len() == 1 && text.contains("two_node=\"1\"") {
                warnings.push(format!(
                    "{} still sets two_node=\"1\" with one node left; run cman_two_node with state=absent",
                    env.cluster_conf().display()
                ));
            }
            Ok((Value::Null, None))
        }
    }
}

/// Waits (bounded) for pmxcfs to copy the written corosync.conf to /etc/corosync and reloads
/// corosync; a warning text when that did not happen.
fn wait_local_copy(env: &Env, version: u64) -> Option<String> {
    let local = env.corosync_dir.join("corosync.conf");
    let r = pve2node::wait::until(env.timeout, Duration::from_millis(200), |_| {
        std::fs::read_to_string(&local)
            .ok()
            .and_then(|t| corosync_conf::pmxcfs_config_version(&t))
            .filter(|&v| v >= version)
    });
    if r.is_err() {
        return Some(format!(
            "{} did not get config_version {version} within {} s (pmxcfs copies it; is pve-cluster running?)",
            local.display(),
            env.timeout.as_secs()
        ));
    }
    match run::run(&argv(&["corosync-cfgtool", "-R"]), env.short()) {
        Ok(o) if o.success() => None,
        Ok(o) => Some(format!(
            "`corosync-cfgtool -R` {}: {}",
            o.describe(),
            text_of(&o)
        )),
        Err(e) => Some(format!("`corosync-cfgtool -R` could not run: {e}")),
    }
}

// ---------------------------------------------------------------- state info

fn info(env: &Env) -> Result<Outcome, Failure> {
    let stack = env.stack()?;
    let (nodes, text) = env.nodes(stack)?;
    let (w, how) = pve_writable(&env.pve_dir);
    let (shared_path, local_path, shared_v, local_v) = match stack {
        Stack::Corosync => {
            let l = env.corosync_dir.join("corosync.conf");
            let lv = std::fs::read_to_string(&l)
                .ok()
                .and_then(|t| corosync_conf::pmxcfs_config_version(&t));
            (
                env.corosync_conf(),
                l,
                corosync_conf::pmxcfs_config_version(&text),
                lv,
            )
        }
        Stack::Cman => {
            let l = env.cluster_dir.join("cluster.conf");
            let lv = std::fs::read_to_string(&l)
                .ok()
                .and_then(|t| cman_version(&t));
            (env.cluster_conf(), l, cman_version(&text), lv)
        }
    };
    let drift = shared_v != local_v;
    let device = match stack {
        Stack::Corosync => corosync_conf::parse(&text)
            .ok()
            .and_then(|c| qd::device_conf(&c, &text)),
        Stack::Cman => None,
    };
    let qdevice_conf = device.is_some();
    let rt = runtime(env, stack);
    let running = rt.is_ok();
    let rt_json = match &rt {
        Ok(r) => r.to_json(),
        Err(_) => Value::Null,
    };
    let (quorate, members) = match &rt {
        Ok(r) => (Some(r.quorate), r.members.len()),
        Err(_) => (None, 0),
    };
    let mut msg = format!(
        "{} node(s) in the nodelist, {}; /etc/pve {}",
        nodes.len(),
        match quorate {
            Some(true) => format!("quorate with {members} member(s)"),
            Some(false) => format!("NOT quorate ({members} member(s))"),
            None => format!("{} does not answer", stack.as_str()),
        },
        match w {
            Some(true) => "writable",
            Some(false) => "read-only",
            None => "missing",
        }
    );
    if drift {
        msg.push_str(&format!(
            "; config_version drift: {} has {:?}, {} has {:?}",
            shared_path.display(),
            shared_v,
            local_path.display(),
            local_v
        ));
    }
    Ok(Outcome::new(false, msg)
        .with("stack", stack.as_str())
        .with("running", running)
        .with("quorate", quorate)
        .with("runtime", rt_json)
        .with(
            "nodelist",
            json!(nodes.iter().map(Node::to_json).collect::<Vec<_>>()),
        )
        .with("pve_writable", w)
        .with("pve_writable_from", how)
        .with(
            "config_version",
            json!({
                "shared": {"path": shared_path.display().to_string(), "version": shared_v},
                "local": {"path": local_path.display().to_string(), "version": local_v},
                "drift": drift,
            }),
        )
        .with(
            "qdevice",
            json!({
                "configured": qdevice_conf,
                "model": device.as_ref().and_then(|d| d.model.clone()),
                "host": device.as_ref().and_then(|d| d.host.clone()),
                "algorithm": device.as_ref().and_then(|d| d.algorithm.clone()),
                "in_runtime": rt.as_ref().is_ok_and(|r| r.has_flag("Qdevice") || r.qdevice_votes.is_some()),
                "votes": rt.as_ref().ok().and_then(|r| r.qdevice_votes),
            }),
        )
        .with(
            "local_node",
            local_name(env, rt.as_ref().ok()).map(Value::from).unwrap_or(Value::Null),
        ))
}

fn logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let timeout = ctx.params.duration("timeout");
    let hook = |n: &str, d: &str| {
        ctx.test_hook(n)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(d))
    };
    let env = Env {
        pve_dir: match ctx.test_hook("PVE2NODE_PVE_DIR") {
            Some(d) if ctx.params.str("pve_dir") == Some("/etc/pve") => PathBuf::from(d),
            _ => PathBuf::from(ctx.params.str_or_empty("pve_dir")),
        },
        corosync_dir: hook("PVE2NODE_COROSYNC_DIR", COROSYNC_DIR),
        cluster_dir: hook("PVE2NODE_CLUSTER_DIR", CLUSTER_DIR),
        timeout,
        hostname: ctx.test_hook("PVE2NODE_HOSTNAME").or_else(hostname),
    };
    let mut warnings = Vec::new();
    let r = match ctx.params.str("state") {
        Some("lone") => lone(ctx, &env),
        Some("absent") => absent(ctx, &env, &mut warnings),
        _ => info(&env),
    };
    for w in warnings {
        ctx.warn(w);
    }
    r
}

fn main() {
    protocol::run(&SPEC, logic)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
