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
//! Writing goes shard by shard, in two steps. First the keys of the
//! shard's live items are copied out with that shard locked (keys only: a
//! walk of its LRUs, no values), and the lock is released. Then the keys
//! are looked up again, a few at a time as a client's multi-get would be
//! (the shard locked for at most 64 keys or 64 KiB of values), without
//! touching their LRU positions, access times or counters; the records are checksummed and
//! written a megabyte at a time. Clients of the other shards never wait for
//! the first step; no client ever waits for the disk. What the file holds:
//! every item that was live when its shard's keys were listed and is still
//! live when its key is looked up, with the value it has then; items
//! deleted or expired in between are left out, items created after the
//! listing are not in it. The memory it takes is one shard's keys and the
//! write buffer.
//!
//! The file is written to `<path>.tmp`, fsynced, renamed over `<path>`,
//! and the directory fsynced: a crash leaves the old snapshot or the new
//! one, never half of one. Items that expired in the meantime are dropped
//! at load.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// Write: the longest time one shard was held locked while its keys
    /// were listed.
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
/// (see the module doc): the cache keeps serving meanwhile.
pub fn write(store: &Store, path: &Path) -> io::Result<Summary> {
    let start = Instant::now();
    let tmp = tmp_path(path);
    let file = File::create(&tmp)?;
    let mut out = BufWriter::with_capacity(BUF, file);
    let mut header = Vec::with_capacity(28);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&store.clock().unix_now().to_le_bytes());
    let mut crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    out.write_all(&header)?;
    let mut sum = Summary { bytes: header.len() as u64, ..Summary::default() };
    let mut keys = Vec::new();
    let mut ends = Vec::new();
    let mut buf = Vec::with_capacity(BUF + REC_HEAD + MAX_KEY_LEN);
    for shard in 0..store.shard_count() {
        keys.clear();
        ends.clear();
        let locked = Instant::now();
        store.for_each_item_in_shard(shard, |key, _, _, _, _| {
            keys.extend_from_slice(key);
            ends.push(keys.len());
        });
        sum.longest_lock = sum.longest_lock.max(locked.elapsed());
        let mut done = 0;
        while done < ends.len() {
            let start = if done == 0 { 0 } else { ends[done - 1] };
            let (taken, found) =
                store.copy_records(shard, &keys[start..], &ends[done..], start, |key, value, flags, exptime, cas| {
                    buf.push(key.len() as u8);
                    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
                    buf.extend_from_slice(&flags.to_le_bytes());
                    buf.extend_from_slice(&exptime.to_le_bytes());
                    buf.extend_from_slice(&cas.to_le_bytes());
                    buf.extend_from_slice(key);
                    buf.extend_from_slice(value);
                });
            done += taken;
            sum.items += found;
            sum.bytes += 4 * found;
            if buf.len() >= BUF {
                sum.bytes += buf.len() as u64;
                write_records(&mut out, &buf, &mut crc)?;
                buf.clear();
            }
        }
    }
    sum.bytes += buf.len() as u64;
    write_records(&mut out, &buf, &mut crc)?;
    // The key list grew to the largest shard's; it goes now.
    drop((keys, ends, buf));
    let mut trailer = [0u8; 9];
    trailer[1..].copy_from_slice(&sum.items.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &trailer);
    out.write_all(&trailer)?;
    out.write_all(&crc.to_le_bytes())?;
    out.write_all(END)?;
    sum.bytes += (trailer.len() + 4 + END.len()) as u64;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    sum.elapsed = start.elapsed();
    Ok(sum)
}

/// Keys looked up, and value bytes copied, per hold of a shard lock.
const COPY_KEYS: usize = 64;
const COPY_BYTES: usize = 64 * 1024;

impl Store {
    /// Copies the live items of the keys listed from shard `shard` (the
    /// key bytes from offset `base` of the list, each ending at `ends[i] -
    /// base`), calling `f` with each (key, value, flags, unix exptime or 0,
    /// CAS). Takes the shard lock once, for at most [`COPY_KEYS`] keys or
    /// about [`COPY_BYTES`] of values, and leaves the items' LRU positions,
    /// access times and counters alone. Returns the keys consumed and the
    /// items found.
    fn copy_records(
        &self,
        shard: usize,
        keys: &[u8],
        ends: &[usize],
        base: usize,
        mut f: impl FnMut(&[u8], &[u8], u32, u64, u64),
    ) -> (usize, u64) {
        let n = ends.len().min(COPY_KEYS);
        let mut hashes = [0u64; COPY_KEYS];
        let key = |i: usize| &keys[if i == 0 { 0 } else { ends[i - 1] - base }..ends[i] - base];
        for (i, h) in hashes.iter_mut().enumerate().take(n) {
            *h = self.hasher.hash_one(key(i));
        }
        let now = self.clock.now();
        let s = self.shards[shard].lock();
        let (mut found, mut bytes) = (0, 0);
        for (i, &h) in hashes.iter().enumerate().take(n) {
            if bytes >= COPY_BYTES {
                return (i, found);
            }
            let Some((_, loc)) = s.find(h, key(i)) else { continue };
            let it = s.item(loc);
            if s.dead(it, now).is_some() {
                continue;
            }
            let exp = if it.exptime() == 0 { 0 } else { self.clock.to_unix(it.exptime()) };
            f(it.key(), it.value(), it.flags(), exp, it.cas());
            found += 1;
            bytes += it.value().len();
        }
        (n, found)
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
        let w = write(&a, &p).unwrap();
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
        let w = write(&a, &p).unwrap();
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

    #[test]
    fn damaged_files_are_refused_whole() {
        let clock = Arc::new(Clock::manual(1_700_000_000));
        let a = store(&clock);
        for i in 0..100u32 {
            a.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, b"value");
        }
        let p = path("bad");
        write(&a, &p).unwrap();
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
