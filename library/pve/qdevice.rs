//! QDevice helpers: base64 and PEM for carrying certificates through the controller, a minimal
//! DER reader for certificate requests and certificates (subject CN, validity, public key),
//! the `quorum.device` block of corosync.conf, and parsers for `corosync-quorumtool -s`
//! (with its Qdevice column), `corosync-qnetd-tool -s` and `-l`.

use super::corosync_conf::Conf;
use serde_json::{json, Value};

// ---------------------------------------------------------------- base64 / PEM

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes base64, ignoring whitespace; None on any other non-alphabet byte or bad padding.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits, mut pad) = (0u32, 0u32, 0usize);
    for c in text.bytes() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            pad += 1;
            continue;
        }
        if pad > 0 {
            return None;
        }
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if pad > 2 || bits >= 6 {
        return None;
    }
    Some(out)
}

/// The DER bytes of every `-----BEGIN LABEL-----` block in `text`, with their labels.
pub fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut label: Option<String> = None;
    let mut body = String::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("-----BEGIN ") {
            label = rest.strip_suffix("-----").map(str::to_string);
            body.clear();
        } else if l.starts_with("-----END ") {
            if let Some(lb) = label.take() {
                if let Some(der) = b64_decode(&body) {
                    out.push((lb, der));
                }
            }
        } else if label.is_some() {
            body.push_str(l);
        }
    }
    out
}

/// Reads a certificate or request the controller carried: PEM text (the first block) or base64
/// of the DER bytes. None when it is neither.
pub fn der_from_text(text: &str) -> Option<Vec<u8>> {
    if text.contains("-----BEGIN ") {
        return pem_blocks(text).into_iter().next().map(|(_, d)| d);
    }
    let d = b64_decode(text)?;
    (!d.is_empty()).then_some(d)
}

/// PEM text of DER bytes under `label`, 64 characters a line.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b = b64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

// ---------------------------------------------------------------- DER

/// One DER element: tag, the whole element's bytes and its content's bytes.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    whole: &'a [u8],
    content: &'a [u8],
}

/// Reads the element at the start of `d`; returns it and the rest.
fn tlv(d: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *d.first()?;
    let first = *d.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *d.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    let whole = d.get(..end)?;
    let content = d.get(hdr..end)?;
    Some((
        Tlv {
            tag,
            whole,
            content,
        },
        d.get(end..)?,
    ))
}

fn children(d: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    let mut rest = d;
    while !rest.is_empty() {
        let (t, r) = tlv(rest)?;
        out.push(t);
        rest = r;
    }
    Some(out)
}

/// The commonName (2.5.4.3) of an X.501 Name.
fn common_name(name: &Tlv) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    for rdn in children(name.content)? {
        for atv in children(rdn.content)? {
            let parts = children(atv.content)?;
            if parts.first().map(|p| p.content) == Some(CN) {
                return parts
                    .get(1)
                    .map(|v| String::from_utf8_lossy(v.content).into_owned());
            }
        }
    }
    None
}

/// Seconds since the epoch of a UTCTime (tag 0x17) or GeneralizedTime (0x18) `…Z`.
fn asn1_time(t: &Tlv) -> Option<i64> {
    let s = std::str::from_utf8(t.content).ok()?.strip_suffix('Z')?;
    let (year, rest) = match t.tag {
        0x17 => {
            let y: i64 = s.get(..2)?.parse().ok()?;
            (if y >= 50 { 1900 + y } else { 2000 + y }, s.get(2..)?)
        }
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let num = |a: usize| -> Option<i64> { rest.get(a..a + 2)?.parse().ok() };
    let (mo, d, h, mi, se) = (num(0)?, num(2)?, num(4)?, num(6)?, num(8).unwrap_or(0));
    // days from civil (Howard Hinnant's algorithm)
    let y = if mo <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// What the modules need of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    pub not_before: i64,
    pub not_after: i64,
    /// The SubjectPublicKeyInfo element, to match a certificate with its request.
    pub spki: Vec<u8>,
}

/// Reads an X.509 certificate (DER).
pub fn cert_info(der: &[u8]) -> Option<CertInfo> {
    let (cert, _) = tlv(der)?;
    let tbs = *children(cert.content)?.first()?;
    let mut f = children(tbs.content)?;
    if f.first().map(|t| t.tag) == Some(0xa0) {
        f.remove(0);
    }
    // serial, signature, issuer, validity, subject, spki
    let issuer = f.get(2)?;
    let validity = children(f.get(3)?.content)?;
    let subject = f.get(4)?;
    let spki = f.get(5)?;
    Some(CertInfo {
        subject_cn: common_name(subject),
        issuer_cn: common_name(issuer),
        not_before: asn1_time(validity.first()?)?,
        not_after: asn1_time(validity.get(1)?)?,
        spki: spki.whole.to_vec(),
    })
}

/// A PKCS#10 certificate request (DER): its subject CN and SubjectPublicKeyInfo.
pub fn request_info(der: &[u8]) -> Option<(Option<String>, Vec<u8>)> {
    let (req, _) = tlv(der)?;
    let info = *children(req.content)?.first()?;
    let f = children(info.content)?;
    let subject = f.get(1)?;
    let spki = f.get(2)?;
    if spki.tag != 0x30 {
        return None;
    }
    Some((common_name(subject), spki.whole.to_vec()))
}

/// Seconds since the epoch, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------- corosync.conf device block

/// The `quorum.device` section as configured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceConf {
    /// Index of the `device` section in the parsed conf.
    pub section: usize,
    pub model: Option<String>,
    pub votes: Option<String>,
    pub host: Option<String>,
    pub algorithm: Option<String>,
    pub tls: Option<String>,
}

/// Reads the first `quorum { device { … } }` section.
pub fn device_conf(conf: &Conf, text: &str) -> Option<DeviceConf> {
    let dev = conf.has_quorum_device()?;
    let first = |sec: usize, key: &str| {
        conf.entries(text, sec, key)
            .first()
            .map(|e| e.value.to_string())
    };
    let net = conf.sections_named(Some(dev), "net").into_iter().next();
    Some(DeviceConf {
        section: dev,
        model: first(dev, "model"),
        votes: first(dev, "votes"),
        host: net.and_then(|n| first(n, "host")),
        algorithm: net.and_then(|n| first(n, "algorithm")),
        tls: net.and_then(|n| first(n, "tls")),
    })
}

/// The device block as pvecm writes it (keys sorted), each line indented by `indent` plus
/// `unit` per level, ending with `eol`.
pub fn device_block(host: &str, algorithm: &str, indent: &str, unit: &str, eol: &str) -> String {
    let l = |depth: usize, s: &str| format!("{indent}{}{s}{eol}", unit.repeat(depth));
    [
        l(0, "device {"),
        l(1, "model: net"),
        l(1, "net {"),
        l(2, &format!("algorithm: {algorithm}")),
        l(2, &format!("host: {host}")),
        l(2, "tls: on"),
        l(1, "}"),
        l(1, "votes: 1"),
        l(0, "}"),
    ]
    .concat()
}

/// Node names and addresses (`name`, `ringN_addr`) of the nodelist, with node ids.
pub fn nodelist(conf: &Conf, text: &str) -> Vec<(Option<u32>, Vec<String>)> {
    let mut out = Vec::new();
    for nl in conf.sections_named(None, "nodelist") {
        for node in conf.sections_named(Some(nl), "node") {
            let mut names = Vec::new();
            let mut id = None;
            for i in conf.direct_children(node) {
                if let Some(super::corosync_conf::Kind::KeyValue { key, value, .. }) =
                    conf.lines.get(i).map(|l| &l.kind)
                {
                    let k = text.get(key.clone()).unwrap_or("");
                    let v = text.get(value.clone()).unwrap_or("").to_string();
                    if k == "nodeid" {
                        id = v.trim().parse().ok();
                    } else if k == "name" || (k.starts_with("ring") && k.ends_with("_addr")) {
                        names.push(v);
                    }
                }
            }
            out.push((id, names));
        }
    }
    out
}

// ---------------------------------------------------------------- corosync-quorumtool -s

/// One membership row of `corosync-quorumtool -s` with its Qdevice column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QRow {
    pub nodeid: u32,
    pub votes: u64,
    /// `A,V,NMW` split at commas; None when the layout has no Qdevice column or the row is the
    /// device itself.
    pub qdevice: Option<Vec<String>>,
    pub name: String,
    pub local: bool,
}

/// `corosync-quorumtool -s` as the QDevice steps read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Quorum {
    pub quorate: Option<bool>,
    pub expected_votes: Option<u64>,
    pub total_votes: Option<u64>,
    pub flags: Vec<String>,
    /// Cluster nodes (the device row, node id 0, excluded).
    pub rows: Vec<QRow>,
    /// Votes of the device row (`0 … Qdevice`), when listed.
    pub device_votes: Option<u64>,
}

impl Quorum {
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
    /// The local node's Qdevice state words (`A`, `V` or `NV`, `NMW`).
    pub fn local_qdevice(&self) -> Option<&[String]> {
        self.rows
            .iter()
            .find(|r| r.local)
            .and_then(|r| r.qdevice.as_deref())
    }
    /// Does the local node hold the device's vote (`V`)?
    pub fn local_holds_vote(&self) -> bool {
        self.local_qdevice()
            .is_some_and(|q| q.iter().any(|w| w == "V"))
    }
    pub fn to_json(&self) -> Value {
        json!({
            "quorate": self.quorate,
            "expected_votes": self.expected_votes,
            "total_votes": self.total_votes,
            "flags": self.flags,
            "device_votes": self.device_votes,
            "nodes": self.rows.iter().map(|r| json!({
                "nodeid": r.nodeid, "votes": r.votes, "name": r.name, "local": r.local,
                "qdevice": r.qdevice,
            })).collect::<Vec<_>>(),
        })
    }
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.trim_start().strip_prefix(name).map(str::trim)
}

/// Parses `corosync-quorumtool -s` (or `-siH`) output.
pub fn parse_quorumtool(text: &str) -> Quorum {
    let mut q = Quorum::default();
    let mut qcol = false;
    let mut rows = false;
    for line in text.lines() {
        if line.trim() == "Quorum information" {
            rows = false;
        } else if let Some(v) = field(line, "Quorate:") {
            q.quorate = Some(v.eq_ignore_ascii_case("yes"));
        } else if let Some(v) = field(line, "Expected votes:") {
            q.expected_votes = v.split_whitespace().next().and_then(|x| x.parse().ok());
        } else if let Some(v) = field(line, "Total votes:") {
            q.total_votes = v.split_whitespace().next().and_then(|x| x.parse().ok());
        } else if let Some(v) = field(line, "Flags:") {
            q.flags = v.split_whitespace().map(str::to_string).collect();
        } else if line.trim_start().starts_with("Nodeid") {
            rows = true;
            qcol = line.split_whitespace().any(|w| w == "Qdevice");
        } else if rows {
            let mut t: Vec<&str> = line.split_whitespace().collect();
            let local = t.last() == Some(&"(local)");
            if local {
                t.pop();
            }
            let (Some(id), Some(votes)) = (
                t.first().and_then(|s| super::status::parse_id(s)),
                t.get(1).and_then(|s| s.parse::<u64>().ok()),
            ) else {
                continue;
            };
            if id == 0 {
                q.device_votes = Some(votes);
                continue;
            }
            let (qd, name) = if qcol && t.len() >= 4 {
                (
                    Some(t[2].split(',').map(str::to_string).collect()),
                    t[3..].join(" "),
                )
            } else {
                (None, t[2..].join(" "))
            };
            q.rows.push(QRow {
                nodeid: id,
                votes,
                qdevice: qd,
                name,
                local,
            });
        }
    }
    q
}

/// The qnetd host in `corosync-qdevice-tool -sv` (`QNetd host:  10.77.0.3:5403`), port and
/// IPv6 brackets removed.
pub fn qdevice_tool_host(text: &str) -> Option<String> {
    let v = text.lines().find_map(|l| field(l, "QNetd host:"))?;
    let host = match v.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty() => h,
        _ => v,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| host.to_string())
}

// ---------------------------------------------------------------- corosync-qnetd-tool

/// `corosync-qnetd-tool -s` fields (`QNetd address`, `TLS`, `Connected clients/clusters`).
pub fn parse_qnetd_status(text: &str) -> Value {
    let mut m = serde_json::Map::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let key = k.trim().to_ascii_lowercase().replace(' ', "_");
            let v = v.trim();
            if key.is_empty() || v.is_empty() {
                continue;
            }
            let val = v.parse::<u64>().map(Value::from).unwrap_or(json!(v));
            m.insert(key, val);
        }
    }
    Value::Object(m)
}

/// `corosync-qnetd-tool -l`: clusters with their algorithm and nodes (id, address, vote).
pub fn parse_qnetd_list(text: &str) -> Vec<Value> {
    let mut clusters: Vec<serde_json::Map<String, Value>> = Vec::new();
    let mut nodes: Vec<Vec<serde_json::Map<String, Value>>> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Cluster \"") {
            let name = rest.trim_end_matches(':').trim_end_matches('"');
            let mut c = serde_json::Map::new();
            c.insert("name".into(), json!(name));
            clusters.push(c);
            nodes.push(Vec::new());
        } else if let Some(rest) = t.strip_prefix("Node ID ") {
            if let (Some(list), Ok(id)) =
                (nodes.last_mut(), rest.trim_end_matches(':').parse::<u32>())
            {
                let mut n = serde_json::Map::new();
                n.insert("nodeid".into(), json!(id));
                list.push(n);
            }
        } else if let Some((k, v)) = t.split_once(':') {
            let key = k.trim().to_ascii_lowercase().replace(' ', "_");
            let v = v.trim();
            let target = match nodes.last_mut().and_then(|l| l.last_mut()) {
                Some(n) => Some(n),
                None => clusters.last_mut(),
            };
            if let Some(m) = target {
                m.insert(key, json!(v));
            }
        }
    }
    clusters
        .into_iter()
        .zip(nodes)
        .map(|(mut c, n)| {
            c.insert(
                "nodes".into(),
                Value::Array(n.into_iter().map(Value::Object).collect()),
            );
            Value::Object(c)
        })
        .collect()
}

// ---------------------------------------------------------------- certutil -L

/// The nicknames `certutil -L -d DB` lists (the trust column dropped).
pub fn certutil_nicknames(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_end();
            let (name, trust) = l.rsplit_once(char::is_whitespace)?;
            let name = name.trim();
            let is_trust = trust.split(',').count() == 3
                && trust.chars().all(|c| c == ',' || c.is_ascii_alphabetic());
            (is_trust && !name.is_empty() && name != "Certificate Nickname")
                .then(|| name.to_string())
        })
        .collect()
}

// ---------------------------------------------------------------- private temp files

/// A file only root can read (0600, created new), removed when dropped: how a certificate,
/// request or key bundle from the controller is handed to a certutil command.
#[derive(Debug)]
pub struct PrivateTemp(pub std::path::PathBuf);

impl PrivateTemp {
    /// Creates `<dir>/.pve2node-<tag>-<pid>-<n>` holding `bytes`.
    pub fn new(dir: &std::path::Path, tag: &str, bytes: &[u8]) -> std::io::Result<PrivateTemp> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = dir.join(format!(
            ".pve2node-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_file(&p);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)?;
        let t = PrivateTemp(p);
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(t)
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for PrivateTemp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// DER builders for tests (here, not under cfg(test), so the modules' tests can use them).
#[doc(hidden)]
pub mod tests_support {
    /// Builds a DER element.
    pub fn el(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if content.len() < 128 {
            v.push(content.len() as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(content.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(content);
        v
    }
    pub fn name(cn: &str) -> Vec<u8> {
        let atv = [el(0x06, &[0x55, 4, 3]), el(0x0c, cn.as_bytes())].concat();
        el(0x30, &el(0x31, &el(0x30, &atv)))
    }
    pub fn spki(key: u8) -> Vec<u8> {
        el(
            0x30,
            &[
                el(0x30, &el(0x06, &[0x2a, 0x86])),
                el(0x03, &[vec![0u8], vec![key; 200]].concat()),
            ]
            .concat(),
        )
    }
    pub fn cert(cn: &str, key: u8, not_after: &str) -> Vec<u8> {
        let validity = el(
            0x30,
            &[el(0x17, b"261201072220Z"), el(0x18, not_after.as_bytes())].concat(),
        );
        let tbs = el(
            0x30,
            &[
                el(0xa0, &el(0x02, &[2])),
                el(0x02, &[105]),
                el(0x30, &el(0x06, &[0x2a])),
                name("QNet CA"),
                validity,
                name(cn),
                spki(key),
            ]
            .concat(),
        );
        el(
            0x30,
            &[tbs, el(0x30, &el(0x06, &[0x2a])), el(0x03, &[0, 1])].concat(),
        )
    }
    pub fn request(cn: &str, key: u8) -> Vec<u8> {
        let info = el(
            0x30,
            &[el(0x02, &[0]), name(cn), spki(key), el(0xa0, &[])].concat(),
        );
        el(
            0x30,
            &[info, el(0x30, &el(0x06, &[0x2a])), el(0x03, &[0, 1])].concat(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::{cert, request};
    use super::*;
    use crate::pve::corosync_conf;

    const ALL_UP: &str = include_str!("../../tests/fixtures/qdevice/a-all-up-qdevice.txt");
    const SPLIT: &str =
        include_str!("../../tests/fixtures/qdevice/e1-qdevice-split-l12-cut.snap-t+20s.txt");

    /// The part of a snapshot fixture after `===== HOST: CMD` up to the next `=====`.
    fn section(text: &str, head: &str) -> String {
        let start = text.find(head).expect(head) + head.len();
        let rest = &text[start..];
        rest[..rest.find("\n=====").unwrap_or(rest.len())].to_string()
    }

    #[test]
    fn private_temp_is_0600_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir();
        let p = {
            let t = PrivateTemp::new(&dir, "qd-test", b"secret").unwrap();
            let m = std::fs::metadata(t.path()).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::read(t.path()).unwrap(), b"secret");
            t.path().to_path_buf()
        };
        assert!(!p.exists());
    }

    #[test]
    fn base64_round_trips() {
        let mut r = crate::testing::Rng::new(7);
        for len in 0..70 {
            let d: Vec<u8> = (0..len).map(|_| r.below(256) as u8).collect();
            let e = b64_encode(&d);
            assert_eq!(e.len() % 4, 0);
            assert_eq!(b64_decode(&e).unwrap(), d);
        }
        assert_eq!(b64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64_encode(b"fo"), "Zm8=");
        assert_eq!(b64_decode("Zm9v\nYmE=\n").unwrap(), b"fooba");
        assert!(b64_decode("Zm9v!").is_none());
        assert!(b64_decode("Zm=9").is_none());
    }

    #[test]
    fn pem_round_trips_and_der_from_text_takes_both() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x05];
        let p = pem("CERTIFICATE", &der);
        let text = format!("Certificate:\n  pretty text: here\n{p}");
        assert_eq!(
            pem_blocks(&text),
            vec![("CERTIFICATE".to_string(), der.clone())]
        );
        assert_eq!(der_from_text(&text).unwrap(), der);
        assert_eq!(der_from_text(&b64_encode(&der)).unwrap(), der);
        assert!(der_from_text("not base64 at all!").is_none());
        assert!(der_from_text("").is_none());
    }

    #[test]
    fn reads_certificate_and_request() {
        let c = cert_info(&cert("qdlab", 9, "21261201072220Z")).unwrap();
        assert_eq!(c.subject_cn.as_deref(), Some("qdlab"));
        assert_eq!(c.issuer_cn.as_deref(), Some("QNet CA"));
        // 2026-12-01 07:22:20 UTC
        assert_eq!(c.not_before, 1_796_109_740);
        assert!(c.not_after > c.not_before + 99 * 365 * 86_400);
        let (cn, k) = request_info(&request("qdlab", 9)).unwrap();
        assert_eq!(cn.as_deref(), Some("qdlab"));
        assert_eq!(k, c.spki);
        let (_, other) = request_info(&request("qdlab", 8)).unwrap();
        assert_ne!(other, c.spki);
        assert!(cert_info(&[0x30, 0x05, 1]).is_none());
        assert!(request_info(b"garbage").is_none());
        assert!(cert_info(&[]).is_none());
    }

    #[test]
    fn real_certificates_from_corosync_qnetd() {
        let ca = include_str!("../../tests/fixtures/qdevice/certs/qnetd-cacert.crt");
        let crt = include_bytes!("../../tests/fixtures/qdevice/certs/cluster-qdlab.crt");
        let crq = include_bytes!("../../tests/fixtures/qdevice/certs/qdevice-net-node.crq");
        let other = include_bytes!("../../tests/fixtures/qdevice/certs/other-key.crq");
        let oc = include_bytes!("../../tests/fixtures/qdevice/certs/othercluster.crq");
        let ca_der = der_from_text(ca).unwrap();
        let ca = cert_info(&ca_der).unwrap();
        assert_eq!(ca.subject_cn.as_deref(), Some("QNet CA"));
        let c = cert_info(crt).unwrap();
        assert_eq!(c.subject_cn.as_deref(), Some("qdlab"));
        assert_eq!(c.issuer_cn.as_deref(), Some("QNet CA"));
        // valid 100 years (1200 months)
        assert!(c.not_after - c.not_before > 99 * 365 * 86_400);
        assert!(c.not_before <= now_unix() + 86_400);
        let (cn, k) = request_info(crq).unwrap();
        assert_eq!(cn.as_deref(), Some("qdlab"));
        assert_eq!(k, c.spki);
        let (cn, k2) = request_info(other).unwrap();
        assert_eq!(cn.as_deref(), Some("qdlab"));
        assert_ne!(k2, c.spki);
        assert_eq!(request_info(oc).unwrap().0.as_deref(), Some("othercluster"));
        // A certificate is not a request and the other way round.
        assert!(request_info(crt).is_none() || request_info(crt).unwrap().1 != c.spki);
        assert!(cert_info(crq).is_none());
        // base64 round trip as the controller carries them
        assert_eq!(der_from_text(&b64_encode(crt)).unwrap(), crt.to_vec());
        assert_eq!(
            der_from_text(&pem("CERTIFICATE", crt)).unwrap(),
            crt.to_vec()
        );
    }

    #[test]
    fn truncated_der_never_panics() {
        let c = cert("x", 1, "21261201072220Z");
        for n in 0..c.len() {
            let _ = cert_info(&c[..n]);
            let _ = request_info(&c[..n]);
        }
    }

    #[test]
    fn device_conf_and_block() {
        let t = "quorum {\n  device {\n    model: net\n    net {\n      algorithm: ffsplit\n      host: 10.77.0.3\n      tls: on\n    }\n    votes: 1\n  }\n  provider: corosync_votequorum\n}\n";
        let c = corosync_conf::parse(t).unwrap();
        let d = device_conf(&c, t).unwrap();
        assert_eq!(d.host.as_deref(), Some("10.77.0.3"));
        assert_eq!(d.algorithm.as_deref(), Some("ffsplit"));
        assert_eq!(d.model.as_deref(), Some("net"));
        assert_eq!(d.votes.as_deref(), Some("1"));
        let b = device_block("10.77.0.3", "ffsplit", "  ", "  ", "\n");
        assert!(t.contains(&b), "{b}");
    }

    #[test]
    fn quorumtool_with_qdevice_column() {
        let q = parse_quorumtool(&section(ALL_UP, "===== qd1: corosync-quorumtool -s\n"));
        assert_eq!(q.quorate, Some(true));
        assert_eq!(q.expected_votes, Some(3));
        assert!(q.has_flag("Qdevice") && !q.has_flag("2Node"));
        assert_eq!(q.rows.len(), 2);
        assert_eq!(q.device_votes, Some(1));
        assert!(q.local_holds_vote());
        assert_eq!(q.rows[0].name, "qd1");
        let q = parse_quorumtool(&section(ALL_UP, "===== qd2: corosync-quorumtool -siH\n"));
        assert_eq!(q.rows[1].name, "10.77.12.2");
        assert!(q.rows[1].local);
        let q = parse_quorumtool(&section(SPLIT, "===== qd1: corosync-quorumtool -s\n"));
        assert_eq!(q.rows.len(), 1);
        assert_eq!(q.total_votes, Some(2));
    }

    #[test]
    fn quorumtool_without_qdevice_column() {
        let t = include_str!("../../tests/fixtures/qdevice/01-base-no-qdevice-quorumtool.txt");
        let second = t[1..].find("Quorum information").unwrap() + 1;
        let q = parse_quorumtool(&t[..second]);
        assert_eq!(q.rows.len(), 2);
        assert_eq!(q.rows[0].qdevice, None);
        assert_eq!(q.rows[0].name, "qd1");
        assert!(!q.local_holds_vote());
        assert_eq!(q.device_votes, None);
    }

    #[test]
    fn qdevice_tool_shows_the_host() {
        let t = section(ALL_UP, "===== qd1: corosync-qdevice-tool -sv\n");
        assert_eq!(qdevice_tool_host(&t).as_deref(), Some("10.77.0.3"));
        assert_eq!(
            qdevice_tool_host("QNetd host:\t\t[fd00::3]:5403\n").as_deref(),
            Some("fd00::3")
        );
        assert_eq!(qdevice_tool_host("Qdevice information\n"), None);
    }

    #[test]
    fn certutil_list() {
        let t = "\nCertificate Nickname                                         Trust Attributes\n                                                             SSL,S/MIME,JAR/XPI\n\nQNet CA                                                      CT,c,c\nCluster Cert                                                 u,u,u\n";
        assert_eq!(certutil_nicknames(t), vec!["QNet CA", "Cluster Cert"]);
        assert!(certutil_nicknames("").is_empty());
    }

    #[test]
    fn qnetd_tool_outputs() {
        let s = parse_qnetd_status(&section(ALL_UP, "===== qd3: corosync-qnetd-tool -s\n"));
        assert_eq!(s["connected_clients"], json!(2));
        assert_eq!(s["connected_clusters"], json!(1));
        assert_eq!(s["qnetd_address"], json!("*:5403"));
        let l = parse_qnetd_list(&section(ALL_UP, "===== qd3: corosync-qnetd-tool -l\n"));
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["name"], json!("qdlab"));
        assert_eq!(l[0]["nodes"][1]["nodeid"], json!(2));
        assert_eq!(l[0]["nodes"][1]["vote"], json!("ACK (ACK)"));
        assert_eq!(
            l[0]["algorithm"],
            json!("Fifty-Fifty split (KAP Tie-breaker)")
        );
        assert!(parse_qnetd_list("").is_empty());
    }
}
