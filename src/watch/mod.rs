//! `watch`: connections that receive a live log of what the cache does
//! (fetches, stores, evictions, connections opened and closed), in
//! memcached's line format (`format.rs`).
//!
//! Producers are the threads that serve requests. Producing costs one
//! relaxed atomic load when nobody watches the event's class
//! ([`Watch::wants`]). When someone does, the producer formats the line
//! and appends it to its own loop's `Ring` (threads that are not event
//! loops share one more ring), under that ring's mutex, for one copy of a
//! line; it never waits for a watcher. A full ring pushes out its oldest
//! lines.
//!
//! Consumers are watcher connections. Each keeps a cursor per ring and
//! copies the lines of its classes into its own output buffer, up to
//! `-o watcher_logbuf_size` bytes of unsent output; a watcher that reads
//! too slowly finds its cursor behind the ring's oldest line, counts the
//! lost lines (`log_watcher_skipped`) and is sent `skipped=N` before the
//! next line. So memory is bounded: `(loops + 1) x worker_logbuf_size`
//! for the rings plus `watcher_logbuf_size` (and one line) per watcher.
//!
//! Delivery: after appending, a producer raises the "lines pending" flag
//! of each loop that has a watcher of that class and, if the flag was
//! down, wakes that loop through its mio `Waker` (one wake per drain, not
//! per line). The woken loop lowers its flag, then lets its watchers read.
//! Lines of one ring keep their order; lines of different loops may
//! interleave out of order (the `gid` orders them), as in memcached.
//!
//! Locks: one mutex per ring, held for one append or one watcher's read
//! (at most `watcher_logbuf_size` bytes copied); an eviction appends while
//! its shard lock is held (shard -> ring, never the reverse). The watcher
//! registry mutex is taken when a watcher starts or ends, never with a
//! ring lock.

mod format;
mod ring;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use parking_lot::Mutex;

pub use crate::protocol::watch_class::{CONNEVENTS, EVICTIONS, FETCHERS, MUTATIONS};
pub use format::{CloseReason, Event, Stamp};
use ring::{Cursor, Ring};

/// Default `-o worker_logbuf_size`: bytes of each loop's ring.
pub const DEFAULT_WORKER_BUF: usize = 64 * 1024;
/// Default `-o watcher_logbuf_size`: unsent bytes a watcher may hold.
pub const DEFAULT_WATCHER_BUF: usize = 256 * 1024;

thread_local! {
    /// The event loop this thread runs, if it is one.
    static LOOP: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Marks the calling thread as event loop `i`: its events go to ring `i`.
pub fn set_current_loop(i: usize) {
    LOOP.with(|l| l.set(i));
}

/// The `stats` figures of the log streams.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// Lines refused by a ring (a line larger than the whole ring).
    pub worker_dropped: u64,
    /// Lines appended to the rings.
    pub worker_written: u64,
    /// Lines watchers lost because they read too slowly.
    pub watcher_skipped: u64,
    /// Lines copied to watchers.
    pub watcher_sent: u64,
    /// Watchers now.
    pub watchers: u64,
}

/// The watcher registry and the rings (see the module doc).
pub struct Watch {
    /// Union of the classes of every watcher: the producers' one check.
    active: AtomicU8,
    gid: AtomicU64,
    /// One ring per event loop, and one for every other thread.
    rings: Box<[Mutex<Ring>]>,
    /// Per loop: union of the classes its watchers want.
    loop_masks: Box<[AtomicU8]>,
    /// Per loop: lines were appended since it last woke for them.
    pending: Box<[AtomicBool]>,
    wakers: OnceLock<Vec<Box<dyn Fn() + Send + Sync>>>,
    /// (watcher id, loop, classes) of each watcher.
    registry: Mutex<Vec<(u64, usize, u8)>>,
    next_id: AtomicU64,
    count: AtomicUsize,
    skipped: AtomicU64,
    sent: AtomicU64,
    /// The counters at the last `stats reset`, subtracted in `figures`.
    baseline: Mutex<Figures>,
    watcher_buf: usize,
}

impl Watch {
    /// Rings for `loops` event loops (plus one) of `worker_buf` bytes;
    /// each watcher holds at most `watcher_buf` bytes of unsent lines.
    pub fn new(loops: usize, worker_buf: usize, watcher_buf: usize) -> Watch {
        Watch {
            active: AtomicU8::new(0),
            gid: AtomicU64::new(0),
            rings: (0..=loops).map(|_| Mutex::new(Ring::new(worker_buf))).collect(),
            loop_masks: (0..loops).map(|_| AtomicU8::new(0)).collect(),
            pending: (0..loops).map(|_| AtomicBool::new(false)).collect(),
            wakers: OnceLock::new(),
            registry: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            count: AtomicUsize::new(0),
            skipped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            baseline: Mutex::new(Figures::default()),
            watcher_buf,
        }
    }

    /// Installs one wake function per event loop (the server does, once).
    pub fn set_wakers(&self, wakers: Vec<Box<dyn Fn() + Send + Sync>>) {
        let _ = self.wakers.set(wakers);
    }

    /// Whether any watcher wants events of `class`: one relaxed load.
    #[inline]
    pub fn wants(&self, class: u8) -> bool {
        self.active.load(Ordering::Relaxed) & class != 0
    }

    /// Logs `ev` of `class` if anyone watches that class.
    #[inline]
    pub fn log(&self, class: u8, ev: &Event<'_>) {
        if self.wants(class) {
            self.append(class, ev);
        }
    }

    #[cold]
    fn append(&self, class: u8, ev: &Event<'_>) {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let ts = Stamp { secs: now.as_secs(), micros: now.subsec_micros() };
        let gid = self.gid.fetch_add(1, Ordering::Relaxed);
        let mut line = Vec::with_capacity(256);
        format::line(ev, ts, gid, &mut line);
        let ring = LOOP.with(|l| l.get()).min(self.rings.len() - 1);
        self.rings[ring].lock().push(class, &line);
        for (i, mask) in self.loop_masks.iter().enumerate() {
            if mask.load(Ordering::Relaxed) & class != 0 && !self.pending[i].swap(true, Ordering::AcqRel) {
                if let Some(wake) = self.wakers.get().and_then(|w| w.get(i)) {
                    wake();
                }
            }
        }
    }

    /// Called by loop `i` when woken: lowers its flag before its watchers
    /// read, so a line appended after their read wakes it again.
    pub fn woken(&self, i: usize) {
        if let Some(p) = self.pending.get(i) {
            p.store(false, Ordering::SeqCst);
        }
    }

    /// Starts a watcher of `classes` on the calling loop; it sees events
    /// from now on. Ends when the returned [`Watcher`] is dropped.
    pub fn watch(self: &Arc<Self>, classes: u8) -> Watcher {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let lp = LOOP.with(|l| l.get());
        {
            let mut reg = self.registry.lock();
            reg.push((id, lp, classes));
            self.recompute(&reg);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let cursors = self.rings.iter().map(|r| r.lock().cursor()).collect();
        Watcher { hub: self.clone(), id, classes, cursors }
    }

    fn recompute(&self, reg: &[(u64, usize, u8)]) {
        let mut all = 0;
        let mut per_loop = vec![0u8; self.loop_masks.len()];
        for &(_, lp, classes) in reg {
            all |= classes;
            if let Some(m) = per_loop.get_mut(lp) {
                *m |= classes;
            }
        }
        for (m, v) in self.loop_masks.iter().zip(per_loop) {
            m.store(v, Ordering::SeqCst);
        }
        self.active.store(all, Ordering::SeqCst);
    }

    /// The figures `stats` reports: the line counters since the last
    /// `stats reset` (as memcached's, which that command zeroes), and the
    /// watchers now.
    pub fn figures(&self) -> Figures {
        let raw = self.raw_figures();
        let base = *self.baseline.lock();
        Figures {
            worker_dropped: raw.worker_dropped.saturating_sub(base.worker_dropped),
            worker_written: raw.worker_written.saturating_sub(base.worker_written),
            watcher_skipped: raw.watcher_skipped.saturating_sub(base.watcher_skipped),
            watcher_sent: raw.watcher_sent.saturating_sub(base.watcher_sent),
            watchers: raw.watchers,
        }
    }

    /// `stats reset`: the line counters count from zero again.
    pub fn reset_figures(&self) {
        *self.baseline.lock() = self.raw_figures();
    }

    /// The counters since the start.
    fn raw_figures(&self) -> Figures {
        let mut f = Figures {
            watcher_skipped: self.skipped.load(Ordering::Relaxed),
            watcher_sent: self.sent.load(Ordering::Relaxed),
            watchers: self.count.load(Ordering::Relaxed) as u64,
            ..Figures::default()
        };
        for r in self.rings.iter() {
            let r = r.lock();
            f.worker_dropped += r.dropped;
            f.worker_written += r.written;
        }
        f
    }
}

/// One watching connection's place in every ring.
pub struct Watcher {
    hub: Arc<Watch>,
    id: u64,
    classes: u8,
    cursors: Vec<Cursor>,
}

impl Watcher {
    /// Appends the lines waiting for this watcher to `out` while `out`
    /// holds fewer than `watcher_logbuf_size` bytes; returns the bytes
    /// added (0: nothing is waiting, or no room).
    pub fn fill(&mut self, out: &mut Vec<u8>) -> usize {
        let limit = self.hub.watcher_buf;
        let before = out.len();
        let mut sent = 0;
        for (ring, cur) in self.hub.rings.iter().zip(self.cursors.iter_mut()) {
            if out.len() >= limit {
                break;
            }
            let ring = ring.lock();
            // A read of nothing moves a cursor that fell behind to the
            // oldest line kept and counts what it lost, so the `skipped=`
            // line goes out before the lines after the gap.
            let lost = ring.read(cur, self.classes, &mut Vec::new(), 0).skipped;
            if lost > 0 {
                self.hub.skipped.fetch_add(lost, Ordering::Relaxed);
                out.extend_from_slice(format!("skipped={lost}\n").as_bytes());
            }
            sent += ring.read(cur, self.classes, out, limit).lines;
        }
        self.hub.sent.fetch_add(sent, Ordering::Relaxed);
        out.len() - before
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let mut reg = self.hub.registry.lock();
        reg.retain(|w| w.0 != self.id);
        self.hub.recompute(&reg);
        self.hub.count.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
