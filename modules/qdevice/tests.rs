use super::*;

const PVE8: &str = include_str!("../../tests/fixtures/pve8/corosync.conf");
const ALL_UP: &str = include_str!("../../tests/fixtures/qdevice/a-all-up-qdevice.txt");
const BASE: &str = include_str!("../../tests/fixtures/qdevice/01-base-no-qdevice-quorumtool.txt");

fn want(host: &str, alg: &str) -> Want {
    Want {
        host: host.into(),
        algorithm: alg.into(),
        replace: false,
        two_node: false,
    }
}

fn two_node_conf() -> String {
    PVE8.replace(
        "  provider: corosync_votequorum\n",
        "  provider: corosync_votequorum\n  two_node: 1\n  wait_for_all: 0\n",
    )
}

fn section(text: &str, head: &str) -> String {
    let start = text.find(head).expect(head) + head.len();
    let rest = &text[start..];
    rest[..rest.find("\n=====").unwrap_or(rest.len())].to_string()
}

#[test]
fn present_adds_the_block_removes_two_node_and_bumps_once() {
    let before = two_node_conf();
    let p = plan_present(&before, &want("10.98.0.3", "ffsplit")).unwrap();
    assert!(p.changed && p.device_changed);
    assert_eq!((p.version_before, p.version_after), (2, 3));
    let expected = PVE8
        .replace(
            "quorum {\n",
            "quorum {\n  device {\n    model: net\n    net {\n      algorithm: ffsplit\n      host: 10.98.0.3\n      tls: on\n    }\n    votes: 1\n  }\n",
        )
        .replace("config_version: 2", "config_version: 3");
    assert_eq!(p.text, expected);
    // Second run: nothing to do.
    let again = plan_present(&p.text, &want("10.98.0.3", "ffsplit")).unwrap();
    assert!(!again.changed);
    assert_eq!(again.text, p.text);
}

#[test]
fn present_keeps_crlf_and_other_bytes() {
    let before = two_node_conf().replace('\n', "\r\n");
    let p = plan_present(&before, &want("10.98.0.3", "ffsplit")).unwrap();
    assert!(p.text.contains("  device {\r\n    model: net\r\n"));
    assert!(!p.text.contains("two_node"));
    assert_eq!(p.text.matches('\n').count(), p.text.matches("\r\n").count());
    assert!(p.text.starts_with("logging {\r\n  debug: off\r\n"));
}

#[test]
fn present_refusals() {
    let t = two_node_conf();
    let mut w = want("10.98.0.3", "ffsplit");
    w.two_node = true;
    assert!(plan_present(&t, &w)
        .unwrap_err()
        .contains("exclude each other"));
    let e = plan_present(&t, &want("10.99.0.2", "ffsplit")).unwrap_err();
    assert!(e.contains("is a member of this cluster"), "{e}");
    let e = plan_present(&t, &want("beta", "ffsplit")).unwrap_err();
    assert!(e.contains("is a member"), "{e}");
    let three = t.replace(
        "nodelist {\n",
        "nodelist {\n  node {\n    name: gamma\n    nodeid: 3\n    quorum_votes: 1\n    ring0_addr: 10.99.0.3\n  }\n",
    );
    let e = plan_present(&three, &want("10.98.0.3", "ffsplit")).unwrap_err();
    assert!(
        e.contains("odd number of nodes (3)") && e.contains("algorithm: lms"),
        "{e}"
    );
    assert!(
        plan_present(&three, &want("10.98.0.3", "lms"))
            .unwrap()
            .changed
    );
    let with = plan_present(&t, &want("10.98.0.3", "ffsplit"))
        .unwrap()
        .text;
    let e = plan_present(&with, &want("10.98.0.9", "ffsplit")).unwrap_err();
    assert!(
        e.contains("host 10.98.0.3 is already configured") && e.contains("replace: true"),
        "{e}"
    );
    let mut r = want("10.98.0.9", "ffsplit");
    r.replace = true;
    let p = plan_present(&with, &r).unwrap();
    assert!(p.changed && p.device_changed);
    assert!(p.text.contains("host: 10.98.0.9") && !p.text.contains("10.98.0.3"));
    assert_eq!(p.text.matches("device {").count(), 1);
    // Same host, other algorithm: rewritten in place.
    let p = plan_present(&with, &want("10.98.0.3", "lms")).unwrap();
    assert!(p.text.contains("algorithm: lms"));
    let e = plan_present(
        "<?xml version=\"1.0\"?>\n<cluster/>\n",
        &want("x", "ffsplit"),
    )
    .unwrap_err();
    assert!(e.contains("PVE 3 (cman era)"), "{e}");
    let e = plan_present("totem {\n config_version: 1\n}\n", &want("x", "ffsplit")).unwrap_err();
    assert!(e.contains("no top-level `quorum"), "{e}");
}

#[test]
fn absent_removes_the_block_and_can_put_two_node_back() {
    let with = plan_present(&two_node_conf(), &want("10.98.0.3", "ffsplit"))
        .unwrap()
        .text;
    let p = plan_absent(&with, false).unwrap();
    assert!(p.changed);
    assert_eq!(
        p.text,
        PVE8.replace("config_version: 2", "config_version: 4")
    );
    assert!(!plan_absent(&p.text, false).unwrap().changed);
    let p = plan_absent(&with, true).unwrap();
    assert_eq!(
        p.text,
        PVE8.replace("config_version: 2", "config_version: 4")
            .replace(
                "  provider: corosync_votequorum\n",
                "  provider: corosync_votequorum\n  two_node: 1\n"
            )
    );
    // A later run (device already gone) does not add two_node on its own.
    assert!(!plan_absent(PVE8, true).unwrap().changed);
}

#[test]
fn membership_refuses_an_offline_node() {
    let nodes = qd::nodelist(&corosync_conf::parse(PVE8).unwrap(), PVE8);
    let second = BASE[1..].find("Quorum information").unwrap() + 1;
    let mut q = qd::parse_quorumtool(&BASE[..second]);
    assert!(refuse_membership(&q, &nodes).is_ok());
    q.rows.retain(|r| r.nodeid == 1);
    let e = refuse_membership(&q, &nodes).unwrap_err();
    assert!(e.contains("node beta (nodeid 2) is offline"), "{e}");
    assert!(refuse_membership(&Quorum::default(), &nodes).is_err());
}

#[test]
fn verification_reads_flags_votes_and_the_vote() {
    let q = qd::parse_quorumtool(&section(ALL_UP, "===== qd1: corosync-quorumtool -s\n"));
    assert!(verified(&q, true, false, 2).is_ok());
    assert!(verified(&q, false, false, 2)
        .unwrap_err()
        .contains("Qdevice still there"));
    let second = BASE[1..].find("Quorum information").unwrap() + 1;
    let base = qd::parse_quorumtool(&BASE[..second]);
    assert!(verified(&base, true, false, 2)
        .unwrap_err()
        .contains("want Qdevice"));
    assert!(verified(&base, false, false, 2).is_ok());
    assert!(verified(&base, false, true, 2)
        .unwrap_err()
        .contains("want 2Node"));
    let mut nv = q.clone();
    nv.rows[0].qdevice = Some(vec!["A".into(), "NV".into(), "NMW".into()]);
    assert!(verified(&nv, true, false, 2)
        .unwrap_err()
        .contains("does not hold the device vote"));
}

#[test]
fn present_then_absent_round_trips_on_many_layouts() {
    let layouts = [
        PVE8.to_string(),
        PVE8.replace('\n', "\r\n"),
        PVE8.replace("  ", "\t"),
        PVE8.replace(
            "quorum {\n  provider: corosync_votequorum\n}",
            "quorum {\n}",
        ),
        PVE8.replace(
            "quorum {\n  provider: corosync_votequorum\n}",
            "quorum {\n  # our comment\n  provider: corosync_votequorum\n\n  expected_votes: 2\n}",
        ),
        PVE8.replace(
            "quorum {\n  provider: corosync_votequorum\n}\n",
            "quorum {\n  provider: corosync_votequorum\n}",
        ),
        include_str!("../../tests/fixtures/pve4/corosync.conf").to_string(),
    ];
    for original in layouts {
        for extra in ["", "  two_node: 1\n", "  wait_for_all: 1\n  two_node: 1\n"] {
            let before = original.replacen("quorum {\n", &format!("quorum {{\n{extra}"), 1);
            let p = plan_present(&before, &want("10.98.0.3", "ffsplit"))
                .unwrap_or_else(|e| panic!("{e}\n{before}"));
            assert!(p.changed);
            let c = corosync_conf::parse(&p.text).unwrap();
            assert_eq!(
                qd::device_conf(&c, &p.text).unwrap().host.as_deref(),
                Some("10.98.0.3")
            );
            assert!(
                !p.text.contains("two_node") && !p.text.contains("wait_for_all"),
                "{}",
                p.text
            );
            // line endings stay as they were
            assert_eq!(p.text.contains("\r\n"), before.contains("\r\n"));
            if before.contains("\r\n") {
                assert_eq!(p.text.matches('\n').count(), p.text.matches("\r\n").count());
            }
            let again = plan_present(&p.text, &want("10.98.0.3", "ffsplit")).unwrap();
            assert!(!again.changed);
            let back = plan_absent(&p.text, false).unwrap();
            let v = p.version_before;
            let expect = original.replacen(
                &format!("config_version: {v}"),
                &format!("config_version: {}", v + 2),
                1,
            );
            assert_eq!(back.text, expect, "round trip of:\n{before}");
        }
    }
}

#[test]
fn heals_what_pvecm_qdevice_setup_leaves_on_a_two_node_cluster() {
    // pvecm adds the device but keeps two_node (corosync then refuses: exit 20 at start).
    let good = plan_present(&two_node_conf(), &want("10.98.0.3", "ffsplit")).unwrap();
    let broken = good.text.replace(
        "  provider: corosync_votequorum\n",
        "  provider: corosync_votequorum\n  two_node: 1\n",
    );
    let p = plan_present(&broken, &want("10.98.0.3", "ffsplit")).unwrap();
    assert!(p.changed);
    assert!(!p.device_changed, "the device itself is fine");
    assert_eq!(
        p.text,
        good.text.replace("config_version: 3", "config_version: 4")
    );
}
