//! Warm restart: every live item written to a file at shutdown and read
//! back at start.
//!
//! Format (little endian), one pass to write, two to read (verify all,
//! then load, so a damaged file never puts a single item in the cache):
//!
//! ```text
//! header   "FRCSNAP1" | version u32 | reserved u32 | created unix u64 | fnv64 of the 24 bytes before
//! record*  klen u8 (1..=250) | vlen u32 | flags u32 | exptime unix u64 (0 = never) | cas u64
//!          | key | value | fnv64 of the record's bytes before
//! trailer  klen 0 | item count u64 | fnv64 over the records' checksums | "FRCSEND!"
//! ```
//!
//! The file is written to `<path>.tmp`, fsynced, renamed over `<path>`,
//! and the directory fsynced: a crash leaves the old snapshot or the new
//! one, never half of one. Items that expired while the daemon was down are
//! dropped at load.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Store, StoreOutcome};
use crate::MAX_KEY_LEN;

const MAGIC: &[u8; 8] = b"FRCSNAP1";
const END: &[u8; 8] = b"FRCSEND!";
const VERSION: u32 = 1;
const BUF: usize = 1 << 20;

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

/// FNV-1a, 64 bits.
fn fnv(h: u64, data: &[u8]) -> u64 {
    data.iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn tmp_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".tmp");
    PathBuf::from(p)
}

/// Writes every live item of `store` to `path`, atomically.
pub fn write(store: &Store, path: &Path) -> io::Result<Summary> {
    let start = Instant::now();
    let tmp = tmp_path(path);
    let file = File::create(&tmp)?;
    let mut out = BufWriter::with_capacity(BUF, file);
    let mut header = Vec::with_capacity(32);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&store.clock().unix_now().to_le_bytes());
    let h = fnv(FNV_START, &header);
    header.extend_from_slice(&h.to_le_bytes());
    out.write_all(&header)?;
    let mut sum = Summary { bytes: header.len() as u64, ..Summary::default() };
    let mut total = FNV_START;
    let mut result = Ok(());
    let mut rec = Vec::with_capacity(512);
    store.for_each_item(|key, value, flags, exptime, cas| {
        if result.is_err() {
            return;
        }
        rec.clear();
        rec.push(key.len() as u8);
        rec.extend_from_slice(&(value.len() as u32).to_le_bytes());
        rec.extend_from_slice(&flags.to_le_bytes());
        rec.extend_from_slice(&exptime.to_le_bytes());
        rec.extend_from_slice(&cas.to_le_bytes());
        rec.extend_from_slice(key);
        let h = fnv(fnv(FNV_START, &rec), value);
        total = fnv(total, &h.to_le_bytes());
        result = out.write_all(&rec).and_then(|_| out.write_all(value)).and_then(|_| out.write_all(&h.to_le_bytes()));
        sum.items += 1;
        sum.bytes += (rec.len() + value.len() + 8) as u64;
    });
    result?;
    out.write_all(&[0])?;
    out.write_all(&sum.items.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(END)?;
    sum.bytes += 25;
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

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Reads the file, calling `item` for each record once it is verified.
/// Returns the item count.
fn scan(
    path: &Path,
    max_value: usize,
    mut item: impl FnMut(&[u8], &[u8], u32, u64, u64),
) -> Result<u64, SnapshotError> {
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
    if read_u64(&mut r)? != fnv(FNV_START, &header) {
        return Err(bad("header checksum mismatch"));
    }
    let mut count = 0u64;
    let mut total = FNV_START;
    let mut rec = [0u8; 25];
    let mut key = Vec::with_capacity(MAX_KEY_LEN);
    let mut value = Vec::new();
    loop {
        r.read_exact(&mut rec[..1])?;
        let klen = usize::from(rec[0]);
        if klen == 0 {
            break;
        }
        if klen > MAX_KEY_LEN {
            return Err(bad("key length out of range"));
        }
        r.read_exact(&mut rec[1..])?;
        let vlen = u32::from_le_bytes(rec[1..5].try_into().unwrap()) as usize;
        if vlen > max_value {
            return Err(bad("value length out of range"));
        }
        let flags = u32::from_le_bytes(rec[5..9].try_into().unwrap());
        let exptime = u64::from_le_bytes(rec[9..17].try_into().unwrap());
        let cas = u64::from_le_bytes(rec[17..25].try_into().unwrap());
        key.resize(klen, 0);
        r.read_exact(&mut key)?;
        value.resize(vlen, 0);
        r.read_exact(&mut value)?;
        let h = fnv(fnv(fnv(FNV_START, &rec), &key), &value);
        if read_u64(&mut r)? != h {
            return Err(SnapshotError::Invalid(format!("record {count} checksum mismatch")));
        }
        total = fnv(total, &h.to_le_bytes());
        item(&key, &value, flags, exptime, cas);
        count += 1;
    }
    if read_u64(&mut r)? != count || read_u64(&mut r)? != total {
        return Err(bad("trailer does not match the records"));
    }
    let mut end = [0u8; 8];
    r.read_exact(&mut end)?;
    if &end != END || r.read(&mut [0u8; 1])? != 0 {
        return Err(bad("bad end marker"));
    }
    Ok(count)
}

/// Verifies `path` whole, then loads its live items into `store`.
pub fn load(store: &Store, path: &Path) -> Result<Summary, SnapshotError> {
    let start = Instant::now();
    let max_value = store.sizes().max_item();
    let mut max_cas = 0;
    let items = scan(path, max_value, |_, _, _, _, cas| max_cas = max_cas.max(cas))?;
    store.raise_cas(max_cas);
    let now = store.clock().unix_now();
    let mut sum = Summary { items, bytes: fs::metadata(path)?.len(), ..Summary::default() };
    scan(path, max_value, |key, value, flags, exptime, cas| {
        if exptime != 0 && exptime <= now {
            sum.dropped += 1;
        } else if store.restore(key, value, flags, exptime, cas) == StoreOutcome::Stored {
            sum.loaded += 1;
        } else {
            sum.dropped += 1;
        }
    })?;
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
