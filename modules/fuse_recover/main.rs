//! fuse_recover: finds a FUSE filesystem (pmxcfs at /etc/pve) left as a dead mount
//! ("Transport endpoint is not connected"), unmounts it (forced, lazy when busy), starts the
//! filesystem's service again and waits until the path is healthy.
//!
//! Shape: the argspec as data; `diagnose` reads the kernel's view at the edge (mountinfo, a
//! stat, the health file) into a `Probe`; `classify` and `plan` are pure; `execute` performs
//! the plan (umount2, the start command, polling) and records every step.

use pve2node::mounts::{self, Mount};
use pve2node::protocol::{self, Ctx, Default as D, Elem, Failure, Outcome, Param, Spec, Type};
use pve2node::run;
use serde_json::{json, Value};
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

const SPEC: Spec = Spec {
    module: "fuse_recover",
    params: &[
        Param::new("path", Type::Path).default(D::Str("/etc/pve")),
        Param::new("service", Type::Str).default(D::Str("pve-cluster")),
        Param::new("service_manager", Type::Str)
            .default(D::Str("auto"))
            .choices(&["auto", "systemd", "sysv"]),
        Param::new("start_command", Type::List(Elem::Str)),
        Param::new("lazy", Type::Bool).default(D::Bool(true)),
        Param::new("timeout", Type::Int)
            .default(D::Int(30))
            .range(0, 86_400),
        Param::new("health_file", Type::Str).default(D::Str(".members")),
    ],
    mutually_exclusive: &[],
    required_if: &[],
    supports_check_mode: true,
};

/// How long one stat/read of the path may take before the FUSE daemon counts as hung.
const PROBE_LIMIT: Duration = Duration::from_secs(5);
/// Pause between health checks while waiting after the start.
const POLL: Duration = Duration::from_millis(100);
/// At most this many FUSE mounts stacked at the path are taken off.
const MAX_LAYERS: usize = 8;

const ENOTCONN: i32 = libc::ENOTCONN;
const ECONNABORTED: i32 = libc::ECONNABORTED;

// ---------------------------------------------------------------------------------------
// Parameters

#[derive(Debug, thiserror::Error, PartialEq)]
enum ParamError {
    #[error("path must be an absolute path without '..' (got '{0}')")]
    Path(String),
    #[error("health_file must be a relative path inside path, without '..' (got '{0}'); use an empty string to check only the mount")]
    HealthFile(String),
    #[error("service must be a service name such as pve-cluster (ASCII letters, digits and : _ . @ -, not starting with '-' or '.') when start_command is not given (got '{0}')")]
    Service(String),
    #[error("start_command is an argv list and is not run through a shell: give it as a list, e.g. ['/etc/init.d/pve-cluster', 'start'] (got '{0}')")]
    StartShell(String),
}

/// A value as error messages show it: whole when short, else its first 100 characters and its
/// length (a huge input is never echoed whole).
fn shown(v: &str) -> String {
    const MAX: usize = 100;
    match v.char_indices().nth(MAX) {
        None => v.to_string(),
        Some((end, _)) => format!("{}… ({} bytes in all)", &v[..end], v.len()),
    }
}

/// The validated parameters, in the form the pure functions use.
#[derive(Debug, Clone, PartialEq)]
struct Params {
    path: PathBuf,
    /// The argv that starts the filesystem (from start_command or the service).
    start: Vec<String>,
    lazy: bool,
    timeout: Duration,
    /// Empty: only the mount and a stat are checked.
    health_file: String,
}

/// Which service manager `auto` means, given whether systemd runs the system.
fn start_argv(
    start_command: &[String],
    service: &str,
    manager: &str,
    systemd_running: bool,
) -> Result<Vec<String>, ParamError> {
    if !start_command.is_empty() {
        if let [one] = start_command {
            if one.trim() != one || one.contains(' ') && !Path::new(one).exists() {
                return Err(ParamError::StartShell(shown(one)));
            }
        }
        return Ok(start_command.to_vec());
    }
    if !plain_unit_name(service) {
        return Err(ParamError::Service(shown(service)));
    }
    let systemd = match manager {
        "systemd" => true,
        "sysv" => false,
        _ => systemd_running,
    };
    Ok(if systemd {
        // restart, not start: it starts a stopped or failed unit, and it also stops and starts
        // one that systemd still counts as active while its FUSE mount is dead.
        // `--`: whatever the name, systemctl never reads it as an option.
        vec![
            "systemctl".into(),
            "restart".into(),
            "--".into(),
            service.into(),
        ]
    } else {
        vec![format!("/etc/init.d/{service}"), "start".into()]
    })
}

/// A plain service (unit) name: systemd's unit-name characters (ASCII letters, digits, `:`,
/// `_`, `.`, `@`, `-`), at most 255 of them, not starting with `-` or `.` (never an option
/// for systemctl, never a path for /etc/init.d).
fn plain_unit_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_.@-".contains(&b))
}

/// `/x/./y/` → `/x/y`; relative paths and `..` are refused.
fn normal_path(p: &str) -> Result<PathBuf, ParamError> {
    let path = Path::new(p);
    if !path.is_absolute()
        || path.components().any(|c| c == Component::ParentDir)
        || p.contains('\0')
    {
        return Err(ParamError::Path(shown(p)));
    }
    Ok(path.components().collect())
}

fn check_health_file(h: &str) -> Result<String, ParamError> {
    let p = Path::new(h);
    if p.is_absolute() || p.components().any(|c| c == Component::ParentDir) || h.contains('\0') {
        return Err(ParamError::HealthFile(shown(h)));
    }
    Ok(h.to_string())
}

fn params(p: &protocol::Params, systemd_running: bool) -> Result<Params, ParamError> {
    let timeout = p.duration("timeout");
    Ok(Params {
        path: normal_path(p.str_or_empty("path"))?,
        start: start_argv(
            &p.list("start_command"),
            p.str_or_empty("service"),
            p.str("service_manager").unwrap_or("auto"),
            systemd_running,
        )?,
        lazy: p.bool("lazy").unwrap_or(true),
        timeout,
        health_file: check_health_file(p.str_or_empty("health_file"))?,
    })
}

/// The mount point as the KERNEL resolves it, never by string math: `path` is opened with
/// O_PATH (the kernel follows every symlink, `..` inside a link target included, and asks
/// nothing of a FUSE daemon), its real location is read back from `/proc/self/fd`, and its
/// parent directory is held open. Every later step (mount lookup by the opened file's mount id,
/// stat, health file, umount2) goes through that open directory (`/proc/self/fd/N/<name>`), so
/// a directory or symlink another user swaps in the path afterwards cannot redirect it.
#[derive(Debug)]
struct Target {
    /// The kernel's spelling of the mount point, as mountinfo shows it.
    path: PathBuf,
    /// The parent directory, opened (None for `/`, or when not even it could be opened).
    parent: Option<File>,
    name: OsString,
}

impl Target {
    /// The mount point reached through the opened parent directory.
    fn via(&self) -> PathBuf {
        match &self.parent {
            Some(dir) => {
                PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(&self.name)
            }
            None => self.path.clone(),
        }
    }
    /// The mount on top at exactly the mount point: the mount the kernel enters when it looks
    /// the name up in the opened parent directory, when that is another mount than the
    /// parent's (by mount id, so a rename of a directory in the path meanwhile does not
    /// matter); else nothing is mounted there.
    fn mount(&self, table: &[Mount]) -> Option<Mount> {
        let (id, parent_id) = match &self.parent {
            Some(dir) => (mount_id(&open_at(dir, &self.name).ok()?)?, mount_id(dir)?),
            // `/` is always the root of a mount.
            None => (mount_id(&open_path(&self.path, 0).ok()?)?, u64::MAX),
        };
        if id == parent_id {
            return None;
        }
        table.iter().find(|m| m.id == id).cloned()
    }
}

/// open(2) with O_PATH (no read, no FUSE request; symlinks followed unless `flags` says).
fn open_path(path: &Path, flags: i32) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | flags)
        .open(path)
}

/// openat(2) of `name` in `dir`, O_PATH | O_NOFOLLOW.
fn open_at(dir: &File, name: &OsStr) -> std::io::Result<File> {
    let c = CString::new(name.as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: openat with a valid directory fd and a NUL-terminated name; on success the
    // returned fd is ours alone and is owned by the File from here on.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Where the kernel says an open file is (readlink of /proc/self/fd/N).
fn fd_path(f: &File) -> std::io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

/// The id of the mount an open file is on (`mnt_id:` of /proc/self/fdinfo/N).
fn mount_id(f: &File) -> Option<u64> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", f.as_raw_fd())).ok()?;
    parse_mnt_id(&info)
}

/// Pure: the `mnt_id:` field of an fdinfo text.
fn parse_mnt_id(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Resolves `given` through the kernel (see [`Target`]).
fn resolve(given: &Path) -> Result<Target, String> {
    let unresolved = |path: &Path| -> Target {
        // Not there (yet): its parent resolved by the kernel when it can be opened.
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => match open_path(parent, libc::O_DIRECTORY) {
                Ok(dir) => Target {
                    path: fd_path(&dir).map_or_else(|_| path.to_path_buf(), |d| d.join(name)),
                    parent: Some(dir),
                    name: name.to_os_string(),
                },
                Err(_) => Target {
                    path: path.to_path_buf(),
                    parent: None,
                    name: name.to_os_string(),
                },
            },
            _ => Target {
                path: path.to_path_buf(),
                parent: None,
                name: OsString::new(),
            },
        }
    };
    let Ok(at) = open_path(given, 0) else {
        return Ok(unresolved(given));
    };
    let real = fd_path(&at).map_err(|e| {
        format!(
            "cannot read where {} leads: {}",
            given.display(),
            linux_reason(&e)
        )
    })?;
    let (Some(parent), Some(name)) = (real.parent(), real.file_name()) else {
        return Ok(Target {
            path: real,
            parent: None,
            name: OsString::new(),
        });
    };
    let dir = open_path(parent, libc::O_DIRECTORY)
        .map_err(|e| format!("cannot open {}: {}", parent.display(), linux_reason(&e)))?;
    // The directory as opened must hold the very same thing at `name`: nothing was swapped in
    // between (same place, same mount).
    let again = open_at(&dir, name).ok();
    let same = again.as_ref().is_some_and(|f| {
        fd_path(f).ok().as_deref() == Some(real.as_path()) && mount_id(f) == mount_id(&at)
    });
    if !same {
        return Err(format!(
            "{} changed while it was being resolved (a directory or symlink in it was replaced); nothing was done, run again",
            given.display()
        ));
    }
    let name = name.to_os_string();
    Ok(Target {
        path: real,
        parent: Some(dir),
        name,
    })
}

fn linux_reason(e: &std::io::Error) -> String {
    Errno::from_io(e).text
}

// ---------------------------------------------------------------------------------------
// Diagnosis

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Healthy,
    Stale,
    Unmounted,
    Other,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Stale => "stale",
            State::Unmounted => "unmounted",
            State::Other => "other",
        }
    }
}

/// An error from a system call: errno and its text.
#[derive(Debug, Clone, PartialEq)]
struct Errno {
    code: i32,
    text: String,
}

impl Errno {
    fn from_io(e: &std::io::Error) -> Errno {
        let code = e.raw_os_error().unwrap_or(0);
        Errno {
            code,
            text: linux_text(code).map_or_else(|| pve2node::io_reason(e), str::to_string),
        }
    }
    fn last() -> Errno {
        Errno::from_io(&std::io::Error::last_os_error())
    }
    fn name(&self) -> &'static str {
        match self.code {
            libc::ENOTCONN => "ENOTCONN",
            libc::ECONNABORTED => "ECONNABORTED",
            libc::EBUSY => "EBUSY",
            libc::EINVAL => "EINVAL",
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::EACCES => "EACCES",
            libc::EIO => "EIO",
            libc::ETIMEDOUT => "ETIMEDOUT",
            _ => "",
        }
    }
    fn show(&self) -> String {
        match self.name() {
            "" => self.text.clone(),
            n => format!("{} ({n})", self.text),
        }
    }
    /// ENOTCONN, or ECONNABORTED that the very first call after the daemon's death may give.
    fn is_dead_fuse(&self) -> bool {
        self.code == ENOTCONN || self.code == ECONNABORTED
    }
}

/// The Linux (glibc) text of the errnos this module reports: what `ls`, `stat` and pmxcfs print
/// and what users search for. The release binaries use musl, whose strerror words some of them
/// differently (ENOTCONN is "Socket not connected" there), so the texts are not taken from the C
/// library.
fn linux_text(code: i32) -> Option<&'static str> {
    Some(match code {
        libc::ENOTCONN => "Transport endpoint is not connected",
        libc::ECONNABORTED => "Software caused connection abort",
        libc::EBUSY => "Device or resource busy",
        libc::EINVAL => "Invalid argument",
        libc::EPERM => "Operation not permitted",
        libc::ENOENT => "No such file or directory",
        libc::EACCES => "Permission denied",
        libc::EIO => "Input/output error",
        libc::ETIMEDOUT => "Connection timed out",
        libc::ENOTDIR => "Not a directory",
        libc::ELOOP => "Too many levels of symbolic links",
        libc::ENAMETOOLONG => "File name too long",
        libc::ENOMEM => "Cannot allocate memory",
        libc::EAGAIN => "Resource temporarily unavailable",
        libc::EINTR => "Interrupted system call",
        libc::ENODEV => "No such device",
        libc::ENXIO => "No such device or address",
        libc::ESTALE => "Stale file handle",
        libc::EROFS => "Read-only file system",
        _ => return None,
    })
}

/// What the edge saw: the mount on top at the path, the stat, the health file.
#[derive(Debug, Clone, PartialEq)]
struct Probe {
    mount: Option<Mount>,
    stat: Result<(), Errno>,
    /// `None` when not checked (no health file, or the stat already failed).
    health: Option<Result<(), Errno>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Diagnosis {
    state: State,
    mount: Option<Mount>,
    /// Why it is not healthy (empty when healthy).
    error: String,
}

impl Diagnosis {
    fn to_json(&self) -> Value {
        json!({
            "state": self.state.name(),
            "mount": self.mount.as_ref().map(|m| json!({
                "id": m.id,
                "fstype": m.fstype,
                "source": m.source,
                "options": m.options,
            })),
            "error": if self.error.is_empty() { Value::Null } else { Value::from(self.error.clone()) },
        })
    }
}

/// Pure: the state from what was seen.
fn classify(probe: &Probe, path: &Path, health_file: &str) -> Diagnosis {
    let p = path.display();
    let d = |state, error: String| Diagnosis {
        state,
        mount: probe.mount.clone(),
        error,
    };
    let Some(m) = &probe.mount else {
        return d(State::Unmounted, format!("nothing is mounted at {p}"));
    };
    if !m.is_fuse() {
        return d(
            State::Other,
            format!(
                "{p} is a {} mount (source {}), not a FUSE one; it is left alone",
                m.fstype, m.source
            ),
        );
    }
    match (&probe.stat, &probe.health) {
        (Err(e), _) if e.is_dead_fuse() => d(State::Stale, format!("stat {p}: {}", e.show())),
        (Err(e), _) if e.code == libc::ETIMEDOUT => d(
            State::Other,
            format!(
                "stat {p}: {}; it is left alone (if its daemon is really stuck, writing 1 to \
                 /sys/fs/fuse/connections/{}/abort turns it into a dead mount this module recovers)",
                e.show(),
                m.dev.split_once(':').map_or("<minor>", |(_, minor)| minor)
            ),
        ),
        (Err(e), _) => d(
            State::Other,
            format!(
                "stat {p}: {}; the FUSE mount is not a dead one, it is left alone",
                e.show()
            ),
        ),
        (Ok(()), Some(Err(e))) if e.is_dead_fuse() => d(
            State::Stale,
            format!("reading {p}/{health_file}: {}", e.show()),
        ),
        (Ok(()), Some(Err(e))) => d(
            State::Other,
            format!(
                "{p} answers but {health_file} in it cannot be read: {}",
                e.show()
            ),
        ),
        (Ok(()), _) => d(State::Healthy, String::new()),
    }
}

/// Runs `f` in a thread and gives up waiting after `limit` (a hung FUSE daemon blocks a stat
/// for as long as it hangs; the thread then dies with the process).
fn bounded<F>(limit: Duration, f: F) -> Result<(), Errno>
where
    F: FnOnce() -> Result<(), Errno> + Send + 'static,
{
    within(limit, f).unwrap_or_else(|| {
        Err(Errno {
            code: libc::ETIMEDOUT,
            text: format!(
                "no answer within {} s (the FUSE daemon seems hung)",
                limit.as_secs_f64()
            ),
        })
    })
}

/// `f()` if it finishes within `limit`, else `None` (the thread is left to the process's end).
fn within<T, F>(limit: Duration, f: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

fn stat_path(path: &Path, limit: Duration) -> Result<(), Errno> {
    let p = path.to_path_buf();
    bounded(limit, move || {
        std::fs::metadata(&p)
            .map(|_| ())
            .map_err(|e| Errno::from_io(&e))
    })
}

fn read_health(file: &Path, limit: Duration) -> Result<(), Errno> {
    let f = file.to_path_buf();
    bounded(limit, move || {
        let mut buf = [0u8; 4096];
        std::fs::File::open(&f)
            .and_then(|mut h| h.read(&mut buf))
            .map(|_| ())
            .map_err(|e| Errno::from_io(&e))
    })
}

/// The edge: reads mountinfo, stats the mount point and reads the health file, all through
/// the opened parent directory of the kernel-resolved target.
fn diagnose(t: &Target, health_file: &str, limit: Duration) -> Result<Diagnosis, Failure> {
    let table = mounts::read_self().map_err(|e| {
        Failure::new(format!(
            "cannot read /proc/self/mountinfo: {} (is /proc mounted?)",
            linux_reason(&e)
        ))
    })?;
    let mount = t.mount(&table);
    let via = t.via();
    let stat = stat_path(&via, limit);
    let health = if stat.is_ok() && mount.is_some() && !health_file.is_empty() {
        Some(read_health(&via.join(health_file), limit))
    } else {
        None
    };
    Ok(classify(
        &Probe {
            mount,
            stat,
            health,
        },
        &t.path,
        health_file,
    ))
}

// ---------------------------------------------------------------------------------------
// Plan

#[derive(Debug, Clone, PartialEq)]
enum Action {
    /// umount2(MNT_FORCE); with `lazy_fallback`, umount2(MNT_DETACH) when that is busy.
    Unmount {
        lazy_fallback: bool,
    },
    Start {
        argv: Vec<String>,
    },
    WaitHealthy {
        timeout: Duration,
    },
}

impl Action {
    fn planned_json(&self, path: &Path) -> Value {
        match self {
            Action::Unmount { lazy_fallback } => json!({
                "action": "unmount",
                "syscall": format!("umount2({}, MNT_FORCE|UMOUNT_NOFOLLOW)", path.display()),
                "lazy_fallback": lazy_fallback,
                "result": "planned",
            }),
            Action::Start { argv } => json!({"action": "start", "cmd": argv, "result": "planned"}),
            Action::WaitHealthy { timeout } => {
                json!({"action": "wait", "timeout": timeout.as_secs(), "result": "planned"})
            }
        }
    }
}

/// Pure: what to do about a diagnosis.
fn plan(d: &Diagnosis, p: &Params) -> Vec<Action> {
    let start = || Action::Start {
        argv: p.start.clone(),
    };
    let wait = || Action::WaitHealthy { timeout: p.timeout };
    match d.state {
        State::Healthy | State::Other => Vec::new(),
        State::Stale => vec![
            Action::Unmount {
                lazy_fallback: p.lazy,
            },
            start(),
            wait(),
        ],
        State::Unmounted => vec![start(), wait()],
    }
}

// ---------------------------------------------------------------------------------------
// Execution (the edge)

fn umount2(path: &Path, flags: i32) -> Result<(), Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno {
        code: libc::EINVAL,
        text: "path contains a NUL byte".into(),
    })?;
    // SAFETY: umount2 with a valid NUL-terminated path; UMOUNT_NOFOLLOW keeps it from
    // following a symlink in place of the mount point (the `/proc/self/fd/N` part of a
    // Target's path is not the last component, so it is still followed to the open directory).
    let rc = unsafe { libc::umount2(c.as_ptr(), flags | libc::UMOUNT_NOFOLLOW) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// A process keeping a path busy.
#[derive(Debug, Clone, PartialEq)]
struct Holder {
    pid: u32,
    comm: String,
    uses: Vec<String>,
}

/// Pure: is the link target `target` at or below `path`?
fn inside(target: &[u8], path: &Path) -> bool {
    let p = path.as_os_str().as_bytes();
    target == p
        || (target.starts_with(p) && (p.ends_with(b"/") || target.get(p.len()) == Some(&b'/')))
}

/// Processes whose cwd, root or an open file is at or below `path` (from /proc).
fn holders(path: &Path) -> Vec<Holder> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = entry.path();
        let mut uses = Vec::new();
        for what in ["cwd", "root"] {
            if let Ok(t) = std::fs::read_link(base.join(what)) {
                if inside(t.as_os_str().as_bytes(), path) {
                    uses.push(what.to_string());
                }
            }
        }
        if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
            for fd in fds.flatten() {
                if let Ok(t) = std::fs::read_link(fd.path()) {
                    if inside(t.as_os_str().as_bytes(), path) {
                        uses.push(format!("fd {}", fd.file_name().to_string_lossy()));
                    }
                }
            }
        }
        if !uses.is_empty() {
            let comm = std::fs::read_to_string(base.join("comm"))
                .map(|s| s.trim_end().to_string())
                .unwrap_or_default();
            out.push(Holder { pid, comm, uses });
        }
    }
    out.sort_by_key(|h| h.pid);
    out
}

/// Everything the run did, for the result.
#[derive(Default)]
struct Report {
    steps: Vec<Value>,
    changed: bool,
}

/// The one way a command's `{cmd, rc, stdout, stderr, timed_out}` goes into this module's
/// results: merged into a step (with its action and result) or onto a failure.
fn command_fields(o: &run::Output) -> serde_json::Map<String, Value> {
    match o.to_json() {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// Takes the dead FUSE mount(s) off the target. Before each umount2 the top mount there is
/// checked again: it must be a FUSE mount whose stat fails as a dead one's does.
fn unmount(
    p: &Params,
    t: &Target,
    lazy_fallback: bool,
    report: &mut Report,
) -> Result<(), Failure> {
    let path = &t.path;
    for _ in 0..MAX_LAYERS {
        let d = diagnose(t, &p.health_file, PROBE_LIMIT)?;
        if d.state != State::Stale {
            if report.changed {
                return Ok(()); // the dead layer(s) are off
            }
            return Err(Failure::new(format!(
                "{} changed since it was diagnosed ({}: {}); nothing unmounted",
                path.display(),
                d.state.name(),
                if d.error.is_empty() {
                    "answers"
                } else {
                    &d.error
                }
            )));
        }
        let mount_id = d.mount.as_ref().map(|m| m.id);
        match unmount_step(t, libc::MNT_FORCE, "MNT_FORCE", mount_id, report) {
            Ok(()) => continue,
            Err(e) if e.code != libc::EBUSY => {
                return Err(Failure::new(format!(
                    "forced unmount of {} failed: {}",
                    path.display(),
                    e.show()
                )))
            }
            Err(_) => {}
        }
        if !lazy_fallback {
            return Err(busy_failure(path));
        }
        if let Err(e) = unmount_step(t, libc::MNT_DETACH, "MNT_DETACH", mount_id, report) {
            return Err(Failure::new(format!(
                "lazy unmount of {} failed: {}",
                path.display(),
                e.show()
            )));
        }
    }
    Err(Failure::new(format!(
        "{} still has a dead FUSE mount after taking off {MAX_LAYERS} of them; giving up",
        path.display()
    )))
}

/// One umount2 through the target's open parent directory, recorded as a step.
fn unmount_step(
    t: &Target,
    flag: i32,
    flag_name: &str,
    mount_id: Option<u64>,
    report: &mut Report,
) -> Result<(), Errno> {
    let r = umount2(&t.via(), flag);
    let mut step = json!({
        "action": "unmount",
        "syscall": format!("umount2({}, {flag_name}|UMOUNT_NOFOLLOW)", t.path.display()),
        "mount_id": mount_id,
    });
    match &r {
        Ok(()) => {
            step["result"] = "ok".into();
            report.changed = true;
        }
        Err(e) => {
            step["result"] = "failed".into();
            step["errno"] = e.code.into();
            step["error"] = e.show().into();
        }
    }
    report.steps.push(step);
    r
}

/// The failure for a busy dead mount with `lazy: false`: who holds it.
fn busy_failure(path: &Path) -> Failure {
    let hs = holders(path);
    let subs: Vec<String> = mounts::read_self()
        .map(|t| {
            mounts::below(&t, path)
                .iter()
                .map(|m| m.mount_point.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut who: Vec<String> = hs
        .iter()
        .map(|h| format!("pid {} ({}, {})", h.pid, h.comm, h.uses.join(", ")))
        .collect();
    who.extend(subs.iter().map(|s| format!("mount {s}")));
    let named = if who.is_empty() {
        "no process or mount below it was found holding it".to_string()
    } else {
        format!("held by {}", who.join("; "))
    };
    Failure::new(format!(
        "{} is a dead FUSE mount but busy, so the forced unmount failed (`umount -f` says `target is busy.`), and lazy is false: \
         left mounted; {named}. Stop those processes (or set lazy: true) and run again",
        path.display()
    ))
    .with(
        "holders",
        hs.iter()
            .map(|h| json!({"pid": h.pid, "comm": h.comm, "uses": h.uses}))
            .collect::<Vec<_>>(),
    )
    .with("submounts", subs)
}

fn start(argv: &[String], limit: Duration, report: &mut Report) -> Result<(), Failure> {
    let cmd = argv.join(" ");
    // The start itself is bounded by the same timeout (at least 10 s, so a short health
    // timeout does not kill a service manager in the middle of its work).
    let out = run::run(argv, limit.max(Duration::from_secs(10))).map_err(|e| {
        report.steps.push(
            json!({"action": "start", "cmd": argv, "result": "failed", "error": e.to_string()}),
        );
        Failure::new(format!("cannot start the filesystem: {e}"))
    })?;
    report.changed = true;
    let fields = command_fields(&out);
    let mut step = Value::Object(fields.clone());
    step["action"] = "start".into();
    step["result"] = if out.success() { "ok" } else { "failed" }.into();
    report.steps.push(step);
    if out.success() {
        return Ok(());
    }
    let stderr = out.stderr.trim();
    let f = Failure::new(format!(
        "start command '{cmd}' {}{}",
        out.describe(),
        if stderr.is_empty() {
            String::new()
        } else {
            format!(": {stderr}")
        }
    ));
    Err(fields.into_iter().fold(f, |f, (k, v)| f.with(&k, v)))
}

/// Polls (bounded by `timeout`) until the target is healthy; records the wait as a step.
fn wait_healthy(p: &Params, t: &Target, report: &mut Report) -> Result<Diagnosis, Failure> {
    let mut last: Option<Result<Diagnosis, Failure>> = None;
    let r = pve2node::wait::until(p.timeout, POLL, |left| {
        let d = diagnose(t, &p.health_file, PROBE_LIMIT.min(left.max(POLL)));
        let done = !matches!(&d, Ok(d) if d.state != State::Healthy);
        last = Some(d);
        done.then_some(())
    });
    let elapsed = match r {
        Ok(((), e)) | Err(e) => e,
    };
    let d = last.unwrap_or_else(|| diagnose(t, &p.health_file, PROBE_LIMIT))?;
    let ok = d.state == State::Healthy;
    report.steps.push(json!({
        "action": "wait",
        "timeout": p.timeout.as_secs(),
        "elapsed": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "result": if ok { "healthy" } else { "failed" },
        "last_error": if ok { Value::Null } else { Value::from(d.error.clone()) },
    }));
    Ok(d)
}

/// The result fields every outcome and failure carries.
fn fields(
    path: &Path,
    before: &Diagnosis,
    after: Option<&Diagnosis>,
    steps: Value,
) -> Vec<(&'static str, Value)> {
    vec![
        ("path", path.display().to_string().into()),
        ("state_before", before.state.name().into()),
        (
            "state_after",
            after.map_or(Value::Null, |a| a.state.name().into()),
        ),
        ("diagnosis_before", before.to_json()),
        (
            "diagnosis_after",
            after.map_or(Value::Null, Diagnosis::to_json),
        ),
        ("actions", steps),
    ]
}

fn fail_with(f: Failure, changed: bool, fields: Vec<(&'static str, Value)>) -> Failure {
    fields
        .into_iter()
        .fold(f.with("changed", changed), |f, (k, v)| f.with(k, v))
}

fn outcome_with(o: Outcome, fields: Vec<(&'static str, Value)>) -> Outcome {
    fields.into_iter().fold(o, |o, (k, v)| o.with(k, v))
}

/// Check mode, or nothing to do: the diagnosis and the planned actions.
fn planned_outcome(t: &Target, before: &Diagnosis, actions: &[Action]) -> Outcome {
    let path = t.path.display();
    let msg = if actions.is_empty() {
        format!("{path} is healthy")
    } else {
        format!(
            "{path} is {}: would {}",
            before.state.name(),
            summary(actions)
        )
    };
    let planned: Vec<Value> = actions.iter().map(|a| a.planned_json(&t.path)).collect();
    outcome_with(
        Outcome::new(!actions.is_empty(), msg),
        fields(&t.path, before, Some(before), planned.into()),
    )
}

/// Phase: perform the plan; the diagnosis after it, or the failure with what was done.
fn execute(
    p: &Params,
    t: &Target,
    actions: &[Action],
    report: &mut Report,
) -> Result<Diagnosis, Failure> {
    let mut after = None;
    for a in actions {
        match a {
            Action::Unmount { lazy_fallback } => unmount(p, t, *lazy_fallback, report)?,
            Action::Start { argv } => start(argv, p.timeout, report)?,
            Action::WaitHealthy { .. } => after = Some(wait_healthy(p, t, report)?),
        }
    }
    match after {
        Some(a) => Ok(a),
        None => diagnose(t, &p.health_file, PROBE_LIMIT),
    }
}

fn logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let systemd = Path::new("/run/systemd/system").is_dir();
    let p = params(&ctx.params, systemd)?;
    // Phase: the mount point the kernel resolves (bounded: a hung FUSE daemon in the path).
    let given = p.path.clone();
    let t = within(PROBE_LIMIT, move || resolve(&given))
        .ok_or_else(|| {
            format!(
                "resolving {} got no answer within {} s (a hung FUSE daemon in the path?); nothing was done",
                p.path.display(),
                PROBE_LIMIT.as_secs()
            )
        })
        .and_then(|r| r)
        .map_err(Failure::new)?;
    // Phase: diagnosis and plan.
    let before = diagnose(&t, &p.health_file, PROBE_LIMIT)?;
    let actions = plan(&before, &p);
    let path = t.path.display().to_string();
    if before.state == State::Other {
        let f = Failure::new(format!("not acting: {}", before.error));
        return Err(fail_with(
            f,
            false,
            fields(&t.path, &before, Some(&before), json!([])),
        ));
    }
    if ctx.check_mode || actions.is_empty() {
        return Ok(planned_outcome(&t, &before, &actions));
    }
    // Phase: execution, then the verdict.
    let mut report = Report::default();
    let after = match execute(&p, &t, &actions, &mut report) {
        Ok(a) => a,
        Err(f) => {
            let now = diagnose(&t, &p.health_file, PROBE_LIMIT).ok();
            let steps = std::mem::take(&mut report.steps).into();
            return Err(fail_with(
                f,
                report.changed,
                fields(&t.path, &before, now.as_ref(), steps),
            ));
        }
    };
    let steps = std::mem::take(&mut report.steps).into();
    if after.state != State::Healthy {
        let f = Failure::new(format!(
            "{path} is still not healthy {} s after the start: {}",
            p.timeout.as_secs(),
            after.error
        ));
        return Err(fail_with(
            f,
            report.changed,
            fields(&t.path, &before, Some(&after), steps),
        ));
    }
    Ok(outcome_with(
        Outcome::new(
            report.changed,
            format!("{path} was {} and is healthy again", before.state.name()),
        ),
        fields(&t.path, &before, Some(&after), steps),
    ))
}

fn summary(actions: &[Action]) -> String {
    actions
        .iter()
        .map(|a| match a {
            Action::Unmount {
                lazy_fallback: true,
            } => "unmount (forced, lazy if busy)".to_string(),
            Action::Unmount {
                lazy_fallback: false,
            } => "unmount (forced)".to_string(),
            Action::Start { argv } => format!("run '{}'", argv.join(" ")),
            Action::WaitHealthy { timeout } => {
                format!("wait up to {} s until healthy", timeout.as_secs())
            }
        })
        .collect::<Vec<_>>()
        .join(", then ")
}

fn main() {
    protocol::run(&SPEC, logic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(fstype: &str) -> Mount {
        mounts::parse_line(format!("40 25 0:39 / /etc/pve rw - {fstype} /dev/fuse rw").as_bytes())
            .unwrap()
    }
    fn err(code: i32) -> Errno {
        Errno {
            code,
            text: format!("errno {code}"),
        }
    }
    fn probe(m: Option<&str>, stat: Result<(), i32>, health: Option<Result<(), i32>>) -> Probe {
        Probe {
            mount: m.map(mount),
            stat: stat.map_err(err),
            health: health.map(|h| h.map_err(err)),
        }
    }
    fn state(p: Probe) -> State {
        classify(&p, Path::new("/etc/pve"), ".members").state
    }
    fn params() -> Params {
        Params {
            path: "/etc/pve".into(),
            start: vec!["/etc/init.d/pve-cluster".into(), "start".into()],
            lazy: true,
            timeout: Duration::from_secs(30),
            health_file: ".members".into(),
        }
    }

    #[test]
    fn classify_states() {
        use State::*;
        assert_eq!(state(probe(Some("fuse"), Ok(()), Some(Ok(())))), Healthy);
        assert_eq!(state(probe(Some("fuse.pmxcfs"), Ok(()), None)), Healthy);
        assert_eq!(state(probe(Some("fuse"), Err(libc::ENOTCONN), None)), Stale);
        assert_eq!(
            state(probe(Some("fuse"), Err(libc::ECONNABORTED), None)),
            Stale
        );
        assert_eq!(
            state(probe(Some("fuseblk"), Err(libc::ENOTCONN), None)),
            Stale
        );
        // Attributes still cached, but the daemon is gone: the health file tells.
        assert_eq!(
            state(probe(Some("fuse"), Ok(()), Some(Err(libc::ENOTCONN)))),
            Stale
        );
        assert_eq!(state(probe(None, Ok(()), None)), Unmounted);
        assert_eq!(state(probe(None, Err(libc::ENOENT), None)), Unmounted);
        // Not FUSE, even if its stat fails like a dead FUSE's: never touched.
        assert_eq!(
            state(probe(Some("tmpfs"), Err(libc::ENOTCONN), None)),
            Other
        );
        assert_eq!(state(probe(Some("fusectl"), Ok(()), None)), Other);
        assert_eq!(state(probe(Some("fuse"), Err(libc::EACCES), None)), Other);
        assert_eq!(
            state(probe(Some("fuse"), Err(libc::ETIMEDOUT), None)),
            Other
        );
        assert_eq!(
            state(probe(Some("fuse"), Ok(()), Some(Err(libc::ENOENT)))),
            Other
        );
        let d = classify(
            &probe(Some("tmpfs"), Ok(()), None),
            Path::new("/etc/pve"),
            "",
        );
        assert!(d.error.contains("tmpfs mount"), "{}", d.error);
        let d = classify(
            &probe(Some("fuse"), Ok(()), Some(Err(libc::ENOENT))),
            Path::new("/etc/pve"),
            ".members",
        );
        assert!(d.error.contains(".members"), "{}", d.error);
        let d = classify(
            &probe(Some("fuse"), Err(libc::ETIMEDOUT), None),
            Path::new("/etc/pve"),
            "",
        );
        assert!(
            d.error.contains("/sys/fs/fuse/connections/39/abort"),
            "{}",
            d.error
        );
    }

    #[test]
    fn plan_per_state() {
        let p = params();
        let d = |state| Diagnosis {
            state,
            mount: None,
            error: String::new(),
        };
        assert!(plan(&d(State::Healthy), &p).is_empty());
        assert!(plan(&d(State::Other), &p).is_empty());
        let start = Action::Start {
            argv: p.start.clone(),
        };
        let wait = Action::WaitHealthy {
            timeout: Duration::from_secs(30),
        };
        assert_eq!(
            plan(&d(State::Stale), &p),
            vec![
                Action::Unmount {
                    lazy_fallback: true
                },
                start.clone(),
                wait.clone()
            ]
        );
        assert_eq!(
            plan(&d(State::Unmounted), &p),
            vec![start.clone(), wait.clone()]
        );
        let strict = Params { lazy: false, ..p };
        assert_eq!(
            plan(&d(State::Stale), &strict)[0],
            Action::Unmount {
                lazy_fallback: false
            }
        );
    }

    #[test]
    fn start_command_choice() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            start_argv(&[], "pve-cluster", "auto", true).unwrap(),
            s(&["systemctl", "restart", "--", "pve-cluster"])
        );
        assert_eq!(
            start_argv(&[], "pve-cluster", "auto", false).unwrap(),
            s(&["/etc/init.d/pve-cluster", "start"])
        );
        assert_eq!(
            start_argv(&[], "pve-cluster", "sysv", true).unwrap(),
            s(&["/etc/init.d/pve-cluster", "start"])
        );
        assert_eq!(
            start_argv(&[], "x", "systemd", false).unwrap(),
            s(&["systemctl", "restart", "--", "x"])
        );
        let own = s(&["/usr/local/bin/mount-it", "--now"]);
        assert_eq!(
            start_argv(&own, "pve-cluster", "systemd", true).unwrap(),
            own
        );
        assert_eq!(
            start_argv(&[], "pve-cluster@a:b_c.service", "systemd", false).unwrap(),
            s(&["systemctl", "restart", "--", "pve-cluster@a:b_c.service"])
        );
        let long = "a".repeat(256);
        for bad in [
            "",
            " ",
            "../../bin/sh",
            "pve cluster",
            "--host=X",
            "-H",
            ".hidden",
            "a/b",
            "pvé",
            "a\nb",
            "a;b",
            "$(x)",
            long.as_str(),
        ] {
            assert_eq!(
                start_argv(&[], bad, "auto", false),
                Err(ParamError::Service(shown(bad)))
            );
        }
        let shell = s(&["/etc/init.d/pve-cluster start"]);
        assert!(matches!(
            start_argv(&shell, "pve-cluster", "auto", false),
            Err(ParamError::StartShell(_))
        ));
    }

    #[test]
    fn path_and_health_file_checks() {
        assert_eq!(normal_path("/etc/pve/").unwrap(), PathBuf::from("/etc/pve"));
        assert_eq!(
            normal_path("/etc/./pve").unwrap(),
            PathBuf::from("/etc/pve")
        );
        assert!(normal_path("etc/pve").is_err());
        assert!(normal_path("").is_err());
        assert!(normal_path("/etc/../pve").is_err());
        assert!(normal_path("/etc/p\0ve").is_err());
        assert!(check_health_file("").is_ok());
        assert!(check_health_file("nodes/a/x").is_ok());
        assert!(check_health_file("/etc/passwd").is_err());
        assert!(check_health_file("../x").is_err());
    }

    #[test]
    fn resolve_asks_the_kernel_including_dotdot_inside_a_link() {
        let base = std::env::temp_dir().join(format!("fr-kp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("deep/z")).unwrap();
        std::fs::create_dir_all(base.join("deep/mnt")).unwrap();
        std::fs::create_dir_all(base.join("mnt")).unwrap();
        // y -> deep/z; link -> y/../mnt: the kernel goes to deep/z, then up to deep, so
        // deep/mnt; textual `..` handling would give base/mnt.
        std::os::unix::fs::symlink("deep/z", base.join("y")).unwrap();
        std::os::unix::fs::symlink("y/../mnt", base.join("link")).unwrap();
        let real = std::fs::canonicalize(&base).unwrap();
        let t = resolve(&base.join("link")).unwrap();
        assert_eq!(t.path, real.join("deep/mnt"));
        assert_eq!(t.name, OsString::from("mnt"));
        assert!(t.parent.is_some());
        // The path through the open parent reaches the same directory.
        assert_eq!(
            std::fs::canonicalize(t.via()).unwrap(),
            real.join("deep/mnt")
        );
        // Not there: the parent is still resolved by the kernel.
        let t = resolve(&base.join("y/nothing")).unwrap();
        assert_eq!(t.path, real.join("deep/z/nothing"));
        // A loop ends with the path as given (nothing to open).
        std::os::unix::fs::symlink("loop", base.join("loop")).unwrap();
        assert!(resolve(&base.join("loop")).is_ok());
        assert_eq!(resolve(Path::new("/")).unwrap().path, PathBuf::from("/"));
        // Nothing is mounted at a plain directory.
        let table = mounts::read_self().unwrap();
        assert_eq!(resolve(&base.join("mnt")).unwrap().mount(&table), None);
        let _ = std::fs::remove_dir_all(&base);
    }

    /// Once resolved, the target is reached through its open parent directory: a parent
    /// swapped for a symlink to another tree afterwards (what another user with write access
    /// to the grandparent could do) does not redirect it.
    #[test]
    fn a_parent_swapped_after_the_resolution_does_not_redirect() {
        let base = std::env::temp_dir().join(format!("fr-swap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("a/mnt")).unwrap();
        std::fs::create_dir_all(base.join("evil/mnt")).unwrap();
        std::fs::write(base.join("a/mnt/mine"), "").unwrap();
        let real = std::fs::canonicalize(&base).unwrap();
        let t = resolve(&base.join("a/mnt")).unwrap();
        std::fs::rename(base.join("a"), base.join("a-old")).unwrap();
        std::os::unix::fs::symlink("evil", base.join("a")).unwrap();
        // The string path now leads elsewhere; the target does not.
        assert!(!base.join("a/mnt/mine").exists());
        assert!(t.via().join("mine").exists());
        assert_eq!(
            std::fs::canonicalize(t.via()).unwrap(),
            real.join("a-old/mnt")
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        assert_eq!(shown("pve-cluster"), "pve-cluster");
        let long = "é".repeat(5000);
        let s = shown(&long);
        assert!(s.starts_with(&"é".repeat(100)), "{s}");
        assert!(s.ends_with("… (10000 bytes in all)"), "{s}");
        assert!(s.chars().count() < 130);
        let msg = start_argv(&[], &long, "systemd", true)
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 600, "{}", msg.len());
    }

    #[test]
    fn mnt_id_from_fdinfo() {
        assert_eq!(
            parse_mnt_id("pos:\t0\nflags:\t012000000\nmnt_id:\t119\nino:\t1\n"),
            Some(119)
        );
        assert_eq!(parse_mnt_id("pos: 0\n"), None);
        let f = open_path(Path::new("/"), 0).unwrap();
        assert!(mount_id(&f).is_some());
    }

    #[test]
    fn errno_texts_are_the_linux_ones_whatever_the_c_library() {
        let e = Errno::from_io(&std::io::Error::from_raw_os_error(libc::ENOTCONN));
        assert_eq!(e.text, "Transport endpoint is not connected");
        assert_eq!(e.show(), "Transport endpoint is not connected (ENOTCONN)");
        let busy = Errno::from_io(&std::io::Error::from_raw_os_error(libc::EBUSY));
        assert_eq!(busy.show(), "Device or resource busy (EBUSY)");
        // glibc (the test build) agrees with every text of the table; musl would not.
        let mut mapped = 0;
        for code in 1..134 {
            if let Some(t) = linux_text(code) {
                mapped += 1;
                if cfg!(target_env = "gnu") {
                    let libc_text = pve2node::io_reason(&std::io::Error::from_raw_os_error(code));
                    assert_eq!(libc_text, t, "errno {code}");
                }
            }
        }
        assert!(mapped >= 19, "{mapped}");
        // An errno outside the table keeps the C library's text.
        assert!(
            !Errno::from_io(&std::io::Error::from_raw_os_error(libc::EXDEV))
                .text
                .is_empty()
        );
    }

    #[test]
    fn holder_path_match() {
        let p = Path::new("/etc/pve");
        assert!(inside(b"/etc/pve", p));
        assert!(inside(b"/etc/pve/nodes", p));
        assert!(!inside(b"/etc/pvex", p));
        assert!(!inside(b"/etc", p));
        assert!(inside(b"/x", Path::new("/")));
    }
}
