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
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

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
    #[error("timeout must be between 0 and 86400 seconds (got {0})")]
    Timeout(i64),
    #[error("service must be a service name such as pve-cluster (no '/', no spaces) when start_command is not given (got '{0}')")]
    Service(String),
    #[error("start_command is an argv list and is not run through a shell: give it as a list, e.g. ['/etc/init.d/pve-cluster', 'start'] (got '{0}')")]
    StartShell(String),
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
                return Err(ParamError::StartShell(one.clone()));
            }
        }
        return Ok(start_command.to_vec());
    }
    if service.is_empty() || service.contains(['/', '\0']) || service.contains(char::is_whitespace)
    {
        return Err(ParamError::Service(service.to_string()));
    }
    let systemd = match manager {
        "systemd" => true,
        "sysv" => false,
        _ => systemd_running,
    };
    Ok(if systemd {
        // restart, not start: it starts a stopped or failed unit, and it also stops and starts
        // one that systemd still counts as active while its FUSE mount is dead.
        vec!["systemctl".into(), "restart".into(), service.into()]
    } else {
        vec![format!("/etc/init.d/{service}"), "start".into()]
    })
}

/// `/x/./y/` → `/x/y`; relative paths and `..` are refused.
fn normal_path(p: &str) -> Result<PathBuf, ParamError> {
    let path = Path::new(p);
    if !path.is_absolute()
        || path.components().any(|c| c == Component::ParentDir)
        || p.contains('\0')
    {
        return Err(ParamError::Path(p.to_string()));
    }
    Ok(path.components().collect())
}

fn check_health_file(h: &str) -> Result<String, ParamError> {
    let p = Path::new(h);
    if p.is_absolute() || p.components().any(|c| c == Component::ParentDir) || h.contains('\0') {
        return Err(ParamError::HealthFile(h.to_string()));
    }
    Ok(h.to_string())
}

fn params(p: &protocol::Params, systemd_running: bool) -> Result<Params, ParamError> {
    let timeout = p.int("timeout").unwrap_or(30);
    if !(0..=86400).contains(&timeout) {
        return Err(ParamError::Timeout(timeout));
    }
    Ok(Params {
        path: normal_path(p.str_or_empty("path"))?,
        start: start_argv(
            &p.list("start_command"),
            p.str_or_empty("service"),
            p.str("service_manager").unwrap_or("auto"),
            systemd_running,
        )?,
        lazy: p.bool("lazy").unwrap_or(true),
        timeout: Duration::from_secs(timeout.unsigned_abs()),
        health_file: check_health_file(p.str_or_empty("health_file"))?,
    })
}

/// The kernel's spelling of `path`: symlinks in its parent resolved, and the path itself
/// when it is a symlink (read with lstat and readlink; a path that is a mount point is never
/// lstat'ed, as that would ask the FUSE daemon).
fn kernel_path(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..16 {
        let resolved = match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) => match std::fs::canonicalize(parent) {
                Ok(dir) => dir.join(name),
                Err(_) => return p,
            },
            _ => return p,
        };
        // A mount point is never a symlink: no lstat then (it would enter the mount).
        let mounted = mounts::read_self().is_ok_and(|t| mounts::at(&t, &resolved).is_some());
        let is_link = !mounted
            && std::fs::symlink_metadata(&resolved).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            return resolved;
        }
        match std::fs::read_link(&resolved) {
            Ok(target) => {
                let joined = resolved
                    .parent()
                    .map_or(target.clone(), |d| d.join(&target));
                // Lexically drop "." and resolve ".." against what is already real.
                let mut next = PathBuf::new();
                for c in joined.components() {
                    match c {
                        Component::ParentDir => {
                            next.pop();
                        }
                        Component::CurDir => {}
                        other => next.push(other),
                    }
                }
                p = next;
            }
            Err(_) => return resolved,
        }
    }
    p
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
        Errno {
            code: e.raw_os_error().unwrap_or(0),
            text: pve2node::io_reason(e),
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

/// The edge: reads mountinfo, stats the path and reads the health file.
fn diagnose(path: &Path, health_file: &str, limit: Duration) -> Result<Diagnosis, Failure> {
    let table = mounts::read_self().map_err(|e| {
        Failure::new(format!(
            "cannot read /proc/self/mountinfo: {} (is /proc mounted?)",
            pve2node::io_reason(&e)
        ))
    })?;
    let mount = mounts::at(&table, path).cloned();
    let stat = stat_path(path, limit);
    let health = if stat.is_ok() && mount.is_some() && !health_file.is_empty() {
        Some(read_health(&path.join(health_file), limit))
    } else {
        None
    };
    Ok(classify(
        &Probe {
            mount,
            stat,
            health,
        },
        path,
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
    // following a symlink in place of the mount point.
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
struct Report {
    steps: Vec<Value>,
    changed: bool,
}

/// Takes the dead FUSE mount(s) off `path`. Before each umount2 the top mount at `path` is
/// checked again: it must be a FUSE mount whose stat fails as a dead one's does.
fn unmount(p: &Params, lazy_fallback: bool, report: &mut Report) -> Result<(), Failure> {
    let path = &p.path;
    for _ in 0..MAX_LAYERS {
        let d = diagnose(path, &p.health_file, PROBE_LIMIT)?;
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
        let forced = umount2(path, libc::MNT_FORCE);
        let mut step = json!({
            "action": "unmount",
            "syscall": format!("umount2({}, MNT_FORCE|UMOUNT_NOFOLLOW)", path.display()),
            "mount_id": d.mount.as_ref().map(|m| m.id),
        });
        match forced {
            Ok(()) => {
                step["result"] = "ok".into();
                report.steps.push(step);
                report.changed = true;
                continue;
            }
            Err(e) => {
                step["result"] = "failed".into();
                step["errno"] = e.code.into();
                step["error"] = e.show().into();
                report.steps.push(step);
                if e.code != libc::EBUSY {
                    return Err(Failure::new(format!(
                        "forced unmount of {} failed: {}",
                        path.display(),
                        e.show()
                    )));
                }
            }
        }
        if !lazy_fallback {
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
            return Err(Failure::new(format!(
                "{} is a dead FUSE mount but busy, so the forced unmount failed, and lazy is false: \
                 left mounted; {named}. Stop those processes (or set lazy: true) and run again",
                path.display()
            ))
            .with(
                "holders",
                hs.iter()
                    .map(|h| json!({"pid": h.pid, "comm": h.comm, "uses": h.uses}))
                    .collect::<Vec<_>>(),
            )
            .with("submounts", subs));
        }
        let lazy = umount2(path, libc::MNT_DETACH);
        let mut step = json!({
            "action": "unmount",
            "syscall": format!("umount2({}, MNT_DETACH|UMOUNT_NOFOLLOW)", path.display()),
            "mount_id": d.mount.as_ref().map(|m| m.id),
        });
        match lazy {
            Ok(()) => {
                step["result"] = "ok".into();
                report.steps.push(step);
                report.changed = true;
            }
            Err(e) => {
                step["result"] = "failed".into();
                step["errno"] = e.code.into();
                step["error"] = e.show().into();
                report.steps.push(step);
                return Err(Failure::new(format!(
                    "lazy unmount of {} failed: {}",
                    path.display(),
                    e.show()
                )));
            }
        }
    }
    Err(Failure::new(format!(
        "{} still has a dead FUSE mount after taking off {MAX_LAYERS} of them; giving up",
        path.display()
    )))
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
    let mut step = out.to_json();
    step["action"] = "start".into();
    step["result"] = if out.success() { "ok" } else { "failed" }.into();
    report.steps.push(step);
    if out.success() {
        return Ok(());
    }
    let stderr = out.stderr.trim();
    Err(Failure::new(format!(
        "start command '{cmd}' {}{}",
        out.describe(),
        if stderr.is_empty() {
            String::new()
        } else {
            format!(": {stderr}")
        }
    ))
    .with("rc", out.rc_value())
    .with("stdout", out.stdout.clone())
    .with("stderr", out.stderr.clone()))
}

fn wait_healthy(p: &Params, report: &mut Report) -> Result<Diagnosis, Failure> {
    let begin = Instant::now();
    let deadline = begin + p.timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let d = diagnose(&p.path, &p.health_file, PROBE_LIMIT.min(left.max(POLL)))?;
        let done = d.state == State::Healthy || Instant::now() >= deadline;
        if done {
            let ok = d.state == State::Healthy;
            report.steps.push(json!({
                "action": "wait",
                "timeout": p.timeout.as_secs(),
                "elapsed": (begin.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
                "result": if ok { "healthy" } else { "failed" },
                "last_error": if ok { Value::Null } else { Value::from(d.error.clone()) },
            }));
            return Ok(d);
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

fn logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let systemd = Path::new("/run/systemd/system").is_dir();
    let mut p = params(&ctx.params, systemd)?;
    // lstat of a hung FUSE mount's root blocks: bounded, falling back to the path as given.
    let given = p.path.clone();
    p.path = within(PROBE_LIMIT, move || kernel_path(&given)).unwrap_or_else(|| p.path.clone());
    let before = diagnose(&p.path, &p.health_file, PROBE_LIMIT)?;
    let actions = plan(&before, &p);
    let path = p.path.display().to_string();

    let base = |f: Failure, before: &Diagnosis, after: Option<&Diagnosis>, r: &Report| {
        f.with("changed", r.changed)
            .with("path", path.clone())
            .with("state_before", before.state.name())
            .with(
                "state_after",
                after.map_or(Value::Null, |a| a.state.name().into()),
            )
            .with("diagnosis_before", before.to_json())
            .with(
                "diagnosis_after",
                after.map_or(Value::Null, Diagnosis::to_json),
            )
            .with("actions", r.steps.clone())
    };

    if before.state == State::Other {
        let r = Report {
            steps: Vec::new(),
            changed: false,
        };
        return Err(base(
            Failure::new(format!("not acting: {}", before.error)),
            &before,
            Some(&before),
            &r,
        ));
    }

    if ctx.check_mode || actions.is_empty() {
        let msg = if actions.is_empty() {
            format!("{path} is healthy")
        } else {
            format!(
                "{path} is {}: would {}",
                before.state.name(),
                summary(&actions)
            )
        };
        return Ok(Outcome::new(!actions.is_empty(), msg)
            .with("path", path.clone())
            .with("state_before", before.state.name())
            .with("state_after", before.state.name())
            .with("diagnosis_before", before.to_json())
            .with("diagnosis_after", before.to_json())
            .with(
                "actions",
                actions
                    .iter()
                    .map(|a| a.planned_json(&p.path))
                    .collect::<Vec<_>>(),
            ));
    }

    let mut report = Report {
        steps: Vec::new(),
        changed: false,
    };
    let mut after = None;
    for a in &actions {
        let res = match a {
            Action::Unmount { lazy_fallback } => unmount(&p, *lazy_fallback, &mut report),
            Action::Start { argv } => start(argv, p.timeout, &mut report),
            Action::WaitHealthy { .. } => wait_healthy(&p, &mut report).map(|d| {
                after = Some(d);
            }),
        };
        if let Err(f) = res {
            let now = diagnose(&p.path, &p.health_file, PROBE_LIMIT).ok();
            return Err(base(f, &before, now.as_ref(), &report));
        }
    }
    let after = match after {
        Some(a) => a,
        None => diagnose(&p.path, &p.health_file, PROBE_LIMIT)?,
    };
    if after.state != State::Healthy {
        let f = Failure::new(format!(
            "{path} is still not healthy {} s after the start: {}",
            p.timeout.as_secs(),
            after.error
        ));
        return Err(base(f, &before, Some(&after), &report));
    }
    Ok(Outcome::new(
        report.changed,
        format!("{path} was {} and is healthy again", before.state.name()),
    )
    .with("path", path)
    .with("state_before", before.state.name())
    .with("state_after", after.state.name())
    .with("diagnosis_before", before.to_json())
    .with("diagnosis_after", after.to_json())
    .with("actions", report.steps))
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
            s(&["systemctl", "restart", "pve-cluster"])
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
            s(&["systemctl", "restart", "x"])
        );
        let own = s(&["/usr/local/bin/mount-it", "--now"]);
        assert_eq!(
            start_argv(&own, "pve-cluster", "systemd", true).unwrap(),
            own
        );
        for bad in ["", " ", "../../bin/sh", "pve cluster"] {
            assert_eq!(
                start_argv(&[], bad, "auto", false),
                Err(ParamError::Service(bad.into()))
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
    fn kernel_path_resolves_symlinks_without_entering_the_target() {
        let base = std::env::temp_dir().join(format!("fr-kp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("real/etc")).unwrap();
        std::os::unix::fs::symlink("real/etc", base.join("etc")).unwrap();
        // The mount point itself is a symlink (relative, with ".."), and its target is missing
        // (as a dead mount cannot be entered): still resolved by readlink alone.
        std::os::unix::fs::symlink("../mnt/pve", base.join("real/etc/pve")).unwrap();
        let real = std::fs::canonicalize(&base).unwrap();
        assert_eq!(
            kernel_path(&base.join("etc/pve")),
            real.join("real/mnt/pve")
        );
        assert_eq!(kernel_path(&base.join("etc/x")), real.join("real/etc/x"));
        // A loop ends without hanging.
        std::os::unix::fs::symlink("loop", base.join("loop")).unwrap();
        let _ = kernel_path(&base.join("loop"));
        assert_eq!(kernel_path(Path::new("/")), PathBuf::from("/"));
        let _ = std::fs::remove_dir_all(&base);
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
