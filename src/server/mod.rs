//! The server: binds listeners, starts one event loop per `-t` thread, a
//! maintenance thread (clock, expiry crawler, delayed flush) and a signal
//! thread, and waits for shutdown.
//!
//! Threads:
//! - `loop-N` (N = 0..threads): one mio `Poll` each, owning its listeners
//!   (SO_REUSEPORT) and its connections; no connection moves between loops.
//! - `maintenance`: ticks the store clock every 100 ms and runs the expiry
//!   crawler once a second.
//! - `signals`: waits for SIGINT/SIGTERM (shutdown), SIGUSR1 (graceful
//!   shutdown: with `-e`, the cache is kept for the next start), SIGUSR2
//!   (a snapshot, written by the `snapshot` thread) and SIGHUP.
//! - `snapshot`: writes requested and periodic snapshots (`backup`) while
//!   the loops serve.
//!   Signals are blocked in every other thread, so no handler runs async.

mod cluster;
mod connection;
mod event_loop;
pub mod listener;
pub mod restart;
mod stream;
pub mod udp;

use std::io::Write;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Error;
use crate::notify::Notifier;
use crate::state::{Bound, Endpoint, ListenerInfo, Shared};
use crate::storage::clock::Clock;
use crate::storage::{snapshot, Store};
use crate::sys;
use listener::LoopSockets;

/// Rate limit for log lines about refused clients: at most one a second per
/// kind; the ones in between are counted and reported with the next line.
pub struct LogLimiter {
    last: std::sync::atomic::AtomicU32,
    suppressed: std::sync::atomic::AtomicU64,
}

impl LogLimiter {
    pub const fn new() -> LogLimiter {
        LogLimiter { last: std::sync::atomic::AtomicU32::new(0), suppressed: std::sync::atomic::AtomicU64::new(0) }
    }

    /// `Some(n)` if a line may be logged now (`n` lines were dropped since
    /// the last one), `None` if this one is dropped.
    pub fn allow(&self, now: u32) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let last = self.last.load(Relaxed);
        if now > last && self.last.compare_exchange(last, now, Relaxed, Relaxed).is_ok() {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter::new()
    }
}

/// Chunks the crawler checks per shard per second.
const CRAWL_BUDGET: usize = 20_000;

/// Runs the daemon until SIGINT/SIGTERM or `shutdown`.
pub fn run(mut config: Config) -> Result<(), Error> {
    sys::block_signals().map_err(|source| Error::Io { what: "blocking signals", source })?;
    let started = Instant::now();
    let notifier = Notifier::from_env();
    let clock = Arc::new(Clock::system());
    let restart_meta = match &config.memory_file {
        Some(path) => restart::open(path)?,
        None => None,
    };
    if let Some(meta) = restart_meta {
        // The table comes back at the size it had, as in memcached.
        config.storage.hashpower = config.storage.hashpower.max(meta.hashpower);
    }
    let store = Store::new(&config.storage, clock.clone());
    if let Some(path) = &config.snapshot_file {
        load_snapshot(&store, path, &notifier);
    }
    match (&config.memory_file, restart_meta) {
        (Some(path), Some(_)) => load_snapshot(&store, path, &notifier),
        (Some(path), None) => log::info!("no restart metadata for {}: starting empty", path.display()),
        _ => {}
    }
    // The warm thread runs where the discovery thread does.
    let copier =
        config.discovery.cluster_file.is_some() || config.config_port.is_some() || config.cluster.dns.is_some();
    let warm = crate::discovery::WarmConfig {
        copier,
        max_value: config.storage.item_size_max,
        ..crate::discovery::WarmConfig::from(&config.cluster)
    };
    let discovery = crate::discovery::Discovery::with_warm(config.discovery.clone(), warm).map_err(Error::Config)?;
    if let Some(m) = crate::discovery::dns::Membership::from_config(&config.cluster).map_err(Error::Config)? {
        discovery.follow_dns(m);
        // before the listeners open: the first client already gets the list
        discovery.poll_dns();
    }
    // Read before privileges are dropped, as memcached does; a refresh
    // later reads as the -u user.
    let tls = match &config.server.tls {
        Some(options) => Some(Arc::new(crate::tls::Tls::new(options.clone(), clock.now()).map_err(Error::Tls)?)),
        None => None,
    };
    if let Some(t) = &tls {
        // Node health checks speak TLS too, verifying nodes against
        // ssl_ca_cert; a cluster without one cannot be checked.
        match t.client_config() {
            Ok(client) => discovery.set_tls(client),
            Err(e) if config.discovery.cluster_file.is_some() => return Err(Error::Tls(e)),
            Err(e) if config.config_port.is_some() => {
                log::warn!("{e}: nodes set by `config set cluster` fail their checks")
            }
            Err(_) => {}
        }
    }
    let threads = config.server.threads;
    let mut addrs_to_bind = config.server.listen.clone();
    if let Some(port) = config.config_port {
        // The configuration endpoint: the same machinery on its own port.
        addrs_to_bind.extend(config.server.listen.iter().map(|a| std::net::SocketAddr::new(a.ip(), port)));
    }
    let (bound, sockets) = bind(&config, &addrs_to_bind)?;
    // Removes the unix socket file however run() ends, once bound.
    let _unix_file = bound.unix.clone().map(UnixFile);
    let metrics = match config.metrics {
        Some(addr) => Some(std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?),
        None => None,
    };

    if let Some(user) = &config.user {
        if sys::is_root() {
            sys::drop_privileges(user)?;
        }
    } else if sys::is_root() {
        log::warn!("running as root without -u: consider a dedicated user");
    }
    // -k after -u, as memcached orders them: locked as root, the memory of
    // threads started after the switch would count against the user's
    // RLIMIT_MEMLOCK and fail to map. A failure is reported and the daemon
    // runs on, as memcached's does.
    if config.lock_memory {
        // The cache, a stack for every thread (loops and helpers, 8 MiB
        // each at most) and 64 MiB for tables, buffers and the binary.
        let threads = config.server.threads as u64 + 16;
        let need = config.storage.memory_limit as u64 + (threads * 8 + 64) * crate::storage::MEGABYTE as u64;
        if let Err(e) = sys::lock_memory(need) {
            log::warn!("-k: mlockall() failed: {e}; proceeding without locked memory");
        }
    }

    let shared = Arc::new(Shared::with_discovery(config, store, discovery));
    let _ = shared.bound.set(bound.clone());
    if let Some(tls) = tls {
        let _ = shared.tls.set(tls);
    }
    cluster::start(&shared).map_err(Error::Config)?;

    let mut loops = Vec::with_capacity(threads);
    let mut wakers = Vec::with_capacity(threads);
    for (i, ls) in sockets.into_iter().enumerate() {
        let (ev, waker) = event_loop::EventLoop::new(i, ls, bound.unix.as_deref(), shared.clone())
            .map_err(|source| Error::Io { what: "creating an event loop", source })?;
        loops.push(ev);
        wakers.push(waker);
    }
    // Producers of `watch` lines wake the loops that hold watchers.
    shared.watch.set_wakers(
        wakers
            .iter()
            .map(|w| {
                let w = w.clone();
                Box::new(move || {
                    let _ = w.wake();
                }) as Box<dyn Fn() + Send + Sync>
            })
            .collect(),
    );
    let _ = shared.on_shutdown.set(Box::new(move || {
        for w in &wakers {
            let _ = w.wake();
        }
    }));

    let addrs: Vec<String> = bound
        .tcp
        .iter()
        .map(|a| a.to_string())
        .chain(bound.udp.iter().map(|a| format!("udp:{a}")))
        .chain(bound.unix.iter().map(|p| format!("unix:{}", p.display())))
        .collect();
    let flags: Vec<String> = std::env::args().skip(1).collect();
    log::info!(
        "ferrocache {} starting (memcached {} protocol) on {}: {} MB, {} threads, {} shards, max {} connections; flags: {}",
        env!("CARGO_PKG_VERSION"),
        crate::config::MEMCACHED_VERSION,
        addrs.join(","),
        shared.config.storage.memory_limit / crate::storage::MEGABYTE,
        threads,
        shared.store.shard_count(),
        shared.config.server.max_connections,
        flags.join(" ")
    );
    // The loops start before the line below: a daemon that cannot start
    // its threads exits without ever saying it listens.
    let handles: Vec<_> = loops
        .into_iter()
        .enumerate()
        .map(|(i, ev)| std::thread::Builder::new().name(format!("loop-{i}")).spawn(move || ev.run()))
        .collect::<Result<_, _>>()
        .map_err(|source| Error::Io { what: "starting an event loop thread", source })?;
    // The one line tests and scripts wait for.
    println!("ferrocache listening on {}", addrs.join(","));
    if let Some(l) = metrics {
        let addr = l.local_addr().map_err(|source| Error::Io { what: "metrics listener", source })?;
        println!("ferrocache metrics on http://{addr}/metrics");
        log::info!("serving metrics on http://{addr}/metrics");
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || crate::metrics::serve(l, sh))
            .map_err(|source| Error::Io { what: "starting the metrics thread", source })?;
    }
    let _ = std::io::stdout().flush();

    if shared.discovery.follows_dns() {
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("cluster-dns".into())
            .spawn(move || loop {
                std::thread::sleep(sh.config.cluster.poll);
                if sh.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                sh.discovery.poll_dns();
            })
            .map_err(|source| Error::Io { what: "starting the cluster-dns thread", source })?;
    }
    if shared.discovery.view().is_some() || shared.config.config_port.is_some() || shared.discovery.follows_dns() {
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("discovery".into())
            .spawn(move || loop {
                std::thread::sleep(sh.discovery.config().interval);
                if sh.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                sh.discovery.poll_file();
                sh.discovery.check_all();
            })
            .map_err(|source| Error::Io { what: "starting the discovery thread", source })?;
    }
    if shared.discovery.copies() {
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("warm".into())
            .spawn(move || crate::discovery::warm::run(&sh.discovery, &sh.stopping))
            .map_err(|source| Error::Io { what: "starting the warm-join thread", source })?;
    }
    let backups = {
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || crate::backup::run(&sh))
            .map_err(|source| Error::Io { what: "starting the snapshot thread", source })?
    };
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let maint = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("maintenance".into())
            .spawn(move || maintenance(&shared, &stop_rx))
            .map_err(|source| Error::Io { what: "starting the maintenance thread", source })?
    };
    let graceful = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let shared = shared.clone();
        let graceful = graceful.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || loop {
                match sys::wait_signal() {
                    sys::Signal::Stop => {
                        log::info!("SIGTERM/SIGINT received: shutting down");
                        shared.shutdown();
                        return;
                    }
                    sys::Signal::GracefulStop => {
                        log::info!("SIGUSR1 received: shutting down gracefully");
                        graceful.store(true, std::sync::atomic::Ordering::Relaxed);
                        shared.shutdown();
                        return;
                    }
                    sys::Signal::Snapshot => match shared.backup.request(&shared.config, None, "SIGUSR2") {
                        Ok(()) => log::info!("SIGUSR2 received: writing a snapshot"),
                        Err(e) => log::warn!(
                            "SIGUSR2 received: no snapshot written: {}",
                            String::from_utf8_lossy(e.reply()).trim_end()
                        ),
                    },
                    sys::Signal::Hangup => {
                        log::info!("SIGHUP received: re-reading the cluster file");
                        if let Err(e) = shared.discovery.reload_file("SIGHUP") {
                            log::error!("cluster file not reloaded: {e}");
                        }
                    }
                }
            })
            .map_err(|source| Error::Io { what: "starting the signal thread", source })?;
    }

    if let Err(e) =
        notifier.notify(&format!("READY=1\nSTATUS=serving on {}\nMAINPID={}", addrs.join(","), std::process::id()))
    {
        log::warn!("systemd notification failed: {e}");
    }

    for h in handles {
        let _ = h.join();
    }
    let _ = notifier.notify("STOPPING=1");
    let _ = stop_tx.send(());
    let _ = maint.join();
    // A backup being written is finished first; none starts after this.
    shared.backup.stop();
    let _ = backups.join();
    if let Some(path) = &shared.config.snapshot_file {
        let _more_time = notifier.extend_while(&format!("writing {}", path.display()));
        let _ = shared.backup.write_now(&shared, path, "shutdown");
    }
    if let Some(path) = &shared.config.memory_file {
        if graceful.load(std::sync::atomic::Ordering::Relaxed) {
            let _more_time = notifier.extend_while(&format!("writing {}", path.display()));
            match restart::save(&shared.store, path) {
                Ok(s) => log::info!(
                    "restart file {} written: {} items, {} bytes in {:.3} s",
                    path.display(),
                    s.items,
                    s.bytes,
                    s.elapsed.as_secs_f64()
                ),
                Err(e) => log::error!("restart file {} not written: {e}", path.display()),
            }
        } else {
            log::info!("stopped without SIGUSR1: the cache is not kept for the next start (-e)");
        }
    }
    let t = shared.stats.totals();
    log::info!(
        "ferrocache stopped after {:.0} s: {} connections served, {} items in cache",
        started.elapsed().as_secs_f64(),
        t.total_connections,
        shared.store.stats().curr_items
    );
    Ok(())
}

/// Binds every socket the configuration asks for (TCP on `tcp_addrs`, UDP,
/// the unix socket) and hands each loop its share. Writes the
/// `MEMCACHED_PORT_FILENAME` file when that variable is set.
fn bind(config: &Config, tcp_addrs: &[std::net::SocketAddr]) -> Result<(Bound, Vec<LoopSockets>), Error> {
    use std::os::fd::AsRawFd;
    let srv = &config.server;
    let threads = srv.threads;
    let (tcp_bound, tcp) = listener::bind_all(tcp_addrs, threads, srv.backlog)?;
    let (udp_bound, udp) = listener::bind_udp_all(&srv.udp, threads)?;
    let unix = match &srv.unix_socket {
        Some(path) => Some(listener::bind_unix(path, srv.unix_mask, srv.backlog)?),
        None => None,
    };
    if let Some(path) = std::env::var_os("MEMCACHED_PORT_FILENAME") {
        let lines = port_file(&tcp_bound[..srv.listen.len()], &udp_bound);
        if srv.unix_socket.is_none() {
            write_port_file(std::path::Path::new(&path), &lines)
                .map_err(|source| Error::Io { what: "writing MEMCACHED_PORT_FILENAME", source })?;
        }
    }
    let mut bound = Bound { tcp: tcp_bound, udp: udp_bound, unix: srv.unix_socket.clone(), listeners: Vec::new() };
    for (ls, us) in tcp.iter().zip(&udp) {
        for (l, addr) in ls.iter().zip(&bound.tcp) {
            bound.listeners.push(ListenerInfo { fd: l.as_raw_fd(), addr: Endpoint::Tcp(*addr) });
        }
        for (u, addr) in us.iter().zip(&bound.udp) {
            bound.listeners.push(ListenerInfo { fd: u.as_raw_fd(), addr: Endpoint::Udp(*addr) });
        }
    }
    if let (Some(l), Some(path)) = (&unix, &srv.unix_socket) {
        bound.listeners.push(ListenerInfo { fd: l.as_raw_fd(), addr: Endpoint::Unix(path.as_path().into()) });
    }
    let mut per_loop = Vec::with_capacity(threads);
    for (i, (tcp, udp)) in tcp.into_iter().zip(udp).enumerate() {
        let unix = match &unix {
            Some(l) if i > 0 => {
                Some(l.try_clone().map_err(|source| Error::Io { what: "duplicating the unix socket", source })?)
            }
            _ => None,
        };
        per_loop.push(LoopSockets { tcp, udp, unix });
    }
    if let Some(first) = per_loop.first_mut() {
        first.unix = unix;
    }
    Ok((bound, per_loop))
}

/// The lines of memcached's port file: one per bound address.
fn port_file(tcp: &[std::net::SocketAddr], udp: &[std::net::SocketAddr]) -> String {
    let mut out = String::new();
    for (proto, addrs) in [("TCP", tcp), ("UDP", udp)] {
        for a in addrs {
            let family = if a.is_ipv6() { "INET6" } else { "INET" };
            out.push_str(&format!("{proto} {family}: {}\n", a.port()));
        }
    }
    out
}

/// Writes the port file whole: to `PATH.lck`, then renamed, so a reader
/// that sees the file sees all of it.
fn write_port_file(path: &std::path::Path, lines: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".lck");
    std::fs::write(&tmp, lines)?;
    std::fs::rename(&tmp, path)
}

/// The unix socket's file, removed when dropped (the end of [`run`]).
struct UnixFile(std::path::PathBuf);

impl Drop for UnixFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            log::warn!("could not remove unix socket {}: {e}", self.0.display());
        }
    }
}

/// Loads a warm-restart snapshot; a missing file is a cold start, a bad one
/// is refused whole with a log line (the cache starts empty).
fn load_snapshot(store: &Store, path: &std::path::Path, notifier: &Notifier) {
    if !path.exists() {
        log::info!("no snapshot at {}: starting empty", path.display());
        return;
    }
    // A large file may take longer than systemd's start timeout.
    let _more_time = notifier.extend_while(&format!("loading {}", path.display()));
    match snapshot::load(store, path) {
        Ok(s) => log::info!(
            "snapshot {} loaded: {} items ({} expired or dropped), {} bytes in {:.3} s",
            path.display(),
            s.loaded,
            s.dropped,
            s.bytes,
            s.elapsed.as_secs_f64()
        ),
        Err(e) => log::error!("snapshot {} refused ({e}): starting empty", path.display()),
    }
}

fn maintenance(shared: &Shared, stop: &mpsc::Receiver<()>) {
    let mut ticks = 0u32;
    loop {
        match stop.recv_timeout(Duration::from_millis(100)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        shared.store.clock().tick();
        ticks += 1;
        // A requested crawl (`lru_crawler crawl`) goes on every tick.
        shared.store.crawl_job_step(CRAWL_BUDGET);
        // `lru_crawler disable` stops the background crawl; dead items
        // are then reclaimed on access and at the LRU tail only.
        if ticks.is_multiple_of(10) {
            // With the crawler off (`-o no_lru_crawler`, `lru_crawler
            // disable`) a step of no items still runs a delayed flush_all
            // whose time has come.
            let budget = if shared.store.crawler_enabled() { CRAWL_BUDGET } else { 0 };
            let n = shared.store.crawl(budget);
            if n > 0 {
                log::debug!("crawler reclaimed {n} expired items");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogLimiter;

    #[test]
    fn port_file_lines_are_memcached_s() {
        let tcp = ["0.0.0.0:11211".parse().unwrap(), "[::1]:11211".parse().unwrap()];
        let udp = ["127.0.0.1:5000".parse().unwrap()];
        assert_eq!(super::port_file(&tcp, &udp), "TCP INET: 11211\nTCP INET6: 11211\nUDP INET: 5000\n");
        assert_eq!(super::port_file(&[], &[]), "");
    }

    #[test]
    fn one_line_a_second_with_the_dropped_count() {
        let l = LogLimiter::new();
        assert_eq!(l.allow(5), Some(0));
        assert_eq!(l.allow(5), None);
        assert_eq!(l.allow(5), None);
        assert_eq!(l.allow(6), Some(2));
        assert_eq!(l.allow(6), None);
    }
}
