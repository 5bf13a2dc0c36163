//! Safe file editing: the path is resolved once, through the kernel, to an opened directory and
//! a name in it; the file is read from there and written back there (temp file with an
//! unpredictable name created with `O_EXCL|O_NOFOLLOW`, fsync, `renameat`, fsync of the
//! directory), so the file read is the file written, whatever symlinks are swapped meanwhile.
//! Mode and owner are kept where the filesystem allows it; an optional timestamped backup only
//! gets its final name once it is complete.
//!
//! A target that is a mount point (a bind-mounted /etc/hosts, as in containers) cannot be
//! renamed over; it is rewritten in place, with its old bytes first saved complete beside it
//! (`.<name>.<pid>.pve2node-saved`) until the new bytes are written and fsynced. A failed write
//! puts them back; a run that was killed leaves the saved copy, which the next read restores and
//! reports. Temp files of dead processes are removed by the next write.
//!
//! Refused: a target whose directory another user (not root, not the file's owner) can write
//! without the sticky bit, as sshd's StrictModes does (that user could swap the file).

use crate::io_reason;
use crate::protocol::Diff;
use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// An operating-system error kept as its errno (rendered to text only when shown), with the
/// step or file it happened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsError {
    /// What was being done (`rename from /etc/.hosts.x`, a temp file's path…); may be empty.
    pub step: String,
    pub errno: Option<i32>,
    /// The text when there is no errno.
    pub detail: String,
    /// Said after the reason (what was done about it).
    pub tail: String,
}

impl OsError {
    fn io(step: impl Into<String>, e: &std::io::Error) -> OsError {
        OsError {
            step: step.into(),
            errno: e.raw_os_error(),
            detail: io_reason(e),
            tail: String::new(),
        }
    }
    pub fn text(step: impl Into<String>, detail: impl Into<String>) -> OsError {
        OsError {
            step: step.into(),
            errno: None,
            detail: detail.into(),
            tail: String::new(),
        }
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = match self.errno {
            Some(n) => io_reason(&std::io::Error::from_raw_os_error(n)),
            None => self.detail.clone(),
        };
        if self.step.is_empty() {
            write!(f, "{reason}{}", self.tail)
        } else {
            write!(f, "{}: {reason}{}", self.step, self.tail)
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EditError {
    #[error("{0} does not exist; check the path parameter")]
    NotFound(String),
    #[error("{0} is a directory, not a file; point the path parameter at a file")]
    IsDir(String),
    #[error("{0} is not a regular file; point the path parameter at the file to edit")]
    NotRegular(String),
    #[error("cannot read {0}: {1}")]
    Read(String, OsError),
    #[error("{0} is not valid UTF-8 text; refusing to edit it")]
    NotText(String),
    #[error("{0} has a symlink loop; point the path parameter at the real file")]
    SymlinkLoop(String),
    #[error("cannot write {0}: {1}")]
    Write(String, OsError),
    #[error("cannot back up {0}: {1}")]
    Backup(String, OsError),
    #[error("refusing to edit {file}: its directory {dir} {why}, so another user could swap the file; make the directory writable by root or the file's owner only (chown root, chmod go-w)")]
    UnsafeDir {
        file: String,
        dir: String,
        why: String,
    },
    #[error("{0} changed while it was being edited (another writer, or a symlink swapped); nothing was written, run the task again")]
    Changed(String),
    #[error("{0} is being edited by process {1} (its saved copy {2} exists); run the task again when that process has ended")]
    Busy(String, i32, String),
    #[error("{0}")]
    Damaged(Box<Damage>),
}

/// A failed in-place write whose restore failed too: the file is changed, the old bytes are
/// kept complete in `saved`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot write {path} in place (it is a mount point): {cause}; putting the old bytes back failed too ({restore}), they are kept complete in {saved}: copy them back over {path}")]
pub struct Damage {
    pub path: String,
    pub cause: OsError,
    pub restore: OsError,
    pub saved: String,
}

impl EditError {
    /// The errno of the failed system call, when the error came from one (`EROFS`, `EACCES`,
    /// `ENOSPC`…), so callers decide on it rather than on the text.
    pub fn errno(&self) -> Option<i32> {
        match self {
            EditError::Read(_, e) | EditError::Write(_, e) | EditError::Backup(_, e) => e.errno,
            EditError::Damaged(d) => d.cause.errno,
            EditError::NotFound(_) => Some(libc::ENOENT),
            EditError::IsDir(_) => Some(libc::EISDIR),
            EditError::SymlinkLoop(_) => Some(libc::ELOOP),
            _ => None,
        }
    }
    /// True when the file was left changed although the edit failed (a module must then
    /// report `changed: true` with its failure).
    pub fn changed_file(&self) -> bool {
        matches!(self, EditError::Damaged(_))
    }
}

/// How the temporary file is named before the rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempStyle {
    /// `.<name>.<pid>.<random>.pve2node-tmp` beside the target (the usual atomic write).
    Hidden,
    /// `<name>.new` beside the target: the Proxmox procedure inside /etc/pve, so pmxcfs
    /// propagates one whole file when it is renamed over the target.
    DotNew,
}

const TMP_SUFFIX: &str = ".pve2node-tmp";
const SAVED_SUFFIX: &str = ".pve2node-saved";

fn show(p: &Path) -> String {
    p.display().to_string()
}

fn cstr(s: &OsStr) -> CString {
    // A path from the OS or a parameter has no NUL byte (the protocol's strings cannot carry one
    // into a path the kernel accepts); one that does gets an empty name, which fails cleanly.
    CString::new(s.as_bytes()).unwrap_or_default()
}

fn fstat(fd: RawFd) -> std::io::Result<libc::stat> {
    // SAFETY: fstat writes into the zeroed struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } == 0 {
        Ok(st)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn fstatat(dir: RawFd, name: &OsStr) -> std::io::Result<libc::stat> {
    let c = cstr(name);
    // SAFETY: valid fd and NUL-terminated name; writes into the zeroed struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } == 0 {
        Ok(st)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn open_raw(dir: Option<RawFd>, path: &OsStr, flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
    let c = cstr(path);
    // SAFETY: a NUL-terminated path; the returned fd is owned by the OwnedFd.
    let fd = unsafe {
        match dir {
            Some(d) => libc::openat(d, c.as_ptr(), flags | libc::O_CLOEXEC, mode),
            None => libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode),
        }
    };
    if fd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        // SAFETY: fd was just returned by open and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

fn same_file(a: &libc::stat, b: &libc::stat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

fn is_type(st: &libc::stat, t: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == t
}

/// The path the kernel resolved an opened fd to; without /proc, `path` resolved by realpath
/// (safe either way: the caller checks that the directory found holds the very inode opened).
fn fd_path(fd: RawFd, path: &Path) -> std::io::Result<PathBuf> {
    fs::read_link(format!("/proc/self/fd/{fd}")).or_else(|_| fs::canonicalize(path))
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only probes; EPERM means it exists under another user.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

fn random_hex() -> String {
    let mut b = [0u8; 8];
    let filled = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if filled.is_err() {
        // No /dev/urandom: time and address bits; O_EXCL still refuses any existing name.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let x = t ^ (&b as *const _ as usize as u128).rotate_left(17);
        b = (x as u64).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A debug-build-only pause between the steps of a write, so fault tests can kill a run in the
/// middle of one (`PVE2NODE_EDIT_STEP_US`, microseconds).
fn step_pause() {
    if let Some(us) = crate::protocol::test_hook("PVE2NODE_EDIT_STEP_US") {
        if let Ok(us) = us.parse::<u64>() {
            std::thread::sleep(std::time::Duration::from_micros(us));
        }
    }
}

/// A file located once through the kernel: an open directory and the name in it. Everything
/// later (read, temp file, rename, backup) is done relative to that directory.
pub struct Target {
    /// The path as the caller gave it (for messages).
    shown: String,
    dir: OwnedFd,
    dir_path: PathBuf,
    name: OsString,
    /// The file as read (`None` when it does not exist yet).
    existing: Option<(libc::stat, Vec<u8>)>,
    notes: Vec<String>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("path", &self.path())
            .finish()
    }
}

/// Follows a dangling symlink chain textually to the missing name it ends at (only used to
/// create a new file; an existing file is always resolved by the kernel).
fn dangling_end(path: &Path) -> Result<PathBuf, EditError> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&current)
                    .map_err(|e| EditError::Read(show(path), OsError::io("", &e)))?;
                current = if link.is_absolute() {
                    link
                } else {
                    current.parent().unwrap_or(Path::new("/")).join(link)
                };
            }
            _ => return Ok(current),
        }
    }
    Err(EditError::SymlinkLoop(show(path)))
}

impl Target {
    /// Locates and reads an existing file; a missing one is `NotFound`.
    pub fn open(path: &Path) -> Result<Target, EditError> {
        let t = Target::locate(path)?;
        if t.existing.is_none() {
            return Err(EditError::NotFound(t.shown));
        }
        Ok(t)
    }

    /// Locates `path`, reading the file when it exists.
    pub fn locate(path: &Path) -> Result<Target, EditError> {
        let shown = show(path);
        if path.as_os_str().is_empty() {
            return Err(EditError::NotFound(shown));
        }
        let rerr = |e: &std::io::Error| match e.raw_os_error() {
            Some(libc::ENOENT) => EditError::NotFound(shown.clone()),
            Some(libc::ELOOP) => EditError::SymlinkLoop(shown.clone()),
            _ => EditError::Read(shown.clone(), OsError::io("", e)),
        };
        // 1. The kernel resolves the whole path (its symlink protections apply).
        // For a missing file: the directory the kernel resolved, to check the one opened below.
        let mut parent_st = None;
        let (real, file) = match open_raw(None, path.as_os_str(), libc::O_PATH, 0) {
            Ok(fd) => {
                let st = fstat(fd.as_raw_fd()).map_err(|e| rerr(&e))?;
                if is_type(&st, libc::S_IFDIR) {
                    return Err(EditError::IsDir(shown));
                }
                if !is_type(&st, libc::S_IFREG) {
                    return Err(EditError::NotRegular(shown));
                }
                (
                    fd_path(fd.as_raw_fd(), path).map_err(|e| rerr(&e))?,
                    Some(st),
                )
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // Missing (or a dangling symlink): its directory must exist.
                let end = dangling_end(path)?;
                let parent = match end.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let name = end
                    .file_name()
                    .ok_or_else(|| EditError::NotFound(shown.clone()))?;
                let pfd = open_raw(
                    None,
                    parent.as_os_str(),
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                )
                .map_err(|e| rerr(&e))?;
                parent_st = Some(fstat(pfd.as_raw_fd()).map_err(|e| rerr(&e))?);
                (
                    fd_path(pfd.as_raw_fd(), &parent)
                        .map_err(|e| rerr(&e))?
                        .join(name),
                    None,
                )
            }
            Err(e) => return Err(rerr(&e)),
        };
        let (dir_path, name) = match (real.parent(), real.file_name()) {
            (Some(d), Some(n)) => (d.to_path_buf(), n.to_os_string()),
            _ => return Err(EditError::IsDir(shown)),
        };
        // 2. The directory, opened by the resolved path, must hold the very file resolved.
        let dir = open_raw(
            None,
            dir_path.as_os_str(),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
        .or_else(|_| {
            open_raw(
                None,
                dir_path.as_os_str(),
                libc::O_PATH | libc::O_DIRECTORY,
                0,
            )
        })
        .map_err(|e| rerr(&e))?;
        let here = fstatat(dir.as_raw_fd(), &name);
        match (&file, &here) {
            (Some(st), Ok(h)) if same_file(st, h) => {}
            (None, Err(e)) if e.raw_os_error() == Some(libc::ENOENT) => {}
            _ => return Err(EditError::Changed(shown)),
        }
        let d = fstat(dir.as_raw_fd()).map_err(|e| rerr(&e))?;
        if parent_st.is_some_and(|p| !same_file(&p, &d)) {
            return Err(EditError::Changed(shown));
        }
        // 3. StrictModes: nobody but root and the file's owner may write the directory.
        // SAFETY: geteuid has no preconditions.
        let owner = file.map_or_else(|| unsafe { libc::geteuid() }, |st| st.st_uid);
        let sticky = d.st_mode & libc::S_ISVTX != 0;
        let foreign_owner = d.st_uid != 0 && d.st_uid != owner;
        let group_w = d.st_mode & 0o020 != 0 && d.st_gid != 0;
        let other_w = d.st_mode & 0o002 != 0;
        let why = if foreign_owner {
            Some(format!(
                "belongs to uid {} (neither root nor the file's owner)",
                d.st_uid
            ))
        } else if other_w && !sticky {
            Some("is writable by every user and has no sticky bit".to_string())
        } else if group_w && !sticky {
            Some(format!(
                "is writable by group gid {} and has no sticky bit",
                d.st_gid
            ))
        } else {
            None
        };
        if let Some(why) = why {
            return Err(EditError::UnsafeDir {
                file: shown,
                dir: show(&dir_path),
                why,
            });
        }
        let mut t = Target {
            shown,
            dir,
            dir_path,
            name,
            existing: None,
            notes: Vec::new(),
        };
        t.recover()?;
        if let Some(st) = file {
            let (now, bytes) = t.read_now()?;
            if !same_file(&st, &now) {
                return Err(EditError::Changed(t.shown));
            }
            t.existing = Some((now, bytes));
        }
        Ok(t)
    }

    /// The resolved path (the real file, symlinks followed by the kernel).
    pub fn path(&self) -> PathBuf {
        self.dir_path.join(&self.name)
    }

    /// The bytes read (empty when the file does not exist).
    pub fn bytes(&self) -> &[u8] {
        self.existing.as_ref().map_or(&[], |(_, b)| b.as_slice())
    }

    pub fn exists(&self) -> bool {
        self.existing.is_some()
    }

    /// What was found and cleaned while locating and writing (a restored interrupted edit,
    /// removed temp files of dead runs): one sentence each, for the module's warnings.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    fn name_str(&self) -> String {
        self.name.to_string_lossy().into_owned()
    }

    fn in_dir(&self, name: &str) -> String {
        show(&self.dir_path.join(name))
    }

    fn read_now(&self) -> Result<(libc::stat, Vec<u8>), EditError> {
        let rerr = |e: &std::io::Error| EditError::Read(self.shown.clone(), OsError::io("", e));
        // O_NONBLOCK: a FIFO swapped in would not block (and is refused just below).
        let fd = open_raw(
            Some(self.dir.as_raw_fd()),
            &self.name,
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0,
        )
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => EditError::Changed(self.shown.clone()),
            Some(libc::ENOENT) => EditError::NotFound(self.shown.clone()),
            _ => rerr(&e),
        })?;
        let st = fstat(fd.as_raw_fd()).map_err(|e| rerr(&e))?;
        if !is_type(&st, libc::S_IFREG) {
            return Err(EditError::NotRegular(self.shown.clone()));
        }
        let mut bytes = Vec::with_capacity(st.st_size.max(0) as usize);
        File::from(fd)
            .read_to_end(&mut bytes)
            .map_err(|e| rerr(&e))?;
        Ok((st, bytes))
    }

    /// Names in the directory starting with `.<name>.` (our temp and saved files).
    fn ours(&self) -> Vec<String> {
        let prefix = format!(".{}.", self.name_str());
        let by_fd = fs::read_dir(format!("/proc/self/fd/{}", self.dir.as_raw_fd()));
        let Ok(rd) = by_fd.or_else(|_| fs::read_dir(&self.dir_path)) else {
            return Vec::new();
        };
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        v.sort();
        v
    }

    /// The pid in `.<name>.<pid>.<…><suffix>` (or the old `.<name>.<pid>.tmp`).
    fn pid_of(&self, entry: &str, suffix: &str) -> Option<i32> {
        let rest = entry.strip_prefix(&format!(".{}.", self.name_str()))?;
        let rest = rest.strip_suffix(suffix)?;
        rest.split('.').next()?.parse().ok()
    }

    fn unlink(&self, name: &str) -> std::io::Result<()> {
        let c = cstr(OsStr::new(name));
        // SAFETY: valid dir fd and NUL-terminated name.
        if unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    fn sync_dir(&self) {
        // Unsupported on some FUSE filesystems (and on an O_PATH fd); the rename happened.
        // SAFETY: fsync on a valid fd.
        unsafe {
            libc::fsync(self.dir.as_raw_fd());
        }
    }

    /// Restores the saved copy an interrupted in-place write left (its process is dead).
    fn recover(&mut self) -> Result<(), EditError> {
        for entry in self.ours() {
            let Some(pid) = self.pid_of(&entry, SAVED_SUFFIX) else {
                continue;
            };
            let saved = self.in_dir(&entry);
            if pid_alive(pid) {
                return Err(EditError::Busy(self.shown.clone(), pid, saved));
            }
            let werr = |e: OsError| EditError::Write(self.shown.clone(), e);
            let fd = open_raw(
                Some(self.dir.as_raw_fd()),
                OsStr::new(&entry),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
                0,
            )
            .map_err(|e| werr(OsError::io(&saved, &e)))?;
            let mut old = Vec::new();
            File::from(fd)
                .read_to_end(&mut old)
                .map_err(|e| werr(OsError::io(&saved, &e)))?;
            let target = open_raw(
                Some(self.dir.as_raw_fd()),
                &self.name,
                libc::O_WRONLY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(|e| werr(OsError::io("restoring an interrupted edit", &e)))?;
            let f = File::from(target);
            overwrite(&f, &old)
                .map_err(|e| werr(OsError::io("restoring an interrupted edit", &e)))?;
            let _ = self.unlink(&entry);
            self.sync_dir();
            self.notes.push(format!(
                "an edit of {} by process {pid} was interrupted while writing it in place; its old bytes were restored from {saved}",
                self.shown
            ));
        }
        Ok(())
    }

    /// Removes temp files of dead processes (ours and the older `.<name>.<pid>.tmp`).
    fn clean_stale(&mut self) {
        for entry in self.ours() {
            let pid = self
                .pid_of(&entry, TMP_SUFFIX)
                .or_else(|| self.pid_of(&entry, ".tmp"));
            if let Some(pid) = pid {
                if pid != std::process::id() as i32
                    && !pid_alive(pid)
                    && self.unlink(&entry).is_ok()
                {
                    self.notes.push(format!(
                        "removed {}, a temp file left by an interrupted run (process {pid})",
                        self.in_dir(&entry)
                    ));
                }
            }
        }
    }

    /// Creates `name` in the directory exclusively (never through a symlink) and fills it.
    fn create_filled(&self, name: &str, bytes: &[u8]) -> Result<(), OsError> {
        let shown = self.in_dir(name);
        let mode = self
            .existing
            .as_ref()
            .map_or(0o644, |(st, _)| st.st_mode & 0o7777);
        let fd = open_raw(
            Some(self.dir.as_raw_fd()),
            OsStr::new(name),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            mode & 0o777,
        )
        .map_err(|e| OsError::io(&shown, &e))?;
        if let Some((st, _)) = &self.existing {
            // Refused by some filesystems (pmxcfs allows only 0640/0600); never fatal.
            // SAFETY: fchown/fchmod on the fd we own.
            unsafe {
                let _ = libc::fchown(fd.as_raw_fd(), st.st_uid, st.st_gid);
                let _ = libc::fchmod(fd.as_raw_fd(), st.st_mode & 0o7777);
            }
        }
        let mut f = File::from(fd);
        let r = f.write_all(bytes).and_then(|_| f.sync_all());
        r.map_err(|e| OsError::io(&shown, &e))
    }

    fn rename(&self, from: &str, to: &OsStr) -> std::io::Result<()> {
        let (a, b) = (cstr(OsStr::new(from)), cstr(to));
        let d = self.dir.as_raw_fd();
        // SAFETY: valid dir fd and NUL-terminated names.
        if unsafe { libc::renameat(d, a.as_ptr(), d, b.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    fn temp_name(&self) -> String {
        format!(
            ".{}.{}.{}{TMP_SUFFIX}",
            self.name_str(),
            std::process::id(),
            random_hex()
        )
    }

    /// Writes a complete file `name` beside the target: temp name first, renamed when whole.
    fn write_whole(&self, name: &OsStr, bytes: &[u8]) -> Result<(), OsError> {
        let tmp = self.temp_name();
        if let Err(e) = self.create_filled(&tmp, bytes) {
            let _ = self.unlink(&tmp);
            return Err(e);
        }
        step_pause();
        if let Err(e) = self.rename(&tmp, name) {
            let _ = self.unlink(&tmp);
            return Err(OsError::io(
                format!("rename from {}", self.in_dir(&tmp)),
                &e,
            ));
        }
        Ok(())
    }

    /// Copies the bytes read to `<file>.<pid>.<YYYY-MM-DD@HH:MM:SS>~` beside it (a temp file
    /// renamed once complete) and returns its path.
    pub fn backup(&self) -> Result<PathBuf, EditError> {
        let dest = backup_name(&self.path());
        let name = dest.file_name().unwrap_or_default().to_os_string();
        self.write_whole(&name, self.bytes())
            .map_err(|e| EditError::Backup(self.shown.clone(), e))?;
        self.sync_dir();
        Ok(dest)
    }

    /// Replaces the file's content with `after` (taking a backup first when asked and the file
    /// exists). The file on disk must still be the one read; otherwise `Changed`.
    pub fn write(
        &mut self,
        after: &[u8],
        want_backup: bool,
        style: TempStyle,
    ) -> Result<Applied, EditError> {
        self.clean_stale();
        let werr = |e: OsError| EditError::Write(self.shown.clone(), e);
        // The file must not have been replaced or edited since it was read.
        match (&self.existing, fstatat(self.dir.as_raw_fd(), &self.name)) {
            (Some((st, _)), Ok(now)) if same_file(st, &now) => {}
            (None, Err(e)) if e.raw_os_error() == Some(libc::ENOENT) => {}
            _ => return Err(EditError::Changed(self.shown.clone())),
        }
        if let Some((_, before)) = &self.existing {
            if self.read_now()?.1 != *before {
                return Err(EditError::Changed(self.shown.clone()));
            }
        }
        let backup_file = if want_backup && self.exists() {
            Some(self.backup()?)
        } else {
            None
        };
        let applied = |backup_file| Applied {
            changed: true,
            backup_file,
            notes: self.notes.clone(),
        };
        let tmp = match style {
            TempStyle::Hidden => self.temp_name(),
            TempStyle::DotNew => {
                let n = format!("{}.new", self.name_str());
                // A leftover from an interrupted edit would make O_EXCL fail.
                let _ = self.unlink(&n);
                n
            }
        };
        if let Err(e) = self.create_filled(&tmp, after) {
            let _ = self.unlink(&tmp);
            return Err(werr(e));
        }
        step_pause();
        match self.rename(&tmp, &self.name) {
            Ok(()) => {
                self.sync_dir();
                Ok(applied(backup_file))
            }
            // A target that is itself a mount point (a bind-mounted /etc/hosts, as in containers
            // and the lab's nodes) cannot be renamed over: write it in place instead.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && self.exists() => {
                let _ = self.unlink(&tmp);
                self.write_in_place(after)?;
                Ok(applied(backup_file))
            }
            Err(e) => {
                let _ = self.unlink(&tmp);
                Err(werr(OsError::io(
                    format!("rename from {}", self.in_dir(&tmp)),
                    &e,
                )))
            }
        }
    }

    /// Rewrites a mount-point target in place: its old bytes are first saved complete beside it,
    /// and only removed once the new bytes are written and fsynced; a failure puts them back.
    fn write_in_place(&self, after: &[u8]) -> Result<(), EditError> {
        const STEP: &str = "in place (it is a mount point)";
        let werr = |e: OsError| EditError::Write(self.shown.clone(), e);
        let old = self.bytes();
        let saved = format!(".{}.{}{SAVED_SUFFIX}", self.name_str(), std::process::id());
        self.write_whole(OsStr::new(&saved), old).map_err(|e| {
            werr(OsError::text(
                STEP,
                format!("saving the old bytes first: {e}"),
            ))
        })?;
        self.sync_dir();
        let fd = match open_raw(
            Some(self.dir.as_raw_fd()),
            &self.name,
            libc::O_WRONLY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = self.unlink(&saved);
                return Err(werr(OsError::io(STEP, &e)));
            }
        };
        let f = File::from(fd);
        match fstat(f.as_raw_fd()) {
            Ok(st)
                if self
                    .existing
                    .as_ref()
                    .is_some_and(|(s, _)| same_file(s, &st)) => {}
            _ => {
                let _ = self.unlink(&saved);
                return Err(EditError::Changed(self.shown.clone()));
            }
        }
        if let Err(e) = overwrite(&f, after) {
            let cause = OsError::io(STEP, &e);
            return match overwrite(&f, old) {
                Ok(()) => {
                    let _ = self.unlink(&saved);
                    self.sync_dir();
                    Err(werr(OsError {
                        tail: "; the old bytes were put back".into(),
                        ..cause
                    }))
                }
                Err(r) => Err(EditError::Damaged(Box::new(Damage {
                    path: self.shown.clone(),
                    cause,
                    restore: OsError::io("", &r),
                    saved: self.in_dir(&saved),
                }))),
            };
        }
        let _ = self.unlink(&saved);
        self.sync_dir();
        Ok(())
    }
}

/// Writes `bytes` over the start of `f`, cuts it to their length, fsyncs (same inode).
fn overwrite(f: &File, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    // Written in pieces (with the fault tests' pause between them) so a kill can land inside.
    let mut off = 0;
    for chunk in bytes.chunks(4096) {
        f.write_all_at(chunk, off as u64)?;
        off += chunk.len();
        step_pause();
    }
    f.set_len(bytes.len() as u64)?;
    f.sync_all()
}

/// Follows the symlinks of `path` the way the kernel does and returns the file that would be
/// replaced (the target may not exist yet).
pub fn resolve(path: &Path) -> Result<PathBuf, EditError> {
    match Target::locate(path) {
        Ok(t) => Ok(t.path()),
        Err(EditError::UnsafeDir { .. } | EditError::Changed(_) | EditError::Busy(..)) => {
            // Resolution only: the refusal comes when the file is read or written.
            let fd = open_raw(None, path.as_os_str(), libc::O_PATH, 0)
                .map_err(|e| EditError::Read(show(path), OsError::io("", &e)))?;
            fd_path(fd.as_raw_fd(), path)
                .map_err(|e| EditError::Read(show(path), OsError::io("", &e)))
        }
        Err(e) => Err(e),
    }
}

/// Reads a whole file as bytes (following symlinks). A missing file is `NotFound`.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, EditError> {
    Target::open(path).map(|mut t| t.existing.take().map(|(_, b)| b).unwrap_or_default())
}

/// Reads a whole file as UTF-8 text; a NUL byte or invalid UTF-8 is `NotText`.
pub fn read_text(path: &Path) -> Result<String, EditError> {
    let bytes = read_bytes(path)?;
    if bytes.contains(&0) {
        return Err(EditError::NotText(show(path)));
    }
    String::from_utf8(bytes).map_err(|_| EditError::NotText(show(path)))
}

/// `<file>.<pid>.<YYYY-MM-DD@HH:MM:SS>~`, the name Ansible's `backup_local` uses.
pub fn backup_name(path: &Path) -> PathBuf {
    let now = local_timestamp();
    PathBuf::from(format!(
        "{}.{}.{}~",
        path.display(),
        std::process::id(),
        now
    ))
}

fn local_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // time_t's width is inferred from localtime_r (musl is moving it to 64 bits everywhere).
    let t = secs as _;
    // SAFETY: localtime_r writes into the zeroed struct we own; both pointers are valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return secs.to_string();
    }
    format!(
        "{:04}-{:02}-{:02}@{:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The outcome of [`apply`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    pub changed: bool,
    pub backup_file: Option<PathBuf>,
    /// Leftovers of interrupted runs that were restored or removed (for `warnings`).
    pub notes: Vec<String>,
}

/// Writes `after` over `path` if it differs from `before` (unless `check_mode`), taking a
/// backup first when asked. `path` may be a symlink: the file it points to is replaced. The
/// file must still hold `before` (else `Changed`: it was edited, or a symlink was swapped).
pub fn apply(
    path: &Path,
    before: &str,
    after: &str,
    check_mode: bool,
    want_backup: bool,
    style: TempStyle,
) -> Result<Applied, EditError> {
    apply_bytes(
        path,
        before.as_bytes(),
        after.as_bytes(),
        check_mode,
        want_backup,
        style,
    )
}

/// [`apply`] for bytes.
pub fn apply_bytes(
    path: &Path,
    before: &[u8],
    after: &[u8],
    check_mode: bool,
    want_backup: bool,
    style: TempStyle,
) -> Result<Applied, EditError> {
    if before == after {
        return Ok(Applied::default());
    }
    if check_mode {
        return Ok(Applied {
            changed: true,
            ..Applied::default()
        });
    }
    let mut t = Target::locate(path)?;
    if t.bytes() != before {
        return Err(EditError::Changed(show(path)));
    }
    t.write(after, want_backup, style)
}

/// Ansible's diff structure for a file edit.
pub fn diff(path: &Path, before: &str, after: &str) -> Diff {
    Diff {
        before: before.to_string(),
        after: after.to_string(),
        before_header: format!("{} (before)", path.display()),
        after_header: format!("{} (after)", path.display()),
    }
}

/// A private scratch file for a tool to read (`corosync -t -c FILE`): created with an
/// unpredictable name (`O_EXCL|O_NOFOLLOW`, mode 0600) in the temp directory, removed on drop.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// `tag` becomes part of the name (`pve2node-<tag>-<pid>-<random>`).
    pub fn new(tag: &str, bytes: &[u8]) -> Result<Scratch, String> {
        let dir = std::env::temp_dir();
        for _ in 0..8 {
            let path = dir.join(format!(
                "pve2node-{tag}-{}-{}",
                std::process::id(),
                random_hex()
            ));
            let fd = match open_raw(
                None,
                path.as_os_str(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                0o600,
            ) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(format!("cannot write {}: {}", show(&path), io_reason(&e))),
            };
            let s = Scratch { path };
            let mut f = File::from(fd);
            f.write_all(bytes)
                .map_err(|e| format!("cannot write {}: {}", show(&s.path), io_reason(&e)))?;
            return Ok(s);
        }
        Err(format!("cannot create a temp file in {}", show(&dir)))
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests;
