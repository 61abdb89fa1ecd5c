//! Backups while serving: the `snapshot [NAME]` command, SIGUSR2 and
//! `--snapshot-interval` ask the `snapshot` thread for a snapshot file
//! (`storage::snapshot`), written shard by shard while the event loops go
//! on serving.
//!
//! One snapshot is written at a time: a request while one is pending or
//! being written is refused (`BUSY`), and the periodic one waits its turn.
//! Where files go: plain `snapshot`, SIGUSR2 and the interval write the
//! warm-restart file (`--snapshot-file`), so a crash loses at most an
//! interval and the next start loads it; `snapshot NAME` writes
//! `NAME.snapshot` (NAME as it is if it already ends so) in the snapshot
//! directory (`--snapshot-dir`, default: the warm-restart file's
//! directory). NAME is a plain file name and the suffix is fixed, so a
//! client cannot choose where on the disk the daemon writes, nor replace a
//! file the daemon keeps there (the warm-restart file and FILE.meta, the
//! cluster file's `.version`, keys...): a name whose file, or its temp
//! file, would be one of the configured files or their side files is
//! refused. Each named snapshot is a full copy of the cache, so a new name
//! is refused while the directory holds `--snapshot-max-named` of them.
//!
//! A backup while serving is written at `--snapshot-rate` (default
//! [`crate::config::DEFAULT_SNAPSHOT_RATE`] MB/s) and written back to the
//! disk as it goes, so it never floods the page cache and the disk under
//! the event loops (the thread keeps its normal priority then, see
//! [`run`]; with `--snapshot-rate 0` it runs at nice 19); the snapshot at shutdown (and the `-e` restart file)
//! is not held back, nobody being served then, and a backup still being
//! written when the daemon stops drops its rate limit.
//!
//! Lock order: the request state, or the write lock alone (the thread
//! never holds both).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::Config;
use crate::state::Shared;
use crate::storage::snapshot;

/// Longest `snapshot NAME` accepted (a file name on Linux).
const MAX_NAME: usize = 255;
/// What the file of a named snapshot ends with.
pub const SUFFIX: &str = ".snapshot";
/// Longest file name of a named snapshot: its temp file (`.tmp` added)
/// must still be a file name.
const MAX_FILE_NAME: usize = MAX_NAME - ".tmp".len();

/// Why a snapshot request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// One is pending or being written.
    Busy,
    /// Plain `snapshot` without `--snapshot-file`.
    NoFile,
    /// `snapshot NAME` without a snapshot directory.
    NoDir,
    /// NAME is not a plain file name.
    BadName,
    /// NAME's file is one the daemon keeps for another use.
    Reserved,
    /// The directory holds `--snapshot-max-named` snapshots already.
    TooMany,
    /// The daemon is stopping.
    Stopping,
}

impl Refused {
    /// The reply line of the `snapshot` command.
    pub fn reply(self) -> &'static [u8] {
        match self {
            Refused::Busy => b"BUSY currently writing a snapshot\r\n",
            Refused::NoFile => b"SERVER_ERROR no snapshot file (--snapshot-file); give a name\r\n",
            Refused::NoDir => b"SERVER_ERROR no snapshot directory (--snapshot-dir)\r\n",
            Refused::BadName => b"CLIENT_ERROR bad snapshot name\r\n",
            Refused::Reserved => b"CLIENT_ERROR snapshot name is a file the server uses\r\n",
            Refused::TooMany => b"SERVER_ERROR too many named snapshots (--snapshot-max-named)\r\n",
            Refused::Stopping => b"SERVER_ERROR shutting down\r\n",
        }
    }
}

#[derive(Default)]
struct Requests {
    /// The next file to write, and who asked.
    pending: Option<(PathBuf, &'static str)>,
    /// A file is being written.
    writing: bool,
    stop: bool,
}

/// The backup thread's inbox and its figures (read by `/metrics`).
#[derive(Default)]
pub struct Backups {
    requests: Mutex<Requests>,
    wake: Condvar,
    /// Held while any snapshot file is written, the one at shutdown too.
    write_lock: Mutex<()>,
    /// Set by [`Backups::stop`]: a backup being written drops its rate
    /// limit, so the shutdown does not wait for it at `--snapshot-rate`.
    hurry: AtomicBool,
    /// Snapshots written, and failed.
    pub written: AtomicU64,
    pub failed: AtomicU64,
    /// The last good one: unix time it completed, items, bytes, duration
    /// and longest shard lock (microseconds).
    pub last_unix: AtomicU64,
    pub last_items: AtomicU64,
    pub last_bytes: AtomicU64,
    pub last_duration_us: AtomicU64,
    pub last_lock_us: AtomicU64,
}

/// Whether `name` may be a snapshot's file name: 1..=255 bytes of letters,
/// digits, `.`, `_`, `-`, not starting with a dot.
fn valid_name(name: &[u8]) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name[0] != b'.'
        && name.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `path` with `ext` added to its file name.
fn with_added(path: &Path, ext: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(ext);
    PathBuf::from(p)
}

/// The files the daemon reads or writes for other uses than named
/// snapshots, side files included: none may be a named snapshot's file or
/// its temp file.
fn reserved_files(config: &Config) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for warm in [&config.snapshot_file, &config.memory_file].into_iter().flatten() {
        let meta = crate::server::restart::meta_path(warm);
        out.extend([snapshot::tmp_path(warm), snapshot::tmp_path(&meta), meta, warm.clone()]);
    }
    if let Some(cluster) = &config.discovery.cluster_file {
        let version = with_added(cluster, ".version");
        out.extend([snapshot::tmp_path(&version), version, cluster.clone()]);
    }
    if let Some(tls) = &config.server.tls {
        out.extend([&tls.chain_cert, &tls.key, &tls.ca_cert].into_iter().flatten().cloned());
    }
    out.extend([&config.pidfile, &config.logfile, &config.server.unix_socket].into_iter().flatten().cloned());
    out
}

/// Whether `a` and `b` name the same file: the same file name in the same
/// directory, however the directory is spelled.
fn same_file(a: &Path, b: &Path) -> bool {
    let dir = |p: &Path| {
        let d = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf())
    };
    a.file_name().is_some() && a.file_name() == b.file_name() && dir(a) == dir(b)
}

/// The file a request writes (see the module doc).
pub fn target(config: &Config, name: Option<&[u8]>) -> Result<PathBuf, Refused> {
    let n = match name {
        None => return config.snapshot_file.clone().ok_or(Refused::NoFile),
        Some(n) if !valid_name(n) => return Err(Refused::BadName),
        Some(n) => String::from_utf8_lossy(n),
    };
    let file = if n.ends_with(SUFFIX) { n.into_owned() } else { format!("{n}{SUFFIX}") };
    if file.len() > MAX_FILE_NAME {
        return Err(Refused::BadName);
    }
    let path = config.snapshot_dir.as_ref().ok_or(Refused::NoDir)?.join(file);
    let tmp = snapshot::tmp_path(&path);
    if reserved_files(config).iter().any(|r| same_file(r, &path) || same_file(r, &tmp)) {
        return Err(Refused::Reserved);
    }
    Ok(path)
}

/// Whether a snapshot to `path` must be refused for
/// `--snapshot-max-named`: a new file where `max` or more named snapshots
/// are already (replacing one adds nothing).
fn too_many(path: &Path, max: usize) -> bool {
    if max == 0 || path.exists() {
        return false;
    }
    let Some(Ok(entries)) = path.parent().map(std::fs::read_dir) else {
        return false;
    };
    let named = entries.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(SUFFIX));
    named.take(max).count() >= max
}

impl Backups {
    /// Asks the backup thread for a snapshot (see [`target`] for `name`);
    /// `why` goes into the log line.
    pub fn request(&self, config: &Config, name: Option<&[u8]>, why: &'static str) -> Result<(), Refused> {
        let path = target(config, name)?;
        if name.is_some() && too_many(&path, config.snapshot_max_named) {
            return Err(Refused::TooMany);
        }
        let mut r = self.requests.lock();
        if r.stop {
            return Err(Refused::Stopping);
        }
        if r.writing || r.pending.is_some() {
            return Err(Refused::Busy);
        }
        r.pending = Some((path, why));
        self.wake.notify_one();
        Ok(())
    }

    /// Ends [`run`] once the snapshot it is writing, if any, is done.
    pub fn stop(&self) {
        self.hurry.store(true, Ordering::Relaxed);
        self.requests.lock().stop = true;
        self.wake.notify_one();
    }

    /// Writes a snapshot of the store to `path` now, on this thread,
    /// after any other write has finished; logs and counts the outcome.
    /// While clients are served the file is written at `--snapshot-rate`
    /// and written back as it goes (`storage::writeback`); once [`stop`]
    /// has asked for haste (shutdown), as fast as it goes.
    ///
    /// [`stop`]: Backups::stop
    pub fn write_now(&self, sh: &Shared, path: &std::path::Path, why: &str) -> Result<snapshot::Summary, String> {
        let _one_at_a_time = self.write_lock.lock();
        let pace = if self.hurry.load(Ordering::Relaxed) {
            snapshot::Pace::UNPACED
        } else {
            snapshot::Pace { rate: sh.config.snapshot_rate, writeback: true, hurry: Some(&self.hurry) }
        };
        match snapshot::write(&sh.store, path, &pace) {
            Ok(s) => {
                log::info!(
                    "snapshot written to {}: {} items, {} bytes in {:.3} s, longest shard lock {:.1} ms ({why})",
                    path.display(),
                    s.items,
                    s.bytes,
                    s.elapsed.as_secs_f64(),
                    s.longest_lock.as_secs_f64() * 1e3
                );
                let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                self.last_items.store(s.items, Ordering::Relaxed);
                self.last_bytes.store(s.bytes, Ordering::Relaxed);
                self.last_duration_us.store(us(s.elapsed), Ordering::Relaxed);
                self.last_lock_us.store(us(s.longest_lock), Ordering::Relaxed);
                self.last_unix.store(sh.store.clock().unix_now(), Ordering::Relaxed);
                self.written.fetch_add(1, Ordering::Relaxed);
                Ok(s)
            }
            Err(e) => {
                log::error!("snapshot to {} failed ({why}): {e}", path.display());
                let _ = std::fs::remove_file(snapshot::tmp_path(path));
                self.failed.fetch_add(1, Ordering::Relaxed);
                Err(e.to_string())
            }
        }
    }
}

/// The `snapshot` thread: writes requested snapshots, and the warm-restart
/// file every `--snapshot-interval`, until [`Backups::stop`].
pub fn run(sh: &Shared) {
    // An unpaced backup would take a whole CPU from the loops: it runs at
    // nice 19. A paced one uses a small share of a CPU and keeps the
    // normal priority, because it takes the shard locks: at nice 19, a
    // thread preempted while holding one (on a busy machine) is not run
    // again for tens or hundreds of milliseconds, and the shard's clients
    // wait that long.
    if sh.config.snapshot_rate == 0 {
        if let Err(e) = crate::sys::lower_thread_priority() {
            log::debug!("snapshot thread keeps its priority: {e}");
        }
    }
    let b = &sh.backup;
    let interval = sh.config.snapshot_interval;
    let mut next = interval.map(|i| Instant::now() + i);
    loop {
        let ((path, why), periodic) = {
            let mut r = b.requests.lock();
            let job = loop {
                if r.stop {
                    return;
                }
                if let Some(job) = r.pending.take() {
                    break (job, false);
                }
                match (next, &sh.config.snapshot_file) {
                    (Some(at), Some(file)) if Instant::now() >= at => break ((file.clone(), "interval"), true),
                    (Some(at), _) => {
                        b.wake.wait_until(&mut r, at);
                    }
                    (None, _) => b.wake.wait(&mut r),
                }
            };
            r.writing = true;
            job
        };
        let _ = b.write_now(sh, &path, why);
        b.requests.lock().writing = false;
        if periodic {
            next = interval.map(|i| Instant::now() + i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut full = vec!["ferrocache"];
        full.extend_from_slice(args);
        Config::parse_from(full).unwrap()
    }

    #[test]
    fn one_request_at_a_time_and_files_where_the_flags_say() {
        let c = config(&["--snapshot-file", "/var/lib/fc/cache.snap"]);
        let b = Backups::default();
        assert_eq!(b.request(&c, None, "test"), Ok(()));
        // Not taken by a snapshot thread yet: the next one is refused.
        assert_eq!(b.request(&c, Some(b"other"), "test"), Err(Refused::Busy));
        assert_eq!(b.requests.lock().pending.as_ref().unwrap().0, PathBuf::from("/var/lib/fc/cache.snap"));
        // NAME.snapshot in the directory of the warm-restart file, unless
        // --snapshot-dir.
        assert_eq!(target(&c, Some(b"n1")), Ok(PathBuf::from("/var/lib/fc/n1.snapshot")));
        assert_eq!(target(&c, Some(b"n1.snapshot")), Ok(PathBuf::from("/var/lib/fc/n1.snapshot")));
        let d = config(&["--snapshot-file", "cache.snap", "--snapshot-dir", "/backups"]);
        assert_eq!(target(&d, Some(b"n1")), Ok(PathBuf::from("/backups/n1.snapshot")));
        let here = config(&["--snapshot-file", "cache.snap"]);
        assert_eq!(target(&here, Some(b"n1")), Ok(PathBuf::from("./n1.snapshot")));
        assert_eq!(target(&config(&["-e", "/m/file"]), Some(b"n1")), Ok(PathBuf::from("/m/n1.snapshot")));
        // The name and its temp file must fit in a file name.
        assert!(target(&c, Some(&[b'x'; 242])).is_ok());
        assert_eq!(target(&c, Some(&[b'x'; 243])), Err(Refused::BadName));
        let none = config(&[]);
        assert_eq!(target(&none, None), Err(Refused::NoFile));
        assert_eq!(target(&none, Some(b"n1")), Err(Refused::NoDir));
        assert_eq!(target(&c, Some(b"../n1")), Err(Refused::BadName));
        b.stop();
        b.requests.lock().pending = None;
        assert_eq!(b.request(&c, None, "test"), Err(Refused::Stopping));
    }

    #[test]
    fn no_name_reaches_a_file_the_server_keeps() {
        let dir = std::env::temp_dir().join(format!("ferrocache-backup-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.to_str().unwrap();
        let at = |f: &str| format!("{d}/{f}");
        // The warm-restart file and its side files, even when the directory
        // is spelled another way.
        let snap = config(&["--snapshot-file", &at("w.snapshot"), "--snapshot-dir", &format!("{d}/./")]);
        for name in [&b"w"[..], b"w.snapshot"] {
            assert_eq!(target(&snap, Some(name)), Err(Refused::Reserved), "{name:?}");
        }
        let warm = config(&["-e", &at("m.snapshot.tmp")]);
        assert_eq!(target(&warm, Some(b"m")), Err(Refused::Reserved), "its temp file would be the -e file");
        let meta = config(&["-e", &at("cache")]);
        assert_eq!(target(&meta, Some(b"cache.meta")), Ok(dir.join("cache.meta.snapshot")));
        let cluster = config(&["--cluster-file", &at("c"), "--snapshot-dir", d, "-P", &at("p.snapshot")]);
        for name in [&b"p"[..], b"p.snapshot"] {
            assert_eq!(target(&cluster, Some(name)), Err(Refused::Reserved), "{name:?}");
        }
        assert_eq!(target(&cluster, Some(b"c.version")), Ok(dir.join("c.version.snapshot")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn new_names_stop_at_the_cap_but_one_may_be_replaced() {
        let dir = std::env::temp_dir().join(format!("ferrocache-backup-cap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let c = config(&["--snapshot-dir", dir.to_str().unwrap(), "--snapshot-max-named", "2"]);
        let b = Backups::default();
        std::fs::write(dir.join("a.snapshot"), b"").unwrap();
        std::fs::write(dir.join("other.snap"), b"").unwrap();
        assert_eq!(b.request(&c, Some(b"b"), "test"), Ok(()));
        b.requests.lock().pending = None;
        std::fs::write(dir.join("b.snapshot"), b"").unwrap();
        assert_eq!(b.request(&c, Some(b"c"), "test"), Err(Refused::TooMany));
        assert_eq!(b.request(&c, Some(b"a"), "test"), Ok(()), "replacing one adds nothing");
        b.requests.lock().pending = None;
        let unlimited = config(&["--snapshot-dir", dir.to_str().unwrap(), "--snapshot-max-named", "0"]);
        assert_eq!(b.request(&unlimited, Some(b"c"), "test"), Ok(()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_are_plain_file_names() {
        for good in [&b"a"[..], b"nightly.snap", b"node-1_2026.12.04", &[b'x'; 255]] {
            assert!(valid_name(good), "{good:?}");
        }
        for bad in
            [&b""[..], b".", b"..", b".hidden", b"../etc/passwd", b"a/b", b"/abs", b"sp ace", b"a\0", &[b'x'; 256]]
        {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
