//! Helpers shared by the integration tests: temp dirs, running a module binary with an args
//! file or stdin, and running the real ansible-playbook from the project's venv.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary directory removed on drop (also when the test fails).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let base = std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/tmp".into());
        let p = base.join(format!(
            "pve2node-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, content).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The result of one module run.
pub struct Run {
    pub json: Value,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn failed(&self) -> bool {
        self.json["failed"] == Value::Bool(true)
    }
    pub fn changed(&self) -> bool {
        self.json["changed"] == Value::Bool(true)
    }
    pub fn msg(&self) -> &str {
        self.json["msg"].as_str().unwrap_or("")
    }
}

fn finish(out: std::process::Output) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("module stdout is not one JSON object ({e}): {stdout:?} stderr={stderr:?}")
    });
    Run {
        json,
        code: out.status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// Runs module binary `bin` (a path from `env!("CARGO_BIN_EXE_<name>")`) the way Ansible
/// does: with an args file.
pub fn run_module(bin: &str, args: &Value) -> Run {
    let dir = TempDir::new("args");
    let f = dir.write("args", serde_json::to_vec(args).unwrap());
    let out = assert_cmd::Command::new(bin)
        .arg(&f)
        .output()
        .expect("run module");
    finish(out)
}

/// Runs module binary `bin` with the JSON text on stdin (manual use).
pub fn run_module_stdin(bin: &str, text: &str) -> Run {
    let out = assert_cmd::Command::new(bin)
        .write_stdin(text)
        .output()
        .expect("run module");
    finish(out)
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's bin dir holding ansible-playbook, or None (the test is skipped) unless
/// PVE2NODE_E2E=1 (set by scripts/test.sh and CI), where a missing ansible fails the test.
pub fn ansible_bin() -> Option<PathBuf> {
    let venv = std::env::var_os("PVE2NODE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"));
    let bin = venv.join("bin");
    if bin.join("ansible-playbook").exists() {
        return Some(bin);
    }
    pve2node::testing::skip(&format!(
        "ansible-playbook not found in {}; run scripts/setup.sh",
        bin.display()
    ));
    None
}

/// A directory holding the freshly built module binaries (debug build of this `cargo test`)
/// and their sidecar docs, as ansible's library path. `bins` are (name, CARGO_BIN_EXE path).
pub fn ansible_library(dir: &TempDir, bins: &[(&str, &str)]) -> PathBuf {
    let lib = dir.join("library");
    std::fs::create_dir_all(&lib).unwrap();
    for (name, exe) in bins {
        std::fs::copy(exe, lib.join(name)).unwrap();
        let doc = repo_root()
            .join("modules")
            .join(name)
            .join(format!("{name}.yml"));
        if doc.exists() {
            std::fs::copy(doc, lib.join(format!("{name}.yml"))).unwrap();
        }
    }
    lib
}

/// A Command for an ansible tool (`ansible-playbook`, `ansible-doc`, …) from the venv, with
/// ANSIBLE_HOME and temp dirs inside `dir`, so nothing is written to the host's home.
pub fn ansible_cmd(bin: &Path, tool: &str, dir: &TempDir, library: &Path) -> Command {
    let mut c = Command::new(bin.join(tool));
    let home = dir.join("ansible-home");
    c.env("ANSIBLE_HOME", &home)
        .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
        .env("ANSIBLE_REMOTE_TEMP", home.join("remote-tmp"))
        .env("ANSIBLE_LIBRARY", library)
        .env("ANSIBLE_CONFIG", repo_root().join("tests/ansible-test.cfg"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("ANSIBLE_PYTHON_INTERPRETER", "auto_silent")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    c
}

/// Runs `ansible-doc -M <lib> <name>` on the freshly built module `name` (binary `exe`) with
/// its sidecar doc, asserts it succeeded, and returns its stdout with whitespace collapsed
/// (ansible-doc wraps lines). None when ansible is not installed (see [`ansible_bin`]).
pub fn ansible_doc(name: &str, exe: &str) -> Option<String> {
    let bin = ansible_bin()?;
    let dir = TempDir::new("doc");
    let lib = ansible_library(&dir, &[(name, exe)]);
    let out = ansible_cmd(&bin, "ansible-doc", &dir, &lib)
        .arg("-M")
        .arg(&lib)
        .arg(name)
        .output()
        .expect("run ansible-doc");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ansible-doc {name} failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}
