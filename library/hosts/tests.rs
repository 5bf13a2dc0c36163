use super::*;

const SEED: &str =
    "127.0.0.1   localhost.localdomain localhost\n87.37.23.91 tartanpion.elao.local tartanpion\n";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_line_renders_back_byte_for_byte() {
    let samples = [
        SEED,
        "",
        "\n",
        "no final newline",
        "127.0.0.1\tlocalhost\r\n# comment\r\n\r\n::1 ip6-localhost\r\n",
        "  10.0.0.1 \t a  b\t # trailing comment  \n",
        "10.0.0.1 a#glued\n",
        "#only\n   \n\t\n",
        "10.0.0.1",
        "bogus line with words\n",
        "\r",
        "é 1.2.3.4 ☃\n",
    ];
    for text in samples {
        let lines = parse(text);
        let joined: String = lines.iter().map(|l| l.raw).collect();
        assert_eq!(joined, text);
        for l in &lines {
            assert_eq!(l.render_with(&l.names), l.raw, "line {:?}", l.raw);
        }
    }
}

#[test]
fn fields_are_split_like_glibc() {
    let l = Line::parse("  10.0.0.1 \t a  b\t # c d\r\n");
    assert_eq!(l.leading, "  ");
    assert_eq!(l.addr, "10.0.0.1");
    assert_eq!(
        l.names,
        vec![
            Field {
                sep: " \t ",
                name: "a"
            },
            Field {
                sep: "  ",
                name: "b"
            }
        ]
    );
    assert_eq!(l.trailing, "\t ");
    assert_eq!(l.comment, "# c d");
    assert_eq!(l.eol, "\r\n");
    assert_eq!(l.text(), "  10.0.0.1 \t a  b\t # c d");
    // '#' glued to a name still starts the comment.
    let g = Line::parse("10.0.0.1 a#b\n");
    assert_eq!(g.names.len(), 1);
    assert_eq!(g.names[0].name, "a");
    assert_eq!(g.comment, "#b");
    // A comment line has no address.
    let c = Line::parse("# 10.0.0.1 a\n");
    assert_eq!(c.addr, "");
    assert!(!c.is_entry());
}

#[test]
fn lookup_takes_the_first_line_naming_the_host() {
    assert_eq!(lookup(SEED, "tartanpion"), Some(ip("87.37.23.91")));
    assert_eq!(
        lookup(SEED, "TARTANPION.elao.LOCAL"),
        Some(ip("87.37.23.91"))
    );
    assert_eq!(lookup(SEED, "localhost"), Some(ip("127.0.0.1")));
    assert_eq!(lookup(SEED, "tartanpion.elao"), None);
    let debian = "127.0.0.1\tlocalhost\n127.0.1.1\ttartanpion.elao.local\ttartanpion\n172.16.0.1 tartanpion\n";
    assert_eq!(lookup(debian, "tartanpion"), Some(ip("127.0.1.1")));
    assert_eq!(lookup(debian, "tartanpion"), Some(ip("127.0.1.1")));
}

#[test]
fn lookup_skips_comments_and_invalid_addresses() {
    let text = "# 10.0.0.9 node\nbogus node\n10.0.0.300 node\n  10.0.0.2 other # node\n::1%lo node\n2001:db8::5\tnode\n10.0.0.1 node\n";
    assert_eq!(lookup(text, "node"), Some(ip("2001:db8::5")));
    assert_eq!(lookup(text, "other"), Some(ip("10.0.0.2")));
    assert_eq!(lookup("", "node"), None);
    // CRLF: the \r is not part of the name.
    assert_eq!(lookup("10.0.0.1 node\r\n", "node"), Some(ip("10.0.0.1")));
}

#[test]
fn ip_helpers() {
    assert!(parse_ip("172.16.0.1").is_some_and(|i| i.is_ipv4()));
    assert_eq!(parse_ip("172.16.0"), None);
    assert_eq!(parse_ip("172.016.0.1"), None);
    assert!(parse_ip("2001:db8::1").is_some_and(|i| i.is_ipv6()));
    assert!(parse_ip("::ffff:10.0.0.1").is_some_and(|i| i.is_ipv6()));
    assert_eq!(parse_ip("fe80::1%eth0"), None);
    assert_eq!(parse_ip("2001:db8::g"), None);
    assert_eq!(parse_ip(" 10.0.0.1"), None);
    for lo in [
        "127.0.0.1",
        "127.0.1.1",
        "127.255.255.254",
        "::1",
        "::ffff:127.0.1.1",
    ] {
        assert!(is_loopback(ip(lo)), "{lo}");
    }
    for not in [
        "128.0.0.1",
        "172.16.0.1",
        "::2",
        "2001:db8::1",
        "0.0.0.0",
        "::",
    ] {
        assert!(!is_loopback(ip(not)), "{not}");
    }
}

#[test]
fn hostname_validation_follows_rfc_1123() {
    for ok in [
        "tartanpion",
        "tartanpion.elao.local",
        "a",
        "pve-1",
        "1node",
        "123",
        "A-B.c0",
        &"a".repeat(63),
        &[
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join("."),
    ] {
        assert_eq!(validate_hostname(ok), Ok(()), "{ok}");
    }
    assert_eq!(validate_hostname(""), Err(NameError::Empty));
    assert_eq!(validate_hostname("node."), Err(NameError::TrailingDot));
    assert_eq!(validate_hostname("a..b"), Err(NameError::EmptyLabel));
    assert_eq!(validate_hostname(".a"), Err(NameError::EmptyLabel));
    assert_eq!(validate_hostname("-a"), Err(NameError::Hyphen("-a".into())));
    assert_eq!(
        validate_hostname("a.b-"),
        Err(NameError::Hyphen("b-".into()))
    );
    assert_eq!(validate_hostname("a_b"), Err(NameError::BadChar('_')));
    assert_eq!(validate_hostname("a b"), Err(NameError::BadChar(' ')));
    assert_eq!(validate_hostname("nœud"), Err(NameError::BadChar('œ')));
    assert_eq!(
        validate_hostname(&"a".repeat(64)),
        Err(NameError::LabelTooLong("a".repeat(64)))
    );
    let long = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(62),
    ]
    .join(".");
    assert_eq!(long.len(), 254);
    assert_eq!(validate_hostname(&long), Err(NameError::TooLong));
    assert_eq!(validate_hostname("10.0.0.1"), Err(NameError::Address));
    assert!(!is_valid_hostname("x_y"));
    assert!(is_valid_hostname("x-y"));
}

#[test]
fn localhost_names() {
    for n in [
        "localhost",
        "LocalHost",
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
        "a.localhost",
    ] {
        assert!(is_localhost_name(n), "{n}");
    }
    for n in ["tartanpion", "localhost2", "mylocalhost"] {
        assert!(!is_localhost_name(n), "{n}");
    }
}

#[test]
fn names_without_keeps_the_layout() {
    let l = Line::parse("87.37.23.91 tartanpion.elao.local tartanpion\n");
    assert_eq!(
        l.render_with(&l.names_without_by(|n| {
            ["TARTANPION"]
                .iter()
                .any(|r: &&str| n.eq_ignore_ascii_case(r))
        })),
        "87.37.23.91 tartanpion.elao.local\n"
    );
    let t = Line::parse("127.0.1.1\ttartanpion.elao.local\ttartanpion # x\n");
    assert_eq!(
        t.render_with(&t.names_without_by(|n| {
            ["tartanpion"]
                .iter()
                .any(|r: &&str| n.eq_ignore_ascii_case(r))
        })),
        "127.0.1.1\ttartanpion.elao.local # x\n"
    );
    let first = Line::parse("10.0.0.1    a b  c\n");
    assert_eq!(
        first.render_with(
            &first.names_without_by(|n| ["a"].iter().any(|r: &&str| n.eq_ignore_ascii_case(r)))
        ),
        "10.0.0.1    b  c\n"
    );
    assert_eq!(
        first.render_with(
            &first
                .names_without_by(|n| ["a", "b"].iter().any(|r: &&str| n.eq_ignore_ascii_case(r)))
        ),
        "10.0.0.1    c\n"
    );
    assert!(first
        .names_without_by(|n| ["a", "b", "c"]
            .iter()
            .any(|r: &&str| n.eq_ignore_ascii_case(r)))
        .is_empty());
}

#[test]
fn name_column_expands_tabs() {
    assert_eq!(Line::parse("127.0.0.1\tlocalhost").name_column(), Some(16));
    assert_eq!(Line::parse("::1\tlocalhost").name_column(), Some(8));
    assert_eq!(Line::parse("127.0.0.1   localhost").name_column(), Some(12));
    assert_eq!(Line::parse("127.0.0.1").name_column(), None);
    assert_eq!(advance(3, "\t\t"), 16);
}
