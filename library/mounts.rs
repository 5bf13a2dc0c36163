//! The kernel's mount table as `/proc/self/mountinfo` shows it: a pure parser (octal escapes
//! `\040` `\011` `\012` `\134` in paths), the FUSE filesystem types, and finding the mount that
//! is on top at exactly one path.
//!
//! A line (see proc(5)):
//! `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
//! = mount id, parent id, major:minor, root, mount point, mount options, optional fields,
//! `-`, filesystem type, source, super options.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u64,
    pub parent: u64,
    /// `major:minor` of the filesystem's device.
    pub dev: String,
    /// The directory of the filesystem that is mounted here (bind mounts: not `/`).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub options: String,
    pub optional: Vec<String>,
    /// Filesystem type, with subtype when there is one (`fuse`, `fuse.sshfs`, `fuseblk`).
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

impl Mount {
    /// A FUSE filesystem: `fuse`, `fuseblk`, or either with a subtype (`fuse.sshfs`).
    pub fn is_fuse(&self) -> bool {
        is_fuse_type(&self.fstype)
    }
}

/// `fuse`, `fuseblk`, `fuse.<subtype>` and `fuseblk.<subtype>` are FUSE filesystem types.
pub fn is_fuse_type(fstype: &str) -> bool {
    let base = fstype.split_once('.').map_or(fstype, |(b, _)| b);
    base == "fuse" || base == "fuseblk"
}

/// Undoes the kernel's escaping of a mountinfo field: a backslash followed by three octal
/// digits is that byte (`\040` space, `\011` tab, `\012` newline, `\134` backslash); anything
/// else is kept as it is.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b == b'\\' {
            if let Some(d) = field.get(i + 1..i + 4) {
                if d.iter().all(|c| (b'0'..=b'7').contains(c)) {
                    let v = (u32::from(d[0] - b'0') << 6)
                        | (u32::from(d[1] - b'0') << 3)
                        | u32::from(d[2] - b'0');
                    if let Ok(byte) = u8::try_from(v) {
                        out.push(byte);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(&unescape(field)).into_owned()
}

fn path(field: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&unescape(field)))
}

/// Parses one mountinfo line; `None` for anything that is not a well-formed line.
pub fn parse_line(line: &[u8]) -> Option<Mount> {
    let fields: Vec<&[u8]> = line
        .split(|b| *b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    let sep = fields.iter().position(|f| *f == b"-")?;
    if sep < 6 {
        return None;
    }
    let (pre, post) = fields.split_at(sep);
    let post = post.get(1..)?;
    let num = |f: &[u8]| std::str::from_utf8(f).ok()?.parse::<u64>().ok();
    let dev = std::str::from_utf8(pre.get(2)?).ok()?;
    if !dev.contains(':') {
        return None;
    }
    Some(Mount {
        id: num(pre.first()?)?,
        parent: num(pre.get(1)?)?,
        dev: dev.to_string(),
        root: path(pre.get(3)?),
        mount_point: path(pre.get(4)?),
        options: text(pre.get(5)?),
        optional: pre
            .get(6..)
            .unwrap_or(&[])
            .iter()
            .map(|f| text(f))
            .collect(),
        fstype: text(post.first()?),
        source: post.get(1).map(|f| text(f)).unwrap_or_default(),
        super_options: post.get(2).map(|f| text(f)).unwrap_or_default(),
    })
}

/// Parses a whole mountinfo text, skipping lines that do not parse.
pub fn parse(content: &[u8]) -> Vec<Mount> {
    content
        .split(|b| *b == b'\n')
        .filter_map(|l| parse_line(l.strip_suffix(b"\r").unwrap_or(l)))
        .collect()
}

/// Reads and parses this process's mount table (`/proc/self/mountinfo`).
pub fn read_self() -> std::io::Result<Vec<Mount>> {
    std::fs::read("/proc/self/mountinfo").map(|b| parse(&b))
}

/// The mount on top at exactly `path` (no prefix match; `path` must be spelled as the kernel
/// shows it: absolute, no trailing slash, symlinks resolved). When several are stacked there,
/// the top one is the one that no other mount at the same place has as its parent; should
/// that not single one out, the last one listed (the last mounted) wins.
pub fn at<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    let here: Vec<&Mount> = mounts.iter().filter(|m| m.mount_point == path).collect();
    let tops: Vec<&&Mount> = here
        .iter()
        .filter(|m| !here.iter().any(|o| o.parent == m.id && o.id != m.id))
        .collect();
    match tops.as_slice() {
        [one] => Some(one),
        _ => here.last().copied(),
    }
}

/// Mounts strictly below `path` (e.g. `/etc/pve/x` for `/etc/pve`): they keep it busy.
pub fn below<'a>(mounts: &'a [Mount], path: &Path) -> Vec<&'a Mount> {
    mounts
        .iter()
        .filter(|m| m.mount_point != path && m.mount_point.starts_with(path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
40 25 0:39 / /etc/pve rw,nosuid,nodev,relatime shared:20 - fuse /dev/fuse rw,user_id=0,group_id=0,default_permissions,allow_other
41 25 0:40 / /mnt/with\\040space\\011tab\\012nl\\134bs rw - tmpfs tmpfs rw
42 25 0:41 / /media/usb rw,relatime - fuseblk /dev/sdb1 rw,user_id=0,group_id=0,allow_other,blksize=4096
43 25 0:42 / /home/u/remote rw,nosuid,nodev - fuse.sshfs u@host:/srv rw,user_id=1000,group_id=1000
";

    #[test]
    fn parses_fields_and_fuse_types() {
        let m = parse(SAMPLE.as_bytes());
        assert_eq!(m.len(), 6);
        let pve = at(&m, Path::new("/etc/pve")).unwrap();
        assert_eq!(pve.id, 40);
        assert_eq!(pve.parent, 25);
        assert_eq!(pve.dev, "0:39");
        assert_eq!(pve.fstype, "fuse");
        assert_eq!(pve.source, "/dev/fuse");
        assert_eq!(pve.optional, vec!["shared:20"]);
        assert!(pve.options.starts_with("rw,nosuid"));
        assert!(pve.super_options.contains("allow_other"));
        assert!(pve.is_fuse());
        assert!(at(&m, Path::new("/media/usb")).unwrap().is_fuse());
        assert!(at(&m, Path::new("/home/u/remote")).unwrap().is_fuse());
        assert!(!at(&m, Path::new("/")).unwrap().is_fuse());
        assert!(!at(&m, Path::new("/proc")).unwrap().is_fuse());
    }

    #[test]
    fn fuse_type_names() {
        for t in [
            "fuse",
            "fuseblk",
            "fuse.sshfs",
            "fuse.bindfs",
            "fuseblk.ntfs",
        ] {
            assert!(is_fuse_type(t), "{t}");
        }
        for t in [
            "tmpfs", "fusectl", "ext4", "", "fuse3", "xfuse", "overlay", "nfs",
        ] {
            assert!(!is_fuse_type(t), "{t}");
        }
    }

    #[test]
    fn octal_escapes_are_undone() {
        let m = parse(SAMPLE.as_bytes());
        let p = Path::new("/mnt/with space\ttab\nnl\\bs");
        let t = at(&m, p).unwrap();
        assert_eq!(t.fstype, "tmpfs");
        assert_eq!(unescape(b"a\\040b"), b"a b");
        assert_eq!(unescape(b"\\134"), b"\\");
        // Not an escape: kept as is, never a panic.
        assert_eq!(unescape(b"a\\9xy\\"), b"a\\9xy\\");
        assert_eq!(unescape(b"\\04"), b"\\04");
        assert_eq!(unescape(b"\\777"), b"\\777");
        // Non-UTF-8 bytes survive in paths.
        assert_eq!(unescape(b"\\377"), vec![0xffu8]);
        let l = parse_line(b"50 25 0:50 / /mnt/\\377x rw - fuse src rw").unwrap();
        assert_eq!(l.mount_point.as_os_str().as_bytes(), b"/mnt/\xffx");
    }

    #[test]
    fn exact_path_only() {
        let m = parse(SAMPLE.as_bytes());
        assert!(at(&m, Path::new("/etc")).is_none());
        // Path comparison is by components: a trailing slash names the same place.
        assert_eq!(at(&m, Path::new("/etc/pve/")).unwrap().id, 40);
        assert!(at(&m, Path::new("/etc/pv")).is_none());
        assert!(at(&m, Path::new("/etc/pve/nodes")).is_none());
        let below = below(&m, Path::new("/home"));
        assert_eq!(below.len(), 1);
        assert!(super::below(&m, Path::new("/etc/pve")).is_empty());
        // "/etc/pvex" is not below "/etc/pve" (component-wise match).
        let m2 = parse(
            b"60 25 0:60 / /etc/pvex rw - tmpfs t rw\n61 25 0:61 / /etc/pve/sub rw - tmpfs t rw\n",
        );
        let b: Vec<_> = super::below(&m2, Path::new("/etc/pve"))
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(b, vec![61]);
    }

    #[test]
    fn the_last_mount_wins() {
        // A tmpfs under a fuse mount stacked over it (parent = the tmpfs).
        let text = "25 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    70 25 0:70 / /etc/pve rw - tmpfs tmpfs rw\n\
                    71 70 0:71 / /etc/pve rw - fuse /dev/fuse rw\n";
        let m = parse(text.as_bytes());
        assert_eq!(at(&m, Path::new("/etc/pve")).unwrap().id, 71);
        // Listed in another order: the parent relation still decides.
        let text = "25 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    71 70 0:71 / /etc/pve rw - fuse /dev/fuse rw\n\
                    70 25 0:70 / /etc/pve rw - tmpfs tmpfs rw\n";
        let m = parse(text.as_bytes());
        assert_eq!(at(&m, Path::new("/etc/pve")).unwrap().id, 71);
        // No parent relation among them: the last listed wins.
        let text = "80 25 0:80 / /x rw - tmpfs a rw\n81 25 0:81 / /x rw - fuse b rw\n";
        assert_eq!(at(&parse(text.as_bytes()), Path::new("/x")).unwrap().id, 81);
        let text = "81 25 0:81 / /x rw - fuse b rw\n80 25 0:80 / /x rw - tmpfs a rw\n";
        assert_eq!(at(&parse(text.as_bytes()), Path::new("/x")).unwrap().id, 80);
    }

    #[test]
    fn garbage_never_panics() {
        let bad: &[&[u8]] = &[
            b"",
            b"-",
            b" - ",
            b"1 2 3",
            b"x y 0:1 / /a rw - fuse s o",
            b"1 2 nocolon / /a rw - fuse s o",
            b"1 2 0:1 / /a - fuse s o",
            b"1 2 0:1 / /a rw -",
            b"\\\\\\ \\0 \\01 - - -",
            b"99999999999999999999999 1 0:1 / /a rw - fuse s o",
            b"\xff\xfe\x00 1 0:1 / /a rw - fuse",
        ];
        for l in bad {
            assert!(parse_line(l).is_none(), "{:?}", String::from_utf8_lossy(l));
        }
        // Missing source/super options after the type still parses.
        let m = parse_line(b"1 2 0:1 / /a rw - fuse").unwrap();
        assert_eq!(m.fstype, "fuse");
        assert_eq!(m.source, "");
        // Every prefix of every sample line, and random bytes: no panic.
        for line in SAMPLE.lines() {
            for i in 0..=line.len() {
                let _ = parse_line(&line.as_bytes()[..i]);
            }
        }
        let mut x: u32 = 12345;
        let mut buf = Vec::new();
        for _ in 0..20000 {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            buf.push(b" -\\0171:/\nafuse"[(x >> 16) as usize % 15]);
        }
        let _ = parse(&buf);
        // Windows line endings are tolerated.
        assert_eq!(parse(b"1 2 0:1 / /a rw - fuse s o\r\n").len(), 1);
    }

    #[test]
    fn reads_this_process_table() {
        let m = read_self().unwrap();
        assert!(m.iter().any(|m| m.mount_point == Path::new("/")));
    }
}
