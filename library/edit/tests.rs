//! Unit tests of safe file editing.
use super::*;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

use crate::testing::skip;

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
            ..Applied::default()
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

/// The pid of a process that has ended (a child already waited for).
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn stale_temp_files_of_dead_runs_are_removed_live_ones_kept() {
    let t = Tmp::new("stale");
    let f = t.write("hosts", BEFORE.as_bytes());
    let dead = dead_pid();
    // An old-style leftover and a new-style one of a dead run, one of this (live) process, and
    // one of another file: only the first two go.
    t.write(&format!(".hosts.{dead}.tmp"), b"junk");
    t.write(
        &format!(".hosts.{dead}.0123456789abcdef.pve2node-tmp"),
        b"junk",
    );
    let live = format!(
        ".hosts.{}.fedcba9876543210.pve2node-tmp",
        std::process::id()
    );
    t.write(&live, b"junk");
    t.write(&format!(".other.{dead}.tmp"), b"junk");
    let r = apply_real(&f, BEFORE, AFTER);
    assert_eq!(fs::read_to_string(&f).unwrap(), AFTER);
    let mut want = vec![format!(".other.{dead}.tmp"), live, "hosts".to_string()];
    want.sort();
    assert_eq!(t.names(), want);
    assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
    assert!(
        r.notes[0].contains("a temp file left by an interrupted run"),
        "{:?}",
        r.notes
    );
}

#[test]
fn temp_names_are_unpredictable_and_exclusive() {
    let t = Tmp::new("tmpname");
    let f = t.write("hosts", BEFORE.as_bytes());
    let tgt = Target::open(&f).unwrap();
    let (a, b) = (tgt.temp_name(), tgt.temp_name());
    assert_ne!(a, b);
    let prefix = format!(".hosts.{}.", std::process::id());
    assert!(
        a.starts_with(&prefix) && a.ends_with(".pve2node-tmp"),
        "{a}"
    );
    assert_eq!(a.len(), prefix.len() + 16 + ".pve2node-tmp".len(), "{a}");
    // A symlink planted under a temp name is never followed: O_EXCL|O_NOFOLLOW refuses it.
    let victim = t.write("victim", b"keep\n");
    symlink(&victim, t.join(&a)).unwrap();
    let e = tgt.create_filled(&a, b"evil").unwrap_err();
    assert_eq!(e.errno, Some(libc::EEXIST));
    assert_eq!(fs::read(&victim).unwrap(), b"keep\n");
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
            ..Applied::default()
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
// The file read is the file written; directories others can write

#[test]
fn a_symlink_swapped_after_the_read_is_refused_and_nothing_written() {
    let t = Tmp::new("swap");
    let a = t.write("a", BEFORE.as_bytes());
    let b = t.write("b", b"other text\n");
    let link = t.join("hosts");
    symlink("a", &link).unwrap();
    let before = read_text(&link).unwrap();
    // Another process points the link elsewhere before the write.
    fs::remove_file(&link).unwrap();
    symlink("b", &link).unwrap();
    let e = apply(&link, &before, AFTER, false, true, TempStyle::Hidden).unwrap_err();
    assert_eq!(e, EditError::Changed(link.display().to_string()));
    assert!(
        e.to_string().contains("changed while it was being edited"),
        "{e}"
    );
    assert_eq!(fs::read(&b).unwrap(), b"other text\n");
    assert_eq!(fs::read_to_string(&a).unwrap(), BEFORE);
    assert_eq!(
        t.names(),
        vec!["a", "b", "hosts"],
        "no backup, no temp file"
    );
    // A Target holds its directory: swapping the link after it was opened changes nothing.
    symlink("a", t.join("h2")).unwrap();
    let mut tgt = Target::open(&t.join("h2")).unwrap();
    fs::remove_file(t.join("h2")).unwrap();
    symlink("b", t.join("h2")).unwrap();
    tgt.write(AFTER.as_bytes(), false, TempStyle::Hidden)
        .unwrap();
    assert_eq!(fs::read_to_string(&a).unwrap(), AFTER);
    assert_eq!(fs::read(&b).unwrap(), b"other text\n");
}

#[test]
fn a_directory_others_can_write_is_refused() {
    let t = Tmp::new("strict");
    let f = t.write("hosts", BEFORE.as_bytes());
    let dir = t.0.display().to_string();
    for mode in [0o777, 0o757] {
        fs::set_permissions(&t.0, fs::Permissions::from_mode(mode)).unwrap();
        let e = read_text(&f).unwrap_err();
        assert!(
            matches!(&e, EditError::UnsafeDir { file, dir: d, .. } if *file == f.display().to_string() && *d == dir),
            "{mode:o}: {e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "refusing to edit {}: its directory {dir} is writable by every user and has no sticky bit, so another user could swap the file; make the directory writable by root or the file's owner only (chown root, chmod go-w)",
                f.display()
            )
        );
        assert!(apply(&f, BEFORE, AFTER, false, false, TempStyle::Hidden).is_err());
    }
    // A sticky directory (as /tmp) and one only its owner writes are fine.
    for mode in [0o1777, 0o755] {
        fs::set_permissions(&t.0, fs::Permissions::from_mode(mode)).unwrap();
        assert_eq!(read_text(&f).unwrap(), BEFORE, "{mode:o}");
    }
    if is_root() {
        // Group-writable: refused unless the group is root's.
        fs::set_permissions(&t.0, fs::Permissions::from_mode(0o775)).unwrap();
        std::os::unix::fs::chown(&t.0, None, Some(0)).unwrap();
        assert_eq!(read_text(&f).unwrap(), BEFORE);
        std::os::unix::fs::chown(&t.0, None, Some(65534)).unwrap();
        assert!(matches!(
            read_text(&f),
            Err(EditError::UnsafeDir { why, .. }) if why == "is writable by group gid 65534 and has no sticky bit"
        ));
        fs::set_permissions(&t.0, fs::Permissions::from_mode(0o755)).unwrap();
        // A directory owned by another user than root and the file's owner.
        std::os::unix::fs::chown(&t.0, Some(65534), None).unwrap();
        assert!(matches!(
            read_text(&f),
            Err(EditError::UnsafeDir { why, .. }) if why == "belongs to uid 65534 (neither root nor the file's owner)"
        ));
        std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
        assert_eq!(read_text(&f).unwrap(), BEFORE, "the owner's own directory");
        std::os::unix::fs::chown(&t.0, Some(0), None).unwrap();
    }
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
    // The errno is kept for callers that retry on it.
    assert!(
        matches!(e.errno(), Some(libc::EROFS | libc::EACCES)),
        "{:?}",
        e.errno()
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

/// The child half of `readonly_directory_gives_a_clear_error` (the same test, re-run inside
/// the namespace): bind-mounts the directory read-only and checks.
fn readonly_child(dir: &std::ffi::OsStr) {
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
    if let Some(dir) = std::env::var_os(RO_ENV) {
        return readonly_child(&dir);
    }
    let t = Tmp::new("ro");
    t.write("hosts", BEFORE.as_bytes());
    if is_root() {
        let exe = std::env::current_exe().expect("test exe");
        let out = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "--"])
            .arg(exe)
            .args([
                "edit::tests::readonly_directory_gives_a_clear_error",
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
                skip(&format!("cannot run unshare: {e}"));
                return;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("unshare failed") {
            skip(&format!("no mount namespaces here: {stderr}"));
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
// In a private mount namespace: a bind-mounted target written in place (its old bytes saved
// and restored by the next locate when a run died), and no /proc (paths found by realpath).

const NS_ENV: &str = "PVE2NODE_EDIT_NS_CHILD";

fn mount_on(src: Option<&Path>, dst: &Path, fstype: Option<&str>, flags: libc::c_ulong) {
    let c = |p: &Path| std::ffi::CString::new(p.display().to_string()).unwrap();
    let (s, d) = (src.map(c), c(dst));
    let t = fstype.map(|t| std::ffi::CString::new(t).unwrap());
    // SAFETY: mount(2) with valid NUL-terminated strings or NULL, in the private mount
    // namespace this process was started in.
    let rc = unsafe {
        libc::mount(
            s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            d.as_ptr(),
            t.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()),
            flags,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "mount {dst:?}: {}", std::io::Error::last_os_error());
}

fn namespace_checks(dir: &Path) {
    // A bind-mounted file: rename over it is refused (EBUSY), so it is written in place.
    let src = dir.join("src");
    fs::write(&src, BEFORE).unwrap();
    let f = dir.join("hosts");
    fs::write(&f, "").unwrap();
    mount_on(Some(&src), &f, None, libc::MS_BIND);
    let ino = fs::metadata(&f).unwrap().ino();
    let r = apply(&f, BEFORE, AFTER, false, true, TempStyle::Hidden).unwrap();
    assert!(r.changed);
    assert_eq!(
        fs::read_to_string(&src).unwrap(),
        AFTER,
        "same inode, new bytes"
    );
    assert_eq!(fs::metadata(&f).unwrap().ino(), ino);
    let b = r.backup_file.expect("backup");
    assert_eq!(fs::read_to_string(&b).unwrap(), BEFORE);
    fs::remove_file(&b).unwrap();
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["hosts", "src"], "no saved copy or temp file left");
    // A run that died in the middle left a cut file and the saved old bytes: the next locate
    // restores them and says so.
    let dead = dead_pid();
    let saved = dir.join(format!(".hosts.{dead}.pve2node-saved"));
    fs::write(&saved, AFTER).unwrap();
    fs::write(&src, "127.0.0.1 loc").unwrap();
    let t = Target::open(&f).unwrap();
    assert_eq!(t.bytes(), AFTER.as_bytes());
    assert_eq!(t.notes().len(), 1, "{:?}", t.notes());
    assert!(
        t.notes()[0].contains(
            "was interrupted while writing it in place; its old bytes were restored from"
        ),
        "{:?}",
        t.notes()
    );
    assert!(!saved.exists());
    assert_eq!(fs::read_to_string(&src).unwrap(), AFTER);
    // A saved copy of a live process: another edit is under way, refused.
    let live = dir.join(format!(".hosts.{}.pve2node-saved", std::process::id()));
    fs::write(&live, BEFORE).unwrap();
    assert!(matches!(read_text(&f), Err(EditError::Busy(..))));
    fs::remove_file(&live).unwrap();

    // Without /proc the kernel's answer is not readable: realpath, checked against the inode.
    let proc_dir = Path::new("/proc");
    mount_on(None, proc_dir, Some("tmpfs"), 0);
    let real = dir.join("real");
    fs::write(&real, BEFORE).unwrap();
    let link = dir.join("link");
    symlink("real", &link).unwrap();
    assert_eq!(resolve(&link).unwrap(), real);
    apply(&link, BEFORE, AFTER, false, false, TempStyle::Hidden).unwrap();
    assert_eq!(fs::read_to_string(&real).unwrap(), AFTER);
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    println!("NS-CHILD-OK");
}

#[test]
fn bind_mounted_target_and_no_proc_in_a_private_namespace() {
    if let Some(dir) = std::env::var_os(NS_ENV) {
        return namespace_checks(Path::new(&dir));
    }
    if !is_root() {
        return skip("needs root for a mount namespace");
    }
    let t = Tmp::new("ns");
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("timeout")
        .args(["60", "unshare", "-m", "--propagation", "private", "--"])
        .arg(exe)
        .args([
            "edit::tests::bind_mounted_target_and_no_proc_in_a_private_namespace",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NS_ENV, &t.0)
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unshare failed") {
        return skip(&format!("no mount namespaces here: {stderr}"));
    }
    assert!(
        out.status.success() && stdout.contains("NS-CHILD-OK"),
        "child failed:\n{stdout}\n{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// diff

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
fn refused_chmod_chown_and_rename_on_fuse() {
    // Re-run of this same test inside the namespace: the checks themselves.
    if let Some(dir) = std::env::var_os(FUSE_ENV) {
        fuse_checks(Path::new(&dir));
        println!("FUSE-CHILD-OK");
        return;
    }
    if !is_root() {
        return;
    }
    if crate::run::which("bindfs").is_none() || !Path::new("/dev/fuse").exists() {
        skip("bindfs or /dev/fuse missing");
        return;
    }
    let t = Tmp::new("fuse");
    let exe = std::env::current_exe().expect("test exe");
    let out = std::process::Command::new("timeout")
        .args(["60", "unshare", "-m", "--propagation", "private", "--"])
        .arg(exe)
        .args([
            "edit::tests::refused_chmod_chown_and_rename_on_fuse",
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
        skip(&format!("no mount namespaces here: {stderr}"));
        return;
    }
    assert!(
        out.status.success() && stdout.contains("FUSE-CHILD-OK"),
        "child failed:\n{stdout}\n{stderr}"
    );
}
