//! Requests and replies shared by the protocol encodings.
//!
//! A parser turns bytes into a [`Request`] that borrows keys and data from
//! the read buffer; `dispatch.rs` runs it against the store and writes the
//! reply with the matching composer. Nothing here does I/O or touches the
//! store.

pub mod text;

/// Limits a parser enforces before buffering anything.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest value a storage command may carry before it is refused with
    /// `SERVER_ERROR object too large for cache` (its data is swallowed).
    pub max_value: usize,
    /// Longest command line without a newline, except retrieval commands.
    pub max_line: usize,
    /// Longest `get`/`gets`/`gat`/`gats` line.
    pub max_get_line: usize,
}

/// memcached closes a connection whose command line passes 2048 bytes
/// without a newline (its `try_read_command_ascii`).
pub const DEFAULT_MAX_LINE: usize = 2048;
/// Multigets may be long, but not unbounded: 1 MiB of keys (over 4000
/// maximal keys) before the connection is closed.
pub const DEFAULT_MAX_GET_LINE: usize = 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits { max_value: 1024 * 1024, max_line: DEFAULT_MAX_LINE, max_get_line: DEFAULT_MAX_GET_LINE }
    }
}

/// The storage commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreCommand {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// A space-separated key list, already validated, borrowed from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys<'a>(pub &'a [u8]);

impl<'a> Keys<'a> {
    /// The keys in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> {
        self.0.split(|&b| b == b' ').filter(|k| !k.is_empty())
    }
}

/// One client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// get/gets (`cas`: gets).
    Get {
        keys: Keys<'a>,
        cas: bool,
    },
    /// gat/gats: get and set the exptime.
    Gat {
        exptime: i64,
        keys: Keys<'a>,
        cas: bool,
    },
    /// set/add/replace/append/prepend/cas.
    Store {
        command: StoreCommand,
        key: &'a [u8],
        flags: u32,
        exptime: i64,
        data: &'a [u8],
        cas: u64,
        noreply: bool,
    },
    Delete {
        key: &'a [u8],
        noreply: bool,
    },
    Incr {
        key: &'a [u8],
        delta: u64,
        noreply: bool,
    },
    Decr {
        key: &'a [u8],
        delta: u64,
        noreply: bool,
    },
    Touch {
        key: &'a [u8],
        exptime: i64,
        noreply: bool,
    },
    FlushAll {
        exptime: i64,
        noreply: bool,
    },
    Version,
    Verbosity {
        level: u32,
        noreply: bool,
    },
    Quit,
    /// `stats` and its argument words (possibly empty).
    Stats {
        args: &'a [u8],
    },
    /// `shutdown [graceful]`; `valid` is false for any other argument.
    Shutdown {
        graceful: bool,
        valid: bool,
    },
    CacheMemlimit {
        megabytes: u64,
        noreply: bool,
    },
    /// A storage command whose value is over the limit: answered with
    /// `SERVER_ERROR object too large for cache`, its `swallow` data bytes
    /// discarded as they arrive. A `set` also drops the key's old value.
    TooLarge {
        key: &'a [u8],
        set: bool,
        swallow: usize,
        noreply: bool,
    },
    /// A request refused with an error reply; the connection goes on.
    Invalid {
        error: ProtocolError,
        noreply: bool,
    },
}

/// Error replies, as memcached words them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// `ERROR`: unknown command or wrong number of tokens.
    UnknownCommand,
    /// `CLIENT_ERROR bad command line format`
    BadFormat,
    /// `CLIENT_ERROR bad data chunk`: data not followed by `\r\n`.
    BadDataChunk,
    /// `CLIENT_ERROR invalid exptime argument`
    InvalidExptime,
    /// `CLIENT_ERROR invalid numeric delta argument`
    InvalidDelta,
    /// `CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]`
    DeleteUsage,
    /// `CLIENT_ERROR bad command line`: malformed `stats cachedump`.
    BadCommandLine,
}

/// Why a parser could not produce a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a whole request yet; read more. The buffer is under the limits.
    Incomplete,
    /// The connection must be closed: a line past the limits, or an HTTP
    /// request (memcached hangs up on those too).
    Close(CloseReason),
}

/// Why a connection is closed over its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    LineTooLong,
    Http,
}
