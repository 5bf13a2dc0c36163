//! Guard tests: the house rules a new module must follow, checked on every module directory,
//! the way ansible-test's validate-modules keeps docs and argspec together.
//!
//! - every `modules/<name>/` has a `[[bin]]` in Cargo.toml, a `main.rs`, a `<name>.yml`, a row
//!   in README.md's module table and a place in tests/protocol.rs's `MODULES` (so the input-error
//!   tests run on it); every `[[bin]]` is such a directory;
//! - each `<name>.yml`'s options, as `ansible-doc -j` reads them, equal the module's `Spec`, as
//!   the binary prints it with the hidden `--pve2node-spec` flag: name, type, elements, default,
//!   choices, aliases, required; and the doc's `check_mode` attribute agrees with
//!   `supports_check_mode`.
mod common;

use common::TempDir;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    common::repo_root()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The names of the directories under modules/, sorted.
fn module_dirs() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("modules"))
        .expect("read modules/")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The `[[bin]]` tables of Cargo.toml as (name, path), read as text (no TOML crate).
fn cargo_bins() -> Vec<(String, String)> {
    let toml = read("Cargo.toml");
    let field = |block: &str, key: &str| -> String {
        block
            .lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    toml.split("[[bin]]")
        .skip(1)
        .map(|b| b.split("\n[").next().unwrap_or(""))
        .map(|b| (field(b, "name"), field(b, "path")))
        .collect()
}

#[test]
fn every_module_directory_is_built_documented_and_listed() {
    let dirs = module_dirs();
    assert!(dirs.len() >= 4, "modules/ lists {dirs:?}");
    let bins = cargo_bins();
    let readme = read("README.md");
    let protocol_tests = read("tests/protocol.rs");
    let mut problems = Vec::new();
    for name in &dirs {
        let want = format!("modules/{name}/main.rs");
        if !bins.iter().any(|(n, p)| n == name && *p == want) {
            problems.push(format!(
                "Cargo.toml has no [[bin]] name = \"{name}\", path = \"{want}\""
            ));
        }
        for file in ["main.rs".to_string(), format!("{name}.yml")] {
            if !root().join("modules").join(name).join(&file).is_file() {
                problems.push(format!("modules/{name}/{file} is missing"));
            }
        }
        if !readme
            .lines()
            .any(|l| l.starts_with(&format!("| `pve2node.cluster.{name}` |")))
        {
            problems.push(format!(
                "README.md's module table has no row \"| `pve2node.cluster.{name}` | what it does |\""
            ));
        }
        if !protocol_tests.contains(&format!("env!(\"CARGO_BIN_EXE_{name}\")")) {
            problems.push(format!(
                "tests/protocol.rs MODULES does not list (\"{name}\", env!(\"CARGO_BIN_EXE_{name}\"))"
            ));
        }
    }
    for (name, path) in &bins {
        if !dirs.contains(name) || *path != format!("modules/{name}/main.rs") {
            problems.push(format!(
                "[[bin]] {name} ({path}) is not a module directory modules/{name}/main.rs"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The debug binary cargo built for this test run (all [[bin]]s are built before integration
/// tests run): target/<profile>/<name>.
fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let profile = exe.parent().and_then(Path::parent).expect("target dir");
    profile.join(name)
}

/// `<binary> --pve2node-spec`.
fn spec_of(name: &str) -> Value {
    let bin = built(name);
    let out = std::process::Command::new(&bin)
        .arg("--pve2node-spec")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    assert!(out.status.success(), "{name} --pve2node-spec failed");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name} spec: {e}"))
}

#[test]
fn the_spec_flag_prints_the_spec_and_never_runs_the_module() {
    let spec = spec_of("hosts_pin");
    assert_eq!(spec["module"], json!("hosts_pin"));
    assert!(spec["options"]["hostname"].is_object(), "{spec}");
    // As the only argument only: with another word after it, it is an args file path.
    let out = std::process::Command::new(built("hosts_pin"))
        .args(["--pve2node-spec", "x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"failed\":true"));
    // An args file whose content is the flag is JSON that does not parse, nothing else.
    let dir = TempDir::new("guard-flag");
    let f = dir.write("args", "--pve2node-spec");
    let out = std::process::Command::new(built("hosts_pin"))
        .arg(&f)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["failed"], json!(true), "{v}");
    assert!(v.get("options").is_none(), "{v}");
}

/// One option as the doc states it, with ansible-doc's implicit defaults made explicit.
fn doc_option(o: &Value) -> Value {
    let or = |k: &str, d: Value| o.get(k).cloned().unwrap_or(d);
    json!({
        "type": or("type", json!("str")),
        "elements": or("elements", Value::Null),
        "required": or("required", json!(false)),
        "default": or("default", Value::Null),
        "choices": or("choices", json!([])),
        "aliases": or("aliases", json!([])),
    })
}

/// The same fields from the spec.
fn spec_option(o: &Value) -> Value {
    json!({
        "type": o["type"],
        "elements": o.get("elements").cloned().unwrap_or(Value::Null),
        "required": o["required"],
        "default": o["default"],
        "choices": o["choices"],
        "aliases": o["aliases"],
    })
}

/// Every difference between a module's doc and its spec, one line each.
fn drift(name: &str, doc: &Value, spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let doc_opts = doc["options"].as_object().unwrap_or(&empty);
    let spec_opts = spec["options"].as_object().expect("spec options");
    for (opt, s) in spec_opts {
        let Some(d) = doc_opts.get(opt) else {
            out.push(format!(
                "{name}: option {opt} is in the spec but not in {name}.yml"
            ));
            continue;
        };
        let (d, s) = (doc_option(d), spec_option(s));
        for field in [
            "type", "elements", "required", "default", "choices", "aliases",
        ] {
            if d[field] != s[field] {
                out.push(format!(
                    "{name}: option {opt}: {field} is {} in {name}.yml but {} in the spec",
                    d[field], s[field]
                ));
            }
        }
    }
    for opt in doc_opts.keys() {
        if !spec_opts.contains_key(opt) {
            out.push(format!(
                "{name}: option {opt} is in {name}.yml but not in the spec"
            ));
        }
    }
    // attributes.check_mode.support: none <=> the module does not support check mode.
    if let Some(support) = doc["attributes"]["check_mode"]["support"].as_str() {
        let supports = spec["supports_check_mode"] == json!(true);
        if (support == "none") == supports {
            out.push(format!(
                "{name}: attributes.check_mode.support is {support} but supports_check_mode is {supports}"
            ));
        }
    }
    // A default the module itself would refuse.
    for (opt, s) in spec_opts {
        if let (Some(d), Some([lo, hi])) = (
            s["default"].as_i64(),
            s["range"].as_array().map(Vec::as_slice),
        ) {
            if d < lo.as_i64().unwrap() || d > hi.as_i64().unwrap() {
                out.push(format!(
                    "{name}: option {opt}: default {d} is outside its range"
                ));
            }
        }
        if let (Some(d), Some(c)) = (s["default"].as_str(), s["choices"].as_array()) {
            if !c.is_empty() && !c.contains(&json!(d)) {
                out.push(format!(
                    "{name}: option {opt}: default {d} is not one of its choices"
                ));
            }
        }
    }
    out
}

#[test]
fn drift_finds_every_kind_of_difference() {
    let spec = json!({"supports_check_mode": true, "options": {
        "a": {"type": "int", "required": false, "default": 99, "choices": [], "aliases": [], "range": [0, 10]},
        "b": {"type": "list", "elements": "str", "required": true, "default": null, "choices": [], "aliases": ["bb"]},
        "c": {"type": "str", "required": false, "default": "x", "choices": ["y"], "aliases": []},
        "gone": {"type": "str", "required": false, "default": null, "choices": [], "aliases": []},
    }});
    let doc = json!({"attributes": {"check_mode": {"support": "none"}}, "options": {
        "a": {"type": "int", "default": 99},
        "b": {"type": "list", "elements": "int", "aliases": ["bb"]},
        "c": {"default": "x", "choices": ["y"]},
        "extra": {"type": "bool"},
    }});
    let d = drift("m", &doc, &spec);
    let want = [
        "m: option b: elements is \"int\" in m.yml but \"str\" in the spec",
        "m: option b: required is false in m.yml but true in the spec",
        "m: option gone is in the spec but not in m.yml",
        "m: option extra is in m.yml but not in the spec",
        "m: attributes.check_mode.support is none but supports_check_mode is true",
        "m: option a: default 99 is outside its range",
        "m: option c: default x is not one of its choices",
    ];
    assert_eq!(d, want, "{d:#?}");
}

#[test]
fn every_module_doc_equals_its_spec() {
    let Some(bin) = common::ansible_bin() else {
        return;
    };
    let names = module_dirs();
    let dir = TempDir::new("guard-doc");
    let exes: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), built(n).display().to_string()))
        .collect();
    let pairs: Vec<(&str, &str)> = exes.iter().map(|(n, e)| (n.as_str(), e.as_str())).collect();
    let lib = common::ansible_library(&dir, &pairs);
    let out = common::ansible_cmd(&bin, "ansible-doc", &dir, &lib)
        .arg("-M")
        .arg(&lib)
        .arg("-j")
        .args(&names)
        .output()
        .expect("run ansible-doc");
    assert!(
        out.status.success(),
        "ansible-doc -j failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Value = serde_json::from_slice(&out.stdout).expect("ansible-doc -j prints JSON");
    let mut problems = Vec::new();
    for name in &names {
        let doc = &docs[name.as_str()]["doc"];
        assert!(
            doc.is_object(),
            "ansible-doc has no doc for {name}: {docs:.300}"
        );
        assert_eq!(
            doc["module"],
            json!(name),
            "{name}.yml names another module"
        );
        let spec = spec_of(name);
        assert_eq!(spec["module"], json!(name), "{name}'s Spec.module");
        problems.extend(drift(name, doc, &spec));
    }
    assert!(
        problems.is_empty(),
        "docs and specs differ:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_timeout_declares_its_range() {
    let mut problems = Vec::new();
    for name in module_dirs() {
        let spec = spec_of(&name);
        for (opt, o) in spec["options"].as_object().expect("options") {
            if o["type"] == json!("int") && opt.contains("timeout") && o["range"].is_null() {
                problems.push(format!(
                    "{name}: option {opt} has no .range(min, max) in its Param"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
