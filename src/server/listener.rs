//! Listening sockets, set up with socket2: SO_REUSEADDR, SO_REUSEPORT (so
//! every event loop has its own listener on the same address and the kernel
//! spreads new connections over them), IPV6_V6ONLY for IPv6 addresses, the
//! `-b` backlog, non-blocking.
//!
//! SO_REUSEPORT would also let a second process (another ferrocache run by
//! the same user) join our port silently, the kernel then splitting clients
//! between two caches. So before binding a fixed port, [`bind_all`] binds a
//! probe socket without SO_REUSEPORT: it fails with "address already in
//! use" if anything listens there, as memcached's start does; and a second
//! ferrocache's probe fails against our listeners the same way. Two starts
//! racing within the microseconds between probe and bind are not caught.
//!
//! UDP sockets (`-U`) follow the same plan: one per loop per address with
//! SO_REUSEPORT (the kernel keeps each client's datagrams on one socket),
//! the probe first. They get no SO_REUSEADDR: for UDP on Linux that would
//! let an unrelated process bind the same port and share our datagrams.
//!
//! A unix socket (`-s`) is one listening socket; each loop holds a
//! duplicate of its descriptor and accepts from it (see
//! `docs/architecture.md`). A path held by a live socket is refused; a
//! stale socket file (nobody accepts on it) is replaced. The permission
//! bits (`-a`) are set between bind and listen, so no client can connect
//! before they hold.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::Error;

fn bind_one(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    Ok(s.into())
}

/// Fails if anything already listens on `addr` (see the module doc).
fn probe(addr: SocketAddr) -> io::Result<()> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())
}

/// Binds `threads` listeners on each address. Port 0 is resolved by the
/// first bind; the others reuse the port it got. Returns the bound
/// addresses and, per thread, one listener per address.
pub fn bind_all(
    addrs: &[SocketAddr],
    threads: usize,
    backlog: i32,
) -> Result<(Vec<SocketAddr>, Vec<Vec<TcpListener>>), Error> {
    let mut per_thread: Vec<Vec<TcpListener>> = (0..threads).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for &addr in addrs {
        if addr.port() != 0 {
            probe(addr).map_err(|source| Error::Bind { addr, source })?;
        }
        let first = bind_one(addr, backlog).map_err(|source| Error::Bind { addr, source })?;
        let actual = first.local_addr().map_err(|source| Error::Bind { addr, source })?;
        bound.push(actual);
        per_thread[0].push(first);
        for listeners in per_thread.iter_mut().skip(1) {
            let l = bind_one(actual, backlog).map_err(|source| Error::Bind { addr: actual, source })?;
            listeners.push(l);
        }
    }
    Ok((bound, per_thread))
}

/// The sockets one event loop serves.
#[derive(Debug, Default)]
pub struct LoopSockets {
    pub tcp: Vec<TcpListener>,
    pub udp: Vec<UdpSocket>,
    /// A duplicate descriptor of the one unix socket.
    pub unix: Option<UnixListener>,
}

fn bind_udp_one(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Room for a burst of replies; best effort (the kernel caps it).
    let _ = s.set_send_buffer_size(UDP_SEND_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Send buffer asked for on UDP sockets.
const UDP_SEND_BUFFER: usize = 1024 * 1024;

/// Binds `threads` UDP sockets on each address, as [`bind_all`] does for
/// TCP: port 0 is resolved by the first bind, a fixed port is probed.
pub fn bind_udp_all(addrs: &[SocketAddr], threads: usize) -> Result<(Vec<SocketAddr>, Vec<Vec<UdpSocket>>), Error> {
    let mut per_thread: Vec<Vec<UdpSocket>> = (0..threads).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for &addr in addrs {
        if addr.port() != 0 {
            // No SO_REUSEADDR or SO_REUSEPORT: fails if anything has it.
            let probe = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).and_then(|s| {
                if addr.is_ipv6() {
                    s.set_only_v6(true)?;
                }
                s.bind(&addr.into())
            });
            probe.map_err(|source| Error::Bind { addr, source })?;
        }
        let first = bind_udp_one(addr).map_err(|source| Error::Bind { addr, source })?;
        let actual = first.local_addr().map_err(|source| Error::Bind { addr, source })?;
        bound.push(actual);
        per_thread[0].push(first);
        for sockets in per_thread.iter_mut().skip(1) {
            sockets.push(bind_udp_one(actual).map_err(|source| Error::Bind { addr: actual, source })?);
        }
    }
    Ok((bound, per_thread))
}

/// Binds and listens on the unix socket `path` with the permission bits of `mask`
/// (see the module doc).
pub fn bind_unix(path: &Path, mask: u32, backlog: i32) -> Result<UnixListener, Error> {
    let fail = |source: io::Error| Error::Unix { path: path.to_path_buf(), source };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            if UnixStream::connect(path).is_ok() {
                return Err(fail(io::Error::new(io::ErrorKind::AddrInUse, "a server is listening there")));
            }
            std::fs::remove_file(path).map_err(fail)?;
        }
    }
    let s = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(fail)?;
    s.set_nonblocking(true).map_err(fail)?;
    s.bind(&socket2::SockAddr::unix(path).map_err(fail)?).map_err(fail)?;
    let listening =
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mask & 0o777)).and_then(|()| s.listen(backlog));
    if let Err(e) = listening {
        let _ = std::fs::remove_file(path);
        return Err(fail(e));
    }
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_shared_by_every_thread() {
        let (bound, per) = bind_all(&["127.0.0.1:0".parse().unwrap()], 3, 16).unwrap();
        assert_eq!(bound.len(), 1);
        assert_ne!(bound[0].port(), 0);
        for l in per.iter().flatten() {
            assert_eq!(l.local_addr().unwrap(), bound[0]);
        }
    }

    /// A port served by another process (here: listeners that themselves
    /// use SO_REUSEPORT, as a second ferrocache would) is refused.
    #[test]
    fn a_port_another_server_uses_is_refused_even_with_reuseport() {
        let (bound, _held) = bind_all(&["127.0.0.1:0".parse().unwrap()], 2, 16).unwrap();
        let e = bind_all(&bound, 2, 16).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
    }

    #[test]
    fn an_address_in_use_is_a_bind_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind_all(&[addr], 1, 16).unwrap_err();
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }
}

#[cfg(test)]
mod transport_tests {
    use super::*;

    #[test]
    fn udp_port_zero_is_shared_and_a_served_port_is_refused() {
        let (bound, per) = bind_udp_all(&["127.0.0.1:0".parse().unwrap()], 3).unwrap();
        assert_ne!(bound[0].port(), 0);
        for s in per.iter().flatten() {
            assert_eq!(s.local_addr().unwrap(), bound[0]);
        }
        let e = bind_udp_all(&bound, 1).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("ferrocache-{}-{name}.sock", std::process::id()))
    }

    #[test]
    fn unix_socket_gets_its_mask_and_a_live_one_is_refused() {
        let path = temp_path("live");
        let l = bind_unix(&path, 0o640, 16).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let e = bind_unix(&path, 0o700, 16).unwrap_err();
        assert!(e.to_string().contains("listening"), "{e}");
        drop(l);
        // Now stale: replaced.
        let _l = bind_unix(&path, 0o700, 16).unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_path_that_is_not_a_socket_is_left_alone() {
        let path = temp_path("file");
        std::fs::write(&path, b"keep me").unwrap();
        assert!(bind_unix(&path, 0o700, 16).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        let _ = std::fs::remove_file(&path);
    }
}
