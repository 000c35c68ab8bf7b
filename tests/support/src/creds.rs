//! The IoT credentials provider stand-in ([`anpr_stand_ins::creds`]) for a test broker's
//! cameras, on a loopback port of its own thread (so it outlives no test and serves tests of
//! any runtime).

use anpr_stand_ins::creds::{CredsProvider, Issued};
use std::sync::Arc;

/// Access key id handed out (moto accepts any).
pub const ACCESS_KEY_ID: &str = "testing";

/// A running credentials provider stand-in; stops when dropped.
#[derive(Debug)]
pub struct CredsServer {
    /// Its port on 127.0.0.1 (host name `localhost` matches its certificate).
    pub port: u16,
    /// The role alias it serves.
    pub role_alias: String,
    provider: Arc<CredsProvider>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl CredsServer {
    /// Starts it with the PKI of `broker` (server certificate and CA, the cameras'
    /// certificates), serving `role_alias`.
    pub fn start(broker: &crate::broker::Broker, role_alias: &str) -> Self {
        let acceptor = anpr_stand_ins::creds::acceptor(&broker.pki).expect("credentials TLS");
        let issued = Issued {
            access_key_id: ACCESS_KEY_ID.into(),
            secret_access_key: "testing".into(),
        };
        let provider = Arc::new(CredsProvider::new(broker.pki.clone(), role_alias, issued));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = provider.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::select! {
                    _ = stop_rx => {}
                    () = serving.serve(listener, acceptor) => {}
                }
            });
        });
        Self {
            port,
            role_alias: role_alias.to_owned(),
            provider,
            _stop: stop_tx,
        }
    }

    /// Credentials handed out so far.
    pub fn granted(&self) -> u64 {
        self.provider.granted()
    }
    /// Requests refused so far (bad certificate, thing or alias).
    pub fn refused(&self) -> u64 {
        self.provider.refused()
    }
}
