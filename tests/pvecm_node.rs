//! pvecm_node through the built (debug) binary, against stand-in commands: the refusals of
//! state lone and state absent change nothing and run nothing, the mechanism chosen, check
//! mode, the verification, pvecm delnode checked by state, the cleanup of what Proxmox leaves,
//! the one-node corosync.conf (byte-exact), idempotence, and the facts of state info.
//!
//! Stand-ins: `corosync-quorumtool`, `corosync-cmapctl`, `corosync-cfgtool`, `pvecm`,
//! `cman_tool` and a probe (`probe ADDR`: answers when ADDR is in the `up` file) in a temp
//! bin dir first on PATH; the runtime view they print follows the `view` file (real outputs of
//! corosync 3.1.7 from tests/fixtures). Every changing call is logged to `calls`. /etc/pve is a
//! temp dir (pve_dir), /etc/corosync a test hook; a thread plays pmxcfs where it must copy.
mod common;

use common::TempDir;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_pvecm_node");

fn fixture(rel: &str) -> String {
    std::fs::read_to_string(common::repo_root().join("tests/fixtures").join(rel)).unwrap()
}

/// A real quorumtool output with the lab's names (alpha = node 1, beta = node 2).
fn real(rel: &str) -> String {
    fixture(&format!("corosync-3.1.7-real/{rel}"))
        .replace("pve1", "alpha")
        .replace("pve2", "beta")
}

fn two_node_conf() -> String {
    // beta has two links
    fixture("pve8/corosync.conf.two-node").replace(
        "    ring0_addr: 10.99.0.2\n",
        "    ring0_addr: 10.99.0.2\n    ring1_addr: 10.98.0.2\n",
    )
}

struct Lab {
    dir: TempDir,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let dir = TempDir::new(tag);
        for d in [
            "bin",
            "pve/nodes/alpha",
            "pve/nodes/beta/qemu-server",
            "pve/priv",
            "corosync",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let lab = Lab { dir };
        let d = lab.dir.path().display().to_string();
        lab.set("pve/corosync.conf", &two_node_conf());
        lab.set("corosync/corosync.conf", &two_node_conf());
        lab.set(
            "q-blocked",
            &real("quorumtool-s-two-node-cold-start-alone.txt"),
        );
        lab.set("q-alone", &real("quorumtool-s-two-node-peer-lost.txt"));
        lab.set("q-both", &real("quorumtool-s-two-node.txt"));
        // blocked, but the peer listed as a member (a stale or partial view)
        lab.set(
            "q-blocked-member",
            &format!(
                "{}         2          1 beta\n",
                real("quorumtool-s-two-node-cold-start-alone.txt")
            ),
        );
        lab.set("view", "blocked");
        lab.script(
            "corosync-quorumtool",
            &format!(
                "v=$(cat {d}/view)\n\
                 if [ \"$1\" = -e ]; then echo \"corosync-quorumtool $*\" >> {d}/calls\n\
                   if [ -e {d}/e-refuses ]; then echo 'Unable to set expected votes: CS_ERR_INVALID_PARAM' >&2; exit 1; fi\n\
                   [ -e {d}/stay-blocked ] || echo alone > {d}/view; exit 0; fi\n\
                 cat {d}/q-$v\n\
                 case $v in blocked*) exit 2 ;; esac\n"
            ),
        );
        // corosync 3.1.7 acts on the key at once (measured); `cmap-ignored` plays one that
        // does not know it (the value just stays in cmap)
        lab.script(
            "corosync-cmapctl",
            &format!(
                "echo \"corosync-cmapctl $*\" >> {d}/calls\n\
                 [ \"$1\" = -s ] && [ ! -e {d}/cmap-ignored ] && [ ! -e {d}/stay-blocked ] && echo alone > {d}/view\n\
                 exit 0\n"
            ),
        );
        lab.script(
            "corosync-cfgtool",
            &format!("echo \"corosync-cfgtool $*\" >> {d}/calls\n"),
        );
        // the default probe_command is `ping -c 1 -W 1 ADDR`: a stand-in, never the real one
        lab.script(
            "ping",
            &format!("for a; do :; done\necho \"ping $*\" >> {d}/probes\ngrep -qx \"$a\" {d}/up 2>/dev/null\n"),
        );
        lab.script(
            "probe",
            &format!("echo \"probe $*\" >> {d}/probes\ngrep -qx \"$1\" {d}/up 2>/dev/null\n"),
        );
        // pvecm delnode as the real one: the nodelist entry out, config_version + 1
        // (a prepared result; `delnode-fails` plays a PVE 5+ task failing with exit 0).
        lab.script(
            "pvecm",
            &format!(
                "echo \"pvecm $*\" >> {d}/calls\n\
                 if [ -e {d}/delnode-fails ]; then echo 'cluster not ready - no quorum?'; exit 0; fi\n\
                 cp {d}/after-delnode {d}/pve/corosync.conf\n\
                 echo 'Killing node 2'\n"
            ),
        );
        let after = two_node_conf()
            .replace(
                "  node {\n    name: beta\n    nodeid: 2\n    quorum_votes: 1\n    ring0_addr: 10.99.0.2\n    ring1_addr: 10.98.0.2\n  }\n",
                "",
            )
            .replace("config_version: 3", "config_version: 4");
        assert!(!after.contains("beta"));
        lab.set("after-delnode", &after);
        lab.set(
            "pve/priv/authorized_keys",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCalpha root@alpha\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCbeta root@beta\n",
        );
        lab.set(
            "pve/priv/known_hosts",
            "alpha ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIalpha\nbeta ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIbeta\n10.99.0.2 ssh-rsa AAAAB3NzaC1yc2EAAAbeta\n",
        );
        lab
    }

    fn script(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.join("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn set(&self, rel: &str, content: &str) {
        std::fs::write(self.dir.join(rel), content).unwrap();
    }

    fn get(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.join(rel)).unwrap_or_default()
    }

    fn calls(&self) -> Vec<String> {
        self.get("calls").lines().map(str::to_string).collect()
    }

    fn probes(&self) -> Vec<String> {
        self.get("probes").lines().map(str::to_string).collect()
    }

    fn snapshot(&self) -> Vec<(PathBuf, String)> {
        [
            "pve/corosync.conf",
            "pve/priv/authorized_keys",
            "pve/priv/known_hosts",
        ]
        .iter()
        .map(|r| (self.dir.join(r), self.get(r)))
        .collect()
    }

    fn run(&self, mut args: Value) -> common::Run {
        let m = args.as_object_mut().unwrap();
        m.entry("pve_dir").or_insert(json!(self.dir.join("pve")));
        m.entry("probe_command")
            .or_insert(json!([self.dir.join("bin/probe")]));
        m.entry("timeout").or_insert(json!(3));
        let argsf = self
            .dir
            .write("args.json", serde_json::to_vec(&args).unwrap());
        let out = assert_cmd::Command::new(BIN)
            .arg(&argsf)
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.join("bin").display()),
            )
            .env("PVE2NODE_COROSYNC_DIR", self.dir.join("corosync"))
            .env("PVE2NODE_CLUSTER_DIR", self.dir.join("cluster"))
            .env("PVE2NODE_HOSTNAME", "alpha")
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

    /// Plays pmxcfs while `f` runs: copies pve/corosync.conf to corosync/ when it is newer.
    fn with_pmxcfs<T>(&self, f: impl FnOnce() -> T) -> T {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, src, dst) = (
            stop.clone(),
            self.dir.join("pve/corosync.conf"),
            self.dir.join("corosync/corosync.conf"),
        );
        let t = std::thread::spawn(move || {
            let v = |p: &PathBuf| {
                std::fs::read_to_string(p).ok().and_then(|t| {
                    t.lines()
                        .find_map(|l| l.trim().strip_prefix("config_version:"))
                        .and_then(|x| x.trim().parse::<u64>().ok())
                })
            };
            while !s.load(Ordering::SeqCst) {
                if v(&src) > v(&dst) {
                    let _ = std::fs::copy(&src, &dst);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let r = f();
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
        r
    }
}

fn ok(r: &common::Run) {
    assert!(!r.failed(), "module failed: {}", r.stdout);
    assert_eq!(r.code, 0);
}

fn refused(r: &common::Run, part: &str) {
    assert!(r.failed(), "should fail: {}", r.stdout);
    assert_eq!(r.code, 1);
    assert!(r.msg().contains(part), "want {part:?} in: {}", r.msg());
}

fn lone_args() -> Value {
    json!({"state": "lone", "peer": "beta", "confirm_peer_powered_off": "beta"})
}

// ---------------------------------------------------------------- state lone

#[test]
fn lone_needs_the_peer_and_its_confirmation() {
    let lab = Lab::new("l7-lone-args");
    let r = lab.run(json!({"state": "lone"}));
    refused(&r, "needs peer");
    let r = lab.run(json!({"state": "lone", "peer": "beta"}));
    refused(&r, "confirm_peer_powered_off: beta");
    let r = lab.run(json!({"state": "lone", "peer": "beta", "confirm_peer_powered_off": "alpha"}));
    refused(&r, "got `alpha`");
    let r = lab.run(json!({"state": "lone", "peer": "gamma", "confirm_peer_powered_off": "gamma"}));
    refused(&r, "gamma is not in the cluster's nodelist (alpha, beta)");
    let r = lab.run(json!({"state": "lone", "peer": "alpha", "confirm_peer_powered_off": "alpha"}));
    refused(&r, "is this node");
    // three nodes: not a lone-node situation
    let three = two_node_conf().replace(
        "nodelist {\n",
        "nodelist {\n  node {\n    name: gamma\n    nodeid: 3\n    quorum_votes: 1\n    ring0_addr: 10.99.0.3\n  }\n",
    );
    lab.set("pve/corosync.conf", &three);
    refused(
        &lab.run(lone_args()),
        "is for a two-node cluster and the nodelist has 3 nodes",
    );
    assert!(lab.calls().is_empty() && lab.probes().is_empty());
}

#[test]
fn lone_refuses_a_peer_that_answers_on_any_link_and_changes_nothing() {
    let lab = Lab::new("l7-lone-up");
    lab.set("up", "10.98.0.2\n");
    let r = lab.run(lone_args());
    refused(
        &r,
        "peer beta answers on 10.98.0.2, so it is not powered off",
    );
    assert_eq!(lab.probes(), vec!["probe 10.99.0.2", "probe 10.98.0.2"]);
    assert_eq!(r.json["probes"][1]["answered"], json!(true));
    assert!(lab.calls().is_empty(), "{:?}", lab.calls());
    assert_eq!(lab.get("view"), "blocked");
    // also in check mode
    let mut a = lone_args();
    a["_ansible_check_mode"] = json!(true);
    refused(&lab.run(a), "answers on 10.98.0.2");
    assert!(lab.calls().is_empty());
}

#[test]
fn lone_refuses_a_peer_that_is_a_member() {
    let lab = Lab::new("l7-lone-member");
    lab.set("view", "blocked-member");
    let r = lab.run(lone_args());
    refused(&r, "peer beta is a member of the running cluster");
    assert!(lab.calls().is_empty());
}

#[test]
fn lone_check_mode_says_what_it_would_run() {
    let lab = Lab::new("l7-lone-check");
    let mut a = lone_args();
    a["_ansible_check_mode"] = json!(true);
    let r = lab.run(a);
    ok(&r);
    assert!(r.changed());
    assert!(
        r.msg()
            .contains("would run `corosync-cmapctl -s quorum.cancel_wait_for_all u8 1`"),
        "{}",
        r.msg()
    );
    assert!(
        r.msg()
            .contains("or `corosync-quorumtool -e 1` if corosync does not act on it"),
        "{}",
        r.msg()
    );
    assert_eq!(
        r.json["commands"],
        json!([
            [
                "corosync-cmapctl",
                "-s",
                "quorum.cancel_wait_for_all",
                "u8",
                "1"
            ],
            ["corosync-quorumtool", "-e", "1"]
        ])
    );
    assert!(lab.calls().is_empty());
    assert_eq!(lab.get("view"), "blocked");
}

#[test]
fn lone_cancels_wait_for_all_then_verifies_then_is_idempotent() {
    let lab = Lab::new("l7-lone-cancel");
    let r = lab.run(lone_args());
    ok(&r);
    assert!(r.changed());
    assert_eq!(r.json["mechanism"], json!("cancel_wait_for_all"));
    assert_eq!(
        lab.calls(),
        vec!["corosync-cmapctl -s quorum.cancel_wait_for_all u8 1"]
    );
    assert_eq!(r.json["before"]["activity_blocked"], json!(true));
    assert_eq!(r.json["after"]["quorate"], json!(true));
    assert_eq!(r.json["pve_writable"], json!(true));
    assert!(r.msg().contains("runtime only"), "{}", r.msg());
    // second run: quorate already, nothing probed or run
    std::fs::remove_file(lab.dir.join("probes")).unwrap();
    let r = lab.run(lone_args());
    ok(&r);
    assert!(!r.changed());
    assert_eq!(lab.calls().len(), 1);
    assert!(lab.probes().is_empty());
}

#[test]
fn lone_falls_back_to_expected_votes_when_corosync_ignores_the_key() {
    let lab = Lab::new("l7-lone-expected");
    lab.set("cmap-ignored", "");
    let r = lab.run(lone_args());
    ok(&r);
    assert_eq!(r.json["mechanism"], json!("expected_votes"));
    assert_eq!(
        lab.calls(),
        vec![
            "corosync-cmapctl -s quorum.cancel_wait_for_all u8 1",
            "corosync-cmapctl -d quorum.cancel_wait_for_all",
            "corosync-quorumtool -e 1"
        ]
    );
    assert_eq!(r.json["commands"].as_array().unwrap().len(), 2);
}

#[test]
fn lone_without_two_node_sets_expected_votes_directly() {
    let lab = Lab::new("l7-lone-no2");
    // cold start without two_node: the own vote is below the quorum
    let q = lab
        .get("q-blocked")
        .replace(
            "Quorum:           1 Activity blocked",
            "Quorum:           2 Activity blocked",
        )
        .replace("2Node WaitForAll", "WaitForAll");
    lab.set("q-blocked", &q);
    let r = lab.run(lone_args());
    ok(&r);
    assert_eq!(lab.calls(), vec!["corosync-quorumtool -e 1"]);
}

#[test]
fn lone_treats_invalid_param_as_a_refusal() {
    let lab = Lab::new("l7-lone-invalid");
    lab.set("cmap-ignored", "");
    lab.set("e-refuses", "");
    let r = lab.run(lone_args());
    refused(&r, "was refused by the cluster stack");
    assert!(r.msg().contains("CS_ERR_INVALID_PARAM"), "{}", r.msg());
    assert!(r.msg().contains("nothing was changed"), "{}", r.msg());
}

#[test]
fn lone_fails_when_pve_stays_read_only() {
    let lab = Lab::new("l7-lone-ro");
    lab.set(
        "pve/.members",
        r#"{"nodename": "alpha", "version": 4, "cluster": {"name": "lab", "version": 3, "nodes": 2, "quorate": 0}}"#,
    );
    let mut a = lone_args();
    a["timeout"] = json!(1);
    let r = lab.run(a);
    refused(&r, "was not quorate with a writable");
    assert!(r.msg().contains("read-only (.members)"), "{}", r.msg());
    assert_eq!(r.json["changed"], json!(true));
}

// ---------------------------------------------------------------- state absent

#[test]
fn absent_refusals_change_nothing() {
    let lab = Lab::new("l7-abs-refuse");
    let before = lab.snapshot();
    let r = lab.run(json!({"state": "absent"}));
    refused(&r, "needs node");
    let r = lab.run(json!({"state": "absent", "node": "beta", "node_public_key": "nope"}));
    refused(&r, "node_public_key is not an ssh public key line");
    // this node
    lab.set("view", "alone");
    refused(
        &lab.run(json!({"state": "absent", "node": "alpha"})),
        "the node this runs on",
    );
    // a member
    lab.set("view", "both");
    refused(
        &lab.run(json!({"state": "absent", "node": "beta"})),
        "node beta is still a member of the running cluster; power it off first",
    );
    // reachable
    lab.set("view", "alone");
    lab.set("up", "10.99.0.2\n");
    refused(
        &lab.run(json!({"state": "absent", "node": "beta"})),
        "node beta still answers on 10.99.0.2",
    );
    std::fs::remove_file(lab.dir.join("up")).unwrap();
    // no quorum
    lab.set("view", "blocked");
    refused(
        &lab.run(json!({"state": "absent", "node": "beta"})),
        "run state=lone (peer=beta, confirm_peer_powered_off=beta) first",
    );
    // a QDevice configured
    lab.set("view", "alone");
    let dev = two_node_conf().replace(
        "quorum {\n",
        "quorum {\n  device {\n    model: net\n    votes: 1\n  }\n",
    );
    lab.set("pve/corosync.conf", &dev);
    refused(
        &lab.run(json!({"state": "absent", "node": "beta"})),
        "qdevice module with state=absent",
    );
    let r = lab.run(json!({"state": "info"}));
    ok(&r);
    assert_eq!(r.json["qdevice"]["configured"], json!(true));
    assert_eq!(r.json["qdevice"]["model"], json!("net"));
    lab.set("pve/corosync.conf", &two_node_conf());
    assert!(lab.calls().is_empty(), "{:?}", lab.calls());
    assert_eq!(lab.snapshot(), before);
    assert!(lab.dir.join("pve/nodes/beta").is_dir());
}

#[test]
fn absent_removes_cleans_and_leaves_one_node_without_two_node() {
    let lab = Lab::new("l7-abs-ok");
    lab.set("view", "alone");
    // check mode first: the plan, nothing done
    let r = lab.run(json!({"state": "absent", "node": "beta", "_ansible_check_mode": true}));
    ok(&r);
    assert!(r.changed());
    assert!(
        r.msg().contains("would run `pvecm delnode beta`"),
        "{}",
        r.msg()
    );
    assert!(r.msg().contains("remove two_node"), "{}", r.msg());
    assert!(lab.calls().is_empty());
    assert!(lab.dir.join("pve/nodes/beta").is_dir());

    let r = lab
        .with_pmxcfs(|| lab.run(json!({"state": "absent", "node": "beta", "_ansible_diff": true})));
    ok(&r);
    assert!(r.changed());
    assert_eq!(
        lab.calls(),
        vec!["pvecm delnode beta", "corosync-cfgtool -R"]
    );
    // byte-exact: delnode's result minus two_node, config_version 4 -> 5
    let want = lab
        .get("after-delnode")
        .replace("  two_node: 1\n", "")
        .replace("config_version: 4", "config_version: 5");
    assert_eq!(lab.get("pve/corosync.conf"), want);
    assert_eq!(lab.get("corosync/corosync.conf"), want);
    assert_eq!(r.json["corosync_conf"]["config_version_after"], json!(5));
    assert!(r.json["diff"]["before"]
        .as_str()
        .unwrap()
        .contains("two_node: 1"));
    assert!(!lab.dir.join("pve/nodes/beta").exists());
    assert!(lab.dir.join("pve/nodes/alpha").is_dir());
    assert_eq!(
        lab.get("pve/priv/authorized_keys"),
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCalpha root@alpha\n"
    );
    assert_eq!(
        lab.get("pve/priv/known_hosts"),
        "alpha ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIalpha\n"
    );
    assert_eq!(r.json["nodelist"].as_array().unwrap().len(), 1);
    // again: nothing to do
    let r = lab.run(json!({"state": "absent", "node": "beta"}));
    ok(&r);
    assert!(!r.changed(), "{}", r.stdout);
    assert_eq!(lab.calls().len(), 2);
}

#[test]
fn absent_keeps_guest_configs_unless_asked() {
    let lab = Lab::new("l7-abs-guests");
    lab.set("view", "alone");
    lab.set("pve/nodes/beta/qemu-server/100.conf", "memory: 512\n");
    let before = lab.snapshot();
    let r = lab.run(json!({"state": "absent", "node": "beta"}));
    refused(
        &r,
        "still holds guest configurations (qemu-server/100.conf); move them",
    );
    assert!(lab.calls().is_empty());
    assert_eq!(lab.snapshot(), before);
    assert!(lab.dir.join("pve/nodes/beta/qemu-server/100.conf").exists());
    let r = lab.with_pmxcfs(|| {
        lab.run(json!({"state": "absent", "node": "beta", "remove_guest_configs": true}))
    });
    ok(&r);
    assert!(!lab.dir.join("pve/nodes/beta").exists());
}

#[test]
fn absent_checks_the_nodelist_not_only_the_exit_status() {
    let lab = Lab::new("l7-abs-task");
    lab.set("view", "alone");
    lab.set("delnode-fails", "");
    let before = lab.get("pve/corosync.conf");
    let r = lab.run(json!({"state": "absent", "node": "beta"}));
    refused(
        &r,
        "exited with rc 0 but node beta is still in the nodelist",
    );
    assert!(
        r.msg().contains("cluster not ready - no quorum?"),
        "{}",
        r.msg()
    );
    assert_eq!(lab.get("pve/corosync.conf"), before);
    assert!(
        lab.dir.join("pve/nodes/beta").is_dir(),
        "nothing cleaned after a failed delnode"
    );
}

#[test]
fn absent_finishes_an_interrupted_removal_two_node_left_on_one_node() {
    let lab = Lab::new("l7-abs-two-left");
    lab.set("view", "alone");
    lab.set("pve/corosync.conf", &lab.get("after-delnode"));
    std::fs::remove_dir_all(lab.dir.join("pve/nodes/beta")).unwrap();
    lab.set(
        "pve/priv/authorized_keys",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCalpha root@alpha\n",
    );
    lab.set("pve/priv/known_hosts", "");
    let r = lab.with_pmxcfs(|| lab.run(json!({"state": "absent", "node": "beta"})));
    ok(&r);
    assert!(r.changed(), "{}", r.stdout);
    assert!(
        r.msg().contains("two_node from corosync.conf"),
        "{}",
        r.msg()
    );
    let want = lab
        .get("after-delnode")
        .replace("  two_node: 1\n", "")
        .replace("config_version: 4", "config_version: 5");
    assert_eq!(lab.get("pve/corosync.conf"), want);
    assert!(lab.calls().iter().all(|c| !c.starts_with("pvecm")));
    let r = lab.run(json!({"state": "absent", "node": "beta"}));
    assert!(!r.changed(), "{}", r.stdout);
}

#[test]
fn absent_cleans_leftovers_of_an_already_removed_node() {
    let lab = Lab::new("l7-abs-left");
    lab.set("view", "alone");
    lab.set(
        "pve/corosync.conf",
        &lab.get("after-delnode").replace("  two_node: 1\n", ""),
    );
    let r = lab.run(json!({"state": "absent", "node": "beta", "node_public_key": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCbeta"}));
    ok(&r);
    assert!(r.changed());
    assert!(
        lab.calls().is_empty(),
        "no delnode for a node not in the nodelist"
    );
    assert!(!lab.dir.join("pve/nodes/beta").exists());
    assert!(!lab.get("pve/priv/authorized_keys").contains("beta"));
    let r = lab.run(json!({"state": "absent", "node": "beta"}));
    assert!(!r.changed(), "{}", r.stdout);
}

// ---------------------------------------------------------------- state info

#[test]
fn info_reports_quorum_writability_and_drift() {
    let lab = Lab::new("l7-info");
    lab.set("view", "blocked");
    lab.set(
        "corosync/corosync.conf",
        &two_node_conf().replace("config_version: 3", "config_version: 2"),
    );
    lab.set(
        "pve/.members",
        r#"{"nodename": "alpha", "cluster": {"quorate": 0}}"#,
    );
    let r = lab.run(json!({"state": "info"}));
    ok(&r);
    assert!(!r.changed());
    assert_eq!(r.json["quorate"], json!(false));
    assert_eq!(r.json["pve_writable"], json!(false));
    assert_eq!(r.json["pve_writable_from"], json!(".members"));
    assert_eq!(r.json["config_version"]["drift"], json!(true));
    assert_eq!(r.json["config_version"]["shared"]["version"], json!(3));
    assert_eq!(r.json["config_version"]["local"]["version"], json!(2));
    assert_eq!(r.json["runtime"]["flags"], json!(["2Node", "WaitForAll"]));
    assert_eq!(r.json["runtime"]["expected_votes"], json!(2));
    assert_eq!(r.json["qdevice"]["configured"], json!(false));
    assert_eq!(r.json["local_node"], json!("alpha"));
    assert!(r.msg().contains("NOT quorate"), "{}", r.msg());
    assert!(lab.calls().is_empty());
    // corosync down: still facts
    lab.script(
        "corosync-quorumtool",
        "echo 'Cannot initialize CMAP service' >&2; exit 1\n",
    );
    let r = lab.run(json!({}));
    ok(&r);
    assert_eq!(r.json["running"], json!(false));
    assert_eq!(r.json["quorate"], Value::Null);
}

#[test]
fn info_and_lone_on_pve3_cman() {
    let lab = Lab::new("l7-pve3");
    std::fs::remove_file(lab.dir.join("pve/corosync.conf")).unwrap();
    lab.set("pve/cluster.conf", &fixture("pve3/cluster.conf.two-node"));
    std::fs::create_dir_all(lab.dir.join("cluster")).unwrap();
    lab.set(
        "cluster/cluster.conf",
        &fixture("pve3/cluster.conf.two-node"),
    );
    let d = lab.dir.path().display().to_string();
    lab.set("cman-status", &fixture("pve3/pvecm-status-not-quorate.txt"));
    lab.set("cman-nodes", &fixture("pve3/pvecm-nodes-peer-down.txt"));
    lab.script(
        "cman_tool",
        &format!(
            "case $1 in status) cat {d}/cman-status ;; nodes) cat {d}/cman-nodes ;; expected) echo \"cman_tool $*\" >> {d}/calls; cp {d}/cman-status-ok {d}/cman-status ;; esac\n"
        ),
    );
    lab.set("cman-status-ok", &fixture("pve3/pvecm-status.txt"));
    let r = lab.run(json!({"state": "info"}));
    ok(&r);
    assert_eq!(r.json["stack"], json!("cman"));
    assert_eq!(r.json["config_version"]["drift"], json!(false));
    assert_eq!(r.json["quorate"], json!(false), "{}", r.stdout);
    assert_eq!(r.json["runtime"]["members"].as_array().unwrap().len(), 1);
    let r = lab.run(lone_args());
    ok(&r);
    assert_eq!(lab.calls(), vec!["cman_tool expected -e 1"]);
    assert_eq!(lab.probes(), vec!["probe beta"]);
    assert_eq!(r.json["after"]["quorate"], json!(true));
}

#[test]
fn ansible_doc_shows_the_module() {
    let Some(text) = common::ansible_doc("pvecm_node", BIN) else {
        return;
    };
    assert!(text.contains("confirm_peer_powered_off"), "{text}");
    assert!(text.contains("quorum.cancel_wait_for_all"), "{text}");
}

// ---------------------------------------------------------------- the playbooks

/// Runs playbooks/NAME with the real ansible-playbook (connection local, two inventory hosts
/// alpha and beta on this machine), the stand-ins first on PATH and the test hooks set.
fn playbook(lab: &Lab, name: &str, extra: &[&str]) -> Option<(bool, String)> {
    let bin = common::ansible_bin()?;
    let lib = common::ansible_library(&lab.dir, &[("pvecm_node", BIN)]);
    // The playbooks name the module by FQCN: a collections tree holding the debug binary.
    let coll = lab.dir.join("collections");
    let mods = coll.join("ansible_collections/pve2node/cluster/plugins/modules");
    std::fs::create_dir_all(&mods).unwrap();
    std::fs::copy(BIN, mods.join("pvecm_node")).unwrap();
    lab.set(
        "inventory.ini",
        "[pve]\nalpha ansible_connection=local\nbeta ansible_connection=local\n",
    );
    let out = common::ansible_cmd(&bin, "ansible-playbook", &lab.dir, &lib)
        .env(
            "PATH",
            format!(
                "{}:{}:/usr/bin:/bin",
                lab.dir.join("bin").display(),
                bin.display()
            ),
        )
        .env("PVE2NODE_PVE_DIR", lab.dir.join("pve"))
        .env("PVE2NODE_COROSYNC_DIR", lab.dir.join("corosync"))
        .env("PVE2NODE_HOSTNAME", "alpha")
        .env("ANSIBLE_COLLECTIONS_PATH", &coll)
        .arg("-i")
        .arg(lab.dir.join("inventory.ini"))
        .args(extra)
        .arg(common::repo_root().join("playbooks").join(name))
        .output()
        .expect("run ansible-playbook");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

fn recap<'a>(text: &'a str, host: &str) -> &'a str {
    text.lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .find(|l| l.starts_with(host))
        .unwrap_or("")
}

#[test]
fn playbooks_lone_node_then_remove_node() {
    let lab = Lab::new("l7-playbooks");
    // lone_node.yml without the confirmation: the assert stops it, nothing runs
    let Some((ok_, text)) = playbook(&lab, "lone_node.yml", &[]) else {
        return;
    };
    assert!(!ok_, "{text}");
    assert!(text.contains("-e peer_powered_off=NAME"), "{text}");
    assert!(lab.calls().is_empty());
    // bismuth... beta answers: refused, the task fails with the module's sentence
    lab.set("up", "10.99.0.2\n");
    let (ok_, text) = playbook(&lab, "lone_node.yml", &["-e", "peer_powered_off=beta"]).unwrap();
    assert!(!ok_, "{text}");
    assert!(text.contains("peer beta answers on 10.99.0.2"), "{text}");
    assert!(
        recap(&text, "beta").is_empty(),
        "the peer is no target: {text}"
    );
    assert!(lab.calls().is_empty());
    assert_eq!(
        lab.probes(),
        vec!["ping -c 1 -W 1 10.99.0.2", "ping -c 1 -W 1 10.98.0.2"]
    );
    // powered off: accepted, on alpha only
    std::fs::remove_file(lab.dir.join("up")).unwrap();
    let (ok_, text) = playbook(&lab, "lone_node.yml", &["-e", "peer_powered_off=beta"]).unwrap();
    assert!(ok_, "{text}");
    assert!(recap(&text, "alpha").contains("changed=1"), "{text}");
    assert_eq!(
        lab.calls(),
        vec!["corosync-cmapctl -s quorum.cancel_wait_for_all u8 1"]
    );
    // remove_node.yml: once, on alpha
    let (ok_, text) =
        lab.with_pmxcfs(|| playbook(&lab, "remove_node.yml", &["-e", "node=beta"]).unwrap());
    assert!(ok_, "{text}");
    assert!(recap(&text, "alpha").contains("changed=1"), "{text}");
    assert!(
        text.contains("node beta removed from the cluster (1 node(s) left)"),
        "{text}"
    );
    assert!(
        text.contains("1 node(s) in the nodelist, quorate with 1 member(s)"),
        "{text}"
    );
    assert!(!lab.get("pve/corosync.conf").contains("two_node"));
    assert!(!lab.dir.join("pve/nodes/beta").exists());
    let (ok_, text) = playbook(&lab, "remove_node.yml", &["-e", "node=beta"]).unwrap();
    assert!(ok_, "{text}");
    assert!(recap(&text, "alpha").contains("changed=0"), "{text}");
    let (ok_, text) = playbook(&lab, "remove_node.yml", &[]).unwrap();
    assert!(!ok_ && text.contains("-e node=NAME"), "{text}");
}

/// RETURN of pvecm_node.yml (through ansible-doc --json) documents every key a run returns and
/// every key main.rs can set (as tests/collection_docs.rs does for the other modules).
#[test]
fn return_doc_covers_every_key() {
    let Some(bin) = common::ansible_bin() else {
        return;
    };
    let dir = TempDir::new("l7-docjson");
    let lib = common::ansible_library(&dir, &[("pvecm_node", BIN)]);
    let out = common::ansible_cmd(&bin, "ansible-doc", &dir, &lib)
        .args(["--json", "-M"])
        .arg(&lib)
        .arg("pvecm_node")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let documented: std::collections::BTreeSet<String> = v["pvecm_node"]["return"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let src =
        std::fs::read_to_string(common::repo_root().join("modules/pvecm_node/main.rs")).unwrap();
    let mut keys = std::collections::BTreeSet::new();
    for pat in [".with(", ".set("] {
        for (i, _) in src.match_indices(pat) {
            let rest = src[i + pat.len()..].trim_start();
            if let Some(k) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    keys.insert(k.to_string());
                }
            }
        }
    }
    let lab = Lab::new("l7-doc-runs");
    lab.set("view", "alone");
    for args in [
        json!({"state": "info"}),
        json!({"state": "lone", "peer": "beta", "confirm_peer_powered_off": "beta"}),
        json!({"state": "absent", "node": "beta", "_ansible_diff": true}),
    ] {
        let r = lab.with_pmxcfs(|| lab.run(args));
        for k in r.json.as_object().unwrap().keys() {
            keys.insert(k.clone());
        }
    }
    for k in ["failed", "invocation", "warnings"] {
        keys.remove(k);
    }
    let missing: Vec<&String> = keys.difference(&documented).collect();
    assert!(missing.is_empty(), "RETURN lacks {missing:?}");
}
