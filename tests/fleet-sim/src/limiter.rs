//! The connect-rate limiter (the account's CONNECT quota) and the cameras' back-off.

use std::time::Duration;

/// Token bucket: `rate` tokens a second, at most `burst` saved. Time is passed in, so the
/// bucket is pure and its arithmetic testable.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket at time `now` (time since any fixed origin). `rate <= 0` means unlimited.
    pub fn new(rate: f64, burst: f64, now: Duration) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            last: now,
        }
    }

    /// Takes one token if there is one at `now`.
    pub fn try_take(&mut self, now: Duration) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let dt = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Exponential back-off with full jitter: the n-th wait is uniform in `[0, min(cap, base·2^n)]`,
/// so a fleet refused together does not come back together.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `base`, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The next wait; `unit` in `[0, 1)` is the jitter draw.
    pub fn next(&mut self, unit: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// After a successful connect.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(f64) -> Duration = Duration::from_secs_f64;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut b = TokenBucket::new(10.0, 5.0, S(0.0));
        assert_eq!((0..8).filter(|_| b.try_take(S(0.0))).count(), 5);
        assert!(!b.try_take(S(0.05)));
        assert!(b.try_take(S(0.1)));
        // a long pause refills to the burst only
        assert_eq!((0..20).filter(|_| b.try_take(S(100.0))).count(), 5);
    }

    #[test]
    fn unlimited_bucket_always_admits() {
        let mut b = TokenBucket::new(0.0, 1.0, S(0.0));
        assert!((0..1000).all(|_| b.try_take(S(0.0))));
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let waits: Vec<_> = (0..6).map(|_| b.next(1.0).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
        assert_eq!(b.next(0.5), Duration::from_secs(4));
        b.reset();
        assert_eq!(b.next(1.0), Duration::from_secs(1));
    }
}
