//! One event loop's log buffer: a bounded byte ring of framed lines that
//! any number of watchers read, each at its own cursor. No I/O, no locks
//! (the owner, [`super::Watch`], keeps each ring behind a mutex).
//!
//! The writer never waits for readers: a line that does not fit pushes the
//! oldest lines out. A reader whose cursor points before the oldest line
//! kept has lost lines; it learns how many of the classes it watches were
//! lost from per-class counts, so a watcher of mutations is not told about
//! fetches it would never have been sent.

use std::collections::VecDeque;

/// Bytes of framing before each line: its class bit and its length.
const FRAME: usize = 3;
/// Event classes a ring counts separately (one bit each).
pub const CLASSES: usize = 8;

/// Where one reader stands in one ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Absolute byte position of the next line to read.
    pos: u64,
    /// Lines of each class before `pos`.
    seen: [u64; CLASSES],
}

/// What one read gave.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Lines copied out.
    pub lines: u64,
    /// Lines of the watched classes pushed out before they were read.
    pub skipped: u64,
}

/// A bounded ring of lines (see the module doc).
#[derive(Debug)]
pub struct Ring {
    buf: VecDeque<u8>,
    cap: usize,
    /// Absolute byte position of `buf[0]`.
    first_pos: u64,
    /// Lines of each class ever pushed out of the ring.
    gone: [u64; CLASSES],
    /// Lines of each class ever written.
    pushed: [u64; CLASSES],
    /// Lines refused because a line alone is larger than the ring.
    pub dropped: u64,
    /// Lines written.
    pub written: u64,
}

fn class_index(class: u8) -> usize {
    debug_assert!(class.count_ones() == 1);
    class.trailing_zeros() as usize
}

impl Ring {
    /// An empty ring of `cap` bytes (framing included).
    pub fn new(cap: usize) -> Ring {
        Ring {
            buf: VecDeque::new(),
            cap,
            first_pos: 0,
            gone: [0; CLASSES],
            pushed: [0; CLASSES],
            dropped: 0,
            written: 0,
        }
    }

    /// A cursor that reads the lines written from now on.
    pub fn cursor(&self) -> Cursor {
        Cursor { pos: self.first_pos + self.buf.len() as u64, seen: self.pushed }
    }

    /// Appends one line of `class` (one bit), pushing out old lines.
    pub fn push(&mut self, class: u8, line: &[u8]) {
        let need = FRAME + line.len();
        if need > self.cap || line.len() > usize::from(u16::MAX) {
            self.dropped += 1;
            return;
        }
        while self.buf.len() + need > self.cap {
            let (c, len) = self.header(0);
            self.buf.drain(..FRAME + len);
            self.first_pos += (FRAME + len) as u64;
            self.gone[class_index(c)] += 1;
        }
        let len = (line.len() as u16).to_le_bytes();
        self.buf.extend([class, len[0], len[1]]);
        self.buf.extend(line);
        self.pushed[class_index(class)] += 1;
        self.written += 1;
    }

    fn header(&self, at: usize) -> (u8, usize) {
        (self.buf[at], usize::from(u16::from_le_bytes([self.buf[at + 1], self.buf[at + 2]])))
    }

    /// Appends `buf[at..at + len]` to `out` (in at most two copies).
    fn copy_out(&self, at: usize, len: usize, out: &mut Vec<u8>) {
        let (a, b) = self.buf.as_slices();
        if at >= a.len() {
            out.extend_from_slice(&b[at - a.len()..at - a.len() + len]);
        } else if at + len <= a.len() {
            out.extend_from_slice(&a[at..at + len]);
        } else {
            out.extend_from_slice(&a[at..]);
            out.extend_from_slice(&b[..at + len - a.len()]);
        }
    }

    /// Copies the lines of the classes in `mask` after `cur` into `out`
    /// until `out` holds `limit` bytes or more, and moves `cur` past what
    /// it read (lines of other classes are passed over).
    pub fn read(&self, cur: &mut Cursor, mask: u8, out: &mut Vec<u8>, limit: usize) -> Read {
        let mut r = Read::default();
        if cur.pos < self.first_pos {
            for (i, gone) in self.gone.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    r.skipped += gone.saturating_sub(cur.seen[i]);
                }
            }
            cur.seen = self.gone;
            cur.pos = self.first_pos;
        }
        let mut at = (cur.pos - self.first_pos) as usize;
        while at < self.buf.len() && out.len() < limit {
            let (class, len) = self.header(at);
            if class & mask != 0 {
                self.copy_out(at + FRAME, len, out);
                r.lines += 1;
            }
            cur.seen[class_index(class)] += 1;
            at += FRAME + len;
            cur.pos += (FRAME + len) as u64;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u8 = 1;
    const B: u8 = 2;

    #[test]
    fn a_reader_sees_lines_written_after_its_cursor_in_order() {
        let mut r = Ring::new(100);
        r.push(A, b"before\n");
        let mut c = r.cursor();
        r.push(A, b"one\n");
        r.push(B, b"two\n");
        r.push(A, b"three\n");
        let mut out = Vec::new();
        assert_eq!(r.read(&mut c, A, &mut out, 1000), Read { lines: 2, skipped: 0 });
        assert_eq!(out, b"one\nthree\n");
        out.clear();
        assert_eq!(r.read(&mut c, A | B, &mut out, 1000), Read::default());
        r.push(B, b"four\n");
        assert_eq!(r.read(&mut c, A | B, &mut out, 1000), Read { lines: 1, skipped: 0 });
        assert_eq!(out, b"four\n");
    }

    #[test]
    fn a_read_stops_at_its_limit_and_goes_on_from_there() {
        let mut r = Ring::new(100);
        let mut c = r.cursor();
        for l in [&b"aaaa\n"[..], b"bbbb\n", b"cccc\n"] {
            r.push(A, l);
        }
        let mut out = Vec::new();
        assert_eq!(r.read(&mut c, A, &mut out, 6).lines, 2);
        assert_eq!(out, b"aaaa\nbbbb\n");
        out.clear();
        assert_eq!(r.read(&mut c, A, &mut out, 6).lines, 1);
        assert_eq!(out, b"cccc\n");
    }

    #[test]
    fn a_full_ring_pushes_out_old_lines_and_a_late_reader_counts_its_own_classes() {
        // Each line takes 3 + 4 bytes; 21 bytes hold three.
        let mut r = Ring::new(21);
        let mut c = r.cursor();
        for (class, l) in [(A, b"a01\n"), (B, b"b02\n"), (A, b"a03\n"), (A, b"a04\n"), (B, b"b05\n"), (A, b"a06\n")] {
            r.push(class, l);
        }
        assert_eq!(r.written, 6);
        let mut out = Vec::new();
        // a01, b02, a03 were pushed out: two of class A.
        assert_eq!(r.read(&mut c, A, &mut out, 1000), Read { lines: 2, skipped: 2 });
        assert_eq!(out, b"a04\na06\n");
        // Memory stays within the ring's bytes.
        assert!(r.buf.len() <= 21);
        // A new line longer than the ring is refused, not stored.
        r.push(A, &[b'x'; 30]);
        assert_eq!(r.dropped, 1);
    }

    #[test]
    fn a_reader_that_falls_behind_again_counts_only_the_new_loss() {
        let mut r = Ring::new(14);
        let mut c = r.cursor();
        let mut out = Vec::new();
        for l in [b"x1\n", b"x2\n", b"x3\n", b"x4\n"] {
            r.push(A, l);
        }
        assert_eq!(r.read(&mut c, A, &mut out, 1000), Read { lines: 2, skipped: 2 });
        for l in [b"x5\n", b"x6\n", b"x7\n"] {
            r.push(A, l);
        }
        out.clear();
        assert_eq!(r.read(&mut c, A, &mut out, 1000), Read { lines: 2, skipped: 1 });
        assert_eq!(out, b"x6\nx7\n");
    }
}
