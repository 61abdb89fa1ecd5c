//! The log lines a watcher receives, one function per event, in
//! memcached's `key=value` layout (see `doc/protocol.txt`, "Watchers").
//! Pure: bytes in, bytes out. Keys are URI-encoded, so a line never holds
//! a space or a line end that a key brought in.

use std::io::Write as _;
use std::net::SocketAddr;

use crate::storage::{uri_encode, Eviction, StoreMode, StoreOutcome};

/// Why a connection closed, as `conn_close` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Bad input, a write or read error, a reply past the output cap, a
    /// client that stopped reading.
    Error,
    /// The client hung up or sent `quit`.
    Normal,
    /// Idle past `-o idle_timeout`.
    IdleTimeout,
    /// The server is shutting down.
    Shutdown,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Error => "error",
            CloseReason::Normal => "normal",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// One event, borrowed from where it happened.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// An item looked up by key: its slab class and value length if found.
    Get {
        key: &'a [u8],
        found: Option<(u8, usize)>,
        fd: i32,
    },
    /// A storage command's outcome; `ttl` is seconds left (0: none).
    Store {
        key: &'a [u8],
        mode: StoreMode,
        outcome: StoreOutcome,
        ttl: u32,
        class: u8,
        size: usize,
        fd: i32,
    },
    /// An item evicted to make room.
    Evicted(&'a Eviction<'a>),
    /// A connection opened; `peer` is `None` for a unix-socket client.
    ConnNew {
        peer: Option<SocketAddr>,
        fd: i32,
    },
    ConnClose {
        peer: Option<SocketAddr>,
        fd: i32,
        reason: CloseReason,
    },
}

/// Timestamp of a line: seconds and microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub secs: u64,
    pub micros: u32,
}

fn store_status(o: StoreOutcome) -> &'static str {
    match o {
        StoreOutcome::Stored => "stored",
        StoreOutcome::NotStored => "not_stored",
        StoreOutcome::Exists => "exists",
        StoreOutcome::NotFound => "not_found",
        StoreOutcome::TooLarge => "too_large",
        StoreOutcome::OutOfMemory => "no_memory",
    }
}

fn store_cmd(m: StoreMode) -> &'static str {
    match m {
        StoreMode::Set => "set",
        StoreMode::Add => "add",
        StoreMode::Replace => "replace",
        StoreMode::Append(_) => "append",
        StoreMode::Prepend(_) => "prepend",
        StoreMode::Cas(_) | StoreMode::CasInvalidate(_) => "cas",
    }
}

/// Appends the line for `ev` (ending in `\n`) to `out`. The microseconds
/// are not zero-padded, as memcached prints them (`ts=%lld.%d`).
pub fn line(ev: &Event<'_>, ts: Stamp, gid: u64, out: &mut Vec<u8>) {
    let _ = write!(out, "ts={}.{} gid={gid} ", ts.secs, ts.micros);
    let key = |out: &mut Vec<u8>, k: &[u8]| {
        out.extend_from_slice(b"key=");
        uri_encode(k, out);
    };
    // Writes to a Vec cannot fail.
    let _ = match *ev {
        Event::Get { key: k, found, fd } => {
            out.extend_from_slice(b"type=item_get ");
            key(out, k);
            let (status, class, size) = match found {
                Some((class, size)) => ("found", class, size),
                None => ("not_found", 0, 0),
            };
            writeln!(out, " status={status} clsid={class} cfd={fd} size={size}")
        }
        Event::Store { key: k, mode, outcome, ttl, class, size, fd } => {
            out.extend_from_slice(b"type=item_store ");
            key(out, k);
            writeln!(
                out,
                " status={} cmd={} ttl={ttl} clsid={class} cfd={fd} size={size}",
                store_status(outcome),
                store_cmd(mode)
            )
        }
        Event::Evicted(e) => {
            out.extend_from_slice(b"type=eviction ");
            key(out, e.key);
            let ttl = if e.exptime == 0 { -1 } else { i64::from(e.exptime) - i64::from(e.now) };
            let fetch = if e.fetched { "yes" } else { "no" };
            let la = e.now.saturating_sub(e.atime);
            writeln!(out, " fetch={fetch} ttl={ttl} la={la} clsid={} size={}", e.class, e.value_len)
        }
        Event::ConnNew { peer, fd } => {
            out.extend_from_slice(b"type=conn_new ");
            remote(out, peer);
            writeln!(out, " cfd={fd}")
        }
        Event::ConnClose { peer, fd, reason } => {
            out.extend_from_slice(b"type=conn_close ");
            remote(out, peer);
            writeln!(out, " reason={} cfd={fd}", reason.as_str())
        }
    };
}

/// `rip=... rport=... transport=...`; a unix-socket client is
/// `rip=unix rport=0 transport=local`, as memcached writes it.
fn remote(out: &mut Vec<u8>, peer: Option<SocketAddr>) {
    let _ = match peer {
        Some(a) => write!(out, "rip={} rport={} transport=tcp", a.ip(), a.port()),
        None => write!(out, "rip=unix rport=0 transport=local"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: Stamp = Stamp { secs: 1700000000, micros: 42 };

    fn text(ev: Event<'_>) -> String {
        let mut out = Vec::new();
        line(&ev, TS, 7, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fetch_lines() {
        assert_eq!(
            text(Event::Get { key: b"foo", found: None, fd: 9 }),
            "ts=1700000000.42 gid=7 type=item_get key=foo status=not_found clsid=0 cfd=9 size=0\n"
        );
        assert_eq!(
            text(Event::Get { key: b"n,foo", found: Some((3, 4)), fd: 9 }),
            "ts=1700000000.42 gid=7 type=item_get key=n%2Cfoo status=found clsid=3 cfd=9 size=4\n"
        );
    }

    #[test]
    fn store_lines() {
        let ev = Event::Store {
            key: b"vfoo",
            mode: StoreMode::Cas(5),
            outcome: StoreOutcome::Exists,
            ttl: 100,
            class: 1,
            size: 4,
            fd: 12,
        };
        assert_eq!(
            text(ev),
            "ts=1700000000.42 gid=7 type=item_store key=vfoo status=exists cmd=cas ttl=100 clsid=1 cfd=12 size=4\n"
        );
    }

    #[test]
    fn a_key_of_250_hashes_encodes_to_750_bytes() {
        let key = [b'#'; 250];
        let l = text(Event::Store {
            key: &key,
            mode: StoreMode::Set,
            outcome: StoreOutcome::Stored,
            ttl: 0,
            class: 9,
            size: 9,
            fd: 1,
        });
        assert_eq!(l.split(' ').nth(3).unwrap().len(), 250 * 3 + "key=".len());
    }

    #[test]
    fn eviction_and_connection_lines() {
        let e = Eviction { key: b"k", fetched: false, exptime: 0, atime: 10, now: 15, class: 2, value_len: 11 };
        assert_eq!(
            text(Event::Evicted(&e)),
            "ts=1700000000.42 gid=7 type=eviction key=k fetch=no ttl=-1 la=5 clsid=2 size=11\n"
        );
        let e = Eviction { exptime: 20, fetched: true, ..e };
        assert!(text(Event::Evicted(&e)).contains(" fetch=yes ttl=5 la=5 "));
        let peer = Some("127.0.0.1:5000".parse().unwrap());
        assert_eq!(
            text(Event::ConnNew { peer, fd: 30 }),
            "ts=1700000000.42 gid=7 type=conn_new rip=127.0.0.1 rport=5000 transport=tcp cfd=30\n"
        );
        assert_eq!(
            text(Event::ConnClose { peer, fd: 30, reason: CloseReason::Normal }),
            "ts=1700000000.42 gid=7 type=conn_close rip=127.0.0.1 rport=5000 transport=tcp reason=normal cfd=30\n"
        );
        assert_eq!(
            text(Event::ConnNew { peer: None, fd: 9 }),
            "ts=1700000000.42 gid=7 type=conn_new rip=unix rport=0 transport=local cfd=9\n"
        );
    }
}
