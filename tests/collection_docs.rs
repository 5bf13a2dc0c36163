//! The documented RETURN keys of each module (its <name>.yml, read through the real ansible-doc)
//! match what the binary returns, so the docs cannot drift from the code:
//! - every key a run returns (success, check mode, diff mode, failure) is documented;
//! - every key the module's code can set (`.with("key", …)` / `.set("key", …)` in main.rs) is
//!   documented, so rare paths (a busy mount, a failed command) count too;
//! - every documented key is returned by a run or set somewhere in the code.
//!
//! Every run is on temp files; cman_two_node runs with activation off and pvecm_cluster with a
//! stand-in pvecm, so nothing on this machine is touched.

mod common;

use common::{ansible_bin, ansible_cmd, ansible_library, repo_root, TempDir};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Keys every module may return that the protocol adds (not module-specific).
const PROTOCOL_KEYS: &[&str] = &["failed", "invocation", "warnings"];

fn documented(name: &str, exe: &str) -> Option<BTreeSet<String>> {
    let bin = ansible_bin()?;
    let dir = TempDir::new("docjson");
    let lib = ansible_library(&dir, &[(name, exe)]);
    let out = ansible_cmd(&bin, "ansible-doc", &dir, &lib)
        .args(["--json", "-M"])
        .arg(&lib)
        .arg(name)
        .output()
        .expect("run ansible-doc");
    assert!(
        out.status.success(),
        "ansible-doc --json {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ansible-doc JSON");
    let ret = v[name]["return"]
        .as_object()
        .unwrap_or_else(|| panic!("{name}: no RETURN in {v}"));
    Some(ret.keys().cloned().collect())
}

/// The keys main.rs can put in a result: `.with("key"` and `.set("key"` (also split over lines).
fn set_in_code(name: &str) -> BTreeSet<String> {
    let src = std::fs::read_to_string(repo_root().join(format!("modules/{name}/main.rs"))).unwrap();
    let mut keys = BTreeSet::new();
    for pat in [".with(", ".set("] {
        for (i, _) in src.match_indices(pat) {
            let rest = src[i + pat.len()..].trim_start();
            if let Some(r) = rest.strip_prefix('"') {
                if let Some(end) = r.find('"') {
                    let k = &r[..end];
                    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                        keys.insert(k.to_string());
                    }
                }
            }
        }
    }
    keys
}

fn run(exe: &str, args: Value, env: &[(&str, &Path)]) -> Value {
    let dir = TempDir::new("retargs");
    let f = dir.write("args", serde_json::to_vec(&args).unwrap());
    let mut c = Command::new(exe);
    c.arg(&f);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run module");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{exe}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn keys_of(results: &[Value]) -> BTreeSet<String> {
    results
        .iter()
        .flat_map(|r| r.as_object().unwrap().keys().cloned())
        .filter(|k| !PROTOCOL_KEYS.contains(&k.as_str()))
        .collect()
}

fn compare(name: &str, exe: &str, results: Vec<Value>) {
    let Some(doc) = documented(name, exe) else {
        return;
    };
    let returned = keys_of(&results);
    let code = set_in_code(name);
    let undocumented: Vec<_> = returned
        .union(&code)
        .filter(|k| !doc.contains(*k))
        .collect();
    assert!(
        undocumented.is_empty(),
        "{name}: returned or set in main.rs but not in RETURN of {name}.yml: {undocumented:?}"
    );
    let stale: Vec<_> = doc
        .iter()
        .filter(|k| !returned.contains(*k) && !code.contains(*k))
        .collect();
    assert!(
        stale.is_empty(),
        "{name}: documented in RETURN but neither returned by the runs nor set in main.rs: {stale:?}"
    );
    for k in ["changed", "msg"] {
        assert!(doc.contains(k), "{name}: RETURN lacks {k}");
    }
}

const HOSTS: &str = "127.0.0.1   localhost\n87.37.23.91 tartanpion.elao.local tartanpion\n";

#[test]
fn hosts_pin_return_is_documented() {
    let exe = env!("CARGO_BIN_EXE_hosts_pin");
    let d = TempDir::new("ret-hp");
    let hosts = d.write("hosts", HOSTS);
    let p = hosts.to_str().unwrap();
    let base = json!({"path": p, "hostname": "tartanpion", "ip": "172.16.0.1"});
    let with = |extra: Value| {
        let mut a = base.clone();
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        run(exe, a, &[])
    };
    let results = vec![
        with(json!({"_ansible_check_mode": true, "_ansible_diff": true})),
        with(json!({"backup": true, "_ansible_diff": true})),
        with(json!({})),
        with(json!({"state": "absent"})),
        with(json!({"ip": "172.16.0.300"})),
    ];
    assert!(results[1]["changed"].as_bool().unwrap() && results[1].get("backup_file").is_some());
    assert!(results[4]["failed"].as_bool().unwrap());
    compare("hosts_pin", exe, results);
}

#[test]
fn cman_two_node_return_is_documented() {
    let exe = env!("CARGO_BIN_EXE_cman_two_node");
    let d = TempDir::new("ret-c2n");
    let conf = d.write(
        "corosync.conf",
        std::fs::read(repo_root().join("tests/fixtures/pve8/corosync.conf")).unwrap(),
    );
    let p = conf.to_str().unwrap();
    // activation off: nothing runs corosync-cfgtool on this machine
    let base = json!({"path": p, "activate": false, "verify": false, "validate": false});
    let with = |extra: Value| {
        let mut a = base.clone();
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        run(exe, a, &[])
    };
    let results = vec![
        with(json!({"_ansible_check_mode": true, "_ansible_diff": true})),
        with(json!({"backup": true, "_ansible_diff": true})),
        with(json!({})),
        with(json!({"format": "cman"})),
    ];
    assert!(results[1]["changed"].as_bool().unwrap() && results[1].get("diff").is_some());
    assert!(results[3]["failed"].as_bool().unwrap());
    compare("cman_two_node", exe, results);
}

#[test]
fn fuse_recover_return_is_documented() {
    let exe = env!("CARGO_BIN_EXE_fuse_recover");
    let d = TempDir::new("ret-fr");
    std::fs::create_dir_all(d.join("mnt")).unwrap();
    let p = d.join("mnt");
    let results = vec![
        run(
            exe,
            json!({"path": p, "health_file": "", "_ansible_check_mode": true}),
            &[],
        ),
        run(
            exe,
            json!({"path": p, "start_command": ["/bin/false"], "timeout": 0}),
            &[],
        ),
        run(exe, json!({"path": "relative/path"}), &[]),
    ];
    assert!(results[0].get("actions").is_some(), "{}", results[0]);
    compare("fuse_recover", exe, results);
}

#[test]
fn pvecm_cluster_return_is_documented() {
    use std::os::unix::fs::PermissionsExt;
    let exe = env!("CARGO_BIN_EXE_pvecm_cluster");
    let fx = repo_root().join("tests/fixtures/pve8");
    let d = TempDir::new("ret-pvecm");
    let dir = d.path().to_str().unwrap().to_string();
    let standin = |status: &str, rc: i32| {
        std::fs::copy(fx.join(status), d.join("status.txt")).unwrap();
        std::fs::copy(fx.join("pvecm-nodes.txt"), d.join("nodes.txt")).unwrap();
        let script = format!(
            "#!/bin/sh\ncase \"$1\" in status) cat {dir}/status.txt; exit {rc} ;; nodes) cat {dir}/nodes.txt ;; *) echo \"stand-in: $*\" >&2; exit 2 ;; esac\n"
        );
        let p = d.write("pvecm", script);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let hosts = d.write("hosts", "127.0.0.1 localhost\n10.99.0.1 alpha\n");
    let corosync_dir = d.join("etc-corosync");
    std::fs::create_dir_all(&corosync_dir).unwrap();
    let no_conf = d.join("missing.conf");
    let env: Vec<(&str, &Path)> = vec![
        ("PVE2NODE_HOSTS_FILE", hosts.as_path()),
        ("PVE2NODE_COROSYNC_DIR", corosync_dir.as_path()),
        ("PVE2NODE_COROSYNC_CONF", no_conf.as_path()),
        ("PVE2NODE_CLUSTER_CONF", no_conf.as_path()),
    ];
    let mut env_h = env.clone();
    let host = Path::new("alpha");
    env_h.push(("PVE2NODE_HOSTNAME", host));
    let mut results = Vec::new();
    let pvecm = standin("pvecm-status-2node.txt", 0);
    results.push(run(exe, json!({"state": "info", "pvecm": pvecm}), &env_h));
    let pvecm = standin("not-in-cluster.txt", 255);
    results.push(run(
        exe,
        json!({"name": "lab", "link0": "10.99.0.1", "pvecm": pvecm, "_ansible_check_mode": true}),
        &env_h,
    ));
    // the create itself fails (the stand-in refuses it): rc, stdout, stderr of the command
    results.push(run(
        exe,
        json!({"name": "lab", "link0": "10.99.0.1", "pvecm": pvecm, "timeout": 5}),
        &env_h,
    ));
    assert!(
        results[0]["cluster"]["quorate"].as_bool().unwrap(),
        "{}",
        results[0]
    );
    assert!(results[1].get("cmd").is_some(), "{}", results[1]);
    compare("pvecm_cluster", exe, results);
}
