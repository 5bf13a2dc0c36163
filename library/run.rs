//! Running commands: by argv only (never through a shell), stdin closed, no controlling
//! terminal (a new session, so a program that would prompt on /dev/tty fails instead of
//! hanging), output captured but bounded (the last [`KEEP`] bytes of each stream, with a count
//! of what was dropped, so a flooding child never exhausts memory), and a timeout that kills
//! the whole process group.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many bytes of each of stdout and stderr are kept (the last ones).
pub const KEEP: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RunError {
    #[error("no command given")]
    Empty,
    #[error("cannot run {cmd}: {reason}")]
    Spawn {
        cmd: String,
        reason: String,
        errno: Option<i32>,
    },
}

impl RunError {
    /// The errno of the failed spawn (`ENOENT`, `EACCES`…), when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            RunError::Spawn { errno, .. } => *errno,
            RunError::Empty => None,
        }
    }
}

/// What a finished (or killed) command left.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Output {
    pub argv: Vec<String>,
    /// Exit status; `None` when killed by a signal (see `signal`) or by the timeout.
    pub rc: Option<i32>,
    pub signal: Option<i32>,
    /// The last [`KEEP`] bytes written to stdout (after a note when more was dropped).
    pub stdout: String,
    pub stderr: String,
    /// Bytes of stdout / stderr dropped before the kept tail (0 when all was kept).
    pub stdout_dropped: u64,
    pub stderr_dropped: u64,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.rc == Some(0)
    }
    /// `rc` as Ansible results show it: the exit status, or -signal, or -1 on timeout.
    pub fn rc_value(&self) -> i64 {
        match (self.rc, self.signal) {
            (Some(rc), _) => rc as i64,
            (None, Some(sig)) => -(sig as i64),
            _ => -1,
        }
    }
    /// The command line for messages (argv joined by spaces, for reading only).
    pub fn cmdline(&self) -> String {
        self.argv.join(" ")
    }
    /// `{cmd, rc, stdout, stderr}` for a module result; `stdout_dropped` / `stderr_dropped`
    /// are added when a stream was cut.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "cmd": self.argv,
            "rc": self.rc_value(),
            "stdout": self.stdout,
            "stderr": self.stderr,
            "timed_out": self.timed_out,
        });
        if self.stdout_dropped > 0 {
            v["stdout_dropped"] = self.stdout_dropped.into();
        }
        if self.stderr_dropped > 0 {
            v["stderr_dropped"] = self.stderr_dropped.into();
        }
        v
    }
    /// One line about how it ended, for `msg` texts.
    pub fn describe(&self) -> String {
        if self.timed_out {
            format!("timed out after {:.0} s", self.elapsed.as_secs_f64())
        } else if let Some(sig) = self.signal {
            format!("was killed by signal {sig}")
        } else {
            format!("exited with rc {}", self.rc_value())
        }
    }
}

/// Options for [`run`].
#[derive(Debug, Clone)]
pub struct Options {
    pub timeout: Duration,
    pub env: Vec<(String, String)>,
    pub cwd: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(60),
            env: Vec::new(),
            cwd: None,
        }
    }
}

/// The tail of a stream: at most [`KEEP`] bytes, and how many were dropped before them.
#[derive(Default)]
struct Tail {
    kept: VecDeque<u8>,
    dropped: u64,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        let bytes = if bytes.len() > KEEP {
            self.dropped += (bytes.len() - KEEP) as u64;
            &bytes[bytes.len() - KEEP..]
        } else {
            bytes
        };
        let over = (self.kept.len() + bytes.len()).saturating_sub(KEEP);
        self.kept.drain(..over);
        self.dropped += over as u64;
        self.kept.extend(bytes);
    }
    /// The kept text, after a note saying how much was dropped (if any).
    fn text(&self) -> (String, u64) {
        let (a, b) = self.kept.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        let mut s = String::new();
        if self.dropped > 0 {
            s = format!(
                "[pve2node: {} bytes of output dropped, the last {} follow]\n",
                self.dropped,
                bytes.len()
            );
        }
        s.push_str(&String::from_utf8_lossy(&bytes));
        (s, self.dropped)
    }
}

type Shared = (Arc<Mutex<Tail>>, Receiver<()>);

/// Reads a pipe to its end in a thread, keeping its tail in a buffer shared with the caller (so
/// what was read so far can be taken even while a left-behind daemon keeps the pipe open); the
/// receiver gets a message at end of file.
fn reader<R: Read + Send + 'static>(r: Option<R>) -> Shared {
    let buf = Arc::new(Mutex::new(Tail::default()));
    let (tx, rx) = mpsc::channel();
    let shared = Arc::clone(&buf);
    std::thread::spawn(move || {
        if let Some(mut r) = r {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut b) = shared.lock() {
                    b.push(&chunk[..n]);
                }
            }
        }
        let _ = tx.send(());
    });
    (buf, rx)
}

/// Waits at most `grace` for a reader to reach end of file, then takes what it kept.
fn collect(reader: Shared, grace: Duration) -> (String, u64) {
    let _ = reader.1.recv_timeout(grace);
    reader.0.lock().map(|b| b.text()).unwrap_or_default()
}

/// Runs `argv` with stdin closed, in a new session, and waits at most `opts.timeout`; on
/// timeout the whole process group is killed. Not finding the program is an error; a
/// non-zero exit is not (look at `rc`).
pub fn run_with(argv: &[String], opts: &Options) -> Result<Output, RunError> {
    let (prog, args) = argv.split_first().ok_or(RunError::Empty)?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C");
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    if let Some(d) = &opts.cwd {
        cmd.current_dir(d);
    }
    // SAFETY: setsid is async-signal-safe; it only detaches the child from our terminal and
    // makes it the leader of a new process group that the timeout can kill as a whole.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| RunError::Spawn {
        cmd: prog.clone(),
        reason: crate::io_reason(&e),
        errno: e.raw_os_error(),
    })?;
    let pid = child.id() as libc::pid_t;
    let out_r = reader(child.stdout.take());
    let err_r = reader(child.stderr.take());
    // The exit is waited for in a thread, so it is seen at once (no polling) and the timeout
    // is a plain receive timeout.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait().ok());
    });
    let (status, timed_out) = match rx.recv_timeout(opts.timeout) {
        Ok(st) => (st, false),
        Err(_) => {
            // SAFETY: kill(2) on the process group we created with setsid.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            (rx.recv_timeout(Duration::from_secs(5)).ok().flatten(), true)
        }
    };
    // A daemon the command left behind may keep our pipes open: take what was written by
    // then, without killing it (a start command is expected to leave its daemon running).
    let grace = if timed_out {
        Duration::from_secs(1)
    } else {
        opts.timeout
            .saturating_sub(start.elapsed())
            .clamp(Duration::from_millis(100), Duration::from_millis(500))
    };
    let (stdout, stdout_dropped) = collect(out_r, grace);
    let (stderr, stderr_dropped) = collect(err_r, grace);
    Ok(Output {
        argv: argv.to_vec(),
        rc: if timed_out {
            None
        } else {
            status.and_then(|s| s.code())
        },
        signal: if timed_out {
            None
        } else {
            status.and_then(|s| s.signal())
        },
        stdout,
        stderr,
        stdout_dropped,
        stderr_dropped,
        timed_out,
        elapsed: start.elapsed(),
    })
}

/// [`run_with`] with a timeout and default options.
pub fn run(argv: &[String], timeout: Duration) -> Result<Output, RunError> {
    run_with(
        argv,
        &Options {
            timeout,
            ..Options::default()
        },
    )
}

/// Finds an executable by name in $PATH (a name with a slash is taken as it is).
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let p = std::path::PathBuf::from(name);
        return is_exec(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_exec(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn captures_stdout_stderr_and_rc() {
        let o = run(
            &argv(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(o.stdout, "out\n");
        assert_eq!(o.stderr, "err\n");
        assert_eq!(o.rc, Some(3));
        assert!(!o.timed_out);
    }

    #[test]
    fn argv_is_not_shell_interpreted() {
        let o = run(&argv(&["echo", "$HOME;", "`id`"]), Duration::from_secs(10)).unwrap();
        assert_eq!(o.stdout, "$HOME; `id`\n");
    }

    #[test]
    fn stdin_is_closed() {
        let o = run(&argv(&["cat"]), Duration::from_secs(10)).unwrap();
        assert_eq!(o.rc, Some(0));
        assert_eq!(o.stdout, "");
    }

    #[test]
    fn no_controlling_terminal() {
        let o = run(
            &argv(&[
                "sh",
                "-c",
                "if (exec 3</dev/tty) 2>/dev/null; then echo has-tty; else echo no-tty; fi",
            ]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(o.stdout.trim(), "no-tty");
    }

    #[test]
    fn timeout_kills_the_group() {
        let o = run(
            &argv(&["sh", "-c", "sleep 30 & sleep 30"]),
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(o.timed_out);
        assert_eq!(o.rc, None);
        assert!(o.elapsed < Duration::from_secs(5), "took {:?}", o.elapsed);
        assert_eq!(o.rc_value(), -1);
    }

    #[test]
    fn a_daemon_left_behind_keeps_running_and_does_not_block() {
        let o = run(
            &argv(&["sh", "-c", "echo started; sleep 30 & echo $!; exit 0"]),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(o.rc, Some(0));
        assert!(o.elapsed < Duration::from_secs(5), "took {:?}", o.elapsed);
        let mut lines = o.stdout.lines();
        assert_eq!(lines.next(), Some("started"));
        let pid: i32 = lines.next().unwrap().trim().parse().unwrap();
        // SAFETY: signal 0 probes, SIGKILL stops the sleep this test started.
        unsafe {
            assert_eq!(libc::kill(pid, 0), 0, "the daemon must still run");
            libc::kill(pid, libc::SIGKILL);
        }
    }

    #[test]
    fn a_flood_is_cut_to_its_tail_and_says_so() {
        // 64 MiB on stdout, a little on stderr: the run ends, memory stays bounded.
        let o = run(
            &argv(&[
                "sh",
                "-c",
                "head -c 67108864 /dev/zero | tr '\\0' x; echo; echo END; echo err >&2",
            ]),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(o.rc, Some(0), "{}", o.describe());
        let total = 67_108_864 + "\nEND\n".len() as u64;
        assert_eq!(o.stdout_dropped, total - KEEP as u64);
        let note = format!(
            "[pve2node: {} bytes of output dropped, the last {KEEP} follow]\n",
            total - KEEP as u64
        );
        assert!(o.stdout.starts_with(&note), "{}", &o.stdout[..80]);
        assert_eq!(o.stdout.len(), note.len() + KEEP);
        assert!(o.stdout.ends_with("xxx\nEND\n"));
        assert_eq!((o.stderr.as_str(), o.stderr_dropped), ("err\n", 0));
        let j = o.to_json();
        assert_eq!(j["stdout_dropped"], total - KEEP as u64);
        assert!(j.get("stderr_dropped").is_none());
    }

    #[test]
    fn tail_keeps_the_last_bytes_across_pushes() {
        let mut t = Tail::default();
        for i in 0..3 * KEEP / 1000 {
            t.push(format!("{:0999}\n", i).as_bytes());
        }
        t.push(&vec![b'y'; KEEP + 5]);
        let (s, dropped) = t.text();
        assert_eq!(dropped, (3 * KEEP / 1000 * 1000 + 5) as u64);
        assert!(s.ends_with(&"y".repeat(KEEP)));
        assert_eq!(t.kept.len(), KEEP);
    }

    #[test]
    fn missing_program_is_an_error() {
        let e = run(&argv(&["/nonexistent/prog"]), Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, RunError::Spawn { .. }));
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(e.to_string().contains("/nonexistent/prog"));
        assert_eq!(
            run(&[], Duration::from_secs(1)).unwrap_err(),
            RunError::Empty
        );
    }
}
