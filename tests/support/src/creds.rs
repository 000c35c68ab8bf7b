//! A stand-in for the AWS IoT credentials provider: HTTPS with mutual TLS on a loopback port,
//! client certificates checked against the broker's CA, `GET /role-aliases/{alias}/credentials`
//! with `x-amzn-iot-thingname` answered in AWS's JSON shape only when the header names the
//! thing whose certificate was presented (as AWS checks the thing–certificate attachment).

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Access key id handed out (moto accepts any).
pub const ACCESS_KEY_ID: &str = "testing";

/// A running credentials provider stand-in.
#[derive(Debug)]
pub struct CredsServer {
    /// Its port on 127.0.0.1 (host name `localhost` matches its certificate).
    pub port: u16,
    /// The role alias it serves.
    pub role_alias: String,
    granted: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn certs(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let pem = std::fs::read(path).expect("read cert PEM");
    rustls_pemfile::certs(&mut BufReader::new(&pem[..]))
        .collect::<Result<Vec<_>, _>>()
        .expect("parse cert PEM")
}

impl CredsServer {
    /// Starts it with the PKI of `broker` (server certificate and CA), serving `role_alias`.
    pub fn start(broker: &crate::broker::Broker, role_alias: &str) -> Self {
        Self::start_in(
            broker.pki.ca_path().parent().expect("pki dir").to_owned(),
            role_alias,
        )
    }

    /// Starts it with the PKI files in `dir` (`ca.pem`, `server.pem`, `server.key`, and the
    /// issued `{cn}.pem` client certificates).
    pub fn start_in(dir: PathBuf, role_alias: &str) -> Self {
        crate::init_crypto();
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(&dir.join("ca.pem")) {
            roots.add(c).expect("CA");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .expect("client verifier");
        let key_pem = std::fs::read(dir.join("server.key")).expect("server key");
        let key = rustls_pemfile::private_key(&mut BufReader::new(&key_pem[..]))
            .expect("key PEM")
            .expect("a key");
        let cfg = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&dir.join("server.pem")), key)
            .expect("server TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let granted = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (g, r, alias) = (granted.clone(), refused.clone(), role_alias.to_owned());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        a = listener.accept() => {
                            let Ok((tcp, _)) = a else { continue };
                            let (acceptor, dir, alias, g, r) =
                                (acceptor.clone(), dir.clone(), alias.clone(), g.clone(), r.clone());
                            tokio::spawn(async move {
                                let Ok(mut tls) = acceptor.accept(tcp).await else {
                                    r.fetch_add(1, Ordering::SeqCst);
                                    return;
                                };
                                let peer = tls
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|c| c.first().cloned());
                                let mut buf = Vec::new();
                                let mut chunk = [0u8; 2048];
                                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
                                    match tls.read(&mut chunk).await {
                                        Ok(0) | Err(_) => break,
                                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                                    }
                                }
                                let head = String::from_utf8_lossy(&buf).into_owned();
                                let (status, body) = answer(&head, peer.as_ref(), &dir, &alias);
                                if status == 200 { g.fetch_add(1, Ordering::SeqCst); } else { r.fetch_add(1, Ordering::SeqCst); }
                                let resp = format!(
                                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                    body.len()
                                );
                                let _ = tls.write_all(resp.as_bytes()).await;
                                let _ = tls.shutdown().await;
                            });
                        }
                    }
                }
            });
        });
        Self {
            port,
            role_alias: role_alias.to_owned(),
            granted,
            refused,
            _stop: stop_tx,
        }
    }

    /// Credentials handed out so far.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::SeqCst)
    }
    /// Requests refused so far (bad certificate, thing or alias).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

fn answer(
    head: &str,
    peer: Option<&rustls::pki_types::CertificateDer<'_>>,
    dir: &Path,
    alias: &str,
) -> (u16, String) {
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    if path != format!("/role-aliases/{alias}/credentials") {
        return (404, r#"{"message":"Role alias does not exist"}"#.into());
    }
    let thing = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("x-amzn-iot-thingname"))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let valid_name = !thing.is_empty()
        && thing
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':');
    let attached = valid_name
        && dir.join(format!("{thing}.pem")).exists()
        && peer.is_some_and(|p| certs(&dir.join(format!("{thing}.pem"))).first() == Some(p));
    if !attached {
        return (
            403,
            r#"{"message":"Certificate is not attached to the thing"}"#.into(),
        );
    }
    (
        200,
        format!(
            r#"{{"credentials":{{"accessKeyId":"{ACCESS_KEY_ID}","secretAccessKey":"testing","sessionToken":"token-for-{thing}","expiration":"2099-01-01T00:00:00Z"}}}}"#
        ),
    )
}
