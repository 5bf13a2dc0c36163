use super::*;

const TWO: &str = include_str!("../../tests/fixtures/pve8/corosync.conf.two-node");
const COLD: &str = include_str!(
    "../../tests/fixtures/corosync-3.1.7-real/quorumtool-s-two-node-cold-start-alone.txt"
);
const TWO_UP: &str =
    include_str!("../../tests/fixtures/corosync-3.1.7-real/quorumtool-s-two-node.txt");

fn nodes_of(text: &str) -> Vec<Node> {
    corosync_nodes(&corosync_conf::parse(text).unwrap(), text)
}

fn rt_of(text: &str) -> Runtime {
    Runtime::from_status(&status::parse_status(text), &[])
}

#[test]
fn nodelist_names_ids_addresses() {
    let n = nodes_of(TWO);
    assert_eq!(n.len(), 2);
    assert_eq!(n[1].name, "beta");
    assert_eq!(n[1].id, Some(2));
    assert_eq!(n[1].addrs, vec!["10.99.0.2"]);
    let two_links = TWO.replace(
        "    ring0_addr: 10.99.0.2\n",
        "    ring0_addr: 10.99.0.2\n    ring1_addr: 10.98.0.2\n",
    );
    assert_eq!(
        nodes_of(&two_links)[1].addrs,
        vec!["10.99.0.2", "10.98.0.2"]
    );
    assert_eq!(
        find_node(&n, "BETA.example.org").map(|x| x.id),
        Some(Some(2))
    );
    assert_eq!(find_node(&n, "10.99.0.1").map(|x| x.id), Some(Some(1)));
    assert!(find_node(&n, "gamma").is_none());
}

#[test]
fn cold_start_alone_is_blocked_by_wait_for_all_only() {
    let rt = rt_of(COLD);
    assert!(!rt.quorate);
    assert!(rt.blocked);
    assert!(rt.only_wait_for_all());
    assert_eq!(rt.members.len(), 1);
    assert!(rt_of(TWO_UP).quorate);
}

fn peer() -> Node {
    Node {
        id: Some(2),
        name: "pve2".into(),
        addrs: vec!["10.99.0.2".into(), "10.98.0.2".into()],
    }
}

#[test]
fn lone_picks_the_mechanism() {
    let rt = rt_of(COLD);
    let down = [
        ("10.99.0.2".to_string(), false),
        ("10.98.0.2".to_string(), false),
    ];
    match plan_lone(Stack::Corosync, &peer(), &rt, &down).unwrap() {
        Lone::Run {
            mechanism,
            argv,
            fallback,
        } => {
            assert_eq!(mechanism, "cancel_wait_for_all");
            assert_eq!(
                argv.join(" "),
                "corosync-cmapctl -s quorum.cancel_wait_for_all u8 1"
            );
            assert_eq!(fallback.unwrap().join(" "), "corosync-quorumtool -e 1");
        }
        o => panic!("{o:?}"),
    }
    // without two_node the own vote is below the quorum: only expected votes helps
    let mut no2 = rt.clone();
    no2.flags = vec!["WaitForAll".into()];
    no2.quorum = Some(2);
    match plan_lone(Stack::Corosync, &peer(), &no2, &down).unwrap() {
        Lone::Run { argv, fallback, .. } => {
            assert_eq!(argv.join(" "), "corosync-quorumtool -e 1");
            assert!(fallback.is_none());
        }
        o => panic!("{o:?}"),
    }
    match plan_lone(Stack::Cman, &peer(), &rt, &down).unwrap() {
        Lone::Run { argv, .. } => assert_eq!(argv.join(" "), "cman_tool expected -e 1"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn lone_refuses_a_reachable_or_member_peer() {
    let rt = rt_of(COLD);
    let one_up = [
        ("10.99.0.2".to_string(), false),
        ("10.98.0.2".to_string(), true),
    ];
    let e = plan_lone(Stack::Corosync, &peer(), &rt, &one_up).unwrap_err();
    assert!(e.contains("answers on 10.98.0.2"), "{e}");
    let mut member = rt.clone();
    member.members.push((2, "pve2".into(), false));
    let e = plan_lone(Stack::Corosync, &peer(), &member, &[]).unwrap_err();
    assert!(e.contains("is a member"), "{e}");
    let q = rt_of(TWO_UP);
    assert_eq!(
        plan_lone(Stack::Corosync, &peer(), &q, &one_up),
        Ok(Lone::Already)
    );
}

fn facts(node: &str) -> AbsentFacts<'_> {
    AbsentFacts {
        node,
        local_name: Some("alpha"),
        member: false,
        reachable: vec![],
        quorate: true,
        qdevice: false,
    }
}

#[test]
fn absent_refusals_name_the_cause() {
    assert!(refuse_absent(&facts("beta")).is_ok());
    let e = refuse_absent(&facts("alpha")).unwrap_err();
    assert!(e.contains("the node this runs on"), "{e}");
    let e = refuse_absent(&AbsentFacts {
        member: true,
        ..facts("beta")
    })
    .unwrap_err();
    assert!(e.contains("power it off first"), "{e}");
    let e = refuse_absent(&AbsentFacts {
        reachable: vec!["10.99.0.2".into()],
        ..facts("beta")
    })
    .unwrap_err();
    assert!(e.contains("answers on 10.99.0.2"), "{e}");
    let e = refuse_absent(&AbsentFacts {
        qdevice: true,
        ..facts("beta")
    })
    .unwrap_err();
    assert!(e.contains("qdevice module with state=absent"), "{e}");
    let e = refuse_absent(&AbsentFacts {
        quorate: false,
        ..facts("beta")
    })
    .unwrap_err();
    assert!(e.contains("run state=lone"), "{e}");
}

#[test]
fn one_node_drops_two_node_byte_preserving() {
    assert_eq!(plan_one_node(TWO).unwrap(), None, "two nodes keep two_node");
    let one = TWO.replace(
        "  node {\n    name: beta\n    nodeid: 2\n    quorum_votes: 1\n    ring0_addr: 10.99.0.2\n  }\n",
        "",
    );
    let p = plan_one_node(&one).unwrap().unwrap();
    let want = one
        .replace("  two_node: 1\n", "")
        .replace("config_version: 3", "config_version: 4");
    assert_eq!(p.text, want);
    assert_eq!((p.version_before, p.version_after), (3, 4));
    assert_eq!(plan_one_node(&p.text).unwrap(), None);
    let crlf = one.replace('\n', "\r\n");
    let p = plan_one_node(&crlf).unwrap().unwrap();
    assert_eq!(p.text, want.replace('\n', "\r\n"));
}

#[test]
fn keys_by_comment_and_by_blob() {
    let ak = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCalpha root@alpha\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCbeta root@beta\n# root@beta\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOfBeta someone@laptop\n";
    let (t, n) = strip_keys(ak, "beta", None);
    assert_eq!(n, 1);
    assert!(
        !t.contains("CCbeta root@beta\n") && t.contains("root@alpha") && t.contains("# root@beta")
    );
    let (t, n) = strip_keys(
        ak,
        "beta",
        Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOfBeta"),
    );
    assert_eq!(n, 2);
    assert!(!t.contains("laptop"));
    assert_eq!(strip_keys(ak, "gamma", None).1, 0);
}

#[test]
fn known_hosts_entries_go_other_hosts_stay() {
    let kh = "alpha ssh-ed25519 AAAAC3A\nbeta ssh-ed25519 AAAAC3B\n10.99.0.2 ssh-rsa AAAAB3B\nbeta,10.99.0.2,alpha2 ecdsa-sha2-nistp256 AAAAE2B\n[beta]:2222 ssh-rsa AAAAB3P\n|1|abc=|def= ssh-rsa AAAAH\n";
    let names = vec!["beta".to_string(), "10.99.0.2".to_string()];
    let (t, n) = strip_known_hosts(kh, &names);
    assert_eq!(n, 4);
    assert_eq!(
        t,
        "alpha ssh-ed25519 AAAAC3A\nalpha2 ecdsa-sha2-nistp256 AAAAE2B\n|1|abc=|def= ssh-rsa AAAAH\n"
    );
}

#[test]
fn writable_from_members_or_symlink() {
    let d = std::env::temp_dir().join(format!("l7-pvew-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    assert_eq!(pve_writable(&d).1, "directory");
    std::fs::write(
        d.join(".members"),
        r#"{"nodename": "alpha", "version": 5, "cluster": { "name": "lab", "version": 3, "nodes": 2, "quorate": 0 }}"#,
    )
    .unwrap();
    assert_eq!(pve_writable(&d), (Some(false), ".members"));
    std::fs::write(d.join(".members"), r#"{"cluster": { "quorate": 1 }}"#).unwrap();
    assert_eq!(pve_writable(&d), (Some(true), ".members"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn cman_nodes_and_version() {
    let t = include_str!("../../tests/fixtures/pve3/cluster.conf.two-node");
    let n = cman_nodes(t).unwrap();
    assert_eq!(n.len(), 2);
    assert!(n[0].addrs.is_empty() && n[0].targets() == vec![n[0].name.clone()]);
    assert!(cman_version(t).is_some());
}
