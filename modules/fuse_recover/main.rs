//! fuse_recover: not implemented yet.
use pve2node::protocol::{self, Ctx, Failure, Outcome, Spec};

const SPEC: Spec = Spec {
    module: "fuse_recover",
    params: &[],
    mutually_exclusive: &[],
    required_if: &[],
};

fn logic(_ctx: &mut Ctx) -> Result<Outcome, Failure> {
    Err(Failure::new("fuse_recover is not implemented yet"))
}

fn main() {
    protocol::run(&SPEC, logic)
}
