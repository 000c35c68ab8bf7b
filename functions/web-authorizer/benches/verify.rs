//! Warm verification of one ID token (keys cached): what each WebSocket connection costs the
//! authorizer once the Lambda is warm. `cargo bench --workspace --bench verify`.

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use support::*;
use web_authorizer::jwks::Jwks;
use web_authorizer::token::{Expected, verify};

fn bench(c: &mut Criterion) {
    let key = PoolKey::generate("k1");
    let keys = Jwks::parse(&jwks(&[&key])).expect("JWKS");
    let now = 1_800_000_000;
    let token = key.sign(&id_claims("8a1f-user", "acme", "viewer", now));
    let expected = Expected {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
    };
    c.bench_function("verify an RS256 ID token (warm, 2048-bit key)", |b| {
        b.iter(|| verify(std::hint::black_box(&token), &keys, &expected, now).expect("valid"))
    });
    c.bench_function("verify and map to a caller", |b| {
        b.iter(|| {
            let claims =
                verify(std::hint::black_box(&token), &keys, &expected, now).expect("valid");
            anpr_core::access::Caller::from_json_claims(&claims).expect("caller")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
