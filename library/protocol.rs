//! The Ansible binary-module protocol: arguments in, validation and coercion against an
//! argument spec given as data, one JSON result out, one exit path.
//!
//! A module binary is `fn main() { protocol::run(&SPEC, logic) }`. Ansible calls it as
//! `<binary> <args-file>`; a person may also pass `-` or nothing and pipe the JSON on stdin.
//! The args are one flat JSON object: the task's parameters plus `_ansible_*` keys.

use serde_json::{Map, Value};
use std::fmt;
use std::io::{Read, Write};

/// The type of a parameter, as in AnsibleModule's `type=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Str,
    Bool,
    Int,
    Path,
    /// A list whose elements are coerced to the given element type.
    List(Elem),
    Dict,
    Raw,
}

/// Element types of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    Str,
    Int,
    Path,
}

/// A default value, kept as data so specs can be `const`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    None,
    Str(&'static str),
    Bool(bool),
    Int(i64),
    List(&'static [&'static str]),
}

/// One parameter of an argument spec.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: Type,
    pub required: bool,
    pub default: Default,
    pub choices: &'static [&'static str],
    pub aliases: &'static [&'static str],
    pub no_log: bool,
}

impl Param {
    pub const fn new(name: &'static str, ty: Type) -> Param {
        Param {
            name,
            ty,
            required: false,
            default: Default::None,
            choices: &[],
            aliases: &[],
            no_log: false,
        }
    }
    pub const fn required(mut self) -> Param {
        self.required = true;
        self
    }
    pub const fn default(mut self, d: Default) -> Param {
        self.default = d;
        self
    }
    pub const fn choices(mut self, c: &'static [&'static str]) -> Param {
        self.choices = c;
        self
    }
    pub const fn aliases(mut self, a: &'static [&'static str]) -> Param {
        self.aliases = a;
        self
    }
    pub const fn no_log(mut self) -> Param {
        self.no_log = true;
        self
    }
}

/// `required_if`: when `param` equals `value`, every name in `requires` must be given.
#[derive(Debug, Clone, Copy)]
pub struct RequiredIf {
    pub param: &'static str,
    pub value: &'static str,
    pub requires: &'static [&'static str],
}

/// A module's whole argument spec.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub module: &'static str,
    pub params: &'static [Param],
    pub mutually_exclusive: &'static [&'static [&'static str]],
    pub required_if: &'static [RequiredIf],
}

/// A module failure: one clear sentence plus any extra result keys (rc, stdout, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub msg: String,
    pub data: Map<String, Value>,
}

impl Failure {
    pub fn new(msg: impl Into<String>) -> Failure {
        Failure {
            msg: msg.into(),
            data: Map::new(),
        }
    }
    /// Adds a key to the failure result (builder style).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Failure {
        self.data.insert(key.to_string(), value.into());
        self
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::new(e.to_string())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

/// Ansible's diff structure; shown by Ansible with `--diff` when the task changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diff {
    pub before: String,
    pub after: String,
    pub before_header: String,
    pub after_header: String,
}

/// What a module's logic returns on success.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    pub changed: bool,
    pub msg: String,
    /// Included in the result only when diff mode is on and `changed` is true.
    pub diff: Option<Diff>,
    /// Module-specific return values.
    pub data: Map<String, Value>,
}

impl Outcome {
    pub fn new(changed: bool, msg: impl Into<String>) -> Outcome {
        Outcome {
            changed,
            msg: msg.into(),
            diff: None,
            data: Map::new(),
        }
    }
    /// Adds a return value (builder style).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Outcome {
        self.data.insert(key.to_string(), value.into());
        self
    }
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.data.insert(key.to_string(), value.into());
    }
}

/// The validated, coerced parameters. Every spec'd name is present (null when not given and
/// without default), aliases are resolved to the canonical name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params {
    values: Map<String, Value>,
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).filter(|v| !v.is_null())
    }
    /// A str/path parameter, `None` when not given.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }
    /// A str/path parameter with a spec default (empty string if somehow absent).
    pub fn str_or_empty(&self, name: &str) -> &str {
        self.str(name).unwrap_or("")
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(Value::as_bool)
    }
    /// A bool parameter; `false` when not given.
    pub fn flag(&self, name: &str) -> bool {
        self.bool(name).unwrap_or(false)
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(Value::as_i64)
    }
    /// A list parameter as strings (elements of `Elem::Int` are rendered in decimal).
    pub fn list(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }
    /// An int parameter holding seconds, checked to lie in `min..=max` (so deadlines computed
    /// from it can never overflow): `timeout must be between 1 and 86400 seconds, got 0`.
    pub fn seconds(&self, name: &str, min: u64, max: u64) -> Result<std::time::Duration, Failure> {
        let v = self.int(name).unwrap_or(min as i64);
        if v < min as i64 || v > max as i64 {
            return Err(Failure::new(format!(
                "{name} must be between {min} and {max} seconds, got {v}"
            )));
        }
        Ok(std::time::Duration::from_secs(v.unsigned_abs()))
    }
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// All values, as `invocation.module_args` shows them (before masking).
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.values
    }
}

/// Everything a module's logic gets: parameters and the honoured `_ansible_*` settings.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub module: &'static str,
    pub params: Params,
    pub check_mode: bool,
    pub diff: bool,
    pub no_log: bool,
    pub verbosity: i64,
    pub warnings: Vec<String>,
}

impl Ctx {
    pub fn warn(&mut self, w: impl Into<String>) {
        self.warnings.push(w.into());
    }
}

/// Reads the raw args text: `args[1]` is a file path, `-` or absent means stdin.
pub fn read_input(args: &[String]) -> Result<(String, String), Failure> {
    match args.get(1).map(String::as_str) {
        None | Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| Failure::new(format!("cannot read module arguments from stdin: {e}")))?;
            let text = String::from_utf8(buf).map_err(|_| {
                Failure::new("module arguments on stdin are not valid UTF-8 text")
            })?;
            Ok((text, "stdin".to_string()))
        }
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                Failure::new(format!(
                    "cannot read the module arguments file {path}: {}",
                    crate::io_reason(&e)
                ))
            })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Failure::new(format!("the module arguments file {path} is not valid UTF-8 text"))
            })?;
            Ok((text, path.to_string()))
        }
    }
}

/// Parses the args text into a JSON object, with clear errors for the usual mistakes.
pub fn parse_args(text: &str, source: &str) -> Result<Map<String, Value>, Failure> {
    if text.trim().is_empty() {
        return Err(Failure::new(format!(
            "no module arguments: {source} is empty; pass a JSON object such as {{\"path\": \"/etc/hosts\"}}"
        )));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Failure::new(format!(
            "module arguments in {source} must be a JSON object, got {}",
            json_kind(&other)
        ))),
        Err(e) => {
            if let Some(tok) = non_finite_token(text) {
                return Err(Failure::new(format!(
                    "module arguments in {source} contain the token {tok}, which is not valid JSON; quote it or use a number"
                )));
            }
            Err(Failure::new(format!(
                "module arguments in {source} are not valid JSON: {e}"
            )))
        }
    }
}

/// Finds a bare `NaN`/`Infinity`/`-Infinity` token outside strings.
fn non_finite_token(text: &str) -> Option<&'static str> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        } else {
            for tok in ["-Infinity", "Infinity", "NaN"] {
                if b[i..].starts_with(tok.as_bytes()) {
                    return Some(tok);
                }
            }
        }
        i += 1;
    }
    None
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Python's type name of a JSON value, as AnsibleModule prints it.
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<class 'NoneType'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Number(n) if n.is_f64() => "<class 'float'>",
        Value::Number(_) => "<class 'int'>",
        Value::String(_) => "<class 'str'>",
        Value::Array(_) => "<class 'list'>",
        Value::Object(_) => "<class 'dict'>",
    }
}

const TRUTHY: &[&str] = &["y", "yes", "on", "1", "true", "t"];
const FALSY: &[&str] = &["n", "no", "off", "0", "false", "f"];

fn type_error(name: &str, v: &Value, to: &str, why: String) -> Failure {
    Failure::new(format!(
        "argument '{name}' is of type {} and we were unable to convert to {to}: {why}",
        py_type(v)
    ))
}

fn coerce_bool(name: &str, v: &Value) -> Result<Value, Failure> {
    let text = match v {
        Value::Bool(b) => return Ok(Value::Bool(*b)),
        Value::String(s) => s.trim().to_ascii_lowercase(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    if TRUTHY.contains(&text.as_str()) {
        Ok(Value::Bool(true))
    } else if FALSY.contains(&text.as_str()) {
        Ok(Value::Bool(false))
    } else {
        Err(type_error(
            name,
            v,
            "bool",
            format!(
                "The value {} is not a valid boolean. Valid booleans include: yes, no, on, off, true, false, y, n, t, f, 1, 0",
                py_repr(v)
            ),
        ))
    }
}

fn coerce_int(name: &str, v: &Value) -> Result<Value, Failure> {
    let fail = || type_error(name, v, "int", format!("{} cannot be converted to an int", py_repr(v)));
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Value::from(i))
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Value::from(f as i64)),
                    _ => Err(fail()),
                }
            }
        }
        Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail());
            }
            t.parse::<i64>().map(Value::from).map_err(|_| fail())
        }
        _ => Err(fail()),
    }
}

fn coerce_str(name: &str, v: &Value) -> Result<Value, Failure> {
    match v {
        Value::String(s) => Ok(Value::String(s.clone())),
        Value::Number(n) => Ok(Value::String(n.to_string())),
        Value::Bool(b) => Ok(Value::String(if *b { "True" } else { "False" }.to_string())),
        _ => Err(type_error(
            name,
            v,
            "str",
            "a list or dict is not a string".to_string(),
        )),
    }
}

/// `~` and `~/…` expand to $HOME, as os.path.expanduser does for the current user.
pub fn expand_user(p: &str) -> String {
    if p == "~" || p.starts_with("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return format!("{}{}", home.to_string_lossy(), &p[1..]);
        }
    }
    p.to_string()
}

fn coerce_elem(name: &str, elem: Elem, v: &Value) -> Result<Value, Failure> {
    match elem {
        Elem::Str => coerce_str(name, v),
        Elem::Int => coerce_int(name, v),
        Elem::Path => coerce_str(name, v).map(|s| match s {
            Value::String(s) => Value::String(expand_user(&s)),
            other => other,
        }),
    }
}

fn coerce_list(name: &str, elem: Elem, v: &Value) -> Result<Value, Failure> {
    let items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => s.split(',').map(|p| Value::String(p.to_string())).collect(),
        Value::Number(_) | Value::Bool(_) => vec![v.clone()],
        _ => {
            return Err(type_error(
                name,
                v,
                "list",
                format!("{} cannot be converted to a list", py_repr(v)),
            ))
        }
    };
    items
        .iter()
        .map(|i| coerce_elem(name, elem, i))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn coerce_dict(name: &str, v: &Value) -> Result<Value, Failure> {
    match v {
        Value::Object(_) => Ok(v.clone()),
        Value::String(s) if s.trim_start().starts_with('{') => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => Ok(Value::Object(m)),
            _ => Err(type_error(name, v, "dict", "it is not a valid JSON object".to_string())),
        },
        Value::String(s) => {
            let mut m = Map::new();
            for part in s.split(',').filter(|p| !p.trim().is_empty()) {
                let (k, val) = part.split_once('=').ok_or_else(|| {
                    type_error(name, v, "dict", format!("'{part}' is not key=value"))
                })?;
                m.insert(k.trim().to_string(), Value::String(val.trim().to_string()));
            }
            Ok(Value::Object(m))
        }
        _ => Err(type_error(name, v, "dict", format!("{} cannot be converted to a dict", py_repr(v)))),
    }
}

/// Python-ish repr of a value for messages: strings quoted with single quotes.
fn py_repr(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Coerces one given value to the parameter's type. `""` for a non-string type counts as not
/// given (a templated `None` arrives as an empty string).
fn coerce(p: &Param, v: &Value) -> Result<Value, Failure> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    if matches!(v, Value::String(s) if s.is_empty())
        && matches!(p.ty, Type::Bool | Type::Int | Type::Dict)
    {
        return Ok(Value::Null);
    }
    match p.ty {
        Type::Str => coerce_str(p.name, v),
        Type::Path => coerce_elem(p.name, Elem::Path, v),
        Type::Bool => coerce_bool(p.name, v),
        Type::Int => coerce_int(p.name, v),
        Type::List(e) => coerce_list(p.name, e, v),
        Type::Dict => coerce_dict(p.name, v),
        Type::Raw => Ok(v.clone()),
    }
}

fn default_value(p: &Param) -> Result<Value, Failure> {
    let raw = match p.default {
        Default::None => return Ok(Value::Null),
        Default::Str(s) => Value::String(s.to_string()),
        Default::Bool(b) => Value::Bool(b),
        Default::Int(i) => Value::from(i),
        Default::List(l) => Value::Array(l.iter().map(|s| Value::String(s.to_string())).collect()),
    };
    coerce(p, &raw)
}

/// The settings taken from `_ansible_*` keys.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Internal {
    pub check_mode: bool,
    pub diff: bool,
    pub no_log: bool,
    pub verbosity: i64,
}

fn internal_bool(v: &Value) -> bool {
    coerce_bool("_ansible", v).ok().and_then(|v| v.as_bool()).unwrap_or(false)
}

/// Validates raw args against a spec, as AnsibleModule does, and returns the coerced params.
/// The first error found is returned, in AnsibleModule's order: unsupported parameters,
/// mutually exclusive, missing required, choices and types, required_if.
pub fn validate(spec: &Spec, raw: &Map<String, Value>) -> Result<(Params, Internal, Vec<String>), Failure> {
    let mut internal = Internal::default();
    let mut warnings = Vec::new();
    let mut given: Map<String, Value> = Map::new();
    let mut unsupported = Vec::new();

    for (key, value) in raw {
        if let Some(k) = key.strip_prefix("_ansible_") {
            match k {
                "check_mode" => internal.check_mode = internal_bool(value),
                "diff" => internal.diff = internal_bool(value),
                "no_log" => internal.no_log = internal_bool(value),
                "verbosity" => internal.verbosity = value.as_i64().unwrap_or(0),
                _ => {}
            }
            continue;
        }
        let param = spec
            .params
            .iter()
            .find(|p| p.name == key || p.aliases.contains(&key.as_str()));
        match param {
            None => unsupported.push(key.clone()),
            Some(p) => {
                if given.contains_key(p.name) {
                    warnings.push(format!(
                        "Both option {} and its alias {} are set.",
                        p.name,
                        if key == p.name { p.aliases.first().copied().unwrap_or(p.name) } else { key }
                    ));
                    if key != p.name {
                        continue; // the canonical name wins
                    }
                }
                given.insert(p.name.to_string(), value.clone());
            }
        }
    }

    if !unsupported.is_empty() {
        unsupported.sort();
        let mut supported: Vec<String> = spec
            .params
            .iter()
            .map(|p| {
                if p.aliases.is_empty() {
                    p.name.to_string()
                } else {
                    format!("{} ({})", p.name, p.aliases.join(", "))
                }
            })
            .collect();
        supported.sort();
        return Err(Failure::new(format!(
            "Unsupported parameters for ({}) module: {}. Supported parameters include: {}.",
            spec.module,
            unsupported.join(", "),
            supported.join(", ")
        )));
    }

    let is_given = |name: &str| given.get(name).is_some_and(|v| !v.is_null());

    for group in spec.mutually_exclusive {
        let hits: Vec<&str> = group.iter().copied().filter(|n| is_given(n)).collect();
        if hits.len() > 1 {
            return Err(Failure::new(format!(
                "parameters are mutually exclusive: {}",
                group.join("|")
            )));
        }
    }

    let mut missing: Vec<&str> = spec
        .params
        .iter()
        .filter(|p| p.required && !is_given(p.name))
        .map(|p| p.name)
        .collect();
    if !missing.is_empty() {
        missing.sort();
        return Err(Failure::new(format!(
            "missing required arguments: {}",
            missing.join(", ")
        )));
    }

    let mut values = Map::new();
    for p in spec.params {
        let v = match given.get(p.name) {
            Some(v) => {
                let c = coerce(p, v)?;
                if c.is_null() {
                    default_value(p)?
                } else {
                    c
                }
            }
            None => default_value(p)?,
        };
        if !p.choices.is_empty() && !v.is_null() {
            let check = |item: &Value| -> Result<(), Failure> {
                let text = match item {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if p.choices.contains(&text.as_str()) {
                    Ok(())
                } else {
                    Err(Failure::new(format!(
                        "value of {} must be one of: {}, got: {}",
                        p.name,
                        p.choices.join(", "),
                        text
                    )))
                }
            };
            match &v {
                Value::Array(items) => items.iter().try_for_each(check)?,
                other => check(other)?,
            }
        }
        values.insert(p.name.to_string(), v);
    }

    for r in spec.required_if {
        let current = match values.get(r.param) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Null) | None => continue,
            Some(other) => other.to_string(),
        };
        if current != r.value {
            continue;
        }
        let absent: Vec<&str> = r
            .requires
            .iter()
            .copied()
            .filter(|n| values.get(*n).is_none_or(Value::is_null))
            .collect();
        if !absent.is_empty() {
            return Err(Failure::new(format!(
                "{} is {} but all of the following are missing: {}",
                r.param,
                r.value,
                absent.join(", ")
            )));
        }
    }

    Ok((Params { values }, internal, warnings))
}

/// `invocation.module_args`: the coerced params, no_log values masked.
fn invocation(spec: &Spec, params: &Params, no_log_all: bool) -> Value {
    let mut args = Map::new();
    for (k, v) in params.as_map() {
        let secret = no_log_all || spec.params.iter().any(|p| p.name == k && p.no_log);
        let shown = if secret && !v.is_null() {
            Value::String("********".into())
        } else {
            v.clone()
        };
        args.insert(k.clone(), shown);
    }
    let mut inv = Map::new();
    inv.insert("module_args".into(), Value::Object(args));
    Value::Object(inv)
}

/// Builds the result object. Pure, so tests can check it without exiting.
pub fn result_json(
    spec: &Spec,
    ctx: Option<&Ctx>,
    outcome: Result<Outcome, Failure>,
) -> (Value, i32) {
    let mut out = Map::new();
    let code = match outcome {
        Ok(o) => {
            out.extend(o.data);
            out.insert("changed".into(), Value::Bool(o.changed));
            out.insert("failed".into(), Value::Bool(false));
            out.insert("msg".into(), Value::String(o.msg));
            if let (Some(d), Some(c)) = (o.diff, ctx) {
                if c.diff && o.changed {
                    let mut dm = Map::new();
                    dm.insert("before".into(), d.before.into());
                    dm.insert("after".into(), d.after.into());
                    dm.insert("before_header".into(), d.before_header.into());
                    dm.insert("after_header".into(), d.after_header.into());
                    out.insert("diff".into(), Value::Object(dm));
                }
            }
            0
        }
        Err(f) => {
            out.extend(f.data);
            out.entry("changed").or_insert(Value::Bool(false));
            out.insert("failed".into(), Value::Bool(true));
            out.insert("msg".into(), Value::String(f.msg));
            1
        }
    };
    if let Some(c) = ctx {
        if !c.warnings.is_empty() {
            out.insert(
                "warnings".into(),
                Value::Array(c.warnings.iter().cloned().map(Value::String).collect()),
            );
        }
        out.insert("invocation".into(), invocation(spec, &c.params, c.no_log));
    }
    (Value::Object(out), code)
}

/// Parses and validates the args text into a module context.
pub fn context(spec: &Spec, text: &str, source: &str) -> Result<Ctx, Failure> {
    let raw = parse_args(text, source)?;
    let (params, internal, warnings) = validate(spec, &raw)?;
    Ok(Ctx {
        module: spec.module,
        params,
        check_mode: internal.check_mode,
        diff: internal.diff,
        no_log: internal.no_log,
        verbosity: internal.verbosity,
        warnings,
    })
}

/// The one exit path of every module: read args, validate, run the logic, print one JSON
/// object on stdout, exit 0 on success and 1 on failure.
pub fn run(spec: &Spec, logic: fn(&mut Ctx) -> Result<Outcome, Failure>) -> ! {
    let args: Vec<String> = std::env::args().collect();
    let (value, code) = match read_input(&args).and_then(|(t, s)| context(spec, &t, &s)) {
        Err(f) => result_json(spec, None, Err(f)),
        Ok(mut ctx) => {
            let outcome = logic(&mut ctx);
            result_json(spec, Some(&ctx), outcome)
        }
    };
    let mut stdout = std::io::stdout().lock();
    let text = serde_json::to_string(&value).unwrap_or_else(|_| {
        "{\"failed\": true, \"msg\": \"cannot serialise the module result\"}".to_string()
    });
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
    std::process::exit(code)
}

#[cfg(test)]
mod tests;
