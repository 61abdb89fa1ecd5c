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

use std::io;
use std::net::{SocketAddr, TcpListener};

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
