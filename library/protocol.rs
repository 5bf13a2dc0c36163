//! The Ansible binary-module protocol: arguments in, validation and coercion against an
//! argument spec given as data, one JSON result out, one exit path.
//!
//! A module binary is `fn main() { protocol::run(&SPEC, logic) }`. Ansible calls it as
//! `<binary> <args-file>`; a person may also pass `-` or nothing and pipe the JSON on stdin.
//! The args are one flat JSON object: the task's parameters plus `_ansible_*` keys.
//! `<binary> --pve2node-spec` prints the spec as JSON ([`spec_json`]) and runs nothing.
//!
//! # Adding a module
//!
//! 1. `modules/<name>/main.rs`: a `const SPEC: Spec` (every option as a [`Param`]: type,
//!    default, choices, aliases, `.range(min, max)` for every number of seconds or count,
//!    `.no_log()` for secrets; `supports_check_mode: false` if it cannot honour check mode,
//!    and the protocol then answers `skipped` for it) and `fn main() { protocol::run(&SPEC,
//!    logic) }`. The logic is split into named phases: read the state (I/O), decide (a pure
//!    function with unit tests in `modules/<name>/tests.rs`), apply (through `edit` / `run`,
//!    never in check mode), and returns an [`Outcome`] or a [`Failure`] of one sentence that
//!    names the parameter or file and what to do; a command it ran goes in with
//!    [`Outcome::with_command`] / [`Failure::with_command`]. It never prints or exits itself.
//! 2. `modules/<name>/<name>.yml`: its ansible-doc (DOCUMENTATION with options equal to the
//!    spec, attributes, EXAMPLES, RETURN).
//! 3. `Cargo.toml`: a `[[bin]]` with `name = "<name>"`, `path = "modules/<name>/main.rs"`
//!    (build.rs fails the build on a module directory without one).
//! 4. README.md: a row in the module table; tests/protocol.rs: the binary in `MODULES`;
//!    `tests/<name>.rs`: integration tests through the built binary.
//!
//! `cargo test --test guard` checks steps 2-4, including that the options in the .yml equal
//! the spec (through `ansible-doc -j`); `bash scripts/build.sh` puts the binary and its doc in
//! build/modules/.

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
    /// Inclusive bounds for an `Int` parameter (seconds, counts): out of range is refused.
    pub range: Option<(i64, i64)>,
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
            range: None,
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
    pub const fn range(mut self, min: i64, max: i64) -> Param {
        self.range = Some((min, max));
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
    /// As AnsibleModule's `supports_check_mode`: a module without it is not run in check mode.
    pub supports_check_mode: bool,
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
    /// Adds the command's `cmd`, `rc`, `stdout`, `stderr` (and `timed_out`) to the failure
    /// result, as [`crate::run::Output::to_json`] renders them: the one way a module shows a
    /// command it ran.
    pub fn with_command(mut self, o: &crate::run::Output) -> Failure {
        merge_command(&mut self.data, o);
        self
    }
}

/// The keys of `Output::to_json` merged into a result's top level.
fn merge_command(data: &mut Map<String, Value>, o: &crate::run::Output) {
    if let Value::Object(m) = o.to_json() {
        data.extend(m);
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
    /// Adds the command's `cmd`, `rc`, `stdout`, `stderr` (and `timed_out`) to the result,
    /// as [`crate::run::Output::to_json`] renders them (see [`Failure::with_command`]).
    pub fn with_command(mut self, o: &crate::run::Output) -> Outcome {
        merge_command(&mut self.data, o);
        self
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
    /// An int parameter holding seconds whose range the spec declares (`.range(0, 86400)`),
    /// so validation has already refused anything negative or too large. Not given and
    /// without default: zero.
    pub fn duration(&self, name: &str) -> std::time::Duration {
        std::time::Duration::from_secs(self.int(name).unwrap_or(0).max(0).unsigned_abs())
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

    /// A test hook: an environment variable that points a module at test files or commands
    /// instead of the real ones. Compiled into debug builds only (the ones `cargo test` runs);
    /// a release binary on a real host never reads it.
    pub fn test_hook(&self, name: &str) -> Option<String> {
        test_hook(name)
    }
}

/// See [`Ctx::test_hook`]: the environment variable `name`, in debug builds only.
pub fn test_hook(name: &str) -> Option<String> {
    if cfg!(debug_assertions) {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    } else {
        None
    }
}

/// Reads the raw args text: `args[1]` is a file path, `-` or absent means stdin.
pub fn read_input(args: &[String]) -> Result<(String, String), Failure> {
    match args.get(1).map(String::as_str) {
        None | Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(|e| {
                Failure::new(format!("cannot read module arguments from stdin: {e}"))
            })?;
            let text = String::from_utf8(buf)
                .map_err(|_| Failure::new("module arguments on stdin are not valid UTF-8 text"))?;
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
                Failure::new(format!(
                    "the module arguments file {path} is not valid UTF-8 text"
                ))
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

/// Python's type name of a JSON value, as AnsibleModule prints it (`native_type_name`).
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `<class '…'>` of a JSON value, as in "<class 'dict'> cannot be converted to a list".
fn py_class(v: &Value) -> String {
    format!("<class '{}'>", py_type(v))
}

const TRUTHY: &[&str] = &["y", "yes", "on", "1", "true", "t"];
const FALSY: &[&str] = &["n", "no", "off", "0", "false", "f"];

/// Why a single value could not be converted (the part after the colon in the message).
type Why = String;

/// "argument 'x' is of type str and we were unable to convert to int: …"
fn type_error(name: &str, v: &Value, to: &str, why: Why) -> Failure {
    Failure::new(format!(
        "argument '{name}' is of type {} and we were unable to convert to {to}: {why}",
        py_type(v)
    ))
}

/// "Elements value for option 'x' is of type str and we were unable to convert to int: …"
fn elem_error(name: &str, v: &Value, to: &str, why: Why) -> Failure {
    Failure::new(format!(
        "Elements value for option '{name}' is of type {} and we were unable to convert to {to}: {why}",
        py_type(v)
    ))
}

/// `check_type_bool`: bools, the usual words in any case (surrounding spaces ignored), and the
/// numbers 1/0 (also 1.0/0.0).
fn to_bool(v: &Value) -> Result<bool, Why> {
    let text = match v {
        Value::Bool(b) => return Ok(*b),
        // No valid word is longer than 5 letters: a long string is not lowercased in full.
        Value::String(s) if s.trim().len() > 5 => String::new(),
        Value::String(s) => s.trim().to_lowercase(),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => return Ok(true),
            Some(0.0) => return Ok(false),
            _ => String::new(),
        },
        _ => return Err(format!("{} cannot be converted to a bool", py_class(v))),
    };
    if TRUTHY.contains(&text.as_str()) {
        Ok(true)
    } else if FALSY.contains(&text.as_str()) {
        Ok(false)
    } else {
        Err(format!(
            "The value '{}' is not a valid boolean. Valid booleans include: 'yes', 'no', 'on', 'off', 'true', 'false', 'y', 'n', 't', 'f', '1', '0', 1, 0",
            match v {
                Value::String(s) => shorten(s),
                other => py_str(other).into(),
            }
        ))
    }
}

/// An exact decimal literal (`7`, `-3`, `1.0`, `1e3`, `2.50E+1`) to an i64 when it is integral.
/// `None` when it is not a decimal literal, not integral, or out of range.
fn decimal_to_i64(t: &str) -> Option<i64> {
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => {
            let e = &body[i + 1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (
                &body[..i],
                e.parse::<i64>().unwrap_or(i64::MAX).clamp(-1000, 1000),
            )
        }
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let mut exp = exp - frac_part.len() as i64;
    let trimmed = digits.trim_end_matches('0');
    exp += (digits.len() - trimmed.len()) as i64;
    if trimmed.is_empty() {
        return Some(0);
    }
    if !(0..=19).contains(&exp) {
        return None;
    }
    let mut n: i128 = trimmed.parse().ok()?;
    for _ in 0..exp {
        n = n.checked_mul(10)?;
    }
    let n = if neg { -n } else { n };
    i64::try_from(n).ok()
}

/// `check_type_int`: ints, integral floats, bools (Python's bool is an int), and strings
/// holding an integral decimal number (`" 7 "`, `"+5"`, `"1.0"`, `"1e3"`).
fn to_int(v: &Value) -> Result<i64, Why> {
    let fail = || format!("\"{}\" cannot be converted to an int", py_repr(v));
    match v {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(i),
            (None, Some(f)) if f.fract() == 0.0 && (-9.2e18..9.2e18).contains(&f) => Ok(f as i64),
            _ => Err(fail()),
        },
        Value::String(s) => decimal_to_i64(s.trim()).ok_or_else(fail),
        _ => Err(fail()),
    }
}

/// `check_type_str`: strings, numbers and bools as Python prints them; null as `""`. Lists and
/// dicts are refused (AnsibleModule would pass on their Python repr, which no module wants).
fn to_str(v: &Value) -> Result<String, Why> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Number(_) | Value::Bool(_) => Ok(py_str(v)),
        _ => Err(format!(
            "'{}' is not a string and conversion is not allowed",
            py_repr(v)
        )),
    }
}

/// `os.path.expandvars`: `$NAME` and `${NAME}` replaced when NAME is set, kept otherwise.
pub fn expand_vars(p: &str) -> String {
    if !p.contains('$') {
        return p.to_string();
    }
    let mut out = String::new();
    let mut rest = p;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(j) => (&inner[..j], j + 2),
                None => ("", 0),
            }
        } else {
            let n = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..n], n)
        };
        match std::env::var_os(name).filter(|_| !name.is_empty()) {
            Some(val) => {
                out.push_str(&val.to_string_lossy());
                rest = &after[len..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The home directory of `user` (empty: the current user) from the password database.
fn home_of(user: &str) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: pwd and buf are owned and live for the call; getpwnam_r/getpwuid_r fill them
    // and set `found` to null or to &pwd. The C string is NUL-terminated by CString.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = if user.is_empty() {
        unsafe {
            libc::getpwuid_r(
                libc::getuid(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        }
    } else {
        let c = std::ffi::CString::new(user).ok()?;
        unsafe {
            libc::getpwnam_r(
                c.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        }
    };
    if rc != 0 || found.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: pw_dir points into buf, NUL-terminated, valid while buf lives.
    let dir = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) };
    Some(dir.to_string_lossy().into_owned())
}

/// `os.path.expanduser`: `~` and `~/…` expand to $HOME (or the password database's home),
/// `~user/…` to that user's home; anything else, or an unknown user, is kept.
pub fn expand_user(p: &str) -> String {
    let Some(rest) = p.strip_prefix('~') else {
        return p.to_string();
    };
    let i = rest.find('/').unwrap_or(rest.len());
    let (user, tail) = rest.split_at(i);
    let home = if user.is_empty() {
        match std::env::var_os("HOME") {
            Some(h) => Some(h.to_string_lossy().into_owned()),
            None => home_of(""),
        }
    } else {
        home_of(user)
    };
    match home {
        Some(h) => {
            let joined = format!("{}{}", h.trim_end_matches('/'), tail);
            if joined.is_empty() {
                "/".to_string()
            } else {
                joined
            }
        }
        None => p.to_string(),
    }
}

/// `check_type_path`: a string with `$VARS` then `~` expanded.
fn to_path(v: &Value) -> Result<String, Why> {
    to_str(v).map(|s| expand_user(&expand_vars(&s)))
}

fn coerce_elem(elem: Elem, v: &Value) -> Result<Value, Why> {
    match elem {
        Elem::Str => to_str(v).map(Value::String),
        Elem::Int => to_int(v).map(Value::from),
        Elem::Path => to_path(v).map(Value::String),
    }
}

fn elem_name(elem: Elem) -> &'static str {
    match elem {
        Elem::Str => "str",
        Elem::Int => "int",
        Elem::Path => "path",
    }
}

/// `check_type_list`: a list as is, a string split on commas (no trimming, as Ansible), a
/// number or bool as a one-element list; then each element coerced to `elem`.
fn coerce_list(name: &str, elem: Elem, v: &Value) -> Result<Value, Failure> {
    let items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => s.split(',').map(|p| Value::String(p.to_string())).collect(),
        Value::Number(_) | Value::Bool(_) => vec![Value::String(py_str(v))],
        _ => {
            return Err(type_error(
                name,
                v,
                "list",
                format!("{} cannot be converted to a list", py_class(v)),
            ))
        }
    };
    items
        .iter()
        .map(|i| coerce_elem(elem, i).map_err(|why| elem_error(name, i, elem_name(elem), why)))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// The `k1=v1, k2=v2` / `k1=v1 k2=v2` form of `check_type_dict`: fields split on commas and
/// spaces outside quotes, a backslash escapes the next character, each field split at its
/// first `=`.
fn parse_kv(s: &str) -> Result<Map<String, Value>, Why> {
    let mut fields = Vec::new();
    let mut buf = String::new();
    let mut quote: Option<char> = None;
    let mut escape = false;
    for c in s.trim().chars() {
        if escape {
            buf.push(c);
            escape = false;
        } else if c == '\\' {
            escape = true;
        } else if quote.is_none() && (c == '\'' || c == '"') {
            quote = Some(c);
        } else if quote == Some(c) {
            quote = None;
        } else if quote.is_none() && (c == ',' || c == ' ') {
            if !buf.is_empty() {
                fields.push(std::mem::take(&mut buf));
            }
        } else {
            buf.push(c);
        }
    }
    if !buf.is_empty() {
        fields.push(buf);
    }
    let mut m = Map::new();
    for f in fields {
        let (k, val) = f.split_once('=').ok_or_else(|| {
            "unable to evaluate string in the \"key=value\" format as dictionary".to_string()
        })?;
        m.insert(k.to_string(), Value::String(val.to_string()));
    }
    Ok(m)
}

/// `check_type_dict`: an object as is, a string starting with `{` as JSON, or `k=v` pairs.
fn coerce_dict(name: &str, v: &Value) -> Result<Value, Failure> {
    let why = match v {
        Value::Object(_) => return Ok(v.clone()),
        Value::String(s) if s.starts_with('{') => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => return Ok(Value::Object(m)),
            _ => "unable to evaluate string as dictionary".to_string(),
        },
        Value::String(s) if s.contains('=') => match parse_kv(s) {
            Ok(m) => return Ok(Value::Object(m)),
            Err(why) => why,
        },
        Value::String(_) => "dictionary requested, could not parse JSON or key=value".to_string(),
        _ => format!("{} cannot be converted to a dict", py_class(v)),
    };
    Err(type_error(name, v, "dict", why))
}

/// Python's `str()` of a scalar: `True`, `5`, `1.5`, the string itself.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// How many characters of a value a message shows (see [`shorten`]).
pub const SHOWN_CHARS: usize = 200;
/// How many items of a list or dict a message shows.
const SHOWN_ITEMS: usize = 20;
/// The longest `msg` a result carries: longer ones (a module quoting a huge value or output)
/// are cut, saying their length, so a 100 MB input is never echoed whole.
pub const MSG_CHARS: usize = 16_384;

/// A value as a message shows it: whole up to [`SHOWN_CHARS`] characters, else its first
/// ones and its length: `aaaa… (104857600 characters in all)`.
pub fn shorten(s: &str) -> std::borrow::Cow<'_, str> {
    shorten_to(s, SHOWN_CHARS)
}

/// [`shorten`] with another limit.
pub fn shorten_to(s: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    // Cheap test first: a string of at most `limit` bytes has at most `limit` characters.
    if s.len() <= limit {
        return s.into();
    }
    match s.char_indices().nth(limit) {
        None => s.into(),
        Some((at, _)) => format!("{}… ({} characters in all)", &s[..at], s.chars().count()).into(),
    }
}

/// Python-ish repr of a value for messages: strings in single quotes, `True`, `None`, lists
/// and dicts in Python's literal style; long strings and long lists cut (see [`shorten`]).
fn py_repr(v: &Value) -> String {
    let more = |n: usize| {
        if n > SHOWN_ITEMS {
            format!(", … ({n} items in all)")
        } else {
            String::new()
        }
    };
    match v {
        Value::String(s) => format!("'{}'", shorten(s)),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!(
            "[{}{}]",
            a.iter()
                .take(SHOWN_ITEMS)
                .map(py_repr)
                .collect::<Vec<_>>()
                .join(", "),
            more(a.len())
        ),
        Value::Object(m) => format!(
            "{{{}{}}}",
            m.iter()
                .take(SHOWN_ITEMS)
                .map(|(k, v)| format!("'{}': {}", shorten(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", "),
            more(m.len())
        ),
    }
}

/// Coerces one given value to the parameter's type. `""` for a bool, int or dict counts as
/// not given (a templated `None` used to arrive as an empty string); AnsibleModule would
/// refuse it.
fn coerce(p: &Param, v: &Value) -> Result<Value, Failure> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    if matches!(v, Value::String(s) if s.is_empty())
        && matches!(p.ty, Type::Bool | Type::Int | Type::Dict)
    {
        return Ok(Value::Null);
    }
    let name = p.name;
    match p.ty {
        Type::Str => to_str(v)
            .map(Value::String)
            .map_err(|w| type_error(name, v, "str", w)),
        Type::Path => to_path(v)
            .map(Value::String)
            .map_err(|w| type_error(name, v, "path", w)),
        Type::Bool => to_bool(v)
            .map(Value::Bool)
            .map_err(|w| type_error(name, v, "bool", w)),
        Type::Int => to_int(v)
            .map(Value::from)
            .map_err(|w| type_error(name, v, "int", w)),
        Type::List(e) => coerce_list(name, e, v),
        Type::Dict => coerce_dict(name, v),
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
    /// `_ansible_ignore_unknown_opts`: unknown plain keys are ignored instead of refused.
    pub ignore_unknown_opts: bool,
}

/// An `_ansible_*` boolean, coerced like any bool parameter: null or `""` is false (not
/// given), anything that is not a boolean is refused (never read as "false", which would
/// turn a check-mode run into a real one).
fn internal_bool(key: &str, v: &Value) -> Result<bool, Failure> {
    match v {
        Value::Null => Ok(false),
        Value::String(s) if s.is_empty() => Ok(false),
        _ => to_bool(v).map_err(|w| type_error(key, v, "bool", w)),
    }
}

/// The one message for a number out of its declared range: `timeout must be between 0 and
/// 86400, got 100000`.
pub fn range_message(name: &str, min: i64, max: i64, got: i64) -> String {
    format!("{name} must be between {min} and {max}, got {got}")
}

/// The spec's supported names for the "Unsupported parameters" message: sorted, each with its
/// aliases in parentheses (`hostname (name)`).
fn supported_list(spec: &Spec) -> String {
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
    supported.join(", ")
}

/// Validates raw args against a spec, as AnsibleModule does, and returns the coerced params.
/// The first error found is returned, in AnsibleModule's order: mutually exclusive, missing
/// required, types (in spec order), choices, required_if, and last unsupported parameters.
pub fn validate(
    spec: &Spec,
    raw: &Map<String, Value>,
) -> Result<(Params, Internal, Vec<String>), Failure> {
    let mut internal = Internal::default();
    let mut warnings = Vec::new();
    let mut unsupported = Vec::new();

    for (key, value) in raw {
        if let Some(k) = key.strip_prefix("_ansible_") {
            match k {
                "check_mode" => internal.check_mode = internal_bool(key, value)?,
                "diff" => internal.diff = internal_bool(key, value)?,
                "no_log" => internal.no_log = internal_bool(key, value)?,
                "ignore_unknown_opts" => internal.ignore_unknown_opts = internal_bool(key, value)?,
                // Booleans this protocol does not use, checked all the same (AnsibleModule's
                // PASS_BOOLS).
                "debug" | "keep_remote_files" => {
                    internal_bool(key, value)?;
                }
                "verbosity" => {
                    internal.verbosity = match value {
                        Value::Null => 0,
                        Value::String(s) if s.is_empty() => 0,
                        _ => to_int(value).map_err(|w| type_error(key, value, "int", w))?,
                    }
                }
                _ => {}
            }
            continue;
        }
        if !spec
            .params
            .iter()
            .any(|p| p.name == key || p.aliases.contains(&key.as_str()))
        {
            unsupported.push(key.clone());
        }
    }

    // Aliases: like AnsibleModule, an alias given together with its option wins (aliases in
    // spec order, the last one given wins) and each such pair is warned about.
    let mut given: Map<String, Value> = Map::new();
    for p in spec.params {
        if let Some(v) = raw.get(p.name) {
            given.insert(p.name.to_string(), v.clone());
        }
        for a in p.aliases {
            if let Some(v) = raw.get(*a) {
                if given.contains_key(p.name) {
                    warnings.push(format!(
                        "Both option {} and its alias {} are set.",
                        p.name, a
                    ));
                }
                given.insert(p.name.to_string(), v.clone());
            }
        }
    }

    let is_given = |name: &str| given.get(name).is_some_and(|v| !v.is_null());

    let clashes: Vec<String> = spec
        .mutually_exclusive
        .iter()
        .filter(|group| group.iter().filter(|n| is_given(n)).count() > 1)
        .map(|group| group.join("|"))
        .collect();
    if !clashes.is_empty() {
        return Err(Failure::new(format!(
            "parameters are mutually exclusive: {}",
            clashes.join(", ")
        )));
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
        values.insert(p.name.to_string(), v);
    }

    for p in spec.params {
        let Some(v) = values.get(p.name) else {
            continue;
        };
        if p.choices.is_empty() || v.is_null() {
            continue;
        }
        let text = |item: &Value| match item {
            Value::String(s) => s.clone(),
            other => py_str(other),
        };
        match v {
            Value::Array(items) => {
                let bad: Vec<String> = items
                    .iter()
                    .map(text)
                    .filter(|t| !p.choices.contains(&t.as_str()))
                    .collect();
                if !bad.is_empty() {
                    return Err(Failure::new(format!(
                        "value of {} must be one or more of: {}. Got no match for: {}",
                        p.name,
                        p.choices.join(", "),
                        shorten_to(&bad.join(", "), SHOWN_CHARS * 4)
                    )));
                }
            }
            other => {
                let t = text(other);
                if !p.choices.contains(&t.as_str()) {
                    return Err(Failure::new(format!(
                        "value of {} must be one of: {}, got: {}",
                        p.name,
                        p.choices.join(", "),
                        shorten(&t)
                    )));
                }
            }
        }
    }

    for p in spec.params {
        let Some((min, max)) = p.range else {
            continue;
        };
        let items: Vec<&Value> = match values.get(p.name) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
            None => Vec::new(),
        };
        for v in items {
            if let Some(i) = v.as_i64() {
                if i < min || i > max {
                    return Err(Failure::new(range_message(p.name, min, max, i)));
                }
            }
        }
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

    if !unsupported.is_empty() && !internal.ignore_unknown_opts {
        unsupported.sort();
        return Err(Failure::new(format!(
            "Unsupported parameters for ({}) module: {}. Supported parameters include: {}.",
            spec.module,
            shorten_to(
                &unsupported
                    .iter()
                    .map(|k| shorten(k))
                    .collect::<Vec<_>>()
                    .join(", "),
                SHOWN_CHARS * 4
            ),
            supported_list(spec)
        )));
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
    if let Some(Value::String(m)) = out.get_mut("msg") {
        if let std::borrow::Cow::Owned(cut) = shorten_to(m, MSG_CHARS) {
            *m = cut;
        }
    }
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

/// The hidden argument that makes a module binary print its spec (see [`spec_json`]) instead
/// of running. Ansible always passes an args file path, never this word.
pub const SPEC_FLAG: &str = "--pve2node-spec";

/// The spec as data, in the words of AnsibleModule's `argument_spec` and of ansible-doc's
/// `options` (`type`, `elements`, `required`, `default`, `choices`, `aliases`, `no_log`), plus
/// `range` and the module-level rules: what tests/guard.rs compares with each `<name>.yml`.
pub fn spec_json(spec: &Spec) -> Value {
    let type_name = |t: Type| match t {
        Type::Str => "str",
        Type::Bool => "bool",
        Type::Int => "int",
        Type::Path => "path",
        Type::List(_) => "list",
        Type::Dict => "dict",
        Type::Raw => "raw",
    };
    let mut options = Map::new();
    for p in spec.params {
        let mut o = Map::new();
        o.insert("type".into(), type_name(p.ty).into());
        if let Type::List(e) = p.ty {
            o.insert("elements".into(), elem_name(e).into());
        }
        o.insert("required".into(), p.required.into());
        let default = match p.default {
            Default::None => Value::Null,
            Default::Str(s) => s.into(),
            Default::Bool(b) => b.into(),
            Default::Int(i) => i.into(),
            Default::List(l) => l.to_vec().into(),
        };
        o.insert("default".into(), default);
        o.insert("choices".into(), p.choices.to_vec().into());
        o.insert("aliases".into(), p.aliases.to_vec().into());
        o.insert("no_log".into(), p.no_log.into());
        o.insert(
            "range".into(),
            p.range.map_or(Value::Null, |(a, b)| vec![a, b].into()),
        );
        options.insert(p.name.into(), Value::Object(o));
    }
    let mut out = Map::new();
    out.insert("module".into(), spec.module.into());
    out.insert(
        "supports_check_mode".into(),
        spec.supports_check_mode.into(),
    );
    out.insert("options".into(), Value::Object(options));
    out.insert(
        "mutually_exclusive".into(),
        spec.mutually_exclusive
            .iter()
            .map(|g| g.to_vec())
            .collect::<Vec<_>>()
            .into(),
    );
    out.insert(
        "required_if".into(),
        spec.required_if
            .iter()
            .map(|r| serde_json::json!([r.param, r.value, r.requires]))
            .collect::<Vec<_>>()
            .into(),
    );
    Value::Object(out)
}

/// AnsibleModule's message when a module without check-mode support is run in check mode.
pub fn check_mode_unsupported(module: &str) -> String {
    format!("remote module ({module}) does not support check mode")
}

/// Runs the logic on a validated context, unless the task is in check mode and the module
/// does not declare `supports_check_mode`: then, as AnsibleModule does, nothing runs and the
/// result is `skipped: true` (not changed, not failed) with its message.
pub fn dispatch(
    spec: &Spec,
    ctx: &mut Ctx,
    logic: fn(&mut Ctx) -> Result<Outcome, Failure>,
) -> Result<Outcome, Failure> {
    if ctx.check_mode && !spec.supports_check_mode {
        return Ok(Outcome::new(false, check_mode_unsupported(spec.module)).with("skipped", true));
    }
    logic(ctx)
}

/// The one exit path of every module: read args, validate, run the logic, print one JSON
/// object on stdout, exit 0 on success and 1 on failure.
pub fn run(spec: &Spec, logic: fn(&mut Ctx) -> Result<Outcome, Failure>) -> ! {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 2 && args[1] == SPEC_FLAG {
        println!("{}", spec_json(spec));
        std::process::exit(0);
    }
    let (value, code) = match read_input(&args).and_then(|(t, s)| context(spec, &t, &s)) {
        Err(f) => result_json(spec, None, Err(f)),
        Ok(mut ctx) => {
            let outcome = dispatch(spec, &mut ctx, logic);
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
