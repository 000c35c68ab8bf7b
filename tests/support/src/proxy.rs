//! A loopback TCP proxy that counts the bytes each way and can cut every connection on
//! demand (or once a number of upstream bytes went through), refusing new ones until
//! restored: the "lost mobile link" and the byte meter of the camera tests.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
struct Inner {
    up: AtomicU64,
    down: AtomicU64,
    accepted: AtomicU64,
    cut: AtomicBool,
    cut_at_up: AtomicU64,
    stopped: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

impl Inner {
    fn cut_all(&self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Ok(mut c) = self.conns.lock() {
            for s in c.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A running proxy on `127.0.0.1:port` to an upstream address.
#[derive(Debug)]
pub struct Proxy {
    /// The port to connect to instead of the upstream's.
    pub port: u16,
    inner: Arc<Inner>,
}

impl Proxy {
    /// Starts a proxy to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let inner = Arc::new(Inner {
            cut_at_up: AtomicU64::new(u64::MAX),
            ..Default::default()
        });
        let i = inner.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if i.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if i.cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
                else {
                    continue;
                };
                i.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let (Ok(c2), Ok(s2), Ok(mut conns)) =
                    (client.try_clone(), server.try_clone(), i.conns.lock())
                {
                    conns.push(c2);
                    conns.push(s2);
                }
                pump(i.clone(), &client, &server, true);
                pump(i.clone(), &server, &client, false);
            }
        });
        Self { port, inner }
    }

    /// Starts a proxy to `127.0.0.1:port`.
    pub fn to_port(port: u16) -> Self {
        Self::start(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Bytes client → upstream so far.
    pub fn up_bytes(&self) -> u64 {
        self.inner.up.load(Ordering::SeqCst)
    }
    /// Bytes upstream → client so far.
    pub fn down_bytes(&self) -> u64 {
        self.inner.down.load(Ordering::SeqCst)
    }
    /// Both directions.
    pub fn total_bytes(&self) -> u64 {
        self.up_bytes() + self.down_bytes()
    }
    /// Connections accepted and forwarded so far.
    pub fn connections(&self) -> u64 {
        self.inner.accepted.load(Ordering::SeqCst)
    }
    /// Zeroes the byte counters.
    pub fn reset_counts(&self) {
        self.inner.up.store(0, Ordering::SeqCst);
        self.inner.down.store(0, Ordering::SeqCst);
    }
    /// Drops every connection now and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.inner.cut_all();
    }
    /// Accepts connections again.
    pub fn restore(&self) {
        self.inner.cut_at_up.store(u64::MAX, Ordering::SeqCst);
        self.inner.cut.store(false, Ordering::SeqCst);
    }
    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.inner.cut.load(Ordering::SeqCst)
    }
    /// Cuts (as [`Proxy::cut`]) once the upstream byte count reaches `total` bytes.
    pub fn cut_when_up_reaches(&self, total: u64) {
        self.inner.cut_at_up.store(total, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.cut_all();
        // Wake the accept loop so it sees `stopped`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pump(i: Arc<Inner>, from: &TcpStream, to: &TcpStream, up: bool) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if i.cut.load(Ordering::SeqCst) {
                break;
            }
            let counter = if up { &i.up } else { &i.down };
            let total = counter.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            if up && total >= i.cut_at_up.load(Ordering::SeqCst) {
                i.cut_all();
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        let _ = from.shutdown(Shutdown::Read);
    });
}
