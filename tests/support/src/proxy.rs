//! A loopback TCP proxy that counts the bytes each way and injects the faults of real
//! networks into the connections through it:
//! - a clean cut of every connection, on demand ([`Proxy::cut`]) or at an exact upstream
//!   byte ([`Proxy::cut_when_up_reaches`]), refusing new ones until restored;
//! - a silent drop ([`Proxy::blackhole`]): the connections open so far stay open but carry
//!   nothing more either way, as when a cellular NAT forgets a mapping (half-open link);
//!   only the endpoints' own time-outs (MQTT keep-alive) can notice;
//! - a silent link ([`Proxy::set_silent`]): new connections are accepted, nothing is
//!   forwarded (a port that drops packets instead of refusing);
//! - a delay on every chunk forwarded ([`Proxy::set_delay`]).

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
    /// Connections numbered below this carry nothing more (blackholed).
    dead_below: AtomicU64,
    /// New connections carry nothing.
    silent: AtomicBool,
    delay_ms: AtomicU64,
    /// Bytes discarded by a blackhole or a silent link.
    swallowed: AtomicU64,
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
                let n = i.accepted.fetch_add(1, Ordering::SeqCst);
                if i.silent.load(Ordering::SeqCst) {
                    i.dead_below.fetch_max(n + 1, Ordering::SeqCst);
                }
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let (Ok(c2), Ok(s2), Ok(mut conns)) =
                    (client.try_clone(), server.try_clone(), i.conns.lock())
                {
                    conns.push(c2);
                    conns.push(s2);
                }
                pump(i.clone(), n, &client, &server, true);
                pump(i.clone(), n, &server, &client, false);
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
    /// Accepts connections again (and forwards on new ones: ends [`Proxy::set_silent`]).
    pub fn restore(&self) {
        self.inner.cut_at_up.store(u64::MAX, Ordering::SeqCst);
        self.inner.silent.store(false, Ordering::SeqCst);
        self.inner.cut.store(false, Ordering::SeqCst);
    }
    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.inner.cut.load(Ordering::SeqCst)
    }
    /// Cuts (as [`Proxy::cut`]) once the upstream byte count reaches `total` bytes exactly:
    /// the bytes up to `total` are forwarded, the rest of that chunk is not.
    pub fn cut_when_up_reaches(&self, total: u64) {
        self.inner.cut_at_up.store(total, Ordering::SeqCst);
    }
    /// Half-open link: every connection open now stays open but forwards nothing more, either
    /// way, and is never closed by the proxy; connections made afterwards work.
    pub fn blackhole(&self) {
        let n = self.inner.accepted.load(Ordering::SeqCst);
        self.inner.dead_below.fetch_max(n, Ordering::SeqCst);
    }
    /// While `on`, new connections are accepted but forward nothing (a port that silently
    /// drops); connections made while silent stay dead after [`Proxy::restore`].
    pub fn set_silent(&self, on: bool) {
        self.inner.silent.store(on, Ordering::SeqCst);
    }
    /// Delays every chunk forwarded, either way, by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.inner.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
    /// Bytes a blackholed or silent connection swallowed.
    pub fn swallowed_bytes(&self) -> u64 {
        self.inner.swallowed.load(Ordering::SeqCst)
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

fn pump(i: Arc<Inner>, conn: u64, from: &TcpStream, to: &TcpStream, up: bool) {
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
            if conn < i.dead_below.load(Ordering::SeqCst) {
                // Swallowed: the sender believes it went out, nothing arrives, nothing closes.
                i.swallowed.fetch_add(n as u64, Ordering::SeqCst);
                continue;
            }
            let delay = i.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                std::thread::sleep(Duration::from_millis(delay));
            }
            let counter = if up { &i.up } else { &i.down };
            let limit = if up {
                i.cut_at_up.load(Ordering::SeqCst)
            } else {
                u64::MAX
            };
            let before = counter.load(Ordering::SeqCst);
            let send = if before.saturating_add(n as u64) >= limit {
                usize::try_from(limit.saturating_sub(before)).unwrap_or(n)
            } else {
                n
            };
            counter.fetch_add(send as u64, Ordering::SeqCst);
            if to.write_all(&buf[..send]).is_err() {
                break;
            }
            if send < n || before + send as u64 >= limit {
                i.cut_all();
                break;
            }
        }
        // A blackholed connection is never closed by the proxy: its peers must find out.
        if conn >= i.dead_below.load(Ordering::SeqCst) || i.cut.load(Ordering::SeqCst) {
            let _ = to.shutdown(Shutdown::Write);
            let _ = from.shutdown(Shutdown::Read);
        }
    });
}
