//! A snapshot file as it is written: in chunks of a megabyte, at a bounded
//! rate, and written back to the disk as it goes.
//!
//! Left to itself, the kernel keeps a large file's pages dirty in the page
//! cache until its writeback thresholds are crossed or the final fsync
//! comes, then writes them all at once: a gigabyte snapshot fills memory
//! with dirty pages and floods the disk queue, and everything else on the
//! machine (the event loops' own small writes and page faults included)
//! waits behind it. So, for a backup while serving, each chunk is handed
//! to the kernel and its writeback started at once
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`); a few chunks later the
//! writer waits for that writeback to end and drops those pages from the
//! cache (`posix_fadvise(POSIX_FADV_DONTNEED)`), as databases do with their
//! checkpoints. At most [`LAG`] bytes are dirty or in flight at a time. A
//! rate (`--snapshot-rate`) spreads the chunks over time on top of that:
//! the writer sleeps whenever it is ahead of `rate` bytes a second since
//! it started.
//!
//! The final fsync (see `snapshot::write`) still decides crash safety; this
//! only decides when the bytes reach the disk before it. Both are advice:
//! a file system that refuses `sync_file_range` just turns the writeback
//! off, and nothing else changes.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::sys;

/// Bytes handed to the kernel at a time.
const CHUNK: usize = 1 << 20;
/// Bytes written but not yet waited for and dropped from the page cache.
const LAG: u64 = 4 << 20;

/// How a snapshot is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pace<'a> {
    /// Bytes a second at most; 0: as fast as it goes.
    pub rate: u64,
    /// Write each chunk back to the disk at once and drop it from the
    /// page cache (see the module doc).
    pub writeback: bool,
    /// Once set (the daemon is stopping), the rate no longer applies.
    pub hurry: Option<&'a AtomicBool>,
}

impl Pace<'static> {
    /// As fast as it goes, the kernel writing back when it likes (until the
    /// final fsync): the snapshot at shutdown, when no client is served.
    pub const UNPACED: Pace<'static> = Pace { rate: 0, writeback: false, hurry: None };
}

/// The file being written (see the module doc).
pub(super) struct PacedFile<'a> {
    file: File,
    buf: Vec<u8>,
    pace: Pace<'a>,
    /// Bytes handed to the kernel.
    written: u64,
    /// Bytes before this were written back and dropped from the cache.
    dropped: u64,
    start: Instant,
}

impl<'a> PacedFile<'a> {
    pub(super) fn new(file: File, pace: &Pace<'a>) -> PacedFile<'a> {
        PacedFile { file, buf: Vec::with_capacity(CHUNK), pace: *pace, written: 0, dropped: 0, start: Instant::now() }
    }

    /// Hands the buffered bytes to the kernel, starts their writeback,
    /// waits for older chunks' and drops them, then sleeps off any lead
    /// over the rate.
    fn write_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        let from = self.written;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        if self.pace.writeback {
            let keep = self.written.saturating_sub(LAG);
            let done = sys::start_writeback(&self.file, from, self.written - from).and_then(|()| {
                if keep > self.dropped {
                    sys::write_back_and_drop(&self.file, self.dropped, keep - self.dropped)?;
                }
                Ok(())
            });
            match done {
                Ok(()) => self.dropped = self.dropped.max(keep),
                Err(e) => {
                    log::debug!("snapshot writeback off: {e}");
                    self.pace.writeback = false;
                }
            }
        }
        let hurry = self.pace.hurry.is_some_and(|h| h.load(Ordering::Relaxed));
        if self.pace.rate > 0 && !hurry {
            let due = Duration::from_secs_f64(self.written as f64 / self.pace.rate as f64);
            if let Some(ahead) = due.checked_sub(self.start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
        Ok(())
    }

    /// Writes what is left, fsyncs, and drops the whole file from the page
    /// cache when writing back.
    pub(super) fn finish(mut self) -> io::Result<()> {
        self.write_chunk()?;
        self.file.sync_all()?;
        if self.pace.writeback {
            let _ = sys::write_back_and_drop(&self.file, 0, 0);
        }
        Ok(())
    }
}

impl Write for PacedFile<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = bytes.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&bytes[..n]);
        if self.buf.len() == CHUNK {
            self.write_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_chunk()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(pace: &Pace<'_>, pieces: &[&[u8]]) -> Vec<u8> {
        static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = FILES.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ferrocache-writeback-{}-{n}", std::process::id()));
        let mut f = PacedFile::new(File::create(&path).unwrap(), pace);
        for p in pieces {
            f.write_all(p).unwrap();
        }
        f.finish().unwrap();
        let back = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        back
    }

    #[test]
    fn every_byte_lands_in_order_paced_or_not() {
        let big: Vec<u8> = (0..(9 * CHUNK + 12345)).map(|i| (i * 7 + i / 251) as u8).collect();
        let pieces: Vec<&[u8]> = vec![b"head", &big[..CHUNK - 1], &big[CHUNK - 1..3 * CHUNK], b"", &big[3 * CHUNK..]];
        let want: Vec<u8> = pieces.concat();
        let hurry = AtomicBool::new(false);
        let paced = Pace { rate: 0, writeback: true, hurry: Some(&hurry) };
        assert_eq!(written(&paced, &pieces), want);
        assert_eq!(written(&Pace::UNPACED, &pieces), want);
    }

    #[test]
    fn a_rate_spreads_the_chunks_and_hurry_lifts_it() {
        // Three chunks at 16 chunks a second: the writer sleeps to about
        // 3/16 s. Only a lower bound is checked (sleeping never ends early).
        let data = vec![7u8; 3 * CHUNK];
        let pace = Pace { rate: 16 * CHUNK as u64, writeback: true, hurry: None };
        let t = Instant::now();
        assert_eq!(written(&pace, &[&data]), data);
        assert!(t.elapsed() >= Duration::from_millis(3000 / 16), "{:?}", t.elapsed());
        // A rate so low that honouring it would take hours: hurry set,
        // the write ends. It runs on its own thread so that a writer that
        // ignores hurry fails the test after a bounded wait, not hangs it.
        static HURRY: AtomicBool = AtomicBool::new(true);
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pace = Pace { rate: 1, writeback: true, hurry: Some(&HURRY) };
            let _ = done.send(written(&pace, &[&data]) == data);
        });
        match ended.recv_timeout(Duration::from_secs(60)) {
            Ok(same) => assert!(same, "the hurried write changed the bytes"),
            Err(_) => panic!("a hurried write at 1 byte/s did not end within 60 s: hurry did not lift the rate"),
        }
    }
}
