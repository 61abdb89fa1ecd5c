//! The store's coarse clock: whole seconds since the process started.
//!
//! memcached keeps a `rel_time_t current_time` that a timer bumps once a
//! second; item expiry and access times are stored relative to process start
//! so they fit in 32 bits. We do the same. A real clock is advanced by the
//! maintenance thread ([`Clock::tick`]); tests build a manual clock and move
//! it with [`Clock::advance`], so TTL tests never sleep.
//!
//! This module does not read the wall clock on the request path: `now()` is
//! one relaxed atomic load.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Relative time starts here rather than at zero, so that the value 1, used
/// for "already expired", is always in the past (memcached does the same).
const START: u32 = 2;

/// memcached treats an exptime above 30 days as an absolute unix time.
pub const MAX_RELATIVE_EXPTIME: i64 = 60 * 60 * 24 * 30;

/// Seconds since process start, shared by the store and the event loops.
#[derive(Debug)]
pub struct Clock {
    now: AtomicU32,
    /// Unix time at relative time zero.
    epoch_unix: u64,
    /// `None` for a manual clock.
    base: Option<Instant>,
}

impl Clock {
    /// A clock that follows real time once [`Clock::tick`] is called.
    pub fn system() -> Clock {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Clock {
            now: AtomicU32::new(START),
            epoch_unix: unix.saturating_sub(u64::from(START)),
            base: Some(Instant::now()),
        }
    }

    /// A clock that only moves when told to; `unix_start` is the unix time
    /// it reports at its start.
    pub fn manual(unix_start: u64) -> Clock {
        Clock { now: AtomicU32::new(START), epoch_unix: unix_start.saturating_sub(u64::from(START)), base: None }
    }

    /// Current relative time in seconds.
    #[inline]
    pub fn now(&self) -> u32 {
        self.now.load(Ordering::Relaxed)
    }

    /// Current unix time in seconds, at the clock's resolution.
    pub fn unix_now(&self) -> u64 {
        self.epoch_unix + u64::from(self.now())
    }

    /// Unix time of relative time `rel`.
    pub fn to_unix(&self, rel: u32) -> u64 {
        self.epoch_unix + u64::from(rel)
    }

    /// Unix time the process started at.
    pub fn started_unix(&self) -> u64 {
        self.epoch_unix + u64::from(START)
    }

    /// Re-reads the monotonic clock; no-op for a manual clock.
    pub fn tick(&self) {
        if let Some(base) = self.base {
            let secs = base.elapsed().as_secs().min(u64::from(u32::MAX - START));
            self.now.store(START + secs as u32, Ordering::Relaxed);
        }
    }

    /// Moves a manual clock forward (tests).
    pub fn advance(&self, secs: u32) {
        self.now.fetch_add(secs, Ordering::Relaxed);
    }

    /// Converts a protocol exptime to relative time, as memcached's
    /// `realtime()`: 0 is "never" (0), a negative value is "already expired"
    /// (1), up to 30 days is relative to now, larger is an absolute unix time.
    pub fn exptime_to_rel(&self, exptime: i64) -> u32 {
        if exptime == 0 {
            return 0;
        }
        if exptime < 0 {
            return 1;
        }
        if exptime > MAX_RELATIVE_EXPTIME {
            let exptime = exptime as u64;
            if exptime <= self.started_unix() {
                return 1;
            }
            let rel = exptime - self.epoch_unix;
            return rel.min(u64::from(u32::MAX)) as u32;
        }
        let rel = u64::from(self.now()) + exptime as u64;
        rel.min(u64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(1_000_000);
        assert_eq!(c.now(), START);
        c.tick();
        assert_eq!(c.now(), START);
        c.advance(10);
        assert_eq!(c.now(), START + 10);
        assert_eq!(c.unix_now(), 1_000_010);
    }

    #[test]
    fn exptime_conversion_follows_memcached() {
        let c = Clock::manual(2_000_000_000);
        assert_eq!(c.exptime_to_rel(0), 0);
        assert_eq!(c.exptime_to_rel(-1), 1);
        assert_eq!(c.exptime_to_rel(100), START + 100);
        assert_eq!(c.exptime_to_rel(MAX_RELATIVE_EXPTIME), START + 2_592_000);
        // absolute in the past: expired
        assert_eq!(c.exptime_to_rel(MAX_RELATIVE_EXPTIME + 1), 1);
        // absolute in the future
        assert_eq!(c.exptime_to_rel(2_000_000_100), START + 100);
    }
}
