//! Detailed per-prefix statistics (`stats detail on|off|dump`, `-D`).
//!
//! While enabled, every get, set and delete whose key holds the prefix
//! delimiter (`:` unless `-D` names another byte) counts against the key's
//! prefix: the bytes before the first delimiter. Keys without a delimiter
//! are not counted, as in memcached.
//!
//! The table is bounded: it keeps at most [`MAX_PREFIXES`] prefixes.
//! memcached's table grows without a limit, so a client cycling through
//! prefixes grows the daemon's memory for as long as detail is on. Here a
//! prefix first seen once the table is full is not counted; how many
//! requests were not counted that way is kept (`stats settings`
//! `detail_dropped`), so an operator can tell the dump is partial.
//! `stats reset` empties the table.
//!
//! One mutex guards the table. It is taken only while detail is on (one
//! relaxed load otherwise), for one hash lookup per counted key; detail
//! stats are a debugging aid that memcached also serialises on one lock.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

/// Most prefixes the table keeps.
pub const MAX_PREFIXES: usize = 4096;

/// Counts for one prefix.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PrefixCounts {
    pub get: u64,
    pub hit: u64,
    pub set: u64,
    pub del: u64,
}

/// Which counter a request adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A lookup; `true` if it found the key.
    Get(bool),
    Set,
    Delete,
}

/// The prefix table and its switch.
pub struct Detail {
    enabled: AtomicBool,
    delimiter: u8,
    table: Mutex<HashMap<Box<[u8]>, PrefixCounts>>,
    dropped: AtomicU64,
}

impl Detail {
    /// A table splitting keys at `delimiter`; `enabled` as `-D` asks.
    pub fn new(delimiter: u8, enabled: bool) -> Detail {
        Detail {
            enabled: AtomicBool::new(enabled),
            delimiter,
            table: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Requests not counted because the table was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts `event` for `key`'s prefix, if detail is on and the key has one.
    #[inline]
    pub fn record(&self, key: &[u8], event: Event) {
        if !self.enabled() {
            return;
        }
        let Some(end) = key.iter().position(|&b| b == self.delimiter) else { return };
        let prefix = &key[..end];
        let mut table = self.table.lock();
        if !table.contains_key(prefix) {
            if table.len() >= MAX_PREFIXES {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            table.insert(prefix.into(), PrefixCounts::default());
        }
        let Some(counts) = table.get_mut(prefix) else { return };
        match event {
            Event::Get(hit) => {
                counts.get += 1;
                counts.hit += u64::from(hit);
            }
            Event::Set => counts.set += 1,
            Event::Delete => counts.del += 1,
        }
    }

    /// Forgets every prefix (`stats reset`).
    pub fn reset(&self) {
        self.table.lock().clear();
        self.dropped.store(0, Ordering::Relaxed);
    }

    /// The `stats detail dump` text: one `PREFIX` line per prefix, sorted
    /// by prefix so that dumps compare, then `END`.
    pub fn dump(&self) -> String {
        let mut rows: Vec<(Box<[u8]>, PrefixCounts)> = self.table.lock().iter().map(|(k, v)| (k.clone(), *v)).collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::with_capacity(rows.len() * 48 + 5);
        for (prefix, c) in rows {
            let _ = write!(
                out,
                "PREFIX {} get {} hit {} set {} del {}\r\n",
                String::from_utf8_lossy(&prefix),
                c.get,
                c.hit,
                c.set,
                c.del
            );
        }
        out.push_str("END\r\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_while_enabled_and_only_prefixed_keys() {
        let d = Detail::new(b':', false);
        d.record(b"foo:1", Event::Set);
        assert_eq!(d.dump(), "END\r\n");
        d.set_enabled(true);
        d.record(b"foo:1", Event::Set);
        d.record(b"foo:1", Event::Get(true));
        d.record(b"foo:2", Event::Get(false));
        d.record(b"foo:3", Event::Delete);
        d.record(b"nodelim", Event::Set);
        d.record(b":empty", Event::Set);
        assert_eq!(d.dump(), "PREFIX  get 0 hit 0 set 1 del 0\r\nPREFIX foo get 2 hit 1 set 1 del 1\r\nEND\r\n");
        d.reset();
        assert_eq!(d.dump(), "END\r\n");
    }

    #[test]
    fn other_delimiter() {
        let d = Detail::new(b'/', true);
        d.record(b"a/b:c", Event::Set);
        d.record(b"a:b", Event::Set);
        assert_eq!(d.dump(), "PREFIX a get 0 hit 0 set 1 del 0\r\nEND\r\n");
    }

    #[test]
    fn table_is_bounded() {
        let d = Detail::new(b':', true);
        for i in 0..MAX_PREFIXES + 10 {
            d.record(format!("p{i}:k").as_bytes(), Event::Set);
        }
        assert_eq!(d.table.lock().len(), MAX_PREFIXES);
        assert_eq!(d.dropped(), 10);
        // Known prefixes still count once the table is full.
        d.record(b"p0:k", Event::Set);
        assert_eq!(d.table.lock()[&b"p0"[..]].set, 2);
    }
}
