//! ssh_trust through its built binary, with temp files only: real keys made by ssh-keygen,
//! info (existing key, generated key, check mode, host keys), authorized_key (symlink as on a
//! Proxmox node, idempotent, options and comments of other lines kept), known_hosts (stale key
//! replaced, hashed entries made by the real `ssh-keygen -H` recognised, `ssh-keygen -F` finds
//! the pinned key), diff and check mode, refusals naming the parameter with the file unchanged.

mod common;

use common::{run_module, TempDir};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ssh_trust");

fn keygen(dir: &Path, name: &str, kind: &str) -> String {
    let f = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            kind,
            "-N",
            "",
            "-C",
            &format!("test@{name}"),
            "-f",
        ])
        .arg(&f)
        .status()
        .expect("ssh-keygen runs (openssh-client)");
    assert!(st.success());
    fs::read_to_string(f.with_extension("pub"))
        .unwrap_or_else(|_| fs::read_to_string(format!("{}.pub", f.display())).unwrap())
        .trim()
        .to_string()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

/// A host key dir with an ed25519 and an rsa host key, as sshd has them.
fn host_dir(t: &TempDir, name: &str) -> (std::path::PathBuf, Vec<String>) {
    let d = t.join(name);
    fs::create_dir_all(&d).unwrap();
    let e = keygen(&d, "ssh_host_ed25519_key", "ed25519");
    let r = keygen(&d, "ssh_host_rsa_key", "rsa");
    fs::write(d.join("ssh_host_ed25519_key.pub.bak"), "ignored").unwrap();
    fs::write(d.join("sshd_config"), "Port 22\n").unwrap();
    (d, vec![e, r])
}

fn strip_comment(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn info_reports_existing_key_and_host_keys() {
    let t = TempDir::new("sshtrust-info");
    let ssh = t.join("ssh");
    fs::create_dir_all(&ssh).unwrap();
    let pubkey = keygen(&ssh, "id_ed25519", "ed25519");
    let (hd, hk) = host_dir(&t, "etcssh");
    let r = run_module(
        BIN,
        &json!({"state": "info", "ssh_dir": ssh, "host_key_dir": hd}),
    );
    assert!(!r.failed(), "{}", r.stdout);
    assert!(!r.changed());
    assert_eq!(r.json["public_key"], json!(pubkey));
    assert_eq!(r.json["generated"], json!(false));
    // sorted by file name: ed25519 before rsa, comments dropped
    assert_eq!(
        r.json["host_keys"],
        json!([strip_comment(&hk[0]), strip_comment(&hk[1])])
    );
    assert_eq!(r.json["host_key_files"].as_array().unwrap().len(), 2);
}

#[test]
fn info_generates_a_key_only_outside_check_mode() {
    let t = TempDir::new("sshtrust-gen");
    let ssh = t.join("root/.ssh");
    let (hd, _) = host_dir(&t, "etcssh");
    let a = json!({"ssh_dir": ssh, "host_key_dir": hd, "key_type": "ed25519", "_ansible_check_mode": true});
    let r = run_module(BIN, &a);
    assert!(r.changed() && !r.failed(), "{}", r.stdout);
    assert_eq!(r.json["public_key"], Value::Null);
    assert!(!ssh.exists(), "check mode created {}", ssh.display());

    let a = json!({"ssh_dir": ssh, "host_key_dir": hd, "key_type": "ed25519"});
    let r = run_module(BIN, &a);
    assert!(r.changed() && !r.failed(), "{}", r.stdout);
    assert_eq!(r.json["generated"], json!(true));
    let line = r.json["public_key"].as_str().unwrap();
    assert!(line.starts_with("ssh-ed25519 "), "{line}");
    assert_eq!(read(&ssh.join("id_ed25519.pub")).trim(), line);
    let mode = fs::metadata(&ssh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let mode = fs::metadata(ssh.join("id_ed25519"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // second run: the same key, nothing changed
    let r2 = run_module(BIN, &a);
    assert!(!r2.changed());
    assert_eq!(r2.json["public_key"].as_str(), Some(line));

    // generate: false and no key: no change, no key, no failure
    let empty = t.join("empty");
    let r = run_module(
        BIN,
        &json!({"ssh_dir": empty, "host_key_dir": hd, "generate": false}),
    );
    assert!(!r.changed() && !r.failed());
    assert_eq!(r.json["public_key"], Value::Null);
}

#[test]
fn info_reads_a_private_key_without_pub_and_the_default_dirs_by_hook() {
    let t = TempDir::new("sshtrust-priv");
    let ssh = t.join("ssh");
    fs::create_dir_all(&ssh).unwrap();
    let pubkey = keygen(&ssh, "id_rsa", "rsa");
    fs::remove_file(ssh.join("id_rsa.pub")).unwrap();
    let (hd, _) = host_dir(&t, "etcssh");
    let out = Command::new(BIN)
        .env("PVE2NODE_SSH_DIR", &ssh)
        .env("PVE2NODE_SSH_HOST_KEY_DIR", &hd)
        .env("PVE2NODE_HOSTNAME", "tartanpion.elao.local")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"{}")?;
            c.wait_with_output()
        })
        .unwrap();
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["changed"], json!(false), "{j}");
    assert_eq!(
        strip_comment(j["public_key"].as_str().unwrap()),
        strip_comment(&pubkey)
    );
    assert_eq!(j["short_hostname"], json!("tartanpion"));
    assert!(!ssh.join("id_rsa.pub").exists());
}

#[test]
fn info_fails_without_host_keys() {
    let t = TempDir::new("sshtrust-nohk");
    fs::create_dir_all(t.join("etcssh")).unwrap();
    let r = run_module(
        BIN,
        &json!({"ssh_dir": t.join("s"), "host_key_dir": t.join("etcssh"), "_ansible_check_mode": true}),
    );
    assert!(r.failed());
    assert!(r.msg().contains("no public host key"), "{}", r.msg());
}

#[test]
fn authorized_key_through_a_symlink_idempotent_with_diff() {
    let t = TempDir::new("sshtrust-ak");
    let priv_dir = t.join("etc/pve/priv");
    fs::create_dir_all(&priv_dir).unwrap();
    let real = priv_dir.join("authorized_keys");
    let other = keygen(&t.0, "other", "ed25519");
    let before = format!("# root's keys\nno-pty,from=\"10.0.0.1\" {other}\n");
    fs::write(&real, &before).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
    let ssh = t.join("root/.ssh");
    fs::create_dir_all(&ssh).unwrap();
    std::os::unix::fs::symlink(&real, ssh.join("authorized_keys")).unwrap();
    let joiner = keygen(&t.0, "joiner", "rsa");

    let a = json!({"state": "authorized_key", "key": joiner, "ssh_dir": ssh, "_ansible_diff": true, "_ansible_check_mode": true});
    let r = run_module(BIN, &a);
    assert!(r.changed() && !r.failed(), "{}", r.stdout);
    assert_eq!(read(&real), before, "check mode wrote");
    assert!(r.json["diff"]["after"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{joiner}\n")));

    let a =
        json!({"state": "authorized_key", "key": joiner, "ssh_dir": ssh, "_ansible_diff": true});
    let r = run_module(BIN, &a);
    assert!(r.changed() && !r.failed(), "{}", r.stdout);
    assert_eq!(read(&real), format!("{before}{joiner}\n"));
    assert!(fs::symlink_metadata(ssh.join("authorized_keys"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::metadata(&real).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(r.json["diff"]["before"], json!(before));

    // the same key with another comment: unchanged, no duplicate
    let other_comment = format!("{} someone@else", strip_comment(&joiner));
    let r = run_module(
        BIN,
        &json!({"state": "authorized_key", "key": other_comment, "ssh_dir": ssh}),
    );
    assert!(!r.changed(), "{}", r.stdout);
    assert_eq!(read(&real).matches(&strip_comment(&joiner)).count(), 1);
}

#[test]
fn authorized_key_creates_a_missing_file_0600() {
    let t = TempDir::new("sshtrust-akn");
    let k = keygen(&t.0, "k", "ed25519");
    let path = t.join("new/.ssh/authorized_keys");
    let r = run_module(
        BIN,
        &json!({"state": "authorized_key", "key": k, "path": path}),
    );
    assert!(r.changed() && !r.failed(), "{}", r.stdout);
    assert_eq!(read(&path), format!("{k}\n"));
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let t = TempDir::new("sshtrust-bad");
    let path = t.write("authorized_keys", "keep me\n");
    for (args, want) in [
        (
            json!({"state": "authorized_key", "key": "ssh-rsa AAAAnotakey", "path": path}),
            "key 'ssh-rsa AAAAnotakey' is not an SSH public key",
        ),
        (
            json!({"state": "authorized_key", "path": path}),
            "state is authorized_key but all of the following are missing: key",
        ),
        (
            json!({"state": "known_hosts", "names": "a", "host_keys": ["x y"], "path": path}),
            "host_keys[0]",
        ),
        (
            json!({"state": "known_hosts", "names": "*", "host_keys": ["x y"], "path": path}),
            "names entry '*'",
        ),
        (json!({"state": "nope"}), "value of state must be one of"),
    ] {
        let r = run_module(BIN, &args);
        assert!(r.failed(), "{args}");
        assert_eq!(r.code, 1);
        assert!(r.msg().contains(want), "{} lacks {want}", r.msg());
        assert_eq!(read(&path), "keep me\n");
    }
}

/// ssh-keygen -F NAME -f FILE: the key lines ssh would use for NAME.
fn lookup(file: &Path, name: &str) -> Vec<String> {
    let o = Command::new("ssh-keygen")
        .args(["-F", name, "-f"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| strip_comment(&l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")))
        .collect()
}

#[test]
fn known_hosts_replaces_a_reinstalled_host_including_hashed_entries() {
    let t = TempDir::new("sshtrust-kh");
    let (_, old) = host_dir(&t, "old");
    let (_, new) = host_dir(&t, "new");
    let other = keygen(&t.0, "other", "ed25519");
    let kh = t.join("known_hosts");
    // The old keys for tartanpion and its address, hashed by the real ssh-keygen -H
    // (Debian's HashKnownHosts yes), plus a foreign host.
    fs::write(
        &kh,
        format!(
            "tartanpion {}\n10.99.0.1 {}\nbismuth,10.99.0.2 {}\n",
            strip_comment(&old[0]),
            strip_comment(&old[1]),
            other
        ),
    )
    .unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-H", "-f"])
        .arg(&kh)
        .output()
        .unwrap();
    assert!(st.status.success());
    let _ = fs::remove_file(format!("{}.old", kh.display()));
    let hashed = read(&kh);
    assert!(hashed.contains("|1|"), "{hashed}");
    assert_eq!(lookup(&kh, "tartanpion"), vec![strip_comment(&old[0])]);

    let a = json!({"state": "known_hosts", "names": "tartanpion,10.99.0.1", "host_keys": new, "path": kh, "_ansible_diff": true});
    let r = run_module(BIN, &a);
    assert!(r.changed() && !r.failed(), "{}", r.stdout);
    assert_eq!(r.json["replaced"], json!(["tartanpion", "10.99.0.1"]));
    let after = read(&kh);
    assert!(!after.contains(&strip_comment(&old[0])) && !after.contains(&strip_comment(&old[1])));
    // ssh itself now finds exactly the new keys for each name, and the foreign host untouched
    for name in ["tartanpion", "10.99.0.1"] {
        let mut got = lookup(&kh, name);
        got.sort();
        let mut want: Vec<String> = new.iter().map(|k| strip_comment(k)).collect();
        want.sort();
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(lookup(&kh, "10.99.0.2"), vec![strip_comment(&other)]);
    let foreign: Vec<&str> = hashed
        .lines()
        .filter(|l| l.contains(&strip_comment(&other)))
        .collect();
    assert!(
        foreign.iter().all(|l| after.contains(l)),
        "foreign line changed"
    );

    // second run: nothing; check mode on a fresh file writes nothing
    let r = run_module(BIN, &a);
    assert!(!r.changed(), "{}", r.stdout);
    let fresh = t.join("fresh/known_hosts");
    let r = run_module(
        BIN,
        &json!({"state": "known_hosts", "names": ["tartanpion"], "host_keys": new, "path": fresh, "_ansible_check_mode": true}),
    );
    assert!(r.changed() && !fresh.exists());
}

#[test]
fn ansible_doc_shows_the_documentation() {
    let Some(text) = common::ansible_doc("ssh_trust", BIN) else {
        return;
    };
    for word in [
        "authorized_key",
        "known_hosts",
        "host_keys",
        "HMAC-SHA1",
        "public_key",
    ] {
        assert!(
            text.contains(word),
            "{word} missing from ansible-doc output"
        );
    }
}

#[test]
fn ansible_playbook_carries_keys_between_two_fake_hosts() {
    let Some(bin) = common::ansible_bin() else {
        return;
    };
    let dir = TempDir::new("sshtrust-play");
    let lib = common::ansible_library(&dir, &[("ssh_trust", BIN)]);
    let (hd, hk) = host_dir(&dir, "peer-etcssh");
    let joiner = dir.join("joiner-ssh");
    let peer = dir.join("peer-ssh");
    fs::create_dir_all(&peer).unwrap();
    let play = dir.write(
        "play.yml",
        format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n\
             \x20   - ssh_trust: {{ssh_dir: {j}, host_key_dir: {hd}, key_type: ed25519}}\n      register: joiner\n\
             \x20   - ssh_trust: {{ssh_dir: {p}, host_key_dir: {hd}}}\n      register: peer\n\
             \x20   - ssh_trust: {{state: authorized_key, ssh_dir: {p}, key: \"{{{{ joiner.public_key }}}}\"}}\n\
             \x20   - ssh_trust: {{state: known_hosts, ssh_dir: {j}, names: 'tartanpion,10.99.0.1', host_keys: \"{{{{ peer.host_keys }}}}\"}}\n",
            j = joiner.display(),
            p = peer.display(),
            hd = hd.display()
        ),
    );
    for (run, changed) in [(1, "changed=4"), (2, "changed=0")] {
        let out = common::ansible_cmd(&bin, "ansible-playbook", &dir, &lib)
            .arg("-i")
            .arg("localhost,")
            .arg("-c")
            .arg("local")
            .arg(&play)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "run {run}: {text}");
        assert!(text.contains(changed), "run {run}: {text}");
    }
    let jpub = read(&joiner.join("id_ed25519.pub"));
    assert!(read(&peer.join("authorized_keys")).contains(jpub.trim()));
    let mut got = lookup(&joiner.join("known_hosts"), "10.99.0.1");
    got.sort();
    let mut want: Vec<String> = hk.iter().map(|k| strip_comment(k)).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn authorized_key_through_a_dangling_symlink_creates_its_target() {
    // A Proxmox node before /etc/pve/priv/authorized_keys exists: the link dangles.
    let t = TempDir::new("sshtrust-dangle");
    let priv_dir = t.join("etc/pve/priv");
    fs::create_dir_all(&priv_dir).unwrap();
    let ssh = t.join("root/.ssh");
    fs::create_dir_all(&ssh).unwrap();
    std::os::unix::fs::symlink(
        priv_dir.join("authorized_keys"),
        ssh.join("authorized_keys"),
    )
    .unwrap();
    let k = keygen(&t.0, "k", "ed25519");
    let r = run_module(
        BIN,
        &json!({"state": "authorized_key", "key": k, "ssh_dir": ssh}),
    );
    assert!(r.changed() && !r.failed(), "{}", r.stdout);
    assert_eq!(read(&priv_dir.join("authorized_keys")), format!("{k}\n"));
    assert!(fs::symlink_metadata(ssh.join("authorized_keys"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::metadata(priv_dir.join("authorized_keys"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

/// The proof a user wants: after ssh_trust carried the keys, the real ssh client reaches a real
/// sshd as root with `StrictHostKeyChecking=yes` and `BatchMode=yes` (no prompt, no trust on
/// first use), and a host whose key was replaced is refused until known_hosts is pinned again.
/// sshd runs on loopback inside a private network + mount namespace (its own /run/sshd) and is
/// gone when the namespace's shell ends.
#[test]
fn real_ssh_connects_only_after_the_keys_are_carried() {
    let ok = Path::new("/usr/sbin/sshd").exists()
        && Path::new("/usr/bin/ssh").exists()
        && Command::new("unshare")
            .args(["-m", "-n", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("PVE2NODE_E2E").as_deref() != Ok("1"),
            "sshd, ssh or unshare -m -n unavailable"
        );
        eprintln!("skipping: needs sshd, ssh and unshare -m -n");
        return;
    }
    let t = TempDir::new("sshtrust-real");
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let (hd, _) = host_dir(&t, "peer-etcssh");
    let peer = t.join("peer-root-ssh");
    let joiner = t.join("joiner-root-ssh");
    fs::create_dir_all(&peer).unwrap();
    fs::set_permissions(&peer, fs::Permissions::from_mode(0o700)).unwrap();
    let step = |args: Value| {
        let r = run_module(BIN, &args);
        assert!(!r.failed(), "{}", r.stdout);
        r.json
    };
    let j = step(json!({"ssh_dir": joiner, "host_key_dir": hd, "key_type": "ed25519"}));
    let p = step(json!({"ssh_dir": peer, "host_key_dir": hd}));
    step(json!({"state": "authorized_key", "ssh_dir": peer, "key": j["public_key"]}));
    step(
        json!({"state": "known_hosts", "ssh_dir": joiner, "names": ["127.0.0.1", "[127.0.0.1]:2222"], "host_keys": p["host_keys"]}),
    );
    // The second host key set: the peer "reinstalled".
    let (hd2, _) = host_dir(&t, "peer-etcssh-new");
    let d = t.path().display();
    let sshd_conf = t.write(
        "sshd_config",
        format!(
            "ListenAddress 127.0.0.1:2222\nHostKey {h}/ssh_host_ed25519_key\nHostKey {h}/ssh_host_rsa_key\n\
             AuthorizedKeysFile {peer}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPidFile {d}/sshd.pid\n\
             StrictModes no\n",
            h = hd.display(),
            peer = peer.display()
        ),
    );
    let sshd_conf2 = t.write(
        "sshd_config2",
        fs::read_to_string(&sshd_conf)
            .unwrap()
            .replace(&hd.display().to_string(), &hd2.display().to_string())
            .replace("sshd.pid", "sshd2.pid"),
    );
    let ssh = format!(
        "ssh -F none -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={j}/known_hosts \
         -o IdentitiesOnly=yes -i {j}/id_ed25519 -o ConnectTimeout=5 -p 2222 root@127.0.0.1",
        j = joiner.display()
    );
    let script = format!(
        "set -u\nmount --make-rprivate /\nmkdir -p {d}/run-sshd\nmount --bind {d}/run-sshd /run 2>/dev/null || exit 90\nmkdir -p /run/sshd\n\
         ip link set lo up\n\
         /usr/sbin/sshd -f {c1}\n\
         for i in $(seq 50); do [ -s {d}/sshd.pid ] && break; sleep 0.1; done\n\
         {ssh} echo connected-1 > {d}/out1 2>&1; echo $? > {d}/rc1\n\
         kill $(cat {d}/sshd.pid); sleep 0.3\n\
         /usr/sbin/sshd -f {c2}\n\
         for i in $(seq 50); do [ -s {d}/sshd2.pid ] && break; sleep 0.1; done\n\
         {ssh} echo connected-2 > {d}/out2 2>&1; echo $? > {d}/rc2\n\
         kill $(cat {d}/sshd2.pid)\n",
        c1 = sshd_conf.display(),
        c2 = sshd_conf2.display(),
    );
    // After the refusal: pin the new host keys (read from the "reinstalled" host's files) and
    // connect once more.
    let hk2 = step(json!({"ssh_dir": peer, "host_key_dir": hd2}))["host_keys"].clone();
    let repin = t.write(
        "repin.json",
        serde_json::to_vec(&json!({"state": "known_hosts", "ssh_dir": joiner, "names": ["127.0.0.1", "[127.0.0.1]:2222"], "host_keys": hk2})).unwrap(),
    );
    let script = script.replace(
        "kill $(cat DIR/sshd2.pid)\n".replace("DIR", &d.to_string()).as_str(),
        &format!(
            "{BIN} {r} > {d}/repin.out\n{ssh} echo connected-3 > {d}/out3 2>&1; echo $? > {d}/rc3\nkill $(cat {d}/sshd2.pid)\n",
            r = repin.display()
        ),
    );
    let sh = t.write("ns.sh", script);
    let st = Command::new("timeout")
        .args([
            "60",
            "unshare",
            "-m",
            "--propagation",
            "private",
            "-n",
            "sh",
        ])
        .arg(&sh)
        .status()
        .unwrap();
    assert!(st.success(), "namespace script failed: {st}");
    let rc = |n: &str| {
        fs::read_to_string(t.join(&format!("rc{n}")))
            .unwrap()
            .trim()
            .to_string()
    };
    let out = |n: &str| fs::read_to_string(t.join(&format!("out{n}"))).unwrap();
    assert_eq!(rc("1"), "0", "ssh failed: {}", out("1"));
    assert!(out("1").contains("connected-1"));
    // the reinstalled host (new keys) is refused by ssh: known_hosts holds the old ones
    assert_ne!(rc("2"), "0", "{}", out("2"));
    assert!(
        out("2").contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        out("2")
    );
    let repinned: Value =
        serde_json::from_str(&fs::read_to_string(t.join("repin.out")).unwrap()).unwrap();
    assert_eq!(repinned["changed"], json!(true), "{repinned}");
    assert_eq!(
        repinned["replaced"],
        json!(["127.0.0.1", "[127.0.0.1]:2222"])
    );
    assert_eq!(rc("3"), "0", "ssh after re-pinning failed: {}", out("3"));
    assert!(out("3").contains("connected-3"));
}
