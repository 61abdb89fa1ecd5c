//! Requests and replies shared by the protocol encodings.
//!
//! A parser turns bytes into a [`Request`] that borrows keys and data from
//! the read buffer; `dispatch.rs` runs it against the store and writes the
//! reply with the matching composer. Nothing here does I/O or touches the
//! store.

pub mod base64;
pub mod binary;
pub mod text;

use std::borrow::Cow;
use std::fmt::Display;

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
    /// `-o strict_protocol`: close the connection after a storage command
    /// whose data cannot be framed (no readable length, data not ending
    /// where declared), so no data line is ever read as a command. Off, as
    /// in memcached: the error is sent and the connection goes on (a data
    /// block of known length is skipped; without a length, the next line
    /// is a command).
    pub strict: bool,
}

/// memcached closes a connection whose command line passes 2048 bytes
/// without a newline (its `try_read_command_ascii`).
pub const DEFAULT_MAX_LINE: usize = 2048;
/// Multigets may be long, but not unbounded: 1 MiB of keys (over 4000
/// maximal keys) before the connection is closed.
pub const DEFAULT_MAX_GET_LINE: usize = 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits { max_value: 1024 * 1024, max_line: DEFAULT_MAX_LINE, max_get_line: DEFAULT_MAX_GET_LINE, strict: false }
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

/// The keys of a retrieval, already validated, borrowed from the request:
/// a space-separated list (text) or one key that may hold any byte (binary).
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    bytes: &'a [u8],
    single: bool,
}

impl<'a> Keys<'a> {
    /// Space-separated keys.
    pub fn list(bytes: &'a [u8]) -> Keys<'a> {
        Keys { bytes, single: false }
    }

    /// Exactly one key.
    pub fn one(key: &'a [u8]) -> Keys<'a> {
        Keys { bytes: key, single: true }
    }

    /// The keys in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> {
        let single = self.single.then_some(self.bytes);
        let list = (!self.single).then(|| self.bytes.split(|&b| b == b' ').filter(|k| !k.is_empty()));
        single.into_iter().chain(list.into_iter().flatten())
    }
}

/// Two key lists are equal when they hold the same keys in the same order,
/// however they were parsed.
impl PartialEq for Keys<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Keys<'_> {}

/// The meta commands (text protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaCommand {
    /// `mg`
    Get,
    /// `ms`
    Set,
    /// `md`
    Delete,
    /// `ma`
    Arith,
    /// `me`
    Debug,
}

/// A meta command's flags, parsed, plus the raw flag tokens so that return
/// flags go back in the order they were asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaFlags<'a> {
    /// The flag tokens as sent.
    pub raw: &'a [u8],
    /// `b`: the key is base64.
    pub base64: bool,
    /// `q`: no nominal reply (EN for mg, HD for ms/md/ma).
    pub quiet: bool,
    /// `v`: return the value.
    pub value: bool,
    /// `u`: no LRU bump.
    pub no_bump: bool,
    /// `I`: invalidate (mark stale).
    pub invalidate: bool,
    /// `x`: remove the value, keep the item (md).
    pub remove_value: bool,
    /// `N`: vivify on miss with this exptime.
    pub vivify: Option<i64>,
    /// `R`: recache threshold.
    pub recache: Option<i64>,
    /// `T`: new exptime.
    pub ttl: Option<i64>,
    /// `C`: compare CAS.
    pub compare_cas: Option<u64>,
    /// `F`: client flags (ms).
    pub client_flags: u32,
    /// `M`: mode character.
    pub mode: Option<u8>,
    /// `J`: initial value (ma).
    pub initial: u64,
    /// `D`: delta (ma), default 1.
    pub delta: u64,
}

impl<'a> MetaFlags<'a> {
    /// The flag tokens in request order.
    pub fn tokens(&self) -> impl Iterator<Item = &'a [u8]> {
        self.raw.split(|&b| b == b' ').filter(|t| !t.is_empty())
    }
}

/// What a meta reply can report about an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaInfo {
    pub flags: u32,
    pub cas: u64,
    /// Seconds left to live, -1 for never.
    pub ttl: i64,
    /// Seconds since the previous access.
    pub last_access: u32,
    /// Read before.
    pub fetched: bool,
    /// Value length.
    pub value_len: usize,
    /// Marked stale (`X`).
    pub stale: bool,
    /// Another client already won the recache (`Z`).
    pub token_sent: bool,
    /// This client wins the recache (`W`).
    pub won: bool,
    /// Slab class and total bytes, for `me`.
    pub class: u8,
    pub size: usize,
}

/// Meta reply codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaCode {
    /// Value follows.
    Va,
    /// Success, no value.
    Hd,
    /// Miss (mg).
    En,
    /// Not stored.
    Ns,
    /// CAS mismatch.
    Ex,
    /// Not found.
    Nf,
    /// `mn` reply.
    Mn,
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
    /// delete; a non-zero `cas` must match (binary protocol).
    Delete {
        key: &'a [u8],
        cas: u64,
        noreply: bool,
    },
    /// incr. Binary requests may carry a CAS to match, and an initial value
    /// and exptime to create a missing key with.
    Incr {
        key: &'a [u8],
        delta: u64,
        initial: Option<(u64, i64)>,
        cas: u64,
        noreply: bool,
    },
    /// decr, as incr.
    Decr {
        key: &'a [u8],
        delta: u64,
        initial: Option<(u64, i64)>,
        cas: u64,
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
    /// `refresh_certs`: reload the TLS certificate and key (text only).
    RefreshCerts {
        noreply: bool,
    },
    /// Binary no-op.
    Noop,
    /// A meta command (`mg ms md ma me`); `data` is the value of `ms`.
    Meta {
        command: MetaCommand,
        key: Cow<'a, [u8]>,
        data: &'a [u8],
        flags: MetaFlags<'a>,
    },
    /// `mn`
    MetaNoop,
    /// `config get cluster`
    ConfigGet,
    /// `config set cluster 0 <bytes>` and its data.
    ConfigSet {
        data: &'a [u8],
    },
    /// `config delete cluster`
    ConfigDelete,
    /// `ferrocache_replica`: the connection carries copies from another
    /// node (`--replicas`); what is written on it is not copied again.
    ReplicaMark,
    /// An admin command (`slabs ...`, `lru_crawler ...`).
    Admin(AdminCommand<'a>),
    /// A refused request whose data must be discarded after the reply.
    InvalidData {
        error: ProtocolError,
        swallow: usize,
        noreply: bool,
    },
    /// A refused request after which the connection is closed, in both
    /// encodings: a binary packet whose lengths or shape are wrong, and,
    /// under [`Limits::strict`], a text storage command without a usable
    /// length or with data not ending where declared.
    Fatal {
        error: ProtocolError,
        noreply: bool,
    },
    /// Binary SASL: list mechanisms.
    SaslListMechs,
    /// Binary SASL auth (`step` false) or step (true).
    SaslAuth {
        mech: &'a [u8],
        data: &'a [u8],
        step: bool,
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

impl Request<'_> {
    /// Whether the client asked for no reply (text `noreply`, binary quiet).
    pub fn noreply(&self) -> bool {
        match *self {
            Request::Store { noreply, .. }
            | Request::Delete { noreply, .. }
            | Request::Incr { noreply, .. }
            | Request::Decr { noreply, .. }
            | Request::Touch { noreply, .. }
            | Request::FlushAll { noreply, .. }
            | Request::Verbosity { noreply, .. }
            | Request::CacheMemlimit { noreply, .. }
            | Request::RefreshCerts { noreply }
            | Request::TooLarge { noreply, .. }
            | Request::InvalidData { noreply, .. }
            | Request::Fatal { noreply, .. }
            | Request::Invalid { noreply, .. } => noreply,
            _ => false,
        }
    }
}

/// The admin commands (text protocol only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminCommand<'a> {
    /// `slabs reassign <src> <dst>` (32-bit signed ids; -1: any source).
    SlabsReassign { src: i64, dst: i64 },
    /// `slabs automove <0|1|2>`.
    SlabsAutomove { mode: u8 },
    /// `lru_crawler enable` (true) | `lru_crawler disable` (false).
    CrawlerEnable(bool),
    /// `lru_crawler crawl <classes>`: `all` or ids joined by commas.
    CrawlerCrawl { classes: &'a [u8] },
    /// `lru_crawler metadump <classes>`: as crawl, or `hash`.
    CrawlerMetadump { classes: &'a [u8] },
    /// `watch [fetchers|mutations|evictions|connevents|...]`: the
    /// [`watch_class`] bits asked for.
    Watch { classes: u8 },
    /// `snapshot [NAME]`: write a backup of the cache while serving (the
    /// warm-restart file, or NAME.snapshot in the snapshot directory).
    Snapshot { name: Option<&'a [u8]> },
}

/// The event classes of `watch`, one bit each.
pub mod watch_class {
    /// Items looked up (gets, and the lookup a storage command makes).
    pub const FETCHERS: u8 = 1;
    /// Storage commands' outcomes.
    pub const MUTATIONS: u8 = 2;
    /// Items evicted for space.
    pub const EVICTIONS: u8 = 4;
    /// Connections opened and closed.
    pub const CONNEVENTS: u8 = 8;
    /// `sysevents`: accepted; nothing is logged in this class yet.
    pub const SYSEVENTS: u8 = 16;
    /// `rawcmds`: accepted; nothing is logged in this class yet.
    pub const RAWCMDS: u8 = 32;
    /// `proxyreqs|proxyevents|proxyuser`: accepted; there is no proxy.
    pub const PROXY: u8 = 64;
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
    /// Binary: a packet whose fields do not fit its opcode (EINVAL; sent
    /// as [`Request::Fatal`], so the connection closes, as memcached's does).
    BadPacket,
    /// Binary: extras + key longer than the body (unknown command; sent as
    /// [`Request::Fatal`]).
    BadLengths,
    /// Meta: `CLIENT_ERROR invalid flag`
    MetaInvalidFlag,
    /// Meta: `CLIENT_ERROR duplicate flag`
    MetaDuplicateFlag,
    /// Meta md/ma: `CLIENT_ERROR invalid or duplicate flag`
    MetaInvalidOrDuplicateFlag,
    /// Meta: `CLIENT_ERROR bad token in command line format`
    MetaBadToken,
    /// Meta: `CLIENT_ERROR incorrect length for M token`
    MetaModeLength,
    /// Meta: `CLIENT_ERROR invalid mode for ms M token`
    MetaSetMode,
    /// Meta: `CLIENT_ERROR invalid mode for ma M token`
    MetaArithMode,
    /// Meta: `CLIENT_ERROR opaque token too long`
    MetaOpaqueTooLong,
    /// Meta: `CLIENT_ERROR error decoding key`
    MetaKeyDecode,
    /// Meta: `CLIENT_ERROR options flags are too long`
    MetaTooManyFlags,
}

/// Outcomes that become a reply line (text) or a status (binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Stored,
    NotStored,
    Exists,
    NotFound,
    Deleted,
    Ok,
    Reset,
    TooLarge,
    OutOfMemory,
    DeltaOutOfMemory,
    NonNumeric,
    ShutdownDisabled,
    InvalidShutdown,
    FlushDisabled,
    MemlimitTooSmall,
    DetailNotAllowed,
    DetailUsage,
    DumpNotAllowed,
    IllegalSlabId,
    /// Authentication succeeded.
    AuthOk,
    /// Wrong credentials.
    AuthFailed,
    /// A command before authentication.
    Unauthenticated,
    /// `SERVER_ERROR out of memory writing get response`: a retrieval
    /// whose reply would pass the connection's output cap.
    ReplyTooLarge,
    /// Text auth: the data is not `user password`.
    AuthBadFormat,
    /// Text auth: the data does not end in `\r\n`.
    AuthBadTermination,
}

/// How dispatch writes replies: one implementation per encoding. The
/// encoder knows the request's `noreply`/quiet flag and applies it, so
/// dispatch never asks which protocol it serves.
pub trait Reply {
    /// A retrieval hit; `cas` is shown when `Some`.
    fn value(&mut self, key: &[u8], flags: u32, cas: Option<u64>, data: &[u8]);
    /// A retrieval miss.
    fn miss(&mut self, key: &[u8]);
    /// After the last key of a retrieval.
    fn end(&mut self);
    /// A status reply; `cas` is the item's new CAS where there is one.
    fn status(&mut self, status: Status, cas: u64);
    /// The result of incr/decr.
    fn number(&mut self, n: u64, cas: u64);
    /// A touch hit.
    fn touched(&mut self, flags: u32, cas: u64);
    /// The version string.
    fn version(&mut self, version: &str);
    /// One statistic.
    fn stat(&mut self, name: &str, value: &dyn Display);
    /// After the last statistic.
    fn stats_end(&mut self);
    /// Raw reply bytes (auto-discovery's `CONFIG` reply; text only).
    fn raw(&mut self, bytes: &[u8]) {
        let _ = bytes;
        self.error(ProtocolError::UnknownCommand);
    }
    /// The `stats detail dump` text (`PREFIX ...` lines and `END`): sent
    /// as is in text; binary sends it as the value of one stat,
    /// `detailed`, as memcached does.
    fn detail_dump(&mut self, dump: &str) {
        self.stat("detailed", &dump);
        self.stats_end();
    }
    /// One `stats cachedump` line.
    fn dump_item(&mut self, key: &[u8], len: usize, exptime: u64);
    /// A refused request.
    fn error(&mut self, error: ProtocolError);
    /// SASL mechanisms offered.
    fn sasl_mechs(&mut self, mechs: &str);
    /// The connection closes after this request (quit).
    fn quit(&mut self);
    /// Bytes of output queued so far (for the output cap).
    fn queued(&self) -> usize;
    /// Drops output queued after `mark` (a reply abandoned half way).
    fn truncate(&mut self, mark: usize);
    /// A meta reply: `code`, then the return flags `flags` asks for, from
    /// `item` where there is one, then the value for `VA`. Only the text
    /// protocol has meta commands.
    fn meta(
        &mut self,
        command: MetaCommand,
        code: MetaCode,
        key: &[u8],
        flags: &MetaFlags<'_>,
        item: Option<&MetaInfo>,
        value: Option<&[u8]>,
    ) {
        let _ = (command, code, key, flags, item, value);
        self.error(ProtocolError::UnknownCommand);
    }
    /// The `me` reply (`None`: miss).
    fn meta_debug(&mut self, key: &[u8], flags: &MetaFlags<'_>, item: Option<&MetaInfo>) {
        let _ = (key, flags, item);
        self.error(ProtocolError::UnknownCommand);
    }
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
    /// A binary connection sent a packet that is not a request.
    BadMagic,
}
