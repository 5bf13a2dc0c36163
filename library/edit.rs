//! Safe file editing: read once, compare, write atomically (temp file in the same directory,
//! fsync, rename, fsync the directory), keep mode and owner where the filesystem allows it,
//! follow a symlinked target, optional timestamped backup, unified diff text.

use crate::io_reason;
use crate::protocol::Diff;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EditError {
    #[error("{0} does not exist; check the path parameter")]
    NotFound(String),
    #[error("{0} is a directory, not a file; point the path parameter at a file")]
    IsDir(String),
    #[error("{0} is not a regular file; point the path parameter at the file to edit")]
    NotRegular(String),
    #[error("cannot read {0}: {1}")]
    Read(String, String),
    #[error("{0} is not valid UTF-8 text; refusing to edit it")]
    NotText(String),
    #[error("{0} has a symlink loop; point the path parameter at the real file")]
    SymlinkLoop(String),
    #[error("cannot write {0}: {1}")]
    Write(String, String),
    #[error("cannot back up {0}: {1}")]
    Backup(String, String),
}

/// How the temporary file is named before the rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempStyle {
    /// `.<name>.<pid>.tmp` beside the target (the usual atomic write).
    Hidden,
    /// `<name>.new` beside the target: the Proxmox procedure inside /etc/pve, so pmxcfs
    /// propagates one whole file when it is renamed over the target.
    DotNew,
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

/// Follows a chain of symlinks to the file that would be replaced (the target may not exist).
pub fn resolve(path: &Path) -> Result<PathBuf, EditError> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&current)
                    .map_err(|e| EditError::Read(show(&current), io_reason(&e)))?;
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

/// Reads a whole file as bytes (following symlinks). A missing file is `NotFound`.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, EditError> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(EditError::IsDir(show(path))),
        // A FIFO would block the read, a device would be replaced by a plain file.
        Ok(m) if !m.is_file() => return Err(EditError::NotRegular(show(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(EditError::NotFound(show(path)))
        }
        _ => {}
    }
    fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => EditError::NotFound(show(path)),
        _ if e.raw_os_error() == Some(libc::ELOOP) => EditError::SymlinkLoop(show(path)),
        _ => EditError::Read(show(path), io_reason(&e)),
    })
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

/// Copies `path` to a timestamped backup beside it and returns the backup's path.
pub fn backup(path: &Path) -> Result<PathBuf, EditError> {
    let dest = backup_name(path);
    let bytes = fs::read(path).map_err(|e| EditError::Backup(show(path), io_reason(&e)))?;
    write_new(&dest, &bytes, fs::metadata(path).ok().as_ref())
        .map_err(|e| EditError::Backup(show(path), e))?;
    Ok(dest)
}

/// Creates `dest` exclusively with `bytes`, copying mode/owner from `meta` where allowed.
fn write_new(dest: &Path, bytes: &[u8], meta: Option<&fs::Metadata>) -> Result<(), String> {
    let mode = meta.map(|m| m.mode() & 0o7777).unwrap_or(0o644);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(dest)
        .map_err(|e| format!("{}: {}", show(dest), io_reason(&e)))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {}", show(dest), io_reason(&e)))?;
    if let Some(m) = meta {
        // Refused by some filesystems (pmxcfs allows only 0640/0600); never fatal.
        let _ = f.set_permissions(fs::Permissions::from_mode(m.mode() & 0o7777));
        let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename over
/// the target, fsync the directory. Keeps mode and owner of an existing target. `path` must
/// already be resolved (see [`resolve`]).
pub fn write_atomic(path: &Path, bytes: &[u8], style: TempStyle) -> Result<(), EditError> {
    let werr = |e: String| EditError::Write(show(path), e);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| werr("the path has no file name".into()))?;
    let tmp = match style {
        TempStyle::Hidden => dir.join(format!(".{name}.{}.tmp", std::process::id())),
        TempStyle::DotNew => dir.join(format!("{name}.new")),
    };
    let meta = fs::metadata(path).ok();
    // A leftover from an interrupted edit (the same name: ours) would make create_new fail.
    let _ = fs::remove_file(&tmp);
    if let Err(e) = write_new(&tmp, bytes, meta.as_ref()) {
        let _ = fs::remove_file(&tmp);
        return Err(werr(e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        // A target that is itself a mount point (a bind-mounted /etc/hosts, as in containers
        // and the lab's nodes) cannot be renamed over (EBUSY): write it in place instead.
        if e.raw_os_error() == Some(libc::EBUSY) {
            return write_in_place(path, bytes).map_err(werr);
        }
        return Err(werr(format!(
            "rename from {}: {}",
            show(&tmp),
            io_reason(&e)
        )));
    }
    // Directory fsync is unsupported on some FUSE filesystems; the rename already happened.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Truncates and rewrites `path` in place (same inode, so mode and owner stay), then fsyncs.
/// Not atomic: only for targets that cannot be replaced by a rename.
fn write_in_place(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("in place (it is a mount point): {}", io_reason(&e)))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("in place (it is a mount point): {}", io_reason(&e)))
}

/// The outcome of [`apply`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    pub changed: bool,
    pub backup_file: Option<PathBuf>,
}

/// Writes `after` over `path` if it differs from `before` (unless `check_mode`), taking a
/// backup first when asked. `path` may be a symlink: the file it points to is replaced.
pub fn apply(
    path: &Path,
    before: &str,
    after: &str,
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
            backup_file: None,
        });
    }
    let target = resolve(path)?;
    let backup_file = if want_backup && target.exists() {
        Some(backup(&target)?)
    } else {
        None
    };
    write_atomic(&target, after.as_bytes(), style)?;
    Ok(Applied {
        changed: true,
        backup_file,
    })
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

/// Splits text into lines, each keeping its line ending.
fn lines_with_ends(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

/// Most differing lines the Myers search looks for before reporting the rest as replaced;
/// bounds time and memory (the trace holds about D² entries).
const MAX_EDITS: usize = 2_000;

/// Myers' O((N+M)·D) shortest edit script between `a` and `b` as (op, line) pairs, or `None`
/// when more than [`MAX_EDITS`] lines differ.
fn myers<'a>(a: &[&'a str], b: &[&'a str]) -> Option<Vec<(char, &'a str)>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max = (a.len() + b.len()).min(MAX_EDITS) as isize;
    let off = max + 1;
    let mut v = vec![0isize; 2 * off as usize + 1];
    // trace[d] = the part of v for diagonals -d..=d before step d.
    let mut trace: Vec<Vec<isize>> = Vec::new();
    let idx = |k: isize| (k + off) as usize;
    let mut found = None;
    'outer: for d in 0..=max {
        trace.push(v[idx(-d)..=idx(d)].to_vec());
        let mut k = -d;
        while k <= d {
            let mut x = if k == -d || (k != d && v[idx(k - 1)] < v[idx(k + 1)]) {
                v[idx(k + 1)]
            } else {
                v[idx(k - 1)] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[idx(k)] = x;
            if x >= n && y >= m {
                found = Some(d);
                break 'outer;
            }
            k += 2;
        }
    }
    let dmax = found?;
    // Backtrack from (n, m) through the saved frontiers.
    let mut rev: Vec<(char, &str)> = Vec::new();
    let (mut x, mut y) = (n, m);
    for d in (1..=dmax).rev() {
        let prev = &trace[d as usize]; // frontier before step d, diagonals -(d)..=d of step d-1
        let at = |k: isize| prev[(k + d) as usize];
        let k = x - y;
        let prev_k = if k == -d || (k != d && at(k - 1) < at(k + 1)) {
            k + 1
        } else {
            k - 1
        };
        let prev_x = at(prev_k);
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            x -= 1;
            y -= 1;
            rev.push((' ', a[x as usize]));
        }
        if prev_k == k + 1 {
            y -= 1;
            rev.push(('+', b[y as usize]));
        } else {
            x -= 1;
            rev.push(('-', a[x as usize]));
        }
        x = prev_x;
        y = prev_y;
    }
    while x > 0 && y > 0 {
        x -= 1;
        y -= 1;
        rev.push((' ', a[x as usize]));
    }
    rev.reverse();
    Some(rev)
}

/// Within each run of changed lines, removals first and additions after, as diff prints a
/// replaced block.
fn removals_first(script: &mut [(char, &str)]) {
    let mut i = 0;
    while i < script.len() {
        if script[i].0 == ' ' {
            i += 1;
            continue;
        }
        let j = script[i..]
            .iter()
            .position(|(op, _)| *op == ' ')
            .map_or(script.len(), |p| i + p);
        script[i..j].sort_by_key(|(op, _)| *op != '-');
        i = j;
    }
}

/// Line-level edit script between `a` and `b`: common prefix and suffix are trimmed first (so a
/// small edit of a huge file costs linear time); the middle is aligned by Myers' algorithm,
/// and reported as replaced when too many lines differ.
fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(char, &'a str)> {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .iter()
        .rev()
        .zip(b[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut out: Vec<(char, &str)> = a[..pre].iter().map(|l| (' ', *l)).collect();
    match myers(am, bm) {
        Some(mid) => out.extend(mid),
        None => {
            out.extend(am.iter().map(|l| ('-', *l)));
            out.extend(bm.iter().map(|l| ('+', *l)));
        }
    }
    out.extend(a[a.len() - suf..].iter().map(|l| (' ', *l)));
    removals_first(&mut out);
    out
}

/// `start,count` of a hunk range as diff -u and Python's difflib print it: a count of 1 is
/// left out, an empty range starts at the line before.
fn hunk_range(lines_before: usize, count: usize) -> String {
    match count {
        0 => format!("{lines_before},0"),
        1 => format!("{}", lines_before + 1),
        c => format!("{},{c}", lines_before + 1),
    }
}

/// A unified diff (3 lines of context) in the format of `diff -u`, or an empty string when the
/// texts are equal. Hunks separated by at most 6 unchanged lines are merged, as diff does.
pub fn unified_diff(before: &str, after: &str, from: &str, to: &str) -> String {
    if before == after {
        return String::new();
    }
    const CTX: usize = 3;
    let (a, b) = (lines_with_ends(before), lines_with_ends(after));
    let script = edit_script(&a, &b);
    let mut out = format!("--- {from}\n+++ {to}\n");
    let changes: Vec<usize> = (0..script.len()).filter(|&k| script[k].0 != ' ').collect();
    // Lines of a and b before script position `pos`, advanced incrementally (linear overall).
    let (mut pos, mut la, mut lb) = (0usize, 0usize, 0usize);
    let mut k = 0;
    while k < changes.len() {
        let start = changes[k].saturating_sub(CTX);
        let mut last = changes[k];
        while k < changes.len() && changes[k] <= last + 2 * CTX + 1 {
            last = changes[k];
            k += 1;
        }
        let end = (last + CTX + 1).min(script.len());
        for (op, _) in &script[pos..start] {
            la += usize::from(*op != '+');
            lb += usize::from(*op != '-');
        }
        pos = start;
        let ca = script[start..end]
            .iter()
            .filter(|(op, _)| *op != '+')
            .count();
        let cb = script[start..end]
            .iter()
            .filter(|(op, _)| *op != '-')
            .count();
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            hunk_range(la, ca),
            hunk_range(lb, cb)
        ));
        for (op, line) in &script[start..end] {
            out.push(*op);
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
