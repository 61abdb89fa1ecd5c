//! `stats sizes`: how many linked items there are of each total size, in
//! memcached's 32-byte buckets (an item of 65 to 96 bytes counts under
//! `96`).
//!
//! Each shard keeps its own [`SizeHistogram`], changed under the shard
//! lock when an item is linked or unlinked and only while tracking is on
//! (the shard holds `None` otherwise: one branch per link). `stats sizes`
//! sums the shards with [`SizeHistogram::merge_into`]. The size counted is
//! the item's length in its chunk here (header, flags, key, value: what
//! picks its slab class and what `mem_requested` adds up), not memcached's
//! larger item header, so the histogram speaks of this cache's classes.
//!
//! Tracking may start on a full cache. Items linked before it started were
//! never counted, so unlinking them must not count either: as memcached
//! does, a histogram counts only items whose CAS is at least the shard's
//! next CAS when it started (CAS values only grow within a shard), and
//! every in-place CAS change goes through `Shard::set_cas`, which moves
//! the item out of the old CAS's reckoning and into the new one's.
//! This file does not decide when tracking starts or stops (`Store`).

use super::items::SHARD_BITS;
use super::Store;

/// Bytes per bucket, as memcached reports them.
pub const BUCKET_BYTES: usize = 32;

/// One shard's counts of linked items by size bucket.
pub(super) struct SizeHistogram {
    /// Items with a smaller CAS were linked before tracking started.
    floor: u64,
    /// `counts[b]`: items of `(b - 1) * 32 + 1 ..= b * 32` bytes.
    counts: Box<[u32]>,
}

/// Buckets needed for items of up to `item_size_max` bytes (one per 32
/// bytes, plus bucket 0): what bounds the histogram's memory, 4 bytes per
/// 32 bytes of `-I` per shard.
pub fn bucket_count(item_size_max: usize) -> usize {
    item_size_max.div_ceil(BUCKET_BYTES) + 1
}

#[inline]
fn bucket(total: usize) -> usize {
    total.div_ceil(BUCKET_BYTES)
}

impl SizeHistogram {
    /// An empty histogram for items up to `item_size_max` bytes, counting
    /// items whose CAS is `floor` or more; `None` if the memory cannot be
    /// had (memcached's `no_memory`).
    pub(super) fn new(item_size_max: usize, floor: u64) -> Option<SizeHistogram> {
        let n = bucket_count(item_size_max);
        let mut counts = Vec::new();
        counts.try_reserve_exact(n).ok()?;
        counts.resize(n, 0);
        Some(SizeHistogram { floor, counts: counts.into_boxed_slice() })
    }

    /// Counts a newly linked item of `total` bytes.
    #[inline]
    pub(super) fn add(&mut self, total: usize, cas: u64) {
        if cas >= self.floor {
            if let Some(n) = self.counts.get_mut(bucket(total)) {
                *n += 1;
            }
        }
    }

    /// Uncounts an item being unlinked (one that [`SizeHistogram::add`]
    /// counted, or one from before tracking started, which it skips).
    #[inline]
    pub(super) fn remove(&mut self, total: usize, cas: u64) {
        if cas >= self.floor {
            if let Some(n) = self.counts.get_mut(bucket(total)) {
                debug_assert!(*n > 0, "an item of {total} bytes was counted");
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Adds this shard's counts to `total` (one entry per bucket). The one
    /// place shards are summed.
    pub(super) fn merge_into(&self, total: &mut [u64]) {
        for (t, &n) in total.iter_mut().zip(self.counts.iter()) {
            *t += u64::from(n);
        }
    }
}

/// The merged histogram as `stats sizes` prints it: `(size, count)` for
/// every non-empty bucket, smallest first, where `size` is the bucket's
/// upper bound in bytes.
pub(super) fn rows(merged: &[u64]) -> Vec<(usize, u64)> {
    merged.iter().enumerate().filter(|(_, &n)| n > 0).map(|(b, &n)| (b * BUCKET_BYTES, n)).collect()
}

/// Why `stats sizes_enable` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizesError {
    /// A shard's histogram could not be allocated (memcached's `no_memory`).
    NoMemory,
}

impl Store {
    /// Starts counting items by size (`stats sizes_enable`, `-o
    /// track_sizes`); already on, it keeps its counts. Items linked before
    /// now are not counted (see the module doc).
    pub fn enable_size_tracking(&self) -> Result<(), SizesError> {
        self.enable_sizes(false)
    }

    /// `empty`: the cache holds nothing yet, so every CAS counts (a warm
    /// restart then restores items with their old CAS values).
    pub(super) fn enable_sizes(&self, empty: bool) -> Result<(), SizesError> {
        let mut on = self.track_sizes.lock();
        if *on {
            return Ok(());
        }
        let max = self.sizes.chunk_size(self.sizes.count() as u8);
        for (i, shard) in self.shards.iter().enumerate() {
            let mut s = shard.lock();
            let floor = if empty { 0 } else { (s.next_seq << SHARD_BITS) | s.shard_id };
            match SizeHistogram::new(max, floor) {
                Some(h) => s.size_hist = Some(h),
                None => {
                    drop(s);
                    for shard in &self.shards[..i] {
                        shard.lock().size_hist = None;
                    }
                    return Err(SizesError::NoMemory);
                }
            }
        }
        *on = true;
        Ok(())
    }

    /// Stops counting and frees the histograms (`stats sizes_disable`).
    pub fn disable_size_tracking(&self) {
        let mut on = self.track_sizes.lock();
        for shard in self.shards.iter() {
            shard.lock().size_hist = None;
        }
        *on = false;
    }

    /// Whether items are being counted by size (`stats settings`
    /// `track_sizes`).
    pub fn tracks_sizes(&self) -> bool {
        *self.track_sizes.lock()
    }

    /// `(size, count)` of every non-empty 32-byte bucket, summed over the
    /// shards, or `None` when tracking is off.
    pub fn size_histogram(&self) -> Option<Vec<(usize, u64)>> {
        let on = self.track_sizes.lock();
        if !*on {
            return None;
        }
        let mut merged = vec![0; bucket_count(self.sizes.chunk_size(self.sizes.count() as u8))];
        for shard in self.shards.iter() {
            if let Some(h) = &shard.lock().size_hist {
                h.merge_into(&mut merged);
            }
        }
        drop(on);
        Some(rows(&merged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_32_bytes_named_by_their_upper_bound() {
        let mut h = SizeHistogram::new(1024, 0).unwrap();
        for total in [1, 32, 33, 64, 65, 1024] {
            h.add(total, 5);
        }
        let mut merged = vec![0; bucket_count(1024)];
        h.merge_into(&mut merged);
        assert_eq!(rows(&merged), vec![(32, 2), (64, 2), (96, 1), (1024, 1)]);
        h.remove(33, 5);
        let mut merged = vec![0; bucket_count(1024)];
        h.merge_into(&mut merged);
        assert_eq!(rows(&merged), vec![(32, 2), (64, 1), (96, 1), (1024, 1)]);
    }

    #[test]
    fn items_older_than_the_floor_are_neither_counted_nor_uncounted() {
        let mut h = SizeHistogram::new(1024, 100).unwrap();
        h.remove(40, 99);
        h.add(40, 99);
        h.add(40, 100);
        let mut merged = vec![0; bucket_count(1024)];
        h.merge_into(&mut merged);
        assert_eq!(rows(&merged), vec![(64, 1)]);
    }

    #[test]
    fn shards_merge_by_bucket_and_memory_follows_the_item_limit() {
        assert_eq!(bucket_count(1 << 20), (1 << 15) + 1);
        assert_eq!(bucket_count(1000), 33); // 1000 bytes fall in bucket 32
        let (mut a, mut b) = (SizeHistogram::new(1000, 0).unwrap(), SizeHistogram::new(1000, 0).unwrap());
        a.add(1000, 1);
        b.add(1000, 1);
        b.add(10, 1);
        let mut merged = vec![0; bucket_count(1000)];
        a.merge_into(&mut merged);
        b.merge_into(&mut merged);
        assert_eq!(rows(&merged), vec![(32, 1), (1024, 2)]);
    }
}
