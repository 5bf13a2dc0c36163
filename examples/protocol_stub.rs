//! A module binary with a known argument spec, for tests/protocol.rs: it exercises the whole
//! protocol path (args file or stdin, validation, check/diff/no_log, result, exit status)
//! without depending on any real module's parameters. Not installed; built by `cargo test`.
use pve2node::protocol::{self, Ctx, Default, Diff, Elem, Failure, Outcome, Param, Spec, Type};
use serde_json::json;

const SPEC: Spec = Spec {
    module: "protocol_stub",
    params: &[
        Param::new("name", Type::Str)
            .required()
            .aliases(&["hostname"]),
        Param::new("change", Type::Bool).default(Default::Bool(false)),
        Param::new("fail", Type::Bool).default(Default::Bool(false)),
        Param::new("count", Type::Int),
        Param::new("items", Type::List(Elem::Str)).default(Default::List(&[])),
        Param::new("path", Type::Path).default(Default::Str("/etc/hosts")),
        Param::new("password", Type::Str).no_log(),
        Param::new("state", Type::Str)
            .choices(&["present", "absent"])
            .default(Default::Str("present")),
    ],
    mutually_exclusive: &[],
    required_if: &[],
    supports_check_mode: true,
};

fn logic(ctx: &mut Ctx) -> Result<Outcome, Failure> {
    if ctx.params.flag("fail") {
        return Err(Failure::new("stub asked to fail").with("rc", 3));
    }
    if ctx.params.is_set("count") {
        ctx.warn("count is only echoed");
    }
    let changed = ctx.params.flag("change");
    let mut o = Outcome::new(changed, "stub ran")
        .with("seen_check_mode", ctx.check_mode)
        .with("seen_diff", ctx.diff)
        .with("seen_name", ctx.params.str_or_empty("name"))
        .with("seen_count", json!(ctx.params.int("count")))
        .with("seen_items", ctx.params.list("items"))
        .with("seen_path", ctx.params.str_or_empty("path"));
    o.diff = Some(Diff {
        before: "old\n".into(),
        after: "new\n".into(),
        before_header: "stub (before)".into(),
        after_header: "stub (after)".into(),
    });
    Ok(o)
}

fn main() {
    protocol::run(&SPEC, logic)
}
