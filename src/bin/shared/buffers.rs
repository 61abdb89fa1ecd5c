//! A connection's buffers in the benchmark tools (`ferrocache-floor`,
//! `ferrocache-bench`): bytes read and not yet taken, and bytes to write.
//! Input grows the way ferrocache's connection buffer does
//! (`src/server/connection.rs`), so the tools read in the same sizes.

use std::io::{self, Write};

/// Bytes read and not yet taken: `buf[start..end]`.
pub struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    chunk: usize,
}

impl Input {
    /// An input buffer of `chunk` bytes to start with.
    pub fn new(chunk: usize) -> Input {
        Input { buf: vec![0; chunk], start: 0, end: 0, chunk }
    }

    /// The bytes not yet taken.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Takes `n` bytes from the front.
    pub fn take(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room for the next read, after moving the bytes not yet taken to the
    /// front and growing the buffer when less than half a chunk is free.
    pub fn room(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < self.chunk / 2 {
            let grow = self.buf.len().max(self.chunk);
            self.buf.resize(self.buf.len() + grow, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Records `n` bytes read into [`Input::room`].
    pub fn commit(&mut self, n: usize) {
        self.end += n;
    }
}

/// Bytes to write: `buf[sent..]`.
#[derive(Default)]
pub struct Output {
    pub buf: Vec<u8>,
    sent: usize,
}

impl Output {
    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Writes queued bytes until done or WouldBlock.
    pub fn flush(&mut self, w: &mut impl Write) -> io::Result<()> {
        while self.sent < self.buf.len() {
            match w.write(&self.buf[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        self.sent = 0;
        Ok(())
    }
}
