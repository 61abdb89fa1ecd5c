//! Backups while serving: the `snapshot [NAME]` command, SIGUSR2 and
//! `--snapshot-interval` ask the `snapshot` thread for a snapshot file
//! (`storage::snapshot`), written shard by shard while the event loops go
//! on serving.
//!
//! One snapshot is written at a time: a request while one is pending or
//! being written is refused (`BUSY`), and the periodic one waits its turn.
//! Where files go: plain `snapshot`, SIGUSR2 and the interval write the
//! warm-restart file (`--snapshot-file`), so a crash loses at most an
//! interval and the next start loads it; `snapshot NAME` writes NAME in the
//! snapshot directory (`--snapshot-dir`, default: the warm-restart file's
//! directory). NAME is a plain file name: a client cannot choose where on
//! the disk the daemon writes.
//!
//! Lock order: the request state, or the write lock alone (the thread
//! never holds both).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::Config;
use crate::state::Shared;
use crate::storage::snapshot;

/// Longest `snapshot NAME` accepted (a file name on Linux).
const MAX_NAME: usize = 255;

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

/// The file a request writes (see the module doc).
pub fn target(config: &Config, name: Option<&[u8]>) -> Result<PathBuf, Refused> {
    match name {
        None => config.snapshot_file.clone().ok_or(Refused::NoFile),
        Some(n) if !valid_name(n) => Err(Refused::BadName),
        Some(n) => {
            let dir = config.snapshot_dir.as_ref().ok_or(Refused::NoDir)?;
            Ok(dir.join(String::from_utf8_lossy(n).as_ref()))
        }
    }
}

impl Backups {
    /// Asks the backup thread for a snapshot (see [`target`] for `name`);
    /// `why` goes into the log line.
    pub fn request(&self, config: &Config, name: Option<&[u8]>, why: &'static str) -> Result<(), Refused> {
        let path = target(config, name)?;
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
        self.requests.lock().stop = true;
        self.wake.notify_one();
    }

    /// Writes a snapshot of the store to `path` now, on this thread,
    /// after any other write has finished; logs and counts the outcome.
    pub fn write_now(&self, sh: &Shared, path: &std::path::Path, why: &str) -> Result<snapshot::Summary, String> {
        let _one_at_a_time = self.write_lock.lock();
        match snapshot::write(&sh.store, path) {
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
        // The directory of the warm-restart file, unless --snapshot-dir.
        assert_eq!(target(&c, Some(b"n1")), Ok(PathBuf::from("/var/lib/fc/n1")));
        let d = config(&["--snapshot-file", "cache.snap", "--snapshot-dir", "/backups"]);
        assert_eq!(target(&d, Some(b"n1")), Ok(PathBuf::from("/backups/n1")));
        assert_eq!(target(&config(&["--snapshot-file", "cache.snap"]), Some(b"n1")), Ok(PathBuf::from("./n1")));
        assert_eq!(target(&config(&["-e", "/m/file"]), Some(b"n1")), Ok(PathBuf::from("/m/n1")));
        let none = config(&[]);
        assert_eq!(target(&none, None), Err(Refused::NoFile));
        assert_eq!(target(&none, Some(b"n1")), Err(Refused::NoDir));
        assert_eq!(target(&c, Some(b"../n1")), Err(Refused::BadName));
        b.stop();
        b.requests.lock().pending = None;
        assert_eq!(b.request(&c, None, "test"), Err(Refused::Stopping));
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
