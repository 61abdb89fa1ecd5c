//! Snapshots: every live item written to a file, and read back (warm
//! restart at start, `snapshot` backups while serving, `ferrocache restore`).
//!
//! Format (little endian), written in one pass and read in one pass:
//!
//! ```text
//! header   "FRCSNAP1" | version u32 (2) | reserved u32 | created unix u64 | crc u32
//! record*  klen u8 (1..=250) | vlen u32 | flags u32 | exptime unix u64 (0 = never) | cas u64
//!          | key | value | crc u32
//! trailer  klen 0 | item count u64 | crc u32 | "FRCSEND!"
//! ```
//!
//! Every `crc` is CRC32C (Castagnoli, computed with the CPU's crc32
//! instruction where there is one) over the bytes since the previous `crc`,
//! continuing from the previous `crc`'s value (the header's starts from 0).
//! The checksums form one chain: a record is verified before it is used,
//! and a record dropped, repeated or moved breaks the chain at the next
//! checksum, so the trailer's proves the whole file.
//!
//! Writing goes shard by shard, and each shard in slices: the shard is
//! locked, the live items of a few hash buckets are copied out (key,
//! value, flags, expiry, CAS; at most `SLICE_BUCKETS` bucket groups,
//! `SLICE_ITEMS` items or about `SLICE_BYTES` of values), the lock is
//! released, and the next slice starts from the cursor the last one
//! returned (`hashtable::Table::scan_group`: the walk stays correct while
//! the table grows between slices). The items' LRU positions, access times
//! and counters are left alone. A client waits for a snapshot at most one
//! slice (tens of microseconds), and only a client of the shard being
//! copied; no client ever waits for the disk. Records are checksummed and
//! written a megabyte at a time (`writeback.rs`: at a bounded rate, and
//! written back to the disk as it goes, for a backup while serving).
//!
//! What the file holds ("consistent enough", as a multi-get spread over
//! time would be): each item as it was when its bucket's slice was copied.
//! An item that exists, unchanged, from the start of the write to its end
//! is in it exactly once. An item set during the write is in it with its
//! old value or its new one (a key's old and new items share a bucket, so
//! never both and never neither, if it existed before); one deleted or
//! expired during the write may be in it or not; one created during the
//! write may be in it or not. Items of different shards, or of different
//! slices of one shard, are copied at different moments, so the file is no
//! point-in-time image of the whole cache. The memory it takes is the
//! write buffer.
//!
//! The file is written to `<path>.tmp`, fsynced, renamed over `<path>`,
//! and the directory fsynced: a crash leaves the old snapshot or the new
//! one, never half of one. Items that expired in the meantime are dropped
//! at load.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::hashtable::Loc;
pub use super::writeback::Pace;
use super::writeback::PacedFile;
use super::{Store, StoreOutcome};
use crate::MAX_KEY_LEN;

const MAGIC: &[u8; 8] = b"FRCSNAP1";
const END: &[u8; 8] = b"FRCSEND!";
const VERSION: u32 = 2;
const BUF: usize = 1 << 20;
/// A record's fixed part: klen, vlen, flags, exptime, cas.
const REC_HEAD: usize = 25;

/// What a snapshot write or load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Items written, or found in the file.
    pub items: u64,
    /// Items loaded into the store.
    pub loaded: u64,
    /// Items dropped at load because they expired meanwhile (or did not fit).
    pub dropped: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Write: the longest time a shard was held locked for one slice.
    pub longest_lock: Duration,
}

/// Why a snapshot file was refused.
#[derive(Debug)]
pub enum SnapshotError {
    Io(io::Error),
    /// Not a snapshot of ours, another version, or damaged: the reason.
    Invalid(String),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Io(e) => write!(f, "{e}"),
            SnapshotError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl From<io::Error> for SnapshotError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            SnapshotError::Invalid("truncated".into())
        } else {
            SnapshotError::Io(e)
        }
    }
}

/// One item as a snapshot holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u32,
    /// Unix time, 0 for never.
    pub exptime: u64,
    pub cas: u64,
}

/// `<path>.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".tmp");
    PathBuf::from(p)
}

/// Writes the records in `buf` (fixed part, key, value; no checksum) to
/// `out`, each followed by its link of the checksum chain.
fn write_records(out: &mut impl Write, buf: &[u8], crc: &mut u32) -> io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        let klen = usize::from(buf[at]);
        let vlen = u32::from_le_bytes(buf[at + 1..at + 5].try_into().unwrap()) as usize;
        let end = at + REC_HEAD + klen + vlen;
        *crc = crc32c::crc32c_append(*crc, &buf[at..end]);
        out.write_all(&buf[at..end])?;
        out.write_all(&crc.to_le_bytes())?;
        at = end;
    }
    Ok(())
}

/// Writes every live item of `store` to `path`, atomically, shard by shard
/// and slice by slice (see the module doc), at the pace `pace` asks: the
/// cache keeps serving meanwhile.
pub fn write(store: &Store, path: &Path, pace: &Pace<'_>) -> io::Result<Summary> {
    let start = Instant::now();
    let tmp = tmp_path(path);
    let mut out = PacedFile::new(File::create(&tmp)?, pace);
    let mut header = Vec::with_capacity(28);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&store.clock().unix_now().to_le_bytes());
    let mut crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    out.write_all(&header)?;
    let mut sum = Summary { bytes: header.len() as u64, ..Summary::default() };
    let mut buf = Vec::with_capacity(BUF + SLICE_BYTES + REC_HEAD + MAX_KEY_LEN);
    for shard in 0..store.shard_count() {
        let mut cursor = 0;
        loop {
            let slice = store.copy_slice(shard, cursor, |key, value, flags, exptime, cas| {
                buf.push(key.len() as u8);
                buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
                buf.extend_from_slice(&flags.to_le_bytes());
                buf.extend_from_slice(&exptime.to_le_bytes());
                buf.extend_from_slice(&cas.to_le_bytes());
                buf.extend_from_slice(key);
                buf.extend_from_slice(value);
            });
            sum.items += slice.items;
            sum.bytes += 4 * slice.items;
            sum.longest_lock = sum.longest_lock.max(slice.held);
            if buf.len() >= BUF {
                sum.bytes += buf.len() as u64;
                write_records(&mut out, &buf, &mut crc)?;
                buf.clear();
            }
            cursor = slice.next;
            if cursor == 0 {
                break;
            }
        }
    }
    sum.bytes += buf.len() as u64;
    write_records(&mut out, &buf, &mut crc)?;
    drop(buf);
    let mut trailer = [0u8; 9];
    trailer[1..].copy_from_slice(&sum.items.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &trailer);
    out.write_all(&trailer)?;
    out.write_all(&crc.to_le_bytes())?;
    out.write_all(END)?;
    sum.bytes += (trailer.len() + 4 + END.len()) as u64;
    out.finish()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    sum.elapsed = start.elapsed();
    Ok(sum)
}

/// Bucket groups (`Table::scan_group`), items, and value bytes copied per
/// hold of a shard lock; a slice ends after the group that reaches one of
/// them (a group is about one or two items).
const SLICE_BUCKETS: usize = 128;
const SLICE_ITEMS: u64 = 128;
const SLICE_BYTES: usize = 64 * 1024;

/// What one slice copied.
struct Slice {
    /// The cursor of the next slice; 0 when the shard is done.
    next: u64,
    items: u64,
    /// How long the shard lock was held.
    held: Duration,
}

impl Store {
    /// Copies the live items of one slice of shard `shard`, from `cursor`
    /// (0: the shard's first slice), calling `f` with each (key, value,
    /// flags, unix exptime or 0, CAS). Holds the shard lock once, for at
    /// most [`SLICE_BUCKETS`] bucket groups, [`SLICE_ITEMS`] items or
    /// about [`SLICE_BYTES`] of values, and leaves the items' LRU
    /// positions, access times and counters alone.
    fn copy_slice(&self, shard: usize, cursor: u64, mut f: impl FnMut(&[u8], &[u8], u32, u64, u64)) -> Slice {
        let now = self.clock.now();
        let s = self.shards[shard].lock();
        let locked = Instant::now();
        let (mut next, mut items, mut bytes) = (cursor, 0, 0);
        for _ in 0..SLICE_BUCKETS {
            next = s.table.scan_group(next, &s.classes[..], |e| {
                let it = s.item(Loc::unpack(e));
                if s.dead(it, now).is_none() {
                    let exp = if it.exptime() == 0 { 0 } else { self.clock.to_unix(it.exptime()) };
                    f(it.key(), it.value(), it.flags(), exp, it.cas());
                    items += 1;
                    bytes += it.value().len();
                }
            });
            if next == 0 || items >= SLICE_ITEMS || bytes >= SLICE_BYTES {
                break;
            }
        }
        let held = locked.elapsed();
        drop(s);
        Slice { next, items, held }
    }
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Reads the snapshot at `path` once, front to back, calling `item` for
/// each record as soon as its checksum is verified; values longer than
/// `max_value` are refused. Returns the item count once the trailer proved
/// the whole file. On an error, `item` has seen the records before the bad
/// one (each of them intact).
pub fn for_each_record(path: &Path, max_value: usize, mut item: impl FnMut(Record<'_>)) -> Result<u64, SnapshotError> {
    let bad = |why: &str| SnapshotError::Invalid(why.to_string());
    let mut r = BufReader::with_capacity(BUF, File::open(path)?);
    let mut header = [0u8; 24];
    r.read_exact(&mut header).map_err(|_| bad("not a ferrocache snapshot (too short)"))?;
    if &header[..8] != MAGIC {
        return Err(bad("not a ferrocache snapshot (bad magic)"));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().unwrap());
    if version != VERSION {
        return Err(SnapshotError::Invalid(format!("snapshot version {version}, this build reads {VERSION}")));
    }
    let mut crc = crc32c::crc32c(&header);
    if read_u32(&mut r)? != crc {
        return Err(bad("header checksum mismatch"));
    }
    let mut count = 0u64;
    let mut rec = [0u8; REC_HEAD];
    let mut key = Vec::with_capacity(MAX_KEY_LEN);
    let mut value = Vec::new();
    loop {
        r.read_exact(&mut rec[..1])?;
        let klen = usize::from(rec[0]);
        if klen == 0 {
            break;
        }
        if klen > MAX_KEY_LEN {
            return Err(SnapshotError::Invalid(format!("record {count}: key length out of range")));
        }
        r.read_exact(&mut rec[1..])?;
        let vlen = u32::from_le_bytes(rec[1..5].try_into().unwrap()) as usize;
        if vlen > max_value {
            return Err(SnapshotError::Invalid(format!("record {count}: value length out of range")));
        }
        key.resize(klen, 0);
        r.read_exact(&mut key)?;
        value.resize(vlen, 0);
        r.read_exact(&mut value)?;
        crc = crc32c::crc32c_append(crc32c::crc32c_append(crc32c::crc32c_append(crc, &rec), &key), &value);
        if read_u32(&mut r)? != crc {
            return Err(SnapshotError::Invalid(format!("record {count}: checksum mismatch")));
        }
        item(Record {
            key: &key,
            value: &value,
            flags: u32::from_le_bytes(rec[5..9].try_into().unwrap()),
            exptime: u64::from_le_bytes(rec[9..17].try_into().unwrap()),
            cas: u64::from_le_bytes(rec[17..25].try_into().unwrap()),
        });
        count += 1;
    }
    let mut n = [0u8; 8];
    r.read_exact(&mut n)?;
    crc = crc32c::crc32c_append(crc32c::crc32c_append(crc, &[0]), &n);
    if u64::from_le_bytes(n) != count || read_u32(&mut r)? != crc {
        return Err(bad("trailer does not match the records"));
    }
    let mut end = [0u8; 8];
    r.read_exact(&mut end)?;
    if &end != END || r.read(&mut [0u8; 1])? != 0 {
        return Err(bad("bad end marker"));
    }
    Ok(count)
}

/// Loads the live items of the snapshot at `path` into `store`, reading
/// the file once. It is meant for an empty store at start, before clients
/// are served: records go in as they are verified, and if the file turns
/// out to be damaged, every item it had put in is deleted again (the
/// verified part of the file is read a second time for their keys), so a
/// refused file leaves the store as it was.
pub fn load(store: &Store, path: &Path) -> Result<Summary, SnapshotError> {
    let start = Instant::now();
    let max_value = store.sizes().max_item();
    let now = store.clock().unix_now();
    let mut sum = Summary::default();
    let mut max_cas = 0;
    let mut put = 0u64;
    let read = for_each_record(path, max_value, |r| {
        sum.items += 1;
        max_cas = max_cas.max(r.cas);
        put += 1;
        if r.exptime != 0 && r.exptime <= now {
            sum.dropped += 1;
        } else if store.restore(r.key, r.value, r.flags, r.exptime, r.cas) == StoreOutcome::Stored {
            sum.loaded += 1;
        } else {
            sum.dropped += 1;
        }
    });
    // Every CAS handed out from now on is above the restored ones.
    store.raise_cas(max_cas);
    if let Err(e) = read {
        let mut undone = 0u64;
        let _ = for_each_record(path, max_value, |r| {
            if undone < put {
                store.delete(r.key);
                undone += 1;
            }
        });
        return Err(e);
    }
    sum.bytes = fs::metadata(path)?.len();
    sum.elapsed = start.elapsed();
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::clock::Clock;
    use crate::storage::{StoreConfig, StoreMode};

    fn store(clock: &Arc<Clock>) -> Store {
        Store::new(&StoreConfig { shards: 4, ..StoreConfig::default() }, clock.clone())
    }

    fn path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ferrocache-snap-{name}-{}", std::process::id()))
    }

    #[test]
    fn round_trip_keeps_values_flags_cas_and_ttl() {
        let clock = Arc::new(Clock::manual(1_700_000_000));
        let a = store(&clock);
        for i in 0..2000u32 {
            let v: Vec<u8> = (0..(i % 700)).map(|j| (i + j) as u8).collect();
            a.store(StoreMode::Set, format!("k{i}").as_bytes(), i, if i % 2 == 0 { 0 } else { 100 }, &v);
        }
        a.store(StoreMode::Set, b"short", 0, 5, b"x");
        let p = path("rt");
        let w = write(&a, &p, &Pace::UNPACED).unwrap();
        assert_eq!(w.items, 2001);
        let before: Vec<_> = (0..2000u32)
            .map(|i| a.get(format!("k{i}").as_bytes(), None, |it| (it.value.to_vec(), it.flags, it.cas)).unwrap())
            .collect();
        // restart 10 s later: "short" (5 s ttl) is gone, the rest remains
        clock.advance(10);
        let b = store(&clock);
        let l = load(&b, &p).unwrap();
        assert_eq!((l.items, l.loaded, l.dropped), (2001, 2000, 1));
        for (i, want) in before.iter().enumerate() {
            let got = b.get(format!("k{i}").as_bytes(), None, |it| (it.value.to_vec(), it.flags, it.cas)).unwrap();
            assert_eq!(&got, want, "k{i}");
        }
        assert!(b.get(b"short", None, |_| ()).is_none());
        clock.advance(95);
        assert!(b.get(b"k1", None, |_| ()).is_none(), "the TTL kept counting");
        assert!(b.get(b"k0", None, |_| ()).is_some());
        // a new write gets a CAS above every restored one
        let (_, cas) = b.store_cas(StoreMode::Set, b"new", 0, 0, b"v");
        assert!(before.iter().all(|(_, _, c)| *c < cas));
        let _ = fs::remove_file(&p);
    }

    #[test]
    fn a_write_while_others_write_keeps_every_item_that_stayed() {
        let clock = Arc::new(Clock::manual(1_700_000_000));
        let a = Arc::new(store(&clock));
        let n = 20_000u32;
        for i in 0..n {
            a.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, b"old");
        }
        let p = path("busy");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (a, stop) = (a.clone(), stop.clone());
            std::thread::spawn(move || {
                // Rewrites every key over and over (new values land in
                // other chunks), deletes the odd hundreds, adds new keys.
                let mut round = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && round < 50 {
                    for i in 0..n {
                        let k = format!("k{i}");
                        if (i / 100) % 2 == 1 {
                            a.delete(k.as_bytes());
                        } else {
                            a.store(StoreMode::Set, k.as_bytes(), round, 0, b"new value, longer");
                        }
                    }
                    a.store(StoreMode::Set, format!("extra{round}").as_bytes(), 0, 0, b"x");
                    round += 1;
                }
            })
        };
        let w = write(&a, &p, &Pace::UNPACED).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        let b = store(&clock);
        let l = load(&b, &p).unwrap();
        assert_eq!(l.items, w.items);
        for i in (0..n).filter(|i| (i / 100) % 2 == 0) {
            let v = b.get(format!("k{i}").as_bytes(), None, |it| it.value.to_vec());
            let v = v.unwrap_or_else(|| panic!("k{i}, never deleted, is missing"));
            assert!(v == b"old" || v == b"new value, longer", "k{i}: {v:?}");
        }
        let _ = fs::remove_file(&p);
    }

    /// Slices from a table that doubles under the walk: a writer adds
    /// thousands of keys (from a 16-bucket table) and rewrites others
    /// while the snapshot is written, written back and paced as a backup
    /// is. Every key present before and untouched is there once, with its
    /// value; no record is repeated; the file loads.
    #[test]
    fn sliced_copies_survive_a_growing_table_and_concurrent_writes() {
        let clock = Arc::new(Clock::manual(1_700_000_000));
        let cfg = StoreConfig { shards: 2, hashpower: 4, ..StoreConfig::default() };
        let a = Arc::new(Store::new(&cfg, clock.clone()));
        let n = 3000u32;
        for i in 0..n {
            a.store(StoreMode::Set, format!("k{i}").as_bytes(), i, 0, format!("v{i}").as_bytes());
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (a, stop) = (a.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 100_000 {
                    a.store(StoreMode::Set, format!("new{i}").as_bytes(), 0, 0, b"n");
                    // The keys below n/2 are rewritten, the others untouched.
                    a.store(StoreMode::Set, format!("k{}", i % (n / 2)).as_bytes(), 1, 0, b"rewritten");
                    i += 1;
                }
                i
            })
        };
        let p = path("grow");
        let w = write(&a, &p, &Pace { rate: 0, writeback: true, hurry: None }).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        let mut seen = std::collections::HashMap::new();
        let count = for_each_record(&p, 1 << 20, |r| {
            assert!(seen.insert(r.key.to_vec(), r.value.to_vec()).is_none(), "{:?} twice", r.key);
        })
        .unwrap();
        assert_eq!(count, w.items);
        for i in 0..n {
            let v = seen.get(format!("k{i}").as_bytes()).unwrap_or_else(|| panic!("k{i} missing"));
            if i >= n / 2 {
                assert_eq!(v, format!("v{i}").as_bytes(), "k{i}");
            } else {
                assert!(v == format!("v{i}").as_bytes() || v == b"rewritten", "k{i}: {v:?}");
            }
        }
        let b = store(&clock);
        assert_eq!(load(&b, &p).unwrap().items, w.items);
        let _ = fs::remove_file(&p);
    }

    #[test]
    fn damaged_files_are_refused_whole() {
        let clock = Arc::new(Clock::manual(1_700_000_000));
        let a = store(&clock);
        for i in 0..100u32 {
            a.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, b"value");
        }
        let p = path("bad");
        write(&a, &p, &Pace::UNPACED).unwrap();
        let good = fs::read(&p).unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated", good[..good.len() / 2].to_vec()),
            ("no trailer", good[..good.len() - 8].to_vec()),
            ("flipped byte", {
                let mut g = good.clone();
                g[200] ^= 0x40;
                g
            }),
            // Most records are loaded before these are found: they must go again.
            ("flipped byte near the end", {
                let mut g = good.clone();
                let at = g.len() - 60;
                g[at] ^= 1;
                g
            }),
            ("a record left out", {
                // Skip 50 records (each: fixed part, key, 5-byte value, crc)
                // and cut the 51st out whole.
                let len = |at: usize| REC_HEAD + usize::from(good[at]) + 5 + 4;
                let mut at = 28;
                for _ in 0..50 {
                    at += len(at);
                }
                [&good[..at], &good[at + len(at)..]].concat()
            }),
            ("newer version", {
                let mut g = good.clone();
                g[8] = 3;
                g
            }),
            ("foreign", b"this is not a snapshot at all, just text".to_vec()),
            ("empty", Vec::new()),
            ("trailing garbage", [good.clone(), b"x".to_vec()].concat()),
        ];
        for (what, bytes) in cases {
            fs::write(&p, &bytes).unwrap();
            let b = store(&clock);
            assert!(matches!(load(&b, &p), Err(SnapshotError::Invalid(_))), "{what}");
            assert_eq!(b.stats().curr_items, 0, "{what}: nothing loaded");
        }
        let _ = fs::remove_file(&p);
    }
}
