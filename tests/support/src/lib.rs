//! The test harness: how every test reaches the real local stand-ins.
//!
//! - [`moto`]: the moto server `scripts/test` started (`ANPR_MOTO_URL`), SDK configs pointed at
//!   it, unique resource names so tests never share state, and the read-back of IoT data-plane
//!   publishes that moto itself does not offer (`scripts/moto_server.py` records them).
//! - [`broker`]: a Mosquitto configured like AWS IoT Core: TLS with client certificates issued
//!   at run time by a throw-away CA, client id = certificate CN, per-camera ACL equivalent to an
//!   IoT policy on `${iot:Connection.Thing.ThingName}`. Each test starts its own broker on a free
//!   port so it may stop and restart it (persistence on) without disturbing others. Its CA is
//!   `anpr_stand_ins::pki`, shared with `anpr-local`.
//! - [`creds`], [`shadow`]: the IoT credentials provider and device shadow service of
//!   `anpr-stand-ins` (shared with `anpr-local`) on a test broker.
//!
//! # Layout
//! - [`moto`]: reaching moto (SDK configs, unique names, recorded IoT publishes).
//! - [`broker`]: Mosquitto like IoT Core, one per test.
//! - [`creds`], [`shadow`]: the shared stand-ins on a test broker.
//! - [`proxy`]: a byte-counting loopback proxy that injects network faults.
//! - [`agent_config`]: the configuration a test's agent runs with.
//! - [`plates`], [`queue`]: the plate-read path's cloud side (the rule's event, the store, the
//!   SQS queue and its dead-letter queue).
//!
//! Nothing here is a mock: tests talk to the real programs. Missing programs fail the test with
//! a message saying to run `scripts/test`, never skip it.

pub mod agent_config;
pub mod broker;
pub mod creds;
pub mod moto;
pub mod plates;
pub mod proxy;
pub mod queue;
pub mod shadow;

/// Installs aws-lc-rs as the process's rustls crypto provider (the one the AWS SDK uses), so
/// that rustls never has to guess when several providers are compiled in. Idempotent.
pub fn init_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A name no other test uses: `{prefix}-{ulid}` in lower case.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A free TCP port on the loopback interface (bound then released), never one this process
/// has handed out before: the kernel may give a just-released port again, and two listeners of
/// one broker on the same port make Mosquitto exit with "Address already in use".
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    // Hold every candidate until one is new, so the kernel cannot offer the same one again.
    let mut held = Vec::new();
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = l.local_addr().expect("a bound address").port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
        held.push(l);
        assert!(
            held.len() < 1000,
            "no loopback port left that was not handed out"
        );
    }
}
