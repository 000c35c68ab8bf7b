//! The reconnect storm figures of `docs/measured.md`: 10,000 simulated cameras, all
//! disconnected at once, reconnect through a token bucket admitting 50 CONNECTs a second
//! (AWS's 500/s account quota scaled to a tenth of a 100,000-camera fleet), with the agent's
//! old rule and with the fleet rules (`anpr_camera::machine::Reconnect`, default settings), a
//! refusal reaching the camera either as CONNACK "connection rate exceeded" or as a plain
//! failure. Simulated time, seeded: the figures are the same on every run.
//!
//! `cargo run --release -p anpr-camera --example reconnect_storm`

use anpr_camera::machine::{LinkDown, ReconnectPolicy};
use anpr_camera::storm::{Limiter, Policy, simulate};

fn main() {
    let clients = 10_000;
    let limiter = Limiter {
        rate_per_s: 50,
        burst: 50,
    };
    let policy = ReconnectPolicy::default();
    println!(
        "{clients} clients, limiter {}/s (burst {}), seeds 1..=5 (mean)",
        limiter.rate_per_s, limiter.burst
    );
    println!(
        "{:<44} {:>10} {:>10} {:>12} {:>14}",
        "policy", "offered", "refused", "converge s", "peak offered/s"
    );
    let runs: [(&str, Policy); 3] = [
        (
            "before (no boot delay, [base/2, base])",
            Policy::Before {
                initial_ms: policy.initial_ms,
                max_ms: policy.max_ms,
            },
        ),
        (
            "fleet rules, refusal = rate exceeded",
            Policy::Fleet {
                policy,
                how: LinkDown::SlowDown,
            },
        ),
        (
            "fleet rules, refusal = socket closed",
            Policy::Fleet {
                policy,
                how: LinkDown::Failed,
            },
        ),
    ];
    for (name, p) in runs {
        let (mut offered, mut refused, mut converge, mut peak) = (0, 0, 0, 0);
        for seed in 1..=5 {
            let f = simulate(clients, limiter, p, seed);
            offered += f.offered;
            refused += f.refused;
            converge += f.converge_ms;
            peak += f.peak_offered_per_s;
        }
        println!(
            "{name:<44} {:>10} {:>10} {:>12.1} {:>14}",
            offered / 5,
            refused / 5,
            converge as f64 / 5000.0,
            peak / 5
        );
    }
}
