//! pvecm_cluster: create or join a Proxmox VE cluster only when needed, after pre-flight
//! checks, and return the cluster facts of every era (PVE 3 cman, PVE 4–5 corosync 2,
//! PVE 6+ corosync 3).
//!
//! Edges: `pvecm status` / `pvecm nodes` / `pveversion` (argv, no tty, stdin closed,
//! timeouts), the hostname, /etc/hosts and the local interface addresses. Everything in
//! between (which command to run, with which options, and whether the state afterwards is
//! a success) is pure.

use pve2node::protocol::{
    self, Ctx, Default as D, Failure, Outcome, Param, RequiredIf, Spec, Type,
};
use pve2node::pve::status::{self as pst, ClusterFacts, Era, NoCluster, Prompt};
use pve2node::run::{self, Output};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const SPEC: Spec = Spec {
    module: "pvecm_cluster",
    params: &[
        Param::new("state", Type::Str)
            .default(D::Str("present"))
            .choices(&["present", "info"]),
        Param::new("name", Type::Str),
        Param::new("peer", Type::Str),
        Param::new("link0", Type::Str).aliases(&["ring0_addr"]),
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
            .range(1, 86_400),
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

/// Test hooks (documented in the .yml notes): the real sources are the defaults.
const ENV_HOSTNAME: &str = "PVE2NODE_HOSTNAME";
const ENV_HOSTS_FILE: &str = "PVE2NODE_HOSTS_FILE";
const ENV_COROSYNC_CONF: &str = "PVE2NODE_COROSYNC_CONF";
/// Test hook: the directory holding this node's own corosync.conf and authkey.
const ENV_COROSYNC_DIR: &str = "PVE2NODE_COROSYNC_DIR";
const ENV_CLUSTER_CONF: &str = "PVE2NODE_CLUSTER_CONF";

/// Timeout of one read-only command (`status`, `nodes`, `pveversion`).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(1000);
/// How long to keep polling after pvecm exited non-zero without a known error message.
const FAILED_RC_GRACE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Parameters

#[derive(Debug, Clone)]
struct Args {
    info: bool,
    name: Option<String>,
    peer: Option<String>,
    link0: Option<String>,
    era: Option<Era>,
    nodeid: Option<i64>,
    votes: Option<i64>,
    use_ssh: bool,
    fingerprint: Option<String>,
    force: bool,
    wait: bool,
    timeout: Duration,
    pvecm: String,
}

fn args(ctx: &Ctx) -> Result<Args, Failure> {
    let p = &ctx.params;
    let nonempty = |k: &str| {
        p.str(k)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let a = Args {
        info: p.str("state") == Some("info"),
        name: nonempty("name"),
        peer: nonempty("peer"),
        link0: nonempty("link0"),
        era: p.str("era").and_then(Era::from_name),
        nodeid: p.int("nodeid"),
        votes: p.int("votes"),
        use_ssh: p.flag("use_ssh"),
        fingerprint: nonempty("fingerprint"),
        force: p.flag("force"),
        wait: p.bool("wait").unwrap_or(true),
        timeout: p
            .seconds("timeout", 1, MAX_TIMEOUT)
            .unwrap_or(Duration::from_secs(120)),
        pvecm: p.str("pvecm").unwrap_or("pvecm").to_string(),
    };
    if a.pvecm.is_empty() {
        return Err(Failure::new(
            "pvecm must name the pvecm executable (default: pvecm)",
        ));
    }
    if a.info {
        return Ok(a);
    }
    let name = a.name.as_deref().unwrap_or("");
    if let Err(why) = pst::check_cluster_name(name) {
        return Err(Failure::new(format!(
            "name '{name}' is not a valid cluster name: {why} (pvecm allows at most 15 letters, digits or '-')"
        )));
    }
    p.seconds("timeout", 1, MAX_TIMEOUT)?;
    // An empty peer (an undefined variable with `default('')`) must not turn a join into
    // the creation of a second cluster, and a peer is an argument pvecm must not read as
    // an option.
    if p.is_set("peer") {
        let peer = p.str("peer").unwrap_or("").trim();
        let addr = peer
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(peer);
        if peer.is_empty() {
            return Err(Failure::new(
                "peer is empty: give the address of an existing cluster member to join it, or leave peer out to create the cluster",
            ));
        }
        if pve2node::hosts::parse_ip(addr).is_none() && !pve2node::hosts::is_valid_hostname(peer) {
            return Err(Failure::new(format!(
                "peer '{peer}' is not an IP address or a host name: give the address of an existing cluster member"
            )));
        }
    }
    if p.is_set("link0") && a.link0.is_none() {
        return Err(Failure::new(
            "link0 is empty: give this node's address on the cluster network, or leave link0 out to let pvecm use the address the hostname resolves to",
        ));
    }
    if let Some(n) = a.nodeid {
        if n < 1 {
            return Err(Failure::new(format!("nodeid must be 1 or more, got {n}")));
        }
    }
    if let Some(v) = a.votes {
        let min = if a.peer.is_some() { 0 } else { 1 };
        if v < min {
            return Err(Failure::new(format!(
                "votes must be {min} or more, got {v}"
            )));
        }
    }
    if let Some(fp) = &a.fingerprint {
        let ok = fp.split(':').count() == 32
            && fp
                .split(':')
                .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            return Err(Failure::new(format!(
                "fingerprint '{fp}' is not a SHA256 fingerprint (32 hex bytes separated by ':', as `pvenode cert info` prints it)"
            )));
        }
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------
// Local facts (edges)

/// This node's hostname, from the UTS namespace.
fn read_hostname() -> Option<String> {
    if let Ok(h) = std::env::var(ENV_HOSTNAME) {
        return Some(h.trim().to_string()).filter(|h| !h.is_empty());
    }
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

fn hosts_path() -> String {
    std::env::var(ENV_HOSTS_FILE).unwrap_or_else(|_| "/etc/hosts".to_string())
}

/// The address the first non-comment line naming `name` gives (case-insensitive), as
/// glibc's files backend answers.
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

fn read_local() -> Local {
    let path = hosts_path();
    // Bytes, as the resolver reads them: a Latin-1 comment must not fail the pre-flight.
    let hosts = std::fs::read(&path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| pve2node::io_reason(&e));
    Local {
        hostname: read_hostname(),
        hosts_file: path,
        hosts,
        addrs: local_addrs(),
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

fn preflight(a: &Args, local: &Local) -> Vec<Check> {
    let mut out = Vec::new();
    let short = local
        .hostname
        .as_deref()
        .map(|h| h.split('.').next().unwrap_or(h).to_string());
    let mut host_ip = None;
    let resolves = match (&short, &local.hosts) {
        (None, _) => Check {
            name: "hostname_resolves",
            ok: false,
            msg: "cannot read this node's hostname: set it (hostnamectl) before creating or joining a cluster".into(),
        },
        (Some(_), Err(e)) => Check {
            name: "hostname_resolves",
            ok: false,
            msg: format!("cannot read {}: {e}; pvecm resolves the hostname through it", local.hosts_file),
        },
        (Some(h), Ok(text)) => match pve2node::hosts::lookup(text, h) {
            None => Check {
                name: "hostname_resolves",
                ok: false,
                msg: format!(
                    "this node's hostname '{h}' has no entry in {}: pin it to the cluster address (run hosts_pin first)",
                    local.hosts_file
                ),
            },
            Some(ip) if ip.is_loopback() || ip.is_unspecified() => Check {
                name: "hostname_resolves",
                ok: false,
                msg: format!(
                    "this node's hostname '{h}' resolves to the loopback address {ip} in {}: pin it to the cluster address (run hosts_pin first)",
                    local.hosts_file
                ),
            },
            Some(ip) => {
                host_ip = Some(ip);
                Check {
                    name: "hostname_resolves",
                    ok: true,
                    msg: format!("'{h}' resolves to {ip} in {}", local.hosts_file),
                }
            }
        },
    };
    out.push(resolves);
    let mut link_ip = None;
    if let Some(l) = &a.link0 {
        let addr = link0_address(l);
        link_ip = resolve(local, addr);
        let h = short.as_deref().unwrap_or("?");
        let c = match (host_ip, link_ip) {
            (_, None) => Check {
                name: "hostname_is_link0",
                ok: false,
                msg: format!("link0 '{addr}' is not an IP address and has no entry in {}: give link0 as an address", local.hosts_file),
            },
            (Some(hip), Some(lip)) if hip == lip => Check {
                name: "hostname_is_link0",
                ok: true,
                msg: format!("'{h}' resolves to link0 {lip}"),
            },
            (Some(hip), Some(lip)) => Check {
                name: "hostname_is_link0",
                ok: false,
                msg: format!(
                    "this node's hostname '{h}' resolves to {hip} in {}, not to link0 {lip}: pin it to {lip} (run hosts_pin first)",
                    local.hosts_file
                ),
            },
            (None, Some(lip)) => Check {
                name: "hostname_is_link0",
                ok: false,
                msg: format!("this node's hostname '{h}' does not resolve to link0 {lip}: pin it to {lip} (run hosts_pin first)"),
            },
        };
        out.push(c);
    }
    if let Some(peer) = &a.peer {
        let peer_ip = resolve(local, peer);
        let same_name = short.as_deref().is_some_and(|h| {
            peer.eq_ignore_ascii_case(h)
                || local
                    .hostname
                    .as_deref()
                    .is_some_and(|f| peer.eq_ignore_ascii_case(f))
        });
        let why = if same_name {
            Some("this node's own hostname".to_string())
        } else {
            match peer_ip {
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
        out.push(match why {
            Some(w) => Check {
                name: "peer_is_not_self",
                ok: false,
                msg: format!("peer '{peer}' is this node itself ({w}): set peer to the address of an existing member of the cluster"),
            },
            None => Check {
                name: "peer_is_not_self",
                ok: true,
                msg: format!("peer '{peer}' is not this node"),
            },
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// Commands (pure)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Join,
}

/// The argv of `pvecm create` / `pvecm add` for an era, plus warnings about options the
/// era does not have.
fn build_argv(
    a: &Args,
    kind: Kind,
    era: Era,
    pve_major: Option<u32>,
) -> (Vec<String>, Vec<String>) {
    let dash = if era == Era::Corosync3 { "--" } else { "-" };
    let opt = |argv: &mut Vec<String>, k: &str, v: String| {
        argv.push(format!("{dash}{k}"));
        argv.push(v);
    };
    let mut warn = Vec::new();
    let mut argv = vec![a.pvecm.clone()];
    match kind {
        Kind::Create => {
            argv.push("create".into());
            argv.push(a.name.clone().unwrap_or_default());
        }
        Kind::Join => {
            argv.push("add".into());
            argv.push(a.peer.clone().unwrap_or_default());
        }
    }
    if let Some(l) = &a.link0 {
        match era {
            // PVE 3: no option; name resolution (checked in pre-flight) decides.
            Era::Cman => {}
            Era::Corosync2 => opt(&mut argv, "ring0_addr", link0_address(l).to_string()),
            Era::Corosync3 => opt(&mut argv, "link0", l.clone()),
        }
    }
    if let Some(n) = a.nodeid {
        opt(&mut argv, "nodeid", n.to_string());
    }
    if let Some(v) = a.votes {
        opt(&mut argv, "votes", v.to_string());
    }
    if kind == Kind::Join {
        let pve4 = era == Era::Corosync2 && pve_major == Some(4);
        // PVE 3 and 4 join over SSH only: use_ssh is what they do anyway.
        if a.use_ssh && !(era == Era::Cman || pve4) {
            opt(&mut argv, "use_ssh", "1".into());
        }
        if let Some(fp) = &a.fingerprint {
            if era == Era::Cman || pve4 {
                warn.push(
                    "fingerprint is ignored: this Proxmox VE release joins over SSH only"
                        .to_string(),
                );
            } else {
                opt(&mut argv, "fingerprint", fp.clone());
            }
        }
        if a.force {
            opt(&mut argv, "force", "1".into());
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

fn run_err(a: &Args, e: run::RunError) -> Failure {
    Failure::new(format!(
        "{e}; set pvecm to the path of the pvecm executable"
    ))
    .with("cmd", json!([a.pvecm]))
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
fn conf_facts() -> (Option<String>, Option<u64>) {
    let paths = match std::env::var(ENV_COROSYNC_CONF) {
        Ok(p) => vec![p],
        Err(_) => vec![
            "/etc/pve/corosync.conf".to_string(),
            "/etc/corosync/corosync.conf".to_string(),
        ],
    };
    for p in paths {
        if let Ok(t) = std::fs::read_to_string(&p) {
            let f = corosync_conf_facts(&t);
            if f.0.is_some() {
                return f;
            }
        }
    }
    (None, None)
}

/// PVE 4+: `Some(cluster name)` when this node has its own cluster corosync config (one with a
/// `config_version`, unlike Debian's default corosync.conf) and an authkey, as `pvecm create`
/// and `pvecm add` leave them in /etc/corosync.
fn local_corosync_cluster() -> Option<Option<String>> {
    let dir = std::env::var(ENV_COROSYNC_DIR).unwrap_or_else(|_| "/etc/corosync".to_string());
    let dir = std::path::Path::new(&dir);
    if !dir.join("authkey").exists() {
        return None;
    }
    let text = std::fs::read_to_string(dir.join("corosync.conf")).ok()?;
    let (name, version) = corosync_conf_facts(&text);
    version.map(|_| name)
}

/// PVE 3: `Some(cluster name)` when a cluster.conf exists, which tells that this node is in
/// a cluster even though cman is stopped (pmxcfs copies it to /etc/cluster/cluster.conf).
fn cman_conf() -> Option<Option<String>> {
    let paths = match std::env::var(ENV_CLUSTER_CONF) {
        Ok(p) => vec![p],
        Err(_) => vec![
            "/etc/pve/cluster.conf".to_string(),
            "/etc/cluster/cluster.conf".to_string(),
        ],
    };
    let text = paths.iter().find_map(|p| std::fs::read_to_string(p).ok())?;
    Some(
        pve2node::pve::cluster_conf::parse(&text)
            .ok()
            .and_then(|c| c.cluster.attr("name").map(|a| a.value.clone()))
            .filter(|n| !n.is_empty()),
    )
}

fn read_state(a: &Args, limit: Duration) -> Result<(Current, Option<Era>), Failure> {
    let t = limit.clamp(Duration::from_secs(1), READ_TIMEOUT);
    let argv = vec![a.pvecm.clone(), "status".to_string()];
    let out = run::run(&argv, t).map_err(|e| run_err(a, e))?;
    let text = combined(&out);
    let st = pst::parse_status(&out.stdout);
    let era = st.era.or_else(|| pst::era_from_error(&text));
    if st.has_quorum_info() {
        let nodes_argv = vec![a.pvecm.clone(), "nodes".to_string()];
        let rows = match run::run(&nodes_argv, t) {
            Ok(o) => pst::parse_nodes(&o.stdout),
            Err(_) => Vec::new(),
        };
        let mut f = pst::merge(&st, &rows);
        if f.name.is_none() {
            let (n, v) = conf_facts();
            f.name = n;
            f.config_version = f.config_version.or(v);
        }
        if f.member {
            return Ok((Current::Member(f), era));
        }
        return Ok((Current::NotMember, era));
    }
    let cur = match pst::recognise_no_cluster(&text) {
        Some(NoCluster::NoConfig) => match local_corosync_cluster() {
            Some(name) => Current::PveMissing { name },
            None => Current::NotMember,
        },
        // cman_tool says the same for "no cluster" and "cman stopped": cluster.conf tells.
        Some(NoCluster::CmanNotRunning) => match cman_conf() {
            Some(name) => Current::StackDown { name, cman: true },
            None => Current::NotMember,
        },
        Some(NoCluster::CorosyncNotRunning) => {
            let name = st.name.clone().or_else(|| conf_facts().0);
            Current::StackDown { name, cman: false }
        }
        None => Current::Unknown(out),
    };
    Ok((cur, era))
}

/// `pveversion` next to a `pvecm` given as a path, else from $PATH.
fn read_pve_version(a: &Args) -> Option<pst::PveVersion> {
    let exe = if a.pvecm.contains('/') {
        let dir = std::path::Path::new(&a.pvecm).parent()?;
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

fn pve_missing_msg(name: Option<&str>) -> String {
    format!(
        "this node's /etc/corosync holds the authkey and config of cluster '{}' but /etc/pve/corosync.conf does not exist: /etc/pve is probably not mounted (pve-cluster down or a dead FUSE mount); run fuse_recover or start pve-cluster, then run again",
        name.unwrap_or("?")
    )
}

#[derive(Debug, Clone, PartialEq)]
enum Plan {
    Nothing(String),
    Run(Kind),
    Fail(String),
}

fn alone(f: &ClusterFacts) -> bool {
    f.nodes.len() <= 1 && f.expected_votes.unwrap_or(1) <= 1
}

fn decide(a: &Args, cur: &Current) -> Plan {
    let want = a.name.as_deref().unwrap_or("");
    match cur {
        Current::NotMember => Plan::Run(if a.peer.is_some() { Kind::Join } else { Kind::Create }),
        Current::StackDown { name, cman } => Plan::Fail(format!(
            "this node has the configuration of cluster '{}' but its cluster stack is not running ({}): start it ({}) and run again",
            name.as_deref().unwrap_or("?"),
            if *cman { "cman" } else { "corosync" },
            if *cman {
                "/etc/init.d/cman start; /etc/init.d/pve-cluster restart"
            } else {
                "systemctl start corosync pve-cluster"
            },
        )),
        Current::PveMissing { name } => Plan::Fail(pve_missing_msg(name.as_deref())),
        Current::Unknown(o) => Plan::Fail(unknown_msg(o)),
        Current::Member(f) => {
            let Some(have) = f.name.as_deref() else {
                return Plan::Fail(
                    "this node is in a cluster but its name cannot be read (neither `pvecm status` nor corosync.conf shows it)".into(),
                );
            };
            let alone = alone(f);
            match &a.peer {
                Some(peer) if alone && !f.has_node(peer) => {
                    if a.force {
                        Plan::Run(Kind::Join)
                    } else {
                        Plan::Fail(format!(
                            "this node is already in a cluster of its own ('{have}', this node only) and cannot join cluster '{want}' through peer '{peer}' while it is in one: remove this node's cluster configuration first, or set force: true to let pvecm add override its checks"
                        ))
                    }
                }
                _ if have == want => Plan::Nothing(format!("this node is already a member of cluster '{have}'")),
                _ => Plan::Fail(format!(
                    "this node is a member of cluster '{have}', not of cluster '{want}': a node can be in one cluster only; fix name, or remove the node from '{have}' first"
                )),
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
fn reached(a: &Args, kind: Kind, cur: &Current) -> bool {
    let Current::Member(f) = cur else {
        return false;
    };
    let want = a.name.as_deref().unwrap_or("");
    let expected = if kind == Kind::Create { 1 } else { 2 };
    f.name.as_deref().is_none_or(|n| n == want)
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

// ---------------------------------------------------------------------------------------
// Module logic

fn prompt_msg(p: Prompt, kind: Kind, peer: &str) -> String {
    let what = if kind == Kind::Create {
        "create"
    } else {
        "add"
    };
    match p {
        Prompt::Password => format!(
            "pvecm {what} asked for the root password of '{peer}', which cannot be typed here: set use_ssh: true and install this node's root SSH key on the peer"
        ),
        Prompt::Fingerprint => format!(
            "pvecm {what} asked to confirm the certificate fingerprint of '{peer}': set fingerprint to the peer's SHA256 fingerprint (`pvenode cert info` on the peer), or use use_ssh: true"
        ),
    }
}

fn logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let a = args(ctx)?;
    let start = Instant::now();
    let deadline = start + a.timeout.max(Duration::from_secs(1));
    let (cur, layout_era) = read_state(&a, READ_TIMEOUT)?;
    let mut pve_major = None;
    let era = match a.era {
        Some(e) => Some(e),
        None => {
            let v = read_pve_version(&a);
            pve_major = v.as_ref().map(|v| v.major);
            v.and_then(|v| v.era()).or(layout_era)
        }
    };
    let cluster = facts_of(&cur, era).to_json();

    if a.info {
        match &cur {
            Current::Unknown(o) => {
                return Err(fail_with_output(unknown_msg(o), o).with("cluster", cluster));
            }
            Current::StackDown { .. } => {
                ctx.warn("this node has a cluster configuration but corosync/cman is not running");
            }
            Current::PveMissing { name } => ctx.warn(pve_missing_msg(name.as_deref())),
            _ => {}
        }
        let msg = match &cur {
            Current::NotMember => "this node is not in a cluster".to_string(),
            other => summary(other),
        };
        return Ok(Outcome::new(false, msg).with("cluster", cluster));
    }

    let kind = match decide(&a, &cur) {
        Plan::Nothing(msg) => return Ok(Outcome::new(false, msg).with("cluster", cluster)),
        Plan::Fail(msg) => {
            return Err(match &cur {
                Current::Unknown(o) => fail_with_output(msg, o).with("cluster", cluster),
                _ => Failure::new(msg).with("cluster", cluster),
            });
        }
        Plan::Run(k) => k,
    };

    let checks = preflight(&a, &read_local());
    let checks_json: Vec<Value> = checks.iter().map(Check::json).collect();
    if let Some(bad) = checks.iter().find(|c| !c.ok) {
        // In check mode the tasks before this one (hosts_pin above all) changed nothing, so a
        // failing pre-flight may well pass in the real run: report it, do not fail the plan.
        if ctx.check_mode {
            ctx.warn(format!(
                "pre-flight would fail now: {} (in check mode earlier tasks changed nothing, so this may pass in the real run)",
                bad.msg
            ));
        }
    }
    if let Some(bad) = checks.iter().find(|c| !c.ok && !ctx.check_mode) {
        return Err(Failure::new(bad.msg.clone())
            .with("preflight", checks_json)
            .with("cluster", cluster));
    }

    let era = match (era, &a.link0) {
        (Some(e), _) => e,
        (None, Some(_)) => {
            return Err(Failure::new(
                "cannot tell the installed Proxmox VE era (no pveversion, and `pvecm status` does not tell), so not which option passes link0: set era",
            )
            .with("preflight", checks_json)
            .with("cluster", cluster))
        }
        (None, None) => {
            ctx.warn("cannot tell the installed Proxmox VE era; assuming corosync3 (PVE 6+): set era to be sure");
            Era::Corosync3
        }
    };
    let (argv, warnings) = build_argv(&a, kind, era, pve_major);
    for w in warnings {
        ctx.warn(w);
    }
    if kind == Kind::Join && !a.use_ssh && era != Era::Cman && pve_major != Some(4) {
        ctx.warn("joining over the API makes pvecm add ask for the peer's root password, which a module cannot type: set use_ssh: true (with root SSH keys)");
    }
    let what = match kind {
        Kind::Create => format!("create cluster '{}'", a.name.as_deref().unwrap_or("")),
        Kind::Join => format!(
            "join cluster '{}' through peer '{}'",
            a.name.as_deref().unwrap_or(""),
            a.peer.as_deref().unwrap_or("")
        ),
    };
    if ctx.check_mode {
        return Ok(Outcome::new(true, format!("would {what}"))
            .with("cmd", json!(argv))
            .with("preflight", checks_json)
            .with("cluster", cluster));
    }

    // Run it.
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    let out = run::run(&argv, left).map_err(|e| run_err(&a, e))?;
    let text = combined(&out);
    let peer = a.peer.as_deref().unwrap_or("");
    let failed = |msg: String, cur: &Current| -> Failure {
        fail_with_output(msg, &out)
            .with("preflight", checks_json.clone())
            .with("cluster", facts_of(cur, Some(era)).to_json())
    };
    if let Some(p) = pst::detect_prompt(&text) {
        return Err(failed(prompt_msg(p, kind, peer), &cur));
    }
    let cause = pst::likely_cause(&failure_text(&text));
    if out.timed_out {
        let c = cause
            .map(|c| format!(" (likely cause: {c})"))
            .unwrap_or_default();
        return Err(failed(
            format!("pvecm {} {}{c}", argv_sub(kind), out.describe()),
            &cur,
        ));
    }

    // Decide by the state afterwards. A known error message ends the wait at once; a
    // non-zero exit without one gets a short grace (the cluster may still have come up,
    // e.g. when only a late step such as a service restart failed).
    let grace_end = if out.success() {
        deadline
    } else {
        deadline.min(Instant::now() + FAILED_RC_GRACE)
    };
    let mut last;
    loop {
        let remain = deadline.saturating_duration_since(Instant::now());
        let (state, _) = read_state(&a, remain)?;
        last = state;
        if reached(&a, kind, &last) {
            break;
        }
        let now = Instant::now();
        if cause.is_some() || !a.wait || now >= grace_end {
            let c = match &cause {
                Some(c) => format!("likely cause: {c}"),
                None if !out.success() => format!("pvecm {}", out.describe()),
                None if !a.wait => "state not reached yet (wait: false)".to_string(),
                None => format!("not reached within {} s", a.timeout.as_secs()),
            };
            if !a.wait && out.success() && cause.is_none() {
                // Not waiting: the command ran cleanly; report what is there now.
                return Ok(Outcome::new(
                    true,
                    format!("ran pvecm to {what} (not waiting; now {})", summary(&last)),
                )
                .with("cmd", json!(argv))
                .with("rc", out.rc_value())
                .with("stdout", out.stdout.clone())
                .with("stderr", out.stderr.clone())
                .with("preflight", checks_json)
                .with("cluster", facts_of(&last, Some(era)).to_json()));
            }
            return Err(failed(
                format!("failed to {what}: {c}; last status: {}", summary(&last)),
                &last,
            ));
        }
        let remain = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(POLL_INTERVAL.min(remain));
    }
    Ok(
        Outcome::new(true, format!("{}: {}", past(kind, &a), summary(&last)))
            .with("cmd", json!(argv))
            .with("rc", out.rc_value())
            .with("stdout", out.stdout.clone())
            .with("stderr", out.stderr.clone())
            .with("preflight", checks_json)
            .with("cluster", facts_of(&last, Some(era)).to_json()),
    )
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

fn argv_sub(kind: Kind) -> &'static str {
    match kind {
        Kind::Create => "create",
        Kind::Join => "add",
    }
}

fn past(kind: Kind, a: &Args) -> String {
    match kind {
        Kind::Create => format!("created cluster '{}'", a.name.as_deref().unwrap_or("")),
        Kind::Join => format!(
            "joined cluster '{}' through '{}'",
            a.name.as_deref().unwrap_or(""),
            a.peer.as_deref().unwrap_or("")
        ),
    }
}

fn fail_with_output(msg: String, o: &Output) -> Failure {
    Failure::new(msg)
        .with("cmd", json!(o.argv))
        .with("rc", o.rc_value())
        .with("stdout", o.stdout.clone())
        .with("stderr", o.stderr.clone())
}

/// One day: longer waits are mistakes, and deadlines computed from it cannot overflow.
const MAX_TIMEOUT: u64 = 86_400;

fn main() {
    protocol::run(&SPEC, logic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Args {
        Args {
            info: false,
            name: Some("lab".into()),
            peer: None,
            link0: None,
            era: None,
            nodeid: None,
            votes: None,
            use_ssh: false,
            fingerprint: None,
            force: false,
            wait: true,
            timeout: Duration::from_secs(120),
            pvecm: "pvecm".into(),
        }
    }

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_per_era() {
        let mut a = base();
        a.link0 = Some("10.99.0.1".into());
        a.nodeid = Some(1);
        assert_eq!(
            build_argv(&a, Kind::Create, Era::Corosync3, None).0,
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
            build_argv(&a, Kind::Create, Era::Corosync2, Some(5)).0,
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
            build_argv(&a, Kind::Create, Era::Cman, None).0,
            v(&["pvecm", "create", "lab", "-nodeid", "1"])
        );
        let mut a = base();
        a.peer = Some("10.99.0.1".into());
        a.link0 = Some("address=10.99.0.2,priority=10".into());
        a.use_ssh = true;
        a.force = true;
        a.votes = Some(1);
        a.fingerprint = Some("AB".into());
        assert_eq!(
            build_argv(&a, Kind::Join, Era::Corosync3, Some(8)).0,
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
            build_argv(&a, Kind::Join, Era::Corosync2, Some(5)).0,
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
        let (argv, warn) = build_argv(&a, Kind::Join, Era::Corosync2, Some(4));
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
        let (argv, warn) = build_argv(&a, Kind::Join, Era::Cman, None);
        assert_eq!(
            argv,
            v(&["pvecm", "add", "10.99.0.1", "-votes", "1", "-force", "1"])
        );
        assert_eq!(warn.len(), 1);
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
        let mut a = base();
        a.link0 = Some("10.99.0.1".into());
        let c = preflight(&a, &local("10.99.0.1 alpha.lab alpha\n", "alpha.lab"));
        assert!(c.iter().all(|c| c.ok), "{c:?}");
        let c = preflight(&a, &local("127.0.1.1 alpha\n", "alpha"));
        assert!(!c[0].ok && c[0].msg.contains("loopback") && c[0].msg.contains("hosts_pin"));
        let c = preflight(&a, &local("10.0.0.5 alpha\n", "alpha"));
        assert!(c[0].ok && !c[1].ok && c[1].msg.contains("not to link0 10.99.0.1"));
        let c = preflight(&a, &local("", "alpha"));
        assert!(c[0].msg.contains("no entry"));
        let mut l = local("", "alpha");
        l.hosts = Err("No such file or directory".into());
        assert!(preflight(&a, &l)[0].msg.contains("cannot read /etc/hosts"));
        // peer checks
        let mut a = base();
        a.peer = Some("10.99.0.2".into());
        let l = local("10.99.0.2 beta\n", "beta");
        let c = preflight(&a, &l);
        assert!(!c[1].ok && c[1].msg.contains("this node itself"), "{c:?}");
        for peer in ["beta", "127.0.0.1", "192.0.2.7", "BETA"] {
            a.peer = Some(peer.into());
            assert!(!preflight(&a, &l)[1].ok, "{peer}");
        }
        a.peer = Some("10.99.0.1".into());
        assert!(preflight(&a, &l)[1].ok);
        a.peer = Some("alpha".into()); // unresolvable name: pvecm will say
        assert!(preflight(&a, &l)[1].ok);
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
        let mut a = base();
        assert_eq!(decide(&a, &Current::NotMember), Plan::Run(Kind::Create));
        assert!(matches!(decide(&a, &member("lab", 1)), Plan::Nothing(_)));
        let Plan::Fail(m) = decide(&a, &member("prod", 2)) else {
            panic!()
        };
        assert!(m.contains("'prod'") && m.contains("'lab'"));
        a.peer = Some("10.99.0.1".into());
        assert_eq!(decide(&a, &Current::NotMember), Plan::Run(Kind::Join));
        // already joined: peer in membership, or a multi-node cluster
        assert!(matches!(decide(&a, &member("lab", 2)), Plan::Nothing(_)));
        a.peer = Some("10.99.0.9".into());
        let Plan::Fail(m) = decide(&a, &member("lab", 1)) else {
            panic!()
        };
        assert!(m.contains("of its own") && m.contains("force"));
        let Plan::Fail(_) = decide(&a, &member("solo", 1)) else {
            panic!()
        };
        a.force = true;
        assert_eq!(decide(&a, &member("solo", 1)), Plan::Run(Kind::Join));
        let Plan::Fail(_) = decide(&a, &member("prod", 2)) else {
            panic!()
        };
        assert!(matches!(
            decide(
                &a,
                &Current::StackDown {
                    name: Some("lab".into()),
                    cman: false
                }
            ),
            Plan::Fail(_)
        ));
    }

    #[test]
    fn reached_needs_quorum_name_and_count() {
        let a = base();
        assert!(reached(&a, Kind::Create, &member("lab", 1)));
        assert!(!reached(&a, Kind::Join, &member("lab", 1)));
        assert!(reached(&a, Kind::Join, &member("lab", 2)));
        assert!(!reached(&a, Kind::Create, &member("other", 1)));
        assert!(!reached(&a, Kind::Create, &Current::NotMember));
        let st = pst::parse_status(include_str!(
            "../../tests/fixtures/pve8/pvecm-status-not-quorate.txt"
        ));
        assert!(!reached(
            &a,
            Kind::Create,
            &Current::Member(pst::merge(&st, &[]))
        ));
    }

    #[test]
    fn conf_facts_and_link0() {
        let t = include_str!("../../tests/fixtures/pve5/corosync.conf");
        assert_eq!(corosync_conf_facts(t), (Some("lab".into()), Some(2)));
        assert_eq!(link0_address("address=10.0.0.1,priority=5"), "10.0.0.1");
        assert_eq!(link0_address("10.0.0.1"), "10.0.0.1");
    }
}
