//! Command line -> validated [`Config`].
//!
//! Flags use memcached's spellings (`doc/memcached.1`), short and long, so
//! existing command lines and init scripts start ferrocache unchanged.
//! Every memcached flag and `-o` option is honoured, accepted where
//! ferrocache already behaves that way, or refused at start with the
//! reason (exit 64); nothing is ignored silently. The table is in
//! `docs/protocol-notes.md` ("Flags"). `--config-file` reads Debian's
//! `/etc/memcached.conf` ([`mod@file`]); `-o` is parsed in [`extended`]. Each
//! component gets only its section ([`ServerConfig`], [`StoreConfig`]).

pub mod extended;
pub mod file;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{ArgAction, Parser};

use crate::auth::Credentials;
use crate::error::Error;
use crate::protocol::{Limits, DEFAULT_MAX_GET_LINE, DEFAULT_MAX_LINE};
use crate::storage::{item::HEADER_LEN, StoreConfig, MEGABYTE};

pub use file::FileArgs;

/// The memcached version whose protocol we speak; `version` and `stats`
/// report it, because clients pick features from it.
pub const MEMCACHED_VERSION: &str = "1.6.18";

/// Seconds a client may leave a full output buffer unread (`-o write_timeout`).
pub const DEFAULT_WRITE_TIMEOUT: u32 = 30;
/// `--snapshot-rate`, megabytes a second: a backup of a million 1 KB items
/// (1.04 GB) takes about 16 s, a 10 GB cache under 3 minutes, and the disk
/// keeps most of its bandwidth (an SSD writes 500 MB/s or more, a cloud
/// volume's baseline is typically 125 MB/s) for everything else.
pub const DEFAULT_SNAPSHOT_RATE: u64 = 64;
/// Output a connection may queue, at least (2 x `-I` when that is more).
pub const MIN_OUTPUT_CAP: usize = 16 * 1024 * 1024;

/// Command-line flags, as memcached spells them.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "ferrocache",
    version,
    about = "A memcached-compatible cache daemon",
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true,
    infer_long_args = true
)]
pub struct Args {
    /// TCP port to listen on (0: no TCP; -1: pick a free one)
    #[arg(short = 'p', long = "port", allow_negative_numbers = true)]
    pub port: Option<i32>,
    /// UDP port (0, the default: no UDP; -1: pick a free one); also the TCP
    /// port when -p is not given
    #[arg(short = 'U', long = "udp-port", allow_negative_numbers = true)]
    pub udp_port: Option<i32>,
    /// unix-socket path to listen on (disables TCP and UDP)
    #[arg(short = 's', long = "unix-socket")]
    pub unix_socket: Option<PathBuf>,
    /// Access mask of the unix socket, in octal
    #[arg(short = 'a', long = "unix-mask", default_value = "0700")]
    pub unix_mask: String,
    /// Interfaces to listen on, comma separated (IPv4 or IPv6; default:
    /// all, 0.0.0.0); given again, it adds to the list, as memcached's does
    #[arg(short = 'l', long = "listen", action = clap::ArgAction::Append)]
    pub listen: Vec<String>,
    /// Item memory in megabytes
    #[arg(short = 'm', long = "memory-limit", default_value = "64", allow_negative_numbers = true)]
    pub memory_limit: String,
    /// Max simultaneous connections
    #[arg(short = 'c', long = "conn-limit", default_value_t = 1024, allow_negative_numbers = true)]
    pub conn_limit: i64,
    /// Number of event-loop threads (default: number of cores)
    #[arg(short = 't', long = "threads", allow_negative_numbers = true)]
    pub threads: Option<i64>,
    /// Return an error on memory exhausted instead of evicting
    #[arg(short = 'M', long = "disable-evictions")]
    pub disable_evictions: bool,
    /// Largest item size, and the slab page size (k/m suffix allowed)
    #[arg(short = 'I', long = "max-item-size", default_value = "1m")]
    pub max_item_size: String,
    /// Chunk size growth factor
    #[arg(short = 'f', long = "slab-growth-factor", default_value_t = 1.25)]
    pub factor: f64,
    /// Minimum space for key + value + flags in the smallest chunk
    #[arg(short = 'n', long = "slab-min-size", default_value_t = 48, allow_negative_numbers = true)]
    pub min_size: i64,
    /// Disable CAS
    #[arg(short = 'C', long = "disable-cas")]
    pub disable_cas: bool,
    /// Max requests handled per connection per event
    #[arg(short = 'R', long = "max-reqs-per-event", default_value_t = 20, allow_negative_numbers = true)]
    pub reqs_per_event: i64,
    /// Listen backlog, passed to listen(2) as given (the kernel caps it at
    /// net.core.somaxconn, and reads a negative one as that cap)
    #[arg(short = 'b', long = "listen-backlog", default_value_t = 1024, allow_negative_numbers = true)]
    pub backlog: i32,
    /// Verbose (-v), very verbose (-vv), extremely verbose (-vvv)
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
    /// Enable the `shutdown` command
    #[arg(short = 'A', long = "enable-shutdown")]
    pub enable_shutdown: bool,
    /// Disable `flush_all`
    #[arg(short = 'F', long = "disable-flush-all")]
    pub disable_flush_all: bool,
    /// Disable `stats cachedump`
    #[arg(short = 'X', long = "disable-dumping")]
    pub disable_dumping: bool,
    /// Refuse `watch` (live log streams)
    #[arg(short = 'W', long = "disable-watch")]
    pub disable_watch: bool,
    /// Run as this user when started as root
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Protocol: auto (default), ascii or binary
    #[arg(short = 'B', long = "protocol")]
    pub protocol: Option<String>,
    /// Run as a daemon (detach from the terminal)
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Write the process id to this file
    #[arg(short = 'P', long = "pidfile")]
    pub pidfile: Option<PathBuf>,
    /// Lock down all paged memory (mlockall)
    #[arg(short = 'k', long = "lock-memory")]
    pub lock_memory: bool,
    /// Large memory pages (refused: not supported)
    #[arg(short = 'L', long = "enable-largepages")]
    pub large_pages: bool,
    /// Stats prefix delimiter (its first byte); also turns on `stats detail`
    #[arg(short = 'D')]
    pub prefix_delimiter: Option<String>,
    /// Maximize the core file limit
    #[arg(short = 'r', long = "enable-coredumps")]
    pub enable_coredumps: bool,
    /// Print the license and exit
    #[arg(short = 'i', long = "license")]
    pub license: bool,
    /// Restartable cache: on SIGUSR1 write every item to FILE (and FILE.meta),
    /// load them at the next start (warm restart, as --snapshot-file)
    #[arg(short = 'e', long = "memory-file")]
    pub memory_file: Option<PathBuf>,
    /// Number of NAPI ids (refused: not supported)
    #[arg(short = 'N', long = "napi-ids")]
    pub napi_ids: Option<String>,
    /// Extended options, comma separated (see docs/protocol-notes.md, Flags):
    /// idle_timeout=N, hashpower=N, no_hashexpand, lru_crawler,
    /// slab_reassign, slab_automove=0|1|2, slab_automove_ratio=R, no_modern,
    /// ssl_chain_cert=FILE, ssl_key=FILE, ssl_ca_cert=FILE, ssl_verify_mode=N, ...
    #[arg(short = 'o', long = "extended", action = ArgAction::Append)]
    pub extended: Vec<String>,
    /// Read Debian's /etc/memcached.conf format first (one flag per line,
    /// `logfile PATH`); flags given here add to or override it
    #[arg(long = "config-file")]
    pub config_file: Option<PathBuf>,
    /// Serve TLS on every TCP listener but those given as notls:ADDR
    /// (see -o ssl_chain_cert, ssl_key, ssl_ca_cert, ssl_verify_mode...)
    #[arg(short = 'Z', long = "enable-ssl")]
    pub enable_ssl: bool,
    /// Require SASL PLAIN authentication (binary protocol only)
    #[arg(short = 'S', long = "enable-sasl")]
    pub sasl: bool,
    /// SASL password file of user:password lines (default: $MEMCACHED_SASL_PWDB)
    #[arg(long = "sasl-pwdb")]
    pub sasl_pwdb: Option<PathBuf>,
    /// Text-protocol authentication: a file of user:password lines
    #[arg(short = 'Y', long = "auth-file")]
    pub auth_file: Option<PathBuf>,
    /// Warm restart: write every item here at shutdown, load it at start
    #[arg(long = "snapshot-file")]
    pub snapshot_file: Option<PathBuf>,
    /// Also write the --snapshot-file every SECONDS while serving, so a
    /// crash loses at most that much (0: only at shutdown)
    #[arg(long = "snapshot-interval", value_name = "SECONDS", default_value_t = 0)]
    pub snapshot_interval: u64,
    /// Where `snapshot NAME` writes NAME.snapshot (default: the directory
    /// of --snapshot-file or -e)
    #[arg(long = "snapshot-dir", value_name = "DIR")]
    pub snapshot_dir: Option<PathBuf>,
    /// `snapshot NAME` is refused while the snapshot directory holds this
    /// many *.snapshot files or more (0: no limit); each is a full copy
    #[arg(long = "snapshot-max-named", value_name = "N", default_value_t = 16)]
    pub snapshot_max_named: usize,
    /// Write a backup while serving (`snapshot`, SIGUSR2, --snapshot-interval)
    /// at most this many megabytes a second (0: no limit); the snapshot at
    /// shutdown is never held back
    #[arg(long = "snapshot-rate", value_name = "MB/s", default_value_t = DEFAULT_SNAPSHOT_RATE)]
    pub snapshot_rate: u64,
    /// Serve Prometheus metrics over HTTP on this port (0: pick one)
    #[arg(long = "metrics-port")]
    pub metrics_port: Option<u16>,
    /// Address for --metrics-port (default: the first -l address)
    #[arg(long = "metrics-listen")]
    pub metrics_listen: Option<IpAddr>,
    /// Auto-discovery: also listen on this port (ElastiCache's configuration
    /// endpoint; answers `config get cluster`)
    #[arg(long = "config-port")]
    pub config_port: Option<u16>,
    /// Auto-discovery: the cluster's nodes, one host|ip|port per line
    /// (re-read on SIGHUP and when it changes)
    #[arg(long = "cluster-file")]
    pub cluster_file: Option<PathBuf>,
    /// Health check interval for cluster nodes, in milliseconds
    #[arg(long = "health-interval-ms", default_value_t = 1000)]
    pub health_interval_ms: u64,
    /// Health check timeout, in milliseconds
    #[arg(long = "health-timeout-ms", default_value_t = 500)]
    pub health_timeout_ms: u64,
    /// Failed checks in a row that take a node out of the served list
    #[arg(long = "health-failures", default_value_t = 3)]
    pub health_failures: u32,
    /// Cluster node: follow the node list served by this discovery
    /// endpoint (HOST:PORT), polling `config get cluster`
    #[arg(long = "cluster-endpoint")]
    pub cluster_endpoint: Option<String>,
    /// How often --cluster-endpoint is polled, in milliseconds
    #[arg(long = "cluster-poll-ms", default_value_t = 1000)]
    pub cluster_poll_ms: u64,
    /// This node's entry in the cluster list (host:port as the list names
    /// it; default: matched by the listen addresses)
    #[arg(long = "node-id")]
    pub node_id: Option<String>,
    /// Copies of each write kept on other nodes: 0 (memcached's behaviour)
    /// or 1 (the key's successor on the ring)
    #[arg(long = "replicas", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub replicas: u8,
    /// Hash ring the cluster's clients use: ketama (libmemcached/pylibmc
    /// `ketama`), ketama_weighted (libmemcached/pylibmc `ketama_weighted`) or
    /// uhashring (python-memcached with uhashring, elasticache-pyclient)
    #[arg(long = "cluster-hash", default_value = "ketama")]
    pub cluster_hash: String,
    /// Warm join: items per second copied to a joining node (0: no limit)
    #[arg(long = "warm-rate", default_value_t = 0)]
    pub warm_rate: u64,
    /// Warm join: a joining node is served after this long even if its
    /// copy has not finished, in milliseconds
    #[arg(long = "warm-timeout-ms", default_value_t = 60_000)]
    pub warm_timeout_ms: u64,
    /// Endpoint membership from DNS: NAME:PORT, re-resolved every poll
    /// (A/AAAA records; SRV for _service._proto. names)
    #[arg(long = "cluster-dns")]
    pub cluster_dns: Option<String>,
    /// DNS server for --cluster-dns (default: the first nameserver of
    /// /etc/resolv.conf)
    #[arg(long = "dns-server")]
    pub dns_server: Option<SocketAddr>,
    /// Print the validated configuration and exit
    #[arg(long = "print-config")]
    pub print_config: bool,
    /// Print this help
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Print the version
    #[arg(short = 'V', long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,
}

/// Which protocols a connection may speak (`-B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolChoice {
    Auto,
    Ascii,
    Binary,
}

/// Settings for the listeners and event loops.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// TCP addresses (port 0: pick one); empty when TCP is off.
    pub listen: Vec<SocketAddr>,
    /// The `-l` list as given (`stats settings` `inter`); `None` without `-l`
    /// (all interfaces).
    pub inter: Option<String>,
    /// `-p` as given after memcached's rules: 0 no TCP, -1 any port.
    pub port: i32,
    /// UDP addresses (port 0: pick one); empty when UDP is off.
    pub udp: Vec<SocketAddr>,
    /// `-s`: the unix socket to listen on instead of TCP and UDP.
    pub unix_socket: Option<PathBuf>,
    /// `-a`: the unix socket's mode as given (`stats settings` `umask`); the
    /// socket gets its permission bits (0777), as memcached's does.
    pub unix_mask: u32,
    pub threads: usize,
    pub max_connections: usize,
    pub reqs_per_event: usize,
    pub backlog: i32,
    /// Seconds; 0 = never close idle connections.
    pub idle_timeout: u32,
    /// Seconds a connection may sit with a full output buffer that the
    /// client does not read before it is closed.
    pub write_timeout: u32,
    /// Most output bytes one connection may queue; a reply past it closes
    /// the connection.
    pub output_cap: usize,
    pub protocol: ProtocolChoice,
    pub enable_shutdown: bool,
    pub flush_enabled: bool,
    pub dump_enabled: bool,
    pub limits: Limits,
    /// `-U` as given after memcached's rules: 0 no UDP, -1 any port.
    pub udp_port: i32,
    /// `-o lru_crawler` (default) / `no_lru_crawler`: the background
    /// expiry crawler runs.
    pub lru_crawler: bool,
    /// Credentials when authentication is required (-S or -Y).
    pub auth: Option<Arc<Credentials>>,
    /// `-Y`: the file the credentials came from (`stats settings`
    /// `auth_enabled_ascii` names it, as memcached's does).
    pub auth_file: Option<PathBuf>,
    /// `-D`: the stats prefix delimiter; `stats detail` starts on with it.
    pub prefix_delimiter: Option<u8>,
    /// `watch` is allowed (`-W` refuses it).
    pub watch_enabled: bool,
    /// `-o worker_logbuf_size=KB`: each loop's log ring, in bytes.
    pub worker_logbuf_size: usize,
    /// `-o watcher_logbuf_size=KB`: unsent log bytes a watcher may hold.
    pub watcher_logbuf_size: usize,
    /// `-Z`: the TLS settings (`-o ssl_*`); `None` without `-Z`.
    pub tls: Option<crate::tls::TlsOptions>,
    /// Per `listen` address: served over TLS (with `-Z`, all but those
    /// given as `notls:ADDR`).
    pub listen_tls: Vec<bool>,
}

/// Everything the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StoreConfig,
    pub verbosity: u8,
    pub user: Option<String>,
    pub daemon: bool,
    pub pidfile: Option<PathBuf>,
    pub print_config: bool,
    /// `--snapshot-file`.
    pub snapshot_file: Option<PathBuf>,
    /// `--snapshot-interval`: a backup to `snapshot_file` this often.
    pub snapshot_interval: Option<std::time::Duration>,
    /// Where `snapshot NAME` writes: `--snapshot-dir`, or the directory
    /// of the warm-restart file.
    pub snapshot_dir: Option<PathBuf>,
    /// `--snapshot-max-named`: at most this many *.snapshot files in the
    /// snapshot directory before `snapshot NAME` is refused (0: no limit).
    pub snapshot_max_named: usize,
    /// `--snapshot-rate`, in bytes a second (0: no limit): how fast a
    /// backup written while serving may go.
    pub snapshot_rate: u64,
    /// `--metrics-port` on `--metrics-listen`.
    pub metrics: Option<SocketAddr>,
    /// Auto-discovery settings.
    pub discovery: crate::discovery::DiscoveryConfig,
    /// `--config-port`: the listen addresses with this port are added.
    pub config_port: Option<u16>,
    /// Cluster membership and replication (`--cluster-*`, `--replicas`).
    pub cluster: crate::cluster::ClusterConfig,
    /// `-e FILE`: warm restart on SIGUSR1, through FILE and FILE.meta.
    pub memory_file: Option<PathBuf>,
    /// `-k`: mlockall at start.
    pub lock_memory: bool,
    /// `-r`: raise the core file limit at start.
    pub enable_coredumps: bool,
    /// `logfile PATH` from `--config-file`: stderr is appended there.
    pub logfile: Option<PathBuf>,
    /// `-i`: print the license and exit.
    pub license: bool,
    /// Values `stats settings` reports that change nothing else.
    pub reported: Reported,
    /// Warnings found while reading the flags, logged once logging is up.
    pub warnings: Vec<String>,
}

/// Settings that only `stats settings` shows: given, checked, and
/// reported back, because ferrocache already behaves as they ask.
#[derive(Debug, Clone, Default)]
pub struct Reported {
    /// `-o hashpower`, 0 when not given (memcached's report).
    pub hashpower_init: u32,
    /// `-o slab_chunk_max`, or `-I` (the largest chunk here).
    pub slab_chunk_max: usize,
    /// `-o tail_repair_time`.
    pub tail_repair_time: u32,
}

/// Parses a size like `64`, `512k`, `1m`, `2g` (memcached's `-I` form).
/// `unit` scales a bare number.
pub fn parse_size(s: &str, unit: usize) -> Option<usize> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1024),
        'm' | 'M' => (&s[..s.len() - 1], 1024 * 1024),
        'g' | 'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, unit),
    };
    num.parse::<usize>().ok()?.checked_mul(mult)
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

/// A count that must be 1 or more (`-t`, `-c`, `-R`, `-n`): 0 and negative
/// numbers get memcached's message for the flag.
fn positive(v: i64, msg: &str) -> Result<usize, Error> {
    usize::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| bad(msg))
}

impl Config {
    /// Validates parsed flags.
    pub fn from_args(a: Args) -> Result<Config, Error> {
        let mut warnings = Vec::new();
        if a.config_file.is_some() {
            // parse_from reads the file when the flag is spelled in full on
            // the command line; an abbreviation, or the flag inside a
            // file, would reach here unread.
            return Err(bad("--config-file must be spelled in full, on the command line"));
        }
        let memory_limit = parse_size(&a.memory_limit, MEGABYTE)
            .filter(|&m| m > 0)
            .ok_or_else(|| bad(format!("invalid memory limit (-m): {}", a.memory_limit)))?;
        let item_size_max = parse_size(&a.max_item_size, 1)
            .ok_or_else(|| bad(format!("invalid max item size (-I): {}", a.max_item_size)))?;
        if item_size_max < 1024 {
            return Err(bad("Item max size cannot be less than 1024 bytes."));
        }
        if item_size_max > memory_limit / 2 {
            return Err(bad("Cannot set item size limit higher than 1/2 of memory max."));
        }
        if item_size_max > 1024 * MEGABYTE {
            return Err(bad("Cannot set item size limit higher than a gigabyte."));
        }
        if a.factor.is_nan() || a.factor <= 1.0 {
            return Err(bad("Factor must be greater than 1"));
        }
        let min_size = positive(a.min_size, "Chunk size must be greater than 0")?;
        if min_size + HEADER_LEN > item_size_max / 2 {
            return Err(bad(format!(
                "invalid slab min size (-n): {min_size}: at most half of -I less the item header"
            )));
        }
        let threads = match a.threads {
            Some(t) => positive(t, "Number of threads must be greater than 0")?,
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4),
        };
        if threads > 256 {
            return Err(bad("Number of threads must be 256 or fewer"));
        }
        let conn_limit = positive(a.conn_limit, "Maximum connections must be greater than 0")?;
        let reqs_per_event = positive(a.reqs_per_event, "Number of requests per event must be greater than 0")?;
        let protocol_given = a.protocol.is_some();
        let mut protocol = match a.protocol.as_deref().unwrap_or("auto") {
            "auto" => ProtocolChoice::Auto,
            "ascii" => ProtocolChoice::Ascii,
            "binary" => ProtocolChoice::Binary,
            other => {
                return Err(bad(format!(
                    "Invalid value for binding protocol: {other}\n -- should be one of auto, binary, or ascii"
                )))
            }
        };
        let auth = if a.sasl {
            // As memcached: SASL means binary only.
            if protocol_given && protocol != ProtocolChoice::Binary {
                return Err(bad("You cannot allow the ASCII protocol while using SASL."));
            }
            if a.udp_port.is_some_and(|p| p != 0) {
                return Err(bad("Cannot enable UDP while using binary SASL authentication."));
            }
            protocol = ProtocolChoice::Binary;
            let path = a
                .sasl_pwdb
                .clone()
                .or_else(|| std::env::var_os("MEMCACHED_SASL_PWDB").map(PathBuf::from))
                .or_else(|| a.auth_file.clone())
                .ok_or_else(|| bad("-S needs a password file: --sasl-pwdb FILE or MEMCACHED_SASL_PWDB"))?;
            Some(Arc::new(Credentials::load(&path).map_err(bad)?))
        } else if let Some(path) = &a.auth_file {
            Some(Arc::new(Credentials::load(path).map_err(bad)?))
        } else {
            None
        };
        if a.large_pages {
            return Err(bad(
                "-L is not supported: slab pages are allocated as needed, not preallocated in large pages",
            ));
        }
        // As memcached: the first byte counts, the rest is ignored.
        let prefix_delimiter = match a.prefix_delimiter.as_deref().map(str::as_bytes) {
            None => None,
            Some([b, ..]) => Some(*b),
            Some([]) => return Err(bad("No delimiter specified")),
        };
        if a.napi_ids.is_some() {
            return Err(bad("-N is not supported: connections are not grouped by NAPI id"));
        }
        if a.memory_file.is_some() && a.snapshot_file.is_some() {
            return Err(bad("-e and --snapshot-file are two names for one warm-restart file: give one"));
        }
        if a.snapshot_interval > 0 && a.snapshot_file.is_none() {
            return Err(bad("--snapshot-interval writes the --snapshot-file: give one"));
        }
        let snapshot_rate = a
            .snapshot_rate
            .checked_mul(MEGABYTE as u64)
            .ok_or_else(|| bad("--snapshot-rate is too large (0 means no limit)"))?;
        let snapshot_dir = a.snapshot_dir.clone().or_else(|| {
            let file = a.snapshot_file.as_ref().or(a.memory_file.as_ref())?;
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            Some(dir.to_path_buf())
        });
        let ports = Ports::from_flags(a.port, a.udp_port, a.unix_socket.is_some())?;
        if a.enable_ssl && ports.tcp_flag == 0 {
            return Err(bad("You cannot enable SSL without a TCP port."));
        }
        if a.auth_file.is_some() && ports.udp_flag != 0 {
            return Err(bad("Cannot use UDP with ascii authentication enabled (-U 0 to disable)"));
        }
        let inter = (!a.listen.is_empty()).then(|| join_listen(&a.listen));
        let (interfaces, notls) = resolve_listen(inter.as_deref().unwrap_or("0.0.0.0"), 0)?;
        if !a.enable_ssl && notls.iter().any(|p| *p) {
            return Err(bad("'notls' option is valid only when SSL is enabled"));
        }
        let unix_mask = u32::from_str_radix(a.unix_mask.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| bad(format!("Invalid value for access mask (-a): {}", a.unix_mask)))?;

        let x = extended::parse(&a.extended, item_size_max, DEFAULT_WRITE_TIMEOUT)?;
        warnings.extend(x.warnings.iter().cloned());
        let (idle_timeout, write_timeout, hashpower, strict) = (x.idle_timeout, x.write_timeout, x.hashpower, x.strict);

        let with_port = |port: Option<u16>| -> Vec<SocketAddr> {
            port.map_or_else(Vec::new, |p| {
                interfaces.iter().map(|i| SocketAddr::new(i.ip(), if i.port() != 0 { i.port() } else { p })).collect()
            })
        };
        let server = ServerConfig {
            listen: with_port(ports.tcp),
            inter,
            port: ports.tcp_flag,
            udp: with_port(ports.udp),
            unix_socket: a.unix_socket,
            unix_mask,
            threads,
            max_connections: conn_limit,
            reqs_per_event,
            backlog: a.backlog,
            idle_timeout,
            write_timeout,
            output_cap: (2 * item_size_max).max(MIN_OUTPUT_CAP),
            protocol,
            enable_shutdown: a.enable_shutdown,
            flush_enabled: !a.disable_flush_all,
            dump_enabled: !a.disable_dumping,
            limits: Limits {
                max_value: item_size_max - HEADER_LEN,
                max_line: DEFAULT_MAX_LINE,
                max_get_line: DEFAULT_MAX_GET_LINE,
                strict,
            },
            udp_port: ports.udp_flag,
            lru_crawler: x.lru_crawler,
            auth,
            auth_file: a.auth_file.clone(),
            prefix_delimiter,
            watch_enabled: !a.disable_watch,
            worker_logbuf_size: x.worker_logbuf_size,
            watcher_logbuf_size: x.watcher_logbuf_size,
            tls: a.enable_ssl.then(|| x.tls.clone()),
            listen_tls: if ports.tcp.is_some() {
                notls.iter().map(|p| a.enable_ssl && !p).collect()
            } else {
                Vec::new()
            },
        };
        let storage = StoreConfig {
            memory_limit,
            item_size_max,
            growth_factor: a.factor,
            min_space: min_size,
            use_cas: !a.disable_cas,
            evictions: !a.disable_evictions,
            hashpower,
            shards: if x.single_shard { 1 } else { crate::storage::SHARDS_PER_THREAD * threads },
            moves: x.moves,
            hash_expand: x.hash_expand,
            track_sizes: x.track_sizes,
        };
        let cluster_dns = match &a.cluster_dns {
            None => None,
            Some(spec) => {
                let target = crate::discovery::dns::Target::parse(spec)
                    .map_err(|e| Error::Config(format!("--cluster-dns {e}")))?;
                if a.cluster_file.is_some() {
                    return Err(Error::Config(
                        "--cluster-dns and --cluster-file both set the node list: give one".into(),
                    ));
                }
                if let (true, Some(port)) = (target.srv, target.port) {
                    warnings.push(format!("--cluster-dns {spec}: SRV records carry the ports; {port} is not used"));
                }
                Some(target)
            }
        };
        if a.replicas > 0 && (server.auth.is_some() || server.tls.is_some()) {
            return Err(bad(
                "--replicas 1 cannot be used with -S, -Y or -Z: copies travel in plain text, without credentials",
            ));
        }
        let metrics = a.metrics_port.map(|port| SocketAddr::new(a.metrics_listen.unwrap_or(interfaces[0].ip()), port));
        Ok(Config {
            server,
            storage,
            verbosity: a.verbose,
            user: a.user,
            daemon: a.daemon,
            pidfile: a.pidfile,
            print_config: a.print_config,
            snapshot_file: a.snapshot_file,
            snapshot_interval: (a.snapshot_interval > 0).then(|| std::time::Duration::from_secs(a.snapshot_interval)),
            snapshot_dir,
            snapshot_max_named: a.snapshot_max_named,
            snapshot_rate,
            metrics,
            discovery: crate::discovery::DiscoveryConfig {
                cluster_file: a.cluster_file,
                interval: std::time::Duration::from_millis(a.health_interval_ms.max(10)),
                timeout: std::time::Duration::from_millis(a.health_timeout_ms.max(1)),
                failures: a.health_failures.max(1),
            },
            config_port: a.config_port,
            cluster: crate::cluster::ClusterConfig {
                endpoint: a.cluster_endpoint,
                poll: std::time::Duration::from_millis(a.cluster_poll_ms.max(10)),
                node_id: a.node_id,
                replicas: a.replicas,
                hash: a.cluster_hash.parse().map_err(|e: String| Error::Config(format!("--cluster-hash: {e}")))?,
                warm_rate: a.warm_rate,
                warm_timeout: std::time::Duration::from_millis(a.warm_timeout_ms),
                dns: cluster_dns,
                dns_server: a.dns_server,
            },
            memory_file: a.memory_file,
            lock_memory: a.lock_memory,
            enable_coredumps: a.enable_coredumps,
            logfile: None,
            license: a.license,
            reported: Reported {
                hashpower_init: if x.hashpower_given { x.hashpower } else { 0 },
                slab_chunk_max: x.slab_chunk_max.unwrap_or(item_size_max),
                tail_repair_time: x.tail_repair_time,
            },
            warnings,
        })
    }

    /// Parses and validates a command line.
    pub fn parse_from<I, T>(args: I) -> Result<Config, Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let (path, mut rest) = file::split_config_file(args)?;
        let Some(path) = path else {
            let a = Args::try_parse_from(rest.into_iter().map(drop_verbose_value)).map_err(Error::Usage)?;
            return Config::from_args(a);
        };
        let from_file = file::read(&path)?;
        let argv0 = if rest.is_empty() { "ferrocache".into() } else { rest.remove(0) };
        let all = std::iter::once(argv0).chain(from_file.args.iter().map(Into::into)).chain(rest);
        let a = Args::try_parse_from(all.map(drop_verbose_value)).map_err(Error::Usage)?;
        let mut c = Config::from_args(a)?;
        c.logfile = from_file.logfile;
        c.warnings.splice(0..0, from_file.warnings);
        Ok(c)
    }
}

/// memcached's `--verbose` takes an optional value and ignores it (each
/// `--verbose=N` adds one level, as `-v`); clap's counter takes none, so
/// `--verbose=N` (or an unambiguous prefix, `--verb=N`) loses its value.
fn drop_verbose_value(arg: std::ffi::OsString) -> std::ffi::OsString {
    let Some((name, _)) = arg.to_str().and_then(|a| a.strip_prefix("--")).and_then(|a| a.split_once('=')) else {
        return arg;
    };
    if name.len() >= 4 && "verbose".starts_with(name) {
        return format!("--{name}").into();
    }
    arg
}

/// The ports to serve, from `-p`, `-U` and `-s` by memcached's rules:
/// `-s` turns TCP and UDP off; a port of 0 turns its transport off and -1
/// picks a free port; UDP is off unless `-U` says otherwise; `-U N` without
/// `-p` serves TCP on N too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ports {
    /// The port to bind (0: any), `None` for no TCP.
    tcp: Option<u16>,
    udp: Option<u16>,
    /// What `stats settings` reports (memcached's tcpport and udpport).
    tcp_flag: i32,
    udp_flag: i32,
}

/// memcached's default TCP port.
pub const DEFAULT_PORT: u16 = 11211;

impl Ports {
    fn from_flags(tcp: Option<i32>, udp: Option<i32>, unix: bool) -> Result<Ports, Error> {
        let udp_flag = udp.unwrap_or(0);
        let tcp_flag = match (tcp, udp_flag) {
            (Some(p), _) => p,
            (None, 0) => i32::from(DEFAULT_PORT),
            (None, u) => u,
        };
        let to_port = |flag: i32, what: &str| -> Result<Option<u16>, Error> {
            match flag {
                0 => Ok(None),
                -1 => Ok(Some(0)),
                p => u16::try_from(p).ok().filter(|&p| p > 0).map(Some).ok_or_else(|| {
                    bad(format!("Invalid {what} port number {p}: 1 to 65535, 0 (off) or -1 (any free port)"))
                }),
            }
        };
        let (tcp, udp) = (to_port(tcp_flag, "TCP")?, to_port(udp_flag, "UDP")?);
        if unix {
            return Ok(Ports { tcp: None, udp: None, tcp_flag, udp_flag });
        }
        Ok(Ports { tcp, udp, tcp_flag, udp_flag })
    }
}

/// The `-l` values as one comma-separated list: memcached adds a repeated
/// `-l` to the list instead of replacing it. An entry given twice is kept
/// once (memcached skips a value that is already a substring of the list,
/// which would also drop `-l 127.0.0.1 -l 127.0.0.10`'s second address).
fn join_listen(values: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for v in values {
        for e in v.split([',', ';']) {
            if !seen.contains(&e) {
                seen.push(e);
            }
        }
    }
    seen.join(",")
}

/// Resolves `-l a,b,c` with port `port` into socket addresses. An address
/// may carry its own port (`127.0.0.1:11311`, `[::1]:11311`) and, as in
/// memcached, a `notls:` prefix (served in plain text under `-Z`); the
/// second list says which did.
fn resolve_listen(list: &str, port: u16) -> Result<(Vec<SocketAddr>, Vec<bool>), Error> {
    let mut out: Vec<(SocketAddr, bool)> = Vec::new();
    for part in list.split([',', ';']).map(str::trim).filter(|p| !p.is_empty()) {
        let (part, notls) = part.strip_prefix("notls:").map_or((part, false), |p| (p, true));
        let host = part.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            out.push((SocketAddr::new(ip, port), notls));
            continue;
        }
        if let Ok(sa) = part.parse::<SocketAddr>() {
            out.push((sa, notls));
            continue;
        }
        let addrs = (part, port).to_socket_addrs().map_err(|e| bad(format!("cannot resolve -l {part}: {e}")))?;
        out.extend(addrs.map(|a| (a, notls)));
    }
    if out.is_empty() {
        return Err(bad("no address to listen on (-l)"));
    }
    // An address given twice is bound once; given once with `notls:` and
    // once without, it cannot be both, so it is refused.
    let mut kept: Vec<(SocketAddr, bool)> = Vec::with_capacity(out.len());
    for (a, notls) in out {
        match kept.iter().find(|(k, _)| *k == a) {
            Some((_, n)) if *n != notls => {
                return Err(bad(format!("-l gives {a} both with and without notls:")));
            }
            Some(_) => {}
            None => kept.push((a, notls)),
        }
    }
    Ok(kept.into_iter().unzip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<Config, Error> {
        Config::parse_from(std::iter::once("ferrocache").chain(args.iter().copied()))
    }

    #[test]
    fn cluster_dns_is_parsed_once_here() {
        let c = cfg(&["--cluster-dns", "cache.test.:11211"]).unwrap();
        let want = crate::discovery::dns::Target { name: "cache.test".into(), port: Some(11211), srv: false };
        assert_eq!(c.cluster.dns, Some(want));
        assert!(c.warnings.is_empty());
        // an SRV name's records carry the ports: a given one is warned of
        let c = cfg(&["--cluster-dns", "_memcache._tcp.test:11211"]).unwrap();
        assert!(c.cluster.dns.is_some_and(|t| t.srv));
        assert!(c.warnings.iter().any(|w| w.contains("11211 is not used")), "{:?}", c.warnings);
        assert!(cfg(&["--cluster-dns", "cache.test"]).is_err());
        let e = cfg(&["--cluster-dns", "cache.test:1", "--cluster-file", "/nonexistent"]).unwrap_err();
        assert!(e.to_string().contains("give one"), "{e}");
    }

    #[test]
    fn cluster_hash_names_the_clients_ring() {
        use crate::cluster::Scheme;
        assert_eq!(cfg(&[]).unwrap().cluster.hash, Scheme::Ketama);
        assert_eq!(cfg(&["--cluster-hash", "uhashring"]).unwrap().cluster.hash, Scheme::Uhashring);
        assert_eq!(cfg(&["--cluster-hash", "ketama_weighted"]).unwrap().cluster.hash, Scheme::KetamaWeighted);
        assert!(cfg(&["--cluster-hash", "crc32"]).is_err());
    }

    #[test]
    fn defaults_match_memcached() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.server.port, 11211);
        assert_eq!(c.server.max_connections, 1024);
        assert_eq!(c.server.reqs_per_event, 20);
        assert_eq!(c.server.backlog, 1024);
        assert_eq!(c.storage.memory_limit, 64 * MEGABYTE);
        assert_eq!(c.storage.item_size_max, MEGABYTE);
        assert_eq!(c.storage.growth_factor, 1.25);
        assert_eq!(c.storage.min_space, 48);
        assert!(c.storage.use_cas && c.storage.evictions);
        assert_eq!(c.server.listen, vec!["0.0.0.0:11211".parse().unwrap()]);
        assert!(c.server.udp.is_empty() && c.server.unix_socket.is_none());
        assert_eq!(c.server.unix_mask, 0o700);
    }

    /// memcached's rules, as t/issue_67.t checks them.
    #[test]
    fn ports_follow_memcached() {
        let ports = |args: &[&str]| {
            let c = cfg(args).unwrap();
            (c.server.listen.first().map(|a| a.port()), c.server.udp.first().map(|a| a.port()))
        };
        assert_eq!(ports(&[]), (Some(11211), None));
        assert_eq!(ports(&["-p", "11212"]), (Some(11212), None));
        assert_eq!(ports(&["-U", "11222"]), (Some(11222), Some(11222)));
        assert_eq!(ports(&["-p", "-1"]), (Some(0), None));
        assert_eq!(ports(&["-U", "-1"]), (Some(0), Some(0)));
        assert_eq!(ports(&["-p", "0"]), (None, None));
        assert_eq!(ports(&["-U", "0"]), (Some(11211), None));
        assert_eq!(ports(&["-p", "11232", "-U", "11233"]), (Some(11232), Some(11233)));
        assert_eq!(ports(&["-p", "-1", "-U", "11252"]), (Some(0), Some(11252)));
        assert_eq!(ports(&["-s", "/tmp/x.sock", "-U", "5"]), (None, None));
        assert_eq!(ports(&["-l", "127.0.0.1:7000", "-U", "5"]), (Some(7000), Some(7000)));
        for bad in [&["-p", "-2"][..], &["-p", "65536"], &["-U", "-5"], &["-a", "9"], &["-a", "17777"]] {
            assert!(cfg(bad).is_err(), "{bad:?}");
        }
        assert_eq!(cfg(&["-s", "/tmp/x", "-a", "666"]).unwrap().server.unix_mask, 0o666);
        // As memcached: any chmod-style mode; the socket gets its 0777 bits.
        assert_eq!(cfg(&["-s", "/tmp/x", "-a", "1777"]).unwrap().server.unix_mask, 0o1777);
    }

    #[test]
    fn a_repeated_listen_flag_adds_addresses() {
        let c = cfg(&["-l", "127.0.0.1", "-l", "127.0.0.10", "-l", "127.0.0.1", "-p", "7000"]).unwrap();
        let want: Vec<SocketAddr> = vec!["127.0.0.1:7000".parse().unwrap(), "127.0.0.10:7000".parse().unwrap()];
        assert_eq!(c.server.listen, want);
        assert_eq!(c.server.inter.as_deref(), Some("127.0.0.1,127.0.0.10"), "stats settings inter");
        assert_eq!(cfg(&[]).unwrap().server.inter, None, "memcached reports NULL without -l");
        let c = cfg(&["-Z", "-l", "127.0.0.1", "-l", "notls:127.0.0.2:7001"]);
        let c = c.unwrap();
        assert_eq!(c.server.listen.len(), 2);
        assert_eq!(c.server.listen_tls, vec![true, false]);
        // memcached separates with ';' too; a repeat is bound once.
        let c = cfg(&["-l", "127.0.0.1;127.0.0.10", "-l", "127.0.0.1", "-p", "7000"]).unwrap();
        assert_eq!(c.server.listen, want);
        // One address cannot be both TLS and plain text.
        assert!(cfg(&["-Z", "-l", "127.0.0.1", "-l", "notls:127.0.0.1"]).is_err());
    }

    #[test]
    fn short_and_long_spellings() {
        let c = cfg(&["-p", "-1", "-l", "127.0.0.1,::1", "-m", "128", "-c", "10", "-t", "3", "-M", "-C", "-vv", "-A"])
            .unwrap();
        assert_eq!(c.server.listen.len(), 2);
        assert_eq!(c.storage.memory_limit, 128 * MEGABYTE);
        assert_eq!(c.server.threads, 3);
        assert!(!c.storage.use_cas && !c.storage.evictions && c.server.enable_shutdown);
        assert_eq!(c.verbosity, 2);
        // getopt_long's ways: an unambiguous prefix names a long flag, and
        // --verbose's optional value is ignored (one level each).
        let c = cfg(&["--verb", "--verbose=3", "--listen-b=5", "--conn=9", "--listen=127.0.0.1"]).unwrap();
        assert_eq!((c.verbosity, c.server.backlog, c.server.max_connections), (2, 5, 9));
        assert!(cfg(&["--mem=8"]).is_err(), "ambiguous: --memory-limit or --memory-file");
        assert!(cfg(&["--config-f=/nonexistent"]).is_err(), "never left unread");
        let c = cfg(&["--port=-1", "--listen=127.0.0.1", "--memory-limit=8", "--max-item-size=512k", "--threads=2"])
            .unwrap();
        assert_eq!(c.storage.item_size_max, 512 * 1024);
        assert_eq!(c.server.limits.max_value, 512 * 1024 - HEADER_LEN);
    }

    #[test]
    fn extended_options_are_honoured() {
        let c = cfg(&["-o", "idle_timeout=30,hashpower=20,no_lru_crawler,slab_automove=0", "-o", "modern"]).unwrap();
        assert_eq!(c.server.idle_timeout, 30);
        assert_eq!(c.storage.hashpower, 20);
        assert_eq!(c.reported.hashpower_init, 20);
        assert!(!c.server.lru_crawler && !c.storage.moves.automatic());
        assert!(c.warnings.is_empty());
        assert!(cfg(&["-o", "idle_timeout=abc"]).is_err());
        assert!(cfg(&["-o", "hashpower=99"]).is_err());
    }

    /// Each refused flag exits with a message that names it.
    #[test]
    fn refused_flags_say_why() {
        for (args, says) in [
            (&["-L"][..], "-L is not supported"),
            (&["-N", "2"], "-N is not supported"),
            (&["-o", "lru_maintainer"], "-o lru_maintainer is not supported"),
            (&["-o", "read_buf_mem_limit=1"], "-o read_buf_mem_limit is not supported"),
            (&["-o", "nonsense"], "Illegal suboption"),
            (&["-e", "/tmp/a", "--snapshot-file", "/tmp/b"], "give one"),
            (&["--replicas", "1", "-Z"], "--replicas 1 cannot be used with"),
        ] {
            let e = cfg(args).expect_err(&format!("{args:?}"));
            assert!(matches!(e, Error::Config(_)), "{args:?}");
            assert!(e.to_string().contains(says), "{args:?}: {e}");
        }
    }

    #[test]
    fn the_snapshot_rate_is_megabytes_a_second() {
        assert_eq!(cfg(&[]).unwrap().snapshot_rate, DEFAULT_SNAPSHOT_RATE * MEGABYTE as u64);
        assert_eq!(cfg(&["--snapshot-rate", "10"]).unwrap().snapshot_rate, 10 * MEGABYTE as u64);
        assert_eq!(cfg(&["--snapshot-rate=0"]).unwrap().snapshot_rate, 0, "0: no limit");
        for bad in ["-1", "1.5", "fast", ""] {
            assert!(cfg(&["--snapshot-rate", bad]).is_err(), "{bad:?}");
        }
        let e = cfg(&["--snapshot-rate", &u64::MAX.to_string()]).unwrap_err();
        assert!(e.to_string().contains("--snapshot-rate"), "{e}");
    }

    #[test]
    fn honoured_flags_reach_the_config() {
        let c = cfg(&["-k", "-r", "-W", "-e", "/tmp/mem", "-i"]).unwrap();
        assert!(c.lock_memory && c.enable_coredumps && c.license);
        assert_eq!(c.memory_file, Some(PathBuf::from("/tmp/mem")));
    }

    #[test]
    fn a_later_flag_overrides_an_earlier_one() {
        let c = cfg(&["-p", "1", "-m", "8", "-p", "2", "-o", "idle_timeout=3", "-o", "no_lru_crawler"]).unwrap();
        assert_eq!((c.server.port, c.server.idle_timeout, c.server.lru_crawler), (2, 3, false));
    }

    #[test]
    fn config_file_then_command_line() {
        let dir = std::env::temp_dir().join(format!("ferrocache-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("memcached.conf");
        std::fs::write(&path, "# test\n-m 32\n-p 11311\n-c 77\nlogfile /tmp/x.log\n-o idle_timeout=9\n").unwrap();
        let c = cfg(&["--config-file", path.to_str().unwrap(), "-p", "0", "-o", "no_lru_crawler"]).unwrap();
        assert_eq!(c.storage.memory_limit, 32 * MEGABYTE);
        assert_eq!(c.server.max_connections, 77);
        assert_eq!(c.server.port, 0, "the command line overrides the file");
        assert_eq!(c.server.idle_timeout, 9, "-o from both places adds up");
        assert!(!c.server.lru_crawler);
        assert_eq!(c.logfile, Some(PathBuf::from("/tmp/x.log")));
        std::fs::write(&path, "-o temporary_ttl=61\n").unwrap();
        assert!(cfg(&["--config-file", path.to_str().unwrap()]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(cfg(&["--config-file", "/nonexistent/memcached.conf"]).is_err());
    }

    #[test]
    fn admin_options_follow_memcached_defaults() {
        let c = cfg(&[]).unwrap();
        assert!(c.server.lru_crawler && c.storage.moves.reassign);
        assert_eq!((c.storage.moves.automove, c.server.prefix_delimiter), (1, None));
        let c = cfg(&["-o", "no_modern"]).unwrap();
        assert!(!c.server.lru_crawler && !c.storage.moves.reassign);
        assert_eq!((c.storage.moves.automove, c.storage.shards), (0, 1));
        assert!(cfg(&[]).unwrap().storage.shards > 1);
        let c = cfg(&["-o", "no_modern,lru_crawler,slab_automove=2", "-D", "/"]).unwrap();
        assert!(c.server.lru_crawler && !c.storage.moves.reassign);
        assert_eq!((c.storage.moves.automove, c.server.prefix_delimiter), (2, Some(b'/')));
        let c = cfg(&["-W", "-o", "watcher_logbuf_size=8,worker_logbuf_size=16"]).unwrap();
        assert!(!c.server.watch_enabled);
        assert_eq!((c.server.watcher_logbuf_size, c.server.worker_logbuf_size), (8 * 1024, 16 * 1024));
        assert!(cfg(&[]).unwrap().server.watch_enabled);
        assert!(cfg(&["-o", "watcher_logbuf_size=0"]).is_err());
        assert!(cfg(&["-o", "slab_automove=3"]).is_err());
        let c = cfg(&["-o", "no_modern,slab_automove,no_lru_crawler"]).unwrap();
        assert_eq!((c.storage.moves.automove, c.server.lru_crawler), (1, false));
        assert_eq!(cfg(&["-D", "ab"]).unwrap().server.prefix_delimiter, Some(b'a'), "the first byte, as memcached");
    }

    /// memcached 1.6.18's bounds and messages for the flags it checks.
    #[test]
    fn bounds_and_messages_follow_memcached() {
        let says = |args: &[&str]| cfg(args).expect_err(&format!("{args:?}")).to_string();
        for (args, msg) in [
            (&["-t", "0"][..], "Number of threads must be greater than 0"),
            (&["-t", "-1"], "Number of threads must be greater than 0"),
            (&["-c", "-1"], "Maximum connections must be greater than 0"),
            (&["-R", "-1"], "Number of requests per event must be greater than 0"),
            (&["-n", "0"], "Chunk size must be greater than 0"),
            (&["-D", ""], "No delimiter specified"),
            (&["-I", "2g", "-m", "8192"], "Cannot set item size limit higher than a gigabyte."),
            (&["-I", "2g"], "Cannot set item size limit higher than 1/2 of memory max."),
            (&["-Z", "-p", "0", "-U", "-1"], "You cannot enable SSL without a TCP port."),
        ] {
            assert_eq!(says(args), msg, "{args:?}");
        }
        assert!(says(&["-B", "udp"]).ends_with("\n -- should be one of auto, binary, or ascii"));
        assert!(says(&["-m", "-1"]).contains("-m"));
        assert!(says(&["--napi-ids", "2"]).starts_with("-N is not supported"));
        // listen(2) takes any backlog; memcached passes -b through as given.
        assert_eq!(cfg(&["-b", "0"]).unwrap().server.backlog, 0);
        assert_eq!(cfg(&["-b", "-1"]).unwrap().server.backlog, -1);
        let pw = std::env::temp_dir().join(format!("ferrocache-auth-{}", std::process::id()));
        std::fs::write(&pw, "alice:secret\n").unwrap();
        let pw = pw.to_str().unwrap();
        assert_eq!(says(&["-Y", pw, "-U", "-1"]), "Cannot use UDP with ascii authentication enabled (-U 0 to disable)");
        assert!(cfg(&["-Y", pw, "-U", "0"]).is_ok());
        let _ = std::fs::remove_file(pw);
    }

    #[test]
    fn bad_values_are_refused_with_a_message() {
        for bad in [
            &["-I", "100"][..],
            &["-I", "2g"],
            &["-m", "1", "-I", "1m"],
            &["-f", "1.0"],
            &["-t", "0"],
            &["-c", "0"],
            &["-B", "udp"],
            &["-p", "70000"],
            &["-m", "abc"],
            &["--no-such-flag"],
        ] {
            let e = cfg(bad).expect_err(&format!("{bad:?}"));
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn tls_flags_mark_listeners_and_notls_needs_z() {
        let c = cfg(&["-Z", "-o", "ssl_chain_cert=a.pem,ssl_verify_mode=1", "-l", "127.0.0.1,notls:127.0.0.2:7000"])
            .unwrap();
        assert_eq!(c.server.listen_tls, vec![true, false]);
        assert_eq!(c.server.listen[1], "127.0.0.2:7000".parse().unwrap());
        let tls = c.server.tls.unwrap();
        assert_eq!((tls.chain_cert.unwrap(), tls.verify_mode), ("a.pem".into(), 1));
        // ssl_* options without -Z are read and checked, and change nothing.
        let c = cfg(&["-o", "ssl_chain_cert=a.pem"]).unwrap();
        assert!(c.server.tls.is_none() && c.server.listen_tls == vec![false]);
        assert!(cfg(&["-o", "ssl_verify_mode=9"]).is_err());
        let e = cfg(&["-l", "notls:127.0.0.1"]).unwrap_err().to_string();
        assert_eq!(e, "'notls' option is valid only when SSL is enabled");
    }

    #[test]
    fn sizes_take_suffixes() {
        assert_eq!(parse_size("1m", 1), Some(MEGABYTE));
        assert_eq!(parse_size("512k", 1), Some(512 * 1024));
        assert_eq!(parse_size("64", MEGABYTE), Some(64 * MEGABYTE));
        assert_eq!(parse_size("x", 1), None);
        assert_eq!(parse_size("", 1), None);
    }
}
