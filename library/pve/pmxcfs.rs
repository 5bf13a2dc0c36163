//! What a node's /etc/pve says about itself: whether it takes writes (pmxcfs quorum) and the
//! config-version drift between the cluster's corosync.conf and the node's own copy. Shared by
//! the modules' `state: info`.
use std::path::Path;

/// Whether `dir` (/etc/pve) takes writes, and how that was seen: `.members`' cluster.quorate,
/// else the mode of the `local` symlink (pmxcfs shows 0777 only when quorate), else access(2);
/// `(None, "missing")` when the directory is not there.
pub fn writable(dir: &Path) -> (Option<bool>, &'static str) {
    if let Ok(t) = std::fs::read_to_string(dir.join(".members")) {
        if let Some(q) = serde_json::from_str::<serde_json::Value>(&t)
            .ok()
            .and_then(|v| v.get("cluster").and_then(|c| c.get("quorate")).cloned())
        {
            return (
                Some(q.as_i64() == Some(1) || q == serde_json::Value::Bool(true)),
                ".members",
            );
        }
    }
    if let Ok(m) = std::fs::symlink_metadata(dir.join("local")) {
        if m.file_type().is_symlink() {
            use std::os::unix::fs::PermissionsExt;
            return (Some(m.permissions().mode() & 0o222 != 0), "local symlink");
        }
    }
    if dir.is_dir() {
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap_or_default();
        // SAFETY: access reads a NUL-terminated path we own.
        let w = unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0;
        return (Some(w), "directory");
    }
    (None, "missing")
}

/// config_version (as pmxcfs reads it) of the shared corosync.conf and of the local copy, and
/// whether they differ (a missing or unreadable file counts as None).
pub fn corosync_drift(shared: &Path, local: &Path) -> serde_json::Value {
    let v = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| super::corosync_conf::pmxcfs_config_version(&t))
    };
    let (s, l) = (v(shared), v(local));
    serde_json::json!({
        "shared": {"path": shared.display().to_string(), "version": s},
        "local": {"path": local.display().to_string(), "version": l},
        "drift": s != l,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_from_members_then_directory_then_missing() {
        let d = std::env::temp_dir().join(format!("pve2node-pmxcfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(writable(&d), (None, "missing"));
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(writable(&d).1, "directory");
        std::fs::write(d.join(".members"), r#"{"cluster": {"quorate": 0}}"#).unwrap();
        assert_eq!(writable(&d), (Some(false), ".members"));
        std::fs::write(d.join(".members"), r#"{"cluster": {"quorate": 1}}"#).unwrap();
        assert_eq!(writable(&d), (Some(true), ".members"));
        let (a, b) = (d.join("a.conf"), d.join("b.conf"));
        std::fs::write(&a, "totem {\n  config_version: 4\n}\n").unwrap();
        std::fs::write(&b, "totem {\n  config_version: 3\n}\n").unwrap();
        let j = corosync_drift(&a, &b);
        assert_eq!(
            (
                j["drift"].as_bool(),
                j["shared"]["version"].as_u64(),
                j["local"]["version"].as_u64()
            ),
            (Some(true), Some(4), Some(3))
        );
        std::fs::write(&b, "totem {\n  config_version: 4\n}\n").unwrap();
        assert_eq!(corosync_drift(&a, &b)["drift"], false);
        assert_eq!(corosync_drift(&a, &d.join("none"))["drift"], true);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
