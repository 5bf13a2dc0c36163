//! ssh_trust: the root SSH trust `pvecm add --use_ssh` needs between two nodes, set up by the
//! controller with no Python on the targets and no trust on first use.
//!
//! - `state: info` (any node): root's public key (created with `ssh-keygen` when there is none
//!   and `generate` is true) and this host's own public host keys, read from its files, so the
//!   controller can carry them to the other node.
//! - `state: authorized_key`: a public key line present in root's authorized_keys (idempotent
//!   by key type + blob; other lines byte-exact). On a Proxmox node the file is a symlink into
//!   /etc/pve/priv/: the file it points to is edited.
//! - `state: known_hosts`: host key lines pinned for names and addresses in root's known_hosts,
//!   stale keys for those names removed (hashed `|1|` entries matched by HMAC-SHA1), every
//!   other line byte-exact.
//!
//! Phases: parameters (pure) → read the file or the key files (edge) → plan the new text
//! ([`plan_authorized`], [`plan_known_hosts`], pure) → write through `pve2node::edit` (edge).

mod hash;

use pve2node::edit::{self, EditError, TempStyle};
use pve2node::protocol::{self, Ctx, Default as D, Elem, Failure, Outcome, Param, Spec, Type};
use pve2node::run;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SPEC: Spec = Spec {
    module: "ssh_trust",
    params: &[
        Param::new("state", Type::Str)
            .default(D::Str("info"))
            .choices(&["info", "authorized_key", "known_hosts"]),
        Param::new("key", Type::Str),
        Param::new("host_keys", Type::List(Elem::Str)),
        Param::new("names", Type::List(Elem::Str)),
        Param::new("path", Type::Path),
        Param::new("ssh_dir", Type::Path),
        Param::new("host_key_dir", Type::Path),
        Param::new("generate", Type::Bool).default(D::Bool(true)),
        Param::new("key_type", Type::Str)
            .default(D::Str("rsa"))
            .choices(&["rsa", "ed25519"]),
        Param::new("ssh_keygen", Type::Path).default(D::Str("ssh-keygen")),
        Param::new("backup", Type::Bool).default(D::Bool(false)),
    ],
    mutually_exclusive: &[],
    required_if: &[
        protocol::RequiredIf {
            param: "state",
            value: "authorized_key",
            requires: &["key"],
        },
        protocol::RequiredIf {
            param: "state",
            value: "known_hosts",
            requires: &["host_keys", "names"],
        },
    ],
    supports_check_mode: true,
};

/// root's ~/.ssh (test hook: a temp dir in debug builds).
const SSH_DIR: &str = "/root/.ssh";
const HOOK_SSH_DIR: &str = "PVE2NODE_SSH_DIR";
/// Where sshd keeps its host keys (test hook: a temp dir in debug builds).
const HOST_KEY_DIR: &str = "/etc/ssh";
const HOOK_HOST_KEY_DIR: &str = "PVE2NODE_SSH_HOST_KEY_DIR";
const HOOK_HOSTNAME: &str = "PVE2NODE_HOSTNAME";
/// At most this much of a key file is read (a public key is at most a few KB).
const KEY_FILE_MAX: u64 = 64 * 1024;
/// root's identities in the order ssh tries them (`id_rsa` first: what pvecm itself creates).
const IDENTITIES: &[&str] = &["id_rsa", "id_ecdsa", "id_ed25519"];
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Key lines (pure)

/// A public key: its type and base64 blob, the part that identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    kind: String,
    blob: String,
}

impl Key {
    fn line(&self) -> String {
        format!("{} {}", self.kind, self.blob)
    }
}

fn is_key_type(t: &str) -> bool {
    t.starts_with("ssh-")
        || t.starts_with("ecdsa-sha2-")
        || t.starts_with("sk-ssh-")
        || t.starts_with("sk-ecdsa-")
        || t.ends_with("@openssh.com")
}

/// A base64 blob that decodes to an SSH wire-format key whose embedded type name is `kind`
/// (`uint32 length` + the name): this catches truncated or mixed-up key lines.
fn blob_matches(kind: &str, blob: &str) -> bool {
    let Some(raw) = hash::b64_decode(blob) else {
        return false;
    };
    if raw.len() < 4 {
        return false;
    }
    let n = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
    raw.get(4..4 + n) == Some(kind.as_bytes())
}

/// Splits on blanks, keeping double-quoted parts (authorized_keys options) in one token.
fn tokens(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        let mut quoted = false;
        while i < b.len() && (quoted || (b[i] != b' ' && b[i] != b'\t')) {
            if b[i] == b'\\' && quoted {
                i += 1;
            } else if b[i] == b'"' {
                quoted = !quoted;
            }
            i += 1;
        }
        out.push(&line[start..i.min(b.len())]);
    }
    out
}

/// The key in an authorized_keys, known_hosts or .pub line: the first `TYPE BLOB` pair of
/// tokens (options or host patterns may come before it). Comments and blank lines: `None`.
fn key_in_line(line: &str) -> Option<Key> {
    let l = line.trim();
    if l.is_empty() || l.starts_with('#') {
        return None;
    }
    let t = tokens(l);
    (0..t.len().saturating_sub(1))
        .take(3)
        .find(|&i| is_key_type(t[i]) && blob_matches(t[i], t[i + 1]))
        .map(|i| Key {
            kind: t[i].to_string(),
            blob: t[i + 1].to_string(),
        })
}

/// A key given as a parameter: one line holding exactly one valid key.
fn key_param(name: &str, value: &str) -> Result<Key, String> {
    let v = value.trim();
    if v.contains('\n') || v.contains('\r') {
        return Err(format!(
            "{name} holds more than one line: give one public key line (`TYPE BASE64 [comment]`)"
        ));
    }
    key_in_line(v).ok_or_else(|| {
        let shown: String = v.chars().take(40).collect();
        format!("{name} '{shown}' is not an SSH public key line (`TYPE BASE64 [comment]`, as in a .pub file): check the value")
    })
}

// ---------------------------------------------------------------------------------------
// authorized_keys (pure)

/// The new authorized_keys text: `line` appended unless its key is already there (with any
/// options or comment), every other byte kept.
fn plan_authorized(text: &str, key: &Key, line: &str) -> String {
    if text.lines().any(|l| key_in_line(l).as_ref() == Some(key)) {
        return text.to_string();
    }
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line.trim());
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------
// known_hosts (pure)

/// Does a `|1|salt|hash` entry stand for `name`?
fn hashed_matches(entry: &str, name: &str) -> bool {
    let Some(rest) = entry.strip_prefix("|1|") else {
        return false;
    };
    let Some((salt, mac)) = rest.split_once('|') else {
        return false;
    };
    match (hash::b64_decode(salt), hash::b64_decode(mac)) {
        (Some(s), Some(m)) => hash::hmac_sha1(&s, name.as_bytes()).as_slice() == m.as_slice(),
        _ => false,
    }
}

/// A known_hosts host pattern that names `name` exactly (plain, case-insensitive, or hashed).
/// Wildcards and negations are not ours to rewrite: they never match here.
fn pattern_is(pattern: &str, name: &str) -> bool {
    if pattern.starts_with("|1|") {
        return hashed_matches(pattern, name) || hashed_matches(pattern, &name.to_lowercase());
    }
    pattern.eq_ignore_ascii_case(name)
}

/// One known_hosts line split into its host field, the rest, and its key.
struct HostLine<'a> {
    hosts: &'a str,
    /// From the key type to the end of the line (with its line ending).
    rest: &'a str,
    key: Key,
}

fn host_line(line: &str) -> Option<HostLine<'_>> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') || t.starts_with('@') {
        return None;
    }
    let key = key_in_line(t)?;
    let lead = line.len() - t.len();
    let end = t.find([' ', '\t'])?;
    let rest = t[end..].trim_start();
    if !rest.starts_with(&key.kind) {
        return None;
    }
    Some(HostLine {
        hosts: &line[lead..lead + end],
        rest,
        key,
    })
}

#[derive(Debug, Clone, PartialEq, Default)]
struct KnownPlan {
    text: String,
    /// Names removed from lines holding another key for them (a reinstalled host).
    replaced: Vec<String>,
    /// `names KEY` lines appended.
    added: Vec<String>,
}

/// The new known_hosts text: every name in `names` pinned to exactly the keys in `keys`.
/// A line that names one of them with another key loses that name (the line goes when no
/// name is left); lines for other hosts, comments and markers stay byte-exact.
fn plan_known_hosts(text: &str, names: &[String], keys: &[Key]) -> KnownPlan {
    let mut plan = KnownPlan::default();
    let mut out = String::with_capacity(text.len() + 256);
    // covered[k][n]: key k is already pinned for name n by a line that stays.
    let mut covered = vec![vec![false; names.len()]; keys.len()];
    for line in text.split_inclusive('\n') {
        let Some(h) = host_line(line) else {
            out.push_str(line);
            continue;
        };
        let pats: Vec<&str> = h.hosts.split(',').collect();
        let ours = |p: &str| names.iter().position(|n| pattern_is(p, n));
        if pats.iter().all(|p| ours(p).is_none()) {
            out.push_str(line);
            continue;
        }
        if let Some(k) = keys.iter().position(|k| *k == h.key) {
            for p in &pats {
                if let Some(n) = ours(p) {
                    covered[k][n] = true;
                }
            }
            out.push_str(line);
            continue;
        }
        // A stale key for (some of) our names: drop those names from the line.
        let keep: Vec<&str> = pats.iter().copied().filter(|p| ours(p).is_none()).collect();
        for p in pats.iter().filter(|p| ours(p).is_some()) {
            let n = &names[ours(p).unwrap_or(0)];
            if !plan.replaced.contains(n) {
                plan.replaced.push(n.clone());
            }
        }
        if !keep.is_empty() {
            let lead = &line[..line.len() - line.trim_start().len()];
            out.push_str(lead);
            out.push_str(&keep.join(","));
            out.push(' ');
            out.push_str(h.rest);
        }
    }
    for (k, key) in keys.iter().enumerate() {
        let missing: Vec<&str> = names
            .iter()
            .enumerate()
            .filter(|(n, _)| !covered[k][*n])
            .map(|(_, s)| s.as_str())
            .collect();
        if missing.is_empty() {
            continue;
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let l = format!("{} {}", missing.join(","), key.line());
        out.push_str(&l);
        out.push('\n');
        plan.added.push(l);
    }
    plan.text = out;
    plan
}

/// `names`: host names or addresses as ssh looks them up (`[host]:port` for another port).
fn names_param(list: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for n in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if n.contains(|c: char| c.is_whitespace() || matches!(c, '*' | '?' | '!' | '#' | '|' | ','))
            || n.starts_with('@')
        {
            return Err(format!(
                "names entry '{n}' is not a host name or address: give plain names or addresses (no wildcards, blanks or '|')"
            ));
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
            out.push(n.to_string());
        }
    }
    if out.is_empty() {
        return Err("names is empty: give the host's names and addresses as ssh will be asked to reach it (e.g. tartanpion,10.99.0.1)".into());
    }
    Ok(out)
}

fn host_keys_param(list: &[String]) -> Result<Vec<Key>, String> {
    let mut out: Vec<Key> = Vec::new();
    for (i, l) in list.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let k = key_param(&format!("host_keys[{i}]"), l)?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    if out.is_empty() {
        return Err("host_keys is empty: give the host's public host key lines (host_keys from state: info on that host)".into());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Edges

fn hook_or(ctx: &Ctx, param: &str, hook: &str, real: &str) -> PathBuf {
    match ctx.params.str(param) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => ctx
            .test_hook(hook)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(real)),
    }
}

/// A small text file, bounded (`None` when it does not exist).
fn read_small(p: &Path) -> Result<Option<String>, String> {
    use std::io::Read;
    match std::fs::File::open(p) {
        Ok(f) => {
            let mut s = String::new();
            f.take(KEY_FILE_MAX)
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read {}: {}", p.display(), pve2node::io_reason(&e)))?;
            Ok(Some(s))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "cannot read {}: {}",
            p.display(),
            pve2node::io_reason(&e)
        )),
    }
}

fn hostname(ctx: &Ctx) -> Option<String> {
    ctx.test_hook(HOOK_HOSTNAME)
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// This host's public host keys from `<dir>/ssh_host_*_key.pub`, sorted by file name.
fn host_keys(ctx: &mut Ctx, dir: &Path) -> Result<(Vec<String>, Vec<String>), Failure> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        Failure::new(format!(
            "cannot list {}: {}; set host_key_dir to the directory of sshd's host keys",
            dir.display(),
            pve2node::io_reason(&e)
        ))
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ssh_host_") && n.ends_with("_key.pub"))
        })
        .collect();
    files.sort();
    let (mut keys, mut used) = (Vec::new(), Vec::new());
    for f in files {
        match read_small(&f) {
            Ok(Some(t)) => match t.lines().find_map(key_in_line) {
                Some(k) => {
                    keys.push(k.line());
                    used.push(f.display().to_string());
                }
                None => ctx.warn(format!("{} holds no public key; skipped", f.display())),
            },
            Ok(None) => {}
            Err(e) => ctx.warn(format!("{e}; skipped")),
        }
    }
    if keys.is_empty() {
        return Err(Failure::new(format!(
            "no public host key (ssh_host_*_key.pub) in {}: is openssh-server installed? set host_key_dir otherwise",
            dir.display()
        )));
    }
    Ok((keys, used))
}

/// root's identity: (file, public key line), the first of [`IDENTITIES`] that exists
/// (`key_type`'s own first). A private key without its .pub is read with `ssh-keygen -y`.
fn find_identity(
    ssh_dir: &Path,
    key_type: &str,
    keygen: &str,
) -> Result<Option<(PathBuf, String)>, Failure> {
    let own = format!("id_{key_type}");
    let order =
        std::iter::once(own.as_str()).chain(IDENTITIES.iter().copied().filter(|i| *i != own));
    for id in order {
        let private = ssh_dir.join(id);
        let public = ssh_dir.join(format!("{id}.pub"));
        if let Some(t) = read_small(&public).map_err(Failure::new)? {
            if let Some(line) = t.lines().find(|l| key_in_line(l).is_some()) {
                return Ok(Some((public, line.trim().to_string())));
            }
        }
        if private.exists() {
            let argv = vec![
                keygen.to_string(),
                "-y".into(),
                "-f".into(),
                private.display().to_string(),
            ];
            let o = run::run(&argv, KEYGEN_TIMEOUT).map_err(|e| {
                Failure::new(format!("{e}; set ssh_keygen to the path of ssh-keygen"))
            })?;
            if let Some(line) = o.stdout.lines().find(|l| key_in_line(l).is_some()) {
                return Ok(Some((private, line.trim().to_string())));
            }
        }
    }
    Ok(None)
}

fn make_dir_0700(d: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    if d.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
        .map_err(|e| {
            Failure::new(format!(
                "cannot create {}: {}",
                d.display(),
                pve2node::io_reason(&e)
            ))
        })
}

fn info(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let ssh_dir = hook_or(ctx, "ssh_dir", HOOK_SSH_DIR, SSH_DIR);
    let host_dir = hook_or(ctx, "host_key_dir", HOOK_HOST_KEY_DIR, HOST_KEY_DIR);
    let key_type = ctx.params.str_or_empty("key_type").to_string();
    let keygen = ctx
        .params
        .str("ssh_keygen")
        .unwrap_or("ssh-keygen")
        .to_string();
    if keygen.is_empty() {
        return Err(Failure::new(
            "ssh_keygen must name the ssh-keygen executable (default: ssh-keygen)",
        ));
    }
    let (hkeys, hfiles) = host_keys(ctx, &host_dir)?;
    let host = hostname(ctx);
    let short = host
        .as_deref()
        .map(|h| h.split('.').next().unwrap_or(h).to_string());
    let mut changed = false;
    let mut generated = false;
    let ident = match find_identity(&ssh_dir, &key_type, &keygen)? {
        Some(found) => Some(found),
        None if !ctx.params.flag("generate") => None,
        None if ctx.check_mode => {
            changed = true;
            None
        }
        None => {
            make_dir_0700(&ssh_dir)?;
            let file = ssh_dir.join(format!("id_{key_type}"));
            let comment = format!("root@{}", short.as_deref().unwrap_or("localhost"));
            let mut argv = vec![keygen.clone(), "-q".into(), "-t".into(), key_type.clone()];
            if key_type == "rsa" {
                argv.extend(["-b".to_string(), "4096".to_string()]);
            }
            argv.extend([
                "-N".to_string(),
                String::new(),
                "-C".into(),
                comment,
                "-f".into(),
                file.display().to_string(),
            ]);
            let o = run::run(&argv, KEYGEN_TIMEOUT).map_err(|e| {
                Failure::new(format!("{e}; set ssh_keygen to the path of ssh-keygen"))
            })?;
            if !o.success() {
                return Err(Failure::new(format!(
                    "ssh-keygen could not create {}: {}",
                    file.display(),
                    o.describe()
                ))
                .with("cmd", json!(argv))
                .with("stderr", o.stderr.clone()));
            }
            changed = true;
            generated = true;
            find_identity(&ssh_dir, &key_type, &keygen)?
        }
    };
    let msg = match (&ident, changed) {
        (Some((f, _)), true) => format!("generated root's key pair {}", f.display()),
        (Some((f, _)), false) => format!("root's public key is {}", f.display()),
        (None, true) => format!(
            "would generate root's {key_type} key pair in {}",
            ssh_dir.display()
        ),
        (None, false) => format!(
            "root has no key pair in {} (generate is false)",
            ssh_dir.display()
        ),
    };
    Ok(Outcome::new(changed, msg)
        .with("public_key", ident.as_ref().map(|i| i.1.clone()))
        .with(
            "public_key_file",
            ident.as_ref().map(|i| i.0.display().to_string()),
        )
        .with("generated", generated)
        .with("host_keys", json!(hkeys))
        .with("host_key_files", json!(hfiles))
        .with("hostname", host)
        .with("short_hostname", short))
}

/// Reads the file to edit ("" when it does not exist yet).
fn read_target(path: &Path) -> Result<(String, bool), Failure> {
    match edit::read_text(path) {
        Ok(t) => Ok((t, true)),
        Err(EditError::NotFound(_)) => Ok((String::new(), false)),
        Err(e) => Err(Failure::new(e.to_string())),
    }
}

/// Writes `after` (creating the file 0600 and its directory 0700 first when missing).
fn write_target(
    ctx: &Ctx,
    path: &Path,
    exists: bool,
    before: &str,
    after: &str,
) -> Result<edit::Applied, Failure> {
    if before != after && !ctx.check_mode && !exists {
        use std::os::unix::fs::OpenOptionsExt;
        // A plain missing file: its directory first (0700, as ssh wants ~/.ssh). A dangling
        // symlink (a Proxmox node's /root/.ssh/authorized_keys before /etc/pve/priv has the
        // file): the file it points to.
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                make_dir_0700(d)?;
            }
        }
        let target = edit::resolve(path).map_err(|e| Failure::new(e.to_string()))?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .map_err(|e| {
                Failure::new(format!(
                    "cannot create {}: {}",
                    target.display(),
                    pve2node::io_reason(&e)
                ))
            })?;
    }
    edit::apply(
        path,
        before,
        after,
        ctx.check_mode,
        ctx.params.flag("backup") && exists,
        TempStyle::Hidden,
    )
    .map_err(|e| {
        // pmxcfs without quorum: /etc/pve (where a Proxmox node's authorized_keys lives) is
        // read-only.
        let hint = match e.errno() {
            Some(libc::EACCES | libc::EROFS | libc::EPERM) => "; if the file is inside /etc/pve, this node has no quorum (pvecm status) and /etc/pve is read-only",
            _ => "",
        };
        Failure::new(format!("{e}{hint}"))
    })
}

fn finish(
    ctx: &Ctx,
    path: &Path,
    before: &str,
    after: &str,
    ap: &edit::Applied,
    msg: String,
) -> Outcome {
    let mut o = Outcome::new(ap.changed, msg).with("path", path.display().to_string());
    if let Some(b) = &ap.backup_file {
        o.set("backup_file", b.display().to_string());
    }
    if ctx.diff && ap.changed {
        o.diff = Some(edit::diff(path, before, after));
    }
    o
}

fn authorized(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let line = ctx.params.str_or_empty("key").trim().to_string();
    let key = key_param("key", &line).map_err(Failure::new)?;
    let path = match ctx.params.str("path") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => hook_or(ctx, "ssh_dir", HOOK_SSH_DIR, SSH_DIR).join("authorized_keys"),
    };
    let (before, exists) = read_target(&path)?;
    let after = plan_authorized(&before, &key, &line);
    let ap = write_target(ctx, &path, exists, &before, &after)?;
    for n in &ap.notes {
        ctx.warn(n.clone());
    }
    let msg = if !ap.changed {
        format!(
            "the {} key is already authorised in {}",
            key.kind,
            path.display()
        )
    } else if ctx.check_mode {
        format!("would authorise the {} key in {}", key.kind, path.display())
    } else {
        format!("authorised the {} key in {}", key.kind, path.display())
    };
    Ok(finish(ctx, &path, &before, &after, &ap, msg).with("key", key.line()))
}

fn known_hosts(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let names = names_param(&ctx.params.list("names")).map_err(Failure::new)?;
    let keys = host_keys_param(&ctx.params.list("host_keys")).map_err(Failure::new)?;
    let path = match ctx.params.str("path") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => hook_or(ctx, "ssh_dir", HOOK_SSH_DIR, SSH_DIR).join("known_hosts"),
    };
    let (before, exists) = read_target(&path)?;
    let plan = plan_known_hosts(&before, &names, &keys);
    let ap = write_target(ctx, &path, exists, &before, &plan.text)?;
    for n in &ap.notes {
        ctx.warn(n.clone());
    }
    let would = if ctx.check_mode {
        "would pin"
    } else {
        "pinned"
    };
    let msg = if !ap.changed {
        format!(
            "{} already pinned to its {} host key(s) in {}",
            names.join(","),
            keys.len(),
            path.display()
        )
    } else if plan.replaced.is_empty() {
        format!(
            "{would} {} host key(s) for {} in {}",
            keys.len(),
            names.join(","),
            path.display()
        )
    } else {
        format!(
            "{would} {} host key(s) for {} in {}, replacing stale keys of {}",
            keys.len(),
            names.join(","),
            path.display(),
            plan.replaced.join(",")
        )
    };
    Ok(finish(ctx, &path, &before, &plan.text, &ap, msg)
        .with("names", json!(names))
        .with("replaced", json!(plan.replaced))
        .with("added", Value::from(plan.added)))
}

fn logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    match ctx.params.str("state").unwrap_or("info") {
        "authorized_key" => authorized(ctx),
        "known_hosts" => known_hosts(ctx),
        _ => info(ctx),
    }
}

fn main() {
    protocol::run(&SPEC, logic)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A syntactically real key blob of type `kind` with `tag` as its key material.
    pub(crate) fn blob(kind: &str, tag: &str) -> String {
        let mut raw = (kind.len() as u32).to_be_bytes().to_vec();
        raw.extend_from_slice(kind.as_bytes());
        raw.extend_from_slice(&(tag.len() as u32).to_be_bytes());
        raw.extend_from_slice(tag.as_bytes());
        hash::b64_encode(&raw)
    }

    fn key(kind: &str, tag: &str) -> Key {
        Key {
            kind: kind.into(),
            blob: blob(kind, tag),
        }
    }

    #[test]
    fn key_lines_are_recognised_with_options_and_comments() {
        let k = key("ssh-ed25519", "a");
        assert_eq!(
            key_in_line(&format!("{} root@x", k.line())),
            Some(k.clone())
        );
        assert_eq!(
            key_in_line(&format!(
                "from=\"10.0.0.1,10.0.0.2\",command=\"echo a b\" {} c",
                k.line()
            )),
            Some(k.clone())
        );
        assert_eq!(
            key_in_line(&format!("host1,10.0.0.1 {}", k.line())),
            Some(k.clone())
        );
        assert_eq!(key_in_line("# ssh-ed25519 AAAA"), None);
        assert_eq!(key_in_line(""), None);
        // type and blob disagree: not a key
        assert_eq!(key_in_line(&format!("ssh-rsa {}", k.blob)), None);
        assert!(key_param("key", "ssh-rsa AAAAB3Nza")
            .unwrap_err()
            .contains("key 'ssh-rsa"));
        assert!(key_param("key", &format!("{}\n{}", k.line(), k.line()))
            .unwrap_err()
            .contains("more than one line"));
    }

    #[test]
    fn a_real_openssh_public_key_parses() {
        // An ed25519 key as ssh-keygen writes it (made for this test, never used anywhere).
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEm2ZgLNVpAqXi3PNZ3gHD3Fa0x5Vq9bAJ8Tt8bE0Q1r root@tartanpion";
        let k = key_in_line(line).unwrap();
        assert_eq!(k.kind, "ssh-ed25519");
    }

    #[test]
    fn authorized_keys_idempotent_by_blob() {
        let a = key("ssh-rsa", "A");
        let b = key("ssh-ed25519", "B");
        let text = format!("# managed by hand\r\nno-pty {} old comment\r\n", a.line());
        // same blob with another comment: unchanged
        assert_eq!(
            plan_authorized(&text, &a, &format!("{} new", a.line())),
            text
        );
        // a new key is appended, other bytes kept (CRLF included)
        let after = plan_authorized(&text, &b, &format!("{} root@bismuth", b.line()));
        assert_eq!(after, format!("{text}{} root@bismuth\n", b.line()));
        assert_eq!(plan_authorized(&after, &b, &b.line()), after);
        // no trailing newline: one is added before the new line
        assert_eq!(
            plan_authorized(&a.line(), &b, &b.line()),
            format!("{}\n{}\n", a.line(), b.line())
        );
        assert_eq!(
            plan_authorized("", &b, &b.line()),
            format!("{}\n", b.line())
        );
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    /// `|1|salt|hash` for `name`, as ssh-keygen -H writes it.
    fn hashed(name: &str, salt: &[u8]) -> String {
        format!(
            "|1|{}|{}",
            hash::b64_encode(salt),
            hash::b64_encode(&hash::hmac_sha1(salt, name.as_bytes()))
        )
    }

    #[test]
    fn known_hosts_pins_replaces_and_keeps() {
        let new = key("ssh-ed25519", "new");
        let new_rsa = key("ssh-rsa", "newrsa");
        let old = key("ssh-ed25519", "old");
        let other = key("ssh-ed25519", "other");
        let n = names(&["tartanpion", "10.99.0.1"]);
        let text = format!(
            "# comment kept\n\
             tartanpion,10.99.0.1,tp-alias {}\n\
             otherhost {}\n\
             @cert-authority *.example {}\n\
             {} {}\n\
             *.lan {}\n",
            old.line(),
            other.line(),
            other.line(),
            hashed("10.99.0.1", b"0123456789abcdefghij"),
            old.line(),
            old.line()
        );
        let p = plan_known_hosts(&text, &n, &[new.clone(), new_rsa.clone()]);
        assert_eq!(
            p.text,
            format!(
                "# comment kept\n\
                 tp-alias {}\n\
                 otherhost {}\n\
                 @cert-authority *.example {}\n\
                 *.lan {}\n\
                 tartanpion,10.99.0.1 {}\n\
                 tartanpion,10.99.0.1 {}\n",
                old.line(),
                other.line(),
                other.line(),
                old.line(),
                new.line(),
                new_rsa.line()
            )
        );
        assert_eq!(p.replaced, names(&["tartanpion", "10.99.0.1"]));
        // second run: nothing to do
        let q = plan_known_hosts(&p.text, &n, &[new.clone(), new_rsa.clone()]);
        assert_eq!(q.text, p.text);
        assert!(q.added.is_empty() && q.replaced.is_empty());
        // a name already pinned by a hashed line is covered; the other name is added
        let text = format!(
            "{} {}\n",
            hashed("tartanpion", b"salt-salt-salt-salt!"),
            new.line()
        );
        let p = plan_known_hosts(&text, &n, std::slice::from_ref(&new));
        assert_eq!(p.text, format!("{text}10.99.0.1 {}\n", new.line()));
        // case-insensitive plain names, no trailing newline
        let text = format!("TARTANPION {}", new.line());
        let p = plan_known_hosts(&text, &names(&["tartanpion"]), std::slice::from_ref(&new));
        assert_eq!(p.text, text);
        // CRLF and odd spacing of other lines kept byte-exact
        let text = format!("  other\t{} c\r\n", other.line());
        let p = plan_known_hosts(&text, &n, std::slice::from_ref(&new));
        assert!(p.text.starts_with(&text));
    }

    #[test]
    fn known_hosts_stale_on_shared_line_keeps_indent() {
        let old = key("ssh-rsa", "o");
        let new = key("ssh-rsa", "n");
        let text = format!("  a,b {} cmt\n", old.line());
        let p = plan_known_hosts(&text, &names(&["a"]), std::slice::from_ref(&new));
        assert_eq!(
            p.text,
            format!("  b {} cmt\na {}\n", old.line(), new.line())
        );
    }

    #[test]
    fn params_are_checked() {
        assert!(names_param(&names(&["*.lan"]))
            .unwrap_err()
            .contains("names entry '*.lan'"));
        assert!(names_param(&names(&["", " "]))
            .unwrap_err()
            .contains("names is empty"));
        assert_eq!(
            names_param(&names(&["a", "A", "[10.0.0.1]:2222"])).unwrap(),
            names(&["a", "[10.0.0.1]:2222"])
        );
        assert!(host_keys_param(&[])
            .unwrap_err()
            .contains("host_keys is empty"));
        assert!(host_keys_param(&names(&["nope"]))
            .unwrap_err()
            .contains("host_keys[0]"));
    }

    #[test]
    fn random_files_never_panic_and_keep_foreign_lines() {
        let mut rng = pve2node::testing::Rng::new(15);
        let k = key("ssh-ed25519", "k");
        let parts = [
            "a ",
            "b,",
            "|1|",
            "ssh-ed25519 ",
            "AAAA",
            "\n",
            "\r\n",
            "#",
            "@revoked ",
            "\t",
            "\"",
            "tartanpion",
            ",10.99.0.1 ",
            "x",
        ];
        for _ in 0..2000 {
            let len = rng.below(30);
            let text: String = (0..len).map(|_| rng.pick(&parts)).collect();
            let p = plan_known_hosts(&text, &names(&["tartanpion"]), std::slice::from_ref(&k));
            assert!(
                p.text.contains(&format!("tartanpion {}", k.line())) || p.text.contains(&k.line())
            );
            let again =
                plan_known_hosts(&p.text, &names(&["tartanpion"]), std::slice::from_ref(&k));
            assert_eq!(again.text, p.text, "not idempotent on {text:?}");
            let a = plan_authorized(&text, &k, &k.line());
            assert_eq!(plan_authorized(&a, &k, &k.line()), a);
            assert!(a.starts_with(&text));
        }
    }
}
