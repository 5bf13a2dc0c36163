//! corosync_link: add a corosync (knet) link to an existing cluster: `ringN_addr` for every
//! node and `interface { linknumber: N }` in totem, config_version + 1 in the same write, in
//! /etc/pve/corosync.conf (byte-preserving), then the reload and a check with
//! `corosync-cfgtool -s` that every node is connected on the new link.
//!
//! Phases: parameters (pure) → the file and the era (edge) → [`plan`] (pure: text → new text)
//! → write (edge, `.new` + rename inside /etc/pve) → pmxcfs's copy and the reload (edge) →
//! verification by the pure [`link_state`] over `corosync-cfgtool -s` (edge, bounded poll).
//!
//! Measured on real corosync 3.1.7 (tests/fixtures/cfgtool-3.1.7-real/README.md): a link added
//! this way is loaded by `corosync-cfgtool -R` without a restart and connected ~2 s later.

use pve2node::edit::{self, TempStyle};
use pve2node::protocol::{self, Ctx, Default as D, Failure, Outcome, Param, Spec, Type};
use pve2node::pve::corosync_conf::{self, Kind};
use pve2node::pve::{links, status as pst};
use pve2node::run;
use serde_json::{json, Value};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

const SPEC: Spec = Spec {
    module: "corosync_link",
    params: &[
        Param::new("link", Type::Int).required().range(1, 7),
        Param::new("addresses", Type::Dict).required(),
        Param::new("priority", Type::Int).range(0, 255),
        Param::new("path", Type::Path),
        Param::new("activate", Type::Bool).default(D::Bool(true)),
        Param::new("verify", Type::Bool).default(D::Bool(true)),
        Param::new("timeout", Type::Int)
            .default(D::Int(30))
            .range(1, 3600),
        Param::new("cfgtool", Type::Path).default(D::Str("corosync-cfgtool")),
    ],
    mutually_exclusive: &[],
    required_if: &[],
    supports_check_mode: true,
};

const PVE_DIR: &str = "/etc/pve";
const COROSYNC_LOCAL: &str = "/etc/corosync/corosync.conf";
/// Test hooks (debug builds only).
const HOOK_PVE_DIR: &str = "PVE2NODE_PVE_DIR";
const HOOK_COROSYNC_LOCAL: &str = "PVE2NODE_COROSYNC_LOCAL";
/// A `pveversion` to run instead of the one on PATH.
const HOOK_PVEVERSION: &str = "PVE2NODE_PVEVERSION";

// ---------------------------------------------------------------------------------------
// Parameters (pure)

#[derive(Debug, Clone, PartialEq)]
struct Want {
    link: u32,
    /// node name → address, in the order given.
    addresses: Vec<(String, String)>,
    priority: Option<u8>,
}

fn want(p: &protocol::Params) -> Result<Want, String> {
    let link = p.int("link").unwrap_or(0);
    if !(1..=7).contains(&link) {
        return Err(format!(
            "link must be 1 to 7 (knet's links; link0 exists in every cluster), got {link}"
        ));
    }
    let mut addresses = Vec::new();
    if let Some(Value::Object(m)) = p.get("addresses") {
        for (k, v) in m {
            let a = match v {
                Value::String(s) => s.trim().to_string(),
                other => other.to_string(),
            };
            let ok =
                pve2node::hosts::parse_ip(&a).is_some() || pve2node::hosts::is_valid_hostname(&a);
            if a.is_empty() || !ok {
                return Err(format!(
                    "addresses['{k}'] '{a}' is not an IP address or a host name: give node {k}'s address on link {link}"
                ));
            }
            addresses.push((k.trim().to_string(), a));
        }
    }
    if addresses.is_empty() {
        return Err(format!(
            "addresses is empty: give every node's address on link {link}, e.g. {{tartanpion: 10.98.0.1, bismuth: 10.98.0.2}}"
        ));
    }
    let priority = match p.int("priority") {
        None => None,
        Some(n) => {
            Some(u8::try_from(n).map_err(|_| format!("priority must be 0 to 255, got {n}"))?)
        }
    };
    Ok(Want {
        link: link as u32,
        addresses,
        priority,
    })
}

// ---------------------------------------------------------------------------------------
// The edit (pure)

#[derive(Debug, Clone, PartialEq)]
struct Plan {
    text: String,
    changed: bool,
    version_before: u64,
    version_after: u64,
    /// (nodeid, name) of every node, for the verification.
    nodes: Vec<(u32, String)>,
}

type Edit = (Range<usize>, String);

fn splice(text: &str, mut edits: Vec<Edit>) -> String {
    // Stable by start: insertions at the same offset keep their order.
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len() + 256);
    let mut pos = 0;
    for (r, s) in edits {
        if r.start < pos || r.end > text.len() {
            continue;
        }
        out.push_str(&text[pos..r.start]);
        out.push_str(&s);
        pos = r.end;
    }
    out.push_str(&text[pos..]);
    out
}

/// The line ending a file uses (CRLF if its first line has one).
fn eol_of(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// One indentation step of the file (a tab, or the first indent seen, else two spaces).
fn indent_unit(text: &str, conf: &corosync_conf::Conf) -> String {
    for l in &conf.lines {
        if let Kind::KeyValue {
            section: Some(s), ..
        } = l.kind
        {
            if conf.sections[s].parent.is_none() {
                let i = &text[l.indent.clone()];
                if !i.is_empty() {
                    return i.to_string();
                }
            }
        }
    }
    "  ".into()
}

fn single<'a>(
    conf: &corosync_conf::Conf,
    text: &'a str,
    section: usize,
    key: &str,
    what: &str,
) -> Result<Option<corosync_conf::Entry<'a>>, String> {
    let e = conf.entries(text, section, key);
    if let Some(two) = e.get(1) {
        return Err(format!(
            "line {}: {what} sets {key} more than once; fix the file first",
            two.line + 1
        ));
    }
    Ok(e.into_iter().next())
}

/// Where a new key line goes in `section`: before the first key that sorts after it when the
/// keys are sorted (pvecm's writer), else after the last key, else after `name {`.
fn key_insert_at(text: &str, conf: &corosync_conf::Conf, section: usize, key: &str) -> usize {
    let keys: Vec<(usize, &str)> = conf
        .direct_children(section)
        .into_iter()
        .filter_map(|i| match &conf.lines[i].kind {
            Kind::KeyValue { key, .. } => Some((i, &text[key.clone()])),
            _ => None,
        })
        .collect();
    let sorted = keys.windows(2).all(|w| w[0].1 <= w[1].1);
    if sorted {
        if let Some(&(i, _)) = keys.iter().find(|(_, k)| *k > key) {
            return conf.lines[i].span.start;
        }
    }
    let after = keys
        .last()
        .map(|&(i, _)| i)
        .unwrap_or(conf.sections[section].open_line);
    conf.lines[after].eol.end
}

/// Does the file describe a cluster without knet (corosync 1/2 totem rings)?
fn ring_era(text: &str, conf: &corosync_conf::Conf, totem: usize) -> Option<String> {
    for key in ["rrp_mode", "transport"] {
        for e in conf.entries(text, totem, key) {
            let v = e.value.trim();
            if key == "rrp_mode" || (v != "knet" && !v.is_empty()) {
                return Some(format!("line {}: totem has `{key}: {v}`", e.line + 1));
            }
        }
    }
    for i in conf.sections_named(Some(totem), "interface") {
        for key in ["ringnumber", "bindnetaddr", "mcastaddr"] {
            if let Some(e) = conf.entries(text, i, key).first() {
                return Some(format!(
                    "line {}: a totem interface has `{key}` (corosync 2 rings)",
                    e.line + 1
                ));
            }
        }
    }
    None
}

fn plan(text: &str, w: &Want) -> Result<Plan, String> {
    if text.trim_start().starts_with('<') {
        return Err("it is a cluster.conf (Proxmox VE 3, cman): cman has no knet links; a second ring there is a hand edit of cluster.conf".into());
    }
    let conf = corosync_conf::parse(text)
        .map_err(|e| format!("corosync syntax error at {e}; fix the file first"))?;
    let totem = conf
        .single_top("totem")?
        .ok_or("it has no top-level `totem { }` section")?;
    if let Some(why) = ring_era(text, &conf, totem) {
        return Err(format!("{why}: this cluster runs corosync 2 or older (Proxmox VE 4/5), which has no knet links to add; only PVE 6+ (corosync 3) can add a link this way"));
    }
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
    let before: u64 = version.value.trim().parse().map_err(|_| {
        format!(
            "line {}: config_version `{}` is not a whole number",
            version.line + 1,
            version.value
        )
    })?;
    let lists = conf.sections_named(None, "nodelist");
    let node_secs: Vec<usize> = lists
        .iter()
        .flat_map(|&l| conf.sections_named(Some(l), "node"))
        .collect();
    if node_secs.is_empty() {
        return Err("its nodelist has no node; is this a cluster's corosync.conf?".into());
    }
    let eol = eol_of(text);
    let unit = indent_unit(text, &conf);
    let rkey = format!("ring{}_addr", w.link);
    let mut edits: Vec<Edit> = Vec::new();
    let mut nodes = Vec::new();
    let mut used: Vec<(String, String)> = Vec::new();
    for &ns in &node_secs {
        let name = single(&conf, text, ns, "name", "a node")?
            .map(|e| e.value.trim().to_string())
            .ok_or_else(|| {
                format!(
                    "line {}: a node has no name",
                    conf.sections[ns].open_line + 1
                )
            })?;
        let nodeid: u32 = single(&conf, text, ns, "nodeid", &format!("node {name}"))?
            .and_then(|e| e.value.trim().parse().ok())
            .ok_or_else(|| format!("node {name} has no numeric nodeid"))?;
        nodes.push((nodeid, name.clone()));
        let Some((_, addr)) = w
            .addresses
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        else {
            return Err(format!(
                "addresses has no entry for node '{name}' (nodeid {nodeid}): every node needs an address on link {}",
                w.link
            ));
        };
        // The node's addresses on its other links: a link needs its own.
        for k in 0..8 {
            if k == w.link {
                continue;
            }
            for e in conf.entries(text, ns, &format!("ring{k}_addr")) {
                if e.value.trim().eq_ignore_ascii_case(addr) {
                    return Err(format!(
                        "addresses['{name}'] {addr} is already node {name}'s address on link {k}: a link needs its own address (another network)"
                    ));
                }
            }
        }
        if let Some((other, _)) = used.iter().find(|(_, a)| a.eq_ignore_ascii_case(addr)) {
            return Err(format!(
                "addresses gives {addr} to both '{other}' and '{name}': each node needs its own address on link {}",
                w.link
            ));
        }
        used.push((name.clone(), addr.clone()));
        match single(&conf, text, ns, &rkey, &format!("node {name}"))? {
            Some(e) if e.value.trim().eq_ignore_ascii_case(addr) => {}
            Some(e) => {
                return Err(format!(
                    "node '{name}' already has {rkey}: {} (line {}), not {addr}: changing a link's address is not done here; fix addresses, or edit corosync.conf by hand",
                    e.value.trim(),
                    e.line + 1
                ))
            }
            None => {
                let at = key_insert_at(text, &conf, ns, &rkey);
                let first = conf
                    .direct_children(ns)
                    .first()
                    .map(|&i| text[conf.lines[i].indent.clone()].to_string());
                let indent = first.unwrap_or_else(|| {
                    format!("{}{unit}", &text[conf.lines[conf.sections[ns].open_line].indent.clone()])
                });
                let lead = if at > 0 && !text[..at].ends_with('\n') { eol } else { "" };
                edits.push((at..at, format!("{lead}{indent}{rkey}: {addr}{eol}")));
            }
        }
    }
    for (n, _) in &w.addresses {
        if !nodes.iter().any(|(_, name)| name.eq_ignore_ascii_case(n)) {
            return Err(format!(
                "addresses names '{n}', which is not a node of this cluster (nodes: {})",
                nodes
                    .iter()
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    // totem { interface { linknumber: N } }
    let ifaces = conf.sections_named(Some(totem), "interface");
    let mut found = None;
    let mut numbered: Vec<(u32, usize)> = Vec::new();
    for &i in &ifaces {
        if let Some(e) = single(&conf, text, i, "linknumber", "a totem interface")? {
            if let Ok(n) = e.value.trim().parse::<u32>() {
                numbered.push((n, i));
                if n == w.link {
                    found = Some(i);
                }
            }
        }
    }
    match found {
        Some(i) => {
            if let Some(p) = w.priority {
                match single(&conf, text, i, "knet_link_priority", "the interface")? {
                    Some(e) if e.value.trim() == p.to_string() => {}
                    Some(e) => edits.push((e.value_span.clone(), p.to_string())),
                    None => {
                        let at = key_insert_at(text, &conf, i, "knet_link_priority");
                        let ind = conf
                            .direct_children(i)
                            .first()
                            .map(|&c| text[conf.lines[c].indent.clone()].to_string())
                            .unwrap_or_else(|| unit.repeat(2));
                        edits.push((at..at, format!("{ind}knet_link_priority: {p}{eol}")));
                    }
                }
            }
        }
        None => {
            let (at, ind) = match numbered.iter().filter(|(n, _)| *n < w.link).max() {
                // after the interface with the highest lower number
                Some(&(_, i)) => {
                    let s = &conf.sections[i];
                    (
                        conf.lines[s.close_line].eol.end,
                        text[conf.lines[s.open_line].indent.clone()].to_string(),
                    )
                }
                None => match numbered.iter().min() {
                    Some(&(_, i)) => {
                        let s = &conf.sections[i];
                        (
                            conf.lines[s.open_line].span.start,
                            text[conf.lines[s.open_line].indent.clone()].to_string(),
                        )
                    }
                    None => (key_insert_at(text, &conf, totem, "interface"), unit.clone()),
                },
            };
            let inner = format!("{ind}{unit}");
            let mut block = format!("{ind}interface {{{eol}");
            if let Some(p) = w.priority {
                block.push_str(&format!("{inner}knet_link_priority: {p}{eol}"));
            }
            block.push_str(&format!("{inner}linknumber: {}{eol}{ind}}}{eol}", w.link));
            let lead = if at > 0 && !text[..at].ends_with('\n') {
                eol
            } else {
                ""
            };
            edits.push((at..at, format!("{lead}{block}")));
        }
    }
    if edits.is_empty() {
        return Ok(Plan {
            text: text.to_string(),
            changed: false,
            version_before: before,
            version_after: before,
            nodes,
        });
    }
    let after = before
        .checked_add(1)
        .ok_or_else(|| format!("config_version {before} cannot be raised"))?;
    edits.push((version.value_span.clone(), after.to_string()));
    let new = splice(text, edits);
    check(&new, w, after, node_secs.len())?;
    Ok(Plan {
        text: new,
        changed: true,
        version_before: before,
        version_after: after,
        nodes,
    })
}

/// Re-reads the new text with the parser and checks that it holds what was asked.
fn check(new: &str, w: &Want, version: u64, node_count: usize) -> Result<(), String> {
    let bad = |s: &str| format!("internal check failed: the edited text {s}; nothing was written");
    let c = corosync_conf::parse(new).map_err(|e| bad(&format!("does not parse ({e})")))?;
    let v = c.config_versions(new);
    if v.len() != 1 || v[0].value.trim() != version.to_string() {
        return Err(bad("does not carry the bumped config_version"));
    }
    let rkey = format!("ring{}_addr", w.link);
    let lists = c.sections_named(None, "nodelist");
    let with: usize = lists
        .iter()
        .flat_map(|&l| c.sections_named(Some(l), "node"))
        .filter(|&n| c.entries(new, n, &rkey).len() == 1)
        .count();
    if with != node_count || c.node_count() != node_count {
        return Err(bad(&format!("does not give every node one {rkey}")));
    }
    let Some(t) = c.single_top("totem").ok().flatten() else {
        return Err(bad("lost its totem section"));
    };
    let n = c
        .sections_named(Some(t), "interface")
        .into_iter()
        .filter(|&i| {
            c.entries(new, i, "linknumber")
                .iter()
                .any(|e| e.value.trim() == w.link.to_string())
        })
        .count();
    if n != 1 {
        return Err(bad(&format!(
            "does not have one interface for link {}",
            w.link
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Verification (pure over the cfgtool output)

#[derive(Debug, Clone, PartialEq)]
enum LinkState {
    /// corosync has not loaded the link.
    Missing,
    /// Loaded; these node ids are not connected on it.
    Disconnected(Vec<u32>),
    Up,
}

fn link_state(st: &links::LinkStatus, link: u32, nodeids: &[u32]) -> LinkState {
    let Some(l) = st.links.iter().find(|l| l.id == link) else {
        return LinkState::Missing;
    };
    let down: Vec<u32> = nodeids
        .iter()
        .copied()
        .filter(|id| !l.nodes.iter().any(|n| n.nodeid == *id && n.connected()))
        .collect();
    if down.is_empty() {
        LinkState::Up
    } else {
        LinkState::Disconnected(down)
    }
}

// ---------------------------------------------------------------------------------------
// Edges

fn pve_major(ctx: &Ctx) -> Option<u32> {
    let exe = match ctx.test_hook(HOOK_PVEVERSION) {
        Some(p) => PathBuf::from(p),
        None => run::which("pveversion")?,
    };
    let o = run::run(&[exe.display().to_string()], Duration::from_secs(15)).ok()?;
    pst::parse_pveversion(&o.stdout).map(|v| v.major)
}

fn logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let w = want(&ctx.params).map_err(Failure::new)?;
    let pve_dir = PathBuf::from(
        ctx.test_hook(HOOK_PVE_DIR)
            .unwrap_or_else(|| PVE_DIR.into()),
    );
    let local = PathBuf::from(
        ctx.test_hook(HOOK_COROSYNC_LOCAL)
            .unwrap_or_else(|| COROSYNC_LOCAL.into()),
    );
    let path = match ctx.params.str("path") {
        Some(p) if !p.trim().is_empty() => PathBuf::from(p),
        Some(_) => {
            return Err(Failure::new(
                "path is empty; leave it out to edit /etc/pve/corosync.conf",
            ))
        }
        None => pve_dir.join("corosync.conf"),
    };
    let timeout = ctx.params.duration("timeout");
    let cfgtool = ctx
        .params
        .str("cfgtool")
        .unwrap_or("corosync-cfgtool")
        .to_string();
    if let Some(m) = pve_major(ctx).filter(|m| *m < 6) {
        return Err(Failure::new(format!(
            "this node runs Proxmox VE {m}, whose cluster stack ({}) has no knet links: adding link {} needs PVE 6 or later",
            if m <= 3 { "cman" } else { "corosync 2" },
            w.link
        )));
    }
    let before = edit::read_text(&path).map_err(|e| match e {
        edit::EditError::NotFound(_) => Failure::new(format!(
            "{} does not exist: is this node in a cluster (and /etc/pve mounted)? Create the cluster first or set path",
            path.display()
        )),
        e => Failure::new(e.to_string()),
    })?;
    let p = plan(&before, &w)
        .map_err(|m| Failure::new(format!("cannot edit {}: {m}", path.display())))?;
    let mut out = Outcome::new(p.changed, String::new())
        .with("path", path.display().to_string())
        .with("link", w.link)
        .with("config_version_before", p.version_before)
        .with("config_version_after", p.version_after)
        .with(
            "nodes",
            Value::Array(
                p.nodes
                    .iter()
                    .map(|(id, n)| json!({"nodeid": id, "name": n}))
                    .collect(),
            ),
        );
    if ctx.diff && p.changed {
        out.diff = Some(edit::diff(&path, &before, &p.text));
    }
    if ctx.check_mode {
        out.msg = if p.changed {
            format!(
                "would add link {} (config_version {} -> {})",
                w.link, p.version_before, p.version_after
            )
        } else {
            format!("link {} is already configured", w.link)
        };
        return Ok(out);
    }
    let in_pve = edit::resolve(&path)
        .map(|r| r.starts_with(&pve_dir))
        .unwrap_or(false)
        || path.starts_with(&pve_dir);
    if p.changed {
        let style = if in_pve {
            TempStyle::DotNew
        } else {
            TempStyle::Hidden
        };
        let applied = edit::apply(&path, &before, &p.text, false, false, style).map_err(|e| {
            let hint = if in_pve {
                format!(
                    "; {} is read-only while this node has no quorum",
                    pve_dir.display()
                )
            } else {
                String::new()
            };
            Failure::new(format!("{e}{hint}"))
        })?;
        for n in applied.notes {
            ctx.warn(n);
        }
    }
    let base = out.data.clone();
    let after_write = |msg: String| -> Failure {
        let mut f = Failure::new(if p.changed {
            format!(
                "{} was changed (config_version {} -> {}) but {msg}",
                path.display(),
                p.version_before,
                p.version_after
            )
        } else {
            msg
        })
        .with("changed", p.changed);
        for (k, v) in &base {
            f = f.with(k, v.clone());
        }
        f
    };
    let mut activated: Option<Value> = None;
    if p.changed && ctx.params.flag("activate") {
        if in_pve {
            // pmxcfs copies the file to /etc/corosync and reloads corosync itself (on this,
            // the writer, node); wait for the copy, then reload once more (harmless).
            let copied = pve2node::wait::until(timeout, Duration::from_millis(200), |_| {
                (std::fs::read_to_string(&local).ok().as_deref() == Some(p.text.as_str()))
                    .then_some(())
            });
            if copied.is_err() {
                return Err(after_write(format!(
                    "{} did not get the new text within {} s: pmxcfs did not copy it (is this node quorate, is pve-cluster running?), so corosync did not load link {}",
                    local.display(),
                    timeout.as_secs(),
                    w.link
                )));
            }
        }
        let argv = vec![cfgtool.clone(), "-R".into()];
        match run::run(&argv, timeout.max(Duration::from_secs(10))) {
            Ok(o) => {
                if !o.success() && !in_pve {
                    return Err(after_write(format!("`{}` {}", o.cmdline(), o.describe()))
                        .with("activated", o.to_json()));
                }
                if !o.success() {
                    ctx.warn(format!(
                        "`{}` {} (pmxcfs reloads on its own; the verification decides)",
                        o.cmdline(),
                        o.describe()
                    ));
                }
                activated = Some(o.to_json());
            }
            Err(e) if in_pve => ctx.warn(format!(
                "{e} (pmxcfs reloads on its own; the verification decides)"
            )),
            Err(e) => return Err(after_write(format!("the reload failed: {e}; set cfgtool"))),
        }
    }
    if let Some(a) = activated {
        out.set("activated", a);
    }
    if ctx.params.flag("verify") && (!p.changed || ctx.params.flag("activate")) {
        let ids: Vec<u32> = p.nodes.iter().map(|(id, _)| *id).collect();
        let mut last = LinkState::Missing;
        let mut last_out = None;
        let r = pve2node::wait::until(timeout, Duration::from_millis(500), |left| {
            let o = run::run(
                &[cfgtool.clone(), "-s".into()],
                left.max(Duration::from_secs(2)),
            )
            .ok()?;
            last = links::parse_status(&o.stdout)
                .map(|st| link_state(&st, w.link, &ids))
                .unwrap_or(LinkState::Missing);
            last_out = Some(o);
            (last == LinkState::Up).then_some(())
        });
        if let Some(o) = &last_out {
            out.set("cfgtool_status", o.stdout.clone());
        }
        match (r, &last) {
            (Ok((_, took)), _) => out.set("verified_after", (took.as_secs_f64() * 100.0).round() / 100.0),
            (Err(_), LinkState::Missing) => {
                return Err(after_write(format!(
                    "`{cfgtool} -s` does not list link {} after {} s: corosync did not load it (journalctl -u corosync tells why)",
                    w.link,
                    timeout.as_secs()
                )))
            }
            (Err(_), LinkState::Disconnected(down)) => {
                let names: Vec<String> = down
                    .iter()
                    .map(|id| {
                        p.nodes
                            .iter()
                            .find(|(i, _)| i == id)
                            .map(|(_, n)| format!("{n} (nodeid {id})"))
                            .unwrap_or_else(|| id.to_string())
                    })
                    .collect();
                return Err(after_write(format!(
                    "link {} is loaded but {} not connected on it after {} s: check each node's address on that network, its interface and firewall (UDP port 5405 + link number)",
                    w.link,
                    names.join(", "),
                    timeout.as_secs()
                )));
            }
            (Err(_), LinkState::Up) => {}
        }
    }
    out.msg = if p.changed {
        format!(
            "added link {} (config_version {} -> {})",
            w.link, p.version_before, p.version_after
        )
    } else {
        format!("link {} is already configured", w.link)
    };
    Ok(out)
}

fn main() {
    protocol::run(&SPEC, logic)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fx {
        ($p:literal) => {
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/", $p))
        };
    }

    fn w(link: u32, a: &[(&str, &str)], priority: Option<u8>) -> Want {
        Want {
            link,
            addresses: a
                .iter()
                .map(|(n, x)| (n.to_string(), x.to_string()))
                .collect(),
            priority,
        }
    }

    const AB: &[(&str, &str)] = &[("alpha", "10.98.0.1"), ("beta", "10.98.0.2")];

    #[test]
    fn adds_link1_to_the_pve8_layout() {
        let text = fx!("pve8/corosync.conf.two-node");
        let p = plan(text, &w(1, AB, Some(10))).unwrap();
        assert!(p.changed);
        assert_eq!((p.version_before, p.version_after), (3, 4));
        let want = text
            .replace("config_version: 3", "config_version: 4")
            .replace(
                "    ring0_addr: 10.99.0.1\n",
                "    ring0_addr: 10.99.0.1\n    ring1_addr: 10.98.0.1\n",
            )
            .replace(
                "    ring0_addr: 10.99.0.2\n",
                "    ring0_addr: 10.99.0.2\n    ring1_addr: 10.98.0.2\n",
            )
            .replace(
                "  interface {\n    linknumber: 0\n  }\n",
                "  interface {\n    linknumber: 0\n  }\n  interface {\n    knet_link_priority: 10\n    linknumber: 1\n  }\n",
            );
        assert_eq!(p.text, want);
        assert_eq!(p.nodes, vec![(1, "alpha".into()), (2, "beta".into())]);
        // second run: unchanged
        let again = plan(&p.text, &w(1, AB, Some(10))).unwrap();
        assert!(!again.changed);
        assert_eq!(again.text, p.text);
        // a changed priority only touches the priority (and the version)
        let p2 = plan(&p.text, &w(1, AB, Some(30))).unwrap();
        assert_eq!(
            p2.text,
            p.text
                .replace("knet_link_priority: 10", "knet_link_priority: 30")
                .replace("config_version: 4", "config_version: 5")
        );
    }

    #[test]
    fn pve9_file_with_two_links_is_already_done_and_link2_goes_after_link1() {
        let text = fx!("pve9/corosync.conf");
        let p = plan(text, &w(1, AB, None)).unwrap();
        assert!(!p.changed);
        let ab2 = &[("alpha", "10.97.0.1"), ("beta", "10.97.0.2")];
        let p = plan(text, &w(2, ab2, None)).unwrap();
        assert!(
            p.text.contains(
                "    linknumber: 1\n  }\n  interface {\n    linknumber: 2\n  }\n  ip_version"
            ),
            "{}",
            p.text
        );
        assert!(p
            .text
            .contains("    ring1_addr: 10.98.0.1\n    ring2_addr: 10.97.0.1\n"));
        assert!(p.text.contains("token_coefficient: 125"));
    }

    #[test]
    fn crlf_tabs_comments_and_unsorted_keys_are_kept() {
        let text = "# hand-made\r\ntotem {\r\n\tversion: 2\r\n\tconfig_version: 7\r\n\tcluster_name: lab\r\n\tinterface {\r\n\t\tlinknumber: 0\r\n\t}\r\n}\r\nnodelist {\r\n\tnode {\r\n\t\tring0_addr: 10.99.0.1\r\n\t\tname: alpha\r\n\t\tnodeid: 1\r\n\t}\r\n\tnode {\r\n\t\tname: beta\r\n\t\tnodeid: 2\r\n\t\tring0_addr: 10.99.0.2\r\n\t}\r\n}\r\nquorum {\r\n\tprovider: corosync_votequorum\r\n}\r\n";
        let p = plan(text, &w(1, AB, None)).unwrap();
        assert!(p.text.starts_with("# hand-made\r\n"));
        assert!(
            p.text
                .contains("\t\tnodeid: 1\r\n\t\tring1_addr: 10.98.0.1\r\n\t}"),
            "{}",
            p.text
        );
        assert!(p
            .text
            .contains("\t\tring0_addr: 10.99.0.2\r\n\t\tring1_addr: 10.98.0.2\r\n"));
        assert!(p
            .text
            .contains("\t}\r\n\tinterface {\r\n\t\tlinknumber: 1\r\n\t}\r\n}"));
        assert!(p.text.contains("config_version: 8\r\n"));
        assert!(!p.text.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn refusals_name_what_to_fix() {
        let text = fx!("pve8/corosync.conf.two-node");
        let cases: Vec<(String, Want, &str)> = vec![
            (
                text.into(),
                w(1, &[("alpha", "10.98.0.1")], None),
                "no entry for node 'beta'",
            ),
            (
                text.into(),
                w(
                    1,
                    &[
                        ("alpha", "10.98.0.1"),
                        ("beta", "10.98.0.2"),
                        ("gamma", "10.98.0.3"),
                    ],
                    None,
                ),
                "'gamma', which is not a node",
            ),
            (
                text.into(),
                w(1, &[("alpha", "10.98.0.1"), ("beta", "10.98.0.1")], None),
                "to both 'alpha' and 'beta'",
            ),
            (
                text.into(),
                w(1, &[("alpha", "10.99.0.1"), ("beta", "10.98.0.2")], None),
                "already node alpha's address on link 0",
            ),
            (
                fx!("pve5/corosync.conf").into(),
                w(1, AB, None),
                "corosync 2 or older",
            ),
            (
                fx!("pve3/cluster.conf").into(),
                w(1, AB, None),
                "cman has no knet links",
            ),
            (
                text.replace("config_version: 3", "config_version: x"),
                w(1, AB, None),
                "not a whole number",
            ),
            (
                text.replace("  config_version: 3\n", ""),
                w(1, AB, None),
                "config_version is missing",
            ),
            (
                text.replace("totem {", "totem {\n  oops"),
                w(1, AB, None),
                "syntax error",
            ),
        ];
        for (t, want, msg) in cases {
            let e = plan(&t, &want).unwrap_err();
            assert!(e.contains(msg), "{e} lacks {msg}");
        }
        // a link already there with another address
        let done = plan(text, &w(1, AB, None)).unwrap().text;
        let e = plan(
            &done,
            &w(1, &[("alpha", "10.98.0.9"), ("beta", "10.98.0.2")], None),
        )
        .unwrap_err();
        assert!(e.contains("already has ring1_addr: 10.98.0.1"), "{e}");
    }

    #[test]
    fn link_state_from_real_cfgtool_output() {
        let s = |t| links::parse_status(t).unwrap();
        assert_eq!(
            link_state(&s(fx!("cfgtool-3.1.7-real/s-one-link.txt")), 1, &[1, 2]),
            LinkState::Missing
        );
        assert_eq!(
            link_state(
                &s(fx!("cfgtool-3.1.7-real/s-link1-just-added.txt")),
                1,
                &[1, 2]
            ),
            LinkState::Disconnected(vec![2])
        );
        assert_eq!(
            link_state(
                &s(fx!("cfgtool-3.1.7-real/s-link1-added-up.txt")),
                1,
                &[1, 2]
            ),
            LinkState::Up
        );
    }

    #[test]
    fn random_edits_parse_and_touch_only_what_they_must() {
        let text = fx!("pve8/corosync.conf.two-node");
        let mut rng = pve2node::testing::Rng::new(42);
        for _ in 0..300 {
            let link = 1 + rng.below(7) as u32;
            let pr = if rng.below(2) == 0 {
                None
            } else {
                Some(rng.below(256) as u8)
            };
            let want = w(link, &[("alpha", "10.50.0.1"), ("beta", "10.50.0.2")], pr);
            let p = plan(text, &want).unwrap();
            assert!(corosync_conf::parse(&p.text).is_ok());
            // removing the added lines gives back the original (with the old version)
            let back: String = p
                .text
                .replace("config_version: 4", "config_version: 3")
                .split_inclusive('\n')
                .filter(|l| !l.contains(&format!("ring{link}_addr")))
                .collect();
            let iface = format!(
                "  interface {{\n{}    linknumber: {link}\n  }}\n",
                pr.map(|p| format!("    knet_link_priority: {p}\n"))
                    .unwrap_or_default()
            );
            assert_eq!(back.replacen(&iface, "", 1), text);
        }
    }
}
