//! `-e FILE`: memcached's restartable cache, on ferrocache's warm-restart
//! snapshot (`storage::snapshot`).
//!
//! memcached keeps its item memory in FILE (an mmap) and, on a graceful stop
//! (SIGUSR1), writes what it needs to reuse it to FILE.meta; a start that
//! finds FILE.meta reads it, deletes it and reuses the memory. A FILE.meta
//! that cannot be read stops the start. Here FILE holds a snapshot of
//! every item, written at a graceful stop only, and FILE.meta the few facts
//! a start needs before the store exists (the hash table's size) plus the
//! snapshot's length, written after the snapshot: a FILE.meta therefore
//! names a complete snapshot. A start that finds FILE.meta checks it
//! (refusing to start if it is damaged, as memcached does), deletes it,
//! and loads FILE; without FILE.meta the cache starts empty, so a crash
//! or a plain SIGTERM never brings back a stale cache.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::storage::{snapshot, Store};

const TAG: &str = "ferrocache-restart 1";

/// What FILE.meta says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The hash table's size when the cache stopped (`hash_power_level`).
    pub hashpower: u32,
    /// Length of the snapshot in FILE.
    pub snapshot_len: u64,
}

/// FILE.meta.
pub fn meta_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".meta");
    PathBuf::from(p)
}

fn render(m: &Meta) -> String {
    format!("{TAG}\nhashpower {}\nsnapshot_len {}\n", m.hashpower, m.snapshot_len)
}

fn parse(text: &str) -> Result<Meta, String> {
    let mut lines = text.lines();
    if lines.next() != Some(TAG) {
        return Err("not a restart metadata file (first line)".into());
    }
    let (mut hashpower, mut snapshot_len) = (None, None);
    for line in lines {
        match line.split_once(' ') {
            Some(("hashpower", v)) => hashpower = v.parse().ok().filter(|p| (1..=32).contains(p)),
            Some(("snapshot_len", v)) => snapshot_len = v.parse().ok(),
            _ => return Err(format!("unknown line: {line}")),
        }
    }
    match (hashpower, snapshot_len) {
        (Some(hashpower), Some(snapshot_len)) => Ok(Meta { hashpower, snapshot_len }),
        _ => Err("hashpower or snapshot_len missing or invalid".into()),
    }
}

/// At start: reads and removes FILE.meta. `Ok(None)`: no metadata, the
/// cache starts empty. A damaged FILE.meta, or one whose snapshot is
/// missing or of another length, refuses the start.
pub fn open(file: &Path) -> Result<Option<Meta>, Error> {
    let mp = meta_path(file);
    let text = match fs::read_to_string(&mp) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Config(format!("cannot read restart metadata {}: {e}", mp.display()))),
    };
    let bad = |why: String| Error::Config(format!("corrupt restart metadata {}: {why}", mp.display()));
    let meta = parse(&text).map_err(bad)?;
    let len = fs::metadata(file).map(|m| m.len()).map_err(|e| bad(format!("{}: {e}", file.display())))?;
    if len != meta.snapshot_len {
        return Err(bad(format!("{} has {len} bytes, the metadata says {}", file.display(), meta.snapshot_len)));
    }
    // Consumed, as memcached does: the next start reuses nothing unless
    // this run stops gracefully again.
    fs::remove_file(&mp).map_err(|e| bad(format!("cannot remove it: {e}")))?;
    Ok(Some(meta))
}

/// At a graceful stop: the snapshot, then FILE.meta naming it.
pub fn save(store: &Store, file: &Path) -> Result<snapshot::Summary, String> {
    // Written when the loops have stopped: nobody to pace it for.
    let summary = snapshot::write(store, file, &snapshot::Pace::UNPACED).map_err(|e| e.to_string())?;
    let meta = Meta {
        hashpower: store.stats().hash_power_level,
        snapshot_len: fs::metadata(file).map_err(|e| e.to_string())?.len(),
    };
    let mp = meta_path(file);
    let tmp = {
        let mut p = mp.as_os_str().to_owned();
        p.push(".tmp");
        PathBuf::from(p)
    };
    let mut f = fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(render(&meta).as_bytes()).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, &mp).map_err(|e| format!("{}: {e}", mp.display()))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_damage_is_refused() {
        let m = Meta { hashpower: 17, snapshot_len: 1234 };
        assert_eq!(parse(&render(&m)), Ok(m));
        for bad in [
            "",
            "\n",
            "ferrocache-restart 2\nhashpower 17\nsnapshot_len 1\n",
            "ferrocache-restart 1\nhashpower 99\nsnapshot_len 1\n",
            "ferrocache-restart 1\nhashpower 17\n",
            "ferrocache-restart 1\nhashpower 17\nsnapshot_len 1\nextra 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_meta_file_refuses_the_start_and_none_starts_empty() {
        let dir = std::env::temp_dir().join(format!("ferrocache-restart-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("mem");
        assert_eq!(open(&file).unwrap(), None);
        fs::write(meta_path(&file), "").unwrap();
        assert!(open(&file).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
