//! The agent's HTTP/1.1 client, just enough for its two HTTPS peers (the IoT credentials
//! provider and S3): one request at a time on one connection, plain TCP for a local stand-in or
//! rustls (the same TLS stack as MQTT), a request body written in pieces so a part is streamed
//! from the file rather than held in memory, and a response read whole with a size cap
//! (`Content-Length`, chunked, or until the peer closes). A connection is kept for the next
//! request only when the response allows it.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest response head read.
const MAX_HEAD: usize = 16 * 1024;
/// Longest wait for the connection, for one write, or for the next bytes of the response.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Network or TLS error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The peer did not answer in time.
    #[error("{0}: timed out")]
    Timeout(&'static str),
    /// The response was not HTTP/1.x as expected.
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    /// The host name cannot be a TLS server name.
    #[error("host name {0:?} is not a TLS server name")]
    ServerName(String),
}

impl HttpError {
    fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { what, source }
    }
}

/// A response, its body read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (at most the cap the caller gave; longer bodies are cut there).
    pub body: Vec<u8>,
    /// Whether the connection can carry another request.
    pub keep_alive: bool,
}

impl Response {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// One connection to a host.
pub struct Conn {
    io: Box<dyn Stream>,
    /// Bytes read past the previous response (none when the server waits for us).
    buf: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

async fn timed<T>(
    what: &'static str,
    fut: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, HttpError> {
    tokio::time::timeout(IO_TIMEOUT, fut)
        .await
        .map_err(|_| HttpError::Timeout(what))?
        .map_err(HttpError::io(what))
}

impl Conn {
    /// Connects to `host:port`, with TLS when `tls` is given (the host is the server name).
    pub async fn open(
        host: &str,
        port: u16,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Self, HttpError> {
        let tcp = timed("connect", tokio::net::TcpStream::connect((host, port))).await?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|_| HttpError::ServerName(host.to_owned()))?;
                let s = timed(
                    "TLS handshake",
                    tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, tcp),
                )
                .await?;
                Box::new(s)
            }
        };
        Ok(Self {
            io,
            buf: Vec::new(),
        })
    }

    /// Writes request bytes (the head, or a piece of the body).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), HttpError> {
        timed("sending the request", self.io.write_all(bytes)).await
    }

    /// Flushes what was written and reads the response, keeping at most `max_body` bytes of
    /// its body.
    pub async fn response(&mut self, max_body: usize) -> Result<Response, HttpError> {
        timed("sending the request", self.io.flush()).await?;
        read_response(&mut self.io, &mut self.buf, max_body).await
    }
}

/// Reads one response from `r`; `buf` holds bytes already read and keeps what follows it.
pub async fn read_response<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max_body: usize,
) -> Result<Response, HttpError> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::Malformed("response head too long"));
        }
        if fill(r, buf).await? == 0 {
            return Err(HttpError::Malformed(if buf.is_empty() {
                "connection closed before a response"
            } else {
                "connection closed inside the response head"
            }));
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| HttpError::Malformed("response head is not text"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed("not an HTTP/1.x status line"));
    }
    let http_1_0 = version == "HTTP/1.0";
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or(HttpError::Malformed("no status code"))?;
    let mut headers = Vec::new();
    for l in lines {
        let (k, v) = l
            .split_once(':')
            .ok_or(HttpError::Malformed("header line without a colon"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    buf.drain(..head_end + 4);
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let connection = get("connection").unwrap_or_default().to_ascii_lowercase();
    let mut keep_alive = if http_1_0 {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    let chunked =
        get("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    let length = get("content-length").map(|l| l.parse::<u64>());
    let mut body = Vec::new();
    if status == 204 || status == 304 || (100..200).contains(&status) {
        // No body.
    } else if chunked {
        loop {
            let line = read_line(r, buf).await?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| HttpError::Malformed("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !read_line(r, buf).await?.is_empty() {}
                break;
            }
            read_exact_into(r, buf, size, &mut body, max_body).await?;
            if !read_line(r, buf).await?.is_empty() {
                return Err(HttpError::Malformed("chunk longer than its size"));
            }
        }
    } else if let Some(len) = length {
        let len = len.map_err(|_| HttpError::Malformed("bad content-length"))?;
        let len = usize::try_from(len).map_err(|_| HttpError::Malformed("bad content-length"))?;
        read_exact_into(r, buf, len, &mut body, max_body).await?;
    } else {
        // Until the peer closes; servers often close without TLS close_notify: what was read
        // counts.
        keep_alive = false;
        loop {
            take_into(buf, buf.len(), &mut body, max_body);
            match fill(r, buf).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) if !body.is_empty() || !buf.is_empty() => {
                    take_into(buf, buf.len(), &mut body, max_body);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    if body.len() >= max_body {
        // Cut: what followed was discarded, the exchange is not reusable with certainty.
        keep_alive = false;
    }
    Ok(Response {
        status,
        headers,
        body,
        keep_alive,
    })
}

/// Reads more bytes into `buf`; 0 at the end of the stream.
async fn fill<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<usize, HttpError> {
    let mut chunk = [0u8; 8192];
    let n = tokio::time::timeout(IO_TIMEOUT, r.read(&mut chunk))
        .await
        .map_err(|_| HttpError::Timeout("reading the response"))?
        .map_err(HttpError::io("reading the response"))?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Moves `n` bytes from the front of `buf` to `body`, keeping at most `max` in `body`.
fn take_into(buf: &mut Vec<u8>, n: usize, body: &mut Vec<u8>, max: usize) {
    let room = max.saturating_sub(body.len()).min(n);
    body.extend_from_slice(&buf[..room]);
    buf.drain(..n);
}

async fn read_exact_into<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    mut n: usize,
    body: &mut Vec<u8>,
    max: usize,
) -> Result<(), HttpError> {
    loop {
        let have = buf.len().min(n);
        take_into(buf, have, body, max);
        n -= have;
        if n == 0 {
            return Ok(());
        }
        if fill(r, buf).await? == 0 {
            return Err(HttpError::Malformed("connection closed inside the body"));
        }
    }
}

/// One CRLF-terminated line (without the CRLF).
async fn read_line<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<String, HttpError> {
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..i]).into_owned();
            buf.drain(..i + 2);
            return Ok(line);
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::Malformed("line too long"));
        }
        if fill(r, buf).await? == 0 {
            return Err(HttpError::Malformed("connection closed inside a chunk"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8], max: usize) -> Result<(Response, Vec<u8>), HttpError> {
        let mut r = bytes;
        let mut buf = Vec::new();
        let resp = read_response(&mut r, &mut buf, max).await?;
        Ok((resp, buf))
    }

    #[tokio::test]
    async fn a_sized_body_is_read_and_the_next_response_is_left_in_the_buffer() {
        let (r, rest) = parse(
            b"HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\n",
            1024,
        )
        .await
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(r.header("etag"), Some("\"abc\""));
        assert!(r.keep_alive);
        assert_eq!(rest, b"HTTP/1.1 204 No Content\r\n\r\n");
    }

    #[tokio::test]
    async fn a_chunked_body_is_joined_and_trailers_skipped() {
        let (r, rest) = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
            1024,
        )
        .await
        .unwrap();
        assert_eq!(r.body, b"hello world");
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn a_body_until_close_ends_the_connection_and_http_1_0_does_not_keep_it() {
        let (r, _) = parse(b"HTTP/1.1 200 OK\r\n\r\n{\"a\":1}", 1024)
            .await
            .unwrap();
        assert_eq!(
            (r.body.as_slice(), r.keep_alive),
            (&b"{\"a\":1}"[..], false)
        );
        let (r, _) = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 1024)
            .await
            .unwrap();
        assert!(!r.keep_alive);
        let (r, _) = parse(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            1024,
        )
        .await
        .unwrap();
        assert!(!r.keep_alive);
    }

    #[tokio::test]
    async fn a_long_body_is_cut_at_the_cap_and_the_connection_dropped() {
        let (r, rest) = parse(b"HTTP/1.1 500 X\r\nContent-Length: 10\r\n\r\n0123456789", 4)
            .await
            .unwrap();
        assert_eq!((r.body.as_slice(), r.keep_alive), (&b"0123"[..], false));
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn truncated_or_foreign_answers_are_errors() {
        for bad in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(
                parse(bad, 1024).await.is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
