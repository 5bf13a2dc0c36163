//! Unit tests of the module protocol: coercion, validation messages (checked against
//! ansible-core 2.19's AnsibleModule), `_ansible_*` keys, result shape, parse errors, and a
//! property-style test that no input makes it panic.
use super::*;
use crate::testing::Rng;
use serde_json::json;

const PARAMS: &[Param] = &[
    Param::new("hostname", Type::Str)
        .required()
        .aliases(&["name"]),
    Param::new("ip", Type::Str),
    Param::new("aliases", Type::List(Elem::Str)).default(Default::List(&[])),
    Param::new("count", Type::Int),
    Param::new("flag", Type::Bool).default(Default::Bool(false)),
    Param::new("opts", Type::Dict),
    Param::new("ports", Type::List(Elem::Int)),
    Param::new("paths", Type::List(Elem::Path)),
    Param::new("path", Type::Path).default(Default::Str("/etc/hosts")),
    Param::new("secret", Type::Str).no_log(),
    Param::new("state", Type::Str)
        .choices(&["present", "absent"])
        .default(Default::Str("present")),
    Param::new("modes", Type::List(Elem::Str)).choices(&["a", "b"]),
    Param::new("a", Type::Str),
    Param::new("b", Type::Str),
    Param::new("c", Type::Str),
    Param::new("d", Type::Str),
    Param::new("raw", Type::Raw),
];

const SPEC: Spec = Spec {
    module: "testmod",
    params: PARAMS,
    mutually_exclusive: &[&["a", "b"], &["c", "d"]],
    required_if: &[RequiredIf {
        param: "state",
        value: "present",
        requires: &["ip"],
    }],
    supports_check_mode: true,
};

/// A spec with only optional parameters, for coercion tests.
const LOOSE: Spec = Spec {
    module: "loose",
    params: PARAMS_LOOSE,
    mutually_exclusive: &[],
    required_if: &[],
    supports_check_mode: true,
};
const PARAMS_LOOSE: &[Param] = &[
    Param::new("s", Type::Str),
    Param::new("b", Type::Bool),
    Param::new("i", Type::Int),
    Param::new("p", Type::Path),
    Param::new("l", Type::List(Elem::Str)),
    Param::new("li", Type::List(Elem::Int)),
    Param::new("lp", Type::List(Elem::Path)),
    Param::new("d", Type::Dict),
    Param::new("r", Type::Raw),
    Param::new("bd", Type::Bool).default(Default::Bool(true)),
    Param::new("id", Type::Int).default(Default::Int(42)),
];

fn ok(spec: &Spec, args: Value) -> Ctx {
    let text = args.to_string();
    match context(spec, &text, "test") {
        Ok(c) => c,
        Err(f) => panic!("expected success for {text}, got: {}", f.msg),
    }
}

fn err(spec: &Spec, args: Value) -> String {
    let text = args.to_string();
    match context(spec, &text, "test") {
        Ok(c) => panic!("expected a failure for {text}, got {:?}", c.params),
        Err(f) => f.msg,
    }
}

fn loose(key: &str, v: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.to_string(), v);
    ok(&LOOSE, Value::Object(m))
        .params
        .get(key)
        .cloned()
        .unwrap_or(Value::Null)
}

fn loose_err(key: &str, v: Value) -> String {
    let mut m = Map::new();
    m.insert(key.to_string(), v);
    err(&LOOSE, Value::Object(m))
}

fn base() -> Value {
    json!({"hostname": "tartanpion", "ip": "172.16.0.1"})
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    v.as_object_mut().unwrap().insert(key.to_string(), val);
    v
}

// ---------------------------------------------------------------------------------------------
// Coercion

#[test]
fn bool_words_in_any_case() {
    for word in ["yes", "on", "true", "y", "t", "1"] {
        for w in [word.to_string(), word.to_uppercase(), capitalize(word)] {
            assert_eq!(loose("b", json!(w)), json!(true), "{w}");
            assert_eq!(loose("b", json!(format!(" {w} "))), json!(true), "' {w} '");
        }
    }
    for word in ["no", "off", "false", "n", "f", "0"] {
        for w in [word.to_string(), word.to_uppercase(), capitalize(word)] {
            assert_eq!(loose("b", json!(w)), json!(false), "{w}");
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[test]
fn bool_from_json_bools_and_numbers() {
    assert_eq!(loose("b", json!(true)), json!(true));
    assert_eq!(loose("b", json!(false)), json!(false));
    assert_eq!(loose("b", json!(1)), json!(true));
    assert_eq!(loose("b", json!(0)), json!(false));
    assert_eq!(loose("b", json!(1.0)), json!(true));
    assert_eq!(loose("b", json!(0.0)), json!(false));
}

#[test]
fn bool_refusals_use_ansible_text() {
    assert_eq!(
        loose_err("b", json!("maybe")),
        "argument 'b' is of type str and we were unable to convert to bool: The value 'maybe' is not a valid boolean. Valid booleans include: 'yes', 'no', 'on', 'off', 'true', 'false', 'y', 'n', 't', 'f', '1', '0', 1, 0"
    );
    assert!(loose_err("b", json!(2)).starts_with(
        "argument 'b' is of type int and we were unable to convert to bool: The value '2' is not a valid boolean."
    ));
    assert!(loose_err("b", json!(0.5)).starts_with("argument 'b' is of type float"));
    assert_eq!(
        loose_err("b", json!([true])),
        "argument 'b' is of type list and we were unable to convert to bool: <class 'list'> cannot be converted to a bool"
    );
}

#[test]
fn int_from_numbers_and_decimal_strings() {
    assert_eq!(loose("i", json!(7)), json!(7));
    assert_eq!(loose("i", json!(-7)), json!(-7));
    assert_eq!(loose("i", json!(3.0)), json!(3));
    assert_eq!(loose("i", json!("12")), json!(12));
    assert_eq!(loose("i", json!(" 7 ")), json!(7));
    assert_eq!(loose("i", json!("+5")), json!(5));
    assert_eq!(loose("i", json!("-5")), json!(-5));
    assert_eq!(loose("i", json!("1.0")), json!(1));
    assert_eq!(loose("i", json!("1e3")), json!(1000));
    assert_eq!(loose("i", json!("2.50E+1")), json!(25));
    assert_eq!(loose("i", json!("007")), json!(7));
    assert_eq!(loose("i", json!("9223372036854775807")), json!(i64::MAX));
    assert_eq!(loose("i", json!("-9223372036854775808")), json!(i64::MIN));
    // Python's bool is an int.
    assert_eq!(loose("i", json!(true)), json!(1));
}

#[test]
fn int_refusals_use_ansible_text() {
    assert_eq!(
        loose_err("i", json!("abc")),
        "argument 'i' is of type str and we were unable to convert to int: \"'abc'\" cannot be converted to an int"
    );
    assert_eq!(
        loose_err("i", json!(1.5)),
        "argument 'i' is of type float and we were unable to convert to int: \"1.5\" cannot be converted to an int"
    );
    for bad in [
        "1.5",
        "0x10",
        "1_000",
        "inf",
        "NaN",
        "1e",
        "e3",
        ".",
        "-",
        "1 2",
        "9223372036854775808",
    ] {
        let m = loose_err("i", json!(bad));
        assert!(
            m.ends_with(&format!("\"'{bad}'\" cannot be converted to an int")),
            "{bad}: {m}"
        );
    }
    assert!(loose_err("i", json!([1])).contains("\"[1]\" cannot be converted to an int"));
    assert!(loose_err("i", json!({"a": 1})).contains("is of type dict"));
}

#[test]
fn str_from_scalars_like_python_str() {
    assert_eq!(loose("s", json!("x")), json!("x"));
    assert_eq!(loose("s", json!(5)), json!("5"));
    assert_eq!(loose("s", json!(1.5)), json!("1.5"));
    assert_eq!(loose("s", json!(true)), json!("True"));
    assert_eq!(loose("s", json!(false)), json!("False"));
    assert_eq!(
        loose("s", json!("")),
        json!(""),
        "an empty string stays a string"
    );
    let m = loose_err("s", json!(["x"]));
    assert_eq!(
        m,
        "argument 's' is of type list and we were unable to convert to str: '['x']' is not a string and conversion is not allowed"
    );
}

#[test]
fn list_from_comma_string_and_scalars() {
    assert_eq!(loose("l", json!("a,b,c")), json!(["a", "b", "c"]));
    // No trimming, as Ansible.
    assert_eq!(loose("l", json!("a, b")), json!(["a", " b"]));
    assert_eq!(loose("l", json!("single")), json!(["single"]));
    assert_eq!(loose("l", json!(["x", "y"])), json!(["x", "y"]));
    assert_eq!(loose("l", json!(5)), json!(["5"]));
    assert_eq!(loose("l", json!(true)), json!(["True"]));
    assert_eq!(loose("l", json!([])), json!([]));
    assert_eq!(loose("l", json!("")), json!([]), "'' is an empty list");
    // Elements are coerced to str like Python's str().
    assert_eq!(
        loose("l", json!([1, true, 2.5])),
        json!(["1", "True", "2.5"])
    );
    assert_eq!(
        loose_err("l", json!({"a": 1})),
        "argument 'l' is of type dict and we were unable to convert to list: <class 'dict'> cannot be converted to a list"
    );
}

#[test]
fn list_element_types() {
    assert_eq!(loose("li", json!("1,2,3")), json!([1, 2, 3]));
    assert_eq!(loose("li", json!([1, "2", 3.0])), json!([1, 2, 3]));
    assert_eq!(loose("li", json!(5)), json!([5]));
    assert_eq!(
        loose_err("li", json!("1,2,x")),
        "Elements value for option 'li' is of type str and we were unable to convert to int: \"'x'\" cannot be converted to an int"
    );
    assert!(
        loose_err("li", json!([[1]])).starts_with("Elements value for option 'li' is of type list")
    );
    let home = std::env::var("HOME").unwrap_or_default();
    if !home.is_empty() {
        assert_eq!(
            loose("lp", json!("~/a,/b")),
            json!([format!("{}/a", home.trim_end_matches('/')), "/b"])
        );
    }
}

#[test]
fn params_list_renders_ints_as_decimal() {
    let c = ok(&LOOSE, json!({"li": "1,2", "l": "a,b"}));
    assert_eq!(c.params.list("li"), vec!["1", "2"]);
    assert_eq!(c.params.list("l"), vec!["a", "b"]);
    assert!(c.params.list("lp").is_empty(), "not given: empty");
}

#[test]
fn dict_from_object_json_string_and_key_value() {
    assert_eq!(loose("d", json!({"a": 1})), json!({"a": 1}));
    assert_eq!(loose("d", json!("{\"a\": [1]}")), json!({"a": [1]}));
    assert_eq!(loose("d", json!("a=1, b=2")), json!({"a": "1", "b": "2"}));
    assert_eq!(loose("d", json!("a=1 b=2")), json!({"a": "1", "b": "2"}));
    assert_eq!(
        loose("d", json!("a=1 b=2, c=\"x y\"")),
        json!({"a": "1", "b": "2", "c": "x y"})
    );
    assert_eq!(loose("d", json!("k=a=b")), json!({"k": "a=b"}));
    assert_eq!(loose("d", json!(r"k=a\ b")), json!({"k": "a b"}));
    assert_eq!(loose("d", json!("k='1,2'")), json!({"k": "1,2"}));
}

#[test]
fn dict_refusals_use_ansible_text() {
    let pre = "argument 'd' is of type str and we were unable to convert to dict: ";
    assert_eq!(
        loose_err("d", json!("abc")),
        format!("{pre}dictionary requested, could not parse JSON or key=value")
    );
    assert_eq!(
        loose_err("d", json!("a=1,b")),
        format!("{pre}unable to evaluate string in the \"key=value\" format as dictionary")
    );
    assert_eq!(
        loose_err("d", json!("{bad")),
        format!("{pre}unable to evaluate string as dictionary")
    );
    assert_eq!(
        loose_err("d", json!([1])),
        "argument 'd' is of type list and we were unable to convert to dict: <class 'list'> cannot be converted to a dict"
    );
    assert!(loose_err("d", json!(3)).ends_with("<class 'int'> cannot be converted to a dict"));
}

#[test]
fn path_expands_tilde_and_vars() {
    let home = std::env::var("HOME").unwrap_or_default();
    if home.is_empty() {
        crate::testing::skip("HOME is not set");
        return;
    }
    let h = home.trim_end_matches('/');
    assert_eq!(
        loose("p", json!("~")),
        json!(if h.is_empty() { "/" } else { h })
    );
    assert_eq!(loose("p", json!("~/x/y")), json!(format!("{h}/x/y")));
    assert_eq!(loose("p", json!("/etc/~x")), json!("/etc/~x"));
    assert_eq!(loose("p", json!("rel/path")), json!("rel/path"));
    assert_eq!(loose("p", json!("$HOME/z")), json!(format!("{home}/z")));
    assert_eq!(loose("p", json!("${HOME}/z")), json!(format!("{home}/z")));
    assert_eq!(
        loose("p", json!("/a/$PVE2NODE_SURELY_UNSET_VAR/b")),
        json!("/a/$PVE2NODE_SURELY_UNSET_VAR/b")
    );
    assert_eq!(loose("p", json!("/cost$")), json!("/cost$"));
    assert_eq!(loose("p", json!("/a/${unclosed")), json!("/a/${unclosed"));
    assert_eq!(
        loose("p", json!("~pve2node-no-such-user/x")),
        json!("~pve2node-no-such-user/x")
    );
}

#[test]
fn tilde_user_expands_from_password_database() {
    // root exists everywhere; its home comes from /etc/passwd.
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let Some(home) = passwd
        .lines()
        .find(|l| l.starts_with("root:"))
        .and_then(|l| l.split(':').nth(5))
    else {
        crate::testing::skip("no root line in /etc/passwd");
        return;
    };
    assert_eq!(
        expand_user("~root/.ssh"),
        format!("{}/.ssh", home.trim_end_matches('/'))
    );
}

#[test]
fn empty_string_for_non_str_types_counts_as_not_given() {
    let c = ok(
        &LOOSE,
        json!({"b": "", "i": "", "d": "", "bd": "", "id": "", "s": "", "p": ""}),
    );
    assert!(!c.params.is_set("b"));
    assert!(!c.params.is_set("i"));
    assert!(!c.params.is_set("d"));
    assert_eq!(c.params.bool("bd"), Some(true), "falls back to the default");
    assert_eq!(c.params.int("id"), Some(42), "falls back to the default");
    assert_eq!(c.params.str("s"), Some(""), "a str keeps its empty string");
    assert_eq!(c.params.str("p"), Some(""), "a path keeps its empty string");
}

#[test]
fn null_counts_as_not_given() {
    let c = ok(&LOOSE, json!({"s": null, "bd": null, "id": null}));
    assert_eq!(c.params.str("s"), None);
    assert_eq!(c.params.bool("bd"), Some(true));
    assert_eq!(c.params.int("id"), Some(42));
    assert_eq!(
        err(&SPEC, json!({"hostname": null, "ip": "1.2.3.4"})),
        "missing required arguments: hostname"
    );
}

#[test]
fn raw_is_kept_as_given() {
    assert_eq!(loose("r", json!({"x": [1, "2"]})), json!({"x": [1, "2"]}));
    assert_eq!(loose("r", json!("")), json!(""));
}

#[test]
fn defaults_and_accessors() {
    let c = ok(&SPEC, base());
    let p = &c.params;
    assert_eq!(p.str("hostname"), Some("tartanpion"));
    assert_eq!(p.str("path"), Some("/etc/hosts"));
    assert_eq!(p.str_or_empty("secret"), "");
    assert_eq!(p.str("secret"), None);
    assert_eq!(p.str("state"), Some("present"));
    assert_eq!(p.bool("flag"), Some(false));
    assert!(!p.flag("flag"));
    assert!(p.list("aliases").is_empty());
    assert_eq!(p.get("aliases"), Some(&json!([])));
    assert_eq!(p.int("count"), None);
    assert!(!p.is_set("count"));
    assert!(p.is_set("hostname"));
    // Every spec'd name is present in the map (null when not given and without default).
    assert_eq!(p.as_map().len(), PARAMS.len());
    assert_eq!(p.as_map().get("count"), Some(&Value::Null));
}

#[test]
fn alias_resolves_to_the_canonical_name() {
    let c = ok(&SPEC, json!({"name": "bismuth", "ip": "172.16.0.2"}));
    assert_eq!(c.params.str("hostname"), Some("bismuth"));
    assert!(!c.params.as_map().contains_key("name"));
    assert!(c.warnings.is_empty());
}

#[test]
fn alias_and_option_both_set_alias_wins_with_warning() {
    // AnsibleModule copies the alias over the option and warns.
    let c = ok(&SPEC, json!({"hostname": "x", "name": "y", "ip": "1"}));
    assert_eq!(c.params.str("hostname"), Some("y"));
    assert_eq!(
        c.warnings,
        vec!["Both option hostname and its alias name are set."]
    );
}

// ---------------------------------------------------------------------------------------------
// Validation messages

#[test]
fn unsupported_parameters_sorted_with_aliases() {
    let m = err(&SPEC, with(with(base(), "zz", json!(1)), "aa", json!(2)));
    assert_eq!(
        m,
        "Unsupported parameters for (testmod) module: aa, zz. Supported parameters include: a, aliases, b, c, count, d, flag, hostname (name), ip, modes, opts, path, paths, ports, raw, secret, state."
    );
}

#[test]
fn unsupported_parameters_ignored_with_ignore_unknown_opts() {
    let c = ok(
        &SPEC,
        with(
            with(base(), "zz", json!(1)),
            "_ansible_ignore_unknown_opts",
            json!(true),
        ),
    );
    assert_eq!(c.params.str("hostname"), Some("tartanpion"));
    assert!(!c.params.as_map().contains_key("zz"));
}

#[test]
fn unsupported_comes_after_other_errors_as_in_ansible() {
    // AnsibleModule reports the first error of: mutually exclusive, required, types, choices,
    // required_if, and unsupported parameters last.
    assert_eq!(
        err(&SPEC, json!({"zz": 1})),
        "missing required arguments: hostname"
    );
}

#[test]
fn missing_required_arguments_sorted() {
    const S: Spec = Spec {
        module: "m",
        params: &[
            Param::new("zeta", Type::Str).required(),
            Param::new("alpha", Type::Str).required(),
            Param::new("mid", Type::Int).required(),
        ],
        mutually_exclusive: &[],
        required_if: &[],
        supports_check_mode: true,
    };
    assert_eq!(
        err(&S, json!({})),
        "missing required arguments: alpha, mid, zeta"
    );
    assert_eq!(
        err(&S, json!({"mid": 1})),
        "missing required arguments: alpha, zeta"
    );
}

#[test]
fn choices_message() {
    assert_eq!(
        err(&SPEC, with(base(), "state", json!("gone"))),
        "value of state must be one of: present, absent, got: gone"
    );
    let c = ok(&SPEC, with(base(), "state", json!("absent")));
    assert_eq!(c.params.str("state"), Some("absent"));
    // A list with choices: every element must be one.
    let c = ok(&SPEC, with(base(), "modes", json!("a,b")));
    assert_eq!(c.params.list("modes"), vec!["a", "b"]);
    assert_eq!(
        err(&SPEC, with(base(), "modes", json!(["a", "x", "y"]))),
        "value of modes must be one or more of: a, b. Got no match for: x, y"
    );
}

#[test]
fn types_are_checked_before_choices() {
    assert_eq!(
        err(&SPEC, with(with(base(), "count", json!("x")), "state", json!("gone"))),
        "argument 'count' is of type str and we were unable to convert to int: \"'x'\" cannot be converted to an int"
    );
}

#[test]
fn mutually_exclusive_message() {
    assert_eq!(
        err(&SPEC, with(with(base(), "a", json!("1")), "b", json!("2"))),
        "parameters are mutually exclusive: a|b"
    );
    let all = with(
        with(
            with(with(base(), "a", json!("1")), "b", json!("2")),
            "c",
            json!(1),
        ),
        "d",
        json!(2),
    );
    assert_eq!(
        err(&SPEC, all),
        "parameters are mutually exclusive: a|b, c|d"
    );
    // One of them, or one given as null, is fine.
    ok(&SPEC, with(with(base(), "a", json!("1")), "b", Value::Null));
}

#[test]
fn required_if_message() {
    assert_eq!(
        err(&SPEC, json!({"hostname": "x"})),
        "state is present but all of the following are missing: ip"
    );
    // Not required when state is absent.
    ok(&SPEC, json!({"hostname": "x", "state": "absent"}));
}

#[test]
fn required_if_on_a_bool() {
    const S: Spec = Spec {
        module: "m",
        params: &[
            Param::new("enabled", Type::Bool),
            Param::new("port", Type::Int),
            Param::new("host", Type::Str),
        ],
        mutually_exclusive: &[],
        required_if: &[RequiredIf {
            param: "enabled",
            value: "true",
            requires: &["port", "host"],
        }],
        supports_check_mode: true,
    };
    assert_eq!(
        err(&S, json!({"enabled": "yes", "port": 1})),
        "enabled is true but all of the following are missing: host"
    );
    ok(&S, json!({"enabled": "no"}));
}

// ---------------------------------------------------------------------------------------------
// _ansible_* keys

/// The internal keys ansible-core 2.19 sends with every module call.
fn ansible_219_keys(check: bool, diff: bool, no_log: bool) -> Value {
    json!({
        "_ansible_check_mode": check,
        "_ansible_no_log": no_log,
        "_ansible_debug": false,
        "_ansible_diff": diff,
        "_ansible_verbosity": 2,
        "_ansible_version": "2.19.14",
        "_ansible_module_name": "testmod",
        "_ansible_syslog_facility": "LOG_USER",
        "_ansible_selinux_special_fs": ["fuse", "nfs", "vboxsf", "ramfs", "9p", "vfat"],
        "_ansible_string_conversion_action": "warn",
        "_ansible_socket": null,
        "_ansible_shell_executable": "/bin/sh",
        "_ansible_keep_remote_files": false,
        "_ansible_tmpdir": "/root/.ansible/tmp/ansible-tmp-1764070000.1-1234-5678/",
        "_ansible_remote_tmp": "~/.ansible/tmp",
        "_ansible_ignore_unknown_opts": false,
        "_ansible_target_log_info": null,
        "_ansible_tracebacks_for": [],
        "_ansible_some_future_key": {"nested": [1, 2]},
    })
}

fn merge(a: Value, b: Value) -> Value {
    let mut m = a.as_object().cloned().unwrap_or_default();
    m.extend(b.as_object().cloned().unwrap_or_default());
    Value::Object(m)
}

#[test]
fn all_ansible_219_internal_keys_are_accepted() {
    let c = ok(&SPEC, merge(base(), ansible_219_keys(false, false, false)));
    assert!(!c.check_mode && !c.diff && !c.no_log);
    assert_eq!(c.verbosity, 2);
    assert!(!c.params.as_map().keys().any(|k| k.starts_with("_ansible")));
    let c = ok(&SPEC, merge(base(), ansible_219_keys(true, true, true)));
    assert!(c.check_mode && c.diff && c.no_log);
}

#[test]
fn internal_bools_accept_ansible_spellings() {
    let c = ok(
        &SPEC,
        merge(
            base(),
            json!({"_ansible_check_mode": "yes", "_ansible_diff": "True", "_ansible_no_log": 1}),
        ),
    );
    assert!(c.check_mode && c.diff && c.no_log);
    let c = ok(
        &SPEC,
        merge(
            base(),
            json!({"_ansible_check_mode": "no", "_ansible_diff": 0}),
        ),
    );
    assert!(!c.check_mode && !c.diff);
    let c = ok(&SPEC, merge(base(), json!({"_ansible_verbosity": "3"})));
    assert_eq!(c.verbosity, 3);
}

// ---------------------------------------------------------------------------------------------
// Result shape

fn ctx_with(args: Value) -> Ctx {
    ok(&SPEC, merge(base(), args))
}

fn sample_diff() -> Diff {
    Diff {
        before: "a\n".into(),
        after: "b\n".into(),
        before_header: "/f (before)".into(),
        after_header: "/f (after)".into(),
    }
}

#[test]
fn success_result_shape() {
    let c = ctx_with(json!({}));
    let (v, code) = result_json(
        &SPEC,
        Some(&c),
        Ok(Outcome::new(true, "pinned").with("resolves_to", "172.16.0.1")),
    );
    assert_eq!(code, 0);
    assert_eq!(v["changed"], json!(true));
    assert_eq!(v["failed"], json!(false));
    assert_eq!(v["msg"], json!("pinned"));
    assert_eq!(v["resolves_to"], json!("172.16.0.1"));
    assert!(
        v.get("warnings").is_none(),
        "no warnings key without warnings"
    );
    assert!(v.get("diff").is_none(), "no diff outside diff mode");
    assert_eq!(
        v["invocation"]["module_args"]["hostname"],
        json!("tartanpion")
    );
    assert_eq!(v["invocation"]["module_args"]["path"], json!("/etc/hosts"));
    assert_eq!(v["invocation"]["module_args"]["count"], Value::Null);
}

#[test]
fn outcome_data_cannot_override_protocol_keys() {
    let c = ctx_with(json!({}));
    let o = Outcome::new(false, "m")
        .with("changed", true)
        .with("failed", true);
    let (v, code) = result_json(&SPEC, Some(&c), Ok(o));
    assert_eq!(code, 0);
    assert_eq!(v["changed"], json!(false));
    assert_eq!(v["failed"], json!(false));
}

#[test]
fn diff_only_in_diff_mode_and_when_changed() {
    let mk = |changed: bool| {
        let mut o = Outcome::new(changed, "x");
        o.diff = Some(sample_diff());
        o
    };
    let on = ctx_with(json!({"_ansible_diff": true}));
    let off = ctx_with(json!({"_ansible_diff": false}));
    let (v, _) = result_json(&SPEC, Some(&on), Ok(mk(true)));
    assert_eq!(
        v["diff"],
        json!({"before": "a\n", "after": "b\n", "before_header": "/f (before)", "after_header": "/f (after)"})
    );
    let (v, _) = result_json(&SPEC, Some(&on), Ok(mk(false)));
    assert!(v.get("diff").is_none(), "unchanged: no diff");
    let (v, _) = result_json(&SPEC, Some(&off), Ok(mk(true)));
    assert!(v.get("diff").is_none(), "diff mode off: no diff");
}

#[test]
fn warnings_only_when_any() {
    let mut c = ctx_with(json!({}));
    c.warn("hostname resolves to 127.0.1.1");
    let (v, _) = result_json(&SPEC, Some(&c), Ok(Outcome::new(false, "ok")));
    assert_eq!(v["warnings"], json!(["hostname resolves to 127.0.1.1"]));
    let (v, _) = result_json(&SPEC, Some(&c), Err(Failure::new("bad")));
    assert_eq!(
        v["warnings"],
        json!(["hostname resolves to 127.0.1.1"]),
        "also on failure"
    );
}

#[test]
fn failure_result_shape() {
    let c = ctx_with(json!({}));
    let (v, code) = result_json(&SPEC, Some(&c), Err(Failure::new("boom").with("rc", 2)));
    assert_eq!(code, 1);
    assert_eq!(v["failed"], json!(true));
    assert_eq!(v["changed"], json!(false));
    assert_eq!(v["msg"], json!("boom"));
    assert_eq!(v["rc"], json!(2));
    assert!(v["invocation"]["module_args"].is_object());
    // A failure that already changed something may say so.
    let (v, _) = result_json(
        &SPEC,
        Some(&c),
        Err(Failure::new("half").with("changed", true)),
    );
    assert_eq!(v["changed"], json!(true));
    assert_eq!(v["failed"], json!(true));
    // A failure may not pretend not to be one.
    let (v, code) = result_json(
        &SPEC,
        None,
        Err(Failure::new("x").with("failed", false).with("msg", "y")),
    );
    assert_eq!(
        (v["failed"].clone(), v["msg"].clone(), code),
        (json!(true), json!("x"), 1)
    );
    assert!(v.get("invocation").is_none(), "no context: no invocation");
}

#[test]
fn std_errors_convert_into_failure() {
    fn f() -> Result<(), Failure> {
        std::fs::read("/pve2node/definitely/not/here")?;
        Ok(())
    }
    let e = f().unwrap_err();
    assert!(e.msg.contains("No such file or directory"), "{}", e.msg);
    assert_eq!(e.to_string(), e.msg);
}

#[test]
fn no_log_params_are_masked() {
    let c = ctx_with(json!({"secret": "hunter2"}));
    let (v, _) = result_json(&SPEC, Some(&c), Ok(Outcome::new(false, "ok")));
    assert_eq!(v["invocation"]["module_args"]["secret"], json!("********"));
    assert_eq!(
        v["invocation"]["module_args"]["hostname"],
        json!("tartanpion")
    );
    assert!(!v.to_string().contains("hunter2"));
    // Not given: shown as null, not masked.
    let c = ctx_with(json!({}));
    let (v, _) = result_json(&SPEC, Some(&c), Ok(Outcome::new(false, "ok")));
    assert_eq!(v["invocation"]["module_args"]["secret"], Value::Null);
    // The logic still sees the value.
    let c = ctx_with(json!({"secret": "hunter2"}));
    assert_eq!(c.params.str("secret"), Some("hunter2"));
}

#[test]
fn ansible_no_log_masks_every_value() {
    let c = ctx_with(json!({"_ansible_no_log": true, "secret": "hunter2", "aliases": "a,b"}));
    let (v, _) = result_json(&SPEC, Some(&c), Ok(Outcome::new(false, "ok")));
    let args = v["invocation"]["module_args"].as_object().unwrap();
    for (k, val) in args {
        assert!(val.is_null() || *val == json!("********"), "{k} = {val}");
    }
    assert!(!v.to_string().contains("tartanpion"));
    assert!(!v.to_string().contains("hunter2"));
}

#[test]
fn check_mode_reaches_the_logic() {
    assert!(ctx_with(json!({"_ansible_check_mode": true})).check_mode);
    assert!(!ctx_with(json!({})).check_mode);
}

// ---------------------------------------------------------------------------------------------
// Parse errors

fn parse_err(text: &str) -> String {
    match context(&SPEC, text, "/tmp/args") {
        Ok(_) => panic!("expected failure for {text:?}"),
        Err(f) => f.msg,
    }
}

#[test]
fn empty_input() {
    for t in ["", "  \n\t "] {
        assert_eq!(
            parse_err(t),
            "no module arguments: /tmp/args is empty; pass a JSON object such as {\"path\": \"/etc/hosts\"}"
        );
    }
}

#[test]
fn invalid_json() {
    let m = parse_err("{\"hostname\": ");
    assert!(
        m.starts_with("module arguments in /tmp/args are not valid JSON: "),
        "{m}"
    );
    let m = parse_err("{\"a\": 1} trailing");
    assert!(
        m.starts_with("module arguments in /tmp/args are not valid JSON: "),
        "{m}"
    );
    let m = parse_err("hostname=x ip=y");
    assert!(
        m.starts_with("module arguments in /tmp/args are not valid JSON: "),
        "{m}"
    );
}

#[test]
fn non_object_json() {
    for (t, kind) in [
        ("[1, 2]", "an array"),
        ("\"s\"", "a string"),
        ("3", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ] {
        assert_eq!(
            parse_err(t),
            format!("module arguments in /tmp/args must be a JSON object, got {kind}")
        );
    }
}

#[test]
fn non_finite_tokens() {
    for (t, tok) in [
        ("{\"count\": NaN}", "NaN"),
        ("{\"count\": Infinity}", "Infinity"),
        ("{\"count\": -Infinity}", "-Infinity"),
        ("{\"ports\": [1, NaN]}", "NaN"),
    ] {
        assert_eq!(
            parse_err(t),
            format!("module arguments in /tmp/args contain the token {tok}, which is not valid JSON; quote it or use a number")
        );
    }
}

#[test]
fn nan_inside_a_string_is_not_a_token() {
    // Valid JSON: the word is a value.
    let c = ok(
        &SPEC,
        json!({"hostname": "NaN", "ip": "Infinity -Infinity"}),
    );
    assert_eq!(c.params.str("hostname"), Some("NaN"));
    // Invalid JSON for another reason: the message must not blame the word in the string.
    let m = parse_err("{\"hostname\": \"NaN\", \"ip\": }");
    assert!(m.contains("are not valid JSON"), "{m}");
    assert!(!m.contains("token"), "{m}");
    // An escaped quote does not end the string.
    let m = parse_err(r#"{"hostname": "a\"NaN", "ip": }"#);
    assert!(!m.contains("token"), "{m}");
}

#[test]
fn non_utf8_args_file() {
    let dir = std::env::temp_dir().join(format!("pve2node-proto-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("args");
    std::fs::write(&f, b"{\"hostname\": \"\xff\xfe\"}").unwrap();
    let args = vec!["mod".to_string(), f.display().to_string()];
    let e = read_input(&args).unwrap_err();
    assert_eq!(
        e.msg,
        format!(
            "the module arguments file {} is not valid UTF-8 text",
            f.display()
        )
    );
    let missing = dir.join("nope");
    let e = read_input(&["mod".to_string(), missing.display().to_string()]).unwrap_err();
    assert_eq!(
        e.msg,
        format!(
            "cannot read the module arguments file {}: No such file or directory",
            missing.display()
        )
    );
    let e = read_input(&["mod".to_string(), dir.display().to_string()]).unwrap_err();
    assert!(
        e.msg.starts_with("cannot read the module arguments file"),
        "{}",
        e.msg
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn read_input_from_file() {
    let dir = std::env::temp_dir().join(format!("pve2node-proto-read-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("args");
    std::fs::write(&f, "{\"hostname\": \"x\"}").unwrap();
    let (text, source) = read_input(&["mod".to_string(), f.display().to_string()]).unwrap();
    assert_eq!(text, "{\"hostname\": \"x\"}");
    assert_eq!(source, f.display().to_string());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Property-style: no input makes the protocol panic

/// xorshift64*: small, deterministic, no crate needed.
/// A random JSON-ish text: mostly well-formed objects whose keys are spec names, aliases,
/// `_ansible_*` keys or junk, and values of every JSON type including the words Ansible
/// coerces; with some probability a fragment is corrupted.
fn jsonish(r: &mut Rng, depth: usize) -> String {
    const KEYS: &[&str] = &[
        "hostname",
        "name",
        "ip",
        "aliases",
        "count",
        "flag",
        "opts",
        "ports",
        "paths",
        "path",
        "secret",
        "state",
        "modes",
        "a",
        "b",
        "c",
        "d",
        "raw",
        "s",
        "i",
        "p",
        "l",
        "li",
        "lp",
        "bd",
        "id",
        "_ansible_check_mode",
        "_ansible_diff",
        "_ansible_no_log",
        "_ansible_verbosity",
        "_ansible_ignore_unknown_opts",
        "zz",
        "",
        "ü",
    ];
    const ATOMS: &[&str] = &[
        "null",
        "true",
        "false",
        "0",
        "1",
        "-1",
        "1.5",
        "1e400",
        "-0",
        "9223372036854775808",
        "\"\"",
        "\"yes\"",
        "\"off\"",
        "\"T\"",
        "\"12\"",
        "\"1e3\"",
        "\"1.0\"",
        "\"a,b\"",
        "\"a=1 b=2\"",
        "\"{\\\"k\\\": 1}\"",
        "\"{bad\"",
        "\"~/x\"",
        "\"$HOME\"",
        "\"${\"",
        "\"present\"",
        "\"absent\"",
        "\"gone\"",
        "\"NaN\"",
        "NaN",
        "Infinity",
        "-Infinity",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"~root\"",
        "\"~\"",
    ];
    match r.below(if depth > 2 { 2 } else { 4 }) {
        0 | 1 => r.pick(ATOMS).to_string(),
        2 => {
            let n = r.below(4);
            let items: Vec<String> = (0..n).map(|_| jsonish(r, depth + 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let n = r.below(6);
            let items: Vec<String> = (0..n)
                .map(|_| format!("{:?}: {}", r.pick(KEYS), jsonish(r, depth + 1)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

fn check_no_panic(spec: &Spec, text: &str) {
    let outcome = std::panic::catch_unwind(|| match context(spec, text, "fuzz") {
        Ok(ctx) => {
            let (v, code) = result_json(spec, Some(&ctx), Ok(Outcome::new(false, "ok")));
            assert_eq!(code, 0);
            assert_eq!(v["failed"], json!(false));
            assert!(v["invocation"]["module_args"].is_object());
            // Every spec'd name is present after validation.
            for p in spec.params {
                assert!(ctx.params.as_map().contains_key(p.name), "{}", p.name);
            }
        }
        Err(f) => {
            let (v, code) = result_json(spec, None, Err(f));
            assert_eq!(code, 1);
            assert!(v.is_object());
            assert_eq!(v["failed"], json!(true));
            assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()));
            // The result always serialises.
            assert!(serde_json::to_string(&v).is_ok());
        }
    });
    assert!(outcome.is_ok(), "panic on input {text:?}");
}

#[test]
fn property_random_jsonish_texts_never_panic() {
    let mut r = Rng::new(0x9E37_79B9_7F4A_7C15);
    let (mut oks, mut errs) = (0, 0);
    for _ in 0..20_000 {
        let mut text = jsonish(&mut r, 0);
        if r.below(4) == 0 && !text.is_empty() {
            // Corrupt: cut, or insert a random byte-ish char.
            let mut cut = r.below(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            if r.below(2) == 0 {
                text.truncate(cut);
            } else {
                text.insert(
                    cut,
                    r.pick(&["{", "}", "\"", ",", ":", "\\", "N"])
                        .chars()
                        .next()
                        .unwrap_or('x'),
                );
            }
        }
        for spec in [&SPEC, &LOOSE] {
            check_no_panic(spec, &text);
            match context(spec, &text, "fuzz") {
                Ok(_) => oks += 1,
                Err(_) => errs += 1,
            }
        }
    }
    // The generator must reach both paths, or the test proves little.
    assert!(oks > 100, "only {oks} valid contexts");
    assert!(errs > 100, "only {errs} failures");
}

#[test]
fn property_random_bytes_never_panic() {
    let mut r = Rng::new(0xD1B5_4A32_D192_ED03);
    let dir = std::env::temp_dir().join(format!("pve2node-proto-bytes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("args");
    for i in 0..3_000 {
        let n = r.below(64);
        let bytes: Vec<u8> = (0..n)
            .map(|_| {
                if r.below(3) == 0 {
                    r.next() as u8
                } else {
                    const ALPHABET: &[u8] = b"{}[]\":,0123456789.eE+-tfnulNaIy \\";
                    ALPHABET[r.below(ALPHABET.len())]
                }
            })
            .collect();
        // Through the file reader, like Ansible's args file.
        std::fs::write(&f, &bytes).unwrap();
        let args = vec!["mod".to_string(), f.display().to_string()];
        let res = std::panic::catch_unwind(|| {
            let (v, code) = match read_input(&args).and_then(|(t, s)| context(&LOOSE, &t, &s)) {
                Ok(ctx) => result_json(&LOOSE, Some(&ctx), Ok(Outcome::new(false, "ok"))),
                Err(e) => result_json(&LOOSE, None, Err(e)),
            };
            assert!(v.is_object());
            assert_eq!(v["failed"], json!(code == 1));
        });
        assert!(res.is_ok(), "panic on bytes #{i}: {bytes:?}");
        if let Ok(text) = std::str::from_utf8(&bytes) {
            check_no_panic(&SPEC, text);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Numeric ranges, check-mode support, commands in results

const RANGED: Spec = Spec {
    module: "ranged",
    params: &[
        Param::new("timeout", Type::Int)
            .default(Default::Int(30))
            .range(0, 86_400),
        Param::new("wait", Type::Int).range(1, 10),
        Param::new("ports", Type::List(Elem::Int)).range(1, 65_535),
    ],
    mutually_exclusive: &[],
    required_if: &[],
    supports_check_mode: false,
};

#[test]
fn range_bounds_are_inclusive_and_coerced_values_count() {
    for (given, want) in [
        (json!(0), 0),
        (json!(86_400), 86_400),
        (json!("17"), 17),
        (json!(" 5 "), 5),
        (json!(1.0), 1),
        (json!(""), 30),
        (json!(null), 30),
    ] {
        let c = ok(&RANGED, json!({ "timeout": given }));
        assert_eq!(c.params.int("timeout"), Some(want), "{given}");
    }
    let c = ok(&RANGED, json!({}));
    assert_eq!(c.params.int("timeout"), Some(30));
    assert_eq!(
        c.params.int("wait"),
        None,
        "an absent optional int is not checked"
    );
    assert_eq!(
        c.params.duration("timeout"),
        std::time::Duration::from_secs(30)
    );
    assert_eq!(c.params.duration("wait"), std::time::Duration::ZERO);
}

#[test]
fn out_of_range_is_one_message_naming_the_parameter_and_the_range() {
    for (args, msg) in [
        (
            json!({"timeout": -1}),
            "timeout must be between 0 and 86400, got -1",
        ),
        (
            json!({"timeout": 86_401}),
            "timeout must be between 0 and 86400, got 86401",
        ),
        (
            json!({"timeout": "100000"}),
            "timeout must be between 0 and 86400, got 100000",
        ),
        (
            json!({"timeout": i64::MAX}),
            &format!("timeout must be between 0 and 86400, got {}", i64::MAX),
        ),
        (json!({"wait": 0}), "wait must be between 1 and 10, got 0"),
        (
            json!({"wait": false}),
            "wait must be between 1 and 10, got 0",
        ),
        (
            json!({"ports": [80, 0]}),
            "ports must be between 1 and 65535, got 0",
        ),
        (
            json!({"ports": "22,70000"}),
            "ports must be between 1 and 65535, got 70000",
        ),
    ] {
        assert_eq!(err(&RANGED, args.clone()), msg, "{args}");
    }
    // The type error still comes first, in AnsibleModule's words.
    assert!(
        err(&RANGED, json!({"timeout": "soon"})).starts_with("argument 'timeout' is of type str")
    );
}

fn stub_logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    ctx.warn("logic ran");
    Ok(Outcome::new(true, "acted"))
}

#[test]
fn check_mode_without_support_skips_with_ansible_module_message() {
    let mut c = ok(&RANGED, json!({"_ansible_check_mode": true}));
    let o = dispatch(&RANGED, &mut c, stub_logic).expect("skipped is not a failure");
    assert!(c.warnings.is_empty(), "the logic did not run");
    let (v, code) = result_json(&RANGED, Some(&c), Ok(o));
    assert_eq!(code, 0);
    assert_eq!(v["skipped"], json!(true));
    assert_eq!(v["changed"], json!(false));
    assert_eq!(v["failed"], json!(false));
    assert_eq!(
        v["msg"],
        json!("remote module (ranged) does not support check mode")
    );
    assert_eq!(v["invocation"]["module_args"]["timeout"], json!(30));

    // Without check mode the logic runs; with support, check mode runs it too.
    let mut c = ok(&RANGED, json!({}));
    assert_eq!(dispatch(&RANGED, &mut c, stub_logic).unwrap().msg, "acted");
    let mut c = ok(&LOOSE, json!({"_ansible_check_mode": true}));
    assert_eq!(dispatch(&LOOSE, &mut c, stub_logic).unwrap().msg, "acted");

    // Validation errors still come first, as in AnsibleModule.
    let e = context(&RANGED, r#"{"_ansible_check_mode": true, "wait": 0}"#, "t").unwrap_err();
    assert!(e.msg.starts_with("wait must be between"), "{}", e.msg);
}

#[test]
fn a_command_attaches_its_cmd_rc_stdout_stderr() {
    let o = crate::run::Output {
        argv: vec!["pvecm".into(), "status".into()],
        rc: Some(2),
        stdout: "out\n".into(),
        stderr: "err\n".into(),
        ..std::default::Default::default()
    };
    let (v, _) = result_json(&LOOSE, None, Ok(Outcome::new(true, "ran").with_command(&o)));
    let (f, code) = result_json(&LOOSE, None, Err(Failure::new("bad").with_command(&o)));
    assert_eq!(code, 1);
    for r in [&v, &f] {
        assert_eq!(r["cmd"], json!(["pvecm", "status"]));
        assert_eq!(r["rc"], json!(2));
        assert_eq!(r["stdout"], json!("out\n"));
        assert_eq!(r["stderr"], json!("err\n"));
    }
    assert_eq!(f["msg"], json!("bad"));
    assert_eq!(v["changed"], json!(true));
}

// ---------------------------------------------------------------------------------------------
// `_ansible_*` booleans, long values in messages

#[test]
fn invalid_internal_booleans_are_refused_never_false() {
    for key in [
        "_ansible_check_mode",
        "_ansible_diff",
        "_ansible_no_log",
        "_ansible_debug",
        "_ansible_keep_remote_files",
        "_ansible_ignore_unknown_opts",
    ] {
        for bad in [
            json!("maybe"),
            json!(2),
            json!([true]),
            json!({}),
            json!(0.5),
        ] {
            let msg = err(&LOOSE, json!({ key: bad }));
            assert!(
                msg.starts_with(&format!("argument '{key}' is of type ")),
                "{key}={bad}: {msg}"
            );
            assert!(msg.contains("unable to convert to bool"), "{msg}");
        }
        for (good, want) in [
            (json!("yes"), true),
            (json!(" On "), true),
            (json!(1), true),
            (json!("f"), false),
            (json!(null), false),
            (json!(""), false),
        ] {
            assert!(
                context(&LOOSE, &json!({ key: good }).to_string(), "t").is_ok(),
                "{key}={good}"
            );
            if key == "_ansible_check_mode" {
                assert_eq!(ok(&LOOSE, json!({ key: good })).check_mode, want, "{good}");
            }
        }
    }
    let msg = err(&LOOSE, json!({"_ansible_verbosity": "loud"}));
    assert!(
        msg.starts_with(
            "argument '_ansible_verbosity' is of type str and we were unable to convert to int"
        ),
        "{msg}"
    );
    assert_eq!(ok(&LOOSE, json!({"_ansible_verbosity": null})).verbosity, 0);
    // Keys this protocol does not know stay accepted, whatever their value.
    assert!(context(&LOOSE, r#"{"_ansible_future_thing": "maybe"}"#, "t").is_ok());
}

#[test]
fn long_values_are_cut_in_messages_with_their_length() {
    let huge = "x".repeat(1_000_000);
    let cases = [
        json!({ "i": huge }),
        json!({ "b": huge }),
        json!({ "s": [huge] }),
        json!({ "li": [huge] }),
        json!({ "_ansible_check_mode": huge }),
        json!({ huge.clone(): 1 }),
    ];
    for args in cases {
        let msg = err(&LOOSE, args);
        assert!(msg.len() < 2_000, "{} bytes: {}", msg.len(), &msg[..300]);
        assert!(msg.contains("… (1000000 characters in all)"), "{msg}");
    }
    let msg = err(&SPEC, json!({"hostname": "h", "ip": "1", "state": huge}));
    assert!(
        msg.starts_with("value of state must be one of: present, absent, got: xxx"),
        "{msg}"
    );
    assert!(msg.len() < 2_000);
    // A list of many items shows the first ones and the count.
    let many: Vec<Value> = (0..100_000).map(|_| json!([1])).collect();
    let msg = err(&LOOSE, json!({ "li": [many] }));
    assert!(
        msg.len() < 2_000 && msg.contains("(100000 items in all)"),
        "{msg:.300}"
    );
    // Character boundaries are kept (no panic in the middle of a multi-byte letter).
    assert_eq!(shorten(&"ü".repeat(SHOWN_CHARS)), "ü".repeat(SHOWN_CHARS));
    let cut = shorten(&"ü".repeat(SHOWN_CHARS + 1)).into_owned();
    assert_eq!(
        cut,
        format!(
            "{}… ({} characters in all)",
            "ü".repeat(SHOWN_CHARS),
            SHOWN_CHARS + 1
        )
    );
    // The last net: a module's own long msg is cut too.
    let (v, _) = result_json(&LOOSE, None, Err(Failure::new(huge.clone())));
    assert!(v["msg"].as_str().unwrap().len() < MSG_CHARS + 100);
    assert!(v["msg"]
        .as_str()
        .unwrap()
        .ends_with("… (1000000 characters in all)"));
}
