//! pvecm_cluster: create or join a Proxmox VE cluster only when needed, after pre-flight
//! checks, and return the cluster facts of every era (PVE 3 cman, PVE 4–5 corosync 2,
//! PVE 6+ corosync 3).
//!
//! Phases, in the order `logic` runs them: parameters → [`Mode`] (pure); the environment read
//! once into [`Env`] (edge); the cluster state ([`read_state`], edge); then for `info` the
//! report, for a create or join: decision ([`decide`], pure), pre-flight ([`preflight`], pure
//! over [`Local`]), the argv ([`build_argv`], pure), and in a real run the command with its
//! wait ([`apply`], edge, deciding by the pure stop rule [`next_step`]) and the result
//! ([`report`], pure).
//!
//! Edges: `pvecm status` / `pvecm nodes` / `pveversion` (argv, no tty, stdin closed,
//! timeouts), the hostname, /etc/hosts, the local interface addresses, /etc/corosync and
//! /etc/pve.

use pve2node::protocol::{
    self, Ctx, Default as D, Failure, Outcome, Param, RequiredIf, Spec, Type,
};
use pve2node::pve::status::{self as pst, ClusterFacts, Era, NoCluster, Prompt};
use pve2node::run::{self, Output};
use pve2node::wait;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One day: longer waits are mistakes, and deadlines computed from it cannot overflow.
const MAX_TIMEOUT: u64 = 86_400;
/// corosync's token_coefficient is in milliseconds; a minute per node is already absurd.
const MAX_TOKEN_COEFFICIENT: i64 = 60_000;
/// knet links beyond link0 (corosync 3 has links 0..7).
const EXTRA_LINKS: std::ops::RangeInclusive<u32> = 1..=7;
/// PVE 9's pvecm add when the cluster has more links than the join gives.
const JOIN_FEWER_LINKS: &str = "no links given but multiple links found on other nodes";

const SPEC: Spec = Spec {
    module: "pvecm_cluster",
    params: &[
        Param::new("state", Type::Str)
            .default(D::Str("present"))
            .choices(&["present", "info"]),
        Param::new("name", Type::Str),
        Param::new("peer", Type::Str),
        Param::new("link0", Type::Str).aliases(&["ring0_addr"]),
        Param::new("link1", Type::Str).aliases(&["ring1_addr"]),
        Param::new("link2", Type::Str),
        Param::new("link3", Type::Str),
        Param::new("link4", Type::Str),
        Param::new("link5", Type::Str),
        Param::new("link6", Type::Str),
        Param::new("link7", Type::Str),
        Param::new("token_coefficient", Type::Int).range(0, MAX_TOKEN_COEFFICIENT),
        Param::new("era", Type::Str)
            .default(D::Str("auto"))
            .choices(&["auto", "cman", "corosync2", "corosync3"]),
        Param::new("nodeid", Type::Int),
        Param::new("votes", Type::Int),
        Param::new("use_ssh", Type::Bool).default(D::Bool(false)),
        Param::new("fingerprint", Type::Str),
        Param::new("force", Type::Bool).default(D::Bool(false)),
        Param::new("wait", Type::Bool).default(D::Bool(true)),
        Param::new("timeout", Type::Int)
            .default(D::Int(120))
            .range(1, MAX_TIMEOUT as i64),
        Param::new("pvecm", Type::Path).default(D::Str("pvecm")),
    ],
    mutually_exclusive: &[],
    required_if: &[RequiredIf {
        param: "state",
        value: "present",
        requires: &["name"],
    }],
    supports_check_mode: true,
};

/// Test hooks (documented in the .yml notes), honoured by debug builds only
/// (`protocol::test_hook`); the real sources are the defaults.
const HOOK_HOSTNAME: &str = "PVE2NODE_HOSTNAME";
const HOOK_HOSTS_FILE: &str = "PVE2NODE_HOSTS_FILE";
/// The corosync.conf read for the cluster name (PVE 4-5).
const HOOK_COROSYNC_CONF: &str = "PVE2NODE_COROSYNC_CONF";
/// The directory holding this node's own corosync.conf and authkey.
const HOOK_COROSYNC_DIR: &str = "PVE2NODE_COROSYNC_DIR";
const HOOK_CLUSTER_CONF: &str = "PVE2NODE_CLUSTER_CONF";
/// This node's /etc/pve.
const HOOK_ETC_PVE: &str = "PVE2NODE_ETC_PVE";
/// This node's interface addresses (comma-separated) instead of getifaddrs.
const HOOK_LOCAL_ADDRS: &str = "PVE2NODE_LOCAL_ADDRS";

/// Timeout of one read-only command (`status`, `nodes`, `pveversion`).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(1000);
/// How long to keep polling after pvecm exited non-zero without a known error message.
const FAILED_RC_GRACE: Duration = Duration::from_secs(5);
/// What the peer's pvecm prints (stdout) when its /etc/pve is read-only (no pmxcfs quorum).
const PEER_NOT_READY: &str = "cluster not ready - no quorum?";
/// Pause between joins the peer refused as not ready.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// A join takes 11-16 s on real nodes: none is started again with less time left (a join
/// killed by the timeout half-way would leave this node half-joined).
const RETRY_MIN_LEFT: Duration = Duration::from_secs(15);
/// At most this much of /etc/pve/.members is read.
const MEMBERS_MAX: u64 = 64 * 1024;

// ---------------------------------------------------------------------------------------
// Errors

/// A parameter that cannot be used; nothing has run yet.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum ParamError {
    #[error("pvecm must name the pvecm executable (default: pvecm)")]
    Pvecm,
    // TODO(proto): Param::range on `timeout` checks this once the protocol implements it.
    #[error("name '{name}' is not a valid cluster name: {why} (pvecm allows at most 15 letters, digits or '-')")]
    Name { name: String, why: String },
    #[error("peer is empty: give the address of an existing cluster member to join it, or leave peer out to create the cluster")]
    EmptyPeer,
    #[error("peer '{0}' is not an IP address or a host name: give the address of an existing cluster member")]
    Peer(String),
    #[error("link0 is empty: give this node's address on the cluster network, or leave link0 out to let pvecm use the address the hostname resolves to")]
    EmptyLink0,
    #[error("link{0} is empty: give this node's address on corosync link {0} (`ADDR` or `address=ADDR,priority=N`), or leave link{0} out")]
    EmptyLink(u32),
    #[error("link{n} '{value}' is not `ADDR` or `address=ADDR,priority=N` with a priority of 0 to 255: {why}")]
    BadLink { n: u32, value: String, why: String },
    #[error("link{0} is given but link{1} is not: corosync links are numbered from 0 without gaps here; give link{1} too")]
    LinkGap(u32, u32),
    #[error("token_coefficient applies to pvecm create only: a joining node takes the cluster's totem settings")]
    TokenCoefficientJoin,
    #[error("nodeid must be 1 or more, got {0}")]
    Nodeid(i64),
    #[error("votes must be {min} or more, got {got}")]
    Votes { min: i64, got: i64 },
    #[error("fingerprint '{0}' is not a SHA256 fingerprint (32 hex bytes separated by ':', as `pvenode cert info` prints it)")]
    Fingerprint(String),
}

/// Why this node's state forbids the create or join asked for; nothing has run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum Refusal {
    #[error("this node has the configuration of cluster '{}' but its cluster stack is not running ({}): start it ({}) and run again",
        .name.as_deref().unwrap_or("?"),
        if *.cman { "cman" } else { "corosync" },
        if *.cman { "/etc/init.d/cman start; /etc/init.d/pve-cluster restart" } else { "systemctl start corosync pve-cluster" })]
    StackDown { name: Option<String>, cman: bool },
    #[error("{}", pve_missing_msg(.0.as_deref()))]
    PveMissing(Option<String>),
    #[error("{0}")]
    Unreadable(String),
    #[error("this node is in a cluster but its name cannot be read (neither `pvecm status` nor corosync.conf shows it)")]
    NameUnknown,
    #[error("this node is already in a cluster of its own ('{have}', this node only) and cannot join cluster '{want}' through peer '{peer}' while it is in one: remove this node's cluster configuration first, or set force: true to let pvecm add override its checks")]
    OwnCluster {
        have: String,
        want: String,
        peer: String,
    },
    #[error("this node is a member of cluster '{have}', not of cluster '{want}': a node can be in one cluster only; fix name, or remove the node from '{have}' first")]
    OtherCluster { have: String, want: String },
}

fn pve_missing_msg(name: Option<&str>) -> String {
    format!(
        "this node's /etc/corosync holds the authkey and config of cluster '{}' but /etc/pve/corosync.conf does not exist: /etc/pve is probably not mounted (pve-cluster down or a dead FUSE mount); run fuse_recover or start pve-cluster, then run again",
        name.unwrap_or("?")
    )
}

fn run_err(pvecm: &str, e: run::RunError) -> Failure {
    Failure::new(format!(
        "{e}; set pvecm to the path of the pvecm executable"
    ))
    .with("cmd", json!([pvecm]))
}

/// A result or a failure: both take a command's keys through the protocol's `with_command`.
trait WithCommand: Sized {
    fn command(self, o: &Output) -> Self;
}
impl WithCommand for Outcome {
    fn command(self, o: &Output) -> Self {
        self.with_command(o)
    }
}
impl WithCommand for Failure {
    fn command(self, o: &Output) -> Self {
        self.with_command(o)
    }
}

/// The one way a command's `cmd`, `rc`, `stdout`, `stderr` (and `timed_out`) go into a
/// result or a failure: `protocol`'s `with_command` (the shape is `run::Output::to_json`).
fn with_output<T: WithCommand>(x: T, o: &Output) -> T {
    x.command(o)
}

// ---------------------------------------------------------------------------------------
// Parameters (pure)

/// This node in the cluster it creates or joins.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    name: String,
    link0: Option<String>,
    /// link1..link7 as given (`ADDR` or `address=ADDR,priority=N`), by number.
    links: Vec<(u32, String)>,
    nodeid: Option<i64>,
    votes: Option<i64>,
    /// `pvecm create --token-coefficient` (PVE 9.1+).
    token_coefficient: Option<i64>,
}

/// The existing member a join goes through, and how.
#[derive(Debug, Clone, PartialEq)]
struct Peer {
    addr: String,
    use_ssh: bool,
    fingerprint: Option<String>,
    force: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    /// `state: info`: read and report only.
    Info,
    /// `pvecm create`, when this node is in no cluster.
    Create { node: Node },
    /// `pvecm add PEER`, when this node is in no cluster (or, with force, alone in its own).
    Join { node: Node, peer: Peer },
}

#[derive(Debug, Clone, PartialEq)]
struct Args {
    mode: Mode,
    era: Option<Era>,
    wait: bool,
    timeout: Duration,
    pvecm: String,
}

fn args(p: &protocol::Params) -> Result<Args, ParamError> {
    let nonempty = |k: &str| {
        p.str(k)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let pvecm = p.str("pvecm").unwrap_or("pvecm").to_string();
    if pvecm.is_empty() {
        return Err(ParamError::Pvecm);
    }
    let mut a = Args {
        mode: Mode::Info,
        era: p.str("era").and_then(Era::from_name),
        wait: p.bool("wait").unwrap_or(true),
        timeout: p.duration("timeout"),
        pvecm,
    };
    if p.str("state") == Some("info") {
        return Ok(a);
    }
    let name = nonempty("name").unwrap_or_default();
    pst::check_cluster_name(&name).map_err(|why| ParamError::Name {
        name: name.clone(),
        why,
    })?;
    let peer = peer_param(p)?;
    let link0 = nonempty("link0");
    if p.is_set("link0") && link0.is_none() {
        return Err(ParamError::EmptyLink0);
    }
    let nodeid = p.int("nodeid");
    if let Some(n) = nodeid.filter(|n| *n < 1) {
        return Err(ParamError::Nodeid(n));
    }
    let votes = p.int("votes");
    if let Some(v) = votes {
        let min = if peer.is_some() { 0 } else { 1 };
        if v < min {
            return Err(ParamError::Votes { min, got: v });
        }
    }
    let fingerprint = nonempty("fingerprint");
    if let Some(fp) = fingerprint.as_ref().filter(|fp| !is_sha256_fingerprint(fp)) {
        return Err(ParamError::Fingerprint(fp.clone()));
    }
    let links = extra_links(p, link0.is_some())?;
    let token_coefficient = p.int("token_coefficient");
    if token_coefficient.is_some() && peer.is_some() {
        return Err(ParamError::TokenCoefficientJoin);
    }
    let node = Node {
        name,
        link0,
        links,
        nodeid,
        votes,
        token_coefficient,
    };
    a.mode = match peer {
        None => Mode::Create { node },
        Some(addr) => Mode::Join {
            node,
            peer: Peer {
                addr,
                use_ssh: p.flag("use_ssh"),
                fingerprint,
                force: p.flag("force"),
            },
        },
    };
    Ok(a)
}

/// `peer`, when given. An empty peer (an undefined variable with `default('')`) must not turn
/// a join into the creation of a second cluster, and a peer is an argument pvecm must not
/// read as an option.
fn peer_param(p: &protocol::Params) -> Result<Option<String>, ParamError> {
    if !p.is_set("peer") {
        return Ok(None);
    }
    let peer = p.str("peer").unwrap_or("").trim();
    let addr = peer
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(peer);
    if peer.is_empty() {
        return Err(ParamError::EmptyPeer);
    }
    if pve2node::hosts::parse_ip(addr).is_none() && !pve2node::hosts::is_valid_hostname(peer) {
        return Err(ParamError::Peer(peer.to_string()));
    }
    Ok(Some(peer.to_string()))
}

/// link1..link7: each `ADDR` or `address=ADDR[,priority=N]` (what pvecm's `--linkN` takes),
/// numbered without gaps (link0 first) so the join's links line up with the cluster's.
fn extra_links(p: &protocol::Params, has_link0: bool) -> Result<Vec<(u32, String)>, ParamError> {
    let mut out = Vec::new();
    let mut last = if has_link0 { Some(0) } else { None };
    for n in EXTRA_LINKS {
        let key = format!("link{n}");
        if !p.is_set(&key) {
            continue;
        }
        let v = p.str(&key).unwrap_or("").trim().to_string();
        if v.is_empty() {
            return Err(ParamError::EmptyLink(n));
        }
        check_link_value(&v).map_err(|why| ParamError::BadLink {
            n,
            value: v.clone(),
            why,
        })?;
        let expect = last.map_or(0, |l| l + 1);
        if n != expect {
            return Err(ParamError::LinkGap(n, expect));
        }
        last = Some(n);
        out.push((n, v));
    }
    Ok(out)
}

/// A `--linkN` value: `ADDR` or `address=ADDR` with an optional `priority=0..255`.
fn check_link_value(v: &str) -> Result<(), String> {
    let addr = link0_address(v);
    if addr.is_empty() {
        return Err("the address is empty".into());
    }
    if pve2node::hosts::parse_ip(addr).is_none() && !pve2node::hosts::is_valid_hostname(addr) {
        return Err(format!("'{addr}' is not an IP address or a host name"));
    }
    for part in v.split(',').skip(1) {
        match part.trim().split_once('=') {
            Some(("priority", n)) if n.trim().parse::<u8>().is_ok() => {}
            Some(("priority", n)) => return Err(format!("priority '{n}' is not 0 to 255")),
            _ => return Err(format!("unknown part '{part}'")),
        }
    }
    Ok(())
}

/// The `priority=N` of a link value, if any.
fn link_priority(v: &str) -> Option<&str> {
    v.split(',')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("priority="))
}

/// 32 hex bytes separated by ':', as `pvenode cert info` prints a SHA256 fingerprint.
fn is_sha256_fingerprint(fp: &str) -> bool {
    fp.split(':').count() == 32
        && fp
            .split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A create or a join: the node, and the peer of a join.
#[derive(Debug, Clone, Copy)]
struct Change<'a> {
    node: &'a Node,
    peer: Option<&'a Peer>,
}

impl Change<'_> {
    fn joining(&self) -> bool {
        self.peer.is_some()
    }
    fn peer_addr(&self) -> &str {
        self.peer.map(|p| p.addr.as_str()).unwrap_or("")
    }
    /// `pvecm SUB`.
    fn sub(&self) -> &'static str {
        if self.joining() {
            "add"
        } else {
            "create"
        }
    }
    fn what(&self) -> String {
        match self.peer {
            None => format!("create cluster '{}'", self.node.name),
            Some(p) => format!(
                "join cluster '{}' through peer '{}'",
                self.node.name, p.addr
            ),
        }
    }
    fn past(&self) -> String {
        match self.peer {
            None => format!("created cluster '{}'", self.node.name),
            Some(p) => format!("joined cluster '{}' through '{}'", self.node.name, p.addr),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The environment (edge): read once, test hooks included

/// Where this node's facts come from: the real sources, or (debug builds) the test hooks.
#[derive(Debug, Clone, PartialEq)]
struct Env {
    hostname: Option<String>,
    hosts_file: PathBuf,
    /// corosync.conf candidates for the cluster name, first readable one with a name wins.
    corosync_confs: Vec<PathBuf>,
    /// This node's own corosync config and authkey.
    corosync_dir: PathBuf,
    /// PVE 3 cluster.conf candidates.
    cluster_confs: Vec<PathBuf>,
    etc_pve: PathBuf,
}

impl Env {
    fn read() -> Env {
        let hook = protocol::test_hook;
        let paths = |name: &str, real: &[&str]| -> Vec<PathBuf> {
            match hook(name) {
                Some(p) => vec![p.into()],
                None => real.iter().map(PathBuf::from).collect(),
            }
        };
        Env {
            hostname: match hook(HOOK_HOSTNAME) {
                Some(h) => Some(h.trim().to_string()).filter(|h| !h.is_empty()),
                None => read_hostname(),
            },
            hosts_file: hook(HOOK_HOSTS_FILE)
                .unwrap_or_else(|| "/etc/hosts".into())
                .into(),
            corosync_confs: paths(
                HOOK_COROSYNC_CONF,
                &["/etc/pve/corosync.conf", "/etc/corosync/corosync.conf"],
            ),
            corosync_dir: hook(HOOK_COROSYNC_DIR)
                .unwrap_or_else(|| "/etc/corosync".into())
                .into(),
            cluster_confs: paths(
                HOOK_CLUSTER_CONF,
                &["/etc/pve/cluster.conf", "/etc/cluster/cluster.conf"],
            ),
            etc_pve: hook(HOOK_ETC_PVE)
                .unwrap_or_else(|| "/etc/pve".into())
                .into(),
        }
    }
}

/// This node's hostname, from the UTS namespace.
fn read_hostname() -> Option<String> {
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            return Some(h.to_string());
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // (or truncates, which the search for NUL below tolerates).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let h = String::from_utf8_lossy(buf.get(..end).unwrap_or(&[]))
        .trim()
        .to_string();
    (!h.is_empty()).then_some(h)
}

/// Addresses configured on this node's interfaces (getifaddrs; empty if unavailable).
fn local_addrs() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a linked list that we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut p = ifap;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = a as *const libc::sockaddr_in;
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            (*sin).sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = a as *const libc::sockaddr_in6;
                        out.push(IpAddr::V6(Ipv6Addr::from((*sin6).sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}

/// What the pre-flight checks look at.
#[derive(Debug, Clone)]
struct Local {
    hostname: Option<String>,
    hosts_file: String,
    /// The hosts file text, or why it could not be read.
    hosts: Result<String, String>,
    addrs: Vec<IpAddr>,
}

fn read_local(env: &Env) -> Local {
    // Bytes, as the resolver reads them: a Latin-1 comment must not fail the pre-flight.
    let hosts = std::fs::read(&env.hosts_file)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| pve2node::io_reason(&e));
    Local {
        hostname: env.hostname.clone(),
        hosts_file: env.hosts_file.to_string_lossy().into_owned(),
        hosts,
        addrs: match protocol::test_hook(HOOK_LOCAL_ADDRS) {
            Some(list) => list
                .split(',')
                .filter_map(|a| a.trim().parse().ok())
                .collect(),
            None => local_addrs(),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Pre-flight (pure)

#[derive(Debug, Clone, PartialEq)]
struct Check {
    name: &'static str,
    ok: bool,
    msg: String,
}

impl Check {
    fn new(name: &'static str, ok: bool, msg: impl Into<String>) -> Check {
        Check {
            name,
            ok,
            msg: msg.into(),
        }
    }
    fn json(&self) -> Value {
        json!({"check": self.name, "ok": self.ok, "msg": self.msg})
    }
}

/// The address part of a link0 value (`ADDR` or `address=ADDR,priority=N`).
fn link0_address(link0: &str) -> &str {
    let first = link0.split(',').next().unwrap_or(link0);
    first.strip_prefix("address=").unwrap_or(first).trim()
}

fn resolve(local: &Local, who: &str) -> Option<IpAddr> {
    let w = who.trim().trim_start_matches('[').trim_end_matches(']');
    w.parse().ok().or_else(|| {
        local
            .hosts
            .as_ref()
            .ok()
            .and_then(|t| pve2node::hosts::lookup(t, w))
    })
}

fn preflight(c: Change<'_>, local: &Local) -> Vec<Check> {
    let short = local
        .hostname
        .as_deref()
        .map(|h| h.split('.').next().unwrap_or(h).to_string());
    let (resolves, host_ip) = check_hostname(short.as_deref(), local);
    let mut out = vec![resolves];
    let mut link_ip = None;
    if let Some(l) = &c.node.link0 {
        let addr = link0_address(l);
        link_ip = resolve(local, addr);
        out.push(check_link0(short.as_deref(), addr, host_ip, link_ip, local));
    }
    let mut seen: Vec<(u32, IpAddr)> = link_ip.map(|ip| vec![(0, ip)]).unwrap_or_default();
    for (k, v) in &c.node.links {
        out.push(check_link_local(*k, link0_address(v), local, &mut seen));
    }
    if let Some(p) = c.peer {
        out.push(check_peer(
            &p.addr,
            short.as_deref(),
            host_ip,
            link_ip,
            local,
        ));
    }
    out
}

/// This node's short name resolves to a non-loopback address (its address, if it does).
fn check_hostname(short: Option<&str>, local: &Local) -> (Check, Option<IpAddr>) {
    const N: &str = "hostname_resolves";
    let file = &local.hosts_file;
    match (short, &local.hosts) {
        (None, _) => (
            Check::new(N, false, "cannot read this node's hostname: set it (hostnamectl) before creating or joining a cluster"),
            None,
        ),
        (Some(_), Err(e)) => (
            Check::new(N, false, format!("cannot read {file}: {e}; pvecm resolves the hostname through it")),
            None,
        ),
        (Some(h), Ok(text)) => match pve2node::hosts::lookup(text, h) {
            None => (
                Check::new(N, false, format!(
                    "this node's hostname '{h}' has no entry in {file}: pin it to the cluster address (run hosts_pin first)"
                )),
                None,
            ),
            Some(ip) if ip.is_loopback() || ip.is_unspecified() => (
                Check::new(N, false, format!(
                    "this node's hostname '{h}' resolves to the loopback address {ip} in {file}: pin it to the cluster address (run hosts_pin first)"
                )),
                None,
            ),
            Some(ip) => (
                Check::new(N, true, format!("'{h}' resolves to {ip} in {file}")),
                Some(ip),
            ),
        },
    }
}

/// The hostname resolves to the link0 address.
fn check_link0(
    short: Option<&str>,
    addr: &str,
    host_ip: Option<IpAddr>,
    link_ip: Option<IpAddr>,
    local: &Local,
) -> Check {
    const N: &str = "hostname_is_link0";
    let file = &local.hosts_file;
    let h = short.unwrap_or("?");
    match (host_ip, link_ip) {
        (_, None) => Check::new(N, false, format!(
            "link0 '{addr}' is not an IP address and has no entry in {file}: give link0 as an address"
        )),
        (Some(hip), Some(lip)) if hip == lip => {
            Check::new(N, true, format!("'{h}' resolves to link0 {lip}"))
        }
        (Some(hip), Some(lip)) => Check::new(N, false, format!(
            "this node's hostname '{h}' resolves to {hip} in {file}, not to link0 {lip}: pin it to {lip} (run hosts_pin first)"
        )),
        (None, Some(lip)) => Check::new(N, false, format!(
            "this node's hostname '{h}' does not resolve to link0 {lip}: pin it to {lip} (run hosts_pin first)"
        )),
    }
}

const LINK_CHECKS: [&str; 8] = [
    "link0_is_local",
    "link1_is_local",
    "link2_is_local",
    "link3_is_local",
    "link4_is_local",
    "link5_is_local",
    "link6_is_local",
    "link7_is_local",
];

/// A link beyond link0: its address is on one of this node's interfaces (pvecm refuses it
/// otherwise, after the join started), and no other link of this node has it.
fn check_link_local(k: u32, addr: &str, local: &Local, seen: &mut Vec<(u32, IpAddr)>) -> Check {
    let n = LINK_CHECKS
        .get(k as usize)
        .copied()
        .unwrap_or("link_is_local");
    let file = &local.hosts_file;
    let Some(ip) = resolve(local, addr) else {
        return Check::new(n, false, format!(
            "link{k} '{addr}' is not an IP address and has no entry in {file}: give link{k} as an address"
        ));
    };
    if let Some((other, _)) = seen.iter().find(|(_, x)| *x == ip) {
        return Check::new(n, false, format!(
            "link{k} {ip} is also this node's link{other} address: each corosync link needs its own address (another network)"
        ));
    }
    seen.push((k, ip));
    if !local.addrs.is_empty() && !local.addrs.contains(&ip) {
        return Check::new(n, false, format!(
            "link{k} {ip} is not configured on any interface of this node: give this node's own address on that network (or bring the interface up first)"
        ));
    }
    Check::new(n, true, format!("link{k} {ip} is an address of this node"))
}

/// The peer is not this node (its name, its addresses).
fn check_peer(
    peer: &str,
    short: Option<&str>,
    host_ip: Option<IpAddr>,
    link_ip: Option<IpAddr>,
    local: &Local,
) -> Check {
    const N: &str = "peer_is_not_self";
    let same_name = short.is_some_and(|h| {
        peer.eq_ignore_ascii_case(h)
            || local
                .hostname
                .as_deref()
                .is_some_and(|f| peer.eq_ignore_ascii_case(f))
    });
    let why = if same_name {
        Some("this node's own hostname".to_string())
    } else {
        match resolve(local, peer) {
            Some(ip) if Some(ip) == host_ip => Some(format!(
                "{ip}, the address this node's hostname resolves to"
            )),
            Some(ip) if Some(ip) == link_ip => Some(format!("{ip}, this node's link0 address")),
            Some(ip) if ip.is_loopback() || local.addrs.contains(&ip) => {
                Some(format!("{ip}, an address of this node's interfaces"))
            }
            _ => None,
        }
    };
    match why {
        Some(w) => Check::new(N, false, format!(
            "peer '{peer}' is this node itself ({w}): set peer to the address of an existing member of the cluster"
        )),
        None => Check::new(N, true, format!("peer '{peer}' is not this node")),
    }
}

// ---------------------------------------------------------------------------------------
// Commands (pure)

/// The era whose options the argv uses: the known one, or corosync3 with a warning when
/// nothing tells and no option depends on it.
fn argv_era(
    known: Option<Era>,
    c: Change<'_>,
) -> Result<(Era, Option<&'static str>), &'static str> {
    let era_bound = c.node.link0.is_some() || !c.node.links.is_empty();
    match (known, era_bound) {
        (Some(e), _) => Ok((e, None)),
        (None, true) => Err("cannot tell the installed Proxmox VE era (no pveversion, and `pvecm status` does not tell), so not which option passes link0: set era"),
        (None, false) => Ok((Era::Corosync3, Some("cannot tell the installed Proxmox VE era; assuming corosync3 (PVE 6+): set era to be sure"))),
    }
}

/// The `x.y` of a version text such as `9.1.6` or `3.4-11`.
fn minor_of(version: &str) -> Option<u32> {
    let rest = version.split_once('.')?.1;
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// What the era allows of links beyond link0 and of token_coefficient: an error naming the
/// parameter, or warnings (options passed without knowing the release).
fn era_limits(
    c: Change<'_>,
    era: Era,
    pve: Option<(u32, Option<u32>)>,
) -> Result<Vec<String>, String> {
    let mut warn = Vec::new();
    let n = c.node;
    match era {
        Era::Cman if !n.links.is_empty() => {
            return Err(format!(
                "link{} is given but Proxmox VE 3 (cman) has no option for more links: leave link1..link7 out (a second ring needs a hand edit of cluster.conf there)",
                n.links[0].0
            ))
        }
        Era::Corosync2 => {
            if let Some((k, _)) = n.links.iter().find(|(k, _)| *k > 1) {
                return Err(format!(
                    "link{k} is given but Proxmox VE 4 and 5 (corosync 2) have ring0 and ring1 only: leave link2..link7 out"
                ));
            }
            if let Some((_, v)) = n.links.first() {
                if link_priority(v).is_some() {
                    warn.push("the priority of link1 is ignored: Proxmox VE 4 and 5 have no link priorities (-ring1_addr takes an address only)".to_string());
                }
            }
        }
        _ => {}
    }
    if let Some(tc) = n.token_coefficient {
        match (era, pve) {
            (Era::Corosync3, Some((major, minor)))
                if major > 9 || (major == 9 && minor.is_some_and(|m| m >= 1)) => {}
            (Era::Corosync3, None) => warn.push(format!(
                "passing --token-coefficient {tc} without knowing the Proxmox VE release (no pveversion): it needs 9.1 or later"
            )),
            (_, Some((major, minor))) => {
                return Err(format!(
                    "token_coefficient needs Proxmox VE 9.1 or later (pvecm create --token-coefficient), this node runs {major}.{}: leave token_coefficient out (set totem.token_coefficient in corosync.conf by hand instead)",
                    minor.map_or("x".to_string(), |m| m.to_string())
                ))
            }
            (_, None) => {
                return Err("token_coefficient needs Proxmox VE 9.1 or later (corosync 3): leave it out on this era".to_string())
            }
        }
    }
    Ok(warn)
}

/// The argv of `pvecm create` / `pvecm add` for an era, plus warnings about options the
/// era does not have.
fn build_argv(
    pvecm: &str,
    c: Change<'_>,
    era: Era,
    pve_major: Option<u32>,
) -> (Vec<String>, Vec<String>) {
    let dash = if era == Era::Corosync3 { "--" } else { "-" };
    let opt = |argv: &mut Vec<String>, k: &str, v: String| {
        argv.push(format!("{dash}{k}"));
        argv.push(v);
    };
    let mut warn = Vec::new();
    let n = c.node;
    let mut argv = vec![pvecm.to_string(), c.sub().to_string()];
    argv.push(match c.peer {
        None => n.name.clone(),
        Some(p) => p.addr.clone(),
    });
    if let Some(l) = &n.link0 {
        match era {
            // PVE 3: no option; name resolution (checked in pre-flight) decides.
            Era::Cman => {}
            Era::Corosync2 => opt(&mut argv, "ring0_addr", link0_address(l).to_string()),
            Era::Corosync3 => opt(&mut argv, "link0", l.clone()),
        }
    }
    for (k, l) in &n.links {
        match era {
            // refused before (era_limits): PVE 3 has no ring option, PVE 4/5 ring1 only
            Era::Cman => {}
            Era::Corosync2 if *k == 1 => {
                let addr = link0_address(l).to_string();
                // create binds ring1 to its network (bindnet1_addr), as ring1 needs on PVE 4/5
                if !c.joining() {
                    opt(&mut argv, "bindnet1_addr", addr.clone());
                }
                opt(&mut argv, "ring1_addr", addr);
            }
            Era::Corosync2 => {}
            Era::Corosync3 => opt(&mut argv, &format!("link{k}"), l.clone()),
        }
    }
    if let Some(id) = n.nodeid {
        opt(&mut argv, "nodeid", id.to_string());
    }
    if let Some(v) = n.votes {
        opt(&mut argv, "votes", v.to_string());
    }
    if let (Some(tc), Era::Corosync3, false) = (n.token_coefficient, era, c.joining()) {
        opt(&mut argv, "token-coefficient", tc.to_string());
    }
    if let Some(p) = c.peer {
        let pve4 = era == Era::Corosync2 && pve_major == Some(4);
        let ssh_only = era == Era::Cman || pve4;
        // PVE 3 and 4 join over SSH only: use_ssh is what they do anyway.
        if p.use_ssh && !ssh_only {
            opt(&mut argv, "use_ssh", "1".into());
        }
        if let Some(fp) = &p.fingerprint {
            if ssh_only {
                warn.push(
                    "fingerprint is ignored: this Proxmox VE release joins over SSH only"
                        .to_string(),
                );
            } else {
                opt(&mut argv, "fingerprint", fp.clone());
            }
        }
        if p.force {
            opt(&mut argv, "force", "1".into());
        }
        if !p.use_ssh && !ssh_only {
            warn.push("joining over the API makes pvecm add ask for the peer's root password, which a module cannot type: set use_ssh: true (with root SSH keys)".to_string());
        }
    }
    (argv, warn)
}

// ---------------------------------------------------------------------------------------
// Reading the state (edges)

#[derive(Debug, Clone)]
enum Current {
    Member(ClusterFacts),
    NotMember,
    /// A cluster configuration exists but the cluster stack is down.
    StackDown {
        name: Option<String>,
        /// PVE 3 (cman, SysV services) rather than corosync 2/3 (systemd).
        cman: bool,
    },
    /// PVE 4+: no /etc/pve/corosync.conf, but this node's own corosync config (with a
    /// config_version) and authkey exist: it was joined, and /etc/pve is most likely not
    /// mounted (pmxcfs down or a dead FUSE mount). Creating or joining now would be wrong.
    PveMissing {
        name: Option<String>,
    },
    /// Nothing recognisable: the status command's output.
    Unknown(Output),
}

fn combined(o: &Output) -> String {
    format!("{}{}", o.stdout, o.stderr)
}

/// `cluster_name` and `config_version` from a corosync.conf text (first occurrences).
fn corosync_conf_facts(text: &str) -> (Option<String>, Option<u64>) {
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some((k, v)) = line.split_once(':') {
            match k.trim() {
                "cluster_name" if name.is_none() => {
                    name = Some(v.trim().to_string()).filter(|s| !s.is_empty())
                }
                "config_version" if version.is_none() => version = v.trim().parse().ok(),
                _ => {}
            }
        }
    }
    (name, version)
}

/// The cluster name where `pvecm status` does not print it (corosync 2): corosync.conf.
fn conf_facts(env: &Env) -> (Option<String>, Option<u64>) {
    env.corosync_confs
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| corosync_conf_facts(&t))
        .find(|f| f.0.is_some())
        .unwrap_or((None, None))
}

/// PVE 4+: `Some(cluster name)` when this node has its own cluster corosync config (one with a
/// `config_version`, unlike Debian's default corosync.conf) and an authkey, as `pvecm create`
/// and `pvecm add` leave them in /etc/corosync.
fn local_corosync_cluster(env: &Env) -> Option<Option<String>> {
    let dir = &env.corosync_dir;
    if !dir.join("authkey").exists() {
        return None;
    }
    let text = std::fs::read_to_string(dir.join("corosync.conf")).ok()?;
    let (name, version) = corosync_conf_facts(&text);
    version.map(|_| name)
}

/// PVE 3: `Some(cluster name)` when a cluster.conf exists, which tells that this node is in
/// a cluster even though cman is stopped (pmxcfs copies it to /etc/cluster/cluster.conf).
fn cman_conf(env: &Env) -> Option<Option<String>> {
    let text = env
        .cluster_confs
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())?;
    Some(
        pve2node::pve::cluster_conf::parse(&text)
            .ok()
            .and_then(|c| c.cluster.attr("name").map(|a| a.value.clone()))
            .filter(|n| !n.is_empty()),
    )
}

fn read_state(pvecm: &str, env: &Env, limit: Duration) -> Result<(Current, Option<Era>), Failure> {
    let t = limit.clamp(Duration::from_secs(1), READ_TIMEOUT);
    let argv = vec![pvecm.to_string(), "status".to_string()];
    let out = run::run(&argv, t).map_err(|e| run_err(pvecm, e))?;
    let text = combined(&out);
    let st = pst::parse_status(&out.stdout);
    let era = st.era.or_else(|| pst::era_from_error(&text));
    if st.has_quorum_info() {
        let nodes_argv = vec![pvecm.to_string(), "nodes".to_string()];
        let rows = match run::run(&nodes_argv, t) {
            Ok(o) => pst::parse_nodes(&o.stdout),
            Err(_) => Vec::new(),
        };
        let mut f = pst::merge(&st, &rows);
        if f.name.is_none() {
            let (n, v) = conf_facts(env);
            f.name = n;
            f.config_version = f.config_version.or(v);
        }
        if f.member {
            return Ok((Current::Member(f), era));
        }
        return Ok((Current::NotMember, era));
    }
    let cur = match pst::recognise_no_cluster(&text) {
        Some(NoCluster::NoConfig) => match local_corosync_cluster(env) {
            Some(name) => Current::PveMissing { name },
            None => Current::NotMember,
        },
        // cman_tool says the same for "no cluster" and "cman stopped": cluster.conf tells.
        Some(NoCluster::CmanNotRunning) => match cman_conf(env) {
            Some(name) => Current::StackDown { name, cman: true },
            None => Current::NotMember,
        },
        Some(NoCluster::CorosyncNotRunning) => {
            let name = st.name.clone().or_else(|| conf_facts(env).0);
            Current::StackDown { name, cman: false }
        }
        None => Current::Unknown(out),
    };
    Ok((cur, era))
}

/// A tool next to a `pvecm` given as a path, else from $PATH.
fn beside_pvecm(pvecm: &str, tool: &str) -> Option<PathBuf> {
    if pvecm.contains('/') {
        let p = Path::new(pvecm).parent()?.join(tool);
        run::which(&p.to_string_lossy())
    } else {
        run::which(tool)
    }
}

/// Each link's state per node, from `corosync-cfgtool -s` (and `-n` on corosync 3 for the
/// peers' addresses); `None` when the tool is missing or says nothing readable.
fn read_links(pvecm: &str, era: Era) -> Option<Value> {
    use pve2node::pve::links;
    let exe = beside_pvecm(pvecm, "corosync-cfgtool")?
        .to_string_lossy()
        .into_owned();
    let s = run::run(&[exe.clone(), "-s".into()], READ_TIMEOUT).ok()?;
    let st = links::parse_status(&s.stdout)?;
    let peers = if era == Era::Corosync3 {
        run::run(&[exe, "-n".into()], READ_TIMEOUT)
            .ok()
            .and_then(|o| links::parse_nodes(&o.stdout))
            .map(|(_, p)| p)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Some(links::facts(&st, &peers))
}

/// `pveversion` next to a `pvecm` given as a path, else from $PATH.
fn read_pve_version(pvecm: &str) -> Option<pst::PveVersion> {
    let exe = if pvecm.contains('/') {
        let dir = Path::new(pvecm).parent()?;
        let p = dir.join("pveversion");
        run::which(&p.to_string_lossy())?
    } else {
        run::which("pveversion")?
    };
    let out = run::run(
        &[exe.to_string_lossy().into_owned()],
        Duration::from_secs(15),
    )
    .ok()?;
    pst::parse_pveversion(&out.stdout)
}

// ---------------------------------------------------------------------------------------
// Decision (pure)

#[derive(Debug, Clone, PartialEq)]
enum Plan {
    /// Already what was asked for.
    Nothing(String),
    /// Run the create or join.
    Run,
}

fn alone(f: &ClusterFacts) -> bool {
    f.nodes.len() <= 1 && f.expected_votes.unwrap_or(1) <= 1
}

fn decide(c: Change<'_>, cur: &Current) -> Result<Plan, Refusal> {
    let want = c.node.name.as_str();
    match cur {
        Current::NotMember => Ok(Plan::Run),
        Current::StackDown { name, cman } => Err(Refusal::StackDown {
            name: name.clone(),
            cman: *cman,
        }),
        Current::PveMissing { name } => Err(Refusal::PveMissing(name.clone())),
        Current::Unknown(o) => Err(Refusal::Unreadable(unknown_msg(o))),
        Current::Member(f) => {
            let Some(have) = f.name.as_deref() else {
                return Err(Refusal::NameUnknown);
            };
            match c.peer {
                Some(p) if alone(f) && !f.has_node(&p.addr) => {
                    if p.force {
                        Ok(Plan::Run)
                    } else {
                        Err(Refusal::OwnCluster {
                            have: have.into(),
                            want: want.into(),
                            peer: p.addr.clone(),
                        })
                    }
                }
                _ if have == want => Ok(Plan::Nothing(format!(
                    "this node is already a member of cluster '{have}'"
                ))),
                _ => Err(Refusal::OtherCluster {
                    have: have.into(),
                    want: want.into(),
                }),
            }
        }
    }
}

fn unknown_msg(o: &Output) -> String {
    let cause = pst::likely_cause(&combined(o))
        .map(|c| format!(": {c}"))
        .unwrap_or_default();
    format!(
        "cannot read the cluster state: `{}` {}{cause}",
        o.cmdline(),
        o.describe()
    )
}

/// Is the state after a create/join what was asked for?
fn reached(c: Change<'_>, cur: &Current) -> bool {
    let Current::Member(f) = cur else {
        return false;
    };
    let expected = if c.joining() { 2 } else { 1 };
    f.name.as_deref().is_none_or(|n| n == c.node.name)
        && f.quorate == Some(true)
        && f.online_count() >= expected
}

fn summary(cur: &Current) -> String {
    match cur {
        Current::Member(f) => format!(
            "member of '{}', quorate: {}, {} node(s) online",
            f.name.as_deref().unwrap_or("?"),
            match f.quorate {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            },
            f.online_count()
        ),
        Current::NotMember => "not in a cluster".into(),
        Current::StackDown { .. } => "cluster configured but corosync/cman not running".into(),
        Current::PveMissing { name } => pve_missing_msg(name.as_deref()),
        Current::Unknown(o) => format!("status unreadable ({})", o.describe()),
    }
}

fn facts_of(cur: &Current, era: Option<Era>) -> ClusterFacts {
    match cur {
        Current::Member(f) => {
            let mut f = f.clone();
            f.era = f.era.or(era);
            f
        }
        Current::StackDown { name, .. } | Current::PveMissing { name } => ClusterFacts {
            member: true,
            name: name.clone(),
            era,
            ..ClusterFacts::default()
        },
        _ => pst::not_member(era),
    }
}

fn prompt_msg(p: Prompt, c: Change<'_>) -> String {
    let what = c.sub();
    let peer = c.peer_addr();
    match p {
        Prompt::Password => format!(
            "pvecm {what} asked for the root password of '{peer}', which cannot be typed here: set use_ssh: true and install this node's root SSH key on the peer"
        ),
        Prompt::Fingerprint => format!(
            "pvecm {what} asked to confirm the certificate fingerprint of '{peer}': set fingerprint to the peer's SHA256 fingerprint (`pvenode cert info` on the peer), or use use_ssh: true"
        ),
    }
}

/// The part of pvecm's output whose known messages explain a failure. With `force`, PVE 5+
/// lists the join checks that failed (`* ...` lines) and goes on ("detected error but forced
/// to continue"): those are warnings the user overrode, not why a join failed.
fn failure_text(text: &str) -> String {
    if !text.contains("detected error but forced to continue") {
        return text.to_string();
    }
    text.lines()
        .filter(|l| !l.trim_start().starts_with("* "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The likely cause of a join the peer refused as not ready. pvecm's own line about the
/// failed ssh command is a consequence, not a reason to check ssh access.
fn not_ready_cause(text: &str) -> String {
    let rest: String = text
        .lines()
        .filter(|l| {
            !l.contains(PEER_NOT_READY) && !l.contains("unable to add node: command failed")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let mut c = vec![format!(
        "the peer refused the join with `{PEER_NOT_READY}`: its cluster filesystem /etc/pve is still read-only (pmxcfs has no quorum yet, as for a few seconds after `pvecm create` or a corosync restart there); check `pvecm status` and that /etc/pve is writable on the peer, then run again"
    )];
    c.extend(pst::likely_causes(&rest).into_iter().map(str::to_string));
    c.join("; ")
}

/// The known message(s) in a create/join output, and whether it is the peer's "not ready".
fn cause_of(c: Change<'_>, out: &Output) -> (Option<String>, bool) {
    let text = failure_text(&combined(out));
    if c.joining() && text.contains(PEER_NOT_READY) {
        (Some(not_ready_cause(&text)), true)
    } else if c.joining() && text.contains(JOIN_FEWER_LINKS) {
        (Some(format!(
            "the cluster has more than one corosync link and pvecm add got {}: give this node's address on every link the cluster has (link0, link1, ...), as `{JOIN_FEWER_LINKS}` says",
            match 1 + c.node.links.len() {
                1 if c.node.link0.is_none() => "none".to_string(),
                n => format!("{n}"),
            }
        )), false)
    } else {
        (pst::likely_cause(&text), false)
    }
}

// ---------------------------------------------------------------------------------------
// This node's cluster filesystem: what /etc/pve shows (edge) and what it means (pure)

/// What /etc/pve shows about pmxcfs's quorum. Each is `None` when that form is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PveFs {
    /// `.members`' `"quorate"` field (pmxcfs writes `"quorate": 1` once it has quorum).
    members_quorate: Option<bool>,
    /// The `local` symlink (-> `nodes/NAME`): its target's write bit, and the mount not
    /// read-only.
    local_writable: Option<bool>,
    /// /etc/pve itself: its write bit and the mount not read-only.
    dir_writable: Option<bool>,
}

/// Writable when the first form present says so; none present (no /etc/pve) is not waited
/// for.
fn pmxcfs_writable(fs: &PveFs) -> bool {
    fs.members_quorate
        .or(fs.local_writable)
        .or(fs.dir_writable)
        .unwrap_or(true)
}

/// The value of the first `"quorate": N` in a `.members` text.
fn members_quorate(text: &str) -> Option<bool> {
    let key = "\"quorate\"";
    let at = text.find(key)?;
    let rest = text.get(at + key.len()..)?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    if rest.starts_with("true") {
        return Some(true);
    }
    if rest.starts_with("false") {
        return Some(false);
    }
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<u64>().ok().map(|n| n != 0)
}

/// A directory's owner write bit, and its mount not read-only (EROFS).
fn dir_writable(p: &Path) -> Option<bool> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(p).ok()?;
    if !m.is_dir() {
        return None;
    }
    Some(m.permissions().mode() & 0o200 != 0 && !mount_read_only(p))
}

fn mount_read_only(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::statvfs(c.as_ptr(), &mut st) == 0 && st.f_flag & libc::ST_RDONLY != 0
    }
}

fn read_pve_fs(dir: &Path) -> PveFs {
    use std::io::Read;
    let members = std::fs::File::open(dir.join(".members"))
        .ok()
        .and_then(|f| {
            let mut s = String::new();
            f.take(MEMBERS_MAX).read_to_string(&mut s).ok()?;
            members_quorate(&s)
        });
    let local = dir.join("local");
    let local_writable = match std::fs::symlink_metadata(&local) {
        Ok(m) if m.file_type().is_symlink() => Some(dir_writable(&local).unwrap_or(false)),
        _ => None,
    };
    PveFs {
        members_quorate: members,
        local_writable,
        dir_writable: dir_writable(dir),
    }
}

// ---------------------------------------------------------------------------------------
// The wait after a create/join: its stop rule (pure)

/// What one poll after the command saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// The cluster state asked for (member of `name`, quorate, enough nodes online).
    reached: bool,
    /// This node's /etc/pve is writable (pmxcfs has quorum).
    fs_writable: bool,
}

/// What the command that ran told, and where the wait stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ran {
    /// Its output holds a known error message.
    known_error: bool,
    /// A join the peer refused with `cluster not ready - no quorum?`.
    peer_not_ready: bool,
    rc_ok: bool,
    wait: bool,
    /// The grace after a failed exit (or the whole timeout) is over.
    past_grace: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Done,
    NotWaiting,
    Poll,
    Rerun,
    GiveUp,
}

/// The wait's stop rule. The cluster state alone is not enough after a create or join: this
/// node's cluster filesystem must be writable too (right after `pvecm create` corosync is
/// quorate at once but pmxcfs stays read-only for ~4.5 s, and a join through it fails). A
/// known error message ends the wait at once; a non-zero exit without one gets a short grace
/// (the cluster may still have come up, e.g. when only a late service restart failed).
fn next_step(seen: Seen, ran: Ran) -> Next {
    match (seen.reached, seen.fs_writable) {
        (true, true) => return Next::Done,
        (true, false) if !ran.wait => return Next::Done,
        (true, false) => return Next::Poll,
        _ => {}
    }
    if ran.peer_not_ready {
        return Next::Rerun;
    }
    if !ran.wait && ran.rc_ok && !ran.known_error {
        return Next::NotWaiting;
    }
    if ran.known_error || !ran.wait || ran.past_grace {
        return Next::GiveUp;
    }
    Next::Poll
}

// ---------------------------------------------------------------------------------------
// Running the create/join and waiting (edge)

/// How a create/join ended.
#[derive(Debug, Clone, PartialEq)]
enum Settled {
    /// The state asked for, with /etc/pve writable after this long after the cluster was up
    /// (`None`: not looked at, with wait: false).
    Done(Option<Duration>),
    /// wait: false and no known error: not waited for.
    NotWaiting,
    Prompt(Prompt),
    /// The command itself ran out of time (with the likely cause, if its output tells).
    CommandTimedOut(Option<String>),
    /// A known error, a failed exit after its grace, or the timeout (with the likely cause).
    GaveUp(Option<String>),
    /// The peer kept refusing the join as not ready until too little time was left.
    NotReady,
    /// The cluster came up but /etc/pve stayed read-only until the deadline (for this long).
    FsReadOnly(Duration),
}

/// One run of the command: run it again, or how it ended.
enum Step {
    Rerun,
    End(Settled),
}

/// What [`apply`] leaves for [`report`].
#[derive(Debug)]
struct Applied {
    settled: Settled,
    /// The output of the last run (for `NotReady`, the last refusal).
    out: Output,
    attempts: u32,
    spent: Duration,
    /// The last state read.
    last: Current,
}

/// Runs the create/join (again while the peer refuses it as not ready) and waits for the
/// state afterwards, all within `deadline`.
fn apply(
    a: &Args,
    env: &Env,
    c: Change<'_>,
    argv: &[String],
    cur: &Current,
    deadline: Instant,
) -> Result<Applied, Failure> {
    let mut attempts = 0u32;
    let mut last = cur.clone();
    let mut refused = None;
    let total = deadline.saturating_duration_since(Instant::now());
    let r = wait::until(total, RETRY_EVERY, |left| {
        if attempts > 0 && left < RETRY_MIN_LEFT {
            return Some(Ok(None));
        }
        attempts += 1;
        let out = match run::run(argv, left.max(Duration::from_secs(1))) {
            Ok(o) => o,
            Err(e) => return Some(Err(run_err(&a.pvecm, e))),
        };
        match settle(a, env, c, &out, deadline, &mut last) {
            Ok(Step::Rerun) => {
                refused = Some(out);
                None
            }
            Ok(Step::End(s)) => Some(Ok(Some((s, out)))),
            Err(f) => Some(Err(f)),
        }
    });
    let (settled, out, spent) = match r {
        Ok((Ok(Some((s, out))), spent)) => (s, out, spent),
        Ok((Err(f), _)) => return Err(f),
        Ok((Ok(None), spent)) | Err(spent) => {
            (Settled::NotReady, refused.unwrap_or_default(), spent)
        }
    };
    Ok(Applied {
        settled,
        out,
        attempts,
        spent,
        last,
    })
}

/// After one create/join command: polls the cluster state (and, once it is reached, this
/// node's /etc/pve) until the stop rule says how it ended or the deadline passes.
fn settle(
    a: &Args,
    env: &Env,
    c: Change<'_>,
    out: &Output,
    deadline: Instant,
    last: &mut Current,
) -> Result<Step, Failure> {
    if let Some(p) = pst::detect_prompt(&combined(out)) {
        return Ok(Step::End(Settled::Prompt(p)));
    }
    let (cause, peer_not_ready) = cause_of(c, out);
    if out.timed_out {
        return Ok(Step::End(Settled::CommandTimedOut(cause)));
    }
    let grace_end = if out.success() {
        deadline
    } else {
        deadline.min(Instant::now() + FAILED_RC_GRACE)
    };
    let mut up_since: Option<Instant> = None;
    let left = deadline.saturating_duration_since(Instant::now());
    let r = wait::until(left, POLL_INTERVAL, |left| {
        *last = match read_state(&a.pvecm, env, left) {
            Ok((s, _)) => s,
            Err(f) => return Some(Err(f)),
        };
        let reached = reached(c, last);
        let mut waited = None;
        let fs_writable = reached && a.wait && {
            let since = *up_since.get_or_insert_with(Instant::now);
            let ok = pmxcfs_writable(&read_pve_fs(&env.etc_pve));
            waited = Some(since.elapsed());
            ok
        };
        let ran = Ran {
            known_error: cause.is_some(),
            peer_not_ready,
            rc_ok: out.success(),
            wait: a.wait,
            past_grace: Instant::now() >= grace_end,
        };
        match next_step(
            Seen {
                reached,
                fs_writable,
            },
            ran,
        ) {
            Next::Poll => None,
            Next::Done => Some(Ok(Step::End(Settled::Done(waited)))),
            Next::NotWaiting => Some(Ok(Step::End(Settled::NotWaiting))),
            Next::Rerun => Some(Ok(Step::Rerun)),
            Next::GiveUp => Some(Ok(Step::End(Settled::GaveUp(cause.clone())))),
        }
    });
    match r {
        Ok((s, _)) => s,
        Err(_) => Ok(Step::End(match up_since {
            Some(t) if reached(c, last) => Settled::FsReadOnly(t.elapsed()),
            _ => Settled::GaveUp(cause),
        })),
    }
}

// ---------------------------------------------------------------------------------------
// Results (pure)

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// The module result of a create/join that ran.
fn report(
    c: Change<'_>,
    era: Era,
    timeout: Duration,
    etc_pve: &Path,
    ap: &Applied,
    checks: Vec<Value>,
) -> Result<Outcome, Failure> {
    let what = c.what();
    let state = summary(&ap.last);
    let cluster = facts_of(&ap.last, Some(era)).to_json();
    let fail = |msg: String| {
        with_output(Failure::new(msg), &ap.out)
            .with("preflight", checks.clone())
            .with("cluster", cluster.clone())
            .with("attempts", ap.attempts)
    };
    let done = |msg: String| {
        with_output(Outcome::new(true, msg), &ap.out)
            .with("preflight", checks.clone())
            .with("cluster", cluster.clone())
            .with("attempts", ap.attempts)
    };
    match &ap.settled {
        Settled::Done(w) => {
            let r = done(format!("{}: {state}", c.past()));
            Ok(match w {
                Some(w) => r.with("waited_for_pmxcfs", secs(*w)),
                None => r,
            })
        }
        Settled::NotWaiting => Ok(done(format!(
            "ran pvecm to {what} (not waiting; now {state})"
        ))),
        Settled::Prompt(p) => Err(fail(prompt_msg(*p, c))),
        Settled::CommandTimedOut(cause) => {
            let why = cause
                .as_ref()
                .map(|c| format!(" (likely cause: {c})"))
                .unwrap_or_default();
            Err(fail(format!("pvecm {} {}{why}", c.sub(), ap.out.describe())))
        }
        Settled::GaveUp(cause) => {
            let why = match cause {
                Some(c) => format!("likely cause: {c}"),
                None if !ap.out.success() => format!("pvecm {}", ap.out.describe()),
                None => format!("not reached within {} s", timeout.as_secs()),
            };
            Err(fail(format!("failed to {what}: {why}; last status: {state}")))
        }
        Settled::NotReady => Err(fail(format!(
            "failed to {what}: likely cause: {} ({} attempts in {:.0} s); last status: {state}",
            not_ready_cause(&failure_text(&combined(&ap.out))),
            ap.attempts,
            ap.spent.as_secs_f64(),
        ))),
        Settled::FsReadOnly(w) => Err(fail(format!(
            "failed to {what}: the cluster is up ({state}) but its filesystem {} is still read-only after {:.1} s (pmxcfs has no quorum yet, so a join through this node would be refused): check `journalctl -u pve-cluster`, or raise timeout",
            etc_pve.display(),
            w.as_secs_f64()
        ))
        .with("waited_for_pmxcfs", secs(*w))),
    }
}

// ---------------------------------------------------------------------------------------
// Module logic: the phases in order

fn logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let a = args(&ctx.params).map_err(|e| Failure::new(e.to_string()))?;
    let env = Env::read();
    let deadline = Instant::now() + a.timeout;
    let (cur, layout_era) = read_state(&a.pvecm, &env, READ_TIMEOUT)?;
    // token_coefficient depends on the release (9.1+), not only on the era.
    let wants_release =
        matches!(&a.mode, Mode::Create { node } if node.token_coefficient.is_some());
    let (era, pve) = match a.era {
        Some(e) if !wants_release => (Some(e), None),
        given => {
            let v = read_pve_version(&a.pvecm);
            let release = v.as_ref().map(|v| (v.major, minor_of(&v.version)));
            (given.or(v.and_then(|v| v.era())).or(layout_era), release)
        }
    };
    let c = match &a.mode {
        Mode::Info => return info(ctx, &a, &env, &cur, era),
        Mode::Create { node } => Change { node, peer: None },
        Mode::Join { node, peer } => Change {
            node,
            peer: Some(peer),
        },
    };
    present(ctx, &a, &env, c, &cur, (era, pve), deadline)
}

/// `state: info`: the facts, and a warning where the stack is down.
fn info(
    ctx: &mut Ctx,
    a: &Args,
    env: &Env,
    cur: &Current,
    era: Option<Era>,
) -> Result<Outcome, Failure> {
    let mut cluster = facts_of(cur, era).to_json();
    // what this node's /etc/pve says: writable, and the copy of corosync.conf behind or ahead
    let (w, how) = pve2node::pve::pmxcfs::writable(&env.etc_pve);
    let drift = pve2node::pve::pmxcfs::corosync_drift(
        &env.etc_pve.join("corosync.conf"),
        &env.corosync_dir.join("corosync.conf"),
    );
    if let Value::Object(m) = &mut cluster {
        m.insert("pve_writable".into(), json!(w));
        m.insert("pve_writable_from".into(), json!(how));
        m.insert("config_version_drift".into(), drift);
        // the QDevice as /etc/pve/corosync.conf configures it; in_runtime: corosync's Qdevice flag
        let text = std::fs::read_to_string(env.etc_pve.join("corosync.conf")).unwrap_or_default();
        let dev = pve2node::pve::corosync_conf::parse(&text)
            .ok()
            .and_then(|c| pve2node::pve::qdevice::device_conf(&c, &text));
        let local_words: Option<Vec<String>> = match cur {
            Current::Member(f) => f
                .nodes
                .iter()
                .find(|n| n.local)
                .and_then(|n| n.qdevice.clone()),
            _ => None,
        };
        let in_runtime = m.get("flags").and_then(Value::as_array).is_some_and(|f| {
            f.iter().any(|x| {
                x.as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case("qdevice"))
            })
        });
        m.insert(
            "qdevice".into(),
            json!({
                "configured": dev.is_some(),
                "model": dev.as_ref().and_then(|d| d.model.clone()),
                "host": dev.as_ref().and_then(|d| d.host.clone()),
                "algorithm": dev.as_ref().and_then(|d| d.algorithm.clone()),
                "votes": dev.as_ref().and_then(|d| d.votes.clone()),
                "in_runtime": in_runtime,
                // corosync's Qdevice column: this node's words (`A`, `V`/`NV`, `NMW`), whether it
                // holds the device's vote now, and the device row's votes
                "device_votes": m.get("qdevice_votes").cloned().unwrap_or(Value::Null),
                "local_state": local_words.clone(),
                "vote_held": local_words.as_ref().map(|w| w.iter().any(|x| x == "V")),
            }),
        );
    }
    if let (Current::Member(_), Some(e @ (Era::Corosync2 | Era::Corosync3))) = (cur, era) {
        if let (Some(links), Value::Object(m)) = (read_links(&a.pvecm, e), &mut cluster) {
            m.insert("links".into(), links);
        }
    }
    match cur {
        Current::Unknown(o) => {
            return Err(with_output(Failure::new(unknown_msg(o)), o).with("cluster", cluster));
        }
        Current::StackDown { .. } => {
            ctx.warn("this node has a cluster configuration but corosync/cman is not running");
        }
        Current::PveMissing { name } => ctx.warn(pve_missing_msg(name.as_deref())),
        _ => {}
    }
    let msg = match cur {
        Current::NotMember => "this node is not in a cluster".to_string(),
        other => summary(other),
    };
    Ok(Outcome::new(false, msg).with("cluster", cluster))
}

/// `state: present`: decide, check, plan, and in a real run create or join and wait.
fn present(
    ctx: &mut Ctx,
    a: &Args,
    env: &Env,
    c: Change<'_>,
    cur: &Current,
    (era, pve_major): (Option<Era>, Option<(u32, Option<u32>)>),
    deadline: Instant,
) -> Result<Outcome, Failure> {
    let cluster = facts_of(cur, era).to_json();
    match decide(c, cur) {
        Ok(Plan::Nothing(msg)) => return Ok(Outcome::new(false, msg).with("cluster", cluster)),
        Ok(Plan::Run) => {}
        Err(r) => {
            let f = Failure::new(r.to_string()).with("cluster", cluster);
            return Err(match cur {
                Current::Unknown(o) => with_output(f, o),
                _ => f,
            });
        }
    }

    let checks = preflight(c, &read_local(env));
    let checks_json: Vec<Value> = checks.iter().map(Check::json).collect();
    if let Some(bad) = checks.iter().find(|c| !c.ok) {
        // In check mode the tasks before this one (hosts_pin above all) changed nothing, so a
        // failing pre-flight may well pass in the real run: report it, do not fail the plan.
        if !ctx.check_mode {
            return Err(Failure::new(bad.msg.clone())
                .with("preflight", checks_json)
                .with("cluster", cluster));
        }
        ctx.warn(format!(
            "pre-flight would fail now: {} (in check mode earlier tasks changed nothing, so this may pass in the real run)",
            bad.msg
        ));
    }

    let (era, warning) = argv_era(era, c).map_err(|m| {
        Failure::new(m)
            .with("preflight", checks_json.clone())
            .with("cluster", cluster.clone())
    })?;
    if let Some(w) = warning {
        ctx.warn(w);
    }
    let limits = era_limits(c, era, pve_major).map_err(|m| {
        Failure::new(m)
            .with("preflight", checks_json.clone())
            .with("cluster", cluster.clone())
    })?;
    for w in limits {
        ctx.warn(w);
    }
    let (argv, warnings) = build_argv(&a.pvecm, c, era, pve_major.map(|v| v.0));
    for w in warnings {
        ctx.warn(w);
    }
    if ctx.check_mode {
        return Ok(Outcome::new(true, format!("would {}", c.what()))
            .with("cmd", json!(argv))
            .with("preflight", checks_json)
            .with("cluster", cluster));
    }

    let applied = apply(a, env, c, &argv, cur, deadline)
        .map_err(|f| f.with("preflight", checks_json.clone()))?;
    report(c, era, a.timeout, &env.etc_pve, &applied, checks_json)
}

fn main() {
    protocol::run(&SPEC, logic)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        Node {
            name: "lab".into(),
            link0: None,
            links: vec![],
            nodeid: None,
            votes: None,
            token_coefficient: None,
        }
    }

    fn peer(addr: &str) -> Peer {
        Peer {
            addr: addr.into(),
            use_ssh: false,
            fingerprint: None,
            force: false,
        }
    }

    fn create(n: &Node) -> Change<'_> {
        Change {
            node: n,
            peer: None,
        }
    }

    fn join<'a>(n: &'a Node, p: &'a Peer) -> Change<'a> {
        Change {
            node: n,
            peer: Some(p),
        }
    }

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_per_era() {
        let mut n = node();
        n.link0 = Some("10.99.0.1".into());
        n.nodeid = Some(1);
        let c = create(&n);
        assert_eq!(
            build_argv("pvecm", c, Era::Corosync3, None).0,
            v(&[
                "pvecm",
                "create",
                "lab",
                "--link0",
                "10.99.0.1",
                "--nodeid",
                "1"
            ])
        );
        assert_eq!(
            build_argv("pvecm", c, Era::Corosync2, Some(5)).0,
            v(&[
                "pvecm",
                "create",
                "lab",
                "-ring0_addr",
                "10.99.0.1",
                "-nodeid",
                "1"
            ])
        );
        assert_eq!(
            build_argv("pvecm", c, Era::Cman, None).0,
            v(&["pvecm", "create", "lab", "-nodeid", "1"])
        );
        let mut n = node();
        n.link0 = Some("address=10.99.0.2,priority=10".into());
        n.votes = Some(1);
        let mut p = peer("10.99.0.1");
        p.use_ssh = true;
        p.force = true;
        p.fingerprint = Some("AB".into());
        let c = join(&n, &p);
        assert_eq!(
            build_argv("pvecm", c, Era::Corosync3, Some(8)).0,
            v(&[
                "pvecm",
                "add",
                "10.99.0.1",
                "--link0",
                "address=10.99.0.2,priority=10",
                "--votes",
                "1",
                "--use_ssh",
                "1",
                "--fingerprint",
                "AB",
                "--force",
                "1"
            ])
        );
        assert_eq!(
            build_argv("pvecm", c, Era::Corosync2, Some(5)).0,
            v(&[
                "pvecm",
                "add",
                "10.99.0.1",
                "-ring0_addr",
                "10.99.0.2",
                "-votes",
                "1",
                "-use_ssh",
                "1",
                "-fingerprint",
                "AB",
                "-force",
                "1"
            ])
        );
        let (argv, warn) = build_argv("pvecm", c, Era::Corosync2, Some(4));
        assert_eq!(
            argv,
            v(&[
                "pvecm",
                "add",
                "10.99.0.1",
                "-ring0_addr",
                "10.99.0.2",
                "-votes",
                "1",
                "-force",
                "1"
            ])
        );
        assert_eq!(warn.len(), 1);
        let (argv, warn) = build_argv("pvecm", c, Era::Cman, None);
        assert_eq!(
            argv,
            v(&["pvecm", "add", "10.99.0.1", "-votes", "1", "-force", "1"])
        );
        assert_eq!(warn.len(), 1);
        // an API join (PVE 5+) warns that it will ask for a password
        p.use_ssh = false;
        p.fingerprint = None;
        let (_, warn) = build_argv("pvecm", join(&n, &p), Era::Corosync3, Some(8));
        assert!(warn[0].contains("use_ssh: true"), "{warn:?}");
        assert!(build_argv("pvecm", join(&n, &p), Era::Cman, None)
            .1
            .is_empty());
    }

    fn local(hosts: &str, host: &str) -> Local {
        Local {
            hostname: Some(host.into()),
            hosts_file: "/etc/hosts".into(),
            hosts: Ok(hosts.into()),
            addrs: vec!["127.0.0.1".parse().unwrap(), "192.0.2.7".parse().unwrap()],
        }
    }

    #[test]
    fn hosts_lookup_first_line_case_insensitive() {
        let t =
            "# 10.0.0.9 alpha\n127.0.1.1 other\n10.99.0.1 Alpha.lab alpha # c\n10.99.0.5 alpha\n";
        assert_eq!(
            pve2node::hosts::lookup(t, "ALPHA"),
            "10.99.0.1".parse().ok()
        );
        assert_eq!(pve2node::hosts::lookup(t, "gamma"), None);
        assert_eq!(
            pve2node::hosts::lookup("bad alpha\n10.0.0.1 alpha\n", "alpha"),
            "10.0.0.1".parse().ok()
        );
    }

    #[test]
    fn preflight_checks() {
        let mut n = node();
        n.link0 = Some("10.99.0.1".into());
        let a = create(&n);
        let c = preflight(a, &local("10.99.0.1 alpha.lab alpha\n", "alpha.lab"));
        assert!(c.iter().all(|c| c.ok), "{c:?}");
        let c = preflight(a, &local("127.0.1.1 alpha\n", "alpha"));
        assert!(!c[0].ok && c[0].msg.contains("loopback") && c[0].msg.contains("hosts_pin"));
        let c = preflight(a, &local("10.0.0.5 alpha\n", "alpha"));
        assert!(c[0].ok && !c[1].ok && c[1].msg.contains("not to link0 10.99.0.1"));
        let c = preflight(a, &local("", "alpha"));
        assert!(c[0].msg.contains("no entry"));
        let mut l = local("", "alpha");
        l.hosts = Err("No such file or directory".into());
        assert!(preflight(a, &l)[0].msg.contains("cannot read /etc/hosts"));
        // peer checks
        let n = node();
        let l = local("10.99.0.2 beta\n", "beta");
        let c = preflight(join(&n, &peer("10.99.0.2")), &l);
        assert!(!c[1].ok && c[1].msg.contains("this node itself"), "{c:?}");
        for p in ["beta", "127.0.0.1", "192.0.2.7", "BETA"] {
            assert!(!preflight(join(&n, &peer(p)), &l)[1].ok, "{p}");
        }
        assert!(preflight(join(&n, &peer("10.99.0.1")), &l)[1].ok);
        // unresolvable name: pvecm will say
        assert!(preflight(join(&n, &peer("alpha")), &l)[1].ok);
    }

    fn member(name: &str, nodes: usize) -> Current {
        let st = pst::parse_status(if nodes > 1 {
            include_str!("../../tests/fixtures/pve8/pvecm-status.txt")
        } else {
            include_str!("../../tests/fixtures/pve8/pvecm-status-single.txt")
        });
        let mut f = pst::merge(&st, &[]);
        f.name = Some(name.into());
        Current::Member(f)
    }

    #[test]
    fn decisions() {
        let n = node();
        let c = create(&n);
        assert_eq!(decide(c, &Current::NotMember), Ok(Plan::Run));
        assert!(matches!(decide(c, &member("lab", 1)), Ok(Plan::Nothing(_))));
        let Err(m) = decide(c, &member("prod", 2)) else {
            panic!()
        };
        let m = m.to_string();
        assert!(m.contains("'prod'") && m.contains("'lab'"));
        let mut p = peer("10.99.0.1");
        assert_eq!(decide(join(&n, &p), &Current::NotMember), Ok(Plan::Run));
        // already joined: peer in membership, or a multi-node cluster
        assert!(matches!(
            decide(join(&n, &p), &member("lab", 2)),
            Ok(Plan::Nothing(_))
        ));
        p.addr = "10.99.0.9".into();
        let Err(m) = decide(join(&n, &p), &member("lab", 1)) else {
            panic!()
        };
        let m = m.to_string();
        assert!(m.contains("of its own") && m.contains("force"));
        let Err(_) = decide(join(&n, &p), &member("solo", 1)) else {
            panic!()
        };
        p.force = true;
        assert_eq!(decide(join(&n, &p), &member("solo", 1)), Ok(Plan::Run));
        let Err(_) = decide(join(&n, &p), &member("prod", 2)) else {
            panic!()
        };
        assert!(matches!(
            decide(
                join(&n, &p),
                &Current::StackDown {
                    name: Some("lab".into()),
                    cman: false
                }
            ),
            Err(Refusal::StackDown { .. })
        ));
        let down = |cman| {
            Refusal::StackDown {
                name: Some("lab".into()),
                cman,
            }
            .to_string()
        };
        assert!(down(false).contains("(corosync): start it (systemctl start corosync pve-cluster)"));
        assert!(down(true).contains("/etc/init.d/cman start"));
    }

    #[test]
    fn reached_needs_quorum_name_and_count() {
        let n = node();
        let p = peer("10.99.0.1");
        assert!(reached(create(&n), &member("lab", 1)));
        assert!(!reached(join(&n, &p), &member("lab", 1)));
        assert!(reached(join(&n, &p), &member("lab", 2)));
        assert!(!reached(create(&n), &member("other", 1)));
        assert!(!reached(create(&n), &Current::NotMember));
        let st = pst::parse_status(include_str!(
            "../../tests/fixtures/pve8/pvecm-status-not-quorate.txt"
        ));
        assert!(!reached(create(&n), &Current::Member(pst::merge(&st, &[]))));
    }

    #[test]
    fn conf_facts_and_link0() {
        let t = include_str!("../../tests/fixtures/pve5/corosync.conf");
        assert_eq!(corosync_conf_facts(t), (Some("lab".into()), Some(2)));
        assert_eq!(link0_address("address=10.0.0.1,priority=5"), "10.0.0.1");
        assert_eq!(link0_address("10.0.0.1"), "10.0.0.1");
    }

    fn ran() -> Ran {
        Ran {
            known_error: false,
            peer_not_ready: false,
            rc_ok: true,
            wait: true,
            past_grace: false,
        }
    }

    #[test]
    fn stop_rule() {
        let up = |fs| Seen {
            reached: true,
            fs_writable: fs,
        };
        let down = Seen {
            reached: false,
            fs_writable: false,
        };
        // the cluster state alone is not enough: /etc/pve must be writable too
        assert_eq!(next_step(up(true), ran()), Next::Done);
        assert_eq!(next_step(up(false), ran()), Next::Poll);
        // ... even past the grace and with a known message in the output
        let late = Ran {
            past_grace: true,
            known_error: true,
            rc_ok: false,
            ..ran()
        };
        assert_eq!(next_step(up(false), late), Next::Poll);
        assert_eq!(next_step(up(true), late), Next::Done);
        // wait: false never waits for the filesystem
        let nowait = Ran {
            wait: false,
            ..ran()
        };
        assert_eq!(next_step(up(false), nowait), Next::Done);
        assert_eq!(next_step(down, nowait), Next::NotWaiting);
        // a peer not ready: join again (also with wait: false)
        let refused = Ran {
            peer_not_ready: true,
            known_error: true,
            ..ran()
        };
        assert_eq!(next_step(down, refused), Next::Rerun);
        assert_eq!(
            next_step(
                down,
                Ran {
                    wait: false,
                    ..refused
                }
            ),
            Next::Rerun
        );
        assert_eq!(next_step(up(true), refused), Next::Done);
        // not reached yet
        assert_eq!(next_step(down, ran()), Next::Poll);
        let known = Ran {
            known_error: true,
            ..ran()
        };
        assert_eq!(next_step(down, known), Next::GiveUp);
        let failed_rc = Ran {
            rc_ok: false,
            ..ran()
        };
        assert_eq!(next_step(down, failed_rc), Next::Poll);
        assert_eq!(
            next_step(
                down,
                Ran {
                    past_grace: true,
                    ..failed_rc
                }
            ),
            Next::GiveUp
        );
        assert_eq!(
            next_step(
                down,
                Ran {
                    wait: false,
                    ..failed_rc
                }
            ),
            Next::GiveUp
        );
    }

    #[test]
    fn pmxcfs_quorum_forms() {
        let real = "{\n\"nodename\": \"alpha\",\n\"version\": 5,\n\"cluster\": { \"name\": \"lab\", \"version\": 2, \"nodes\": 2, \"quorate\": 1 },\n\"nodelist\": {\n  \"alpha\": { \"id\": 1, \"online\": 1, \"ip\": \"10.99.0.1\"}\n  }\n}\n";
        assert_eq!(members_quorate(real), Some(true));
        assert_eq!(
            members_quorate(&real.replace("\"quorate\": 1", "\"quorate\": 0")),
            Some(false)
        );
        assert_eq!(members_quorate("{\"quorate\":true}"), Some(true));
        // local mode / the old lab: no quorate field
        assert_eq!(
            members_quorate("{\n\"nodename\": \"alpha\",\n\"version\": 1\n}\n"),
            None
        );
        assert_eq!(members_quorate("\"quorate\": x"), None);
        assert_eq!(members_quorate(""), None);
        // the first form present decides; none present is not waited for
        let fs = |m, l, d| PveFs {
            members_quorate: m,
            local_writable: l,
            dir_writable: d,
        };
        assert!(pmxcfs_writable(&fs(None, None, None)));
        assert!(pmxcfs_writable(&fs(Some(true), Some(false), Some(false))));
        assert!(!pmxcfs_writable(&fs(Some(false), Some(true), Some(true))));
        assert!(!pmxcfs_writable(&fs(None, Some(false), Some(true))));
        assert!(pmxcfs_writable(&fs(None, Some(true), Some(false))));
        assert!(!pmxcfs_writable(&fs(None, None, Some(false))));
        assert!(pmxcfs_writable(&fs(None, None, Some(true))));
    }

    #[test]
    fn read_pve_fs_sees_each_form() {
        let d = std::env::temp_dir().join(format!("pvecm-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("nodes/alpha")).unwrap();
        assert_eq!(
            read_pve_fs(&d),
            PveFs {
                dir_writable: Some(true),
                ..PveFs::default()
            }
        );
        std::os::unix::fs::symlink("nodes/alpha", d.join("local")).unwrap();
        std::fs::write(d.join(".members"), "{\"cluster\": {\"quorate\": 0}}").unwrap();
        let fs = read_pve_fs(&d);
        assert_eq!(fs.members_quorate, Some(false));
        assert_eq!(fs.local_writable, Some(true));
        // a dangling `local` is not writable
        std::fs::remove_dir(d.join("nodes/alpha")).unwrap();
        assert_eq!(read_pve_fs(&d).local_writable, Some(false));
        assert_eq!(read_pve_fs(&d.join("missing")), PveFs::default());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn not_ready_cause_drops_the_ssh_hint() {
        let text = "cluster not ready - no quorum?\nunable to add node: command failed (ssh 10.99.0.1 -o BatchMode=yes pvecm addnode beta --force 1 --link0 10.99.0.2)\n";
        let c = not_ready_cause(text);
        assert!(c.contains("cluster not ready - no quorum?") && c.contains("read-only"));
        assert!(!c.contains("SSH access"), "{c}");
        // other known messages in the same output still show
        let c = not_ready_cause(&format!("{text}Host key verification failed.\n"));
        assert!(c.contains("known_hosts"), "{c}");
    }

    fn parse(v: Value) -> Result<Args, ParamError> {
        let ctx = protocol::context(&SPEC, &v.to_string(), "test").expect("valid args");
        args(&ctx.params)
    }

    #[test]
    fn params_to_mode() {
        let a = parse(json!({"state": "info"})).unwrap();
        assert_eq!(a.mode, Mode::Info);
        assert_eq!(a.timeout, Duration::from_secs(120));
        // state=info took any timeout before: the protocol refuses it now (Param::range).
        for t in [0, -1, 86_401] {
            let v = json!({"state": "info", "timeout": t});
            let f = protocol::context(&SPEC, &v.to_string(), "test").unwrap_err();
            assert_eq!(
                f.msg,
                format!("timeout must be between 1 and 86400, got {t}")
            );
        }
        let a = parse(json!({"name": "lab", "link0": "10.0.0.1", "use_ssh": true})).unwrap();
        assert_eq!(
            a.mode,
            Mode::Create {
                node: Node {
                    link0: Some("10.0.0.1".into()),
                    ..node()
                }
            }
        );
        let a = parse(json!({"name": "lab", "peer": " 10.0.0.2 ", "use_ssh": true, "votes": 0}))
            .unwrap();
        let Mode::Join { node: n, peer: p } = a.mode else {
            panic!("{:?}", a.mode)
        };
        assert_eq!(
            (p.addr.as_str(), p.use_ssh, n.votes),
            ("10.0.0.2", true, Some(0))
        );
        assert_eq!(
            parse(json!({"name": "lab", "votes": 0})),
            Err(ParamError::Votes { min: 1, got: 0 })
        );
        assert_eq!(
            parse(json!({"name": "lab", "peer": ""})),
            Err(ParamError::EmptyPeer)
        );
        assert_eq!(
            parse(json!({"name": "lab", "peer": "[fd00::1]"}))
                .map(|a| matches!(a.mode, Mode::Join { .. })),
            Ok(true)
        );
        assert!(is_sha256_fingerprint(&["AB"; 32].join(":")));
        assert!(!is_sha256_fingerprint(&["AB"; 31].join(":")));
        assert!(!is_sha256_fingerprint(&["GG"; 32].join(":")));
    }

    #[test]
    fn links_beyond_link0_params() {
        let a = parse(json!({"name": "lab", "link0": "10.0.0.1", "link1": "address=10.1.0.1,priority=20", "link2": "10.2.0.1"})).unwrap();
        let Mode::Create { node: n } = a.mode else {
            panic!()
        };
        assert_eq!(
            n.links,
            vec![
                (1, "address=10.1.0.1,priority=20".to_string()),
                (2, "10.2.0.1".to_string())
            ]
        );
        // the alias of PVE 4/5
        let a =
            parse(json!({"name": "lab", "link0": "10.0.0.1", "ring1_addr": "10.1.0.1"})).unwrap();
        assert!(matches!(a.mode, Mode::Create { node } if node.links.len() == 1));
        assert_eq!(
            parse(json!({"name": "lab", "link1": "10.1.0.1"})),
            Err(ParamError::LinkGap(1, 0))
        );
        assert_eq!(
            parse(json!({"name": "lab", "link0": "a", "link2": "10.1.0.1"})),
            Err(ParamError::LinkGap(2, 1))
        );
        assert_eq!(
            parse(json!({"name": "lab", "link0": "a", "link1": " "})),
            Err(ParamError::EmptyLink(1))
        );
        for bad in [
            "address=10.1.0.1,priority=300",
            "10.1.0.1,weight=3",
            "-x",
            "address=",
        ] {
            let e = parse(json!({"name": "lab", "link0": "a", "link1": bad})).unwrap_err();
            assert!(e.to_string().starts_with(&format!("link1 '{bad}'")), "{e}");
        }
        assert_eq!(
            parse(json!({"name": "lab", "peer": "10.0.0.1", "token_coefficient": 125})),
            Err(ParamError::TokenCoefficientJoin)
        );
    }

    #[test]
    fn links_and_token_coefficient_per_era() {
        let mut n = node();
        n.link0 = Some("10.0.0.1".into());
        n.links = vec![(1, "address=10.1.0.1,priority=20".into())];
        n.token_coefficient = Some(125);
        let c = create(&n);
        assert_eq!(
            build_argv("pvecm", c, Era::Corosync3, Some(9)).0,
            v(&[
                "pvecm",
                "create",
                "lab",
                "--link0",
                "10.0.0.1",
                "--link1",
                "address=10.1.0.1,priority=20",
                "--token-coefficient",
                "125"
            ])
        );
        assert_eq!(
            era_limits(c, Era::Corosync3, Some((9, Some(1)))),
            Ok(vec![])
        );
        assert_eq!(
            era_limits(c, Era::Corosync3, Some((10, Some(0)))),
            Ok(vec![])
        );
        let e = era_limits(c, Era::Corosync3, Some((9, Some(0)))).unwrap_err();
        assert!(
            e.contains("needs Proxmox VE 9.1 or later") && e.contains("runs 9.0"),
            "{e}"
        );
        let e = era_limits(c, Era::Corosync3, Some((8, Some(2)))).unwrap_err();
        assert!(e.contains("runs 8.2"), "{e}");
        assert_eq!(era_limits(c, Era::Corosync3, None).unwrap().len(), 1);
        assert!(era_limits(c, Era::Corosync2, Some((5, Some(4)))).is_err());
        n.token_coefficient = None;
        let c = create(&n);
        // PVE 4/5: ring1 (bound by bindnet1_addr on create), priority dropped with a warning
        assert_eq!(
            build_argv("pvecm", c, Era::Corosync2, Some(5)).0,
            v(&[
                "pvecm",
                "create",
                "lab",
                "-ring0_addr",
                "10.0.0.1",
                "-bindnet1_addr",
                "10.1.0.1",
                "-ring1_addr",
                "10.1.0.1"
            ])
        );
        assert_eq!(
            era_limits(c, Era::Corosync2, Some((5, Some(4))))
                .unwrap()
                .len(),
            1
        );
        let e = era_limits(c, Era::Cman, Some((3, Some(4)))).unwrap_err();
        assert!(e.starts_with("link1 is given but Proxmox VE 3"), "{e}");
        n.links.push((2, "10.2.0.1".into()));
        let e = era_limits(create(&n), Era::Corosync2, None).unwrap_err();
        assert!(
            e.starts_with("link2 is given but Proxmox VE 4 and 5"),
            "{e}"
        );
        // a join: every link passed, ring1 without bindnet on PVE 4/5
        n.links.truncate(1);
        n.links[0].1 = "10.1.0.2".into();
        let mut p = peer("10.0.0.1");
        p.use_ssh = true;
        let j = join(&n, &p);
        assert_eq!(
            build_argv("pvecm", j, Era::Corosync3, Some(9)).0,
            v(&[
                "pvecm",
                "add",
                "10.0.0.1",
                "--link0",
                "10.0.0.1",
                "--link1",
                "10.1.0.2",
                "--use_ssh",
                "1"
            ])
        );
        assert_eq!(
            build_argv("pvecm", j, Era::Corosync2, Some(5)).0,
            v(&[
                "pvecm",
                "add",
                "10.0.0.1",
                "-ring0_addr",
                "10.0.0.1",
                "-ring1_addr",
                "10.1.0.2",
                "-use_ssh",
                "1"
            ])
        );
        // links make the era matter: unknown era with only link1 asks for it
        assert!(argv_era(None, j).is_err());
        assert_eq!(minor_of("9.1.6"), Some(1));
        assert_eq!(minor_of("3.4-11"), Some(4));
        assert_eq!(minor_of("9"), None);
    }

    #[test]
    fn preflight_checks_extra_links() {
        let mut n = node();
        n.link0 = Some("10.99.0.1".into());
        n.links = vec![(1, "address=10.98.0.1,priority=5".into())];
        let mut l = local("10.99.0.1 alpha\n", "alpha");
        l.addrs.push("10.99.0.1".parse().unwrap());
        let c = preflight(create(&n), &l);
        let one = c.iter().find(|c| c.name == "link1_is_local").unwrap();
        assert!(
            !one.ok && one.msg.contains("not configured on any interface"),
            "{}",
            one.msg
        );
        l.addrs.push("10.98.0.1".parse().unwrap());
        let c = preflight(create(&n), &l);
        assert!(c.iter().all(|c| c.ok), "{c:?}");
        n.links[0].1 = "10.99.0.1".into();
        let c = preflight(create(&n), &l);
        let one = c.iter().find(|c| c.name == "link1_is_local").unwrap();
        assert!(
            one.msg.contains("also this node's link0 address"),
            "{}",
            one.msg
        );
        n.links[0].1 = "nowhere".into();
        let c = preflight(create(&n), &l);
        assert!(c
            .iter()
            .any(|c| !c.ok && c.msg.starts_with("link1 'nowhere' is not an IP")));
    }

    #[test]
    fn join_with_fewer_links_names_the_cause() {
        let n = node();
        let p = peer("10.0.0.1");
        let out = Output {
            stdout: "no links given but multiple links found on other nodes, fallback only supported on single-link clusters\n".into(),
            ..Output::default()
        };
        let (cause, not_ready) = cause_of(join(&n, &p), &out);
        let cause = cause.unwrap();
        assert!(!not_ready);
        assert!(
            cause.contains("got none") && cause.contains("link1"),
            "{cause}"
        );
    }

    #[test]
    fn spec_gives_timeout_its_range() {
        let t = SPEC.params.iter().find(|p| p.name == "timeout").unwrap();
        assert_eq!(t.range, Some((1, MAX_TIMEOUT as i64)));
    }
}
