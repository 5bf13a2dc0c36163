//! Parsers for the cluster status outputs of every Proxmox VE era, merged into one
//! [`ClusterFacts`]:
//! - PVE 3 (cman): `pvecm status` = `cman_tool status`, `pvecm nodes` = `cman_tool nodes`.
//! - PVE 4–5 (corosync 2): `pvecm status` = `corosync-quorumtool -siH`,
//!   `pvecm nodes` = `corosync-quorumtool -l`.
//! - PVE 6–9 (corosync 3): as corosync 2, with a leading "Cluster information" block from
//!   pve-cluster 6.0-8 on.
//!
//! Membership in `status` is by address (`-i`), in `nodes` by name; both are merged by node
//! id. All functions are pure and total: any input text gives a value, never a panic. Lines
//! may be missing, extra, reordered or carry trailing spaces; ids may be hex or decimal.

use serde_json::{json, Value};
use std::net::IpAddr;

#[cfg(test)]
mod tests;

/// The cluster stack generation of a Proxmox VE release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// PVE 1–3: cman + corosync 1, cluster.conf.
    Cman,
    /// PVE 4–5: corosync 2, corosync.conf, ring0_addr.
    Corosync2,
    /// PVE 6+: corosync 3 (knet), links.
    Corosync3,
}

impl Era {
    pub fn as_str(self) -> &'static str {
        match self {
            Era::Cman => "cman",
            Era::Corosync2 => "corosync2",
            Era::Corosync3 => "corosync3",
        }
    }
    pub fn from_name(s: &str) -> Option<Era> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cman" => Some(Era::Cman),
            "corosync2" => Some(Era::Corosync2),
            "corosync3" => Some(Era::Corosync3),
            _ => None,
        }
    }
    /// The era of a Proxmox VE major release.
    pub fn from_pve_major(major: u32) -> Option<Era> {
        match major {
            1..=3 => Some(Era::Cman),
            4 | 5 => Some(Era::Corosync2),
            6..=99 => Some(Era::Corosync3),
            _ => None,
        }
    }
}

/// The installed Proxmox VE release as `pveversion` (or `pveversion -v`) prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PveVersion {
    pub major: u32,
    /// The version text after `pve-manager/` or `pve-manager: ` (e.g. `8.1.4`, `3.4-11`).
    pub version: String,
}

impl PveVersion {
    pub fn era(&self) -> Option<Era> {
        Era::from_pve_major(self.major)
    }
}

/// Parses `pveversion` (`pve-manager/8.1.4/ec5affc9 (running kernel: …)`) or `pveversion -v`
/// (`pve-manager: 8.1.4 (running version: 8.1.4/ec5affc9)`).
pub fn parse_pveversion(text: &str) -> Option<PveVersion> {
    for line in text.lines() {
        let line = line.trim();
        let rest = if let Some(r) = line.strip_prefix("pve-manager/") {
            r
        } else if let Some(r) = line.strip_prefix("pve-manager:") {
            r.trim_start()
        } else {
            continue;
        };
        let version: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        let digits: String = version.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(major) = digits.parse::<u32>() {
            return Some(PveVersion { major, version });
        }
    }
    None
}

/// One row of a membership table (`status` or `nodes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub nodeid: u32,
    pub votes: Option<u64>,
    /// The last column as printed: an address (`status -i`) or a node name.
    pub name: String,
    pub local: bool,
    /// cman `Sts`: `M` member, `X` not a member, `d` disallowed.
    pub sts: Option<char>,
    /// The `Qdevice` column's state words (`A`, `V` or `NV`, `NMW`) when a device is registered.
    pub qdevice: Option<Vec<String>>,
}

impl Row {
    fn addr(&self) -> Option<IpAddr> {
        parse_ip(&self.name)
    }
}

/// What `pvecm status` printed, field by field (absent fields are `None`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// The era the layout belongs to, when it tells.
    pub era: Option<Era>,
    pub name: Option<String>,
    pub config_version: Option<u64>,
    pub transport: Option<String>,
    pub secure_auth: Option<String>,
    /// cman `Cluster Member: Yes/No`.
    pub cluster_member: Option<bool>,
    /// cman `Membership state`.
    pub membership_state: Option<String>,
    pub quorate: Option<bool>,
    pub node_count: Option<u64>,
    pub expected_votes: Option<u64>,
    pub highest_expected: Option<u64>,
    pub total_votes: Option<u64>,
    pub node_votes: Option<u64>,
    pub quorum: Option<u64>,
    /// `Activity blocked` after the quorum value.
    pub activity_blocked: bool,
    /// None when there is no `Flags:` line; `Some(vec![])` for an empty one.
    pub flags: Option<Vec<String>>,
    pub ring_id: Option<String>,
    pub local_nodeid: Option<u32>,
    /// cman `Node name`.
    pub local_name: Option<String>,
    /// cman `Node addresses`.
    pub local_addrs: Vec<String>,
    /// Membership rows (no qdevice row).
    pub members: Vec<Row>,
    /// Votes of a quorum device row (`0x00000000 … Qdevice`) or cman `Quorum device votes`.
    pub qdevice_votes: Option<u64>,
}

impl Status {
    /// True when the text held quorum facts (as opposed to only an error or a config block).
    pub fn has_quorum_info(&self) -> bool {
        self.quorate.is_some()
            || self.cluster_member.is_some()
            || self.expected_votes.is_some()
            || self.local_nodeid.is_some()
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

/// A node id in hex (`0x00000001`) or decimal.
pub fn parse_id(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

fn first_number(s: &str) -> Option<u64> {
    s.split_whitespace().next().and_then(|t| t.parse().ok())
}

fn yes_no(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Parses one membership row of either layout; None for anything else.
pub fn parse_row(line: &str) -> Option<Row> {
    let mut toks: Vec<&str> = line.split_whitespace().collect();
    let mut local = false;
    if toks.last() == Some(&"(local)") {
        local = true;
        toks.pop();
    }
    if toks.len() < 3 {
        return None;
    }
    let nodeid = parse_id(toks.first()?)?;
    let second = toks.get(1)?;
    let name = toks.last()?.to_string();
    // cman: `   1   M      4   2014-03-10 09:12:31  alpha` (time may be blank)
    let mut sc = second.chars();
    if let (Some(c), None) = (sc.next(), sc.next()) {
        if c.is_ascii_alphabetic() {
            if toks.len() < 4 || toks.get(2)?.parse::<i64>().is_err() {
                return None;
            }
            return Some(Row {
                nodeid,
                votes: None,
                name,
                local,
                sts: Some(c),
                qdevice: None,
            });
        }
    }
    let votes: u64 = second.parse().ok()?;
    // with a registered QDevice: `0x00000001          1    A,V,NMW 10.99.0.1 (local)`
    let qdevice = (toks.len() >= 4)
        .then(|| toks[2])
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase() || b == b','))
        .map(|w| w.split(',').map(str::to_string).collect());
    Some(Row {
        nodeid,
        votes: Some(votes),
        name,
        local,
        sts: None,
        qdevice,
    })
}

fn is_heading(line: &str) -> Option<&'static str> {
    let t = line.trim().to_ascii_lowercase();
    match t.as_str() {
        "cluster information" => Some("cluster"),
        "quorum information" => Some("quorum"),
        "votequorum information" => Some("votequorum"),
        "membership information" => Some("membership"),
        _ => None,
    }
}

fn is_row_header(line: &str) -> bool {
    let mut t = line.split_whitespace();
    matches!(t.next(), Some(w) if w.eq_ignore_ascii_case("nodeid") || w.eq_ignore_ascii_case("node"))
        && line
            .split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("name"))
}

/// Parses `pvecm status` output of any era. Returns a `Status` whose fields are those found;
/// see [`Status::has_quorum_info`] to tell a real status from an error text.
pub fn parse_status(text: &str) -> Status {
    let mut st = Status::default();
    let mut in_rows = false;
    let mut saw_cluster_block = false;
    let mut cman_hint = false;
    let mut quorumtool_hint = false;
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            in_rows = false;
            continue;
        }
        if let Some(h) = is_heading(line) {
            in_rows = h == "membership";
            if h == "cluster" {
                saw_cluster_block = true;
            }
            if h != "cluster" {
                quorumtool_hint = true;
            }
            continue;
        }
        if line.trim().chars().all(|c| c == '-' || c == '~') {
            continue;
        }
        if is_row_header(line) {
            in_rows = true;
            continue;
        }
        if in_rows {
            if let Some(row) = parse_row(line) {
                if row.nodeid == 0 {
                    st.qdevice_votes = row.votes;
                } else {
                    st.members.push(row);
                }
                continue;
            }
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let v = value.trim();
        match key.as_str() {
            // cman's protocol version (`6.2.0`); corosync prints no `Version:` line.
            "version" if v.starts_with("6.") => cman_hint = true,
            "config version" => st.config_version = first_number(v),
            "cluster name" => {
                cman_hint = true;
                st.name = non_empty(v);
            }
            "name" => st.name = non_empty(v),
            "transport" => st.transport = non_empty(v),
            "secure auth" => st.secure_auth = non_empty(v),
            "cluster member" => {
                cman_hint = true;
                st.cluster_member = yes_no(v);
            }
            "membership state" => {
                cman_hint = true;
                st.membership_state = non_empty(v);
            }
            "cluster id"
            | "cluster generation"
            | "active subsystems"
            | "ports bound"
            | "multicast addresses" => cman_hint = true,
            "quorate" => st.quorate = yes_no(v),
            "nodes" => st.node_count = first_number(v),
            "expected votes" => st.expected_votes = first_number(v),
            "highest expected" => st.highest_expected = first_number(v),
            "total votes" => st.total_votes = first_number(v),
            "node votes" => st.node_votes = first_number(v),
            "quorum device votes" => st.qdevice_votes = first_number(v),
            "quorum" => {
                st.quorum = first_number(v);
                st.activity_blocked = v.contains("Activity blocked");
            }
            "flags" => st.flags = Some(v.split_whitespace().map(str::to_string).collect()),
            "ring id" => {
                quorumtool_hint = true;
                st.ring_id = non_empty(v);
            }
            "quorum provider" => quorumtool_hint = true,
            "node id" => st.local_nodeid = parse_id(v),
            "node name" => st.local_name = non_empty(v),
            "node addresses" => {
                cman_hint = true;
                st.local_addrs = v.split_whitespace().map(str::to_string).collect();
            }
            _ => {}
        }
    }
    // cman prints no `Quorate:` line: quorate unless the quorum line says blocked.
    if cman_hint && !quorumtool_hint {
        if st.quorate.is_none() && st.quorum.is_some() {
            st.quorate = Some(!st.activity_blocked);
        }
        st.era = Some(Era::Cman);
    } else if saw_cluster_block
        || st.transport.is_some()
        || st.ring_id.as_deref().is_some_and(|r| r.contains('.'))
    {
        st.era = Some(Era::Corosync3);
    } else if quorumtool_hint {
        // Ring ID `N/SEQ` without the Cluster information block: PVE 4/5, or PVE 6.0 with
        // corosync <= 3.0.2 (indistinguishable by layout; pveversion tells).
        st.era = Some(Era::Corosync2);
    }
    st
}

/// Parses `pvecm nodes` output of any era (cman table or `corosync-quorumtool -l`).
/// Rows with node id 0 (a quorum device) are left out.
pub fn parse_nodes(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(parse_row)
        .filter(|r| r.nodeid != 0)
        .collect()
}

/// What `pvecm status` said about a node that is in no cluster (or whose cluster stack is
/// down). Pure text recognition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCluster {
    /// PVE 4+: `Corosync config '/etc/pve/corosync.conf' does not exist`.
    NoConfig,
    /// PVE 3: cman not running (no cluster, or cman stopped).
    CmanNotRunning,
    /// PVE 4+: corosync.conf exists but corosync is not running.
    CorosyncNotRunning,
}

pub fn recognise_no_cluster(text: &str) -> Option<NoCluster> {
    if text.contains("does not exist - is this node part of a cluster") {
        Some(NoCluster::NoConfig)
    } else if text.contains("Cannot open connection to cman") {
        Some(NoCluster::CmanNotRunning)
    } else if text.contains("Cannot initialize CMAP service")
        || text.contains("Cannot initialize QUORUM service")
        || text.contains("Cannot initialise")
    {
        Some(NoCluster::CorosyncNotRunning)
    } else {
        None
    }
}

/// The era an error text of `pvecm status` belongs to, when it tells.
pub fn era_from_error(text: &str) -> Option<Era> {
    if text.contains("Cannot open connection to cman") || text.contains("cman_tool") {
        Some(Era::Cman)
    } else if text.contains("Error: Corosync config") {
        // PVE 6.1+ dies with "Error: "; PVE 4/5 only warn and then run corosync-quorumtool.
        Some(Era::Corosync3)
    } else if text.contains("does not exist - is this node part of a cluster") {
        Some(Era::Corosync2)
    } else {
        None
    }
}

/// The era an output tells: status layout first, then error texts.
pub fn era_from_output(text: &str) -> Option<Era> {
    parse_status(text).era.or_else(|| era_from_error(text))
}

/// One node of the merged facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFact {
    pub nodeid: u32,
    pub name: Option<String>,
    pub votes: Option<u64>,
    pub addr: Option<String>,
    pub local: bool,
    /// In the current membership (cman `M`, or listed by corosync).
    pub online: bool,
    /// Its QDevice state words from the `Qdevice` column (`A`, `V`/`NV`, `NMW`), when shown.
    pub qdevice: Option<Vec<String>>,
}

/// The merged cluster facts, as the module returns them in `cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterFacts {
    pub member: bool,
    pub name: Option<String>,
    pub config_version: Option<u64>,
    pub era: Option<Era>,
    pub quorate: Option<bool>,
    pub expected_votes: Option<u64>,
    pub total_votes: Option<u64>,
    pub quorum: Option<u64>,
    pub flags: Vec<String>,
    pub local_nodeid: Option<u32>,
    pub nodes: Vec<NodeFact>,
    /// Votes of the quorum device row, when one is registered.
    pub qdevice_votes: Option<u64>,
}

impl ClusterFacts {
    /// Number of nodes in the current membership.
    pub fn online_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.online).count()
    }
    /// Is `who` (an address or a node name) one of the nodes?
    pub fn has_node(&self, who: &str) -> bool {
        let ip = parse_ip(who);
        self.nodes.iter().any(|n| {
            n.name
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(who))
                || match (ip, n.addr.as_deref().and_then(parse_ip)) {
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                }
        })
    }
    pub fn to_json(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| {
                let mut v = json!({
                    "nodeid": n.nodeid,
                    "name": n.name,
                    "votes": n.votes,
                    "addr": n.addr,
                    "local": n.local,
                    "online": n.online,
                });
                // only where corosync shows a Qdevice column
                if let (Some(w), Value::Object(m)) = (&n.qdevice, &mut v) {
                    m.insert("qdevice".into(), json!(w));
                }
                v
            })
            .collect();
        let mut out = json!({
            "member": self.member,
            "name": self.name,
            "config_version": self.config_version,
            "era": self.era.map(Era::as_str),
            "quorate": self.quorate,
            "expected_votes": self.expected_votes,
            "total_votes": self.total_votes,
            "quorum": self.quorum,
            "flags": self.flags,
            "local_nodeid": self.local_nodeid,
            "nodes": nodes,
        });
        if let (Some(v), Value::Object(m)) = (self.qdevice_votes, &mut out) {
            m.insert("qdevice_votes".into(), json!(v));
        }
        out
    }
}

/// Facts of a node that is in no cluster.
pub fn not_member(era: Option<Era>) -> ClusterFacts {
    ClusterFacts {
        member: false,
        era,
        ..ClusterFacts::default()
    }
}

/// Merges a parsed `status` and the rows of `nodes` by node id. `member` is true when the
/// status holds quorum facts (and, for cman, does not say `Cluster Member: No`).
pub fn merge(st: &Status, nodes: &[Row]) -> ClusterFacts {
    let mut out: Vec<NodeFact> = Vec::new();
    let idx = |out: &mut Vec<NodeFact>, id: u32| -> usize {
        match out.iter().position(|n| n.nodeid == id) {
            Some(i) => i,
            None => {
                out.push(NodeFact {
                    nodeid: id,
                    name: None,
                    votes: None,
                    addr: None,
                    local: false,
                    online: true,
                    qdevice: None,
                });
                out.len() - 1
            }
        }
    };
    let put = |n: &mut NodeFact, r: &Row| {
        match r.addr() {
            Some(ip) => {
                if n.addr.is_none() {
                    n.addr = Some(ip.to_string());
                }
            }
            None => {
                if n.name.is_none() {
                    n.name = Some(r.name.clone());
                }
            }
        }
        if n.votes.is_none() {
            n.votes = r.votes;
        }
        n.local |= r.local;
        if n.qdevice.is_none() {
            n.qdevice.clone_from(&r.qdevice);
        }
        if let Some(c) = r.sts {
            n.online = c == 'M';
        }
    };
    for r in nodes {
        let i = idx(&mut out, r.nodeid);
        if let Some(n) = out.get_mut(i) {
            put(n, r);
        }
    }
    for r in &st.members {
        let i = idx(&mut out, r.nodeid);
        if let Some(n) = out.get_mut(i) {
            put(n, r);
        }
    }
    if let Some(id) = st.local_nodeid {
        let present = out.iter().any(|n| n.nodeid == id);
        // cman prints the local node in `status`; corosync always lists it in the membership.
        if present || st.local_name.is_some() || !st.local_addrs.is_empty() {
            let i = idx(&mut out, id);
            if let Some(n) = out.get_mut(i) {
                n.local = true;
                if n.name.is_none() {
                    n.name.clone_from(&st.local_name);
                }
                if n.addr.is_none() {
                    n.addr = st
                        .local_addrs
                        .iter()
                        .find_map(|a| parse_ip(a))
                        .map(|ip| ip.to_string());
                }
                if n.votes.is_none() {
                    n.votes = st.node_votes;
                }
            }
        }
    }
    out.sort_by_key(|n| n.nodeid);
    let member = st.has_quorum_info() && st.cluster_member != Some(false);
    ClusterFacts {
        member,
        name: st.name.clone(),
        config_version: st.config_version,
        era: st.era,
        quorate: st.quorate,
        expected_votes: st.expected_votes,
        total_votes: st.total_votes,
        quorum: st.quorum,
        flags: st.flags.clone().unwrap_or_default(),
        local_nodeid: st.local_nodeid,
        nodes: out,
        qdevice_votes: st.qdevice_votes,
    }
}

/// Known messages of pvecm, pmxcfs, corosync and cman, each with what it most likely means.
/// All patterns of one entry must appear; a pattern starting with `!` must not.
const CAUSES: &[(&[&str], &str)] = &[
    (
        &["Please enter superuser (root) password for"],
        "pvecm asked for the peer's root password, which a module cannot type: set use_ssh: true (with root SSH keys from this node to the peer) instead",
    ),
    (
        // What `pvecm add` without use_ssh really prints with no terminal: PVE::PTY's
        // read_password reads a line from the (closed) stdin instead of prompting.
        &["EOF while reading password"],
        "pvecm asked for the peer's root password, which a module cannot type: set use_ssh: true (with root SSH keys from this node to the peer) instead",
    ),
    (
        &["Are you sure you want to continue connecting"],
        "pvecm asked to confirm the peer's certificate fingerprint: set fingerprint to the peer's SHA256 fingerprint (pvenode cert info on the peer), or use_ssh: true",
    ),
    (
        &["not verified, abort!", "fingerprint '"],
        "the given fingerprint does not match the peer's certificate: check fingerprint against `pvenode cert info` on the peer",
    ),
    (
        &["Fingerprint not verified, abort!"],
        "the peer's certificate fingerprint was not confirmed: set fingerprint (or use_ssh: true)",
    ),
    (
        &["Navigate out of /etc/pve before running"],
        "pvecm add refuses to run with its working directory under /etc/pve",
    ),
    (
        &["cluster config '/etc/pve/", "already exists"],
        "this node already has a cluster configuration (it is, or was, in a cluster)",
    ),
    (
        &["authentication key", "already exists"],
        "a corosync authentication key from an earlier cluster is still on this node",
    ),
    (
        &["this host already contains virtual"],
        "this node already has guests (VMs/containers); a joining node must be empty (move or back them up and remove them, or use force)",
    ),
    (
        &["is already running, is this node already in a cluster"],
        "corosync is already running: this node is already in a cluster",
    ),
    (&["cman is already running"], "cman is already running: this node is already in a cluster"),
    (
        &["cannot use IP '", "local node"],
        "the cluster link address (link0) is not configured on an interface of this node",
    ),
    (
        &["can't add existing node"],
        "the cluster already has a node of this name: remove it on the peer with `pvecm delnode NAME` first",
    ),
    (
        &["already defined", "!corosync: address"],
        "the cluster already has a node of this name: remove it on the peer with `pvecm delnode NAME` first",
    ),
    (
        &["corosync: address '", "already"],
        "another cluster node already uses this link0 address",
    ),
    (
        &["Remote side is not able to use API for Cluster join"],
        "the peer is too old for a join over the API: set use_ssh: true",
    ),
    (
        &["incompatible join API version"],
        "the pve-cluster versions of this node and the cluster differ: update all nodes",
    ),
    (
        &["got local IP address"],
        "this node's hostname resolves to a loopback address: pin it to the cluster address in /etc/hosts (hosts_pin)",
    ),
    (
        &["address lookup for '", "did not find any IP address"],
        "this node's hostname resolves to no usable address: pin it in /etc/hosts (hosts_pin)",
    ),
    (
        &["failed to get address info"],
        "this node's hostname does not resolve: pin it in /etc/hosts (hosts_pin)",
    ),
    (
        &["hostname lookup failed:"],
        "this node's hostname does not resolve: pin it in /etc/hosts (hosts_pin)",
    ),
    (
        &["Unable to resolve node name"],
        "pmxcfs cannot resolve this node's name to a non-loopback address: pin it in /etc/hosts (hosts_pin)",
    ),
    (
        &["no quorum"],
        "the cluster has no quorum, so /etc/pve is read-only",
    ),
    (
        &["pve configuration filesystem", "not mounted"],
        "pmxcfs is not running (/etc/pve not mounted): start pve-cluster",
    ),
    (
        &["Transport endpoint is not connected"],
        "/etc/pve is a dead FUSE mount (pmxcfs died): recover it (fuse_recover) and restart pve-cluster",
    ),
    (
        &["local corosync.conf is newer"],
        "this node's /etc/corosync/corosync.conf has a higher config_version than the cluster's",
    ),
    (
        &["is different than my config version"],
        "the corosync config_version differs between the nodes",
    ),
    (
        &["Host key verification failed"],
        "ssh does not know the peer's host key: add it to root's known_hosts on this node (ssh root@PEER once, or ssh-keyscan PEER >> /root/.ssh/known_hosts)",
    ),
    (
        &["unable to copy ssh ID"],
        "copying the SSH key to the peer failed: set up root SSH keys from this node to the peer",
    ),
    (
        &["unable to add node: command failed (ssh"],
        "adding the node on the peer over SSH failed: check root SSH access to the peer and the peer's own output",
    ),
    (
        &["Permission denied (publickey"],
        "SSH to the peer was refused: install this node's root SSH key on the peer",
    ),
    (
        &["Cannot delete myself from cluster"],
        "a node cannot remove itself from the cluster",
    ),
    (
        &["is not a known host of the cluster"],
        "the node is not in the cluster",
    ),
    (
        &["does not exist - is this node part of a cluster"],
        "this node is in no cluster",
    ),
    (
        &["Cannot initialize CMAP service"],
        "corosync is not running on this node",
    ),
    (
        &["Cannot open connection to cman"],
        "cman is not running on this node",
    ),
    (
        &["401", "authentication fail"],
        "the peer refused the root login",
    ),
];

/// Every known message found in `text`, as likely causes in the table's order, deduplicated.
pub fn likely_causes(text: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (pats, cause) in CAUSES {
        let hit = pats.iter().all(|p| match p.strip_prefix('!') {
            Some(not) => !text.contains(not),
            None => text.contains(p),
        });
        if hit && !out.contains(cause) {
            out.push(cause);
        }
    }
    out
}

/// One line naming the likely cause(s) of a failure text, if any known message is in it.
pub fn likely_cause(text: &str) -> Option<String> {
    let c = likely_causes(text);
    (!c.is_empty()).then(|| c.join("; "))
}

/// Which interactive prompt a pvecm output shows, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    Password,
    Fingerprint,
}

pub fn detect_prompt(text: &str) -> Option<Prompt> {
    if text.contains("Please enter superuser (root) password for")
        || text.contains("EOF while reading password")
    {
        Some(Prompt::Password)
    } else if text.contains("Are you sure you want to continue connecting")
        || text.contains("The authenticity of host")
    {
        Some(Prompt::Fingerprint)
    } else {
        None
    }
}

/// Cluster name rules of pvecm (JSON format `pve-node`, at most 15 characters): letters,
/// digits and `-`, starting with a letter or digit, not ending in `-`. Returns why not.
pub fn check_cluster_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.chars().count() > 15 {
        return Err(format!(
            "it has {} characters, at most 15 are allowed",
            name.chars().count()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "it contains {c:?}; only letters, digits and '-' are allowed"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("it must start and end with a letter or digit".into());
    }
    Ok(())
}
