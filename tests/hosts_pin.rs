//! hosts_pin through its built binary: args file, stdin, check mode, diff mode, backup, every
//! refusal (file byte-identical, failed, exit 1), and the real resolver in a private mount
//! namespace.

mod common;

use common::{run_module, run_module_stdin, Run, TempDir};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_hosts_pin");

const SEED: &str =
    "127.0.0.1   localhost.localdomain localhost\n87.37.23.91 tartanpion.elao.local tartanpion\n";
const SEED_AFTER: &str = "127.0.0.1   localhost.localdomain localhost\n87.37.23.91 tartanpion.elao.local\n172.16.0.1  tartanpion\n";

/// The seed's task (`hostname: tartanpion, ip: 172.16.0.1`) on `path`, plus `extra` keys.
fn args(path: &Path, extra: Value) -> Value {
    let mut a = json!({"path": path, "hostname": "tartanpion", "ip": "172.16.0.1"});
    if let (Some(m), Value::Object(e)) = (a.as_object_mut(), extra) {
        m.extend(e);
    }
    a
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

/// Names in `dir` other than `keep` (temp files or backups left behind).
fn strays(dir: &Path, keep: &[&str]) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn seed_example_with_an_args_file() {
    let dir = TempDir::new("hp-seed");
    let hosts = dir.write("hosts", SEED);
    let r = run_module(BIN, &args(&hosts, json!({})));
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.changed() && !r.failed());
    assert_eq!(read(&hosts), SEED_AFTER);
    assert_eq!(
        r.json["removed_from"],
        json!(["87.37.23.91 tartanpion.elao.local tartanpion"])
    );
    assert_eq!(r.json["resolves_to"], "172.16.0.1");
    assert_eq!(
        r.msg(),
        format!(
            "pinned tartanpion to 172.16.0.1 in {}: appended the line '172.16.0.1  tartanpion'; removed from 1 line",
            hosts.display()
        )
    );
    assert!(r.json.get("diff").is_none(), "no diff without diff mode");
    assert!(r.json.get("backup_file").is_none());
    assert!(r.json.get("warnings").is_none());
    assert_eq!(r.json["invocation"]["module_args"]["exclusive"], true);

    let again = run_module(BIN, &args(&hosts, json!({})));
    assert_eq!(again.code, 0);
    assert!(!again.changed());
    assert_eq!(read(&hosts), SEED_AFTER);
    assert_eq!(again.json["removed_from"], json!([]));
    assert_eq!(again.json["resolves_to"], "172.16.0.1");
    assert!(again
        .msg()
        .starts_with("tartanpion already pinned to 172.16.0.1"));
    assert_eq!(strays(dir.path(), &["hosts"]), Vec::<String>::new());
}

#[test]
fn seed_example_for_bismuth_with_the_name_alias() {
    let dir = TempDir::new("hp-bismuth");
    let text =
        "127.0.0.1   localhost.localdomain localhost\n76.32.45.12 bismuth.elao.local bismuth\n";
    let hosts = dir.write("hosts", text);
    let a = json!({"path": hosts, "name": "bismuth", "ip": "172.16.0.2"});
    let r = run_module(BIN, &a);
    assert!(r.changed(), "{}", r.stdout);
    assert_eq!(
        read(&hosts),
        "127.0.0.1   localhost.localdomain localhost\n76.32.45.12 bismuth.elao.local\n172.16.0.2  bismuth\n"
    );
    assert!(!run_module(BIN, &a).changed());
}

#[test]
fn args_on_stdin() {
    let dir = TempDir::new("hp-stdin");
    let hosts = dir.write("hosts", SEED);
    let r = run_module_stdin(BIN, &args(&hosts, json!({})).to_string());
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.changed());
    assert_eq!(read(&hosts), SEED_AFTER);
    // `-` means stdin too.
    let out = assert_cmd::Command::new(BIN)
        .arg("-")
        .write_stdin(args(&hosts, json!({})).to_string())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["changed"], false);
}

#[test]
fn check_mode_writes_nothing_and_reports_the_change() {
    let dir = TempDir::new("hp-check");
    let hosts = dir.write("hosts", SEED);
    let r = run_module(
        BIN,
        &args(
            &hosts,
            json!({"_ansible_check_mode": true, "_ansible_diff": true, "backup": true}),
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.changed());
    assert_eq!(read(&hosts), SEED, "check mode changed the file");
    assert!(r.msg().starts_with("would pin tartanpion to 172.16.0.1"));
    assert_eq!(r.json["diff"]["before"], SEED);
    assert_eq!(r.json["diff"]["after"], SEED_AFTER);
    assert_eq!(
        r.json["removed_from"],
        json!(["87.37.23.91 tartanpion.elao.local tartanpion"])
    );
    assert_eq!(r.json["resolves_to"], "172.16.0.1");
    assert!(r.json.get("backup_file").is_none());
    assert_eq!(strays(dir.path(), &["hosts"]), Vec::<String>::new());
}

#[test]
fn diff_mode() {
    let dir = TempDir::new("hp-diff");
    let hosts = dir.write("hosts", SEED);
    let r = run_module(BIN, &args(&hosts, json!({"_ansible_diff": "yes"})));
    assert!(r.changed());
    let d = &r.json["diff"];
    assert_eq!(d["before"], SEED);
    assert_eq!(d["after"], SEED_AFTER);
    assert_eq!(d["before_header"], format!("{} (before)", hosts.display()));
    assert_eq!(d["after_header"], format!("{} (after)", hosts.display()));
    assert_eq!(read(&hosts), SEED_AFTER);
    let again = run_module(BIN, &args(&hosts, json!({"_ansible_diff": true})));
    assert!(!again.changed());
    assert!(again.json.get("diff").is_none());
}

#[test]
fn backup_keeps_the_original() {
    let dir = TempDir::new("hp-backup");
    let hosts = dir.write("hosts", SEED);
    let r = run_module(BIN, &args(&hosts, json!({"backup": true})));
    assert!(r.changed());
    let backup = r.json["backup_file"].as_str().expect("backup_file");
    assert!(backup.starts_with(&format!("{}.", hosts.display())) && backup.ends_with('~'));
    assert_eq!(read(Path::new(backup)), SEED);
    assert_eq!(read(&hosts), SEED_AFTER);
    // No change, no backup.
    let again = run_module(BIN, &args(&hosts, json!({"backup": true})));
    assert!(again.json.get("backup_file").is_none());
    assert_eq!(strays(dir.path(), &["hosts"]).len(), 1);
}

#[test]
fn keeps_mode_and_follows_a_symlink() {
    let dir = TempDir::new("hp-link");
    let hosts = dir.write("real-hosts", SEED);
    fs::set_permissions(&hosts, fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.join("hosts");
    std::os::unix::fs::symlink("real-hosts", &link).unwrap();
    let r = run_module(BIN, &args(&link, json!({})));
    assert!(r.changed(), "{}", r.stdout);
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(read(&hosts), SEED_AFTER);
    assert_eq!(
        fs::metadata(&hosts).unwrap().permissions().mode() & 0o7777,
        0o640
    );
}

#[test]
fn every_kind_of_line_is_kept_byte_for_byte() {
    let dir = TempDir::new("hp-bytes");
    let text = "# hosts\r\n\r\n127.0.0.1\tlocalhost # lo\r\n127.0.1.1\ttartanpion.elao.local\ttartanpion\r\n::1     localhost ip6-localhost ip6-loopback\r\n2001:db8::7 v6host\r\n87.37.23.91\ttartanpion\t# public, only the short name\r\n10.0.0.5\tother";
    let hosts = dir.write("hosts", text);
    let r = run_module(BIN, &args(&hosts, json!({})));
    assert!(r.changed(), "{}", r.stdout);
    assert_eq!(
        read(&hosts),
        "# hosts\r\n\r\n127.0.0.1\tlocalhost # lo\r\n::1     localhost ip6-localhost ip6-loopback\r\n2001:db8::7 v6host\r\n10.0.0.5\tother\r\n172.16.0.1\ttartanpion"
    );
    assert_eq!(
        r.json["removed_from"],
        json!([
            "127.0.1.1\ttartanpion.elao.local\ttartanpion",
            "87.37.23.91\ttartanpion\t# public, only the short name"
        ])
    );
    assert!(!run_module(BIN, &args(&hosts, json!({}))).changed());
}

#[test]
fn ipv6_address_and_aliases() {
    let dir = TempDir::new("hp-v6");
    let hosts = dir.write("hosts", "127.0.0.1 localhost\n2001:db8::10 other\n");
    let r = run_module(
        BIN,
        &args(
            &hosts,
            json!({"ip": "2001:DB8:0::10", "aliases": "tartanpion.lan,tp"}),
        ),
    );
    assert!(r.changed(), "{}", r.stdout);
    assert_eq!(
        read(&hosts),
        "127.0.0.1 localhost\n2001:db8::10 other tartanpion tartanpion.lan tp\n"
    );
    assert_eq!(r.json["resolves_to"], "2001:db8::10");
}

#[test]
fn not_exclusive_warns_when_an_earlier_line_wins() {
    let dir = TempDir::new("hp-warn");
    let text = "127.0.0.1\tlocalhost\n127.0.1.1\ttartanpion.elao.local\ttartanpion\n";
    let hosts = dir.write("hosts", text);
    let r = run_module(BIN, &args(&hosts, json!({"exclusive": "no"})));
    assert!(r.changed(), "{}", r.stdout);
    assert_eq!(read(&hosts), format!("{text}172.16.0.1\ttartanpion\n"));
    assert_eq!(r.json["resolves_to"], "127.0.1.1");
    let w = r.json["warnings"][0].as_str().unwrap_or("");
    assert!(
        w.starts_with("tartanpion resolves to 127.0.1.1, not 172.16.0.1"),
        "{w}"
    );
    assert!(w.contains("loopback"), "{w}");
}

#[test]
fn state_absent() {
    let dir = TempDir::new("hp-absent");
    let hosts = dir.write("hosts", "127.0.0.1 localhost\n172.16.0.1  tartanpion\n87.37.23.91 tartanpion.elao.local tartanpion\n");
    let a = json!({"path": hosts, "hostname": "tartanpion", "state": "absent"});
    let r = run_module(BIN, &a);
    assert!(r.changed(), "{}", r.stdout);
    assert_eq!(
        read(&hosts),
        "127.0.0.1 localhost\n87.37.23.91 tartanpion.elao.local\n"
    );
    assert_eq!(r.json["resolves_to"], Value::Null);
    assert_eq!(r.json["removed_from"].as_array().map(Vec::len), Some(2));
    let again = run_module(BIN, &a);
    assert!(!again.changed());
    assert!(again.msg().contains("nothing to remove"));
}

/// Runs the binary with an args file, bounded in time, optionally as user nobody.
fn run_bounded(args: &Value, as_nobody: bool) -> Run {
    let dir = TempDir::new("hp-args");
    let f = dir.write("args", serde_json::to_vec(args).unwrap());
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = if as_nobody {
        let mut c = assert_cmd::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        assert_cmd::Command::new(BIN)
    };
    let out = cmd
        .arg(&f)
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout:?}"));
    Run {
        json,
        code: out.status.code().unwrap_or(-1),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_refused(r: &Run, want_msg: &str) {
    assert!(r.failed(), "not failed: {}", r.stdout);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.json["changed"], false);
    assert!(
        r.msg().contains(want_msg),
        "msg {:?} lacks {want_msg:?}",
        r.msg()
    );
}

#[test]
fn refused_parameters_leave_the_file_byte_identical() {
    let cases: &[(Value, &str)] = &[
        (json!({"ip": "172.16.0.256"}), "ip '172.16.0.256' is not a valid IPv4 or IPv6 address"),
        (json!({"ip": "tartanpion"}), "ip 'tartanpion' is not a valid IPv4 or IPv6 address"),
        (json!({"ip": "fe80::1%eth0"}), "is not a valid IPv4 or IPv6 address"),
        (json!({"ip": "127.0.1.1"}), "ip '127.0.1.1' is a loopback address"),
        (json!({"ip": "::1"}), "ip '::1' is a loopback address"),
        (json!({"ip": "0.0.0.0"}), "is the unspecified address"),
        (json!({"hostname": "tartan_pion"}), "hostname 'tartan_pion' is not a valid host name (RFC 1123): it contains '_'"),
        (json!({"hostname": "-tartanpion"}), "starts or ends with a hyphen"),
        (json!({"hostname": "tartanpion."}), "ends with a dot"),
        (json!({"hostname": "a".repeat(64)}), "longer than 63 characters"),
        (json!({"hostname": "localhost"}), "hostname 'localhost' is a loopback name"),
        (json!({"hostname": "localhost", "state": "absent"}), "is a loopback name"),
        (json!({"aliases": ["ok", "bad alias"]}), "aliases item 'bad alias' is not a valid host name"),
        (json!({"path": ""}), "path is empty; give the hosts file to edit (default /etc/hosts)"),
        (json!({"ip": null}), "state is present but all of the following are missing: ip"),
        (json!({"state": "gone"}), "value of state must be one of: present, absent, got: gone"),
        (json!({"exclusive": "maybe"}), "argument 'exclusive' is of type str and we were unable to convert to bool"),
        (json!({"bogus": 1}), "Unsupported parameters for (hosts_pin) module: bogus. Supported parameters include: aliases, backup, exclusive, fqdn, hostname (name), ip, path, state."),
    ];
    let dir = TempDir::new("hp-refuse");
    let hosts = dir.write("hosts", SEED);
    for (extra, msg) in cases {
        let r = run_module(BIN, &args(&hosts, extra.clone()));
        assert_refused(&r, msg);
        assert_eq!(read(&hosts), SEED, "file changed by {extra}");
    }
    assert_eq!(strays(dir.path(), &["hosts"]), Vec::<String>::new());
}

#[test]
fn refused_files_are_left_untouched() {
    let dir = TempDir::new("hp-files");
    // Not a hosts file: a NUL byte.
    let bytes = b"127.0.0.1 localhost\n\0\n".to_vec();
    let p = dir.write("nul", &bytes);
    let r = run_bounded(&args(&p, json!({"backup": true})), false);
    assert_refused(
        &r,
        "contains a NUL byte, so it is not a hosts file; refusing to edit it",
    );
    assert_eq!(fs::read(&p).unwrap(), bytes);
    // A directory.
    let sub = dir.join("sub");
    fs::create_dir(&sub).unwrap();
    let r = run_bounded(&args(&sub, json!({})), false);
    assert_refused(&r, "is a directory, not a file");
    assert_eq!(fs::read_dir(&sub).unwrap().count(), 0);
    // A missing file is refused, not created.
    let missing = dir.join("missing");
    let r = run_bounded(&args(&missing, json!({})), false);
    assert_refused(
        &r,
        "does not exist; hosts_pin edits an existing hosts file and does not create one",
    );
    assert!(!missing.exists());
    // A FIFO would block a read: refused at once.
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let r = run_bounded(&args(&fifo, json!({})), false);
    assert_refused(&r, "is not a regular file");
    let mut names = strays(dir.path(), &[]);
    names.sort();
    assert_eq!(names, ["fifo", "nul", "sub"]);
}

#[test]
fn latin1_comment_is_edited_and_kept_byte_exact() {
    // pvecm_cluster reads such a file; hosts_pin edits it (names and addresses are ASCII, a
    // comment may hold any bytes).
    let dir = TempDir::new("hp-latin1");
    let bytes =
        b"127.0.0.1 localhost # caf\xe9 \xa9 2009\n87.37.23.91 tartanpion.elao.local tartanpion\n";
    let p = dir.write("hosts", bytes);
    let r = run_bounded(&args(&p, json!({"backup": true})), false);
    assert!(r.changed() && !r.failed(), "{}", r.stdout);
    let mut want =
        b"127.0.0.1 localhost # caf\xe9 \xa9 2009\n87.37.23.91 tartanpion.elao.local\n".to_vec();
    want.extend_from_slice(b"172.16.0.1 tartanpion\n");
    assert_eq!(fs::read(&p).unwrap(), want);
    let backup = r.json["backup_file"].as_str().unwrap();
    assert_eq!(
        fs::read(backup).unwrap(),
        bytes,
        "the backup is byte-exact too"
    );
    let again = run_bounded(&args(&p, json!({})), false);
    assert!(!again.changed() && !again.failed(), "{}", again.stdout);
}

#[test]
fn a_directory_others_can_write_is_refused() {
    // As sshd's StrictModes: another user could swap the file between read and write.
    let dir = TempDir::new("hp-strict");
    let sub = dir.join("shared");
    fs::create_dir(&sub).unwrap();
    let hosts = sub.join("hosts");
    fs::write(&hosts, SEED).unwrap();
    for mode in [0o777, 0o757] {
        fs::set_permissions(&sub, fs::Permissions::from_mode(mode)).unwrap();
        let r = run_bounded(&args(&hosts, json!({})), false);
        assert_refused(
            &r,
            &format!(
                "refusing to edit {}: its directory {} is writable by every user and has no sticky bit, so another user could swap the file",
                hosts.display(),
                sub.display()
            ),
        );
        assert_eq!(read(&hosts), SEED);
    }
    // With the sticky bit (as /tmp), or writable by its owner only, it is edited.
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o1777)).unwrap();
    let r = run_bounded(&args(&hosts, json!({})), false);
    assert!(r.changed() && !r.failed(), "{}", r.stdout);
    assert_eq!(read(&hosts), SEED_AFTER);
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn unreadable_file_is_refused() {
    let dir = TempDir::new("hp-unreadable");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let hosts = dir.write("hosts", SEED);
    fs::set_permissions(&hosts, fs::Permissions::from_mode(0o000)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // Root reads anything: run the module as user nobody instead.
    let r = run_bounded(&args(&hosts, json!({})), root);
    assert_refused(
        &r,
        &format!("cannot read {}: Permission denied", hosts.display()),
    );
    fs::set_permissions(&hosts, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(read(&hosts), SEED);
    assert_eq!(strays(dir.path(), &["hosts"]), Vec::<String>::new());
}

/// The real resolver: in a private mount namespace, a temp dir with its own nsswitch.conf
/// (`hosts: files`) and host.conf is bind-mounted over /etc (so even the module's temp file never lands in the
/// host's /etc) and the temp hosts file over /etc/hosts; the module edits /etc/hosts there
/// (a mount point: written in place), then glibc's getent reads it. Everything happens in one
/// `unshare` process, so the mounts vanish with it.
#[test]
fn real_resolver_sees_the_pinned_names() {
    let probe = Command::new("timeout")
        .args(["20", "unshare", "-m", "--propagation", "private", "true"])
        .output();
    let permitted = probe.as_ref().is_ok_and(|o| o.status.success());
    if !permitted {
        let why = match &probe {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        if std::env::var("PVE2NODE_E2E").as_deref() == Ok("1") {
            panic!("unshare -m is not permitted ({why}); this test needs root");
        }
        eprintln!("skipping real_resolver_sees_the_pinned_names: unshare -m is not permitted ({why}); run as root");
        return;
    }
    let host_hosts = fs::read("/etc/hosts").unwrap();
    // Our temp files would be /etc/.hosts.<pid>.tmp, backups /etc/hosts.<pid>.<time>~.
    let ours = |n: &String| n.starts_with(".hosts.") || n.starts_with("hosts.");
    let host_etc: Vec<String> = strays(Path::new("/etc"), &[])
        .into_iter()
        .filter(ours)
        .collect();

    let dir = TempDir::new("hp-resolver");
    let etc = dir.join("etc");
    fs::create_dir(&etc).unwrap();
    // Our own resolver settings: files only, so nothing is asked of DNS.
    fs::write(etc.join("nsswitch.conf"), "hosts: files\n").unwrap();
    fs::write(etc.join("host.conf"), "multi on\n").unwrap();
    fs::write(etc.join("hosts"), "").unwrap();
    dir.write("hosts", SEED);
    dir.write(
        "args.json",
        args(Path::new("/etc/hosts"), json!({})).to_string(),
    );
    let script = r#"set -eu
d=$1; bin=$2
mount --bind "$d/etc" /etc
mount --bind "$d/hosts" /etc/hosts
echo "before=$(getent hosts tartanpion || echo none)"
"$bin" "$d/args.json" > "$d/result1.json" || true
echo "short=$(getent hosts tartanpion || echo none)"
echo "fqdn=$(getent hosts tartanpion.elao.local || echo none)"
"$bin" "$d/args.json" > "$d/result2.json" || true
"#;
    let out = Command::new("timeout")
        .args([
            "60",
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(dir.path())
        .arg(BIN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();

    // The host's /etc/hosts is exactly as before, whatever happened inside.
    assert_eq!(
        fs::read("/etc/hosts").unwrap(),
        host_hosts,
        "the host's /etc/hosts changed!"
    );
    let etc_after: Vec<String> = strays(Path::new("/etc"), &[])
        .into_iter()
        .filter(ours)
        .collect();
    assert_eq!(
        etc_after, host_etc,
        "hosts temp files appeared in the host's /etc"
    );

    assert!(
        out.status.success(),
        "namespace script failed: {stdout} {stderr}"
    );
    let field = |key: &str| -> Vec<String> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        field("before"),
        ["87.37.23.91", "tartanpion.elao.local", "tartanpion"],
        "{stdout}"
    );
    assert_eq!(field("short"), ["172.16.0.1", "tartanpion"], "{stdout}");
    assert_eq!(
        field("fqdn"),
        ["87.37.23.91", "tartanpion.elao.local"],
        "{stdout}"
    );

    let r1: Value = serde_json::from_str(&read(&dir.join("result1.json"))).unwrap();
    assert_eq!(r1["changed"], true, "{r1}");
    assert_eq!(r1["resolves_to"], "172.16.0.1");
    let r2: Value = serde_json::from_str(&read(&dir.join("result2.json"))).unwrap();
    assert_eq!(r2["changed"], false, "{r2}");
    // The edit went through the bind mount into our temp file.
    assert_eq!(read(&dir.join("hosts")), SEED_AFTER);
    let mut left = strays(&etc, &[]);
    left.sort();
    assert_eq!(
        left,
        ["host.conf", "hosts", "nsswitch.conf"],
        "temp files left in the namespace's /etc"
    );
}

/// Runs the module with PVE2NODE_HOSTNAME (debug builds' stand-in for the system's host name).
fn run_as_host(host: &str, a: &Value) -> Value {
    let dir = TempDir::new("args");
    let f = dir.write("args", serde_json::to_vec(a).unwrap());
    let out = assert_cmd::Command::new(BIN)
        .arg(&f)
        .env("PVE2NODE_HOSTNAME", host)
        .output()
        .expect("run module");
    let j: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_ne!(j["failed"], true, "{j}");
    j
}

#[test]
fn hostname_defaults_to_the_systems_short_name() {
    let dir = TempDir::new("hp-default");
    let debian = "127.0.0.1\tlocalhost\n127.0.1.1\tbismuth.elao.local\tbismuth\n";
    let hosts = dir.write("hosts", debian);
    let a = json!({"path": hosts, "ip": "10.99.0.2"});
    let r = run_as_host("bismuth.elao.local", &a);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["hostname"], "bismuth");
    // the short name on the private line; the FQDN left the loopback line too
    assert_eq!(read(&hosts), "127.0.0.1\tlocalhost\n10.99.0.2\tbismuth\n");
    assert_eq!(run_as_host("bismuth", &a)["changed"], false);
    // the same file with the FQDN kept canonical on the private line
    let hosts2 = dir.write("hosts2", debian);
    let a2 = json!({"path": hosts2, "ip": "10.99.0.2", "fqdn": "bismuth.elao.local"});
    let r = run_as_host("bismuth", &a2);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(
        read(&hosts2),
        "127.0.0.1\tlocalhost\n10.99.0.2\tbismuth.elao.local\tbismuth\n"
    );
    assert_eq!(run_as_host("bismuth", &a2)["changed"], false);
    // an explicit hostname wins over the system's
    let hosts3 = dir.write("hosts3", debian);
    let r = run_as_host(
        "bismuth",
        &json!({"path": hosts3, "ip": "10.99.0.2", "hostname": "tartanpion"}),
    );
    assert_eq!(r["hostname"], "tartanpion");
    assert_eq!(
        strays(dir.path(), &["hosts", "hosts2", "hosts3"]),
        Vec::<String>::new()
    );
}
