use super::*;
use pve2node::testing::Rng;

const SEED: &str =
    "127.0.0.1   localhost.localdomain localhost\n87.37.23.91 tartanpion.elao.local tartanpion\n";
const DEBIAN: &str = "127.0.0.1\tlocalhost\n127.0.1.1\ttartanpion.elao.local\ttartanpion\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n";

fn pin(hostname: &str, ip: &str) -> Params {
    Params {
        hostname: hostname.into(),
        fqdn: None,
        ip: Some(ip.into()),
        aliases: vec![],
        exclusive: true,
        state: State::Present,
    }
}

fn absent(hostname: &str) -> Params {
    Params {
        hostname: hostname.into(),
        fqdn: None,
        ip: None,
        aliases: vec![],
        exclusive: true,
        state: State::Absent,
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

/// Plans, checks the second run changes nothing, returns the plan.
fn run(text: &str, p: &Params) -> Plan {
    let first = plan(text, p).unwrap();
    let second = plan(&first.after, p).unwrap();
    assert_eq!(second.after, first.after, "second run changed the text");
    assert!(second.removed_from.is_empty());
    first
}

#[test]
fn seed_example_byte_for_byte() {
    let pl = run(SEED, &pin("tartanpion", "172.16.0.1"));
    assert_eq!(
        pl.after,
        "127.0.0.1   localhost.localdomain localhost\n87.37.23.91 tartanpion.elao.local\n172.16.0.1  tartanpion\n"
    );
    assert_eq!(
        pl.removed_from,
        vec!["87.37.23.91 tartanpion.elao.local tartanpion"]
    );
    assert_eq!(pl.dropped, 0);
    assert_eq!(
        pl.placement,
        Placement::Appended("172.16.0.1  tartanpion".into())
    );
    assert_eq!(pl.resolves_to, ip("172.16.0.1"));
    assert!(pl.warnings.is_empty());
    assert_eq!(
        hosts::lookup(&pl.after, "tartanpion.elao.local"),
        ip("87.37.23.91")
    );
    assert_eq!(
        message(&pl, &pin("tartanpion", "172.16.0.1"), "/etc/hosts", true, false),
        "pinned tartanpion to 172.16.0.1 in /etc/hosts: appended the line '172.16.0.1  tartanpion'; removed from 1 line"
    );
    let again = plan(&pl.after, &pin("tartanpion", "172.16.0.1")).unwrap();
    assert_eq!(
        message(
            &again,
            &pin("tartanpion", "172.16.0.1"),
            "/etc/hosts",
            false,
            false
        ),
        "tartanpion already pinned to 172.16.0.1 in /etc/hosts"
    );
}

#[test]
fn seed_example_for_bismuth() {
    let text =
        "127.0.0.1   localhost.localdomain localhost\n76.32.45.12 bismuth.elao.local bismuth\n";
    let pl = run(text, &pin("bismuth", "172.16.0.2"));
    assert_eq!(
        pl.after,
        "127.0.0.1   localhost.localdomain localhost\n76.32.45.12 bismuth.elao.local\n172.16.0.2  bismuth\n"
    );
    assert_eq!(pl.resolves_to, ip("172.16.0.2"));
}

#[test]
fn both_nodes_in_one_file() {
    let text = "127.0.0.1   localhost.localdomain localhost\n87.37.23.91 tartanpion.elao.local tartanpion\n76.32.45.12 bismuth.elao.local bismuth\n";
    let a = run(text, &pin("tartanpion", "172.16.0.1"));
    let b = run(&a.after, &pin("bismuth", "172.16.0.2"));
    assert_eq!(
        b.after,
        "127.0.0.1   localhost.localdomain localhost\n87.37.23.91 tartanpion.elao.local\n76.32.45.12 bismuth.elao.local\n172.16.0.1  tartanpion\n172.16.0.2  bismuth\n"
    );
    assert_eq!(hosts::lookup(&b.after, "tartanpion"), ip("172.16.0.1"));
}

#[test]
fn debian_line_loses_the_fqdn_too_and_tabs_are_followed() {
    // neither name may stay on loopback: the trap line is dropped whole
    let pl = run(DEBIAN, &pin("tartanpion", "172.16.0.1"));
    assert_eq!(pl.dropped, 1);
    assert_eq!(hosts::lookup(&pl.after, "tartanpion.elao.local"), None);
    assert_eq!(
        pl.after,
        "127.0.0.1\tlocalhost\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n172.16.0.1\ttartanpion\n"
    );
    assert_eq!(
        pl.removed_from,
        vec!["127.0.1.1\ttartanpion.elao.local\ttartanpion"]
    );
    assert_eq!(pl.resolves_to, ip("172.16.0.1"));
}

#[test]
fn debian_line_with_only_the_short_name_is_dropped() {
    let text = "127.0.0.1\tlocalhost\n127.0.1.1\ttartanpion\n# end\n";
    let pl = run(text, &pin("tartanpion", "172.16.0.1"));
    assert_eq!(
        pl.after,
        "127.0.0.1\tlocalhost\n# end\n172.16.0.1\ttartanpion\n"
    );
    assert_eq!(pl.removed_from, vec!["127.0.1.1\ttartanpion"]);
    assert_eq!(pl.dropped, 1);
    assert!(message(&pl, &pin("tartanpion", "172.16.0.1"), "h", true, true)
        .starts_with("would pin tartanpion to 172.16.0.1 in h: appended the line '172.16.0.1\ttartanpion'; removed from 1 line (1 left without names and dropped)"));
}

#[test]
fn names_are_added_to_an_existing_line_for_the_address() {
    let text =
        "127.0.0.1 localhost\n172.16.0.1 other.lan other # private\n87.37.23.91 tartanpion\n";
    let mut p = pin("tartanpion", "172.16.0.1");
    p.aliases = vec!["tp".into()];
    let pl = run(text, &p);
    assert_eq!(
        pl.after,
        "127.0.0.1 localhost\n172.16.0.1 other.lan other tartanpion tp # private\n"
    );
    assert_eq!(
        pl.placement,
        Placement::AddedTo("172.16.0.1 other.lan other # private".into())
    );
    assert_eq!(pl.added, vec!["tartanpion", "tp"]);
    assert_eq!(pl.dropped, 1);
    assert_eq!(hosts::lookup(&pl.after, "tp"), ip("172.16.0.1"));
}

#[test]
fn existing_line_without_names_gets_the_aligned_separator() {
    let text = "127.0.0.1   localhost\n172.16.0.1\n";
    let pl = run(text, &pin("tartanpion", "172.16.0.1"));
    assert_eq!(pl.after, "127.0.0.1   localhost\n172.16.0.1  tartanpion\n");
}

#[test]
fn address_is_compared_as_an_address() {
    let text = "2001:db8:0:0::10 node6\n";
    let pl = run(text, &pin("node6", "2001:DB8::10"));
    assert_eq!(pl.after, text);
    let pl = run(text, &pin("other", "2001:db8::0010"));
    assert_eq!(pl.after, "2001:db8:0:0::10 node6 other\n");
}

#[test]
fn names_compare_case_insensitively() {
    let text = "172.16.0.1 TartanPion\n";
    let pl = run(text, &pin("tartanpion", "172.16.0.1"));
    assert_eq!(pl.after, text);
    let pl = run("10.0.0.1 a TARTANPION\n", &pin("tartanpion", "172.16.0.1"));
    assert_eq!(pl.after, "10.0.0.1 a\n172.16.0.1 tartanpion\n");
}

#[test]
fn comments_blank_lines_and_unrelated_lines_are_kept() {
    let text = "# header\n\n127.0.0.1   localhost # lo\n  # indented comment\n87.37.23.91 tartanpion.elao.local tartanpion   # public\n#87.37.23.91 tartanpion\nbogus tartanpion\n\n";
    let pl = run(text, &pin("tartanpion", "172.16.0.1"));
    assert_eq!(
        pl.after,
        "# header\n\n127.0.0.1   localhost # lo\n  # indented comment\n87.37.23.91 tartanpion.elao.local   # public\n#87.37.23.91 tartanpion\nbogus tartanpion\n\n172.16.0.1  tartanpion\n"
    );
}

#[test]
fn crlf_is_kept() {
    let text = SEED.replace('\n', "\r\n");
    let pl = run(&text, &pin("tartanpion", "172.16.0.1"));
    assert_eq!(
        pl.after,
        "127.0.0.1   localhost.localdomain localhost\r\n87.37.23.91 tartanpion.elao.local\r\n172.16.0.1  tartanpion\r\n"
    );
}

#[test]
fn missing_final_newline_is_kept() {
    let text = SEED.trim_end();
    let pl = run(text, &pin("tartanpion", "172.16.0.1"));
    assert_eq!(
        pl.after,
        "127.0.0.1   localhost.localdomain localhost\n87.37.23.91 tartanpion.elao.local\n172.16.0.1  tartanpion"
    );
    // The edited last line keeps its missing newline too.
    let pl = run("10.0.0.1 x\n172.16.0.1 a", &pin("tartanpion", "172.16.0.1"));
    assert_eq!(pl.after, "10.0.0.1 x\n172.16.0.1 a tartanpion");
    let crlf = run("10.0.0.1 x\r\n10.0.0.2 y", &pin("tartanpion", "172.16.0.1"));
    assert_eq!(
        crlf.after,
        "10.0.0.1 x\r\n10.0.0.2 y\r\n172.16.0.1 tartanpion"
    );
}

#[test]
fn empty_file_gets_one_line() {
    let pl = run("", &pin("tartanpion", "172.16.0.1"));
    assert_eq!(pl.after, "172.16.0.1 tartanpion\n");
    let pl = run("# only comments\n", &pin("tartanpion", "172.16.0.1"));
    assert_eq!(pl.after, "# only comments\n172.16.0.1 tartanpion\n");
}

#[test]
fn separator_follows_the_file_style() {
    let cases = [
        // Names aligned on column 16 with spaces.
        (
            "127.0.0.1       localhost\n",
            "172.16.0.1      tartanpion\n",
        ),
        // Not aligned: single spaces.
        ("1.2.3.4 a\n10.20.30.40 b\n", "172.16.0.1 tartanpion\n"),
        // One line, one space: one space.
        ("87.37.23.91 x\n", "172.16.0.1 tartanpion\n"),
        // Tabs, with a second tab when the usual column is further.
        ("1.2.3.4\t\t\ta\n", "172.16.0.1\t\ttartanpion\n"),
        ("127.0.0.1\tlocalhost\n", "172.16.0.1\ttartanpion\n"),
        // Aligned column too close for the address: one space.
        ("1.2.3.4 a\n1.2.3.5 b\n", "172.16.0.1 tartanpion\n"),
    ];
    for (text, added) in cases {
        let pl = run(text, &pin("tartanpion", "172.16.0.1"));
        assert_eq!(pl.after, format!("{text}{added}"), "for {text:?}");
    }
    // Aliases use the file's separator between names.
    let mut p = pin("tartanpion", "172.16.0.1");
    p.aliases = vec!["tartanpion.lan".into()];
    let pl = run("127.0.1.1\thost.domain\thost\n", &p);
    assert_eq!(
        pl.after,
        "127.0.1.1\thost.domain\thost\n172.16.0.1\ttartanpion\ttartanpion.lan\n"
    );
}

#[test]
fn ipv6_follows_the_ipv6_lines() {
    let pl = run(DEBIAN, &pin("node6", "2001:db8::1"));
    assert!(pl.after.starts_with(DEBIAN));
    assert_eq!(&pl.after[DEBIAN.len()..], "2001:db8::1 node6\n");
    let text = "::1     localhost\n";
    let pl = run(text, &pin("n", "fd00::1"));
    assert_eq!(pl.after, "::1     localhost\nfd00::1 n\n");
    // IPv6 lines with the names are edited like IPv4 ones.
    let pl = run(
        "2001:db8::9 tartanpion.v6 tartanpion\n",
        &pin("tartanpion", "172.16.0.1"),
    );
    assert_eq!(
        pl.after,
        "2001:db8::9 tartanpion.v6\n172.16.0.1 tartanpion\n"
    );
}

#[test]
fn not_exclusive_keeps_other_lines_and_warns() {
    let mut p = pin("tartanpion", "172.16.0.1");
    p.exclusive = false;
    let pl = run(DEBIAN, &p);
    assert_eq!(pl.after, format!("{DEBIAN}172.16.0.1\ttartanpion\n"));
    assert!(pl.removed_from.is_empty());
    assert_eq!(pl.resolves_to, ip("127.0.1.1"));
    assert_eq!(pl.warnings.len(), 1);
    assert!(pl.warnings[0].contains("tartanpion resolves to 127.0.1.1, not 172.16.0.1"));
    assert!(pl.warnings[0].contains("loopback"));
    // Names already present later in the file: no change, still the warning.
    let pl = run(&pl.after, &p);
    assert_eq!(pl.warnings.len(), 1);
    // When the earlier line is not loopback, no loopback remark.
    let pl = run(SEED, &p);
    assert_eq!(pl.resolves_to, ip("87.37.23.91"));
    assert!(!pl.warnings[0].contains("loopback"));
}

#[test]
fn duplicate_lines_for_the_address_are_left_alone() {
    let text = "172.16.0.1 a\n172.16.0.1 tartanpion\n";
    let pl = run(text, &pin("tartanpion", "172.16.0.1"));
    assert_eq!(pl.after, text);
    let pl = run(text, &pin("b", "172.16.0.1"));
    assert_eq!(pl.after, "172.16.0.1 a b\n172.16.0.1 tartanpion\n");
}

#[test]
fn absent_removes_from_every_line() {
    let text = "127.0.0.1 localhost\n127.0.1.1 tartanpion.elao.local tartanpion\n172.16.0.1  tartanpion # keep me?\n# 10.0.0.1 tartanpion\n87.37.23.91 TARTANPION\n";
    let pl = run(text, &absent("tartanpion"));
    assert_eq!(
        pl.after,
        "127.0.0.1 localhost\n127.0.1.1 tartanpion.elao.local\n# 10.0.0.1 tartanpion\n"
    );
    assert_eq!(pl.removed_from.len(), 3);
    assert_eq!(pl.dropped, 2);
    assert_eq!(pl.resolves_to, None);
    assert_eq!(
        message(&pl, &absent("tartanpion"), "/etc/hosts", true, false),
        "removed tartanpion from /etc/hosts: removed from 3 lines (2 left without names and dropped)"
    );
    let none = plan("127.0.0.1 localhost\n", &absent("tartanpion")).unwrap();
    assert_eq!(none.after, "127.0.0.1 localhost\n");
    assert_eq!(
        message(&none, &absent("tartanpion"), "/etc/hosts", false, false),
        "tartanpion not in /etc/hosts, nothing to remove"
    );
    // Aliases go too.
    let mut p = absent("tartanpion");
    p.aliases = vec!["tp".into()];
    assert_eq!(run("10.0.0.1 tp x\n", &p).after, "10.0.0.1 x\n");
}

#[test]
fn refusals() {
    let bad = |p: Params, want: HostsError| {
        assert_eq!(plan(SEED, &p).unwrap_err(), want);
        assert_eq!(check(&p).unwrap_err(), want);
    };
    bad(
        pin("tartanpion", "172.16.0.256"),
        HostsError::InvalidIp("172.16.0.256".into()),
    );
    bad(pin("tartanpion", ""), HostsError::InvalidIp("".into()));
    bad(
        pin("tartanpion", " 172.16.0.1"),
        HostsError::InvalidIp(" 172.16.0.1".into()),
    );
    bad(
        pin("tartanpion", "fe80::1%eth0"),
        HostsError::InvalidIp("fe80::1%eth0".into()),
    );
    bad(
        pin("tartanpion", "127.0.1.1"),
        HostsError::LoopbackIp("127.0.1.1".into()),
    );
    bad(
        pin("tartanpion", "::1"),
        HostsError::LoopbackIp("::1".into()),
    );
    bad(
        pin("tartanpion", "0.0.0.0"),
        HostsError::UnspecifiedIp("0.0.0.0".into()),
    );
    bad(
        pin("tartan_pion", "172.16.0.1"),
        HostsError::InvalidName {
            param: "hostname",
            name: "tartan_pion".into(),
            why: NameError::BadChar('_'),
        },
    );
    bad(
        pin("localhost", "172.16.0.1"),
        HostsError::LocalhostName {
            param: "hostname",
            name: "localhost".into(),
        },
    );
    bad(
        absent("LOCALHOST"),
        HostsError::LocalhostName {
            param: "hostname",
            name: "LOCALHOST".into(),
        },
    );
    let mut p = pin("tartanpion", "172.16.0.1");
    p.aliases = vec!["ok".into(), "-bad".into()];
    bad(
        p,
        HostsError::InvalidName {
            param: "aliases item",
            name: "-bad".into(),
            why: NameError::Hyphen("-bad".into()),
        },
    );
    let mut p = pin("tartanpion", "172.16.0.1");
    p.ip = None;
    bad(p, HostsError::MissingIp);
    // With state=absent a given ip is still validated.
    let mut p = absent("tartanpion");
    p.ip = Some("nope".into());
    bad(p, HostsError::InvalidIp("nope".into()));
    assert_eq!(
        HostsError::InvalidIp("1.2.3".into()).to_string(),
        "ip '1.2.3' is not a valid IPv4 or IPv6 address; give one such as 172.16.0.1 or 2001:db8::1"
    );
    assert_eq!(
        HostsError::InvalidName {
            param: "hostname",
            name: "a..b".into(),
            why: NameError::EmptyLabel
        }
        .to_string(),
        "hostname 'a..b' is not a valid host name (RFC 1123): it has an empty label (two dots in a row or a leading dot)"
    );
}

#[test]
fn aliases_are_deduplicated() {
    let mut p = pin("tartanpion", "172.16.0.1");
    p.aliases = vec!["TARTANPION".into(), "tp".into(), "tp".into()];
    let pl = run("", &p);
    assert_eq!(pl.after, "172.16.0.1 tartanpion tp\n");
    assert_eq!(pl.names, vec!["tartanpion", "tp"]);
}

/// A small deterministic generator (no crate needed).
#[test]
fn generated_files_are_pinned_idempotently_and_keep_unrelated_lines() {
    let addrs = [
        "127.0.0.1",
        "127.0.1.1",
        "172.16.0.1",
        "87.37.23.91",
        "::1",
        "2001:db8::1",
        "bogus",
        "",
        "#",
    ];
    let names = [
        "tartanpion",
        "TARTANPION",
        "tartanpion.elao.local",
        "tp",
        "other",
        "localhost",
        "x#y",
    ];
    let seps = [" ", "  ", "\t", " \t", "\t\t"];
    let ends = ["\n", "\r\n", "\n", " # c\n", "\t#\n"];
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..(rng.next() % 7) {
            if rng.next().is_multiple_of(3) {
                text.push_str(rng.pick(&seps));
            }
            text.push_str(rng.pick(&addrs));
            for _ in 0..(rng.next() % 4) {
                text.push_str(rng.pick(&seps));
                text.push_str(rng.pick(&names));
            }
            text.push_str(rng.pick(&ends));
        }
        if rng.next().is_multiple_of(4) {
            text.pop();
        }
        let mut p = pin(
            "tartanpion",
            rng.pick(&["172.16.0.1", "2001:db8::1", "87.37.23.91"]),
        );
        p.exclusive = !rng.next().is_multiple_of(3);
        if rng.next().is_multiple_of(3) {
            p.aliases = vec!["tp".into()];
        }
        if rng.next().is_multiple_of(5) {
            p.state = State::Absent;
        }
        let pl = run(&text, &p);
        let want_ip = hosts::parse_ip(p.ip.as_deref().unwrap_or(""));
        match p.state {
            State::Absent => assert_eq!(pl.resolves_to, None, "{text:?}"),
            State::Present if p.exclusive => {
                assert_eq!(pl.resolves_to, want_ip, "{text:?}");
                assert!(pl.warnings.is_empty());
            }
            State::Present => {
                let all_ok = pl
                    .names
                    .iter()
                    .all(|n| hosts::lookup(&pl.after, n) == want_ip);
                assert_eq!(pl.warnings.is_empty(), all_ok, "{text:?}");
            }
        }
        // Every line not naming a pinned name is kept as it was, in order.
        let keep: Vec<&str> = hosts::parse(&text)
            .into_iter()
            .filter(|l| !(l.is_entry() && (l.has_name("tartanpion") || l.has_name("tp"))))
            .filter(|l| !(l.ip() == want_ip && p.state == State::Present))
            // (present + exclusive: a loopback line also loses tartanpion.*)
            .filter(|l| {
                !(p.state == State::Present
                    && p.exclusive
                    && l.ip().is_some_and(hosts::is_loopback)
                    && l.names
                        .iter()
                        .any(|f| f.name.to_ascii_lowercase().starts_with("tartanpion.")))
            })
            .map(|l| l.raw.trim_end_matches(['\r', '\n']))
            .collect();
        let after: Vec<&str> = hosts::parse(&pl.after)
            .into_iter()
            .map(|l| l.raw.trim_end_matches(['\r', '\n']))
            .collect();
        let mut it = after.iter();
        for k in &keep {
            assert!(
                it.any(|a| a == k),
                "line {k:?} lost from {text:?} -> {:?}",
                pl.after
            );
        }
    }
}

#[test]
fn arbitrary_text_never_panics_and_stays_idempotent() {
    let alphabet: Vec<char> = "0123456789.:abtp# \t\r\n\x0b\x0cé☃\u{0}"
        .chars()
        .chain("tartanpion".chars())
        .collect();
    let mut rng = Rng::new(42);
    for _ in 0..3000 {
        let len = (rng.next() % 60) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
            .collect();
        for p in [
            pin("tartanpion", "1.2.3.4"),
            pin("tp", "::2"),
            absent("tartanpion"),
        ] {
            let pl = run(&text, &p);
            let _ = hosts::lookup(&text, "tartanpion");
            if p.state == State::Present {
                assert_eq!(
                    pl.resolves_to,
                    hosts::parse_ip(p.ip.as_deref().unwrap_or(""))
                );
            }
        }
    }
}

/// The fastest of three runs of `f`, in seconds.
fn fastest(f: impl Fn()) -> f64 {
    (0..3)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn blocklist(lines: usize) -> String {
    let mut text =
        String::from("127.0.0.1 localhost\n127.0.1.1 tartanpion.elao.local tartanpion\n");
    for i in 0..lines {
        text.push_str(&format!("0.0.0.0 ads{i}.example.com\n"));
    }
    text
}

#[test]
fn blocklist_sized_file_is_planned_in_linear_time() {
    // Ad-blocking hosts files (StevenBlack & co.) have 100k+ `0.0.0.0 name` lines. Finding the
    // aligned column used to count every line's column against every other line (quadratic).
    let text = blocklist(100_000);
    let p = pin("tartanpion", "172.16.0.1");
    let t0 = std::time::Instant::now();
    let pl = plan(&text, &p).unwrap();
    let first = t0.elapsed().as_secs_f64();
    assert!(pl
        .after
        .ends_with("0.0.0.0 ads99999.example.com\n172.16.0.1 tartanpion\n"));
    assert_eq!(
        pl.removed_from,
        vec!["127.0.1.1 tartanpion.elao.local tartanpion"]
    );
    assert_eq!(pl.resolves_to, ip("172.16.0.1"));
    // A quarter of the lines takes about a quarter of the time; quadratic would be 1/16.
    // (The fastest runs: the first one also pays for page faults.)
    let t4 = first.min(fastest(|| drop(plan(&text, &p).unwrap())));
    let small = blocklist(25_000);
    let t1 = fastest(|| drop(plan(&small, &p).unwrap()));
    assert!(t4 / t1 < 9.0, "25k lines {t1:.3} s, 100k lines {t4:.3} s");
}

fn with_aliases(n: usize) -> Params {
    let mut p = pin("tartanpion", "172.16.0.1");
    p.aliases = (0..n).map(|i| format!("alias{i}.example.com")).collect();
    p
}

#[test]
fn many_aliases_are_handled_in_linear_time() {
    // 10,000 aliases took 9 s (each name compared with every other name and every line's
    // names), 1,000,000 never ended.
    let mut text = String::from(DEBIAN);
    for i in (0..10_000).step_by(7) {
        text.push_str(&format!(
            "10.9.{}.{} alias{i}.example.com\n",
            i / 250 % 250,
            i % 250
        ));
    }
    let p = with_aliases(10_000);
    let pl = run(&text, &p);
    assert_eq!(pl.names.len(), 10_001);
    assert_eq!(
        pl.removed_from.len(),
        10_000 / 7 + 1 + 1,
        "the alias lines and 127.0.1.1"
    );
    assert_eq!(
        hosts::lookup(&pl.after, "alias9999.example.com"),
        ip("172.16.0.1")
    );
    // Duplicates (in any case) are dropped once, not compared pairwise.
    let mut dup = with_aliases(3);
    dup.aliases.push("ALIAS1.example.com".into());
    dup.aliases.push("Tartanpion".into());
    assert_eq!(check(&dup).unwrap().names.len(), 4);
    let (a, b) = (with_aliases(5_000), with_aliases(20_000));
    let t1 = fastest(|| drop(plan(DEBIAN, &a).unwrap()));
    let t4 = fastest(|| drop(plan(DEBIAN, &b).unwrap()));
    assert!(
        t4 / t1 < 9.0,
        "20k aliases {t1:.3} s, 80k aliases {t4:.3} s"
    );
}

#[test]
fn latin1_and_utf8_bytes_round_trip_exactly() {
    for bytes in [
        &b"127.0.0.1 localhost # caf\xe9\n87.37.23.91 tartanpion\n"[..],
        "127.0.0.1 localhost # caf\u{e9} \u{2603}\n87.37.23.91 tartanpion\n".as_bytes(),
    ] {
        let (text, latin1) = decode(bytes);
        assert_eq!(latin1, std::str::from_utf8(bytes).is_err());
        assert_eq!(encode(&text, latin1), bytes, "unchanged text, same bytes");
        let pl = plan(&text, &pin("tartanpion", "172.16.0.1")).unwrap();
        let out = encode(&pl.after, latin1);
        let comment_line = bytes.split(|&b| b == b'\n').next().unwrap();
        assert!(out.starts_with(comment_line), "comment kept byte-exact");
        assert!(out.ends_with(b"172.16.0.1 tartanpion\n"));
    }
}

#[test]
fn a_loopback_line_of_only_the_fqdn_is_dropped_other_lines_keep_it() {
    let text = "127.0.1.1 tartanpion.elao.local\n192.0.2.1 tartanpion.elao.local tartanpion\n";
    let pl = run(text, &pin("tartanpion", "10.99.0.1"));
    // the public line keeps the FQDN (not loopback); the loopback one goes
    assert_eq!(
        pl.after,
        "192.0.2.1 tartanpion.elao.local\n10.99.0.1 tartanpion\n"
    );
    // not exclusive: loopback lines are left alone
    let mut p = pin("tartanpion", "10.99.0.1");
    p.exclusive = false;
    assert!(run(text, &p)
        .after
        .starts_with("127.0.1.1 tartanpion.elao.local\n"));
}

#[test]
fn fqdn_goes_first_on_the_private_line_and_leaves_the_others() {
    let mut p = pin("bismuth", "10.99.0.2");
    p.fqdn = Some("bismuth.elao.local".into());
    let text = "127.0.0.1\tlocalhost\n127.0.1.1\tbismuth.elao.local\tbismuth\n";
    let pl = run(text, &p);
    assert_eq!(
        pl.after,
        "127.0.0.1\tlocalhost\n10.99.0.2\tbismuth.elao.local\tbismuth\n"
    );
    // canonical (first) name of the line is the FQDN: what `hostname -f` answers
    assert_eq!(
        hosts::lookup(&pl.after, "bismuth.elao.local"),
        ip("10.99.0.2")
    );
    assert_eq!(run(&pl.after, &p).after, pl.after, "idempotent");
}

#[test]
fn fqdn_must_extend_the_hostname() {
    let mut p = pin("bismuth", "10.99.0.2");
    p.fqdn = Some("tartanpion.elao.local".into());
    assert_eq!(
        check(&p).unwrap_err().to_string(),
        "fqdn 'tartanpion.elao.local' does not start with the host name 'bismuth' and a dot; give the node's full name, e.g. bismuth.example.com, or leave fqdn out"
    );
}

#[test]
fn short_name_is_up_to_the_first_dot() {
    assert_eq!(short_name("bismuth.elao.local"), "bismuth");
    assert_eq!(short_name("bismuth"), "bismuth");
}
