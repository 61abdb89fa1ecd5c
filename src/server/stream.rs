//! A client's byte stream: TCP, TLS over TCP, or a unix socket.
//! [`Connection`] reads and writes it without knowing which; the event loop
//! registers it with mio.
//!
//! TLS is rustls driven by hand on the non-blocking socket, in the loop
//! that owns the connection (no thread per connection): a read feeds
//! ciphertext to rustls (`read_tls`, `process_new_packets`) until it has
//! plaintext or the socket says WouldBlock, sending whatever the handshake
//! wants sent on the way; a write hands plaintext to rustls (`writer()`,
//! bounded by `ssl_wbuf_size`) and pushes records out (`write_tls`).
//! Records rustls holds when the socket blocks count as pending output,
//! by size (see `TlsStream::held`), so the connection stops parsing at
//! the same high-water mark as in plain text, waits for the writable edge
//! and flushes them.
//!
//! A failed handshake is flagged before rustls's alert is sent: the
//! connection counts it (`ssl_handshake_errors`) and then sends the alert,
//! so a client that has seen the refusal sees it counted.
//!
//! An enum rather than a trait object: one predictable branch per read or
//! write, no allocation, and mio's `Source` implemented once here.
//!
//! [`Connection`]: super::connection::Connection

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

/// A connected client socket.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
    Unix(UnixStream),
}

/// A TLS session over a TCP socket.
#[derive(Debug)]
pub struct TlsStream {
    pub tls: rustls::ServerConnection,
    pub tcp: TcpStream,
    /// The handshake failed (bad or plaintext input, a refused client
    /// certificate): counted once as `ssl_handshake_errors`.
    handshake_failed: bool,
    /// Counts a full handshake when it completes (`ssl_new_sessions`);
    /// taken then.
    new_sessions: Option<Arc<AtomicU64>>,
    /// The last socket read came back short of what rustls asked for.
    socket_short: bool,
    /// Output bytes rustls holds, as an upper estimate: plaintext it took
    /// plus `RECORD_OVERHEAD` a record, less the bytes written to the
    /// socket; 0 once it holds none. rustls does not say how much it holds.
    held: usize,
    /// Bytes written to the socket so far (progress, for `write_timeout`).
    sent: u64,
}

/// Most bytes a record adds to its plaintext: a 5-byte header, then TLS 1.2
/// GCM's 8-byte explicit nonce and 16-byte tag (TLS 1.3: a content-type
/// byte and the tag).
const RECORD_OVERHEAD: usize = 29;
/// Most plaintext in one record.
const MAX_FRAGMENT: usize = 16 * 1024;

/// The socket as rustls reads it, noting whether a read came back short.
struct Noting<'a> {
    tcp: &'a mut TcpStream,
    short: &'a mut bool,
}

impl Read for Noting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        *self.short = n < buf.len();
        Ok(n)
    }
}

/// The socket as rustls writes records to it: one buffer goes out with
/// `send`, several with `writev`. rustls hands its records over as an
/// iovec array even when there is one (the usual case: one reply, one
/// record), and `writev` costs the kernel an iovec import and check that
/// `send` does not.
struct Sending<'a>(&'a mut TcpStream);

impl Write for Sending<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut full = bufs.iter().filter(|b| !b.is_empty());
        match (full.next(), full.next()) {
            (None, _) => Ok(0),
            (Some(one), None) => self.0.write(one),
            _ => self.0.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl TlsStream {
    pub fn new(tls: rustls::ServerConnection, tcp: TcpStream, new_sessions: Option<Arc<AtomicU64>>) -> TlsStream {
        TlsStream { tls, tcp, handshake_failed: false, new_sessions, socket_short: false, held: 0, sent: 0 }
    }

    /// Writes the records rustls holds until done or WouldBlock.
    fn push(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut Sending(&mut self.tcp)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.held = self.held.saturating_sub(n);
                    self.sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !self.tls.is_handshaking() {
            // Nothing held (plaintext taken during a handshake waits
            // outside the records until it ends).
            self.held = 0;
        }
        Ok(())
    }

    /// [`TlsStream::push`], with WouldBlock as success (a writable edge
    /// will come for what is left).
    fn push_some(&mut self) -> io::Result<()> {
        match self.push() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // Handshake replies (and alerts) go out before reading on.
            self.push_some()?;
            match self.tls.read_tls(&mut Noting { tcp: &mut self.tcp, short: &mut self.socket_short }) {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.tls.process_new_packets() {
                // The alert rustls queued goes out when the connection has
                // counted the failure (Stream::flush_held).
                self.handshake_failed |= self.tls.is_handshaking();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            if !self.tls.is_handshaking() {
                if let Some(count) = self.new_sessions.take() {
                    if self.tls.handshake_kind() != Some(rustls::HandshakeKind::Resumed) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Twice at most: rustls may refuse the plaintext while it holds
        // ssl_wbuf_size of records, and the socket may take them meanwhile.
        for _ in 0..2 {
            self.push_some()?;
            let n = self.tls.writer().write(buf)?;
            self.held += n + RECORD_OVERHEAD * n.div_ceil(MAX_FRAGMENT);
            if n > 0 || buf.is_empty() {
                self.push_some()?;
                return Ok(n);
            }
            if self.tls.wants_write() {
                break;
            }
        }
        // The socket is full: its writable edge will come.
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Stream {
    /// Whether a short read means the socket is empty (see
    /// `Connection::serve`). For TLS, a read short of the caller's buffer
    /// means rustls had no more plaintext; the socket is empty only if
    /// rustls's last read of it came back short too (it reads at most
    /// 4 KiB at a time).
    #[inline]
    pub fn short_read_drains(&self) -> bool {
        match self {
            Stream::Tls(t) => t.socket_short,
            _ => true,
        }
    }

    /// Output the stream itself holds (TLS records not yet written), in
    /// bytes: an upper estimate (`TlsStream::held`), at least 1 while
    /// any record waits.
    #[inline]
    pub fn held_output(&self) -> usize {
        match self {
            Stream::Tls(t) => t.held.max(usize::from(t.tls.wants_write())),
            _ => 0,
        }
    }

    /// Bytes the stream itself has written to the socket (TLS: records);
    /// 0 for plain streams, whose writes the connection counts.
    #[inline]
    pub fn bytes_sent(&self) -> u64 {
        match self {
            Stream::Tls(t) => t.sent,
            _ => 0,
        }
    }

    /// Writes what the stream holds (TLS records, an alert), until done or
    /// WouldBlock.
    pub fn flush_held(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(t) => t.push_some(),
            _ => Ok(()),
        }
    }

    /// A TLS stream whose handshake is not done yet.
    pub fn handshaking(&self) -> bool {
        matches!(self, Stream::Tls(t) if t.tls.is_handshaking())
    }

    /// Whether a handshake failed; true once.
    pub fn take_handshake_error(&mut self) -> bool {
        match self {
            Stream::Tls(t) => std::mem::take(&mut t.handshake_failed),
            _ => false,
        }
    }

    /// Ends a TLS session politely (close_notify), best effort.
    pub fn close_notify(&mut self) {
        if let Stream::Tls(t) = self {
            if !t.tls.is_handshaking() {
                t.tls.send_close_notify();
                let _ = t.push();
            }
        }
    }

    /// The client certificate's subject, when one was verified.
    pub fn peer_subject(&self) -> Option<String> {
        match self {
            Stream::Tls(t) => t.tls.peer_certificates().and_then(|c| c.first()).map(|c| crate::tls::subject_of(c)),
            _ => None,
        }
    }
}

impl Read for Stream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Tls(t) => t.tcp.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Source for Stream {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(registry, token, interests),
            Stream::Tls(t) => t.tcp.register(registry, token, interests),
            Stream::Unix(s) => s.register(registry, token, interests),
        }
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(registry, token, interests),
            Stream::Tls(t) => t.tcp.reregister(registry, token, interests),
            Stream::Unix(s) => s.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(registry),
            Stream::Tls(t) => t.tcp.deregister(registry),
            Stream::Unix(s) => s.deregister(registry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    #[test]
    fn sending_writes_one_buffer_or_several_in_order() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut tcp = TcpStream::from_std(server);
        let mut out = Sending(&mut tcp);
        assert_eq!(out.write_vectored(&[]).unwrap(), 0);
        let one = [io::IoSlice::new(b""), io::IoSlice::new(b"ab"), io::IoSlice::new(b"")];
        assert_eq!(out.write_vectored(&one).unwrap(), 2);
        let two = [io::IoSlice::new(b"cd"), io::IoSlice::new(b""), io::IoSlice::new(b"ef")];
        assert_eq!(out.write_vectored(&two).unwrap(), 4);
        out.write_all(b"g").unwrap();
        let mut got = [0u8; 7];
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abcdefg");
    }

    /// A server stream and a blocking client over loopback, handshake done
    /// (the client wrote `hi`, which the server read). The client thread
    /// then reads nothing until told how many bytes to read.
    fn pair(limit: usize) -> (Stream, mpsc::Sender<usize>, std::thread::JoinHandle<Vec<u8>>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
        let pkey = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], pkey)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tell, told) = mpsc::channel::<usize>();
        let reader = std::thread::spawn(move || {
            let tcp = std::net::TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let conn = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
            let mut s = rustls::StreamOwned::new(conn, tcp);
            s.write_all(b"hi").unwrap();
            s.flush().unwrap();
            let want = told.recv().unwrap();
            let mut got = vec![0u8; want];
            s.read_exact(&mut got).unwrap();
            got
        });
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_nonblocking(true).unwrap();
        let mut conn = rustls::ServerConnection::new(Arc::new(server)).unwrap();
        conn.set_buffer_limit(Some(limit));
        let mut stream = Stream::Tls(Box::new(TlsStream::new(conn, TcpStream::from_std(tcp), None)));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 16];
        loop {
            assert!(Instant::now() < deadline, "no handshake");
            match stream.read(&mut buf) {
                Ok(2) => break,
                Ok(n) => panic!("read {n}"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("{e}"),
            }
        }
        (stream, tell, reader)
    }

    #[test]
    fn records_rustls_holds_count_by_size_until_written() {
        let limit = 64 * 1024;
        let (mut stream, tell, reader) = pair(limit);
        // Write until the socket and rustls are full (the client reads
        // nothing): rustls then holds at least its limit, and says so.
        let chunk: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
        let mut sent_plain = Vec::new();
        let mut taken = 0usize;
        loop {
            assert!(taken < 256 << 20, "the socket never filled");
            match stream.write(&chunk) {
                Ok(n) => {
                    taken += n;
                    sent_plain.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let held = stream.held_output();
        assert!(held >= limit, "held {held} < {limit}");
        assert!(held <= limit + MAX_FRAGMENT + RECORD_OVERHEAD * 4, "held {held}");
        // Each byte taken is either held or sent.
        assert!(held as u64 + stream.bytes_sent() >= taken as u64);

        // The client reads it all; flushing brings the count to 0.
        tell.send(taken).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while stream.held_output() > 0 {
            assert!(Instant::now() < deadline, "records still held: {}", stream.held_output());
            stream.flush_held().unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        let got = reader.join().unwrap();
        assert!(got == sent_plain);
        assert!(stream.bytes_sent() >= taken as u64);
    }
}
