//! hosts_pin end to end through the real ansible-playbook from the project's venv (connection
//! local): --check --diff writes nothing and shows the diff, the real run changes, the next run
//! reports changed=0, a failing task shows the module's msg, and ansible-doc shows the doc.

mod common;

use common::{ansible_bin, ansible_cmd, ansible_library, TempDir};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_hosts_pin");

const BEFORE: &str = "127.0.0.1   localhost.localdomain localhost\n87.37.23.91 tartanpion.elao.local tartanpion\n76.32.45.12 bismuth.elao.local bismuth\n";
const AFTER: &str = "127.0.0.1   localhost.localdomain localhost\n87.37.23.91 tartanpion.elao.local\n76.32.45.12 bismuth.elao.local\n172.16.0.1  tartanpion\n172.16.0.2  bismuth\n";

const PLAYBOOK: &str = r#"- hosts: localhost
  gather_facts: false
  tasks:
    - name: Pin tartanpion to its private address
      hosts_pin:
        path: "{{ hosts_file }}"
        hostname: tartanpion
        ip: 172.16.0.1
    - name: Pin bismuth to its private address
      hosts_pin:
        path: "{{ hosts_file }}"
        name: bismuth
        ip: 172.16.0.2
      register: bismuth
    - name: Show what bismuth resolves to
      debug:
        msg: "bismuth resolves_to={{ bismuth.resolves_to }}"
"#;

const FAILING: &str = r#"- hosts: localhost
  gather_facts: false
  tasks:
    - name: Pin to an invalid address
      hosts_pin:
        path: "{{ hosts_file }}"
        hostname: tartanpion
        ip: 172.16.0.300
"#;

struct Env {
    dir: TempDir,
    bin: std::path::PathBuf,
    lib: std::path::PathBuf,
}

impl Env {
    fn cmd(&self, tool: &str) -> Command {
        ansible_cmd(&self.bin, tool, &self.dir, &self.lib)
    }
    fn playbook(&self, name: &str, extra: &[&str]) -> (Output, String) {
        let mut c = self.cmd("ansible-playbook");
        c.arg("-i")
            .arg(self.dir.join("inventory.ini"))
            .arg("-e")
            .arg(format!("hosts_file={}", self.dir.join("hosts").display()))
            .args(extra)
            .arg(self.dir.join(name));
        let out = c.output().expect("run ansible-playbook");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out, text)
    }
    fn hosts(&self) -> String {
        fs::read_to_string(self.dir.join("hosts")).unwrap()
    }
}

fn setup() -> Option<Env> {
    let bin = ansible_bin()?;
    let dir = TempDir::new("hp-ansible");
    let lib = ansible_library(&dir, &[("hosts_pin", BIN)]);
    dir.write("inventory.ini", "localhost ansible_connection=local\n");
    dir.write("site.yml", PLAYBOOK);
    dir.write("failing.yml", FAILING);
    dir.write("hosts", BEFORE);
    Some(Env { dir, bin, lib })
}

/// The PLAY RECAP line for localhost.
fn recap(text: &str) -> &str {
    text.lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .find(|l| l.starts_with("localhost"))
        .unwrap_or("")
}

#[test]
fn playbook_check_diff_then_real_then_idempotent() {
    let Some(env) = setup() else { return };

    let (out, text) = env.playbook("site.yml", &["--check", "--diff"]);
    assert!(out.status.success(), "{text}");
    assert_eq!(env.hosts(), BEFORE, "--check wrote the file:\n{text}");
    assert!(recap(&text).contains("changed=2"), "{text}");
    assert!(text.contains("+172.16.0.1  tartanpion"), "{text}");
    assert!(
        text.contains("-87.37.23.91 tartanpion.elao.local tartanpion"),
        "{text}"
    );
    assert!(
        text.contains("+87.37.23.91 tartanpion.elao.local"),
        "{text}"
    );
    assert!(text.contains("+172.16.0.2  bismuth"), "{text}");

    let (out, text) = env.playbook("site.yml", &[]);
    assert!(out.status.success(), "{text}");
    assert_eq!(env.hosts(), AFTER, "{text}");
    assert!(recap(&text).contains("changed=2"), "{text}");
    assert!(recap(&text).contains("failed=0"), "{text}");
    assert!(text.contains("bismuth resolves_to=172.16.0.2"), "{text}");

    let (out, text) = env.playbook("site.yml", &["--diff"]);
    assert!(out.status.success(), "{text}");
    assert_eq!(env.hosts(), AFTER);
    assert!(recap(&text).contains("changed=0"), "{text}");
    assert!(
        !text.contains("+172.16.0.1"),
        "a diff on an unchanged run:\n{text}"
    );
}

#[test]
fn failing_task_shows_the_module_msg() {
    let Some(env) = setup() else { return };
    let (out, text) = env.playbook("failing.yml", &[]);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("ip '172.16.0.300' is not a valid IPv4 or IPv6 address"),
        "{text}"
    );
    assert!(recap(&text).contains("failed=1"), "{text}");
    assert_eq!(env.hosts(), BEFORE);
}

#[test]
fn ansible_doc_shows_the_sidecar() {
    let Some(env) = setup() else { return };
    let out = env
        .cmd("ansible-doc")
        .arg("-M")
        .arg(&env.lib)
        .arg("hosts_pin")
        .output()
        .expect("run ansible-doc");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("hosts_pin"), "{text}");
    // Distinctive strings from DOCUMENTATION, EXAMPLES and RETURN (ansible-doc wraps lines).
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for s in [
        "first non-comment line naming the host wins",
        "Pin the node name to its private cluster address",
        "resolves_to",
        "removed_from",
    ] {
        assert!(flat.contains(s), "ansible-doc lacks {s:?}:\n{text}");
    }
    assert!(Path::new(&env.lib).join("hosts_pin.yml").exists());
}
