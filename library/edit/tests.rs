//! Unit tests of safe file editing and of the unified diff.
use super::*;
use crate::testing::Rng;
use std::os::unix::fs::symlink;

/// A temporary directory removed on drop (also when the test fails).
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "pve2node-edit-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.join(name);
        fs::write(&p, content).unwrap();
        p
    }
    /// The names in the directory, sorted.
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

const BEFORE: &str = "127.0.0.1   localhost\n87.37.23.91 tartanpion.elao.local tartanpion\n";
const AFTER: &str =
    "127.0.0.1   localhost\n87.37.23.91 tartanpion.elao.local\n172.16.0.1  tartanpion\n";

fn apply_real(path: &Path, before: &str, after: &str) -> Applied {
    apply(path, before, after, false, false, TempStyle::Hidden).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Atomic write

#[test]
fn write_changes_bytes_and_leaves_no_temp_file() {
    let t = Tmp::new("write");
    let f = t.write("hosts", BEFORE.as_bytes());
    let r = apply_real(&f, BEFORE, AFTER);
    assert_eq!(
        r,
        Applied {
            changed: true,
            backup_file: None
        }
    );
    assert_eq!(fs::read_to_string(&f).unwrap(), AFTER);
    assert_eq!(t.names(), vec!["hosts"]);
}

#[test]
fn write_replaces_the_inode_atomically() {
    // A reader holding the old file keeps seeing the old content: the new file was renamed in.
    let t = Tmp::new("inode");
    let f = t.write("hosts", BEFORE.as_bytes());
    let old_ino = fs::metadata(&f).unwrap().ino();
    apply_real(&f, BEFORE, AFTER);
    assert_ne!(fs::metadata(&f).unwrap().ino(), old_ino);
}

#[test]
fn write_keeps_mode_0600() {
    let t = Tmp::new("mode");
    let f = t.write("secret", BEFORE.as_bytes());
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    apply_real(&f, BEFORE, AFTER);
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o600);
    // And an unusual one the umask would strip.
    fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
    apply_real(&f, AFTER, BEFORE);
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o666);
}

#[test]
fn write_keeps_owner() {
    let t = Tmp::new("owner");
    let f = t.write("hosts", BEFORE.as_bytes());
    let (uid, gid) = if is_root() {
        std::os::unix::fs::chown(&f, Some(1234), Some(5678)).unwrap();
        (1234, 5678)
    } else {
        let m = fs::metadata(&f).unwrap();
        (m.uid(), m.gid())
    };
    apply_real(&f, BEFORE, AFTER);
    let m = fs::metadata(&f).unwrap();
    assert_eq!((m.uid(), m.gid()), (uid, gid));
    assert_eq!(fs::read_to_string(&f).unwrap(), AFTER);
}

#[test]
fn new_file_through_a_missing_path_is_created() {
    let t = Tmp::new("create");
    let f = t.join("new");
    let r = apply(&f, "", "x\n", false, true, TempStyle::Hidden).unwrap();
    assert!(r.changed);
    assert_eq!(r.backup_file, None, "nothing to back up");
    assert_eq!(fs::read_to_string(&f).unwrap(), "x\n");
    assert_eq!(t.names(), vec!["new"]);
}

#[test]
fn stale_hidden_temp_file_does_not_block_the_write() {
    let t = Tmp::new("stale");
    let f = t.write("hosts", BEFORE.as_bytes());
    t.write(&format!(".hosts.{}.tmp", std::process::id()), b"junk");
    apply_real(&f, BEFORE, AFTER);
    assert_eq!(fs::read_to_string(&f).unwrap(), AFTER);
    assert_eq!(t.names(), vec!["hosts"]);
}

#[test]
fn dot_new_style_leaves_no_new_file() {
    let t = Tmp::new("dotnew");
    let f = t.write("corosync.conf", BEFORE.as_bytes());
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    let r = apply(&f, BEFORE, AFTER, false, false, TempStyle::DotNew).unwrap();
    assert!(r.changed);
    assert_eq!(fs::read_to_string(&f).unwrap(), AFTER);
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o640);
    assert_eq!(t.names(), vec!["corosync.conf"]);
    // A leftover .new from an interrupted edit is replaced, not an error.
    t.write("corosync.conf.new", b"half-written");
    apply(&f, AFTER, BEFORE, false, false, TempStyle::DotNew).unwrap();
    assert_eq!(fs::read_to_string(&f).unwrap(), BEFORE);
    assert_eq!(t.names(), vec!["corosync.conf"]);
}

#[test]
fn check_mode_writes_nothing() {
    let t = Tmp::new("check");
    let f = t.write("hosts", BEFORE.as_bytes());
    let ino = fs::metadata(&f).unwrap().ino();
    let r = apply(&f, BEFORE, AFTER, true, true, TempStyle::Hidden).unwrap();
    assert_eq!(
        r,
        Applied {
            changed: true,
            backup_file: None
        }
    );
    assert_eq!(fs::read_to_string(&f).unwrap(), BEFORE);
    assert_eq!(fs::metadata(&f).unwrap().ino(), ino);
    assert_eq!(t.names(), vec!["hosts"], "no backup, no temp file");
    // Check mode on a missing file creates nothing.
    let g = t.join("missing");
    assert!(
        apply(&g, "", "x", true, false, TempStyle::DotNew)
            .unwrap()
            .changed
    );
    assert!(!g.exists());
}

#[test]
fn equal_text_writes_nothing() {
    let t = Tmp::new("equal");
    let f = t.write("hosts", BEFORE.as_bytes());
    let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(past)
        .unwrap();
    let m0 = fs::metadata(&f).unwrap();
    let r = apply(&f, BEFORE, BEFORE, false, true, TempStyle::Hidden).unwrap();
    assert_eq!(r, Applied::default());
    let m1 = fs::metadata(&f).unwrap();
    assert_eq!(m1.ino(), m0.ino());
    assert_eq!(m1.modified().unwrap(), past);
    assert_eq!(t.names(), vec!["hosts"], "no backup either");
}

// ---------------------------------------------------------------------------------------------
// Symlinks

#[test]
fn symlink_is_followed_and_stays_a_link() {
    let t = Tmp::new("link");
    let real = t.write("real", BEFORE.as_bytes());
    fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
    let link = t.join("hosts");
    symlink("real", &link).unwrap(); // relative
    assert_eq!(resolve(&link).unwrap(), t.join("real"));
    assert_eq!(read_text(&link).unwrap(), BEFORE);
    apply_real(&link, BEFORE, AFTER);
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(&link).unwrap(), PathBuf::from("real"));
    assert_eq!(fs::read_to_string(&real).unwrap(), AFTER);
    assert_eq!(fs::metadata(&real).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(t.names(), vec!["hosts", "real"]);
}

#[test]
fn symlink_chain_across_directories() {
    let t = Tmp::new("chain");
    fs::create_dir(t.join("etc")).unwrap();
    fs::create_dir(t.join("pve")).unwrap();
    let real = t.write("pve/corosync.conf", BEFORE.as_bytes());
    // etc/corosync.conf -> ../pve/mid (relative), pve/mid -> <abs>/pve/corosync.conf
    symlink(&real, t.join("pve/mid")).unwrap();
    symlink("../pve/mid", t.join("etc/corosync.conf")).unwrap();
    let link = t.join("etc/corosync.conf");
    assert_eq!(resolve(&link).unwrap(), real);
    let r = apply(&link, BEFORE, AFTER, false, true, TempStyle::Hidden).unwrap();
    assert_eq!(fs::read_to_string(&real).unwrap(), AFTER);
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::symlink_metadata(t.join("pve/mid"))
        .unwrap()
        .file_type()
        .is_symlink());
    // The backup sits beside the real file and holds the old bytes.
    let b = r.backup_file.expect("backup");
    assert_eq!(b.parent(), real.parent());
    assert_eq!(fs::read_to_string(&b).unwrap(), BEFORE);
}

#[test]
fn dangling_symlink_chain_creates_the_final_target() {
    let t = Tmp::new("dangling");
    symlink("b", t.join("a")).unwrap();
    symlink("c", t.join("b")).unwrap();
    let a = t.join("a");
    assert_eq!(resolve(&a).unwrap(), t.join("c"));
    assert_eq!(
        read_text(&a).unwrap_err(),
        EditError::NotFound(a.display().to_string())
    );
    apply_real(&a, "", "new\n");
    assert_eq!(fs::read_to_string(t.join("c")).unwrap(), "new\n");
    assert!(fs::symlink_metadata(&a).unwrap().file_type().is_symlink());
    assert!(fs::symlink_metadata(t.join("b"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn symlink_loop_is_refused_clearly() {
    let t = Tmp::new("loop");
    symlink("y", t.join("x")).unwrap();
    symlink("x", t.join("y")).unwrap();
    let x = t.join("x");
    let shown = x.display().to_string();
    assert_eq!(
        resolve(&x).unwrap_err(),
        EditError::SymlinkLoop(shown.clone())
    );
    assert_eq!(
        read_text(&x).unwrap_err(),
        EditError::SymlinkLoop(shown.clone())
    );
    assert_eq!(
        apply(&x, "", "z", false, false, TempStyle::Hidden).unwrap_err(),
        EditError::SymlinkLoop(shown.clone())
    );
    assert_eq!(
        EditError::SymlinkLoop(shown.clone()).to_string(),
        format!("{shown} has a symlink loop; point the path parameter at the real file")
    );
    assert_eq!(t.names(), vec!["x", "y"]);
    // A self loop too.
    symlink("self", t.join("self")).unwrap();
    assert!(matches!(
        resolve(&t.join("self")),
        Err(EditError::SymlinkLoop(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Backup

/// Checks `<file>.<pid>.YYYY-MM-DD@HH:MM:SS~`.
fn assert_backup_name(file: &Path, backup: &Path) {
    let name = backup.display().to_string();
    let prefix = format!("{}.{}.", file.display(), std::process::id());
    let stamp = name
        .strip_prefix(&prefix)
        .and_then(|s| s.strip_suffix('~'))
        .unwrap_or_else(|| panic!("{name} does not start with {prefix} and end with ~"));
    let b = stamp.as_bytes();
    assert_eq!(b.len(), 19, "{stamp}");
    for (i, c) in b.iter().enumerate() {
        let want = match i {
            4 | 7 => Some(b'-'),
            10 => Some(b'@'),
            13 | 16 => Some(b':'),
            _ => None,
        };
        match want {
            Some(w) => assert_eq!(*c, w, "{stamp}"),
            None => assert!(c.is_ascii_digit(), "{stamp}"),
        }
    }
    let year: u32 = stamp[..4].parse().unwrap();
    assert!(year >= 2024, "{stamp}");
}

#[test]
fn backup_has_ansible_name_and_identical_bytes() {
    let t = Tmp::new("backup");
    let content = "bytes \u{e9}\r\nwith\tno final newline";
    let f = t.write("hosts", content.as_bytes());
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    let r = apply(&f, content, AFTER, false, true, TempStyle::Hidden).unwrap();
    assert!(r.changed);
    let b = r.backup_file.expect("a backup file");
    assert_backup_name(&f, &b);
    assert_eq!(fs::read(&b).unwrap(), content.as_bytes());
    assert_eq!(
        fs::metadata(&b).unwrap().mode() & 0o7777,
        0o600,
        "same mode"
    );
    assert_eq!(fs::read_to_string(&f).unwrap(), AFTER);
    assert_eq!(t.names().len(), 2, "file and backup only: {:?}", t.names());
}

#[test]
fn backup_name_format() {
    let p = Path::new("/etc/hosts");
    assert_backup_name(p, &backup_name(p));
}

// ---------------------------------------------------------------------------------------------
// Read errors

#[test]
fn read_errors_name_the_file() {
    let t = Tmp::new("read");
    let missing = t.join("missing");
    let m = missing.display().to_string();
    assert_eq!(
        read_text(&missing).unwrap_err(),
        EditError::NotFound(m.clone())
    );
    assert_eq!(
        EditError::NotFound(m.clone()).to_string(),
        format!("{m} does not exist; check the path parameter")
    );
    let d = t.0.display().to_string();
    assert_eq!(read_text(&t.0).unwrap_err(), EditError::IsDir(d.clone()));
    assert_eq!(
        EditError::IsDir(d.clone()).to_string(),
        format!("{d} is a directory, not a file; point the path parameter at a file")
    );
    // A FIFO is refused before any read (which would block), and so is a device.
    let fifo = t.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    assert_eq!(
        read_text(&fifo).unwrap_err(),
        EditError::NotRegular(fifo.display().to_string())
    );
    assert!(matches!(
        read_bytes(Path::new("/dev/null")),
        Err(EditError::NotRegular(_))
    ));
    let bin = t.write("bin", b"abc\x00def\n");
    assert_eq!(
        read_text(&bin).unwrap_err(),
        EditError::NotText(bin.display().to_string())
    );
    let latin1 = t.write("latin1", b"caf\xe9\n");
    let e = read_text(&latin1).unwrap_err();
    assert_eq!(e, EditError::NotText(latin1.display().to_string()));
    assert_eq!(
        e.to_string(),
        format!(
            "{} is not valid UTF-8 text; refusing to edit it",
            latin1.display()
        )
    );
    // Read through a file used as a directory.
    let under = t.join("bin/x");
    assert!(matches!(read_text(&under), Err(EditError::Read(_, _))));
    // Valid UTF-8 with CRLF and no final newline is read as it is.
    let ok = t.write("ok", "a\r\nb \u{2603}".as_bytes());
    assert_eq!(read_text(&ok).unwrap(), "a\r\nb \u{2603}");
}

#[test]
fn unreadable_file_is_a_read_error() {
    if is_root() {
        return; // root reads everything; covered by read_errors_name_the_file otherwise
    }
    let t = Tmp::new("unreadable");
    let f = t.write("f", b"x");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o000)).unwrap();
    let e = read_text(&f).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("cannot read {}: Permission denied", f.display())
    );
}

// ---------------------------------------------------------------------------------------------
// Read-only directory: the write fails clearly and the file is untouched. As root, a directory
// mode does not stop writes, so the test re-runs itself inside a private mount namespace
// (`unshare -m`) where the directory is bind-mounted read-only; the mount dies with that
// process and never touches the host's mounts.

const RO_ENV: &str = "PVE2NODE_EDIT_RO_CHILD";

fn readonly_checks(dir: &Path) {
    let f = dir.join("hosts");
    let e = apply(&f, BEFORE, AFTER, false, false, TempStyle::Hidden).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, EditError::Write(_, _)), "{e:?}");
    assert!(
        msg.starts_with(&format!("cannot write {}: ", f.display())),
        "{msg}"
    );
    assert!(
        msg.contains("Read-only file system") || msg.contains("Permission denied"),
        "{msg}"
    );
    let e = apply(&f, BEFORE, AFTER, false, true, TempStyle::DotNew).unwrap_err();
    assert!(
        matches!(e, EditError::Backup(_, _)),
        "the backup fails first: {e:?}"
    );
    assert!(e
        .to_string()
        .starts_with(&format!("cannot back up {}: ", f.display())));
    assert_eq!(fs::read_to_string(&f).unwrap(), BEFORE);
}

#[test]
#[ignore = "run by readonly_directory_gives_a_clear_error in a private mount namespace"]
fn readonly_child() {
    // Only does something when started by `readonly_directory_gives_a_clear_error`.
    let Some(dir) = std::env::var_os(RO_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let c = std::ffi::CString::new(dir.display().to_string()).unwrap();
    // SAFETY: plain mount(2) calls with valid NUL-terminated paths, in the private mount
    // namespace this process was started in by `unshare -m --propagation private`.
    unsafe {
        assert_eq!(
            libc::mount(
                c.as_ptr(),
                c.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null()
            ),
            0,
            "bind mount"
        );
        assert_eq!(
            libc::mount(
                std::ptr::null(),
                c.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                std::ptr::null()
            ),
            0,
            "read-only remount"
        );
    }
    readonly_checks(&dir);
    println!("READONLY-CHILD-OK");
}

#[test]
fn readonly_directory_gives_a_clear_error() {
    if std::env::var_os(RO_ENV).is_some() {
        return;
    }
    let t = Tmp::new("ro");
    t.write("hosts", BEFORE.as_bytes());
    if is_root() {
        let exe = std::env::current_exe().expect("test exe");
        let out = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "--"])
            .arg(exe)
            .args([
                "edit::tests::readonly_child",
                "--exact",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(RO_ENV, &t.0)
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                crate::testing::skip(&format!("cannot run unshare: {e}"));
                return;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("unshare failed") {
            crate::testing::skip(&format!("no mount namespaces here: {stderr}"));
            return;
        }
        assert!(
            out.status.success() && stdout.contains("READONLY-CHILD-OK"),
            "child failed:\n{stdout}\n{stderr}"
        );
    } else {
        fs::set_permissions(&t.0, fs::Permissions::from_mode(0o555)).unwrap();
        readonly_checks(&t.0);
    }
    // Nothing left behind, outside the namespace too.
    assert_eq!(fs::read_to_string(t.join("hosts")).unwrap(), BEFORE);
    assert_eq!(t.names(), vec!["hosts"]);
}

// ---------------------------------------------------------------------------------------------
// diff and unified_diff

#[test]
fn diff_headers_name_the_file() {
    let d = diff(Path::new("/etc/hosts"), "a\n", "b\n");
    assert_eq!(
        d,
        Diff {
            before: "a\n".into(),
            after: "b\n".into(),
            before_header: "/etc/hosts (before)".into(),
            after_header: "/etc/hosts (after)".into(),
        }
    );
}

fn ud(a: &str, b: &str) -> String {
    unified_diff(a, b, "a/f", "b/f")
}

#[test]
fn unified_diff_equal_texts_is_empty() {
    assert_eq!(ud("", ""), "");
    assert_eq!(ud(BEFORE, BEFORE), "");
}

#[test]
fn unified_diff_one_changed_line() {
    assert_eq!(
        ud("a\nb\nc\n", "a\nB\nc\n"),
        "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
    );
    assert_eq!(ud("x\n", "y\n"), "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n+y\n");
}

#[test]
fn unified_diff_added_line_at_end() {
    assert_eq!(
        ud("a\nb\n", "a\nb\nc\n"),
        "--- a/f\n+++ b/f\n@@ -1,2 +1,3 @@\n a\n b\n+c\n"
    );
    assert_eq!(ud("", "y\n"), "--- a/f\n+++ b/f\n@@ -0,0 +1 @@\n+y\n");
    assert_eq!(ud("y\n", ""), "--- a/f\n+++ b/f\n@@ -1 +0,0 @@\n-y\n");
}

#[test]
fn unified_diff_missing_final_newline() {
    assert_eq!(
        ud("a\nb", "a\nb\n"),
        "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"
    );
    assert_eq!(
        ud("a\n", "a\nb"),
        "--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n a\n+b\n\\ No newline at end of file\n"
    );
}

#[test]
fn unified_diff_keeps_crlf() {
    assert_eq!(
        ud("a\r\nb\r\n", "a\r\nc\r\n"),
        "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\r\n-b\r\n+c\r\n"
    );
    // A line ending change alone is a change.
    assert_eq!(
        ud("a\n", "a\r\n"),
        "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+a\r\n"
    );
}

fn numbered(n: usize, change: &[(usize, &str)]) -> String {
    (1..=n)
        .map(|i| {
            change
                .iter()
                .find(|(k, _)| *k == i)
                .map(|(_, s)| format!("{s}\n"))
                .unwrap_or_else(|| format!("{i}\n"))
        })
        .collect()
}

#[test]
fn unified_diff_hunks_like_diff_u() {
    // Output of `diff -u` for the same files (GNU diffutils).
    let a = numbered(20, &[]);
    assert_eq!(
        ud(&a, &numbered(20, &[(4, "X"), (11, "Y")])),
        "--- a/f\n+++ b/f\n@@ -1,14 +1,14 @@\n 1\n 2\n 3\n-4\n+X\n 5\n 6\n 7\n 8\n 9\n 10\n-11\n+Y\n 12\n 13\n 14\n",
        "6 unchanged lines between changes: one hunk"
    );
    assert_eq!(
        ud(&a, &numbered(20, &[(4, "X"), (12, "Y")])),
        "--- a/f\n+++ b/f\n@@ -1,7 +1,7 @@\n 1\n 2\n 3\n-4\n+X\n 5\n 6\n 7\n@@ -9,7 +9,7 @@\n 9\n 10\n 11\n-12\n+Y\n 13\n 14\n 15\n",
        "7 unchanged lines between changes: two hunks"
    );
}

/// Applies a unified diff produced by `unified_diff` to `a` (test oracle).
fn patch(a: &str, diff: &str) -> String {
    let a_lines = lines_with_ends(a);
    let mut out = String::new();
    let mut pos = 0usize; // next unread line of a
    let mut lines = diff.split_inclusive('\n').skip(2).peekable();
    while let Some(h) = lines.next() {
        assert!(h.starts_with("@@ -"), "hunk header expected: {h:?}");
        let range = h[4..].split(' ').next().unwrap();
        let (start, count) = match range.split_once(',') {
            Some((s, c)) => (s.parse::<usize>().unwrap(), c.parse::<usize>().unwrap()),
            None => (range.parse::<usize>().unwrap(), 1),
        };
        let first = if count == 0 { start } else { start - 1 };
        while pos < first {
            out.push_str(a_lines[pos]);
            pos += 1;
        }
        while let Some(l) = lines.peek() {
            if l.starts_with("@@") {
                break;
            }
            let l = lines.next().unwrap();
            let (op, body) = l.split_at(1);
            let no_eol = lines.peek().is_some_and(|n| n.starts_with("\\ No newline"));
            let body = if no_eol {
                lines.next();
                body.strip_suffix('\n').unwrap()
            } else {
                body
            };
            match op {
                " " => {
                    assert_eq!(a_lines[pos], body, "context mismatch");
                    out.push_str(body);
                    pos += 1;
                }
                "-" => {
                    assert_eq!(a_lines[pos], body, "removed line mismatch");
                    pos += 1;
                }
                "+" => out.push_str(body),
                _ => panic!("bad diff line {l:?}"),
            }
        }
    }
    for l in &a_lines[pos..] {
        out.push_str(l);
    }
    out
}

fn random_text(r: &mut Rng) -> String {
    const LINES: &[&str] = &["a\n", "b\n", "c\n", "a\r\n", "\n", "d", "127.0.0.1 x\n"];
    let n = r.below(25);
    let mut s: String = (0..n).map(|_| LINES[r.below(LINES.len())]).collect();
    // "d" without newline only makes sense at the end; elsewhere it merges with the next line.
    if r.below(3) == 0 {
        s.push_str("tail");
    }
    s
}

#[test]
fn property_unified_diff_patches_before_into_after() {
    let mut r = Rng::new(0x1234_5678_9ABC_DEF1);
    for _ in 0..3000 {
        let a = random_text(&mut r);
        let b = if r.below(2) == 0 {
            random_text(&mut r)
        } else {
            // A small edit of a.
            let mut l: Vec<String> = lines_with_ends(&a).iter().map(|s| s.to_string()).collect();
            if !l.is_empty() {
                let i = r.below(l.len());
                match r.below(3) {
                    0 => {
                        l.remove(i);
                    }
                    1 => l.insert(i, "new\n".into()),
                    _ => l[i] = "changed\n".into(),
                }
            }
            l.concat()
        };
        let d = ud(&a, &b);
        if a == b {
            assert_eq!(d, "");
            continue;
        }
        assert_eq!(patch(&a, &d), b, "a={a:?} b={b:?} diff:\n{d}");
        // Every hunk has at most 3 context lines at its ends.
        for h in d.split("@@ -").skip(1) {
            let body: Vec<&str> = h.lines().skip(1).collect();
            let lead = body.iter().take_while(|l| l.starts_with(' ')).count();
            assert!(lead <= 3, "{d}");
        }
    }
}

#[test]
fn unified_diff_of_a_huge_file_is_one_small_hunk() {
    let n = 200_000;
    let a = numbered(n, &[]);
    let b = numbered(n, &[(123_456, "changed")]);
    let d = ud(&a, &b);
    assert_eq!(
        d,
        "--- a/f\n+++ b/f\n@@ -123453,7 +123453,7 @@\n 123453\n 123454\n 123455\n-123456\n+changed\n 123457\n 123458\n 123459\n"
    );
    // Many scattered changes stay linear too (each hunk small).
    let many: Vec<(usize, &str)> = (1..n).step_by(1000).map(|i| (i, "z")).collect();
    let c = numbered(n, &many);
    let d = ud(&a, &c);
    assert_eq!(d.matches("@@ -").count(), many.len());
    assert_eq!(patch(&a, &d), c);
}

/// Length of the longest common subsequence of lines (test oracle, quadratic).
fn lcs_len(a: &[&str], b: &[&str]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diag = 0;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    row[b.len()]
}

#[test]
fn property_edit_script_is_minimal() {
    let mut r = Rng::new(0xC0FF_EE00_1234_5678);
    for _ in 0..2000 {
        let (a, b) = (random_text(&mut r), random_text(&mut r));
        let (la, lb) = (lines_with_ends(&a), lines_with_ends(&b));
        let script = edit_script(&la, &lb);
        let changed = script.iter().filter(|(op, _)| *op != ' ').count();
        assert_eq!(
            changed,
            la.len() + lb.len() - 2 * lcs_len(&la, &lb),
            "a={a:?} b={b:?}"
        );
    }
}

#[test]
fn unified_diff_of_totally_different_big_texts_falls_back_to_replace() {
    let a: String = (0..3000).map(|i| format!("a{i}\n")).collect();
    let b: String = (0..3000).map(|i| format!("b{i}\n")).collect();
    let d = ud(&a, &b);
    assert!(
        d.starts_with("--- a/f\n+++ b/f\n@@ -1,3000 +1,3000 @@\n-a0\n"),
        "{}",
        &d[..60]
    );
    assert_eq!(patch(&a, &d), b);
}

// ---------------------------------------------------------------------------------------------
// Filesystems that refuse chmod/chown (pmxcfs does) or rename: bindfs in a private mount
// namespace. The test re-runs itself under `unshare -m`; the bindfs daemon is started in the
// foreground, unmounted and killed by its PID when the child ends (also on failure).

const FUSE_ENV: &str = "PVE2NODE_EDIT_FUSE_CHILD";

/// A bindfs mount, unmounted and stopped on drop.
struct Bindfs {
    child: std::process::Child,
    mnt: PathBuf,
}

impl Bindfs {
    fn start(src: &Path, mnt: &Path, opts: &[&str]) -> Bindfs {
        fs::create_dir_all(src).unwrap();
        fs::create_dir_all(mnt).unwrap();
        let child = std::process::Command::new("bindfs")
            .arg("-f")
            .args(opts)
            .arg(src)
            .arg(mnt)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start bindfs");
        let guard = Bindfs {
            child,
            mnt: mnt.to_path_buf(),
        };
        let needle = format!(" {} ", mnt.display());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            if info
                .lines()
                .any(|l| l.contains(&needle) && l.contains("fuse"))
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "bindfs did not mount");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        guard
    }
}

impl Drop for Bindfs {
    fn drop(&mut self) {
        if let Ok(c) = std::ffi::CString::new(self.mnt.display().to_string()) {
            // SAFETY: umount2 with a valid NUL-terminated path.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fuse_checks(dir: &Path) {
    // chmod and chown refused: the write still succeeds, the bytes are new.
    let bf = Bindfs::start(
        &dir.join("src"),
        &dir.join("mnt"),
        &["--chown-deny", "--chgrp-deny", "--chmod-deny"],
    );
    let f = dir.join("mnt/corosync.conf");
    fs::write(dir.join("src/corosync.conf"), BEFORE).unwrap();
    assert!(
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).is_err(),
        "the mount must refuse chmod for this test to mean anything"
    );
    for style in [TempStyle::Hidden, TempStyle::DotNew] {
        let r = apply(&f, BEFORE, AFTER, false, true, style).unwrap();
        assert!(r.changed);
        assert_eq!(fs::read_to_string(&f).unwrap(), AFTER);
        let b = r.backup_file.expect("backup");
        assert_eq!(fs::read_to_string(&b).unwrap(), BEFORE);
        fs::remove_file(&b).unwrap();
        apply(&f, AFTER, BEFORE, false, false, style).unwrap();
    }
    let mut names: Vec<String> = fs::read_dir(dir.join("src"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["corosync.conf"]);
    drop(bf);

    // rename refused: a clear error, the file untouched, the temp file removed.
    let _bf = Bindfs::start(&dir.join("src2"), &dir.join("mnt2"), &["--rename-deny"]);
    fs::write(dir.join("src2/hosts"), BEFORE).unwrap();
    let f = dir.join("mnt2/hosts");
    for style in [TempStyle::Hidden, TempStyle::DotNew] {
        let e = apply(&f, BEFORE, AFTER, false, false, style).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("cannot write {}: rename from ", f.display())),
            "{msg}"
        );
        assert_eq!(fs::read_to_string(&f).unwrap(), BEFORE);
        let names: Vec<_> = fs::read_dir(dir.join("src2")).unwrap().collect();
        assert_eq!(names.len(), 1, "temp file left behind");
    }
}

#[test]
#[ignore = "run by refused_chmod_chown_and_rename_on_fuse in a private mount namespace"]
fn fuse_child() {
    // Only does something when started by `refused_chmod_chown_and_rename_on_fuse`.
    if let Some(dir) = std::env::var_os(FUSE_ENV) {
        fuse_checks(Path::new(&dir));
        println!("FUSE-CHILD-OK");
    }
}

#[test]
fn refused_chmod_chown_and_rename_on_fuse() {
    if std::env::var_os(FUSE_ENV).is_some() {
        return;
    }
    if !is_root() {
        crate::testing::skip("bindfs mounts need root");
        return;
    }
    if crate::run::which("bindfs").is_none() || !Path::new("/dev/fuse").exists() {
        crate::testing::skip("bindfs or /dev/fuse missing");
        return;
    }
    let t = Tmp::new("fuse");
    let exe = std::env::current_exe().expect("test exe");
    let out = std::process::Command::new("timeout")
        .args(["60", "unshare", "-m", "--propagation", "private", "--"])
        .arg(exe)
        .args([
            "edit::tests::fuse_child",
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FUSE_ENV, &t.0)
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unshare failed") {
        crate::testing::skip(&format!("no mount namespaces here: {stderr}"));
        return;
    }
    assert!(
        out.status.success() && stdout.contains("FUSE-CHILD-OK"),
        "child failed:\n{stdout}\n{stderr}"
    );
}
