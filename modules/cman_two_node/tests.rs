//! Unit tests of the pure edit: byte-exact variants, refusals, and a property test over random
//! mutations of the fixtures.
use super::*;
use pve2node::testing::Rng;

const PVE3: &str = include_str!("../../tests/fixtures/pve3/cluster.conf");
const PVE3_TWO: &str = include_str!("../../tests/fixtures/pve3/cluster.conf.two-node");
const PVE3_SINGLE: &str = include_str!("../../tests/fixtures/pve3/cluster.conf.single");
const PVE4: &str = include_str!("../../tests/fixtures/pve4/corosync.conf");
const PVE4_SINGLE: &str = include_str!("../../tests/fixtures/pve4/corosync.conf.single");
const PVE5: &str = include_str!("../../tests/fixtures/pve5/corosync.conf");
const PVE5_TWO: &str = include_str!("../../tests/fixtures/pve5/corosync.conf.two-node");
const PVE8: &str = include_str!("../../tests/fixtures/pve8/corosync.conf");
const PVE8_TWO: &str = include_str!("../../tests/fixtures/pve8/corosync.conf.two-node");
const PVE8_V6: &str = include_str!("../../tests/fixtures/pve8/corosync.conf.ipv6");

fn on() -> Want {
    Want {
        present: true,
        expected_votes: 1,
        wait_for_all: None,
        force: false,
    }
}

fn off() -> Want {
    Want {
        present: false,
        ..on()
    }
}

fn forced() -> Want {
    Want {
        force: true,
        ..on()
    }
}

fn wfa(w: bool) -> Want {
    Want {
        wait_for_all: Some(w),
        ..on()
    }
}

fn edit(text: &str, want: &Want) -> String {
    let f = detect(text);
    let p = plan(text, f, want).unwrap_or_else(|e| panic!("{e} for {text:?}"));
    // Idempotent: the output is already in the wanted state.
    let again = plan(&p.text, f, want).unwrap();
    assert!(!again.changed, "second run changes {:?}", p.text);
    assert_eq!(again.text, p.text);
    if p.changed {
        assert_eq!(p.version_after, p.version_before + 1);
    } else {
        assert_eq!(p.version_after, p.version_before);
        assert_eq!(p.text, text);
    }
    p.text
}

#[test]
fn seed_fixtures_byte_for_byte() {
    assert_eq!(edit(PVE3, &on()), PVE3_TWO);
    assert_eq!(edit(PVE5, &on()), PVE5_TWO);
    assert_eq!(edit(PVE8, &on()), PVE8_TWO);
    let p = plan(PVE8, Format::Corosync, &on()).unwrap();
    assert_eq!((p.version_before, p.version_after, p.nodes), (2, 3, 2));
    assert_eq!(p.warnings, vec![WFA_WARNING.to_string()]);
    let p = plan(PVE3, Format::Cman, &on()).unwrap();
    assert_eq!((p.version_before, p.version_after, p.nodes), (2, 3, 2));
    assert!(p.warnings.is_empty());
}

/// A PVE 3 cluster.conf with the schema's other sections (fencing, rgmanager's `rm` with
/// `pvevm`), `<cman>` with other attributes, and a CDATA section that looks like a `<cman>`.
const FENCED: &str = "<?xml version=\"1.0\"?>\n<cluster name=\"lab\" config_version=\"3\">\n  <cman transport=\"udpu\" port=\"5405\"/>\n  <fencedevices><fencedevice agent=\"fence_ilo\" name=\"f1\" ipaddr=\"10.99.0.9\"/></fencedevices>\n  <clusternodes>\n  <clusternode name=\"alpha\" votes=\"1\" nodeid=\"1\"><fence><method name=\"1\"><device name=\"f1\"/></method></fence></clusternode>\n  <clusternode name=\"beta\" votes=\"1\" nodeid=\"2\"/></clusternodes>\n  <rm><pvevm autostart=\"1\" vmid=\"100\"/><![CDATA[<cman two_node=\"0\"/>]]></rm>\n</cluster>\n";

/// (name, input, want, expected output)
fn variants() -> Vec<(&'static str, String, Want, String)> {
    let q = |body: &str| PVE8.replace("quorum {\n  provider: corosync_votequorum\n}", body);
    let q3 = |body: &str| {
        PVE8.replace("config_version: 2", "config_version: 3")
            .replace("quorum {\n  provider: corosync_votequorum\n}", body)
    };
    let crlf = |s: &str| s.replace('\n', "\r\n");
    let x = |cman: &str, v: u32| {
        format!("<?xml version=\"1.0\"?>\n<cluster name=\"lab\" config_version=\"{v}\">\n  {cman}\n  <clusternodes>\n  <clusternode name=\"alpha\" votes=\"1\" nodeid=\"1\"/>\n  <clusternode name=\"beta\" votes=\"1\" nodeid=\"2\"/></clusternodes>\n</cluster>\n")
    };
    vec![
        ("cman empty element", x("<cman/>", 4), on(), x("<cman two_node=\"1\" expected_votes=\"1\"/>", 5)),
        ("cman empty element with space", x("<cman />", 4), on(), x("<cman two_node=\"1\" expected_votes=\"1\" />", 5)),
        ("cman closing tag", x("<cman keyfile=\"k\"></cman>", 4), on(), x("<cman keyfile=\"k\" two_node=\"1\" expected_votes=\"1\"></cman>", 5)),
        ("cman two_node=0", x("<cman two_node=\"0\" expected_votes=\"1\"/>", 9), on(), x("<cman two_node=\"1\" expected_votes=\"1\"/>", 10)),
        ("cman expected_votes=2 only", x("<cman expected_votes=\"2\" two_node=\"1\"/>", 9), on(), x("<cman expected_votes=\"1\" two_node=\"1\"/>", 10)),
        ("cman single quotes", x("<cman keyfile='k'/>", 4).replace("config_version=\"4\"", "config_version='4'"), on(), x("<cman keyfile='k' two_node='1' expected_votes='1'/>", 5).replace("config_version=\"5\"", "config_version='5'")),
        ("cman without XML declaration", x("<cman/>", 4).replacen("<?xml version=\"1.0\"?>\n", "", 1), on(), x("<cman two_node=\"1\" expected_votes=\"1\"/>", 5).replacen("<?xml version=\"1.0\"?>\n", "", 1)),
        ("cman with encoding declaration", x("<cman/>", 4).replacen("<?xml version=\"1.0\"?>", "<?xml version='1.0' encoding='UTF-8'?>", 1), on(), x("<cman two_node=\"1\" expected_votes=\"1\"/>", 5).replacen("<?xml version=\"1.0\"?>", "<?xml version='1.0' encoding='UTF-8'?>", 1)),
        ("cman BOM", format!("\u{feff}{}", x("<cman/>", 4)), on(), format!("\u{feff}{}", x("<cman two_node=\"1\" expected_votes=\"1\"/>", 5))),
        ("cman CRLF", crlf(PVE3), on(), crlf(PVE3_TWO)),
        ("cman comments", x("<!-- two_node here --><cman/><!-- <cman two_node=\"0\"/> -->", 4), on(), x("<!-- two_node here --><cman two_node=\"1\" expected_votes=\"1\"/><!-- <cman two_node=\"0\"/> -->", 5)),
        ("cman multi-line tag", x("<cman\n    keyfile=\"k\"\n  >\n  </cman>", 4), on(), x("<cman\n    keyfile=\"k\" two_node=\"1\" expected_votes=\"1\"\n  >\n  </cman>", 5)),
        ("cman votes attributes absent (1 each)", x("<cman/>", 4).replace(" votes=\"1\"", ""), on(), x("<cman two_node=\"1\" expected_votes=\"1\"/>", 5).replace(" votes=\"1\"", "")),
        ("cman votes 2 with force", x("<cman/>", 4).replace("alpha\" votes=\"1\"", "alpha\" votes=\"2\""), forced(), x("<cman two_node=\"1\" expected_votes=\"1\"/>", 5).replace("alpha\" votes=\"1\"", "alpha\" votes=\"2\"")),
        ("cman absent on one node needs no force", PVE3_SINGLE.replace("authkey\">", "authkey\" two_node=\"1\" expected_votes=\"1\">"), off(), PVE3_SINGLE.replace("config_version=\"1\"", "config_version=\"2\"").replace("authkey\">", "authkey\" expected_votes=\"1\">")),
        ("cman absent", PVE3_TWO.to_string(), off(), PVE3.replace("config_version=\"2\"", "config_version=\"4\"").replace("authkey\">", "authkey\" expected_votes=\"2\">")),
        ("cman absent multi-line", x("<cman\n    two_node=\"1\"\n    expected_votes=\"1\"/>", 4), off(), x("<cman\n    expected_votes=\"2\"/>", 5)),
        ("cman absent already", PVE3.to_string(), off(), PVE3.to_string()),
        ("cman single node with force", PVE3_SINGLE.to_string(), forced(), PVE3_SINGLE.replace("config_version=\"1\"", "config_version=\"2\"").replace("authkey\">", "authkey\" two_node=\"1\" expected_votes=\"1\">")),
        ("pve4 writer style", PVE4.to_string(), on(), PVE4.replace("config_version: 2", "config_version: 3").replace("  provider: corosync_votequorum\n", "  provider: corosync_votequorum\n  two_node: 1\n")),
        ("pve4 create template", PVE4_SINGLE.to_string(), on(), PVE4_SINGLE.replace("config_version: 1", "config_version: 2").replace("  provider: corosync_votequorum\n", "  provider: corosync_votequorum\n  two_node: 1\n")),
        ("ipv6", PVE8_V6.to_string(), on(), PVE8_V6.replace("config_version: 2", "config_version: 3").replace("  provider: corosync_votequorum\n", "  provider: corosync_votequorum\n  two_node: 1\n")),
        ("corosync CRLF", crlf(PVE8), on(), crlf(PVE8_TWO)),
        ("corosync comments and tabs", q("# quorum\nquorum {\n\t# votequorum\n\tprovider: corosync_votequorum   \n\n}"), on(), q3("# quorum\nquorum {\n\t# votequorum\n\tprovider: corosync_votequorum   \n\ttwo_node: 1\n\n}")),
        ("two_node: 0 present", q("quorum {\n  provider: corosync_votequorum\n  two_node: 0\n}"), on(), q3("quorum {\n  provider: corosync_votequorum\n  two_node: 1\n}")),
        ("empty quorum section", q("quorum {\n}"), on(), q3("quorum {\n  two_node: 1\n}")),
        ("unsorted keys", q("quorum {\n  provider: corosync_votequorum\n  expected_votes: 2\n}"), on(), q3("quorum {\n  provider: corosync_votequorum\n  expected_votes: 2\n  two_node: 1\n}")),
        ("sorted keys insert in place", q("quorum {\n  expected_votes: 2\n  provider: corosync_votequorum\n  wait_for_all: 0\n}"), on(), q3("quorum {\n  expected_votes: 2\n  provider: corosync_votequorum\n  two_node: 1\n  wait_for_all: 0\n}")),
        ("wait_for_all false given", PVE8.to_string(), wfa(false), q3("quorum {\n  provider: corosync_votequorum\n  two_node: 1\n  wait_for_all: 0\n}")),
        ("wait_for_all true replaces 0", q("quorum {\n  provider: corosync_votequorum\n  two_node: 1\n  wait_for_all: 0\n}"), wfa(true), q3("quorum {\n  provider: corosync_votequorum\n  two_node: 1\n  wait_for_all: 1\n}")),
        ("auto_tie_breaker 0 is no obstacle", q("quorum {\n  auto_tie_breaker: 0\n  provider: corosync_votequorum\n}"), on(), q3("quorum {\n  auto_tie_breaker: 0\n  provider: corosync_votequorum\n  two_node: 1\n}")),
        ("corosync absent with auto_tie_breaker", q("quorum {\n  auto_tie_breaker: 1\n  provider: corosync_votequorum\n  two_node: 1\n}"), off(), q3("quorum {\n  auto_tie_breaker: 1\n  provider: corosync_votequorum\n}")),
        ("two_node 1 with wait_for_all 0 already", q("quorum {\n  provider: corosync_votequorum\n  two_node: 1\n  wait_for_all: 0\n}"), on(), q("quorum {\n  provider: corosync_votequorum\n  two_node: 1\n  wait_for_all: 0\n}")),
        ("keys with tabs around the colon", q("quorum {\n\tprovider\t:\tcorosync_votequorum\n\ttwo_node\t:\t0\n}"), on(), q3("quorum {\n\tprovider\t:\tcorosync_votequorum\n\ttwo_node\t:\t1\n}")),
        ("cluster.conf with fencing, rm, udpu and CDATA", FENCED.to_string(), on(), FENCED.replace("config_version=\"3\"", "config_version=\"4\"").replace("port=\"5405\"/>", "port=\"5405\" two_node=\"1\" expected_votes=\"1\"/>")),
        ("corosync absent", PVE8_TWO.to_string(), off(), PVE8.replace("config_version: 2", "config_version: 4")),
        ("corosync absent CRLF", crlf(PVE8_TWO), off(), crlf(&PVE8.replace("config_version: 2", "config_version: 4"))),
        ("corosync absent already", PVE8.to_string(), off(), PVE8.to_string()),
        ("corosync absent two_node 0 is off", q("quorum {\n  two_node: 0\n}"), off(), q("quorum {\n  two_node: 0\n}")),
        ("no trailing newline", PVE8.trim_end().to_string(), on(), PVE8_TWO.trim_end().to_string()),
    ]
}

#[test]
fn variants_byte_for_byte() {
    for (name, input, want, expected) in variants() {
        let got = edit(&input, &want);
        assert_eq!(got, expected, "variant `{name}`");
    }
}

#[test]
fn warning_only_when_wait_for_all_unset() {
    let p = plan(PVE8, Format::Corosync, &wfa(false)).unwrap();
    assert!(p.warnings.is_empty());
    let t = PVE8.replace(
        "  provider: corosync_votequorum\n",
        "  provider: corosync_votequorum\n  wait_for_all: 1\n",
    );
    assert!(plan(&t, Format::Corosync, &on())
        .unwrap()
        .warnings
        .is_empty());
    let p = plan(PVE8_TWO, Format::Corosync, &on()).unwrap();
    assert!(!p.changed);
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].contains("wait_for_all: false"));
}

/// (name, input, format, want, expected error text fragment)
fn refusals() -> Vec<(&'static str, String, Format, Want, &'static str)> {
    let three = PVE8.replace(
        "  node {\n    name: beta",
        "  node {\n    name: gamma\n    nodeid: 3\n    quorum_votes: 1\n    ring0_addr: 10.99.0.3\n  }\n  node {\n    name: beta",
    );
    let three_x = PVE3.replace(
        "</clusternodes>",
        "<clusternode name=\"gamma\" votes=\"1\" nodeid=\"3\"/></clusternodes>",
    );
    let c = Format::Corosync;
    let m = Format::Cman;
    vec![
        (
            "qdevice",
            PVE8.replace(
                "  provider: corosync_votequorum\n",
                "  provider: corosync_votequorum\n  device {\n    model: net\n  }\n",
            ),
            c,
            on(),
            "line 23: the quorum section has a `device` section",
        ),
        (
            "missing brace",
            PVE8.replacen("}\n", "\n", 1),
            c,
            on(),
            "missing closing brace",
        ),
        (
            "garbage line",
            PVE8.replace("  secauth: on\n", "  secauth on\n"),
            c,
            on(),
            "line 33: cannot read `secauth on`",
        ),
        (
            "no quorum",
            PVE8.replace("quorum {\n  provider: corosync_votequorum\n}\n", ""),
            c,
            on(),
            "no top-level `quorum { }` section",
        ),
        (
            "no version",
            PVE8.replace("  config_version: 2\n", ""),
            c,
            on(),
            "totem.config_version is missing",
        ),
        (
            "bad version",
            PVE8.replace("config_version: 2", "config_version: abc"),
            c,
            on(),
            "line 27: config_version `abc` is not a whole number",
        ),
        (
            "negative version",
            PVE8.replace("config_version: 2", "config_version: -1"),
            c,
            on(),
            "is not a whole number",
        ),
        (
            "huge version",
            PVE8.replace("config_version: 2", "config_version: 18446744073709551615"),
            c,
            on(),
            "is not a whole number",
        ),
        (
            "two versions",
            PVE8.replace(
                "  config_version: 2\n",
                "  config_version: 2\n  config_version: 3\n",
            ),
            c,
            on(),
            "set more than once",
        ),
        (
            "closing brace with a comment (corosync 3 refuses it too)",
            PVE8.replace("  provider: corosync_votequorum\n}", "  provider: corosync_votequorum\n} # quorum"),
            c,
            on(),
            "line 23: cannot read `} # quorum`",
        ),
        (
            "two quorum sections",
            format!("{PVE8}quorum {{\n}}\n"),
            c,
            on(),
            "section `quorum` appears more than once",
        ),
        ("three nodes", three, c, on(), "it lists 3 nodes"),
        (
            "auto_tie_breaker",
            PVE8.replace(
                "  provider: corosync_votequorum\n",
                "  provider: corosync_votequorum\n  auto_tie_breaker: 1\n",
            ),
            c,
            on(),
            "line 23: the quorum section turns on auto_tie_breaker, and corosync disables two_node",
        ),
        (
            "xml malformed",
            PVE3.replace("</cman>", "</cmann>"),
            m,
            on(),
            "line 5: malformed XML",
        ),
        (
            "xml unclosed",
            PVE3.replace("</cluster>\n", ""),
            m,
            on(),
            "malformed XML",
        ),
        (
            "no cman",
            PVE3.replace(
                "  <cman keyfile=\"/var/lib/pve-cluster/corosync.authkey\">\n  </cman>\n",
                "",
            ),
            m,
            on(),
            "no <cman> element",
        ),
        (
            "two cman",
            PVE3.replace("  </cman>\n", "  </cman>\n<cman/>"),
            m,
            on(),
            "<cman> appears more than once",
        ),
        (
            "xml no version",
            PVE3.replace(" config_version=\"2\"", ""),
            m,
            on(),
            "config_version attribute of <cluster> is missing",
        ),
        (
            "xml bad version",
            PVE3.replace("config_version=\"2\"", "config_version=\"2a\""),
            m,
            on(),
            "line 2: config_version `2a`",
        ),
        ("xml three nodes", three_x, m, on(), "it lists 3 nodes"),
        (
            "xml one node",
            PVE3_SINGLE.to_string(),
            m,
            on(),
            "it lists 1 node, but cman refuses to start with two_node=\"1\" unless <clusternodes> lists exactly two nodes with one vote each",
        ),
        (
            "xml no clusternodes",
            "<cluster config_version=\"1\"><cman/></cluster>".into(),
            m,
            on(),
            "it lists 0 nodes, but cman refuses",
        ),
        (
            "xml votes 2",
            PVE3.replace("name=\"beta\" votes=\"1\"", "name=\"beta\" votes=\"2\""),
            m,
            on(),
            "clusternode `beta` has votes=\"2\", but cman refuses",
        ),
        (
            "xml votes not a number",
            PVE3.replace("name=\"alpha\" votes=\"1\"", "name=\"alpha\" votes=\"one\""),
            m,
            on(),
            "clusternode `alpha` has votes=\"one\"",
        ),
        (
            "not cluster root",
            "<foo/>".into(),
            m,
            on(),
            "the root element is <foo>",
        ),
        (
            "corosync read as xml",
            PVE8.to_string(),
            m,
            on(),
            "malformed XML",
        ),
    ]
}

#[test]
fn refusals_name_the_problem() {
    for (name, input, format, want, frag) in refusals() {
        match plan(&input, format, &want) {
            Ok(p) => panic!("variant `{name}` was accepted: {:?}", p.text),
            Err(e) => assert!(e.to_string().contains(frag), "variant `{name}`: {e}"),
        }
    }
}

#[test]
fn force_allows_three_nodes_and_absent_never_needs_it() {
    let three_x = PVE3.replace(
        "</clusternodes>",
        "<clusternode name=\"gamma\" votes=\"1\" nodeid=\"3\"/></clusternodes>",
    );
    let forced = Want {
        force: true,
        ..on()
    };
    let p = plan(&three_x, Format::Cman, &forced).unwrap();
    assert_eq!(p.nodes, 3);
    assert!(p.changed);
    let p = plan(&three_x, Format::Cman, &off()).unwrap();
    assert!(!p.changed);
}

#[test]
fn splice_applies_sorted_edits_in_one_pass() {
    assert_eq!(
        splice(
            "abcdef",
            vec![(4..5, "X".into()), (1..1, "+".into()), (1..1, "-".into())]
        ),
        "a+-bcdXf"
    );
    assert_eq!(splice("abc", vec![]), "abc");
}

// ---- property test --------------------------------------------------------------------------

const PIECES: &[&str] = &[
    "{",
    "}",
    "\n",
    "\r\n",
    ":",
    " ",
    "\t",
    "#",
    "<",
    ">",
    "/>",
    "\"",
    "'",
    "=",
    "two_node",
    "two_node: 1",
    "two_node: 0",
    "quorum {",
    "device {",
    "config_version",
    "config_version: 9",
    "<cman/>",
    "<cman>",
    "</cman>",
    "two_node=\"0\"",
    "<clusternode/>",
    "node {\n}\n",
    "\u{feff}",
    "é",
    "&amp;",
    "<!--",
    "-->",
    "<?xml version=\"1.0\"?>",
    "wait_for_all: 1",
    "expected_votes=\"3\"",
];

fn mutate(rng: &mut Rng, base: &str) -> String {
    let mut s = base.to_string();
    for _ in 0..1 + rng.below(3) {
        let mut at = rng.below(s.len() + 1);
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        match rng.below(3) {
            0 => {
                let piece = PIECES[rng.below(PIECES.len())];
                s.insert_str(at, piece);
            }
            1 => {
                let mut end = (at + 1 + rng.below(12)).min(s.len());
                while !s.is_char_boundary(end) {
                    end += 1;
                }
                s.replace_range(at..end, "");
            }
            _ => {
                let mut end = (at + rng.below(6)).min(s.len());
                while !s.is_char_boundary(end) {
                    end += 1;
                }
                let piece = PIECES[rng.below(PIECES.len())];
                s.replace_range(at..end, piece);
            }
        }
    }
    s
}

/// Lines (with endings) of `a` not in `b` and vice versa, as multisets, by a common
/// prefix/suffix trim: the differing middle of both.
fn middle<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    let pre = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .bytes()
        .rev()
        .zip(b[pre..].bytes().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (&a[pre..a.len() - suf], &b[pre..b.len() - suf])
}

fn check_property(input: &str, format: Format, want: &Want) {
    let Ok(p) = plan(input, format, want) else {
        return; // refused: the module writes nothing (checked at the binary level)
    };
    if !p.changed {
        assert_eq!(p.text, input);
        return;
    }
    // The output re-parses, carries version +1 and the wanted state, and is stable.
    let again = plan(&p.text, format, want)
        .unwrap_or_else(|e| panic!("output does not re-parse: {e}\n{:?}", p.text));
    assert!(!again.changed, "not idempotent: {:?}", p.text);
    assert_eq!(again.version_before, p.version_before + 1);
    // Only the intended places differ: remove every intended change from both texts and
    // they must be equal.
    // Only the intended places differ: drop quorum.two_node / quorum.wait_for_all lines and
    // blank out the config_version value in both texts; what is left must be equal.
    let strip = |s: &str| -> String {
        let c = corosync_conf::parse(s).unwrap();
        let q = c.quorum();
        let v = c.config_versions(s);
        let mut out = String::new();
        for l in &c.lines {
            if let Kind::KeyValue {
                section,
                key,
                value,
            } = &l.kind
            {
                let k = &s[key.clone()];
                if *section == q && (k == "two_node" || k == "wait_for_all") {
                    continue;
                }
                if v.first().is_some_and(|e| e.value_span == *value) {
                    out.push_str(&s[l.span.start..value.start]);
                    out.push('V');
                    out.push_str(&s[value.end..l.eol.end]);
                    continue;
                }
            }
            out.push_str(&s[l.span.start..l.eol.end]);
        }
        out
    };
    match format {
        Format::Corosync => {
            let (a, b) = middle(input, &p.text);
            assert!(
                strip(input) == strip(&p.text),
                "unintended change: {a:?} -> {b:?}\ninput {input:?}"
            );
        }
        Format::Cman => {
            // Outside the <cluster> and <cman> start tags nothing changed; inside them only
            // config_version, two_node and expected_votes.
            let c = cluster_conf::parse(input).unwrap();
            let n = cluster_conf::parse(&p.text).unwrap();
            let (ci, ni) = (&c.cman[0], &n.cman[0]);
            assert_eq!(
                input[..c.cluster.span.start],
                p.text[..n.cluster.span.start]
            );
            assert_eq!(
                input[c.cluster.span.end..ci.span.start],
                p.text[n.cluster.span.end..ni.span.start]
            );
            assert_eq!(input[ci.span.end..], p.text[ni.span.end..]);
            let others = |t: &cluster_conf::Tag| -> Vec<(String, String)> {
                t.attrs
                    .iter()
                    .filter(|a| {
                        !["config_version", "two_node", "expected_votes"].contains(&a.name.as_str())
                    })
                    .map(|a| (a.name.clone(), a.value.clone()))
                    .collect()
            };
            assert_eq!(others(&c.cluster), others(&n.cluster));
            assert_eq!(others(ci), others(ni));
        }
    }
}

#[test]
fn property_random_mutations() {
    let seed = std::env::var("PVE2NODE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e3779b97f4a7c15u64);
    let mut rng = Rng::new(seed);
    let bases = [
        PVE3,
        PVE3_TWO,
        PVE3_SINGLE,
        PVE4,
        PVE4_SINGLE,
        PVE5,
        PVE5_TWO,
        PVE8,
        PVE8_TWO,
        PVE8_V6,
    ];
    let wants = [
        on(),
        off(),
        wfa(false),
        wfa(true),
        Want {
            force: true,
            ..on()
        },
    ];
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..6000 {
        let base = bases[rng.below(bases.len())];
        let input = mutate(&mut rng, base);
        let want = &wants[rng.below(wants.len())];
        for format in [Format::Corosync, Format::Cman] {
            match plan(&input, format, want) {
                Ok(_) => accepted += 1,
                Err(_) => refused += 1,
            }
            check_property(&input, format, want);
        }
    }
    // Both outcomes must actually be exercised.
    assert!(
        accepted > 1000 && refused > 1000,
        "accepted {accepted}, refused {refused}"
    );
}

#[test]
fn warns_when_pmxcfs_would_read_another_version() {
    let t = format!("# config_version: 1 was the first\n{PVE8}");
    let p = plan(&t, Format::Corosync, &wfa(false)).unwrap();
    assert_eq!(p.version_after, 3);
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(
        p.warnings[0].contains("which is 1 here, not totem's 3"),
        "{:?}",
        p.warnings
    );
    assert!(plan(PVE8, Format::Corosync, &wfa(false))
        .unwrap()
        .warnings
        .is_empty());
}

#[test]
fn copy_state_needs_the_new_bytes_not_only_the_version() {
    let c = Format::Corosync;
    assert_eq!(copy_state(c, Some(PVE8_TWO), PVE8_TWO, 3), Copy::Done);
    assert_eq!(copy_state(c, None, PVE8_TWO, 3), Copy::Pending(None));
    // The old file: pending, at version 2.
    assert_eq!(
        copy_state(c, Some(PVE8), PVE8_TWO, 3),
        Copy::Pending(Some(2))
    );
    // An EQUAL version with other content: pmxcfs still copies (proxmox.md §8), keep waiting.
    let same_version = PVE8.replace("config_version: 2", "config_version: 3");
    assert_eq!(
        copy_state(c, Some(&same_version), PVE8_TWO, 3),
        Copy::Pending(Some(3))
    );
    // A higher one: pmxcfs never copies over it.
    let newer = PVE8.replace("config_version: 2", "config_version: 7");
    assert_eq!(copy_state(c, Some(&newer), PVE8_TWO, 3), Copy::Newer(7));
    let x = Format::Cman;
    assert_eq!(copy_state(x, Some(PVE3_TWO), PVE3_TWO, 3), Copy::Done);
    assert_eq!(
        copy_state(x, Some(PVE3), PVE3_TWO, 3),
        Copy::Pending(Some(2))
    );
}

#[test]
fn activation_argv_per_era_and_place() {
    let local = Path::new("/etc/corosync/corosync.conf");
    let a = activation(Format::Corosync, &[], true, local);
    assert_eq!(a.argv, vec!["corosync-cfgtool", "-R"]);
    assert_eq!(a.wait_copy.as_deref(), Some(local));
    assert!(a.pmxcfs_reloads && !a.custom);
    let a = activation(Format::Corosync, &[], false, local);
    assert_eq!(a.wait_copy, None);
    assert!(!a.pmxcfs_reloads);
    let a = activation(
        Format::Cman,
        &[],
        true,
        Path::new("/etc/cluster/cluster.conf"),
    );
    assert_eq!(a.argv, vec!["cman_tool", "version", "-r", "-S"]);
    assert!(a.pmxcfs_reloads);
    let own = vec!["/etc/init.d/cman".to_string(), "restart".to_string()];
    let a = activation(Format::Cman, &own, true, local);
    assert_eq!(a.argv, own);
    assert!(a.custom && !a.pmxcfs_reloads && a.wait_copy.is_none());
}

#[test]
fn only_erofs_and_eacces_count_as_no_quorum() {
    let w = |errno: i32| {
        let e = std::io::Error::from_raw_os_error(errno);
        EditError::Write(
            "/etc/pve/corosync.conf".into(),
            pve2node::edit::OsError {
                step: String::new(),
                errno: Some(errno),
                detail: pve2node::io_reason(&e),
                tail: String::new(),
            },
        )
    };
    assert!(refused_without_quorum(&w(libc::EROFS)));
    assert!(refused_without_quorum(&w(libc::EACCES)));
    assert!(!refused_without_quorum(&w(libc::ENOSPC)));
    assert!(!refused_without_quorum(&w(libc::EFBIG)));
    // the decision is the errno's, not the text's
    let text_only = EditError::Write(
        "/etc/pve/corosync.conf".into(),
        pve2node::edit::OsError::text("", "Read-only file system"),
    );
    assert!(!refused_without_quorum(&text_only));
    assert!(!refused_without_quorum(&EditError::NotFound("x".into())));
}

#[test]
fn settings_that_do_not_apply_are_warned_about() {
    let s = |wfa: Option<bool>, ev: i64| Settings {
        want: Want {
            present: true,
            expected_votes: ev,
            wait_for_all: wfa,
            force: false,
        },
        format: None,
        timeout: Duration::from_secs(1),
        activate_command: Vec::new(),
        activate: true,
        verify: true,
        validate: true,
        backup: false,
    };
    assert!(ignored_settings(&s(None, 1), Format::Corosync).is_empty());
    assert!(ignored_settings(&s(None, 1), Format::Cman).is_empty());
    assert_eq!(ignored_settings(&s(Some(true), 1), Format::Cman).len(), 1);
    assert_eq!(ignored_settings(&s(None, 2), Format::Corosync).len(), 1);
    assert!(ignored_settings(&s(None, 2), Format::Cman).is_empty());
}

#[test]
fn stale_backup_temp_names() {
    assert_eq!(
        stale_temp_pid(".corosync.conf.4242.2026-12-01@08:40:00~.tmp"),
        Some(4242)
    );
    assert_eq!(
        stale_temp_pid("corosync.conf.4242.2026-12-01@08:40:00~"),
        None
    );
    assert_eq!(stale_temp_pid(".corosync.conf.x.2026~.tmp"), None);
    assert_eq!(stale_temp_pid(".4242.t~.tmp"), None);
    assert_eq!(stale_temp_pid(".tmp"), None);
}
