//! Support for the project's own property tests: a tiny deterministic pseudo-random generator
//! (xorshift64*), so random-input tests need no extra crate and every failure replays from its
//! seed. Not used by the modules themselves.

/// xorshift64* generator. A zero seed is replaced by a fixed non-zero one.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    /// One of `items` (which must not be empty).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A test that cannot run on this machine (not root, no mount namespaces, a tool missing):
/// printed as a skip, or, when `PVE2NODE_E2E=1` (scripts/test.sh, CI), a failure, so a skip
/// never passes silently there. The caller returns right after.
pub fn skip(why: &str) {
    if std::env::var("PVE2NODE_E2E").as_deref() == Ok("1") {
        panic!("cannot run this test here and PVE2NODE_E2E=1 forbids skipping it: {why}");
    }
    eprintln!("skipping: {why}");
}
