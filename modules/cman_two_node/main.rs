//! cman_two_node: not implemented yet.
use pve2node::protocol::{self, Ctx, Failure, Outcome, Spec};

const SPEC: Spec = Spec {
    module: "cman_two_node",
    params: &[],
    mutually_exclusive: &[],
    required_if: &[],
};

fn logic(_ctx: &mut Ctx) -> Result<Outcome, Failure> {
    Err(Failure::new("cman_two_node is not implemented yet"))
}

fn main() {
    protocol::run(&SPEC, logic)
}
