//! Fuzz run of every parser in library/: `pve::status` (pvecm/quorumtool/cman outputs),
//! `pve::corosync_conf`, `pve::cluster_conf`, `hosts`, `mounts` and `protocol::parse_args`
//! (then `protocol::validate`). Inputs are the fixtures (tests/fixtures/, plus
//! ../shared/fixtures/ when present) mutated by byte flips, truncation, splicing of two seeds,
//! inserted syntax tokens and huge repeats, with the project's xorshift generator.
//!
//! Asserted for every input: no panic, each parse bounded in time, and where an edit is
//! meaningful a parse → edit → re-parse round trip (corosync.conf and cluster.conf
//! `config_version` replaced in place and read back, hosts lines rendered back byte for byte
//! and with a name removed, mountinfo paths escaped and read back, args JSON re-serialised).
//!
//! `PVE2NODE_FUZZ_N` inputs per parser (default 10,000), `PVE2NODE_FUZZ_SEED` (default fixed,
//! so CI replays). A failing input is written to target/fuzz-failures/ and named in the panic.
//! `scripts/fuzz.sh N` runs a longer release build run and prints the counts.
use pve2node::protocol::{self, Default, Elem, Param, RequiredIf, Spec, Type};
use pve2node::pve::{cluster_conf, corosync_conf, status};
use pve2node::testing::Rng;
use pve2node::{hosts, mounts};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The longest one input may take to parse and check: linear in its size, generous for a
/// debug build on a loaded machine (5 s plus 3 s per MiB); the quadratic cases this run found
/// took minutes for 4 MiB.
fn limit(len: usize) -> Duration {
    Duration::from_secs(5) + Duration::from_secs(3) * (len >> 20) as u32
}
/// The size of a "huge repeat" input: 128 KiB here, `PVE2NODE_FUZZ_HUGE` bytes in
/// scripts/fuzz.sh (default 4 MiB there).
fn huge() -> usize {
    std::env::var("PVE2NODE_FUZZ_HUGE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128 << 10)
}

fn count() -> usize {
    std::env::var("PVE2NODE_FUZZ_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn seed() -> u64 {
    std::env::var("PVE2NODE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_F00D_2026_1201)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir`, recursively (sorted, so a seed replays).
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The seed inputs whose file name matches `keep`: tests/fixtures/ and, when present,
/// ../shared/fixtures/ (the design notes' fixtures; absent on a fresh CI machine).
fn seeds(keep: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    files_under(&root().join("tests/fixtures"), &mut files);
    files_under(&root().join("../shared/fixtures"), &mut files);
    files_under(Path::new("/work/shared/fixtures"), &mut files);
    let mut out: Vec<Vec<u8>> = Vec::new();
    for f in files {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if keep(&name) {
            if let Ok(b) = std::fs::read(&f) {
                if !out.contains(&b) {
                    out.push(b);
                }
            }
        }
    }
    out
}

const TOKENS: &[&str] = &[
    "\n",
    "\r\n",
    "\r",
    " ",
    "\t",
    "{",
    "}",
    ":",
    "#",
    "<",
    ">",
    "/>",
    "</",
    "\"",
    "'",
    "=",
    "\\",
    "\0",
    "\u{feff}",
    "ü",
    "\u{2028}",
    "-",
    "[",
    "]",
    ",",
    "totem {",
    "config_version: ",
    "<cluster ",
    "config_version=\"",
    "<cman ",
    "<clusternode name=\"x\" votes=\"",
    "Quorate:",
    "Nodeid",
    "0x00000001",
    "99999999999999999999999",
    "-1",
    "NaN",
    "Infinity",
    "1e400",
    "127.0.0.1",
    "::1",
    "\\040",
    "\\134",
    " - ",
    "fuse",
    "{\"a\":",
    "_ansible_check_mode",
];

/// One mutation of `input` (bytes; `others` for splicing).
fn mutate_once(rng: &mut Rng, input: &mut Vec<u8>, others: &[Vec<u8>]) {
    let len = input.len();
    let at = |rng: &mut Rng| rng.below(len + 1);
    match rng.below(100) {
        // byte flips: one bit, or a random byte
        0..=19 if len > 0 => {
            let i = rng.below(len);
            if rng.below(2) == 0 {
                input[i] ^= 1 << rng.below(8);
            } else {
                input[i] = rng.next() as u8;
            }
        }
        // truncation
        20..=31 => {
            let i = at(rng);
            input.truncate(i);
        }
        // delete a range
        32..=41 if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(64)).min(len);
            input.drain(a..b);
        }
        // splice a slice of another seed in
        42..=59 if !others.is_empty() => {
            let o = &others[rng.below(others.len())];
            let a = rng.below(o.len() + 1);
            let b = (a + rng.below(512)).min(o.len());
            let i = at(rng);
            input.splice(i..i, o[a..b].iter().copied());
        }
        // a syntax token
        60..=84 => {
            let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
            let i = at(rng);
            input.splice(i..i, t.iter().copied());
        }
        // duplicate a line (or any slice) a few times
        85.. if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(200)).min(len);
            let piece = input[a..b].to_vec();
            let times = 1 + rng.below(8);
            for _ in 0..times {
                input.splice(b..b, piece.iter().copied());
            }
        }
        _ => input.extend_from_slice(b"\n"),
    }
}

/// A huge repeat: one slice (a line, a token, a section) repeated up to [`huge`] bytes.
fn blow_up(rng: &mut Rng, input: &mut Vec<u8>) {
    let len = input.len();
    if len == 0 {
        return;
    }
    let a = rng.below(len);
    let b = (a + 1 + rng.below(80)).min(len);
    let piece = input[a..b].to_vec();
    let times = (huge() / piece.len()).max(1);
    let mut big = Vec::with_capacity(huge() + len);
    big.extend_from_slice(&input[..b]);
    for _ in 0..times {
        big.extend_from_slice(&piece);
    }
    big.extend_from_slice(&input[b..]);
    *input = big;
}

/// Makes a fresh input from the generator's own knowledge of the format.
type Gen<'a> = &'a dyn Fn(&mut Rng) -> Vec<u8>;

/// A mutated input: a seed (or, now and then, pure noise, or one from `gen`) with 1..6
/// mutations, and one input in 200 blown up by a huge repeat.
fn input(rng: &mut Rng, seeds: &[Vec<u8>], gen: Option<Gen>) -> Vec<u8> {
    if rng.below(50) == 0 {
        let n = rng.below(400);
        return (0..n).map(|_| rng.next() as u8).collect();
    }
    let (mut v, mutations) = match gen {
        // Generated inputs are mostly kept well-formed, to reach what follows the parse.
        Some(g) if rng.below(2) == 0 => (g(rng), rng.below(3) / 2),
        _ => (seeds[rng.below(seeds.len())].clone(), rng.below(7)),
    };
    for _ in 0..mutations {
        mutate_once(rng, &mut v, seeds);
    }
    if rng.below(200) == 0 {
        blow_up(rng, &mut v);
    }
    v
}

#[derive(Default, Debug)]
struct Counts {
    inputs: usize,
    bytes: usize,
    parsed: usize,
    round_trips: usize,
    slowest: Duration,
}

/// Runs `check` on `n` mutated inputs; panics (after saving the input) on the first input
/// that panics or takes longer than [`limit`]. `check` returns (parsed ok, round trips
/// checked).
fn run(name: &str, seeds: Vec<Vec<u8>>, check: impl Fn(&[u8]) -> (bool, usize)) -> Counts {
    run_with(name, seeds, None, check)
}

fn run_with(
    name: &str,
    seeds: Vec<Vec<u8>>,
    gen: Option<Gen>,
    check: impl Fn(&[u8]) -> (bool, usize),
) -> Counts {
    assert!(!seeds.is_empty(), "{name}: no seed inputs");
    let n = count();
    let mut rng = Rng::new(seed() ^ fnv(name));
    let mut c = Counts::default();
    let start = Instant::now();
    for i in 0..n {
        let data = input(&mut rng, &seeds, gen);
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| check(&data)));
        let took = t.elapsed();
        let bad = match &r {
            Err(e) => Some(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into()),
            ),
            Ok(_) if took > limit(data.len()) => {
                Some(format!("took {took:?} (limit {:?})", limit(data.len())))
            }
            Ok(_) => None,
        };
        if let Some(why) = bad {
            let dir = root().join("target/fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let f = dir.join(format!("{name}-{}-{i}.bin", seed()));
            let _ = std::fs::write(&f, &data);
            panic!(
                "{name}: input {i} ({} bytes, saved as {}): {why}",
                data.len(),
                f.display()
            );
        }
        let (parsed, trips) = r.unwrap();
        c.inputs += 1;
        c.bytes += data.len();
        c.parsed += usize::from(parsed);
        c.round_trips += trips;
        c.slowest = c.slowest.max(took);
    }
    println!(
        "fuzz {name}: {} inputs ({} MB), {} parsed, {} round trips, slowest {:?}, {:.1} s",
        c.inputs,
        c.bytes / 1_000_000,
        c.parsed,
        c.round_trips,
        c.slowest,
        start.elapsed().as_secs_f64()
    );
    c
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_status() {
    let seeds = seeds(|n| n.ends_with(".txt"));
    let c = run("status", seeds, check_status);
    assert!(c.parsed > 0, "no mutated input kept any status information");
}

/// Every line's span and ending, in order, cover the text exactly.
fn covers(conf: &corosync_conf::Conf, t: &str) -> bool {
    let mut pos = 0;
    for l in &conf.lines {
        if l.span.start != pos || l.eol.start != l.span.end {
            return false;
        }
        pos = l.eol.end;
    }
    pos == t.len()
}

#[test]
fn fuzz_corosync_conf() {
    let seeds =
        seeds(|n| n.contains("corosync.conf") || n.ends_with(".conf") && n.contains("corosync"));
    let c = run("corosync_conf", seeds, check_corosync_conf);
    assert!(c.parsed > 0 && c.round_trips > 0, "{c:?}");
}

#[test]
fn fuzz_cluster_conf() {
    let seeds = seeds(|n| n.contains("cluster.conf"));
    let c = run("cluster_conf", seeds, check_cluster_conf);
    assert!(c.parsed > 0 && c.round_trips > 0, "{c:?}");
}

#[test]
fn fuzz_hosts() {
    let mut seeds = seeds(|n| n.ends_with(".hosts") || n == "hosts");
    seeds.push(
        b"127.0.0.1\tlocalhost\n10.99.0.1 alpha.lab alpha # cluster\r\n::1 ip6-localhost\n\n# x\n  192.0.2.1   alpha.example.org"
            .to_vec(),
    );
    let c = run("hosts", seeds, check_hosts);
    assert!(c.parsed > 0 && c.round_trips > 0, "{c:?}");
}

/// The kernel's escaping of a mountinfo path (the inverse of `mounts::unescape`).
fn escape(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in p {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => out.extend(format!("\\{b:03o}").bytes()),
            _ => out.push(b),
        }
    }
    out
}

#[test]
fn fuzz_mounts() {
    let mut seeds = seeds(|n| n.contains("mountinfo"));
    seeds.push(std::fs::read("/proc/self/mountinfo").unwrap_or_default());
    seeds.push(
        b"36 35 98:0 /mnt1 /mnt/parent\\040dir rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
          40 25 0:45 / /etc/pve rw,nosuid,nodev,relatime shared:24 - fuse /dev/fuse rw,user_id=0,group_id=0,default_permissions,allow_other\n\
          41 25 0:46 / /a\\134b\\011c rw - fuse.sshfs host:/x rw\n"
            .to_vec(),
    );
    seeds.retain(|s| !s.is_empty());
    let c = run("mounts", seeds, check_mounts);
    assert!(c.parsed > 0 && c.round_trips > 0, "{c:?}");
}

const ARGS_SPEC: Spec = Spec {
    module: "fuzz",
    params: &[
        Param::new("hostname", Type::Str).aliases(&["name"]),
        Param::new("ip", Type::Str),
        Param::new("aliases", Type::List(Elem::Str)).default(Default::List(&[])),
        Param::new("ports", Type::List(Elem::Int)).range(1, 65_535),
        Param::new("timeout", Type::Int)
            .default(Default::Int(30))
            .range(0, 86_400),
        Param::new("flag", Type::Bool).default(Default::Bool(false)),
        Param::new("path", Type::Path).default(Default::Str("/etc/hosts")),
        Param::new("opts", Type::Dict),
        Param::new("state", Type::Str)
            .choices(&["present", "absent"])
            .default(Default::Str("present")),
        Param::new("secret", Type::Str).no_log(),
    ],
    mutually_exclusive: &[&["ip", "opts"]],
    required_if: &[RequiredIf {
        param: "state",
        value: "absent",
        requires: &["hostname"],
    }],
    supports_check_mode: false,
};

/// A random args object: spec names, `_ansible_*` keys and unknown keys, with values of every
/// JSON kind and the loose forms Ansible sends (`"yes"`, `"30"`, `"a,b"`, `"k=v"`).
fn random_args(rng: &mut Rng) -> Vec<u8> {
    const KEYS: &[&str] = &[
        "hostname",
        "name",
        "ip",
        "aliases",
        "ports",
        "timeout",
        "flag",
        "path",
        "opts",
        "state",
        "secret",
        "_ansible_check_mode",
        "_ansible_diff",
        "_ansible_no_log",
        "_ansible_verbosity",
        "_ansible_debug",
        "_ansible_ignore_unknown_opts",
        "_ansible_version",
        "zz",
        "",
    ];
    const ATOMS: &[&str] = &[
        "null",
        "true",
        "false",
        "0",
        "1",
        "-1",
        "2",
        "86400",
        "86401",
        "1.0",
        "1.5",
        "1e3",
        "1e400",
        "-0",
        "9223372036854775808",
        "\"\"",
        "\"yes\"",
        "\"maybe\"",
        "\"30\"",
        "\" 7 \"",
        "\"a,b\"",
        "\"a=1 b='x y'\"",
        "\"{\\\"k\\\": 1}\"",
        "\"~/x\"",
        "\"$HOME/y\"",
        "\"present\"",
        "\"gone\"",
        "[]",
        "[1, \"2\", 70000]",
        "[true]",
        "{}",
        "{\"a\": [null]}",
    ];
    let mut s = String::from("{");
    for i in 0..rng.below(8) {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&format!("\"{}\": {}", rng.pick(KEYS), rng.pick(ATOMS)));
    }
    s.push('}');
    s.into_bytes()
}

/// JSON equality with floats compared to a relative 1e-15.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs())
        }
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn fuzz_parse_args() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"hostname": "alpha", "ip": "10.99.0.1", "aliases": "a,b", "_ansible_check_mode": true, "_ansible_diff": "yes", "_ansible_verbosity": 2}"#,
        r#"{"name": "x", "ports": [22, "80"], "timeout": "30", "flag": "on", "path": "~/x/$HOME", "opts": "a=1 b='2 3'", "state": "absent"}"#,
        r#"{"timeout": 1.0, "opts": {"k": [1, {"n": null}]}, "secret": "hunter2", "_ansible_no_log": 1, "_ansible_module_name": "fuzz", "_ansible_tracebacks_for": []}"#,
        r#"{"hostname": "\u00fc\u2028", "ip": "", "aliases": ["", " "], "flag": "", "_ansible_ignore_unknown_opts": "true", "zz": 1}"#,
        r#"[1, 2, {"a": "b"}]"#,
        r#"{"timeout": NaN, "ports": [Infinity]}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let c = run_with("parse_args", seeds, Some(&random_args), check_parse_args);
    assert!(c.parsed > 0 && c.round_trips > 0, "{c:?}");
}

fn check_status(data: &[u8]) -> (bool, usize) {
    let t = text(data);
    let st = status::parse_status(&t);
    let nodes = status::parse_nodes(&t);
    let facts = status::merge(&st, &nodes);
    let j = facts.to_json();
    assert!(j.is_object());
    assert!(facts.online_count() <= facts.nodes.len().max(facts.online_count()));
    let _ = status::recognise_no_cluster(&t);
    let _ = status::era_from_output(&t);
    let _ = status::era_from_error(&t);
    let _ = status::likely_causes(&t);
    let _ = status::detect_prompt(&t);
    let _ = status::parse_pveversion(&t);
    for l in t.lines().take(200) {
        let _ = status::parse_row(l);
        let _ = status::parse_id(l.trim());
    }
    let _ = status::check_cluster_name(t.get(..t.len().min(40)).unwrap_or(""));
    // Parsing is a function of the text: the same text gives the same facts.
    assert_eq!(status::merge(&status::parse_status(&t), &nodes), facts);
    (st.has_quorum_info() || !nodes.is_empty(), 1)
}

fn check_corosync_conf(data: &[u8]) -> (bool, usize) {
    let t = text(data);
    let Ok(conf) = corosync_conf::parse(&t) else {
        return (false, 0);
    };
    assert!(covers(&conf, &t), "lines do not cover the text");
    let _ = conf.node_count();
    let _ = conf.quorum();
    let _ = conf.has_quorum_device();
    let _ = conf.single_top("totem");
    for i in 0..conf.lines.len().min(50) {
        let _ = conf.line_text(&t, i);
    }
    let _ = corosync_conf::pmxcfs_config_version(&t);
    // Edit: every config_version value replaced in place, then re-parsed.
    let versions = conf.config_versions(&t);
    if versions.is_empty() {
        return (true, 0);
    }
    let mut edited = t.clone();
    for e in versions.iter().rev() {
        edited.replace_range(e.value_span.clone(), "4242");
    }
    let again = corosync_conf::parse(&edited).expect("the edit keeps the syntax");
    let v2: Vec<&str> = again
        .config_versions(&edited)
        .iter()
        .map(|e| e.value)
        .collect();
    assert_eq!(v2, vec!["4242"; versions.len()], "re-parsed config_version");
    assert_eq!(again.lines.len(), conf.lines.len());
    assert_eq!(again.sections.len(), conf.sections.len());
    assert_eq!(again.node_count(), conf.node_count());
    assert!(covers(&again, &edited));
    (true, 1)
}

fn check_cluster_conf(data: &[u8]) -> (bool, usize) {
    let t = text(data);
    let Ok(cc) = cluster_conf::parse(&t) else {
        return (false, 0);
    };
    assert!(cc.cluster.span.end <= t.len());
    for tag in std::iter::once(&cc.cluster).chain(cc.cman.iter()) {
        assert!(tag.span.start < tag.span.end && tag.span.end <= t.len());
        assert!(tag.insert_at >= tag.span.start && tag.insert_at <= tag.span.end);
        for a in &tag.attrs {
            assert!(a.value_span.start >= a.span.start && a.value_span.end <= a.span.end);
        }
    }
    // Edit: the cluster's config_version replaced in place, then re-parsed.
    let Some(a) = cc.cluster.attr("config_version") else {
        return (true, 0);
    };
    let mut edited = t.clone();
    edited.replace_range(a.value_span.clone(), "4242");
    let again = cluster_conf::parse(&edited).expect("the edit keeps the XML valid");
    assert_eq!(
        again
            .cluster
            .attr("config_version")
            .map(|a| a.value.as_str()),
        Some("4242")
    );
    assert_eq!(again.nodes, cc.nodes);
    assert_eq!(again.cman.len(), cc.cman.len());
    assert_eq!(again.node_votes, cc.node_votes);
    (true, 1)
}

fn check_hosts(data: &[u8]) -> (bool, usize) {
    let t = text(data);
    let lines = hosts::parse(&t);
    // Byte for byte: the lines are the text, each renders back as it was.
    let joined: String = lines.iter().map(|l| l.raw).collect();
    assert_eq!(joined, t);
    let mut trips = 0;
    for l in lines.iter().take(500) {
        assert_eq!(l.render_with(&l.names), l.raw);
        let _ = l.ip();
        let _ = l.name_column();
        let Some(first) = l.names.first() else {
            continue;
        };
        // Edit: remove the first name, re-parse, the others stay in order.
        let first_name = first.name;
        let rest = l.names_without_by(|n| n == first_name);
        let rendered = l.render_with(&rest);
        let again = hosts::Line::parse(&rendered);
        let want: Vec<&str> = rest.iter().map(|f| f.name).collect();
        let got: Vec<&str> = again.names.iter().map(|f| f.name).collect();
        assert_eq!(got, want, "{:?}", l.raw);
        assert_eq!(again.addr, l.addr);
        assert_eq!(again.comment, l.comment);
        trips += 1;
    }
    for name in ["alpha", "localhost", "x"] {
        let _ = hosts::lookup(&t, name);
    }
    let _ = hosts::validate_hostname(t.get(..t.len().min(300)).unwrap_or(""));
    (lines.iter().any(|l| l.is_entry()), trips)
}

fn check_mounts(data: &[u8]) -> (bool, usize) {
    let all = mounts::parse(data);
    let lines = data.split(|b| *b == b'\n').count();
    assert!(all.len() <= lines);
    let mut trips = 0;
    for m in all.iter().take(200) {
        let _ = m.is_fuse();
        // Edit: the mount point escaped as the kernel does, re-parsed to the same path.
        let mp = m.mount_point.as_os_str().as_bytes();
        if mp.is_empty() {
            continue;
        }
        let line = [
            b"1 2 0:1 / ".as_slice(),
            &escape(mp),
            b" rw - ",
            &escape(m.fstype.as_bytes()),
            b" src rw",
        ]
        .concat();
        if m.fstype.is_empty() {
            continue;
        }
        let again = mounts::parse_line(&line).expect("an escaped line parses");
        assert_eq!(again.mount_point, m.mount_point);
        assert_eq!(again.fstype, m.fstype);
        trips += 1;
    }
    let _ = mounts::at(&all, Path::new("/etc/pve"));
    let _ = mounts::below(&all, Path::new("/"));
    (!all.is_empty(), trips)
}

fn check_parse_args(data: &[u8]) -> (bool, usize) {
    let t = text(data);
    let Ok(map) = protocol::parse_args(&t, "fuzz") else {
        return (false, 0);
    };
    // Round trip: the object serialised and parsed again is the same object (floats to
    // the last bit but one: serde_json without its float_roundtrip feature may read a
    // printed float one unit in the last place off).
    let again = protocol::parse_args(&serde_json::Value::Object(map.clone()).to_string(), "x")
        .expect("a serialised object parses");
    assert!(
        same(
            &serde_json::Value::Object(again.clone()),
            &serde_json::Value::Object(map.clone())
        ),
        "{again:?} != {map:?}"
    );
    // Then validated against a spec of every kind of parameter: Ok or one message.
    match protocol::validate(&ARGS_SPEC, &map) {
        Ok((params, _, _)) => {
            let t = params.int("timeout").unwrap_or(0);
            assert!((0..=86_400).contains(&t), "range enforced");
        }
        Err(f) => {
            assert!(!f.msg.is_empty());
            assert!(
                f.msg.len() <= 4 * protocol::SHOWN_CHARS * 4 + 2_000,
                "{}",
                f.msg.len()
            );
        }
    }
    (true, 1)
}

/// Replays one saved input: `PVE2NODE_FUZZ_REPLAY=target/fuzz-failures/<parser>-<seed>-<i>.bin
/// cargo test --release --test fuzz replay -- --ignored --nocapture`.
#[test]
#[ignore = "replays PVE2NODE_FUZZ_REPLAY"]
fn replay() {
    let f = std::env::var("PVE2NODE_FUZZ_REPLAY").expect("PVE2NODE_FUZZ_REPLAY=<saved input>");
    let data = std::fs::read(&f).expect("read the saved input");
    let name = Path::new(&f)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    type Check = fn(&[u8]) -> (bool, usize);
    let checks: &[(&str, Check)] = &[
        ("status", check_status),
        ("corosync_conf", check_corosync_conf),
        ("cluster_conf", check_cluster_conf),
        ("hosts", check_hosts),
        ("mounts", check_mounts),
        ("parse_args", check_parse_args),
    ];
    let (parser, check) = checks
        .iter()
        .find(|(n, _)| name.starts_with(&format!("{n}-")))
        .expect("the file name starts with a parser name");
    let t = Instant::now();
    let r = check(&data);
    println!("{parser}: {} bytes, {r:?}, {:?}", data.len(), t.elapsed());
}
