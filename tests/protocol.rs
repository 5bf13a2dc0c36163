//! The module protocol through real binaries: how arguments arrive (args file, `-`, stdin),
//! what comes out on bad input (one JSON object, `failed: true`, exit 1, nothing else), and the
//! whole validate → logic → result path with check, diff and no_log.
//!
//! Full-path tests use `examples/protocol_stub.rs` (a module with a known spec, built by
//! `cargo test`); the input-error paths are also run against every real module binary, without
//! depending on their parameters.
mod common;

use common::TempDir;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Output;

const MODULES: &[(&str, &str)] = &[
    ("hosts_pin", env!("CARGO_BIN_EXE_hosts_pin")),
    ("pvecm_cluster", env!("CARGO_BIN_EXE_pvecm_cluster")),
    ("cman_two_node", env!("CARGO_BIN_EXE_cman_two_node")),
    ("fuse_recover", env!("CARGO_BIN_EXE_fuse_recover")),
    ("qdevice", env!("CARGO_BIN_EXE_qdevice")),
    ("qnetd", env!("CARGO_BIN_EXE_qnetd")),
    ("ssh_trust", env!("CARGO_BIN_EXE_ssh_trust")),
    ("corosync_link", env!("CARGO_BIN_EXE_corosync_link")),
];

/// The stub module: target/<profile>/examples/protocol_stub, built by `cargo test` (or here, if
/// only this test target was built).
fn stub() -> PathBuf {
    use std::sync::OnceLock;
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("test exe");
        // target/debug/deps/protocol-… → target/debug/examples/protocol_stub
        let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
        let p = profile_dir.join("examples").join("protocol_stub");
        // `cargo test` builds examples, `cargo test --test protocol` does not: build it here
        // (a no-op when up to date), in the profile of this test binary. A failed build fails
        // the test: a stale stub from an earlier build must not stand in for the current code.
        let mut build = std::process::Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "--example", "protocol_stub"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build
            .status()
            .expect("run cargo build --example protocol_stub");
        assert!(
            status.success(),
            "cargo build --example protocol_stub failed: {status}"
        );
        assert!(p.exists(), "{} missing after its build", p.display());
        p
    })
    .clone()
}

struct Res {
    json: Value,
    code: i32,
}

/// Checks the protocol's promise for any run: exactly one JSON object on one stdout line,
/// nothing on stderr, exit 0 exactly when `failed` is false.
fn parse(out: Output) -> Res {
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr, "", "nothing on stderr");
    assert!(stdout.ends_with('\n'), "{stdout:?}");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout:?}");
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout:?}"));
    assert!(json.is_object(), "{stdout}");
    let code = out.status.code().expect("exited, not killed");
    let failed = json["failed"].as_bool().expect("failed is explicit");
    assert_eq!(code, if failed { 1 } else { 0 }, "{json}");
    Res { json, code }
}

fn with_file(bin: &PathBuf, content: &[u8]) -> Res {
    let dir = TempDir::new("proto-args");
    let f = dir.write("args", content);
    parse(
        assert_cmd::Command::new(bin)
            .arg(&f)
            .output()
            .expect("run module"),
    )
}

fn with_stdin(bin: &PathBuf, args: &[&str], content: &[u8]) -> Res {
    parse(
        assert_cmd::Command::new(bin)
            .args(args)
            .write_stdin(content.to_vec())
            .output()
            .expect("run module"),
    )
}

fn assert_failed(r: &Res, msg_start: &str) {
    assert_eq!(r.code, 1);
    assert_eq!(r.json["failed"], json!(true));
    let msg = r.json["msg"].as_str().unwrap_or("");
    assert!(
        msg.starts_with(msg_start),
        "msg {msg:?} should start with {msg_start:?}"
    );
}

fn bins() -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = MODULES
        .iter()
        .map(|(n, p)| (n.to_string(), PathBuf::from(p)))
        .collect();
    v.push(("protocol_stub".into(), stub()));
    v
}

// ---------------------------------------------------------------------------------------------
// Input errors, on every module binary

#[test]
fn missing_args_file() {
    for (name, bin) in bins() {
        let r = parse(
            assert_cmd::Command::new(&bin)
                .arg("/pve2node/no/such/args")
                .output()
                .unwrap(),
        );
        assert_failed(
            &r,
            "cannot read the module arguments file /pve2node/no/such/args: No such file or directory",
        );
        assert_eq!(r.json["changed"], json!(false), "{name}");
    }
}

#[test]
fn empty_args_file_and_empty_stdin() {
    for (_, bin) in bins() {
        let r = with_file(&bin, b"");
        assert_failed(&r, "no module arguments: ");
        assert!(r.json["msg"].as_str().unwrap().contains("is empty"));
        assert_failed(
            &with_stdin(&bin, &[], b""),
            "no module arguments: stdin is empty",
        );
        assert_failed(
            &with_stdin(&bin, &["-"], b" \n"),
            "no module arguments: stdin is empty",
        );
    }
}

#[test]
fn invalid_json() {
    for (_, bin) in bins() {
        let r = with_file(&bin, b"{\"name\": ");
        assert_failed(&r, "module arguments in ");
        assert!(
            r.json["msg"]
                .as_str()
                .unwrap()
                .contains("are not valid JSON: "),
            "{}",
            r.json
        );
        assert_failed(
            &with_stdin(&bin, &["-"], b"name=x"),
            "module arguments in stdin are not valid JSON: ",
        );
    }
}

#[test]
fn non_object_json() {
    for (_, bin) in bins() {
        assert_failed(
            &with_stdin(&bin, &[], b"[1, 2]"),
            "module arguments in stdin must be a JSON object, got an array",
        );
    }
}

#[test]
fn nan_and_infinity_tokens() {
    for (_, bin) in bins() {
        for tok in ["NaN", "Infinity", "-Infinity"] {
            let text = format!("{{\"count\": {tok}}}");
            assert_failed(
                &with_stdin(&bin, &["-"], text.as_bytes()),
                &format!(
                    "module arguments in stdin contain the token {tok}, which is not valid JSON"
                ),
            );
        }
    }
}

#[test]
fn non_utf8_input() {
    for (_, bin) in bins() {
        let r = with_file(&bin, b"{\"name\": \"caf\xe9\"}");
        assert_failed(&r, "the module arguments file ");
        assert!(r.json["msg"]
            .as_str()
            .unwrap()
            .ends_with("is not valid UTF-8 text"));
        assert_failed(
            &with_stdin(&bin, &[], b"{\"name\": \"\xff\"}"),
            "module arguments on stdin are not valid UTF-8 text",
        );
    }
}

#[test]
fn unsupported_parameter_names_the_module() {
    for (name, bin) in bins() {
        let r = with_stdin(&bin, &[], br#"{"pve2node_no_such_param": 1}"#);
        assert_eq!(r.code, 1);
        let msg = r.json["msg"].as_str().unwrap();
        // As AnsibleModule, missing required arguments (also by required_if) are reported
        // before unknown ones.
        if !msg.starts_with("missing required arguments: ")
            && !msg.contains("but all of the following are missing")
        {
            assert!(
                msg.starts_with(&format!(
                    "Unsupported parameters for ({name}) module: pve2node_no_such_param. Supported parameters include: "
                )),
                "{name}: {msg}"
            );
        }
    }
    let r = with_stdin(&stub(), &[], br#"{"name": "x", "zeta": 1, "alpha": 2}"#);
    assert_failed(
        &r,
        "Unsupported parameters for (protocol_stub) module: alpha, zeta. Supported parameters include: change, count, fail, items, name (hostname), password, path, state.",
    );
}

// ---------------------------------------------------------------------------------------------
// The whole path, with the stub

#[test]
fn args_file_as_ansible_passes_it() {
    let r = with_file(
        &stub(),
        br#"{"name": "tartanpion", "count": "7", "items": "a,b"}"#,
    );
    assert_eq!(r.code, 0);
    assert_eq!(r.json["failed"], json!(false));
    assert_eq!(r.json["changed"], json!(false));
    assert_eq!(r.json["msg"], json!("stub ran"));
    assert_eq!(r.json["seen_name"], json!("tartanpion"));
    assert_eq!(r.json["seen_count"], json!(7));
    assert_eq!(r.json["seen_items"], json!(["a", "b"]));
    assert_eq!(r.json["warnings"], json!(["count is only echoed"]));
    assert_eq!(
        r.json["invocation"]["module_args"],
        json!({"name": "tartanpion", "change": false, "fail": false, "count": 7,
               "items": ["a", "b"], "path": "/etc/hosts", "password": null, "state": "present"})
    );
}

#[test]
fn stdin_with_dash_and_without_argument() {
    for args in [&["-"][..], &[][..]] {
        let r = with_stdin(&stub(), args, br#"{"hostname": "bismuth"}"#);
        assert_eq!(r.code, 0, "{}", r.json);
        assert_eq!(r.json["seen_name"], json!("bismuth"), "alias resolved");
        assert!(
            r.json.get("warnings").is_none(),
            "no warnings key when none"
        );
    }
}

#[test]
fn ansible_219_internal_keys_and_check_mode() {
    let args = json!({
        "name": "x",
        "change": true,
        "_ansible_check_mode": true,
        "_ansible_no_log": false,
        "_ansible_debug": false,
        "_ansible_diff": false,
        "_ansible_verbosity": 0,
        "_ansible_version": "2.19.14",
        "_ansible_module_name": "protocol_stub",
        "_ansible_syslog_facility": "LOG_USER",
        "_ansible_selinux_special_fs": ["fuse", "nfs", "vboxsf", "ramfs", "9p", "vfat"],
        "_ansible_string_conversion_action": "warn",
        "_ansible_socket": null,
        "_ansible_shell_executable": "/bin/sh",
        "_ansible_keep_remote_files": false,
        "_ansible_tmpdir": "/root/.ansible/tmp/ansible-tmp-1-2-3/",
        "_ansible_remote_tmp": "~/.ansible/tmp",
        "_ansible_ignore_unknown_opts": false,
        "_ansible_target_log_info": null,
        "_ansible_tracebacks_for": []
    });
    let r = with_file(&stub(), args.to_string().as_bytes());
    assert_eq!(r.code, 0, "{}", r.json);
    assert_eq!(r.json["seen_check_mode"], json!(true));
    assert_eq!(r.json["seen_diff"], json!(false));
    assert_eq!(r.json["changed"], json!(true));
    assert!(r.json.get("diff").is_none(), "diff mode off");
    assert!(!r.json["invocation"]["module_args"]
        .as_object()
        .unwrap()
        .keys()
        .any(|k| k.starts_with("_ansible")));
}

#[test]
fn diff_mode_shows_diff_only_when_changed() {
    let r = with_stdin(
        &stub(),
        &[],
        br#"{"name": "x", "change": true, "_ansible_diff": true}"#,
    );
    assert_eq!(
        r.json["diff"],
        json!({"before": "old\n", "after": "new\n", "before_header": "stub (before)", "after_header": "stub (after)"})
    );
    let r = with_stdin(
        &stub(),
        &[],
        br#"{"name": "x", "change": false, "_ansible_diff": true}"#,
    );
    assert!(r.json.get("diff").is_none());
}

#[test]
fn no_log_masks_values() {
    let r = with_stdin(&stub(), &[], br#"{"name": "x", "password": "hunter2"}"#);
    assert_eq!(
        r.json["invocation"]["module_args"]["password"],
        json!("********")
    );
    assert_eq!(r.json["invocation"]["module_args"]["name"], json!("x"));
    let r = with_stdin(
        &stub(),
        &[],
        br#"{"name": "secret-host", "password": "hunter2", "_ansible_no_log": true}"#,
    );
    let text = r.json["invocation"].to_string();
    assert!(
        !text.contains("hunter2") && !text.contains("secret-host"),
        "{text}"
    );
    assert_eq!(
        r.json["invocation"]["module_args"]["name"],
        json!("********")
    );
}

#[test]
fn logic_failure_exits_1_with_extra_keys() {
    let r = with_stdin(&stub(), &[], br#"{"name": "x", "fail": "yes"}"#);
    assert_failed(&r, "stub asked to fail");
    assert_eq!(r.json["rc"], json!(3));
    assert_eq!(r.json["changed"], json!(false));
    assert!(r.json["invocation"]["module_args"].is_object());
}

#[test]
fn validation_failures_exit_1() {
    let s = stub();
    assert_failed(
        &with_stdin(&s, &[], b"{}"),
        "missing required arguments: name",
    );
    assert_failed(
        &with_stdin(&s, &[], br#"{"name": "x", "state": "gone"}"#),
        "value of state must be one of: present, absent, got: gone",
    );
    assert_failed(
        &with_stdin(&s, &[], br#"{"name": "x", "count": "many"}"#),
        "argument 'count' is of type str and we were unable to convert to int: \"'many'\" cannot be converted to an int",
    );
    assert_failed(
        &with_stdin(&s, &[], br#"{"name": "x", "change": "perhaps"}"#),
        "argument 'change' is of type str and we were unable to convert to bool: The value 'perhaps' is not a valid boolean.",
    );
}

#[test]
fn nan_inside_a_string_is_fine() {
    let r = with_stdin(&stub(), &[], br#"{"name": "NaN Infinity"}"#);
    assert_eq!(r.code, 0);
    assert_eq!(r.json["seen_name"], json!("NaN Infinity"));
}

// ---------------------------------------------------------------------------------------------
// Numeric ranges declared in the real modules' specs

#[test]
fn every_timeout_is_range_checked_before_anything_runs() {
    for (name, bin, min) in [
        ("pvecm_cluster", env!("CARGO_BIN_EXE_pvecm_cluster"), 1),
        ("cman_two_node", env!("CARGO_BIN_EXE_cman_two_node"), 0),
        ("fuse_recover", env!("CARGO_BIN_EXE_fuse_recover"), 0),
    ] {
        let bin = PathBuf::from(bin);
        // state=info for pvecm_cluster: it used to accept any timeout there.
        for bad in [min - 1, 86_401] {
            let mut args = json!({"timeout": bad, "_ansible_check_mode": true});
            if name == "pvecm_cluster" {
                args["state"] = json!("info");
            }
            let r = with_file(&bin, args.to_string().as_bytes());
            assert_eq!(
                r.json["msg"],
                json!(format!(
                    "timeout must be between {min} and 86400, got {bad}"
                )),
                "{name}: {}",
                r.json
            );
            assert_eq!(r.json["changed"], json!(false));
        }
    }
}

#[test]
fn an_invalid_check_mode_flag_stops_every_module_before_it_acts() {
    for (name, bin) in bins() {
        for bad in [json!("maybe"), json!(2), json!([true])] {
            let args = json!({"_ansible_check_mode": bad, "name": "x", "change": true});
            let r = with_file(&bin, args.to_string().as_bytes());
            assert_failed(&r, "argument '_ansible_check_mode' is of type ");
            assert_eq!(r.json["changed"], json!(false), "{name}");
            assert!(r.json.get("seen_check_mode").is_none(), "{name}: logic ran");
        }
    }
}

#[test]
fn a_huge_input_is_never_echoed_whole() {
    let huge = "y".repeat(1 << 20);
    for (name, bin) in bins() {
        for args in [
            json!({ huge.clone(): 1 }),
            json!({ "_ansible_check_mode": huge }),
            json!({ "_ansible_verbosity": huge }),
        ] {
            let text = args.to_string();
            let r = with_file(&bin, text.as_bytes());
            let out = r.json.to_string();
            assert_eq!(r.json["failed"], json!(true), "{name}");
            assert!(out.len() < 4096, "{name}: {} bytes out", out.len());
            // (A module with required parameters reports those first, before unknown keys.)
            let msg = r.json["msg"].as_str().unwrap();
            assert!(
                msg.contains(&format!("({} characters in all)", 1 << 20))
                    || msg.starts_with("missing required arguments")
                    || msg.contains("all of the following are missing"),
                "{name}: {out:.300}"
            );
        }
    }
}
