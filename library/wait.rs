//! Bounded polling: the one loop every "wait until the cluster says so" step uses.

use std::time::{Duration, Instant};

/// Calls `probe` at once, then every `every` until it returns `Some` or `timeout` has passed
/// since the first call. The last call is made at the deadline, so a condition that becomes
/// true just before it is still seen. `Ok((value, elapsed))` when the probe answered,
/// `Err(elapsed)` when the time ran out. The probe gets the time left before the deadline
/// (to bound its own work, e.g. a command's timeout).
pub fn until<T>(
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut(Duration) -> Option<T>,
) -> Result<(T, Duration), Duration> {
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(v) = probe(left) {
            return Ok((v, start.elapsed()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(start.elapsed());
        }
        std::thread::sleep(every.min(left));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_at_once_without_sleeping() {
        let mut calls = 0;
        let r = until(Duration::from_secs(10), Duration::from_secs(10), |_| {
            calls += 1;
            Some(7)
        });
        let (v, after) = r.unwrap();
        assert_eq!((v, calls), (7, 1));
        assert!(after < Duration::from_secs(1));
    }

    #[test]
    fn retries_until_the_probe_answers() {
        let mut calls = 0;
        let r = until(Duration::from_secs(10), Duration::from_millis(1), |_| {
            calls += 1;
            (calls == 3).then_some("ok")
        });
        assert_eq!(r.unwrap().0, "ok");
        assert_eq!(calls, 3);
    }

    #[test]
    fn gives_up_after_the_timeout_with_a_last_call_at_the_deadline() {
        let mut lefts = Vec::new();
        let r: Result<((), _), _> = until(
            Duration::from_millis(30),
            Duration::from_millis(20),
            |left| {
                lefts.push(left);
                None
            },
        );
        let after = r.unwrap_err();
        assert!(after >= Duration::from_millis(30), "{after:?}");
        assert!(lefts.len() >= 2, "{lefts:?}");
        assert!(
            lefts.last().unwrap().is_zero(),
            "last call at the deadline: {lefts:?}"
        );
        assert!(lefts[0] > Duration::from_millis(20));
    }

    #[test]
    fn zero_timeout_probes_once() {
        let mut calls = 0;
        let r: Result<((), _), _> = until(Duration::ZERO, Duration::from_secs(1), |_| {
            calls += 1;
            None
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
