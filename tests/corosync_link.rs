//! corosync_link through its built binary against a stand-in `corosync-cfgtool` that prints the
//! real corosync 3.1.7 outputs (tests/fixtures/cfgtool-3.1.7-real/) as the link comes up:
//! check and diff mode, the edit, the reload, the verification, a pmxcfs-like copy when the
//! file is in /etc/pve, and every refusal leaving the file byte-identical.

mod common;

use common::{run_module, Run, TempDir};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_corosync_link");

macro_rules! fx {
    ($p:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/", $p))
    };
}

/// The stand-in: `-R` logs and arms the reload; `-s` prints link0 only before a reload, then
/// link1 `disconnected` for `slow` calls, then `connected` (or stays disconnected when
/// `never` exists).
const CFGTOOL: &str = r#"#!/bin/sh
D='@DIR@'
echo "cfgtool $*" >> "$D/calls"
case "$1" in
  -R) touch "$D/reloaded"; echo "Reloading corosync.conf..."; echo Done; exit "$(cat "$D/R.rc" 2>/dev/null || echo 0)";;
  -s)
    if [ ! -f "$D/reloaded" ]; then cat "$D/s-before.txt"; exit 0; fi
    n=$(cat "$D/slow" 2>/dev/null || echo 0)
    if [ -f "$D/never" ] || [ "$n" -gt 0 ]; then echo $((n - 1)) > "$D/slow"; cat "$D/s-just-added.txt"; exit 0; fi
    cat "$D/s-up.txt";;
  *) exit 1;;
esac
"#;

struct Lab {
    dir: TempDir,
}

impl Lab {
    fn new(conf: &str) -> Lab {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("c-link");
        let d = dir.path().display().to_string();
        let t = dir.join("corosync-cfgtool");
        fs::write(&t, CFGTOOL.replace("@DIR@", &d)).unwrap();
        fs::set_permissions(&t, fs::Permissions::from_mode(0o755)).unwrap();
        dir.write("s-before.txt", fx!("cfgtool-3.1.7-real/s-one-link.txt"));
        dir.write(
            "s-just-added.txt",
            fx!("cfgtool-3.1.7-real/s-link1-just-added.txt"),
        );
        dir.write("s-up.txt", fx!("cfgtool-3.1.7-real/s-link1-added-up.txt"));
        fs::create_dir_all(dir.join("etc-pve")).unwrap();
        fs::create_dir_all(dir.join("etc-corosync")).unwrap();
        dir.write("etc-pve/corosync.conf", conf);
        dir.write("etc-corosync/corosync.conf", conf);
        Lab { dir }
    }
    fn conf(&self) -> PathBuf {
        self.dir.join("etc-pve/corosync.conf")
    }
    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
    fn args(&self, extra: Value) -> Value {
        let mut a = json!({
            "link": 1,
            "addresses": {"alpha": "10.98.1.1", "beta": "10.98.1.2"},
            "priority": 5,
            "cfgtool": self.dir.join("corosync-cfgtool"),
            "timeout": 5,
        });
        if let (Some(m), Value::Object(e)) = (a.as_object_mut(), extra) {
            m.extend(e);
        }
        a
    }
    /// Runs with the /etc/pve and /etc/corosync hooks pointing into the lab.
    fn run(&self, args: Value, extra_env: &[(&str, &Path)]) -> Run {
        let f = self
            .dir
            .write("args.json", serde_json::to_vec(&args).unwrap());
        let mut c = Command::new(BIN);
        c.arg(&f)
            .env("PVE2NODE_PVE_DIR", self.dir.join("etc-pve"))
            .env(
                "PVE2NODE_COROSYNC_LOCAL",
                self.dir.join("etc-corosync/corosync.conf"),
            );
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
        Run {
            json,
            code: out.status.code().unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A pmxcfs stand-in: copies /etc/pve/corosync.conf to /etc/corosync when it changes, until
/// the returned guard is dropped.
struct Pmxcfs(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Option<std::thread::JoinHandle<()>>,
);

impl Pmxcfs {
    fn start(lab: &Lab) -> Pmxcfs {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let (src, dst) = (lab.conf(), lab.dir.join("etc-corosync/corosync.conf"));
        let h = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                if let (Ok(a), Ok(b)) = (fs::read(&src), fs::read(&dst)) {
                    if a != b {
                        fs::write(&dst, a).unwrap();
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Pmxcfs(stop, Some(h))
    }
}

impl Drop for Pmxcfs {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
    }
}

const CONF: &str = fx!("pve8/corosync.conf.two-node");

#[test]
fn check_mode_shows_the_diff_and_changes_nothing() {
    let lab = Lab::new(CONF);
    let r = lab.run(
        lab.args(json!({"_ansible_check_mode": true, "_ansible_diff": true})),
        &[],
    );
    assert!(r.changed() && !r.failed(), "{}", r.stdout);
    assert_eq!(fs::read_to_string(lab.conf()).unwrap(), CONF);
    let after = r.json["diff"]["after"].as_str().unwrap();
    assert!(after.contains("    ring1_addr: 10.98.1.2\n") && after.contains("config_version: 4"));
    assert!(lab.calls().is_empty(), "{:?}", lab.calls());
    assert_eq!(r.json["config_version_after"], json!(4));
}

#[test]
fn adds_the_link_in_etc_pve_waits_for_the_copy_reloads_and_verifies() {
    let lab = Lab::new(CONF);
    lab.dir.write("slow", "2");
    let _pmxcfs = Pmxcfs::start(&lab);
    let r = lab.run(lab.args(json!({})), &[]);
    assert!(r.changed() && !r.failed(), "{}", r.stdout);
    let text = fs::read_to_string(lab.conf()).unwrap();
    assert!(text.contains("  interface {\n    knet_link_priority: 5\n    linknumber: 1\n  }\n"));
    assert!(text.contains("config_version: 4\n"));
    assert_eq!(
        fs::read_to_string(lab.dir.join("etc-corosync/corosync.conf")).unwrap(),
        text
    );
    let calls = lab.calls();
    assert_eq!(calls[0], "cfgtool -R");
    assert!(
        calls.iter().filter(|c| *c == "cfgtool -s").count() >= 3,
        "{calls:?}"
    );
    assert!(r.json["verified_after"].as_f64().is_some());
    assert!(!lab.dir.join("etc-pve/corosync.conf.new").exists());
    // second run: unchanged, verified, no reload
    let r = lab.run(lab.args(json!({})), &[]);
    assert!(!r.changed() && !r.failed(), "{}", r.stdout);
    assert_eq!(lab.calls().iter().filter(|c| *c == "cfgtool -R").count(), 1);
}

#[test]
fn a_file_outside_etc_pve_is_reloaded_without_waiting_for_a_copy() {
    let lab = Lab::new(CONF);
    let path = lab.dir.write("corosync.conf", CONF);
    let r = lab.run(lab.args(json!({"path": path})), &[]);
    assert!(r.changed() && !r.failed(), "{}", r.stdout);
    assert!(fs::read_to_string(&path)
        .unwrap()
        .contains("ring1_addr: 10.98.1.1"));
    assert_eq!(lab.calls()[0], "cfgtool -R");
}

#[test]
fn no_copy_by_pmxcfs_fails_saying_so() {
    let lab = Lab::new(CONF);
    let r = lab.run(lab.args(json!({"timeout": 1})), &[]);
    assert!(r.failed(), "{}", r.stdout);
    assert!(
        r.msg().contains("was changed (config_version 3 -> 4)"),
        "{}",
        r.msg()
    );
    assert!(r.msg().contains("pmxcfs did not copy it"), "{}", r.msg());
    assert_eq!(r.json["changed"], json!(true));
    assert!(lab.calls().is_empty());
}

#[test]
fn a_link_that_stays_disconnected_names_the_node() {
    let lab = Lab::new(CONF);
    lab.dir.write("never", "");
    let _pmxcfs = Pmxcfs::start(&lab);
    let r = lab.run(lab.args(json!({"timeout": 2})), &[]);
    assert!(r.failed(), "{}", r.stdout);
    assert!(
        r.msg()
            .contains("link 1 is loaded but beta (nodeid 2) not connected"),
        "{}",
        r.msg()
    );
    assert_eq!(r.code, 1);
}

#[test]
fn refusals_leave_the_file_byte_identical() {
    let lab = Lab::new(CONF);
    let ver = lab.dir.write(
        "pveversion",
        "#!/bin/sh\necho 'pve-manager/5.4-13/aee6f0ec (running kernel: 4.15.18-20-pve)'\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&ver, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let r = lab.run(lab.args(json!({})), &[("PVE2NODE_PVEVERSION", &ver)]);
    assert!(
        r.failed() && r.msg().contains("Proxmox VE 5"),
        "{}",
        r.stdout
    );
    for (args, want) in [
        (
            lab.args(json!({"addresses": {"alpha": "10.98.1.1"}})),
            "no entry for node 'beta'",
        ),
        (
            lab.args(json!({"addresses": {"alpha": "10.98.1.1", "beta": "not an address!"}})),
            "addresses['beta']",
        ),
        (lab.args(json!({"addresses": {}})), "addresses is empty"),
        (lab.args(json!({"link": 0})), "link"),
        (lab.args(json!({"link": 8})), "link"),
        (lab.args(json!({"priority": 256})), "priority"),
        (json!({"link": 1}), "addresses"),
    ] {
        let r = lab.run(args.clone(), &[]);
        assert!(r.failed(), "{args}: {}", r.stdout);
        assert!(r.msg().contains(want), "{args}: {}", r.msg());
    }
    let pve5 = Lab::new(fx!("pve5/corosync.conf"));
    let r = pve5.run(pve5.args(json!({})), &[]);
    assert!(
        r.failed() && r.msg().contains("corosync 2 or older"),
        "{}",
        r.stdout
    );
    assert_eq!(
        fs::read_to_string(pve5.conf()).unwrap(),
        fx!("pve5/corosync.conf")
    );
    assert_eq!(fs::read_to_string(lab.conf()).unwrap(), CONF);
    assert!(lab.calls().is_empty());
    let r = run_module(
        BIN,
        &json!({"link": 1, "addresses": {"a": "10.0.0.1"}, "path": lab.dir.join("missing.conf")}),
    );
    assert!(
        r.failed() && r.msg().contains("does not exist"),
        "{}",
        r.stdout
    );
}

/// `corosync -t -c FILE` inside fresh mount + network + UTS namespaces (a tmpfs authkey over
/// /etc/corosync, hostname `alpha` so corosync finds its node): (rc, output), or None when
/// namespaces or corosync are unavailable (a failure under PVE2NODE_E2E=1).
fn corosync_t(dir: &TempDir, file: &Path) -> Option<(i32, String)> {
    let ok = Path::new("/usr/sbin/corosync").exists()
        && Path::new("/etc/corosync").is_dir()
        && Command::new("unshare")
            .args(["-m", "-n", "-u", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("PVE2NODE_E2E").as_deref() != Ok("1"),
            "unshare -m -n -u or /usr/sbin/corosync unavailable"
        );
        eprintln!("skipping: needs unshare -m -n -u and Debian's corosync");
        return None;
    }
    let d = dir.path().display().to_string();
    fs::write(dir.join("authkey"), [7u8; 256]).unwrap();
    let script = format!(
        "set -e\nmount --make-rprivate /\nmount -t tmpfs pve2node-test /etc/corosync\n\
         cp {d}/authkey /etc/corosync/authkey\nchmod 400 /etc/corosync/authkey\nhostname alpha\n\
         set +e\n/usr/sbin/corosync -t -c {f} > {d}/t.out 2>&1\necho $? > {d}/t.rc\n",
        f = file.display()
    );
    let sh = dir.write("ns.sh", script);
    let st = Command::new("unshare")
        .args(["-m", "--propagation", "private", "-n", "-u", "sh"])
        .arg(&sh)
        .status()
        .unwrap();
    assert!(st.success(), "namespace script failed");
    let rc = fs::read_to_string(dir.join("t.rc"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Some((rc, fs::read_to_string(dir.join("t.out")).unwrap()))
}

#[test]
fn corosync_t_accepts_the_written_file() {
    for (name, conf, addrs) in [
        (
            "pve8 two-node",
            CONF,
            json!({"alpha": "10.98.1.1", "beta": "10.98.1.2"}),
        ),
        (
            "pve9 link2",
            fx!("pve9/corosync.conf"),
            json!({"alpha": "10.97.0.1", "beta": "10.97.0.2"}),
        ),
    ] {
        let lab = Lab::new(conf);
        let path = lab.dir.write("corosync.conf", conf);
        let link = if name.contains("link2") { 2 } else { 1 };
        let r = lab.run(
            lab.args(json!({"path": path, "link": link, "addresses": addrs, "activate": false, "verify": false})),
            &[],
        );
        assert!(r.changed() && !r.failed(), "{name}: {}", r.stdout);
        let Some((rc, out)) = corosync_t(&lab.dir, &path) else {
            return;
        };
        assert_eq!(rc, 0, "{name}: corosync -t rejects the written file: {out}");
        // and the original passes too (the check can tell)
        let orig = lab.dir.write("orig.conf", conf);
        assert_eq!(corosync_t(&lab.dir, &orig).unwrap().0, 0);
        // a broken edit is caught: a link number corosync does not have
        let bad = lab.dir.write(
            "bad.conf",
            fs::read_to_string(&path).unwrap().replacen(
                &format!("linknumber: {link}"),
                "linknumber: 9",
                1,
            ),
        );
        assert_ne!(
            corosync_t(&lab.dir, &bad).unwrap().0,
            0,
            "{name}: linknumber 9 accepted"
        );
    }
}

#[test]
fn ansible_doc_shows_the_documentation() {
    let Some(text) = common::ansible_doc("corosync_link", BIN) else {
        return;
    };
    for word in [
        "addresses",
        "knet_link_priority",
        "corosync-cfgtool -s",
        "config_version_after",
    ] {
        assert!(
            text.contains(word),
            "{word} missing from ansible-doc output"
        );
    }
}

// ---- real corosync 3 in two network namespaces ------------------------------------------------

/// Two real corosync nodes, each in its own network + mount namespace (link0 and a second
/// veth pair for link1, addresses that exist only inside them). Dropped: corosync stopped by
/// PID, namespaces deleted (also when the test fails).
struct Pair {
    dir: TempDir,
    ns: [String; 2],
    children: Vec<std::process::Child>,
}

impl Pair {
    fn conf(version: u32) -> String {
        format!(
            "logging {{\n  debug: off\n  to_syslog: no\n  to_stderr: yes\n}}\n\nnodelist {{\n  node {{\n    name: alpha\n    nodeid: 1\n    quorum_votes: 1\n    ring0_addr: 10.98.0.1\n  }}\n  node {{\n    name: beta\n    nodeid: 2\n    quorum_votes: 1\n    ring0_addr: 10.98.0.2\n  }}\n}}\n\nquorum {{\n  provider: corosync_votequorum\n  two_node: 1\n}}\n\ntotem {{\n  cluster_name: lab\n  config_version: {version}\n  interface {{\n    linknumber: 0\n  }}\n  ip_version: ipv4-6\n  link_mode: passive\n  secauth: on\n  version: 2\n}}\n"
        )
    }
    fn sh(args: &[&str]) -> bool {
        Command::new(args[0])
            .args(&args[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
    fn start() -> Option<Pair> {
        let ok = Path::new("/usr/sbin/corosync").exists()
            && Path::new("/etc/corosync").is_dir()
            && Pair::sh(&["ip", "netns", "list"])
            && Pair::sh(&["unshare", "-m", "-n", "true"]);
        if !ok {
            assert!(
                std::env::var("PVE2NODE_E2E").as_deref() != Ok("1"),
                "corosync, ip netns or unshare unavailable"
            );
            eprintln!("skipping: needs corosync, ip netns and unshare");
            return None;
        }
        let tag = std::process::id() % 100_000;
        let mut p = Pair {
            dir: TempDir::new("c-link-real"),
            ns: [format!("p2nl{tag}a"), format!("p2nl{tag}b")],
            children: Vec::new(),
        };
        for n in &p.ns {
            assert!(Pair::sh(&["ip", "netns", "add", n]), "ip netns add {n}");
        }
        for (k, _) in [0, 1].iter().enumerate() {
            let (va, vb) = (format!("p2l{tag}a{k}"), format!("p2l{tag}b{k}"));
            assert!(Pair::sh(&[
                "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb
            ]));
            assert!(Pair::sh(&["ip", "link", "set", &va, "netns", &p.ns[0]]));
            assert!(Pair::sh(&["ip", "link", "set", &vb, "netns", &p.ns[1]]));
            for (i, (n, v)) in [(&p.ns[0], &va), (&p.ns[1], &vb)].iter().enumerate() {
                let addr = format!("10.98.{k}.{}/24", i + 1);
                assert!(Pair::sh(&["ip", "-n", n, "addr", "add", &addr, "dev", v]));
                assert!(Pair::sh(&["ip", "-n", n, "link", "set", v, "up"]));
                assert!(Pair::sh(&["ip", "-n", n, "link", "set", "lo", "up"]));
            }
        }
        let key: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
        for (i, n) in p.ns.iter().enumerate() {
            let d = p.dir.join(&format!("node{i}"));
            for sub in ["etc", "lib", "log", "run"] {
                fs::create_dir_all(d.join(sub)).unwrap();
            }
            fs::write(d.join("etc/corosync.conf"), Pair::conf(1)).unwrap();
            fs::write(d.join("etc/authkey"), &key).unwrap();
            let dd = d.display();
            let script = format!(
                "mount --make-rprivate / && mount --bind {dd}/etc /etc/corosync && mount --bind {dd}/lib /var/lib/corosync && mount --bind {dd}/log /var/log/corosync && mount --bind {dd}/run /run && exec /usr/sbin/corosync -f"
            );
            let child = Command::new("ip")
                .args(["netns", "exec", n, "unshare", "-m", "sh", "-c", &script])
                .stdout(std::process::Stdio::null())
                .stderr(fs::File::create(d.join("stderr")).unwrap())
                .spawn()
                .unwrap();
            p.children.push(child);
        }
        Some(p)
    }
    fn exec(&self, node: usize, argv: &[&str]) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns[node]])
            .args(argv)
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }
    fn file(&self, node: usize) -> PathBuf {
        self.dir.join(&format!("node{node}/etc/corosync.conf"))
    }
    /// Polls `corosync-quorumtool -s` on node 0 until both nodes are members (bounded).
    fn members(&self, secs: u64) -> bool {
        let end = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < end {
            let q = self.exec(0, &["corosync-quorumtool", "-s"]);
            if q.lines()
                .any(|l| l.starts_with("Nodes:") && l.trim_end().ends_with(" 2"))
                && q.contains("Quorate:          Yes")
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        false
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // `ip netns exec` and `unshare` exec into corosync: each child's PID is corosync's.
        for c in &self.children {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        for c in &mut self.children {
            let end = std::time::Instant::now() + Duration::from_secs(3);
            while matches!(c.try_wait(), Ok(None)) && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(100));
            }
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        for n in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

#[test]
fn real_corosync_adds_link1_live_and_survives_cutting_link0() {
    let Some(pair) = Pair::start() else {
        return;
    };
    assert!(
        pair.members(20),
        "the two corosync nodes never formed a membership"
    );
    let args = |node: usize, extra: Value| {
        let mut a = json!({"link": 1, "priority": 10, "path": pair.file(node),
            "addresses": {"alpha": "10.98.1.1", "beta": "10.98.1.2"}, "timeout": 20});
        if let (Some(m), Value::Object(e)) = (a.as_object_mut(), extra) {
            m.extend(e);
        }
        let f = pair
            .dir
            .write(&format!("args{node}.json"), serde_json::to_vec(&a).unwrap());
        f.display().to_string()
    };
    // beta's file first (no pmxcfs here to carry it), then alpha: written, reloaded, verified.
    let b = args(1, json!({"activate": false, "verify": false}));
    let rb: Value = serde_json::from_str(&pair.exec(1, &[BIN, &b])).unwrap();
    assert_eq!(rb["changed"], json!(true), "{rb}");
    let a = args(0, json!({}));
    let t0 = std::time::Instant::now();
    let out = pair.exec(0, &[BIN, &a]);
    let ra: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(ra["changed"], json!(true), "{ra}");
    assert_eq!(ra["failed"], json!(false), "{ra}");
    assert!(ra["verified_after"].as_f64().is_some(), "{ra}");
    eprintln!(
        "link1 added and verified in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let s = pair.exec(0, &["corosync-cfgtool", "-s"]);
    let st = pve2node::pve::links::parse_status(&s).expect("cfgtool -s");
    assert_eq!(st.links.len(), 2, "{s}");
    assert!(st.links[1].nodes.iter().all(|n| n.connected()), "{s}");
    // again: nothing to change, still verified
    let ra: Value = serde_json::from_str(&pair.exec(0, &[BIN, &a])).unwrap();
    assert_eq!(ra["changed"], json!(false), "{ra}");
    // cut link0: the membership stays, over link1
    let va = format!("p2l{}a0", std::process::id() % 100_000);
    assert!(Pair::sh(&[
        "ip",
        "-n",
        &pair.ns[0],
        "link",
        "set",
        &va,
        "down"
    ]));
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        pair.members(1),
        "membership lost after link0 was cut: {}",
        pair.exec(0, &["corosync-quorumtool", "-s"])
    );
    let s = pair.exec(0, &["corosync-cfgtool", "-s"]);
    let st = pve2node::pve::links::parse_status(&s).unwrap();
    assert!(
        !st.links[0].nodes[1].connected() && st.links[1].nodes[1].connected(),
        "{s}"
    );
}
