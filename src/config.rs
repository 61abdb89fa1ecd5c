//! Command line -> validated [`Config`].
//!
//! Flags use memcached's spellings (`doc/memcached.1`), short and long, so
//! existing command lines and init scripts start ferrocache unchanged.
//! Options memcached has and ferrocache does not need are accepted with a
//! warning; values that make no sense are refused with a message. Each
//! component gets only its section ([`ServerConfig`], [`StoreConfig`]).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgAction, Parser};

use crate::auth::Credentials;
use crate::error::Error;
use crate::protocol::{Limits, DEFAULT_MAX_GET_LINE, DEFAULT_MAX_LINE};
use crate::storage::{item::HEADER_LEN, StoreConfig, MEGABYTE};

/// The memcached version whose protocol we speak; `version` and `stats`
/// report it, because clients pick features from it.
pub const MEMCACHED_VERSION: &str = "1.6.18";

/// Seconds a client may leave a full output buffer unread (`-o write_timeout`).
pub const DEFAULT_WRITE_TIMEOUT: u32 = 30;
/// Output a connection may queue, at least (2 x `-I` when that is more).
pub const MIN_OUTPUT_CAP: usize = 16 * 1024 * 1024;

/// Command-line flags, as memcached spells them.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "ferrocache",
    version,
    about = "A memcached-compatible cache daemon",
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct Args {
    /// TCP port to listen on (0 picks a free one)
    #[arg(short = 'p', long = "port", default_value_t = 11211)]
    pub port: u16,
    /// UDP port (UDP is not served; a non-zero port only warns)
    #[arg(short = 'U', long = "udp-port", default_value_t = 0)]
    pub udp_port: u16,
    /// Interfaces to listen on, comma separated (IPv4 or IPv6)
    #[arg(short = 'l', long = "listen", default_value = "0.0.0.0")]
    pub listen: String,
    /// Item memory in megabytes
    #[arg(short = 'm', long = "memory-limit", default_value = "64")]
    pub memory_limit: String,
    /// Max simultaneous connections
    #[arg(short = 'c', long = "conn-limit", default_value_t = 1024)]
    pub conn_limit: usize,
    /// Number of event-loop threads (default: number of cores)
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
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
    #[arg(short = 'n', long = "slab-min-size", default_value_t = 48)]
    pub min_size: usize,
    /// Disable CAS
    #[arg(short = 'C', long = "disable-cas")]
    pub disable_cas: bool,
    /// Max requests handled per connection per event
    #[arg(short = 'R', long = "max-reqs-per-event", default_value_t = 20)]
    pub reqs_per_event: usize,
    /// Listen backlog
    #[arg(short = 'b', long = "listen-backlog", default_value_t = 1024)]
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
    /// Lock down all paged memory (accepted and ignored)
    #[arg(short = 'k', long = "lock-memory")]
    pub lock_memory: bool,
    /// Try to use large memory pages (accepted and ignored)
    #[arg(short = 'L', long = "enable-largepages")]
    pub large_pages: bool,
    /// Stats prefix delimiter (one byte); also turns on `stats detail`
    #[arg(short = 'D')]
    pub prefix_delimiter: Option<String>,
    /// Extended options, comma separated: idle_timeout=N, hashpower=N,
    /// slab_chunk_max=N; memcached's other options are ignored with a warning
    #[arg(short = 'o', long = "extended", action = ArgAction::Append)]
    pub extended: Vec<String>,
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
    pub listen: Vec<SocketAddr>,
    pub port: u16,
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
    pub udp_port: u16,
    /// Credentials when authentication is required (-S or -Y).
    pub auth: Option<Arc<Credentials>>,
    /// `-D`: the stats prefix delimiter; `stats detail` starts on with it.
    pub prefix_delimiter: Option<u8>,
    /// `-o lru_crawler` (on unless `-o no_modern`): the background
    /// crawler runs at start; `lru_crawler enable|disable` changes it.
    pub lru_crawler: bool,
    /// `-o slab_reassign` (on unless `-o no_modern`): `slabs reassign`
    /// is allowed.
    pub slab_reassign: bool,
    /// `-o slab_automove=N` (0, 1 or 2; 1 unless `-o no_modern`).
    pub slab_automove: u8,
    /// `watch` is allowed (`-W` refuses it).
    pub watch_enabled: bool,
    /// `-o worker_logbuf_size=KB`: each loop's log ring, in bytes.
    pub worker_logbuf_size: usize,
    /// `-o watcher_logbuf_size=KB`: unsent log bytes a watcher may hold.
    pub watcher_logbuf_size: usize,
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
    /// `--metrics-port` on `--metrics-listen`.
    pub metrics: Option<SocketAddr>,
    /// Auto-discovery settings.
    pub discovery: crate::discovery::DiscoveryConfig,
    /// `--config-port`: the listen addresses with this port are added.
    pub config_port: Option<u16>,
    /// Warnings found while reading the flags, logged once logging is up.
    pub warnings: Vec<String>,
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

impl Config {
    /// Validates parsed flags.
    pub fn from_args(a: Args) -> Result<Config, Error> {
        let mut warnings = Vec::new();
        let memory_limit = parse_size(&a.memory_limit, MEGABYTE)
            .filter(|&m| m > 0)
            .ok_or_else(|| bad(format!("invalid memory limit (-m): {}", a.memory_limit)))?;
        let item_size_max = parse_size(&a.max_item_size, 1)
            .ok_or_else(|| bad(format!("invalid max item size (-I): {}", a.max_item_size)))?;
        if item_size_max < 1024 {
            return Err(bad("Item max size cannot be less than 1024 bytes."));
        }
        if item_size_max > 1024 * MEGABYTE {
            return Err(bad("Cannot set item size limit higher than 1 gigabyte."));
        }
        if item_size_max > memory_limit / 2 {
            return Err(bad("Cannot set item size limit higher than 1/2 of memory max."));
        }
        if a.factor.is_nan() || a.factor <= 1.0 {
            return Err(bad("Factor must be greater than 1"));
        }
        if a.min_size == 0 || a.min_size + HEADER_LEN > item_size_max / 2 {
            return Err(bad(format!("invalid slab min size (-n): {}", a.min_size)));
        }
        let threads = match a.threads {
            Some(0) => return Err(bad("Number of threads must be greater than 0")),
            Some(t) if t > 256 => return Err(bad("Number of threads must be 256 or fewer")),
            Some(t) => t,
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4),
        };
        if a.conn_limit == 0 {
            return Err(bad("Maximum connections must be greater than 0"));
        }
        if a.reqs_per_event == 0 {
            return Err(bad("Number of requests per event must be greater than 0"));
        }
        if a.backlog <= 0 {
            return Err(bad("Listen backlog must be greater than 0"));
        }
        let protocol_given = a.protocol.is_some();
        let mut protocol = match a.protocol.as_deref().unwrap_or("auto") {
            "auto" => ProtocolChoice::Auto,
            "ascii" => ProtocolChoice::Ascii,
            "binary" => ProtocolChoice::Binary,
            other => return Err(bad(format!("Invalid value for binding protocol: {other}"))),
        };
        let auth = if a.sasl {
            // As memcached: SASL means binary only.
            if protocol_given && protocol != ProtocolChoice::Binary {
                return Err(bad("You cannot allow the ASCII protocol while using SASL."));
            }
            if a.udp_port != 0 {
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
        if a.udp_port != 0 {
            warnings.push(format!("UDP is not served yet: ignoring -U {}", a.udp_port));
        }
        if a.lock_memory {
            warnings.push("-k (lock memory) is ignored".into());
        }
        if a.large_pages {
            warnings.push("-L (large pages) is ignored".into());
        }
        let prefix_delimiter = match a.prefix_delimiter.as_deref().map(str::as_bytes) {
            None => None,
            Some([b]) => Some(*b),
            Some(_) => return Err(bad("-D takes one character")),
        };
        let listen = resolve_listen(&a.listen, a.port)?;

        let mut idle_timeout = 0;
        let mut write_timeout = DEFAULT_WRITE_TIMEOUT;
        let mut hashpower = 16;
        let mut strict = false;
        let mut lru_crawler = true;
        let mut slab_reassign = true;
        let mut slab_automove = 1u8;
        let mut worker_logbuf_size = crate::watch::DEFAULT_WORKER_BUF;
        let mut watcher_logbuf_size = crate::watch::DEFAULT_WATCHER_BUF;
        for opt in a.extended.iter().flat_map(|o| o.split(',')).map(str::trim).filter(|o| !o.is_empty()) {
            let (name, value) = opt.split_once('=').map_or((opt, None), |(n, v)| (n, Some(v)));
            let number = || -> Result<u64, Error> {
                value.and_then(|v| v.parse().ok()).ok_or_else(|| bad(format!("invalid value for -o {name}")))
            };
            match name {
                "idle_timeout" => {
                    idle_timeout = u32::try_from(number()?).map_err(|_| bad("idle_timeout is too large"))?
                }
                "write_timeout" => {
                    write_timeout = u32::try_from(number()?)
                        .ok()
                        .filter(|&t| t > 0)
                        .ok_or_else(|| bad("write_timeout must be 1 or more seconds"))?
                }
                "hashpower" => {
                    let p = number()?;
                    if !(12..=32).contains(&p) {
                        return Err(bad("Initial hashtable multiplier of 12 or more required (max 32)"));
                    }
                    hashpower = p as u32;
                }
                "slab_chunk_max" => {
                    // memcached splits items over chunks of this size; we keep
                    // one chunk per item up to -I, so the value only is checked.
                    let v = value.and_then(|v| parse_size(v, 1)).ok_or_else(|| bad("invalid slab_chunk_max"))?;
                    if v > item_size_max {
                        return Err(bad("slab_chunk_max cannot be larger than -I (item_size_max)"));
                    }
                }
                "strict_protocol" => strict = true,
                "modern" => {
                    (lru_crawler, slab_reassign, slab_automove) = (true, true, 1);
                }
                // memcached's pre-1.5 defaults: no crawler, no page mover.
                "no_modern" => {
                    (lru_crawler, slab_reassign, slab_automove) = (false, false, 0);
                }
                "lru_crawler" => lru_crawler = true,
                "no_lru_crawler" => lru_crawler = false,
                "slab_reassign" => slab_reassign = true,
                // As memcached: the bare name means mode 1.
                "slab_automove" if value.is_none() => slab_automove = 1,
                "slab_automove" => {
                    let n = number()?;
                    if n > 2 {
                        return Err(bad("slab_automove must be 0, 1 or 2"));
                    }
                    slab_automove = n as u8;
                }
                // As memcached: kilobytes.
                "worker_logbuf_size" | "watcher_logbuf_size" => {
                    let kb = number()?;
                    if !(1..=1024 * 1024).contains(&kb) {
                        return Err(bad(format!("{name} must be 1 to 1048576 (kilobytes)")));
                    }
                    let bytes = kb as usize * 1024;
                    if name == "worker_logbuf_size" {
                        worker_logbuf_size = bytes;
                    } else {
                        watcher_logbuf_size = bytes;
                    }
                }
                _ => warnings.push(format!("ignoring unsupported extended option: {opt}")),
            }
        }

        let server = ServerConfig {
            listen,
            port: a.port,
            threads,
            max_connections: a.conn_limit,
            reqs_per_event: a.reqs_per_event,
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
            udp_port: a.udp_port,
            auth,
            prefix_delimiter,
            lru_crawler,
            slab_reassign,
            slab_automove,
            watch_enabled: !a.disable_watch,
            worker_logbuf_size,
            watcher_logbuf_size,
        };
        let storage = StoreConfig {
            memory_limit,
            item_size_max,
            growth_factor: a.factor,
            min_space: a.min_size,
            use_cas: !a.disable_cas,
            evictions: !a.disable_evictions,
            hashpower,
            shards: 0,
        };
        let metrics =
            a.metrics_port.map(|port| SocketAddr::new(a.metrics_listen.unwrap_or(server.listen[0].ip()), port));
        Ok(Config {
            server,
            storage,
            verbosity: a.verbose,
            user: a.user,
            daemon: a.daemon,
            pidfile: a.pidfile,
            print_config: a.print_config,
            snapshot_file: a.snapshot_file,
            metrics,
            discovery: crate::discovery::DiscoveryConfig {
                cluster_file: a.cluster_file,
                interval: std::time::Duration::from_millis(a.health_interval_ms.max(10)),
                timeout: std::time::Duration::from_millis(a.health_timeout_ms.max(1)),
                failures: a.health_failures.max(1),
            },
            config_port: a.config_port,
            warnings,
        })
    }

    /// Parses and validates a command line.
    pub fn parse_from<I, T>(args: I) -> Result<Config, Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let a = Args::try_parse_from(args).map_err(Error::Usage)?;
        Config::from_args(a)
    }
}

/// Resolves `-l a,b,c` with port `port` into socket addresses. An address
/// may carry its own port (`127.0.0.1:11311`, `[::1]:11311`).
fn resolve_listen(list: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let host = part.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            out.push(SocketAddr::new(ip, port));
            continue;
        }
        if let Ok(sa) = part.parse::<SocketAddr>() {
            out.push(sa);
            continue;
        }
        let addrs = (part, port).to_socket_addrs().map_err(|e| bad(format!("cannot resolve -l {part}: {e}")))?;
        out.extend(addrs);
    }
    if out.is_empty() {
        return Err(bad("no address to listen on (-l)"));
    }
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<Config, Error> {
        Config::parse_from(std::iter::once("ferrocache").chain(args.iter().copied()))
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
    }

    #[test]
    fn short_and_long_spellings() {
        let c = cfg(&["-p", "0", "-l", "127.0.0.1,::1", "-m", "128", "-c", "10", "-t", "3", "-M", "-C", "-vv", "-A"])
            .unwrap();
        assert_eq!(c.server.listen.len(), 2);
        assert_eq!(c.storage.memory_limit, 128 * MEGABYTE);
        assert_eq!(c.server.threads, 3);
        assert!(!c.storage.use_cas && !c.storage.evictions && c.server.enable_shutdown);
        assert_eq!(c.verbosity, 2);
        let c = cfg(&["--port=0", "--listen=127.0.0.1", "--memory-limit=8", "--max-item-size=512k", "--threads=2"])
            .unwrap();
        assert_eq!(c.storage.item_size_max, 512 * 1024);
        assert_eq!(c.server.limits.max_value, 512 * 1024 - HEADER_LEN);
    }

    #[test]
    fn extended_options_are_honoured_or_warned_about() {
        let c = cfg(&["-o", "idle_timeout=30,hashpower=20,lru_crawler,slab_reassign,lru_maintainer", "-o", "modern"])
            .unwrap();
        assert_eq!(c.server.idle_timeout, 30);
        assert_eq!(c.storage.hashpower, 20);
        assert_eq!(c.warnings.iter().filter(|w| w.contains("extended option")).count(), 1);
        assert!(cfg(&["-o", "idle_timeout=abc"]).is_err());
        assert!(cfg(&["-o", "hashpower=99"]).is_err());
    }

    #[test]
    fn admin_options_follow_memcached_defaults() {
        let c = cfg(&[]).unwrap();
        assert!(c.server.lru_crawler && c.server.slab_reassign);
        assert_eq!((c.server.slab_automove, c.server.prefix_delimiter), (1, None));
        let c = cfg(&["-o", "no_modern"]).unwrap();
        assert!(!c.server.lru_crawler && !c.server.slab_reassign);
        assert_eq!(c.server.slab_automove, 0);
        let c = cfg(&["-o", "no_modern,lru_crawler,slab_automove=2", "-D", "/"]).unwrap();
        assert!(c.server.lru_crawler && !c.server.slab_reassign);
        assert_eq!((c.server.slab_automove, c.server.prefix_delimiter), (2, Some(b'/')));
        let c = cfg(&["-W", "-o", "watcher_logbuf_size=8,worker_logbuf_size=16"]).unwrap();
        assert!(!c.server.watch_enabled);
        assert_eq!((c.server.watcher_logbuf_size, c.server.worker_logbuf_size), (8 * 1024, 16 * 1024));
        assert!(cfg(&[]).unwrap().server.watch_enabled);
        assert!(cfg(&["-o", "watcher_logbuf_size=0"]).is_err());
        assert!(cfg(&["-o", "slab_automove=3"]).is_err());
        let c = cfg(&["-o", "no_modern,slab_automove,no_lru_crawler"]).unwrap();
        assert_eq!((c.server.slab_automove, c.server.lru_crawler), (1, false));
        assert!(cfg(&["-D", "ab"]).is_err());
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
    fn sizes_take_suffixes() {
        assert_eq!(parse_size("1m", 1), Some(MEGABYTE));
        assert_eq!(parse_size("512k", 1), Some(512 * 1024));
        assert_eq!(parse_size("64", MEGABYTE), Some(64 * MEGABYTE));
        assert_eq!(parse_size("x", 1), None);
        assert_eq!(parse_size("", 1), None);
    }
}
