//! Startup and runtime errors of the daemon (not protocol errors: those are
//! replies, see `protocol::ProtocolError`).

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why the daemon could not start or had to stop.
#[derive(Debug)]
pub enum Error {
    /// The command line could not be parsed (also `--help`/`--version`).
    Usage(clap::Error),
    /// A flag's value is invalid.
    Config(String),
    /// Binding or listening on an address failed.
    Bind { addr: SocketAddr, source: io::Error },
    /// Binding or listening on a unix socket (`-s`) failed.
    Unix { path: std::path::PathBuf, source: io::Error },
    /// Dropping privileges (`-u`) failed.
    User(String),
    /// The `-u` user does not exist (exit 67, memcached's EX_NOUSER).
    NoUser(String),
    /// Any other I/O failure at startup.
    Io { what: &'static str, source: io::Error },
    /// The TLS certificate, key or CA could not be loaded (exit 64, as
    /// memcached's EX_USAGE).
    Tls(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(e) => write!(f, "{e}"),
            Error::Config(msg) => write!(f, "{msg}"),
            Error::Bind { addr, source } => write!(f, "failed to listen on {addr}: {source}"),
            Error::Unix { path, source } => write!(f, "failed to listen on unix socket {}: {source}", path.display()),
            Error::User(msg) | Error::NoUser(msg) | Error::Tls(msg) => write!(f, "{msg}"),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Usage(e) => Some(e),
            Error::Bind { source, .. } | Error::Unix { source, .. } | Error::Io { source, .. } => Some(source),
            Error::Config(_) | Error::User(_) | Error::NoUser(_) | Error::Tls(_) => None,
        }
    }
}
