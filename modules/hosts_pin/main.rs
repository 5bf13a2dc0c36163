//! hosts_pin: not implemented yet.
use pve2node::protocol::{self, Ctx, Failure, Outcome, Spec};

const SPEC: Spec = Spec {
    module: "hosts_pin",
    params: &[],
    mutually_exclusive: &[],
    required_if: &[],
};

fn logic(_ctx: &mut Ctx) -> Result<Outcome, Failure> {
    Err(Failure::new("hosts_pin is not implemented yet"))
}

fn main() {
    protocol::run(&SPEC, logic)
}
