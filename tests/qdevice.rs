//! qdevice and qnetd through the built (debug) binaries, against stand-in commands: byte-exact
//! corosync.conf edits, refusals that leave the file untouched, check and diff mode, the
//! certificate steps and their idempotence, the order of the commands run.
//!
//! Stand-ins: each test writes `corosync-quorumtool`, `corosync-cfgtool`,
//! `corosync-qdevice-tool`, `corosync-qdevice-net-certutil`, `certutil`,
//! `corosync-qnetd-certutil`, `corosync-qnetd-tool` and the start/stop commands into a temp dir
//! and runs the module with PATH = that dir + /usr/bin:/bin; the directories the real tools use
//! (/etc/corosync/qdevice, /etc/corosync/qnetd) are test hooks pointing into the temp dir.
//! Every stand-in logs its argv to `calls`. The certificates are real ones made by the
//! corosync-qnetd/-qdevice tools (tests/fixtures/qdevice/certs).
mod common;

use common::TempDir;
use serde_json::{json, Value};
use std::path::PathBuf;

const QDEVICE: &str = env!("CARGO_BIN_EXE_qdevice");
const QNETD: &str = env!("CARGO_BIN_EXE_qnetd");

fn fx(rel: &str) -> PathBuf {
    common::repo_root().join("tests/fixtures").join(rel)
}
fn fixture(rel: &str) -> String {
    std::fs::read_to_string(fx(rel)).unwrap()
}

/// The part of a snapshot fixture after `head` up to the next `=====` or `(exit`.
fn snap(rel: &str, head: &str) -> String {
    let t = fixture(rel);
    let start = t.find(head).expect(head) + head.len();
    let rest = &t[start..];
    let end = rest
        .find("\n(exit")
        .or_else(|| rest.find("\n====="))
        .unwrap_or(rest.len());
    format!("{}\n", &rest[..end])
}

const TWO_NODE_CONF: &str = "logging {\n  debug: off\n  to_syslog: yes\n}\n\nnodelist {\n  node {\n    name: qd1\n    nodeid: 1\n    quorum_votes: 1\n    ring0_addr: 10.77.12.1\n  }\n  node {\n    name: qd2\n    nodeid: 2\n    quorum_votes: 1\n    ring0_addr: 10.77.12.2\n  }\n}\n\nquorum {\n  provider: corosync_votequorum\n  two_node: 1\n  wait_for_all: 0\n}\n\ntotem {\n  cluster_name: qdlab\n  config_version: 7\n  interface {\n    linknumber: 0\n  }\n  ip_version: ipv4-6\n  link_mode: passive\n  secauth: on\n  version: 2\n}\n";

const DEVICE: &str = "  device {\n    model: net\n    net {\n      algorithm: ffsplit\n      host: 10.77.0.3\n      tls: on\n    }\n    votes: 1\n  }\n";

fn with_device() -> String {
    TWO_NODE_CONF
        .replace("  two_node: 1\n  wait_for_all: 0\n", "")
        .replace("quorum {\n", &format!("quorum {{\n{DEVICE}"))
        .replace("config_version: 7", "config_version: 8")
}

struct Lab {
    dir: TempDir,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let dir = TempDir::new(tag);
        for d in ["bin", "pve", "qdevice", "qnetd"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let lab = Lab { dir };
        let d = lab.dir.path().display().to_string();
        std::fs::write(
            lab.dir.join("q-before"),
            fixture("qdevice/01-base-no-qdevice-quorumtool.txt")
                .split("\nQuorum information")
                .next()
                .unwrap(),
        )
        .unwrap();
        std::fs::write(
            lab.dir.join("q-qdevice"),
            snap(
                "qdevice/a-all-up-qdevice.txt",
                "===== qd1: corosync-quorumtool -s\n",
            ),
        )
        .unwrap();
        std::fs::write(
            lab.dir.join("q-two-node"),
            fixture("corosync-3.1.7-real/quorumtool-s-two-node.txt"),
        )
        .unwrap();
        // quorumtool: the view follows the `view` file (before | qdevice | two-node | offline).
        lab.script(
            "corosync-quorumtool",
            &format!("echo \"corosync-quorumtool $*\" >> {d}/reads\ncat {d}/q-$(cat {d}/view 2>/dev/null || echo before)\n"),
        );
        lab.script(
            "corosync-cfgtool",
            &format!(
                "echo \"corosync-cfgtool $*\" >> {d}/calls\necho 'Reloading corosync.conf...'\n"
            ),
        );
        lab.script(
            "corosync-qdevice-tool",
            &format!("echo \"corosync-qdevice-tool $*\" >> {d}/reads\n[ -e {d}/running ] || {{ echo 'Can'\"'\"'t connect to QDevice socket' >&2; exit 1; }}\necho 'Qdevice information'\nif [ -e {d}/qd-host ]; then printf 'QNetd host:\\t\\t%s:5403\\n' \"$(cat {d}/qd-host)\"; fi\n"),
        );
        // start/stop: the running flag, and the view quorumtool shows next.
        lab.script(
            "qd-start",
            &format!(
                "echo \"qd-start $*\" >> {d}/calls\ntouch {d}/running\necho qdevice > {d}/view\n"
            ),
        );
        lab.script(
            "qd-stop",
            &format!("echo \"qd-stop $*\" >> {d}/calls\nrm -f {d}/running\nif [ -e {d}/view-after-stop ]; then cp {d}/view-after-stop {d}/view; fi\n"),
        );
        let certs = fx("qdevice/certs").display().to_string();
        let db = format!("{d}/qdevice/net/nssdb");
        lab.script(
            "corosync-qdevice-net-certutil",
            &format!(
                "echo \"corosync-qdevice-net-certutil $1 $2\" >> {d}/calls\n\
                 case $1 in\n\
                 -i) mkdir -p {db}; touch {db}/cert9.db; cp \"$3\" {db}/ca.txt ;;\n\
                 -r) cp $(cat {d}/next-request 2>/dev/null || echo {certs}/qdevice-net-node.crq) {db}/qdevice-net-node.crq ;;\n\
                 -M) cp \"$3\" {db}/cluster.der; printf 'P12-BYTES' > {db}/qdevice-net-node.p12 ;;\n\
                 -m) cp \"$3\" {db}/imported.p12; [ -s {db}/imported.p12 ] && touch {db}/cluster.der ;;\n\
                 esac\n"
            ),
        );
        lab.script(
            "certutil",
            &format!(
                "echo \"certutil $*\" >> {d}/reads\n\
                 db=$3\n\
                 if [ \"$1\" = -D ]; then echo \"certutil $*\" >> {d}/calls; rm -f $db/cluster.der; exit 0; fi\n\
                 if [ \"$4\" = -n ]; then\n\
                   case $5 in\n\
                   'QNet CA') [ -e $db/ca.txt ] && sed -n '/BEGIN/,/END/p' $db/ca.txt || exit 255 ;;\n\
                   'Cluster Cert') [ -s $db/cluster.der ] || exit 255; echo '-----BEGIN CERTIFICATE-----'; base64 $db/cluster.der; echo '-----END CERTIFICATE-----' ;;\n\
                   esac; exit 0\n\
                 fi\n\
                 printf '\\nCertificate Nickname                                         Trust Attributes\\n                                                             SSL,S/MIME,JAR/XPI\\n\\n'\n\
                 [ -e $db/ca.txt ] && echo 'QNet CA                                                      CT,c,c'\n\
                 [ -e $db/cluster.der ] && echo 'Cluster Cert                                                 u,u,u'\n\
                 exit 0\n"
            ),
        );
        let qdb = format!("{d}/qnetd/nssdb");
        lab.script(
            "corosync-qnetd-certutil",
            &format!(
                "echo \"corosync-qnetd-certutil $1 $2\" >> {d}/calls\n\
                 case $1 in\n\
                 -i) mkdir -p {qdb}; touch {qdb}/cert9.db; cp {certs}/qnetd-cacert.crt {qdb}/ ;;\n\
                 -s) cmp -s \"$3\" {certs}/qdevice-net-node.crq && cp {certs}/cluster-qdlab.crt {qdb}/cluster-$5.crt || {{ echo 'stand-in: unknown request' >&2; exit 1; }} ;;\n\
                 esac\n"
            ),
        );
        lab.script(
            "corosync-qnetd-tool",
            &format!(
                "[ -e {d}/qnetd-running ] || {{ echo 'Can'\"'\"'t connect to qnetd socket' >&2; exit 1; }}\n\
                 if [ \"$1\" = -s ]; then cat {}; else cat {}; fi\n",
                lab.dir.join("qnetd-s").display(),
                lab.dir.join("qnetd-l").display()
            ),
        );
        std::fs::write(
            lab.dir.join("qnetd-s"),
            snap(
                "qdevice/a-all-up-qdevice.txt",
                "===== qd3: corosync-qnetd-tool -s\n",
            ),
        )
        .unwrap();
        std::fs::write(
            lab.dir.join("qnetd-l"),
            snap(
                "qdevice/a-all-up-qdevice.txt",
                "===== qd3: corosync-qnetd-tool -l\n",
            ),
        )
        .unwrap();
        lab
    }

    /// This node went through steps ca and certificate/p12 (as the certutil stand-in sees it),
    /// and corosync-qdevice is installed.
    fn certs_done(&self) {
        let db = self.dir.join("qdevice/net/nssdb");
        std::fs::create_dir_all(&db).unwrap();
        std::fs::write(db.join("cert9.db"), "").unwrap();
        std::fs::copy(fx("qdevice/certs/qnetd-cacert.crt"), db.join("ca.txt")).unwrap();
        std::fs::copy(
            fx("qdevice/certs/cluster-qdlab.crt"),
            db.join("cluster.der"),
        )
        .unwrap();
        self.script("corosync-qdevice", "exit 0\n");
    }

    fn script(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.join("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("pve/corosync.conf")
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.dir.join("calls"));
    }

    fn set(&self, file: &str, content: &str) {
        std::fs::write(self.dir.join(file), content).unwrap();
    }

    fn run(&self, bin: &str, args: Value) -> common::Run {
        self.run_in(bin, args, &self.dir.join("no-pve"))
    }

    /// Runs with PVE2NODE_PVE_DIR = `pve`: a file under it is written the /etc/pve way and the
    /// module waits for the local copy (PVE2NODE_COROSYNC_LOCAL) as it waits for pmxcfs.
    fn run_in(&self, bin: &str, mut args: Value, pve: &std::path::Path) -> common::Run {
        let bindir = self.dir.join("bin");
        if bin == QDEVICE {
            let m = args.as_object_mut().unwrap();
            m.entry("path").or_insert(json!(self.conf()));
            m.entry("start_command")
                .or_insert(json!([bindir.join("qd-start")]));
            m.entry("stop_command")
                .or_insert(json!([bindir.join("qd-stop")]));
            m.entry("timeout").or_insert(json!(3));
        }
        let argsf = self
            .dir
            .write("args.json", serde_json::to_vec(&args).unwrap());
        let out = assert_cmd::Command::new(bin)
            .arg(&argsf)
            .env("PATH", format!("{}:/usr/bin:/bin", bindir.display()))
            .env("TMPDIR", self.dir.path())
            .env("PVE2NODE_QDEVICE_DIR", self.dir.join("qdevice"))
            .env("PVE2NODE_QNETD_DIR", self.dir.join("qnetd"))
            // /etc/pve is elsewhere: the file is written as a plain file (no pmxcfs copy to wait for)
            .env("PVE2NODE_PVE_DIR", pve)
            .env(
                "PVE2NODE_COROSYNC_LOCAL",
                self.dir.join("local-corosync.conf"),
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {stdout:?} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        common::Run {
            json,
            code: out.status.code().unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn ok(r: &common::Run) {
    assert!(!r.failed(), "module failed: {}", r.stdout);
    assert_eq!(r.code, 0);
}

#[test]
fn config_switches_two_node_to_the_device_in_one_write_then_is_idempotent() {
    let lab = Lab::new("qd-config");
    lab.certs_done();
    std::fs::write(lab.conf(), TWO_NODE_CONF).unwrap();
    let r = lab.run(QDEVICE, json!({"step": "config", "host": "10.77.0.3"}));
    ok(&r);
    assert!(r.changed());
    assert_eq!(std::fs::read_to_string(lab.conf()).unwrap(), with_device());
    assert_eq!(
        lab.calls(),
        vec!["corosync-cfgtool -R", "qd-start ", "corosync-cfgtool -R"]
    );
    assert_eq!(r.json["config_version_after"], json!(8));
    assert_eq!(r.json["quorum"]["expected_votes"], json!(3));
    assert!(r.json["quorum"]["flags"]
        .as_array()
        .unwrap()
        .contains(&json!("Qdevice")));
    assert!(r.msg().contains("config_version 7 -> 8"), "{}", r.msg());
    // Second run (and the other node's run): nothing written, nothing started.
    lab.clear_calls();
    let r = lab.run(QDEVICE, json!({"step": "config", "host": "10.77.0.3"}));
    ok(&r);
    assert!(!r.changed(), "{}", r.stdout);
    assert!(lab.calls().is_empty(), "{:?}", lab.calls());
    assert_eq!(std::fs::read_to_string(lab.conf()).unwrap(), with_device());
}

#[test]
fn config_under_pve_waits_for_the_pmxcfs_copy_before_reloading() {
    let lab = Lab::new("qd-pmxcfs");
    lab.certs_done();
    std::fs::write(lab.conf(), TWO_NODE_CONF).unwrap();
    let local = lab.dir.join("local-corosync.conf");
    std::fs::write(&local, TWO_NODE_CONF).unwrap();
    // nobody copies: the file stays changed, the failure says so, nothing was reloaded
    let r = lab.run_in(
        QDEVICE,
        json!({"step": "config", "host": "10.77.0.3", "timeout": 1}),
        &lab.dir.join("pve"),
    );
    assert!(r.failed());
    assert!(
        r.msg().contains("was changed (config_version 7 -> 8) but")
            && r.msg().contains("pmxcfs did not copy it"),
        "{}",
        r.msg()
    );
    assert_eq!(r.json["changed"], json!(true));
    assert!(lab.calls().is_empty(), "{:?}", lab.calls());
    assert!(!lab.dir.join("pve/corosync.conf.new").exists());
    // a copier playing pmxcfs: the module goes on once the local copy has the new version
    std::fs::write(lab.conf(), TWO_NODE_CONF).unwrap();
    let (src, dst) = (lab.conf(), local.clone());
    let copier = std::thread::spawn(move || {
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let t = std::fs::read_to_string(&src).unwrap_or_default();
            if t.contains("config_version: 8") {
                std::fs::write(&dst, t).unwrap();
                return true;
            }
        }
        false
    });
    let r = lab.run_in(
        QDEVICE,
        json!({"step": "config", "host": "10.77.0.3"}),
        &lab.dir.join("pve"),
    );
    assert!(copier.join().unwrap());
    ok(&r);
    assert_eq!(std::fs::read_to_string(&local).unwrap(), with_device());
    assert_eq!(
        lab.calls(),
        vec!["corosync-cfgtool -R", "qd-start ", "corosync-cfgtool -R"]
    );
}

#[test]
fn config_on_the_second_node_only_starts_the_daemon() {
    let lab = Lab::new("qd-second");
    lab.certs_done();
    std::fs::write(lab.conf(), with_device()).unwrap();
    let r = lab.run(QDEVICE, json!({"step": "config", "host": "10.77.0.3"}));
    ok(&r);
    assert!(r.changed());
    assert_eq!(lab.calls(), vec!["qd-start ", "corosync-cfgtool -R"]);
    assert_eq!(r.msg(), "corosync-qdevice started");
    assert_eq!(std::fs::read_to_string(lab.conf()).unwrap(), with_device());
}

#[test]
fn a_daemon_running_with_another_host_is_restarted() {
    let lab = Lab::new("qd-stale");
    lab.certs_done();
    // another node switched the file to 10.77.0.3; this node's daemon still uses 10.77.0.9
    std::fs::write(lab.conf(), with_device()).unwrap();
    lab.set("running", "");
    lab.set("view", "qdevice");
    lab.set("qd-host", "10.77.0.9");
    let r = lab.run(QDEVICE, json!({"step": "config", "host": "10.77.0.3"}));
    ok(&r);
    assert!(r.changed());
    assert_eq!(
        lab.calls(),
        vec!["qd-stop ", "qd-start ", "corosync-cfgtool -R"]
    );
    assert_eq!(std::fs::read_to_string(lab.conf()).unwrap(), with_device());
    // with the right host: nothing to do
    lab.clear_calls();
    lab.set("running", "");
    lab.set("qd-host", "10.77.0.3");
    let r = lab.run(QDEVICE, json!({"step": "config", "host": "10.77.0.3"}));
    ok(&r);
    assert!(!r.changed(), "{}", r.stdout);
    assert!(lab.calls().is_empty());
}

#[test]
fn check_and_diff_mode_plan_without_running_or_writing() {
    let lab = Lab::new("qd-check");
    lab.certs_done();
    std::fs::write(lab.conf(), TWO_NODE_CONF).unwrap();
    let r = lab.run(
        QDEVICE,
        json!({"step": "config", "host": "10.77.0.3", "_ansible_check_mode": true, "_ansible_diff": true}),
    );
    ok(&r);
    assert!(r.changed());
    assert_eq!(r.json["diff"]["after"], json!(with_device()));
    assert_eq!(r.json["diff"]["before"], json!(TWO_NODE_CONF));
    let cmds = r.json["commands"].to_string();
    assert!(
        cmds.contains("corosync-cfgtool") && cmds.contains("qd-start"),
        "{cmds}"
    );
    assert!(lab.calls().is_empty(), "{:?}", lab.calls());
    assert_eq!(std::fs::read_to_string(lab.conf()).unwrap(), TWO_NODE_CONF);
}

#[test]
fn refusals_leave_the_file_untouched() {
    let lab = Lab::new("qd-refuse");
    lab.certs_done();
    let cases: Vec<(String, Value, &str, Option<&str>)> = vec![
        (TWO_NODE_CONF.into(), json!({"host": "10.77.12.2"}), "is a member of this cluster", None),
        (TWO_NODE_CONF.into(), json!({"host": "qd1"}), "is a member of this cluster", None),
        (TWO_NODE_CONF.into(), json!({"host": "10.77.0.3", "two_node": true}), "exclude each other", None),
        (with_device(), json!({"host": "10.77.0.9"}), "host 10.77.0.3 is already configured", None),
        (
            TWO_NODE_CONF.replace("nodelist {\n", "nodelist {\n  node {\n    name: qd3\n    nodeid: 3\n    quorum_votes: 1\n    ring0_addr: 10.77.12.3\n  }\n"),
            json!({"host": "10.77.0.3"}),
            "odd number of nodes (3)",
            None,
        ),
        (TWO_NODE_CONF.into(), json!({"host": "10.77.0.3"}), "node qd2 (nodeid 2) is offline", Some("offline")),
    ];
    lab.set(
        "q-offline",
        &snap(
            "qdevice/e1-qdevice-split-l12-cut.snap-t+20s.txt",
            "===== qd1: corosync-quorumtool -s\n",
        ),
    );
    for (text, mut args, want, view) in cases {
        std::fs::write(lab.conf(), &text).unwrap();
        lab.set("view", view.unwrap_or("before"));
        args["step"] = json!("config");
        let r = lab.run(QDEVICE, args.clone());
        assert!(r.failed(), "{args}: {}", r.stdout);
        assert_eq!(r.code, 1);
        assert!(r.msg().contains(want), "{args}: {}", r.msg());
        assert!(
            r.msg()
                .starts_with(&format!("cannot edit {}", lab.conf().display())),
            "{}",
            r.msg()
        );
        assert_eq!(std::fs::read_to_string(lab.conf()).unwrap(), text, "{args}");
        assert!(lab.calls().is_empty(), "{args}: {:?}", lab.calls());
    }
    // replace: true switches the host, restarting the running daemon.
    std::fs::write(lab.conf(), with_device()).unwrap();
    lab.set("running", "");
    lab.set("view", "qdevice");
    let r = lab.run(
        QDEVICE,
        json!({"step": "config", "host": "10.77.0.9", "replace": true}),
    );
    ok(&r);
    let t = std::fs::read_to_string(lab.conf()).unwrap();
    assert!(
        t.contains("host: 10.77.0.9")
            && !t.contains("10.77.0.3")
            && t.contains("config_version: 9")
    );
    assert_eq!(
        lab.calls(),
        vec![
            "corosync-cfgtool -R",
            "qd-stop ",
            "qd-start ",
            "corosync-cfgtool -R"
        ]
    );
}

#[test]
fn config_refuses_before_writing_without_the_daemon_or_certificates() {
    let lab = Lab::new("qd-preflight");
    std::fs::write(lab.conf(), TWO_NODE_CONF).unwrap();
    let r = lab.run(QDEVICE, json!({"step": "config", "host": "10.77.0.3"}));
    assert!(r.failed());
    let m = r.msg();
    assert!(
        m.starts_with("cannot set up the quorum device on this node, nothing was written"),
        "{m}"
    );
    assert!(
        m.contains("corosync-qdevice is not installed") && m.contains("run step ca first"),
        "{m}"
    );
    assert_eq!(std::fs::read_to_string(lab.conf()).unwrap(), TWO_NODE_CONF);
    assert!(lab.calls().is_empty());
    // check mode: planned anyway, with a warning (the certificate steps before it only planned)
    let r = lab.run(
        QDEVICE,
        json!({"step": "config", "host": "10.77.0.3", "_ansible_check_mode": true}),
    );
    ok(&r);
    assert!(r.changed());
    assert!(
        r.json["warnings"]
            .to_string()
            .contains("in a real run this would be refused"),
        "{}",
        r.stdout
    );
    // and the certificate steps in check mode accept the values earlier steps only planned
    for (step, key) in [
        ("ca", "ca_certificate"),
        ("certificate", "certificate"),
        ("p12", "p12"),
    ] {
        let r = lab.run(
            QDEVICE,
            json!({"step": step, key: null, "_ansible_check_mode": true}),
        );
        ok(&r);
        assert!(r.changed(), "{step}: {}", r.stdout);
        let r = lab.run(QDEVICE, json!({"step": step, key: ""}));
        assert!(r.failed(), "{step}: {}", r.stdout);
    }
    let r = lab.run(
        QNETD,
        json!({"cluster_name": "qdlab", "request": null, "_ansible_check_mode": true}),
    );
    ok(&r);
    assert!(
        r.changed() && r.msg().contains("would be signed"),
        "{}",
        r.stdout
    );
    assert!(lab.calls().is_empty(), "{:?}", lab.calls());
    assert_eq!(std::fs::read_to_string(lab.conf()).unwrap(), TWO_NODE_CONF);
}

#[test]
fn pve3_cman_era_is_named() {
    let lab = Lab::new("qd-cman");
    std::fs::write(
        lab.dir.join("pve/cluster.conf"),
        fixture("pve3/cluster.conf"),
    )
    .unwrap();
    for args in [
        json!({"step": "config", "host": "10.77.0.3"}),
        json!({"state": "absent"}),
    ] {
        let r = lab.run(QDEVICE, args);
        assert!(r.failed());
        assert!(r.msg().contains("PVE 3 (cman era)"), "{}", r.msg());
    }
    assert!(!lab.conf().exists());
}

#[test]
fn absent_removes_the_device_puts_two_node_back_and_cleans_up() {
    let lab = Lab::new("qd-absent");
    std::fs::write(lab.conf(), with_device()).unwrap();
    std::fs::create_dir_all(lab.dir.join("qdevice/net/nssdb")).unwrap();
    lab.set("running", "");
    lab.set("view", "qdevice");
    lab.set("view-after-stop", "two-node");
    let r = lab.run(QDEVICE, json!({"state": "absent", "two_node": true}));
    ok(&r);
    assert!(r.changed());
    let want = TWO_NODE_CONF
        .replace("  wait_for_all: 0\n", "")
        .replace("config_version: 7", "config_version: 9");
    assert_eq!(std::fs::read_to_string(lab.conf()).unwrap(), want);
    assert_eq!(lab.calls(), vec!["corosync-cfgtool -R", "qd-stop "]);
    assert!(!lab.dir.join("qdevice").exists());
    assert!(r.json["quorum"]["flags"]
        .as_array()
        .unwrap()
        .contains(&json!("2Node")));
    lab.clear_calls();
    let r = lab.run(QDEVICE, json!({"state": "absent", "two_node": true}));
    ok(&r);
    assert!(!r.changed(), "{}", r.stdout);
    assert!(lab.calls().is_empty());
    assert_eq!(std::fs::read_to_string(lab.conf()).unwrap(), want);
}

#[test]
fn certificate_steps_carry_everything_through_the_controller() {
    let lab = Lab::new("qd-certs");
    std::fs::write(lab.conf(), TWO_NODE_CONF).unwrap();
    // qnetd host: CA created once.
    let r = lab.run(QNETD, json!({}));
    ok(&r);
    assert!(r.changed());
    let ca = r.json["ca_certificate"].as_str().unwrap().to_string();
    assert!(ca.contains("-----BEGIN CERTIFICATE-----"));
    assert_eq!(lab.calls(), vec!["corosync-qnetd-certutil -i "]);
    assert_eq!(r.json["qnetd"]["running"], json!(false));
    lab.clear_calls();
    ok(&lab.run(QNETD, json!({})));
    assert!(lab.calls().is_empty());

    // node: CA, request (cluster name from corosync.conf)
    let r = lab.run(QDEVICE, json!({"step": "ca", "ca_certificate": ca}));
    ok(&r);
    assert!(r.changed());
    let r = lab.run(QDEVICE, json!({"step": "ca", "ca_certificate": ca}));
    ok(&r);
    assert!(!r.changed(), "{}", r.stdout);
    let r = lab.run(QDEVICE, json!({"step": "request"}));
    ok(&r);
    assert!(r.changed());
    assert_eq!(r.json["cluster_name"], json!("qdlab"));
    let req = r.json["request"].as_str().unwrap().to_string();
    let again = lab.run(QDEVICE, json!({"step": "request"}));
    assert!(!again.changed());
    assert_eq!(again.json["request"], json!(req));

    // qnetd signs; a second time the certificate is reused.
    lab.clear_calls();
    let r = lab.run(QNETD, json!({"cluster_name": "qdlab", "request": req}));
    ok(&r);
    assert!(r.changed());
    assert_eq!(r.json["certificate_reused"], json!(false));
    let crt = r.json["certificate"].as_str().unwrap().to_string();
    assert_eq!(r.json["certificate_info"]["subject_cn"], json!("qdlab"));
    assert_eq!(lab.calls(), vec!["corosync-qnetd-certutil -s -c"]);
    let r = lab.run(QNETD, json!({"cluster_name": "qdlab", "request": req}));
    ok(&r);
    assert!(!r.changed());
    assert_eq!(r.json["certificate_reused"], json!(true));
    assert_eq!(r.json["certificate"], json!(crt));

    // node: import the certificate, get the p12; again: unchanged, same p12.
    let r = lab.run(QDEVICE, json!({"step": "certificate", "certificate": crt}));
    ok(&r);
    assert!(r.changed());
    let p12 = r.json["p12"].as_str().unwrap().to_string();
    assert_eq!(p12, "UDEyLUJZVEVT");
    let r = lab.run(QDEVICE, json!({"step": "certificate", "certificate": crt}));
    ok(&r);
    assert!(!r.changed(), "{}", r.stdout);
    // the same node: p12 already there; a fresh node imports it (the p12 param is no_log).
    assert!(!lab
        .run(QDEVICE, json!({"step": "p12", "p12": p12}))
        .changed());
    let lab2 = Lab::new("qd-certs2");
    ok(&lab2.run(QDEVICE, json!({"step": "ca", "ca_certificate": ca})));
    let r = lab2.run(QDEVICE, json!({"step": "p12", "p12": p12}));
    ok(&r);
    assert!(r.changed());
    assert_eq!(
        r.json["invocation"]["module_args"]["p12"],
        json!("********")
    );
    assert!(!r.stdout.contains(&p12));
    assert!(!lab2
        .run(QDEVICE, json!({"step": "p12", "p12": p12}))
        .changed());
    // no temp file left behind
    let left: Vec<_> = std::fs::read_dir(lab.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".pve2node-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn certificate_refusals() {
    let lab = Lab::new("qd-certrefuse");
    std::fs::write(lab.conf(), TWO_NODE_CONF).unwrap();
    let certs = fx("qdevice/certs");
    let b64 = |f: &str| {
        let bytes = std::fs::read(certs.join(f)).unwrap();
        pve2node::pve::qdevice::b64_encode(&bytes)
    };
    // request before ca
    let r = lab.run(QDEVICE, json!({"step": "request"}));
    assert!(
        r.failed() && r.msg().contains("run step ca first"),
        "{}",
        r.msg()
    );
    // a CA that is not a certificate
    let r = lab.run(QDEVICE, json!({"step": "ca", "ca_certificate": "hello"}));
    assert!(
        r.failed() && r.msg().contains("ca_certificate holds no certificate"),
        "{}",
        r.msg()
    );
    // another CA already imported: refused unless replace
    let ca = fixture("qdevice/certs/qnetd-cacert.crt");
    ok(&lab.run(QDEVICE, json!({"step": "ca", "ca_certificate": ca})));
    let other_ca = pve2node::pve::qdevice::pem(
        "CERTIFICATE",
        &std::fs::read(certs.join("cluster-qdlab.crt")).unwrap(),
    );
    let r = lab.run(QDEVICE, json!({"step": "ca", "ca_certificate": other_ca}));
    assert!(
        r.failed() && r.msg().contains("replace: true"),
        "{}",
        r.msg()
    );
    // a certificate for another key than this node's request
    lab.set(
        "next-request",
        &certs.join("other-key.crq").display().to_string(),
    );
    ok(&lab.run(QDEVICE, json!({"step": "request"})));
    let r = lab.run(
        QDEVICE,
        json!({"step": "certificate", "certificate": b64("cluster-qdlab.crt")}),
    );
    assert!(
        r.failed() && r.msg().contains("another request"),
        "{}",
        r.msg()
    );
    // qnetd: a request of another cluster, garbage, request without cluster_name
    let r = lab.run(
        QNETD,
        json!({"cluster_name": "qdlab", "request": b64("othercluster.crq")}),
    );
    assert!(
        r.failed()
            && r.msg()
                .contains("cluster `othercluster`, not cluster_name `qdlab`"),
        "{}",
        r.msg()
    );
    let r = lab.run(QNETD, json!({"cluster_name": "qdlab", "request": "@@"}));
    assert!(
        r.failed() && r.msg().contains("neither PEM text nor base64"),
        "{}",
        r.msg()
    );
    let r = lab.run(QNETD, json!({"request": b64("qdevice-net-node.crq")}));
    assert!(
        r.failed() && r.msg().contains("request needs cluster_name"),
        "{}",
        r.msg()
    );
    let r = lab.run(QNETD, json!({"cluster_name": "../x"}));
    assert!(
        r.failed() && r.msg().contains("is not a cluster name"),
        "{}",
        r.msg()
    );
}

#[test]
fn qnetd_check_mode_and_state_report() {
    let lab = Lab::new("qd-qnetd");
    let r = lab.run(QNETD, json!({"_ansible_check_mode": true}));
    ok(&r);
    assert!(r.changed());
    assert!(lab.calls().is_empty());
    assert!(!lab.dir.join("qnetd/nssdb").exists());
    assert_eq!(
        r.json["commands"],
        json!([["corosync-qnetd-certutil", "-i"]])
    );
    lab.set("qnetd-running", "");
    ok(&lab.run(QNETD, json!({})));
    let r = lab.run(QNETD, json!({"state": "info"}));
    ok(&r);
    assert!(!r.changed());
    assert_eq!(r.json["qnetd"]["running"], json!(true));
    assert_eq!(r.json["qnetd"]["status"]["connected_clients"], json!(2));
    assert_eq!(r.json["qnetd"]["clusters"][0]["name"], json!("qdlab"));
    assert_eq!(
        r.json["qnetd"]["clusters"][0]["nodes"][0]["nodeid"],
        json!(1)
    );
    // request signed in check mode: planned, nothing run
    lab.clear_calls();
    let req = pve2node::pve::qdevice::b64_encode(
        &std::fs::read(fx("qdevice/certs/qdevice-net-node.crq")).unwrap(),
    );
    let r = lab.run(
        QNETD,
        json!({"cluster_name": "qdlab", "request": req, "_ansible_check_mode": true}),
    );
    ok(&r);
    assert!(r.changed());
    assert!(lab.calls().is_empty());
    assert_eq!(r.json["certificate"], Value::Null);
}

#[test]
fn docs_are_valid_for_ansible_doc() {
    for (name, exe) in [("qdevice", QDEVICE), ("qnetd", QNETD)] {
        if let Some(text) = common::ansible_doc(name, exe) {
            let want = if name == "qdevice" {
                "ca_certificate"
            } else {
                "cluster_name"
            };
            assert!(text.contains(want) && text.contains("QDevice"), "{text}");
        }
    }
}

/// The EXAMPLES flow of qdevice.yml through the real ansible-playbook: three inventory hosts
/// (n1, n2 in group pve, q in group qnetd) on connection local, each with its own stand-in
/// world (PATH and test hooks set per host with `environment:`), one shared corosync.conf.
/// --check on the fresh cluster runs through and changes nothing; the real run switches the
/// file; a second run reports changed=0 everywhere; the p12 never shows in the output.
#[test]
fn playbook_flow_check_real_and_idempotent() {
    let Some(abin) = common::ansible_bin() else {
        return;
    };
    let top = TempDir::new("qd-play");
    let (n1, n2, q) = (
        Lab::new("qd-play-n1"),
        Lab::new("qd-play-n2"),
        Lab::new("qd-play-q"),
    );
    for l in [&n1, &n2] {
        l.script("corosync-qdevice", "exit 0\n");
    }
    let conf = n1.conf();
    std::fs::write(&conf, TWO_NODE_CONF).unwrap();
    let lib = common::ansible_library(&top, &[("qdevice", QDEVICE), ("qnetd", QNETD)]);
    let host = |name: &str, l: &Lab| {
        format!(
            "{name} ansible_connection=local labdir={}",
            l.dir.path().display()
        )
    };
    let inv = top.write(
        "inventory",
        format!(
            "[pve]\n{}\n{}\n[qnetd]\n{} ansible_host=10.77.0.3\n[all:vars]\nansible_python_interpreter=/nonexistent/python\nconf={}\n",
            host("n1", &n1),
            host("n2", &n2),
            host("q", &q),
            conf.display()
        ),
    );
    let env = r#"
  environment:
    PATH: "{{ labdir }}/bin:/usr/bin:/bin"
    TMPDIR: "{{ labdir }}"
    PVE2NODE_QDEVICE_DIR: "{{ labdir }}/qdevice"
    PVE2NODE_QNETD_DIR: "{{ labdir }}/qnetd"
    PVE2NODE_PVE_DIR: "{{ labdir }}/no-pve"
"#;
    let play = format!(
        r#"- hosts: qnetd
  gather_facts: false{env}
  tasks:
    - qnetd: {{}}
      register: qnetd_ca
- hosts: pve
  gather_facts: false{env}
  tasks:
    - qdevice:
        step: ca
        ca_certificate: "{{{{ hostvars[groups.qnetd[0]].qnetd_ca.ca_certificate }}}}"
        path: "{{{{ conf }}}}"
    - qdevice:
        step: request
        path: "{{{{ conf }}}}"
      register: qd_request
      when: inventory_hostname == groups.pve[0]
- hosts: qnetd
  gather_facts: false{env}
  tasks:
    - qnetd:
        cluster_name: "{{{{ hostvars[groups.pve[0]].qd_request.cluster_name }}}}"
        request: "{{{{ hostvars[groups.pve[0]].qd_request.request }}}}"
      register: qnetd_cert
- hosts: pve
  gather_facts: false{env}
  tasks:
    - qdevice:
        step: certificate
        certificate: "{{{{ hostvars[groups.qnetd[0]].qnetd_cert.certificate }}}}"
        path: "{{{{ conf }}}}"
      register: qd_p12
      no_log: true
      when: inventory_hostname == groups.pve[0]
    - qdevice:
        step: p12
        p12: "{{{{ hostvars[groups.pve[0]].qd_p12.p12 }}}}"
        path: "{{{{ conf }}}}"
    - qdevice:
        step: config
        host: "{{{{ hostvars[groups.qnetd[0]].ansible_host }}}}"
        path: "{{{{ conf }}}}"
        start_command: ["{{{{ labdir }}}}/bin/qd-start"]
        stop_command: ["{{{{ labdir }}}}/bin/qd-stop"]
        timeout: 5
      throttle: 1
"#
    );
    let pb = top.write("qdevice.yml", play);
    let run = |check: bool| {
        let mut c = common::ansible_cmd(&abin, "ansible-playbook", &top, &lib);
        c.arg("-i").arg(&inv).arg("-v").arg(&pb);
        if check {
            c.arg("--check");
        }
        let o = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text)
    };
    let recap = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("PLAY RECAP"))
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    };
    let (okc, text) = run(true);
    assert!(okc, "check mode failed:\n{text}");
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        TWO_NODE_CONF,
        "{text}"
    );
    for l in [&n1, &n2, &q] {
        assert!(
            l.calls().is_empty(),
            "check mode ran {:?}\n{text}",
            l.calls()
        );
    }
    let (ok1, text) = run(false);
    assert!(ok1, "real run failed:\n{text}");
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        with_device(),
        "{text}"
    );
    assert!(
        !text.contains("UDEyLUJZVEVT"),
        "the p12 leaked into the output:\n{text}"
    );
    assert_eq!(
        n2.calls(),
        vec![
            "corosync-qdevice-net-certutil -i -c",
            "corosync-qdevice-net-certutil -m -c",
            "qd-start ",
            "corosync-cfgtool -R"
        ],
        "{text}"
    );
    let (ok2, text) = run(false);
    assert!(ok2, "second run failed:\n{text}");
    let r = recap(&text);
    assert_eq!(r.len(), 3, "{text}");
    assert!(
        r.iter()
            .all(|l| l.contains("changed=0") && l.contains("failed=0")),
        "{r:?}\n{text}"
    );
}
