//! cman_two_node through the built binary: byte-exact results on the seed's files, refusals that
//! leave the file untouched, the /etc/pve write procedure, activation and verification against
//! stand-in tools, and validation by the real `corosync -t` inside a private network, mount and
//! UTS namespace.
//!
//! Stand-ins: each test writes `corosync-cfgtool`, `corosync-quorumtool` and `cman_tool`
//! scripts into a temp dir and runs the module with PATH = that dir + /usr/bin:/bin, so the
//! real tools in /usr/sbin are never reached (and `corosync -t` runs only in the namespace test).
mod common;

use common::TempDir;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cman_two_node");

fn fixture(rel: &str) -> String {
    std::fs::read_to_string(common::repo_root().join("tests/fixtures").join(rel)).unwrap()
}

struct Lab {
    dir: TempDir,
}

struct Res {
    json: Value,
}

impl Res {
    fn failed(&self) -> bool {
        self.json["failed"] == json!(true)
    }
    fn changed(&self) -> bool {
        self.json["changed"] == json!(true)
    }
    fn msg(&self) -> String {
        self.json["msg"].as_str().unwrap_or("").to_string()
    }
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let dir = TempDir::new(tag);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let lab = Lab { dir };
        let d = lab.dir.path().display().to_string();
        let q_on = common::repo_root()
            .join("tests/fixtures/corosync-3.1.7-real/quorumtool-s-two-node.txt");
        let q_off =
            common::repo_root().join("tests/fixtures/corosync-3.1.7-real/quorumtool-s-quorate.txt");
        let c_on = common::repo_root().join("tests/fixtures/pve3/pvecm-status-2node.txt");
        let c_off = common::repo_root().join("tests/fixtures/pve3/pvecm-status.txt");
        // Activation stand-ins log their argv and exit with the code in `<tool>.rc` (default 0);
        // when `flag-follows` exists they turn the runtime flag on (present) / off (absent).
        lab.script(
            "corosync-cfgtool",
            &format!(
                "echo \"corosync-cfgtool $*\" >> {d}/calls\n\
                 if [ -e {d}/flag-follows ]; then cat {d}/flag-follows > {d}/flag; fi\n\
                 echo 'Reloading corosync.conf...'\n\
                 exit $(cat {d}/corosync-cfgtool.rc 2>/dev/null || echo 0)\n"
            ),
        );
        lab.script(
            "corosync-quorumtool",
            &format!(
                "echo \"corosync-quorumtool $*\" >> {d}/polls\n\
                 if [ \"$(cat {d}/flag 2>/dev/null)\" = on ]; then cat {}; else cat {}; fi\n",
                q_on.display(),
                q_off.display()
            ),
        );
        lab.script(
            "cman_tool",
            &format!(
                "if [ \"$1\" = status ]; then\n\
                   if [ \"$(cat {d}/flag 2>/dev/null)\" = on ]; then cat {}; else cat {}; fi; exit 0\n\
                 fi\n\
                 echo \"cman_tool $*\" >> {d}/calls\n\
                 if [ -e {d}/flag-follows ]; then cat {d}/flag-follows > {d}/flag; fi\n\
                 if [ -e {d}/cman_tool.older ]; then echo 'Not reloading, config version older or equal the running config' >&2; exit 1; fi\n\
                 exit $(cat {d}/cman_tool.rc 2>/dev/null || echo 0)\n",
                c_on.display(),
                c_off.display()
            ),
        );
        lab.script(
            "my-activate",
            &format!("echo \"my-activate $*\" >> {d}/calls\n"),
        );
        lab
    }

    fn script(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.join("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        self.dir.write(name, text)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn calls(&self) -> Vec<String> {
        self.read("calls").lines().map(str::to_string).collect()
    }

    /// Runs the module with `args` (validate defaults to false here; PATH holds the stand-ins).
    fn run(&self, args: Value, env: &[(&str, String)]) -> Res {
        self.run_bin(Path::new(BIN), args, env)
    }

    /// [`Lab::run`] with another build of the module.
    fn run_bin(&self, bin: &Path, args: Value, env: &[(&str, String)]) -> Res {
        let mut a = json!({"validate": false});
        for (k, v) in args.as_object().unwrap() {
            a[k] = v.clone();
        }
        let f = self.dir.write("args.json", serde_json::to_vec(&a).unwrap());
        let mut cmd = Command::new(bin);
        cmd.arg(&f)
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.join("bin").display()),
            )
            .env("TMPDIR", self.dir.path())
            .env_remove("PVE2NODE_PVE_DIR")
            .env_remove("PVE2NODE_COROSYNC_LOCAL")
            .env_remove("PVE2NODE_CLUSTER_LOCAL")
            .env_remove("PVE2NODE_BACKUP_DIR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {stdout:?} {:?}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        Res { json }
    }

    /// The names in the lab dir other than the helpers the test itself made.
    fn leftovers(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| {
                !["bin", "args.json", "calls", "polls", "flag", "flag-follows"]
                    .contains(&n.as_str())
            })
            .collect();
        v.sort();
        v
    }
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn seed_cluster_conf_byte_for_byte_then_unchanged() {
    let lab = Lab::new("c2n-seed3");
    let f = lab.write("cluster.conf", &fixture("pve3/cluster.conf"));
    let r = lab.run(json!({"path": p(&f), "activate": false}), &[]);
    assert!(!r.failed(), "{}", r.json);
    assert!(r.changed());
    assert_eq!(
        lab.read("cluster.conf"),
        fixture("pve3/cluster.conf.two-node")
    );
    assert_eq!(r.json["format"], "cman");
    assert_eq!(r.json["config_version_before"], 2);
    assert_eq!(r.json["config_version_after"], 3);
    assert_eq!(r.json["nodes"], 2);
    assert_eq!(r.json["activated"], Value::Null);
    let r = lab.run(json!({"path": p(&f), "activate": false}), &[]);
    assert!(!r.failed() && !r.changed(), "{}", r.json);
    assert_eq!(r.json["config_version_after"], 3);
    assert_eq!(
        lab.read("cluster.conf"),
        fixture("pve3/cluster.conf.two-node")
    );
    assert_eq!(lab.leftovers(), vec!["cluster.conf"]);
}

#[test]
fn seed_corosync_conf_byte_for_byte_then_unchanged() {
    for era in ["pve5", "pve8"] {
        let lab = Lab::new("c2n-seed");
        let f = lab.write("corosync.conf", &fixture(&format!("{era}/corosync.conf")));
        let r = lab.run(json!({"path": p(&f), "activate": false}), &[]);
        assert!(!r.failed() && r.changed(), "{}", r.json);
        assert_eq!(
            lab.read("corosync.conf"),
            fixture(&format!("{era}/corosync.conf.two-node")),
            "{era}"
        );
        assert_eq!(r.json["format"], "corosync");
        assert_eq!(
            (
                r.json["config_version_before"].clone(),
                r.json["config_version_after"].clone()
            ),
            (json!(2), json!(3))
        );
        let w = r.json["warnings"].as_array().unwrap();
        assert!(
            w.iter()
                .any(|w| w.as_str().unwrap().contains("wait_for_all: false")),
            "{w:?}"
        );
        let r = lab.run(json!({"path": p(&f), "activate": false}), &[]);
        assert!(!r.failed() && !r.changed(), "{}", r.json);
        assert_eq!(
            lab.read("corosync.conf"),
            fixture(&format!("{era}/corosync.conf.two-node"))
        );
    }
}

#[test]
fn state_absent_and_wait_for_all_through_the_binary() {
    let lab = Lab::new("c2n-absent");
    let f = lab.write("corosync.conf", &fixture("pve8/corosync.conf.two-node"));
    let r = lab.run(
        json!({"path": p(&f), "state": "absent", "activate": false}),
        &[],
    );
    assert!(r.changed(), "{}", r.json);
    assert_eq!(
        lab.read("corosync.conf"),
        fixture("pve8/corosync.conf").replace("config_version: 2", "config_version: 4")
    );
    let r = lab.run(
        json!({"path": p(&f), "wait_for_all": false, "activate": false}),
        &[],
    );
    assert!(
        r.changed() && r.json.get("warnings").is_none(),
        "{}",
        r.json
    );
    assert!(lab
        .read("corosync.conf")
        .contains("  provider: corosync_votequorum\n  two_node: 1\n  wait_for_all: 0\n}"));
    let x = lab.write("cluster.conf", &fixture("pve3/cluster.conf.two-node"));
    let r = lab.run(
        json!({"path": p(&x), "state": "absent", "activate": false}),
        &[],
    );
    assert!(r.changed(), "{}", r.json);
    assert_eq!(
        lab.read("cluster.conf"),
        fixture("pve3/cluster.conf")
            .replace("config_version=\"2\"", "config_version=\"4\"")
            .replace("authkey\">", "authkey\" expected_votes=\"2\">")
    );
}

/// expected_votes is a cman setting: given for corosync.conf it is not written, and a warning
/// says so instead of ignoring it silently.
#[test]
fn expected_votes_for_corosync_is_ignored_with_a_warning() {
    let lab = Lab::new("c2n-ev");
    let f = lab.write("corosync.conf", &fixture("pve8/corosync.conf"));
    let r = lab.run(
        json!({"path": p(&f), "expected_votes": 2, "wait_for_all": true, "activate": false}),
        &[],
    );
    assert!(r.changed(), "{}", r.json);
    assert!(!lab.read("corosync.conf").contains("expected_votes"));
    let w = r.json["warnings"].to_string();
    assert!(
        w.contains("expected_votes applies to cluster.conf only; 2 was ignored"),
        "{}",
        r.json
    );
}

#[test]
fn check_mode_shows_the_diff_and_writes_nothing() {
    let lab = Lab::new("c2n-check");
    let f = lab.write("corosync.conf", &fixture("pve8/corosync.conf"));
    let r = lab.run(
        json!({"path": p(&f), "_ansible_check_mode": true, "_ansible_diff": true}),
        &[],
    );
    assert!(r.changed() && !r.failed(), "{}", r.json);
    assert_eq!(
        r.json["diff"]["after"],
        fixture("pve8/corosync.conf.two-node")
    );
    assert_eq!(r.json["diff"]["before"], fixture("pve8/corosync.conf"));
    assert_eq!(lab.read("corosync.conf"), fixture("pve8/corosync.conf"));
    assert!(lab.calls().is_empty(), "activation ran in check mode");
    assert_eq!(lab.leftovers(), vec!["corosync.conf"]);
}

#[test]
fn backup_keeps_the_original() {
    let lab = Lab::new("c2n-backup");
    let f = lab.write("cluster.conf", &fixture("pve3/cluster.conf"));
    let r = lab.run(
        json!({"path": p(&f), "backup": true, "activate": false}),
        &[],
    );
    let b = r.json["backup_file"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(b).unwrap(),
        fixture("pve3/cluster.conf")
    );
}

#[test]
fn refused_cases_leave_the_file_byte_identical() {
    let c8 = fixture("pve8/corosync.conf");
    let x3 = fixture("pve3/cluster.conf");
    let three = c8.replace(
        "  node {\n    name: beta",
        "  node {\n    name: gamma\n    nodeid: 3\n    quorum_votes: 1\n    ring0_addr: 10.99.0.3\n  }\n  node {\n    name: beta",
    );
    let cases: Vec<(&str, &str, String, &str)> = vec![
        (
            "qdevice",
            "corosync.conf",
            c8.replace(
                "  provider: corosync_votequorum\n",
                "  provider: corosync_votequorum\n  device {\n    model: net\n  }\n",
            ),
            "line 23: the quorum section has a `device` section (a QDevice), and corosync refuses two_node beside one: keep the QDevice as the third vote, or remove it first with the qdevice module's state=absent",
        ),
        (
            "syntax",
            "corosync.conf",
            c8.replace("  secauth: on\n", "  secauth on\n"),
            "line 33: cannot read `secauth on`",
        ),
        (
            "brace",
            "corosync.conf",
            c8.replacen("}\n", "\n", 1),
            "missing closing brace",
        ),
        (
            "no quorum",
            "corosync.conf",
            c8.replace("quorum {\n  provider: corosync_votequorum\n}\n", ""),
            "no top-level `quorum { }` section",
        ),
        (
            "no version",
            "corosync.conf",
            c8.replace("  config_version: 2\n", ""),
            "config_version is missing",
        ),
        (
            "bad version",
            "corosync.conf",
            c8.replace("config_version: 2", "config_version: abc"),
            "config_version `abc` is not a whole number",
        ),
        ("three nodes", "corosync.conf", three, "it lists 3 nodes"),
        (
            "auto_tie_breaker",
            "corosync.conf",
            c8.replace(
                "  provider: corosync_votequorum\n",
                "  provider: corosync_votequorum\n  auto_tie_breaker: 1\n",
            ),
            "corosync disables two_node when auto_tie_breaker is on",
        ),
        (
            "xml one node",
            "cluster.conf",
            fixture("pve3/cluster.conf.single"),
            "it lists 1 node, but cman refuses to start",
        ),
        (
            "xml votes",
            "cluster.conf",
            x3.replace("name=\"beta\" votes=\"1\"", "name=\"beta\" votes=\"3\""),
            "clusternode `beta` has votes=\"3\", but cman refuses to start",
        ),
        (
            "xml",
            "cluster.conf",
            x3.replace("</cman>", "</cmann>"),
            "line 5: malformed XML",
        ),
        (
            "no cman",
            "cluster.conf",
            x3.replace(
                "  <cman keyfile=\"/var/lib/pve-cluster/corosync.authkey\">\n  </cman>\n",
                "",
            ),
            "no <cman> element",
        ),
        (
            "xml version",
            "cluster.conf",
            x3.replace("config_version=\"2\"", "config_version=\"two\""),
            "config_version `two`",
        ),
        (
            "xml no version",
            "cluster.conf",
            x3.replace(" config_version=\"2\"", ""),
            "config_version attribute of <cluster> is missing",
        ),
        (
            "xml three",
            "cluster.conf",
            x3.replace(
                "</clusternodes>",
                "<clusternode name=\"gamma\" votes=\"1\" nodeid=\"3\"/></clusternodes>",
            ),
            "it lists 3 nodes",
        ),
    ];
    for (name, file, text, frag) in cases {
        let lab = Lab::new("c2n-refuse");
        let f = lab.write(file, &text);
        let r = lab.run(json!({"path": p(&f)}), &[]);
        assert!(r.failed(), "{name}: {}", r.json);
        assert!(!r.changed(), "{name}");
        assert!(
            r.msg().contains(&p(&f)),
            "{name}: msg does not name the file: {}",
            r.msg()
        );
        assert!(r.msg().contains(frag), "{name}: {}", r.msg());
        assert_eq!(lab.read(file), text, "{name}: file changed");
        assert_eq!(lab.leftovers(), vec![file.to_string()], "{name}: leftovers");
        assert!(lab.calls().is_empty(), "{name}: activation ran");
    }
    let lab = Lab::new("c2n-missing");
    let r = lab.run(json!({"path": p(&lab.path("nope.conf"))}), &[]);
    assert!(r.failed());
    assert!(r.msg().contains("nope.conf does not exist"), "{}", r.msg());
    // force lets three nodes through
    let lab = Lab::new("c2n-force");
    let f = lab.write(
        "cluster.conf",
        &x3.replace(
            "</clusternodes>",
            "<clusternode name=\"gamma\" votes=\"1\" nodeid=\"3\"/></clusternodes>",
        ),
    );
    let r = lab.run(
        json!({"path": p(&f), "force": true, "activate": false}),
        &[],
    );
    assert!(r.changed() && r.json["nodes"] == 3, "{}", r.json);
}

/// Inside the pmxcfs dir the module writes `<file>.new` and renames it; it then waits for
/// pmxcfs's copy to /etc/corosync/corosync.conf before `corosync-cfgtool -R`, and verifies.
#[test]
fn pve_dir_write_waits_for_pmxcfs_copy_then_reloads_and_verifies() {
    let lab = Lab::new("c2n-pve");
    std::fs::create_dir_all(lab.path("pve")).unwrap();
    let f = lab.write("pve/corosync.conf", &fixture("pve8/corosync.conf"));
    // A stale .new from an interrupted edit is consumed by the DotNew write.
    lab.write("pve/corosync.conf.new", "stale");
    let local = lab.write("local-corosync.conf", &fixture("pve8/corosync.conf"));
    lab.write("flag-follows", "on");
    let env = [
        ("PVE2NODE_PVE_DIR", p(&lab.path("pve"))),
        ("PVE2NODE_COROSYNC_LOCAL", p(&local)),
    ];
    let copier = pmxcfs_copier(&lab, &f, &local, "config_version: 3");
    let r = lab.run(json!({"path": p(&f), "timeout": 15}), &env);
    assert!(copier.join().unwrap());
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(
        lab.read("pve/corosync.conf"),
        fixture("pve8/corosync.conf.two-node")
    );
    assert!(
        !lab.path("pve/corosync.conf.new").exists(),
        "the .new file was not the temp file"
    );
    // The reload waited for the copy (the call log shows the order).
    assert_eq!(lab.calls(), vec!["pmxcfs-copy", "corosync-cfgtool -R"]);
    assert_eq!(r.json["activated"]["rc"], 0);
    assert_eq!(
        r.json["runtime_flags"],
        json!(["2Node", "Quorate", "WaitForAll"])
    );
}

/// Plays pmxcfs: once `src` contains `needle`, after a delay, logs `pmxcfs-copy` to the call
/// log and copies `src` to `dst`. Bounded (20 s); the thread returns whether it copied.
fn pmxcfs_copier(
    lab: &Lab,
    src: &Path,
    dst: &Path,
    needle: &'static str,
) -> std::thread::JoinHandle<bool> {
    let (src, dst, calls) = (src.to_path_buf(), dst.to_path_buf(), lab.path("calls"));
    std::thread::spawn(move || {
        let copied =
            pve2node::wait::until(Duration::from_secs(20), Duration::from_millis(50), |_| {
                let t = std::fs::read_to_string(&src).unwrap_or_default();
                t.contains(needle).then_some(t)
            });
        let Ok((t, _)) = copied else {
            return false;
        };
        std::thread::sleep(Duration::from_millis(700));
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&calls)
            .unwrap();
        writeln!(log, "pmxcfs-copy").unwrap();
        std::fs::write(&dst, t).unwrap();
        true
    })
}

/// pmxcfs copies an EQUAL config_version with other content too (proxmox.md §8): a local copy
/// that already shows the new version number is not yet the new file, so the module waits for
/// the new bytes before the reload, and says so when they never come.
#[test]
fn equal_version_with_other_content_waits_for_the_copy() {
    let lab = Lab::new("c2n-equal");
    std::fs::create_dir_all(lab.path("pve")).unwrap();
    let f = lab.write("pve/corosync.conf", &fixture("pve8/corosync.conf"));
    let local = lab.write(
        "local-corosync.conf",
        &fixture("pve8/corosync.conf").replace("config_version: 2", "config_version: 3"),
    );
    lab.write("flag-follows", "on");
    let env = [
        ("PVE2NODE_PVE_DIR", p(&lab.path("pve"))),
        ("PVE2NODE_COROSYNC_LOCAL", p(&local)),
    ];
    let copier = pmxcfs_copier(&lab, &f, &local, "two_node: 1");
    let r = lab.run(json!({"path": p(&f), "timeout": 15}), &env);
    assert!(copier.join().unwrap());
    assert!(!r.failed() && r.changed(), "{}", r.json);
    assert_eq!(lab.calls(), vec!["pmxcfs-copy", "corosync-cfgtool -R"]);
    assert_eq!(
        lab.read("local-corosync.conf"),
        lab.read("pve/corosync.conf")
    );

    // Never copied: the failure names the equal version with other content.
    let lab = Lab::new("c2n-equal-never");
    std::fs::create_dir_all(lab.path("pve")).unwrap();
    let f = lab.write("pve/corosync.conf", &fixture("pve8/corosync.conf"));
    let local = lab.write(
        "local-corosync.conf",
        &fixture("pve8/corosync.conf").replace("config_version: 2", "config_version: 3"),
    );
    let env = [
        ("PVE2NODE_PVE_DIR", p(&lab.path("pve"))),
        ("PVE2NODE_COROSYNC_LOCAL", p(&local)),
    ];
    let r = lab.run(json!({"path": p(&f), "timeout": 1}), &env);
    assert!(r.failed() && r.changed(), "{}", r.json);
    assert!(
        r.msg()
            .contains("still shows version 3 with another text than the new one"),
        "{}",
        r.msg()
    );
    assert!(
        lab.calls().is_empty(),
        "reloaded the old text: {:?}",
        lab.calls()
    );
}

/// The real pmxcfs runs `corosync-cfgtool -R` itself inside the rename on the writer node; the
/// module's own reload is a second one. When that second one fails, the running cluster
/// decides: it took the change (success, with a warning), or it did not (one failure that
/// names both).
#[test]
fn pmxcfs_already_reloaded_one_clear_result() {
    for took_it in [true, false] {
        let lab = Lab::new("c2n-reloaded");
        std::fs::create_dir_all(lab.path("pve")).unwrap();
        let f = lab.write("pve/corosync.conf", &fixture("pve8/corosync.conf"));
        // pmxcfs copied inside the rename: the local copy is already the new file.
        let local = lab.write(
            "local-corosync.conf",
            &fixture("pve8/corosync.conf.two-node"),
        );
        lab.write("corosync-cfgtool.rc", "1");
        if took_it {
            lab.write("flag", "on");
        }
        let env = [
            ("PVE2NODE_PVE_DIR", p(&lab.path("pve"))),
            ("PVE2NODE_COROSYNC_LOCAL", p(&local)),
        ];
        let r = lab.run(json!({"path": p(&f), "timeout": 1}), &env);
        assert!(r.changed(), "{}", r.json);
        assert_eq!(lab.calls(), vec!["corosync-cfgtool -R"]);
        assert_eq!(r.json["activated"]["rc"], 1, "{}", r.json);
        if took_it {
            assert!(!r.failed(), "{}", r.json);
            assert_eq!(
                r.json["runtime_flags"],
                json!(["2Node", "Quorate", "WaitForAll"])
            );
            let warnings = r.json["warnings"].to_string();
            assert!(
                warnings.contains("pmxcfs had already reloaded"),
                "{warnings}"
            );
        } else {
            assert!(r.failed(), "{}", r.json);
            let msg = r.msg();
            assert_eq!(msg.matches("was changed").count(), 1, "{msg}");
            assert!(msg.contains("the running cluster did not take it"), "{msg}");
            assert!(
                msg.contains("the reload after pmxcfs's own also failed: `corosync-cfgtool -R` exited with rc 1"),
                "{msg}"
            );
        }
    }
}

/// backup: true for a file inside /etc/pve keeps the copy outside it (inside, pmxcfs would
/// replicate it to every node and count it against its limits) and returns its path.
#[test]
fn backup_of_a_file_in_the_pmxcfs_dir_is_kept_outside_it() {
    let lab = Lab::new("c2n-pvebackup");
    std::fs::create_dir_all(lab.path("pve")).unwrap();
    let f = lab.write("pve/corosync.conf", &fixture("pve8/corosync.conf"));
    let dir = lab.path("backups");
    let env = [
        ("PVE2NODE_PVE_DIR", p(&lab.path("pve"))),
        ("PVE2NODE_BACKUP_DIR", p(&dir)),
    ];
    // A backup dir others can write is refused, before anything is written.
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = lab.run(
        json!({"path": p(&f), "backup": true, "activate": false}),
        &env,
    );
    assert!(r.failed() && !r.changed(), "{}", r.json);
    assert!(r.msg().contains("cannot back up"), "{}", r.msg());
    assert!(r.msg().contains("writable by it alone"), "{}", r.msg());
    assert_eq!(lab.read("pve/corosync.conf"), fixture("pve8/corosync.conf"));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A killed run's temp file (its pid is gone) is removed; a live run's is left alone.
    let dead = (400_000..4_000_000u32)
        .find(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        .unwrap();
    let stale = format!(".corosync.conf.{dead}.2026-01-01@00:00:00~.tmp");
    let live = format!(
        ".corosync.conf.{}.2026-01-01@00:00:00~.tmp",
        std::process::id()
    );
    std::fs::write(dir.join(&stale), "partial").unwrap();
    std::fs::write(dir.join(&live), "in progress").unwrap();
    let r = lab.run(
        json!({"path": p(&f), "backup": true, "activate": false}),
        &env,
    );
    assert!(!r.failed() && r.changed(), "{}", r.json);
    let b = PathBuf::from(r.json["backup_file"].as_str().unwrap());
    assert_eq!(b.parent(), Some(dir.as_path()), "{}", b.display());
    let name = b.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("corosync.conf.") && name.ends_with('~'),
        "{name}"
    );
    assert_eq!(
        std::fs::read_to_string(&b).unwrap(),
        fixture("pve8/corosync.conf")
    );
    // Nothing but the file itself in the pmxcfs dir; only the complete backup in its dir.
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&lab.path("pve")), vec!["corosync.conf"]);
    assert_eq!(names(&dir), vec![live.clone(), name]);
    std::fs::remove_file(dir.join(&live)).unwrap();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    // Unchanged on the second run: no new backup.
    let r = lab.run(
        json!({"path": p(&f), "backup": true, "activate": false}),
        &env,
    );
    assert!(!r.changed(), "{}", r.json);
    assert_eq!(names(&dir).len(), 1);
}

/// A module that already changed the file always says so: an activation command that floods
/// its output and fails still gives `changed: true` with `failed: true`.
#[test]
fn flooding_failing_activation_still_reports_the_change() {
    let lab = Lab::new("c2n-flood");
    let f = lab.write("corosync.conf", &fixture("pve8/corosync.conf"));
    lab.script(
        "flood",
        "head -c 4000000 /dev/zero | tr '\\0' x\necho 'flood over' >&2\nexit 3\n",
    );
    let r = lab.run(
        json!({"path": p(&f), "activate_command": ["flood"], "timeout": 5}),
        &[],
    );
    assert!(r.failed() && r.changed(), "{}", r.json["msg"]);
    assert_eq!(r.json["activated"]["rc"], 3);
    assert!(r.msg().contains("was changed (config_version 2 -> 3)"));
    assert_eq!(
        lab.read("corosync.conf"),
        fixture("pve8/corosync.conf.two-node")
    );
}

/// pmxcfs never copies a config over a local copy with a higher config_version (e.g. after a
/// wrong edit of /etc/corosync/corosync.conf): the module says so at once instead of
/// reloading the unchanged local file or waiting for the timeout.
#[test]
fn local_copy_newer_than_the_edit_fails_at_once_without_reload() {
    let lab = Lab::new("c2n-newer");
    std::fs::create_dir_all(lab.path("pve")).unwrap();
    let f = lab.write("pve/corosync.conf", &fixture("pve8/corosync.conf"));
    let local = lab.write(
        "local-corosync.conf",
        &fixture("pve8/corosync.conf").replace("config_version: 2", "config_version: 7"),
    );
    let env = [
        ("PVE2NODE_PVE_DIR", p(&lab.path("pve"))),
        ("PVE2NODE_COROSYNC_LOCAL", p(&local)),
    ];
    let start = Instant::now();
    let r = lab.run(json!({"path": p(&f), "timeout": 20}), &env);
    assert!(r.failed() && r.changed(), "{}", r.json);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "waited for nothing"
    );
    assert!(
        r.msg()
            .contains("already has config_version 7, higher than the new 3"),
        "{}",
        r.msg()
    );
    assert!(
        r.msg().contains("`local local-corosync.conf is newer`"),
        "{}",
        r.msg()
    );
    assert!(lab.calls().is_empty(), "reload ran: {:?}", lab.calls());
    // The same for cluster.conf.
    let x = lab.write("pve/cluster.conf", &fixture("pve3/cluster.conf"));
    let xl = lab.write(
        "local-cluster.conf",
        &fixture("pve3/cluster.conf").replace("config_version=\"2\"", "config_version=\"9\""),
    );
    let env = [
        ("PVE2NODE_PVE_DIR", p(&lab.path("pve"))),
        ("PVE2NODE_CLUSTER_LOCAL", p(&xl)),
    ];
    let r = lab.run(json!({"path": p(&x), "timeout": 20}), &env);
    assert!(r.failed() && r.changed(), "{}", r.json);
    assert!(
        r.msg()
            .contains("already has config_version 9, higher than the new 3"),
        "{}",
        r.msg()
    );
    assert!(lab.calls().is_empty(), "reload ran: {:?}", lab.calls());
}

#[test]
fn pmxcfs_never_copies_fails_after_timeout_without_reload() {
    let lab = Lab::new("c2n-nocopy");
    std::fs::create_dir_all(lab.path("pve")).unwrap();
    let f = lab.write("pve/corosync.conf", &fixture("pve8/corosync.conf"));
    let local = lab.write("local-corosync.conf", &fixture("pve8/corosync.conf"));
    let env = [
        ("PVE2NODE_PVE_DIR", p(&lab.path("pve"))),
        ("PVE2NODE_COROSYNC_LOCAL", p(&local)),
    ];
    let start = Instant::now();
    let r = lab.run(json!({"path": p(&f), "timeout": 1}), &env);
    assert!(r.failed() && r.changed(), "{}", r.json);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        r.msg().contains("was changed (config_version 2 -> 3)"),
        "{}",
        r.msg()
    );
    assert!(r.msg().contains("still shows version 2"), "{}", r.msg());
    assert!(r.msg().contains("pmxcfs did not copy it"), "{}", r.msg());
    assert_eq!(
        lab.read("pve/corosync.conf"),
        fixture("pve8/corosync.conf.two-node")
    );
    assert!(lab.calls().is_empty());
}

#[test]
fn activation_runs_once_after_a_change_never_when_unchanged() {
    let lab = Lab::new("c2n-once");
    let f = lab.write("corosync.conf", &fixture("pve5/corosync.conf"));
    lab.write("flag-follows", "on");
    let r = lab.run(json!({"path": p(&f), "timeout": 5}), &[]);
    assert!(!r.failed() && r.changed(), "{}", r.json);
    // Outside the pmxcfs dir: no waiting, just the reload.
    assert_eq!(lab.calls(), vec!["corosync-cfgtool -R"]);
    assert_eq!(
        r.json["runtime_flags"],
        json!(["2Node", "Quorate", "WaitForAll"])
    );
    let r = lab.run(json!({"path": p(&f), "timeout": 5}), &[]);
    assert!(!r.failed() && !r.changed(), "{}", r.json);
    assert_eq!(r.json["activated"], Value::Null);
    assert_eq!(r.json["runtime_flags"], Value::Null);
    assert_eq!(
        lab.calls().len(),
        1,
        "activation ran although nothing changed"
    );
    // activate: false
    let g = lab.write("other.conf", &fixture("pve8/corosync.conf"));
    let r = lab.run(json!({"path": p(&g), "activate": false}), &[]);
    assert!(r.changed());
    assert_eq!(lab.calls().len(), 1);
}

#[test]
fn activation_failure_is_reported_and_the_file_stays_changed() {
    let lab = Lab::new("c2n-actfail");
    let f = lab.write("corosync.conf", &fixture("pve8/corosync.conf"));
    lab.write("corosync-cfgtool.rc", "7");
    let r = lab.run(json!({"path": p(&f), "timeout": 2}), &[]);
    assert!(r.failed() && r.changed(), "{}", r.json);
    assert!(
        r.msg().contains("was changed (config_version 2 -> 3)"),
        "{}",
        r.msg()
    );
    assert!(r.msg().contains("exited with rc 7"), "{}", r.msg());
    assert!(r.msg().contains("the file stays changed"), "{}", r.msg());
    assert_eq!(r.json["activated"]["rc"], 7);
    assert_eq!(
        lab.read("corosync.conf"),
        fixture("pve8/corosync.conf.two-node")
    );
    assert!(
        lab.read("polls").is_empty(),
        "verified after a failed activation"
    );
}

#[test]
fn verify_fails_after_timeout_when_the_flag_never_shows() {
    let lab = Lab::new("c2n-noflag");
    let f = lab.write("corosync.conf", &fixture("pve8/corosync.conf"));
    let start = Instant::now();
    let r = lab.run(json!({"path": p(&f), "timeout": 2}), &[]);
    let took = start.elapsed();
    assert!(r.failed() && r.changed(), "{}", r.json);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "{took:?}"
    );
    assert!(
        r.msg().contains("the running cluster did not take it"),
        "{}",
        r.msg()
    );
    assert!(r.msg().contains("2Node"), "{}", r.msg());
    assert!(lab.read("polls").lines().count() >= 2, "polled only once");
    assert_eq!(
        lab.read("corosync.conf"),
        fixture("pve8/corosync.conf.two-node")
    );
}

#[test]
fn verify_absent_waits_for_the_flag_to_go() {
    let lab = Lab::new("c2n-absentv");
    let f = lab.write("corosync.conf", &fixture("pve8/corosync.conf.two-node"));
    lab.write("flag", "on");
    lab.write("flag-follows", "off");
    let r = lab.run(json!({"path": p(&f), "state": "absent", "timeout": 5}), &[]);
    assert!(!r.failed() && r.changed(), "{}", r.json);
    assert_eq!(r.json["runtime_flags"], json!(["Quorate"]));
}

#[test]
fn cman_activation_and_verification() {
    let lab = Lab::new("c2n-cman");
    let f = lab.write("cluster.conf", &fixture("pve3/cluster.conf"));
    lab.write("flag-follows", "on");
    let r = lab.run(json!({"path": p(&f), "timeout": 5}), &[]);
    assert!(!r.failed() && r.changed(), "{}", r.json);
    assert_eq!(lab.calls(), vec!["cman_tool version -r -S"]);
    assert_eq!(r.json["runtime_flags"], json!(["2node"]));

    // Inside the pmxcfs dir pmxcfs already reloaded: `older or equal` counts as done.
    let lab = Lab::new("c2n-cman-pve");
    std::fs::create_dir_all(lab.path("pve")).unwrap();
    let f = lab.write("pve/cluster.conf", &fixture("pve3/cluster.conf"));
    let local = lab.write("local-cluster.conf", &fixture("pve3/cluster.conf.two-node"));
    lab.write("cman_tool.older", "");
    lab.write("flag", "on");
    let env = [
        ("PVE2NODE_PVE_DIR", p(&lab.path("pve"))),
        ("PVE2NODE_CLUSTER_LOCAL", p(&local)),
    ];
    let r = lab.run(json!({"path": p(&f), "timeout": 5}), &env);
    assert!(!r.failed() && r.changed(), "{}", r.json);
    assert_eq!(r.json["activated"]["rc"], 1);
    assert_eq!(r.json["runtime_flags"], json!(["2node"]));

    // The flag never shows: fail, mentioning the unconfirmed restart need.
    let lab = Lab::new("c2n-cman-noflag");
    let f = lab.write("cluster.conf", &fixture("pve3/cluster.conf"));
    let r = lab.run(json!({"path": p(&f), "timeout": 1}), &[]);
    assert!(r.failed() && r.changed(), "{}", r.json);
    assert!(
        r.msg().contains("cman_tool status") && r.msg().contains("restart"),
        "{}",
        r.msg()
    );
}

#[test]
fn activate_command_overrides_without_waiting() {
    let lab = Lab::new("c2n-custom");
    std::fs::create_dir_all(lab.path("pve")).unwrap();
    let f = lab.write("pve/corosync.conf", &fixture("pve8/corosync.conf"));
    lab.write("flag", "on");
    let env = [
        ("PVE2NODE_PVE_DIR", p(&lab.path("pve"))),
        ("PVE2NODE_COROSYNC_LOCAL", p(&lab.path("never-written"))),
    ];
    let r = lab.run(
        json!({"path": p(&f), "activate_command": ["my-activate", "a b", "$HOME"], "timeout": 3}),
        &env,
    );
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(lab.calls(), vec!["my-activate a b $HOME"]);
    assert_eq!(
        r.json["activated"]["cmd"],
        json!(["my-activate", "a b", "$HOME"])
    );
}

// ---- real `corosync -t`, only inside fresh network + mount + UTS namespaces -------------------

/// Runs the module with validate: true inside `unshare -m -n -u` (private mounts, only a down
/// loopback, own hostname): a tmpfs over /etc/corosync holds a temp authkey (corosync -t
/// insists on one), the hostname is `host` (corosync -t must find the local node). Then runs
/// `corosync -t -c` on the written file. Returns (module result, corosync rc, corosync output),
/// or None when namespaces or corosync are unavailable.
fn in_namespace(lab: &Lab, file: &Path, host: &str, args: Value) -> Option<(Res, i32, String)> {
    if Command::new("unshare")
        .args(["-m", "-n", "-u", "true"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
        || !Path::new("/usr/sbin/corosync").exists()
        || !Path::new("/etc/corosync").is_dir()
    {
        if std::env::var("PVE2NODE_E2E").as_deref() == Ok("1") {
            panic!("unshare -m -n -u or /usr/sbin/corosync unavailable");
        }
        eprintln!("skipping: needs unshare -m -n -u and Debian's corosync");
        return None;
    }
    let d = lab.dir.path();
    std::fs::write(d.join("authkey"), [7u8; 256]).unwrap();
    let mut a = args;
    a["path"] = json!(p(file));
    a["validate"] = json!(true);
    a["activate"] = json!(false);
    std::fs::write(d.join("args.json"), serde_json::to_vec(&a).unwrap()).unwrap();
    let script = format!(
        "set -e\n\
         mount --make-rprivate /\n\
         mount -t tmpfs pve2node-test /etc/corosync\n\
         cp {d}/authkey /etc/corosync/authkey\n\
         chmod 400 /etc/corosync/authkey\n\
         hostname {host}\n\
         export PATH={d}/bin:/usr/sbin:/usr/bin:/sbin:/bin TMPDIR={d}\n\
         {bin} {d}/args.json > {d}/module.out || true\n\
         set +e\n\
         corosync -t -c {file} > {d}/t.out 2>&1\n\
         echo $? > {d}/t.rc\n",
        d = d.display(),
        bin = BIN,
        file = file.display()
    );
    std::fs::write(d.join("ns.sh"), script).unwrap();
    let st = Command::new("unshare")
        .args(["-m", "--propagation", "private", "-n", "-u", "sh"])
        .arg(d.join("ns.sh"))
        .status()
        .unwrap();
    assert!(st.success(), "namespace script failed");
    let json: Value = serde_json::from_str(lab.read("module.out").trim()).unwrap();
    let rc = lab.read("t.rc").trim().parse().unwrap();
    Some((Res { json }, rc, lab.read("t.out")))
}

#[test]
fn corosync_t_accepts_every_written_corosync_conf() {
    // The IP-addressed corosync.conf texts the tests write (the pve4 ones use host names as
    // ring0_addr, which corosync would resolve: left out on purpose).
    let crlf = |s: String| s.replace('\n', "\r\n");
    let cases: Vec<(&str, String, Value, String)> = vec![
        (
            "pve8",
            fixture("pve8/corosync.conf"),
            json!({}),
            fixture("pve8/corosync.conf.two-node"),
        ),
        (
            "pve5",
            fixture("pve5/corosync.conf"),
            json!({}),
            fixture("pve5/corosync.conf.two-node"),
        ),
        (
            "pve8 crlf",
            crlf(fixture("pve8/corosync.conf")),
            json!({}),
            crlf(fixture("pve8/corosync.conf.two-node")),
        ),
        (
            "ipv6",
            fixture("pve8/corosync.conf.ipv6"),
            json!({}),
            fixture("pve8/corosync.conf.ipv6")
                .replace("config_version: 2", "config_version: 3")
                .replace("votequorum\n", "votequorum\n  two_node: 1\n"),
        ),
        (
            "pve9 two links, token_coefficient, wait_for_all",
            fixture("pve9/corosync.conf"),
            json!({"wait_for_all": true}),
            fixture("pve9/corosync.conf")
                .replace("config_version: 2", "config_version: 3")
                .replace(
                    "votequorum\n",
                    "votequorum\n  two_node: 1\n  wait_for_all: 1\n",
                ),
        ),
        (
            "wait_for_all",
            fixture("pve8/corosync.conf"),
            json!({"wait_for_all": false}),
            fixture("pve8/corosync.conf.two-node")
                .replace("two_node: 1\n", "two_node: 1\n  wait_for_all: 0\n"),
        ),
        (
            "absent",
            fixture("pve8/corosync.conf.two-node"),
            json!({"state": "absent"}),
            fixture("pve8/corosync.conf").replace("config_version: 2", "config_version: 4"),
        ),
        (
            "two_node 0",
            fixture("pve8/corosync.conf").replace("votequorum\n", "votequorum\n  two_node: 0\n"),
            json!({}),
            fixture("pve8/corosync.conf.two-node"),
        ),
    ];
    for (name, input, args, expected) in cases {
        let lab = Lab::new("c2n-cst");
        let f = lab.write("corosync.conf", &input);
        let Some((r, rc, out)) = in_namespace(&lab, &f, "alpha", args) else {
            return;
        };
        assert!(!r.failed() && r.changed(), "{name}: {}", r.json);
        let warned = r.json["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .any(|w| w.as_str().unwrap_or("").contains("cannot validate"))
            })
            .unwrap_or(false);
        assert!(
            !warned,
            "{name}: corosync -t could not validate: {}",
            r.json
        );
        assert_eq!(lab.read("corosync.conf"), expected, "{name}");
        assert_eq!(rc, 0, "{name}: corosync -t rejects the written file: {out}");
    }
}

#[test]
fn corosync_t_rejection_refuses_before_the_rename() {
    // Our parser accepts this, corosync's value check does not.
    let lab = Lab::new("c2n-cst-bad");
    let input = fixture("pve8/corosync.conf").replace(
        "    quorum_votes: 1\n    ring0_addr: 10.99.0.2",
        "    quorum_votes: many\n    ring0_addr: 10.99.0.2",
    );
    let f = lab.write("corosync.conf", &input);
    let Some((r, rc, out)) = in_namespace(&lab, &f, "alpha", json!({})) else {
        return;
    };
    assert!(r.failed() && !r.changed(), "{}", r.json);
    assert!(
        r.msg().contains("corosync -t rejects the edited text"),
        "{}",
        r.msg()
    );
    assert!(r.msg().contains("Value of key"), "{}", r.msg());
    assert_eq!(lab.read("corosync.conf"), input);
    assert_ne!(rc, 0, "{out}");
    assert!(
        !lab.leftovers()
            .iter()
            .any(|n| n.contains("tmp") || n.ends_with(".new") || n.starts_with("pve2node-")),
        "{:?}",
        lab.leftovers()
    );
}

#[test]
fn corosync_t_environment_failure_is_a_warning() {
    // No node is called `gamma`: corosync -t fails on the old and the new text alike.
    let lab = Lab::new("c2n-cst-env");
    let f = lab.write("corosync.conf", &fixture("pve8/corosync.conf"));
    let Some((r, _, _)) = in_namespace(&lab, &f, "gamma", json!({})) else {
        return;
    };
    assert!(!r.failed() && r.changed(), "{}", r.json);
    let w = r.json["warnings"].to_string();
    assert!(
        w.contains("cannot validate") && w.contains("No valid name found for local host"),
        "{w}"
    );
    assert_eq!(
        lab.read("corosync.conf"),
        fixture("pve8/corosync.conf.two-node")
    );
}

/// Random mutations of the fixtures through the binary: either refused with the file
/// byte-identical (and no temp file left), or written with a text the module accepts again
/// unchanged (it re-parses and is in the wanted state).
#[test]
fn random_mutations_are_refused_untouched_or_written_reparseable() {
    let mut x: u64 = 0x2545f4914f6cdd1d;
    let mut rnd = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n.max(1) as u64) as usize
    };
    let bases = [
        ("cluster.conf", fixture("pve3/cluster.conf")),
        ("corosync.conf", fixture("pve8/corosync.conf")),
        ("corosync.conf", fixture("pve4/corosync.conf")),
    ];
    let pieces = [
        "{",
        "}",
        "\n",
        ":",
        " ",
        "<",
        ">",
        "/>",
        "\"",
        "two_node: 0",
        "device {",
        "<cman/>",
        "config_version",
        "=",
        "#",
    ];
    let (mut refused, mut written) = (0, 0);
    for _ in 0..60 {
        let (name, base) = &bases[rnd(bases.len())];
        let mut t = base.clone();
        for _ in 0..1 + rnd(2) {
            let mut at = rnd(t.len() + 1);
            while !t.is_char_boundary(at) {
                at -= 1;
            }
            if rnd(2) == 0 {
                t.insert_str(at, pieces[rnd(pieces.len())]);
            } else {
                let mut end = (at + 1 + rnd(8)).min(t.len());
                while !t.is_char_boundary(end) {
                    end += 1;
                }
                t.replace_range(at..end, "");
            }
        }
        let lab = Lab::new("c2n-fuzz");
        let f = lab.write(name, &t);
        let r = lab.run(json!({"path": p(&f), "activate": false}), &[]);
        if r.failed() {
            refused += 1;
            assert_eq!(lab.read(name), t, "refused but changed: {}", r.msg());
            assert!(r.msg().contains(&p(&f)), "{}", r.msg());
        } else {
            written += 1;
            let after = lab.read(name);
            if r.changed() {
                assert_eq!(
                    r.json["config_version_after"].as_u64(),
                    r.json["config_version_before"].as_u64().map(|v| v + 1)
                );
            } else {
                assert_eq!(after, t);
            }
            let again = lab.run(json!({"path": p(&f), "activate": false}), &[]);
            assert!(
                !again.failed() && !again.changed(),
                "output not stable: {}\n{after:?}",
                again.json
            );
        }
        assert_eq!(lab.leftovers(), vec![name.to_string()]);
    }
    assert!(
        refused > 5 && written > 5,
        "refused {refused}, written {written}"
    );
}

#[test]
fn ansible_doc_shows_the_documentation() {
    let Some(text) = common::ansible_doc("cman_two_node", BIN) else {
        return;
    };
    for word in [
        "wait_for_all",
        "activate_command",
        "config_version_after",
        "runtime_flags",
    ] {
        assert!(
            text.contains(word),
            "{word} missing from ansible-doc output"
        );
    }
}

#[test]
fn ansible_playbook_edits_then_reports_ok() {
    let Some(bin) = common::ansible_bin() else {
        return;
    };
    let dir = TempDir::new("c2n-play");
    let lib = common::ansible_library(&dir, &[("cman_two_node", BIN)]);
    let conf = dir.write("corosync.conf", fixture("pve8/corosync.conf"));
    let play = dir.write(
        "play.yml",
        format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - cman_two_node:\n        path: {}\n        activate: false\n        validate: false\n      register: r\n    - assert:\n        that: [\"r.config_version_after == 3\"]\n",
            conf.display()
        ),
    );
    let run = |extra: &[&str]| {
        let out = common::ansible_cmd(&bin, "ansible-playbook", &dir, &lib)
            .args(["-i", "localhost,", "-c", "local"])
            .args(extra)
            .arg(&play)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let first = run(&["--diff"]);
    assert!(first.contains("changed=1"), "{first}");
    assert!(first.contains("+  two_node: 1"), "diff not shown: {first}");
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        fixture("pve8/corosync.conf.two-node")
    );
    let second = run(&[]);
    assert!(second.contains("changed=0"), "{second}");
}

/// The release binary `name` as scripts/build.sh leaves it in build/modules, when it is there
/// and newer than the sources; else the test is skipped (a failure under PVE2NODE_E2E=1,
/// where scripts/test.sh has just built it).
fn release_bin(name: &str) -> Option<PathBuf> {
    let root = common::repo_root();
    let bin = root.join("build/modules").join(name);
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let newest_source = [
        root.join("modules").join(name).join("main.rs"),
        root.join("library/protocol.rs"),
        root.join("library/run.rs"),
        root.join("library/edit.rs"),
    ]
    .iter()
    .filter_map(|p| mtime(p))
    .max();
    let why = match (mtime(&bin), newest_source) {
        (None, _) => format!("{} does not exist", bin.display()),
        (Some(b), Some(s)) if b < s => format!("{} is older than its sources", bin.display()),
        _ => return Some(bin),
    };
    if std::env::var("PVE2NODE_E2E").as_deref() == Ok("1") {
        panic!("{why}; run bash scripts/build.sh");
    }
    eprintln!("SKIP release binary test: {why} (run bash scripts/build.sh)");
    None
}

/// The test hooks are honoured by debug builds only: the release binary ignores
/// PVE2NODE_PVE_DIR, PVE2NODE_COROSYNC_LOCAL and PVE2NODE_BACKUP_DIR. Safe on any host: the
/// default target is only looked up in check mode (nothing is written, and the reported path
/// must be the real /etc/pve one); the run that writes edits a file in the test's dir, with
/// stand-in tools on PATH. The debug binary, given the same, follows the hooks (so the test
/// can fail).
#[test]
fn release_binary_ignores_the_test_hooks() {
    let Some(release) = release_bin("cman_two_node") else {
        return;
    };
    let lab = Lab::new("c2n-release");
    std::fs::create_dir_all(lab.path("pve")).unwrap();
    lab.write("pve/corosync.conf", &fixture("pve8/corosync.conf"));
    let local = lab.write("local-corosync.conf", &fixture("pve8/corosync.conf"));
    lab.write("flag-follows", "on");
    let env = [
        ("PVE2NODE_PVE_DIR", p(&lab.path("pve"))),
        ("PVE2NODE_COROSYNC_LOCAL", p(&local)),
        ("PVE2NODE_BACKUP_DIR", p(&lab.path("backups"))),
    ];
    // 1. No path, check mode: the target comes from the real /etc/pve, not the hook's dir.
    let check = json!({"_ansible_check_mode": true});
    let r = lab.run_bin(&release, check.clone(), &env);
    let shown = r.json.to_string();
    assert!(shown.contains("/etc/pve/"), "{shown}");
    assert!(!shown.contains(&p(lab.dir.path())), "{shown}");
    let d = lab.run(check, &env);
    assert_eq!(
        d.json["path"],
        p(&lab.path("pve/corosync.conf")),
        "the debug build follows the hook: {}",
        d.json
    );
    assert_eq!(lab.read("pve/corosync.conf"), fixture("pve8/corosync.conf"));

    // 2. An explicit path in the hook's "pmxcfs dir": the release binary does not count it as
    //    /etc/pve (no wait for a pmxcfs copy, the backup beside the file, not in the hook's
    //    backup dir).
    let f = lab.path("pve/corosync.conf");
    let args = json!({"path": p(&f), "backup": true, "timeout": 2});
    let r = lab.run_bin(&release, args.clone(), &env);
    assert!(!r.failed() && r.changed(), "{}", r.json);
    assert_eq!(lab.calls(), vec!["corosync-cfgtool -R"]);
    let b = PathBuf::from(r.json["backup_file"].as_str().unwrap());
    assert_eq!(
        b.parent(),
        Some(lab.path("pve").as_path()),
        "{}",
        b.display()
    );
    assert!(!lab.path("backups").exists());
    // The debug binary, from the same start: waits for pmxcfs's copy, which never comes.
    std::fs::remove_file(&b).unwrap();
    lab.write("pve/corosync.conf", &fixture("pve8/corosync.conf"));
    let _ = std::fs::remove_file(lab.path("calls"));
    let d = lab.run(args, &env);
    assert!(d.failed() && d.changed(), "{}", d.json);
    assert!(d.msg().contains("pmxcfs did not copy it"), "{}", d.msg());
    assert!(lab.calls().is_empty());
    assert!(lab.path("backups").is_dir());
}

#[test]
fn empty_path_is_named_not_a_missing_file() {
    let lab = Lab::new("c2n-empty");
    let r = lab.run(json!({"path": "", "_ansible_check_mode": true}), &[]);
    assert!(r.failed() && !r.changed(), "{}", r.json);
    assert!(r.msg().starts_with("path is empty;"), "{}", r.msg());
}

/// Inside /etc/pve a write refused for want of quorum (here: a read-only tmpfs, EROFS, in a
/// private mount namespace) is retried until `timeout`: it succeeds once the filesystem is
/// writable again, and fails with the no-quorum hint when it never is (the file untouched,
/// `changed: false`).
#[test]
fn write_refused_without_quorum_is_retried_until_timeout() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let unshare = root
        && Command::new("unshare")
            .args(["-m", "--propagation", "private", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if !unshare {
        if std::env::var("PVE2NODE_E2E").as_deref() == Ok("1") {
            panic!("cannot make a private mount namespace (root and unshare -m needed) and PVE2NODE_E2E=1");
        }
        eprintln!(
            "SKIP write_refused_without_quorum_is_retried_until_timeout: not root or no unshare -m"
        );
        return;
    }
    let lab = Lab::new("c2n-ro");
    std::fs::create_dir_all(lab.path("pve")).unwrap();
    let conf = fixture("pve8/corosync.conf");
    lab.write("conf", &conf);
    for (name, timeout) in [("late", 10), ("never", 1)] {
        lab.write(
            &format!("{name}.json"),
            &serde_json::to_string(&json!({
                "path": p(&lab.path("pve/corosync.conf")),
                "activate": false,
                "validate": false,
                "timeout": timeout,
            }))
            .unwrap(),
        );
    }
    let script = r#"set -u
T="$1"; B="$2"; P="$T/pve"
mount -t tmpfs lab-pve "$P" && cp "$T/conf" "$P/corosync.conf" && mount -o remount,ro "$P" || exit 9
# Writable again half a second after the module started.
( sleep 0.5; mount -o remount,rw "$P" ) & W=$!
echo "LATE $("$B" "$T/late.json")"; wait $W
echo "LATE_FILE $(grep -c 'two_node: 1' "$P/corosync.conf")"
cp "$T/conf" "$P/corosync.conf"; mount -o remount,ro "$P"
echo "NEVER $("$B" "$T/never.json")"
echo "NEVER_FILE $(grep -c 'two_node: 1' "$P/corosync.conf")"
"#;
    let out = Command::new("timeout")
        .args(["-k", "5", "60", "unshare", "-m", "--propagation", "private"])
        .args(["bash", "-c", script, "scenario"])
        .arg(lab.dir.path())
        .arg(BIN)
        .env("PVE2NODE_PVE_DIR", p(&lab.path("pve")))
        .env("TMPDIR", lab.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let raw = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |key: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{raw}"))
            .to_string()
    };
    let late: Value = serde_json::from_str(&line("LATE")).unwrap();
    assert_eq!(late["failed"], false, "{late}\n{raw}");
    assert_eq!(late["changed"], true);
    assert_eq!(line("LATE_FILE"), "1", "{raw}");
    let never: Value = serde_json::from_str(&line("NEVER")).unwrap();
    assert_eq!(never["failed"], true, "{never}");
    assert_eq!(never["changed"], false);
    let msg = never["msg"].as_str().unwrap();
    assert!(msg.contains("Read-only file system"), "{msg}");
    assert!(
        msg.contains("is read-only while this node has no quorum"),
        "{msg}"
    );
    assert_eq!(line("NEVER_FILE"), "0", "{raw}");
    // The pmxcfs dir (tmpfs) went with the namespace: the lab dir's own pve is empty.
    assert!(std::fs::read_dir(lab.path("pve")).unwrap().next().is_none());
}

/// PVE 9's corosync.conf (two links, token_coefficient): wait_for_all given is written
/// explicitly and answers the warning; once in the file, runs without it warn no more.
#[test]
fn pve9_wait_for_all_written_explicitly_answers_the_warning() {
    let lab = Lab::new("c2n-pve9");
    let orig = fixture("pve9/corosync.conf");
    let f = lab.write("corosync.conf", &orig);
    let r = lab.run(
        json!({"path": p(&f), "wait_for_all": true, "activate": false}),
        &[],
    );
    assert!(r.changed() && !r.failed(), "{}", r.json);
    assert!(r.json.get("warnings").is_none(), "{}", r.json);
    assert_eq!(
        lab.read("corosync.conf"),
        orig.replace(
            "  provider: corosync_votequorum\n",
            "  provider: corosync_votequorum\n  two_node: 1\n  wait_for_all: 1\n"
        )
        .replace("config_version: 2", "config_version: 3")
    );
    // the same again: nothing to do; without the parameter the file's value stands, no warning
    for args in [
        json!({"path": p(&f), "wait_for_all": true, "activate": false}),
        json!({"path": p(&f), "activate": false}),
    ] {
        let r = lab.run(args, &[]);
        assert!(!r.changed() && !r.failed(), "{}", r.json);
        assert!(r.json.get("warnings").is_none(), "{}", r.json);
    }
    // answered the other way: one value flipped, version + 1, links and token_coefficient kept
    let r = lab.run(
        json!({"path": p(&f), "wait_for_all": false, "activate": false}),
        &[],
    );
    assert!(r.changed(), "{}", r.json);
    let text = lab.read("corosync.conf");
    assert!(
        text.contains("  two_node: 1\n  wait_for_all: 0\n}"),
        "{text}"
    );
    assert!(text.contains("config_version: 4") && text.contains("token_coefficient: 125"));
    assert!(text.contains("ring1_addr: 10.98.0.2") && text.contains("linknumber: 1"));
}
