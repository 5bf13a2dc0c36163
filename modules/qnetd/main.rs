//! qnetd: the qnetd host's side of a QDevice. Makes sure the qnetd CA exists, signs a cluster
//! node's certificate request (carried by the controller, so no node needs ssh to this host),
//! returns the CA certificate and the signed cluster certificate, and reports what
//! `corosync-qnetd-tool -s` / `-l` say.
//!
//! Phases: `inspect` (what exists), `ensure_ca`, `sign` (pure decision `sign_decision`, then the
//! certutil run), `report`. Check mode runs none of the certutil commands.

use pve2node::protocol::{self, Ctx, Default as D, Failure, Outcome, Param, Spec, Type};
use pve2node::pve::qdevice::{self as qd, PrivateTemp};
use pve2node::run;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SPEC: Spec = Spec {
    module: "qnetd",
    params: &[
        Param::new("state", Type::Str)
            .default(D::Str("present"))
            .choices(&["present", "info"]),
        Param::new("cluster_name", Type::Str),
        Param::new("request", Type::Str),
        Param::new("timeout", Type::Int)
            .default(D::Int(60))
            .range(1, 3600),
    ],
    mutually_exclusive: &[],
    required_if: &[],
    supports_check_mode: true,
};

/// corosync-qnetd-certutil's fixed directory (test hook: PVE2NODE_QNETD_DIR).
const QNETD_DIR: &str = "/etc/corosync/qnetd";

/// What exists on the host.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    /// The NSS database files and the exported CA certificate are there.
    ca: bool,
    ca_text: Option<String>,
    /// The DER bytes of `cluster-NAME.crt`, when asked for a cluster and it exists.
    cluster_cert: Option<Vec<u8>>,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq)]
enum Sign {
    /// The existing certificate matches the request's key, CN and is valid now.
    Reuse,
    /// Sign (again): the reason, for the result.
    Sign(String),
}

/// The pure decision: given the request and the existing certificate (if any), reuse or sign.
fn sign_decision(
    name: &str,
    request: &[u8],
    existing: Option<&[u8]>,
    now: i64,
) -> Result<Sign, String> {
    let (cn, spki) = qd::request_info(request).ok_or(
        "request is not a certificate request (expected the base64 or PEM text of qdevice-net-node.crq as the qdevice module returns it)",
    )?;
    if cn.as_deref() != Some(name) {
        return Err(format!(
            "request is for cluster `{}`, not cluster_name `{name}`; create the request with the same cluster name",
            cn.unwrap_or_default()
        ));
    }
    let Some(der) = existing else {
        return Ok(Sign::Sign("no certificate for this cluster yet".into()));
    };
    let Some(c) = qd::cert_info(der) else {
        return Ok(Sign::Sign(
            "the existing certificate file cannot be read".into(),
        ));
    };
    if c.subject_cn.as_deref() != Some(name) {
        return Ok(Sign::Sign(
            "the existing certificate names another cluster".into(),
        ));
    }
    if c.not_after <= now || c.not_before > now {
        return Ok(Sign::Sign(
            "the existing certificate is not valid now".into(),
        ));
    }
    if c.spki != spki {
        return Ok(Sign::Sign(
            "the existing certificate is for another key (the node made a new request)".into(),
        ));
    }
    Ok(Sign::Reuse)
}

fn check_name(name: &str) -> Result<(), Failure> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        || name.starts_with('.')
    {
        return Err(Failure::new(format!(
            "cluster_name `{name}` is not a cluster name (letters, digits, `-`, `_`, `.`, at most 64)"
        )));
    }
    Ok(())
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn inspect(dir: &Path, name: Option<&str>) -> Found {
    let db = dir.join("nssdb");
    let has_db = ["cert9.db", "cert8.db"]
        .iter()
        .any(|f| db.join(f).is_file());
    let ca_text = std::fs::read_to_string(db.join("qnetd-cacert.crt")).ok();
    Found {
        ca: has_db && ca_text.is_some(),
        ca_text,
        cluster_cert: name.and_then(|n| std::fs::read(db.join(format!("cluster-{n}.crt"))).ok()),
    }
}

fn run_ok(cmd: &[String], timeout: Duration, what: &str) -> Result<run::Output, Failure> {
    let o = run::run(cmd, timeout).map_err(|e| {
        Failure::new(format!(
            "{e}; install corosync-qnetd on the qnetd host (apt-get install corosync-qnetd)"
        ))
    })?;
    if !o.success() {
        return Err(Failure::new(format!(
            "{what}: `{}` {}: {}",
            o.cmdline(),
            o.describe(),
            format!("{} {}", o.stdout.trim(), o.stderr.trim()).trim()
        ))
        .with("cmd", o.to_json()));
    }
    Ok(o)
}

/// `corosync-qnetd-tool -s` and `-l`, parsed; `running: false` when the daemon does not answer.
fn report(timeout: Duration) -> Value {
    let t = timeout.min(Duration::from_secs(10));
    let s = run::run(&argv(&["corosync-qnetd-tool", "-s"]), t);
    match s {
        Ok(o) if o.success() => {
            let l = run::run(&argv(&["corosync-qnetd-tool", "-l"]), t)
                .ok()
                .filter(|o| o.success())
                .map(|o| qd::parse_qnetd_list(&o.stdout))
                .unwrap_or_default();
            json!({"running": true, "status": qd::parse_qnetd_status(&o.stdout), "clusters": l})
        }
        Ok(o) => {
            json!({"running": false, "error": format!("{} {}", o.stdout.trim(), o.stderr.trim()).trim()})
        }
        Err(e) => json!({"running": false, "error": e.to_string()}),
    }
}

fn logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    let p = &ctx.params;
    let info_only = p.str("state") == Some("info");
    let timeout = p.duration("timeout");
    let name = p.str("cluster_name").map(str::to_string);
    // In check mode a request the node's step only planned (null or empty) means "would sign"
    // unless this cluster already has a certificate.
    let dir = ctx
        .test_hook("PVE2NODE_QNETD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(QNETD_DIR));
    let planned_request = ctx.check_mode
        && p.str("request").is_none_or(|r| r.trim().is_empty())
        && name
            .as_deref()
            .is_some_and(|n| !dir.join(format!("nssdb/cluster-{n}.crt")).exists());
    let request_text = p
        .str("request")
        .filter(|_| !planned_request)
        .map(str::to_string);
    if let Some(n) = &name {
        check_name(n)?;
    }
    let request = match (&request_text, &name) {
        (Some(_), None) => {
            return Err(Failure::new(
                "request needs cluster_name: the certificate is signed for one cluster",
            ))
        }
        (Some(t), Some(_)) => Some(qd::der_from_text(t).ok_or_else(|| {
            Failure::new("request is neither PEM text nor base64; pass the `request` value the qdevice module returned")
        })?),
        _ => None,
    };
    if info_only && request.is_some() {
        return Err(Failure::new(
            "state info only reports; drop request (or use state present to sign it)",
        ));
    }
    let db = dir.join("nssdb");

    // Phase: inspect.
    let found = inspect(&dir, name.as_deref());
    let mut commands: Vec<Vec<String>> = Vec::new();
    let mut changed = false;
    let mut msgs: Vec<String> = Vec::new();

    // Phase: ensure_ca.
    if !found.ca && !info_only {
        if db.exists() && !ctx.check_mode {
            return Err(Failure::new(format!(
                "{} exists but holds no complete qnetd CA (no cert9.db/cert8.db or qnetd-cacert.crt); move it away and run again so corosync-qnetd-certutil -i can create the CA",
                db.display()
            )));
        }
        let cmd = argv(&["corosync-qnetd-certutil", "-i"]);
        commands.push(cmd.clone());
        changed = true;
        msgs.push("qnetd CA created".into());
        if !ctx.check_mode {
            run_ok(&cmd, timeout, "creating the qnetd CA failed")?;
        }
    }
    let ca_text = if ctx.check_mode {
        found.ca_text.clone()
    } else {
        std::fs::read_to_string(db.join("qnetd-cacert.crt")).ok()
    };
    if !info_only && !ctx.check_mode && ca_text.is_none() {
        return Err(Failure::new(format!(
            "{} is missing after corosync-qnetd-certutil -i; check the corosync-qnetd package",
            db.join("qnetd-cacert.crt").display()
        )));
    }

    // Phase: sign.
    let mut cert: Option<Vec<u8>> = found.cluster_cert.clone();
    let mut reused = Value::Null;
    if let (Some(req), Some(n)) = (&request, &name) {
        let decision = sign_decision(n, req, found.cluster_cert.as_deref(), qd::now_unix())
            .map_err(Failure::new)?;
        match decision {
            Sign::Reuse => {
                reused = json!(true);
                msgs.push(format!("certificate for cluster {n} reused"));
            }
            Sign::Sign(why) => {
                reused = json!(false);
                changed = true;
                msgs.push(format!("certificate for cluster {n} signed ({why})"));
                let crt = db.join(format!("cluster-{n}.crt"));
                let cmd_shown = argv(&["corosync-qnetd-certutil", "-s", "-c", "REQUEST", "-n", n]);
                if ctx.check_mode {
                    commands.push(cmd_shown);
                    cert = None;
                } else {
                    let tmp_dir = std::env::temp_dir();
                    let tmp =
                        PrivateTemp::new(&tmp_dir, "qnetd-request.crq", req).map_err(|e| {
                            Failure::new(format!(
                                "cannot write the request to {}: {}",
                                tmp_dir.display(),
                                pve2node::io_reason(&e)
                            ))
                        })?;
                    let cmd = argv(&[
                        "corosync-qnetd-certutil",
                        "-s",
                        "-c",
                        &tmp.path().display().to_string(),
                        "-n",
                        n,
                    ]);
                    commands.push(cmd.clone());
                    run_ok(&cmd, timeout, "signing the cluster certificate failed")?;
                    let der = std::fs::read(&crt).map_err(|e| {
                        Failure::new(format!(
                            "{} is missing after signing: {}",
                            crt.display(),
                            pve2node::io_reason(&e)
                        ))
                    })?;
                    let ok = qd::cert_info(&der)
                        .zip(qd::request_info(req))
                        .is_some_and(|(c, (_, k))| c.spki == k);
                    if !ok {
                        return Err(Failure::new(format!(
                            "{} does not hold a certificate for the request's key after signing; check corosync-qnetd-certutil",
                            crt.display()
                        )));
                    }
                    cert = Some(der);
                }
            }
        }
    }

    if planned_request {
        changed = true;
        msgs.push("the request is not known yet (check mode); it would be signed".into());
    }

    // Phase: report.
    let qnetd = report(timeout);
    let cert_info = cert.as_deref().and_then(qd::cert_info).map(|c| {
        json!({"subject_cn": c.subject_cn, "issuer_cn": c.issuer_cn,
               "not_before": c.not_before, "not_after": c.not_after})
    });
    let msg = if msgs.is_empty() {
        "qnetd CA present; nothing to sign".to_string()
    } else if ctx.check_mode {
        format!("would be done (check mode): {}", msgs.join("; "))
    } else {
        msgs.join("; ")
    };
    Ok(Outcome::new(changed, msg)
        .with(
            "ca_certificate",
            ca_text.map(Value::from).unwrap_or(Value::Null),
        )
        .with(
            "certificate",
            cert.as_deref()
                .map(|d| Value::from(qd::b64_encode(d)))
                .unwrap_or(Value::Null),
        )
        .with("certificate_info", cert_info.unwrap_or(Value::Null))
        .with("certificate_reused", reused)
        .with("commands", json!(commands))
        .with("qnetd", qnetd))
}

fn main() {
    protocol::run(&SPEC, logic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pve2node::pve::qdevice::tests_support::{cert, request};

    const NOW: i64 = 1_796_109_800;

    #[test]
    fn reuses_only_a_valid_certificate_for_the_same_key() {
        let req = request("qdlab", 3);
        let good = cert("qdlab", 3, "21261201072220Z");
        assert_eq!(
            sign_decision("qdlab", &req, Some(&good), NOW),
            Ok(Sign::Reuse)
        );
        let s = sign_decision("qdlab", &req, None, NOW).unwrap();
        assert!(matches!(s, Sign::Sign(ref w) if w.contains("no certificate")));
        let other_key = cert("qdlab", 4, "21261201072220Z");
        let s = sign_decision("qdlab", &req, Some(&other_key), NOW).unwrap();
        assert!(matches!(s, Sign::Sign(ref w) if w.contains("another key")));
        let expired = cert("qdlab", 3, "20261201072220Z");
        let s = sign_decision("qdlab", &req, Some(&expired), NOW).unwrap();
        assert!(matches!(s, Sign::Sign(ref w) if w.contains("not valid now")));
        let other_cluster = cert("other", 3, "21261201072220Z");
        let s = sign_decision("qdlab", &req, Some(&other_cluster), NOW).unwrap();
        assert!(matches!(s, Sign::Sign(ref w) if w.contains("another cluster")));
        let s = sign_decision("qdlab", &req, Some(b"junk"), NOW).unwrap();
        assert!(matches!(s, Sign::Sign(ref w) if w.contains("cannot be read")));
    }

    #[test]
    fn refuses_a_request_for_another_cluster_or_garbage() {
        let e = sign_decision("qdlab", &request("other", 3), None, NOW).unwrap_err();
        assert!(
            e.contains("cluster `other`, not cluster_name `qdlab`"),
            "{e}"
        );
        let e = sign_decision("qdlab", b"nonsense", None, NOW).unwrap_err();
        assert!(e.contains("not a certificate request"), "{e}");
    }

    #[test]
    fn cluster_names() {
        assert!(check_name("qdlab").is_ok());
        assert!(check_name("a-b_c.1").is_ok());
        for bad in ["", "a b", "../x", ".x", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
