//! A reconnect storm, simulated: a fleet whose connections all drop at once (regional outage,
//! power cut) reconnects through a connect-rate limiter standing for the account's CONNECT
//! quota (a token bucket). Pure and deterministic (simulated milliseconds, seeded random
//! numbers): the unit test checks the fleet policy ([`crate::machine::Reconnect`]) against
//! the policy the agent had before, and `cargo run --release -p anpr-camera --example
//! reconnect_storm` prints the figures of `docs/measured.md`.

use crate::machine::{LinkDown, Reconnect, ReconnectPolicy};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The connect-rate limiter: `rate_per_s` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone, Copy)]
pub struct Limiter {
    /// CONNECTs admitted per second.
    pub rate_per_s: u64,
    /// Tokens the bucket holds at most (and holds at the start).
    pub burst: u64,
}

/// How the clients reconnect.
#[derive(Debug, Clone, Copy)]
pub enum Policy {
    /// The agent's rule before the fleet policy: no boot delay, a retry uniform in
    /// `[base/2, base]` with `base = min(initial * 2^failures, max)`.
    Before {
        /// First ceiling, ms.
        initial_ms: u64,
        /// Largest ceiling, ms.
        max_ms: u64,
    },
    /// [`Reconnect`] with this policy; a refusal by the limiter reaches the client as `how`
    /// (`SlowDown` for a CONNACK "connection rate exceeded", `Failed` if the broker only
    /// closes the socket).
    Fleet {
        /// The rules.
        policy: ReconnectPolicy,
        /// What a refused client sees.
        how: LinkDown,
    },
}

/// What a storm cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// CONNECTs sent.
    pub offered: u64,
    /// CONNECTs refused by the limiter.
    pub refused: u64,
    /// Time from the outage's end to the last client connected, ms.
    pub converge_ms: u64,
    /// Most CONNECTs offered in one second.
    pub peak_offered_per_s: u64,
}

/// Runs `clients` clients, all disconnected at time 0, until every one is connected.
pub fn simulate(clients: u32, limiter: Limiter, policy: Policy, seed: u64) -> Figures {
    let mut rng = seed | 1;
    let mut unit = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    // Per client: the fleet state, or the failure count of the old rule.
    let mut fleet: Vec<Reconnect> = Vec::new();
    let mut failures: Vec<u32> = vec![0; clients as usize];
    let mut queue: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    for c in 0..clients {
        let at = match policy {
            Policy::Before { .. } => 0,
            Policy::Fleet { policy, .. } => {
                let mut r = Reconnect::new(policy);
                let d = r.boot(0, unit());
                fleet.push(r);
                d
            }
        };
        queue.push(Reverse((at, c)));
    }
    // Tokens in thousandths, refilled continuously.
    let cap = limiter.burst * 1000;
    let mut tokens = cap;
    let mut refilled_at = 0u64;
    let mut fig = Figures {
        offered: 0,
        refused: 0,
        converge_ms: 0,
        peak_offered_per_s: 0,
    };
    let (mut second, mut in_second) = (0u64, 0u64);
    while let Some(Reverse((now, c))) = queue.pop() {
        tokens = (tokens + (now - refilled_at) * limiter.rate_per_s).min(cap);
        refilled_at = now;
        fig.offered += 1;
        if now / 1000 != second {
            second = now / 1000;
            in_second = 0;
        }
        in_second += 1;
        fig.peak_offered_per_s = fig.peak_offered_per_s.max(in_second);
        if tokens >= 1000 {
            tokens -= 1000;
            fig.converge_ms = now;
            continue;
        }
        fig.refused += 1;
        let i = c as usize;
        let delay = match policy {
            Policy::Before { initial_ms, max_ms } => {
                let base = initial_ms
                    .saturating_mul(1u64 << failures[i].min(32))
                    .min(max_ms);
                failures[i] += 1;
                base / 2 + ((base - base / 2) as f64 * unit()) as u64
            }
            Policy::Fleet { how, .. } => fleet[i].down(now, how, unit()),
        };
        queue.push(Reverse((now + delay, c)));
    }
    fig
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limiter = Limiter {
        rate_per_s: 50,
        burst: 50,
    };

    fn defaults() -> ReconnectPolicy {
        ReconnectPolicy::default()
    }

    #[test]
    fn ten_thousand_clients_converge_with_fewer_refused_connects_than_before() {
        let before = simulate(
            10_000,
            LIMIT,
            Policy::Before {
                initial_ms: 1000,
                max_ms: 300_000,
            },
            7,
        );
        for how in [LinkDown::SlowDown, LinkDown::Failed] {
            let after = simulate(
                10_000,
                LIMIT,
                Policy::Fleet {
                    policy: defaults(),
                    how,
                },
                7,
            );
            assert_eq!(after.offered - after.refused, 10_000, "all connected");
            assert!(
                after.refused < before.refused,
                "{how:?}: {after:?} vs {before:?}"
            );
            assert!(after.peak_offered_per_s * 10 < before.peak_offered_per_s);
            // Told to slow down (CONNACK "connection rate exceeded"), the fleet offers less
            // than half the refused CONNECTs.
            if how == LinkDown::SlowDown {
                assert!(
                    after.refused * 2 < before.refused,
                    "{after:?} vs {before:?}"
                );
            }
        }
        assert_eq!(before.offered - before.refused, 10_000);
    }

    #[test]
    fn a_limiter_that_admits_everyone_refuses_nothing() {
        let f = simulate(
            100,
            Limiter {
                rate_per_s: 1000,
                burst: 100,
            },
            Policy::Before {
                initial_ms: 1000,
                max_ms: 300_000,
            },
            1,
        );
        assert_eq!((f.offered, f.refused, f.converge_ms), (100, 0, 0));
    }
}
