//! Build-time guard: every directory under modules/ must be a module the build makes, so a
//! module added without its `[[bin]]` (or without its ansible-doc sidecar) fails the build
//! instead of silently producing nothing. Reads Cargo.toml as text: no extra crate.
//!
//! It reruns only when Cargo.toml changes: watching modules/ would make cargo rescan it and
//! rebuild the library and every binary after any edit of any module. A fresh build (CI,
//! scripts/test.sh on a new machine) always runs it; tests/guard.rs checks the same in every
//! test run, and scripts/build.sh refuses a module directory without a built binary.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=Cargo.toml");
    let toml = std::fs::read_to_string("Cargo.toml").expect("read Cargo.toml");
    let mut errors = Vec::new();
    let mut dirs: Vec<String> = std::fs::read_dir("modules")
        .expect("read modules/")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    for name in &dirs {
        let main = format!("path = \"modules/{name}/main.rs\"");
        let bin = format!("name = \"{name}\"");
        let declared = toml.split("[[bin]]").skip(1).any(|b| {
            let b = b.split("\n[").next().unwrap_or("");
            b.contains(&main) && b.contains(&bin)
        });
        if !declared {
            errors.push(format!(
                "modules/{name}/ has no [[bin]] in Cargo.toml: add\n\n[[bin]]\nname = \"{name}\"\npath = \"modules/{name}/main.rs\"\n"
            ));
        }
        for file in ["main.rs".to_string(), format!("{name}.yml")] {
            if !Path::new("modules").join(name).join(&file).is_file() {
                errors.push(format!("modules/{name}/{file} is missing"));
            }
        }
    }
    if !errors.is_empty() {
        eprintln!(
            "every directory under modules/ must be a module (see \"Adding a module\" in library/protocol.rs):\n{}",
            errors.join("\n")
        );
        std::process::exit(1);
    }
}
