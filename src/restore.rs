//! `ferrocache restore FILE HOST:PORT`: loads a snapshot file (a backup
//! written by `snapshot`, SIGUSR2 or at shutdown) into a running node
//! through the protocol, so a backup of one node can seed another.
//!
//! The file is read twice: once to verify it whole (nothing is sent from a
//! damaged file), then again to send its items. Each item goes as a meta
//! set (`ms <key> <len> F<flags> T<ttl> q`, the key base64-encoded with `b`
//! where it is not a text-protocol key) with its remaining TTL; items that
//! have expired are skipped. Sets go in batches of about [`BATCH_BYTES`],
//! each closed by `mn`; the batch's replies (only failures, as `q` asks)
//! are read up to `MN` before the next batch is sent, so memory stays at
//! one batch plus one value (a reply line over about 1 MiB stops the
//! restore); replication sends its batches the same way ([`exchange`]).
//! CAS values are not carried over: the node gives each item a new one.
//!
//! A key whose `ms` key token would be empty or over 250 characters (a key
//! that needs base64 and is longer than 186 bytes) cannot be sent: it is
//! skipped and counted here, never sent to be refused, since memcached
//! (and ferrocache) answer such a line `CLIENT_ERROR bad command line
//! format` without reading its data, which would then run as commands.
//! For the same reason any reply line that is neither `MN` nor a refusal
//! of one item stops the restore with an error.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cluster::replicate::exchange;
use crate::protocol::base64;
use crate::storage::snapshot::{self, Record};

/// Bytes of requests sent before their replies are read.
pub const BATCH_BYTES: usize = 256 * 1024;
/// Largest value accepted from a file (memcached's largest `-I`).
const MAX_VALUE: usize = 1 << 30;
/// memcached reads a TTL above this many seconds as a unix time.
const REALTIME_MAXDELTA: u64 = crate::storage::clock::MAX_RELATIVE_EXPTIME as u64;
/// How long to wait for a batch's replies.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Records in the file.
    pub records: u64,
    /// Sets sent, and the ones the node refused.
    pub sent: u64,
    pub refused: u64,
    /// Records skipped because they had expired.
    pub expired: u64,
    /// Records skipped because the meta protocol cannot carry their key.
    pub unsendable: u64,
    /// The node's first refusal line.
    pub first_refusal: Option<String>,
}

/// Why a restore stopped.
#[derive(Debug)]
pub enum Failure {
    /// The file is not a good snapshot: nothing was sent.
    BadFile(String),
    /// Connecting, sending or reading replies failed.
    Node(io::Error),
}

/// What [`encode`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoded {
    Set,
    Expired,
    /// A key that needs base64 and is too long once encoded.
    Unsendable,
}

/// Appends the meta set for `r` to `out`, unless it has expired by `now`
/// or its key cannot be sent.
fn encode(r: &Record<'_>, now: u64, out: &mut Vec<u8>) -> Encoded {
    let ttl = match r.exptime {
        0 => None,
        e if e <= now => return Encoded::Expired,
        e if e - now > REALTIME_MAXDELTA => Some(e),
        e => Some(e - now),
    };
    if !base64::meta_key_fits(r.key) {
        return Encoded::Unsendable;
    }
    out.extend_from_slice(b"ms ");
    let text_key = base64::push_meta_key(r.key, out) == Some(false);
    out.extend_from_slice(format!(" {} F{}", r.value.len(), r.flags).as_bytes());
    if let Some(t) = ttl {
        out.extend_from_slice(format!(" T{t}").as_bytes());
    }
    out.extend_from_slice(if text_key { b" q\r\n" } else { b" q b\r\n" });
    out.extend_from_slice(r.value);
    out.extend_from_slice(b"\r\n");
    Encoded::Set
}

/// Whether a reply line (without its line end) to a batch of quiet meta
/// sets refuses one set, whose data the node read and dropped. Any other
/// line but `MN` means the node and this stream no longer agree on where
/// a request starts.
fn refused(line: &[u8]) -> bool {
    matches!(line, b"NS" | b"SERVER_ERROR out of memory storing object" | b"SERVER_ERROR object too large for cache")
}

/// Sends `batch` (ending with `mn`) and reads its replies up to `MN`.
fn flush(conn: &mut TcpStream, batch: &mut Vec<u8>, o: &mut Outcome) -> io::Result<()> {
    batch.extend_from_slice(b"mn\r\n");
    let sent = exchange(conn, batch, |line| {
        if !refused(line) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the node replied {:?}, neither a set's refusal nor MN; restore stopped",
                    String::from_utf8_lossy(line)
                ),
            ));
        }
        o.refused = o.refused.saturating_add(1);
        if o.first_refusal.is_none() {
            o.first_refusal = Some(String::from_utf8_lossy(line).into_owned());
        }
        Ok(())
    });
    batch.clear();
    sent.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::new(e.kind(), "the node closed the connection"),
        _ => e,
    })
}

/// Restores the snapshot at `file` into the node at `addr`.
pub fn restore(file: &Path, addr: &str) -> Result<Outcome, Failure> {
    let mut o = Outcome {
        records: snapshot::for_each_record(file, MAX_VALUE, |_| ()).map_err(|e| Failure::BadFile(e.to_string()))?,
        ..Outcome::default()
    };
    let target = addr
        .to_socket_addrs()
        .map_err(Failure::Node)?
        .next()
        .ok_or_else(|| Failure::Node(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
    let mut conn = TcpStream::connect(target).map_err(Failure::Node)?;
    conn.set_nodelay(true).map_err(Failure::Node)?;
    conn.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(Failure::Node)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut batch = Vec::with_capacity(BATCH_BYTES + 4096);
    let mut sent = Ok(());
    let read = snapshot::for_each_record(file, MAX_VALUE, |r| {
        if sent.is_err() {
            return;
        }
        match encode(&r, now, &mut batch) {
            Encoded::Set => {}
            Encoded::Expired => return o.expired += 1,
            Encoded::Unsendable => return o.unsendable += 1,
        }
        o.sent += 1;
        if batch.len() >= BATCH_BYTES {
            sent = flush(&mut conn, &mut batch, &mut o);
        }
    });
    sent.map_err(Failure::Node)?;
    // The file was verified above; a failure now means it changed since.
    read.map_err(|e| Failure::BadFile(format!("{e} (the file changed during the restore)")))?;
    flush(&mut conn, &mut batch, &mut o).map_err(Failure::Node)?;
    Ok(o)
}

/// The `restore` subcommand: `args` are what follows `restore`. Returns
/// the exit status (0: every live item stored; 1: some were refused or
/// could not be sent;
/// 64: usage; 65: a bad file, nothing sent; 69: the node failed).
pub fn main(args: &[String]) -> u8 {
    let [file, addr] = args else {
        eprintln!("usage: ferrocache restore FILE HOST:PORT");
        return 64;
    };
    let start = Instant::now();
    match restore(Path::new(file), addr) {
        Ok(o) => {
            println!(
                "restored {} of {} items from {file} into {addr} in {:.2} s ({} expired, skipped; {} with keys the meta protocol cannot carry, skipped; {} refused by the node{})",
                o.sent.saturating_sub(o.refused),
                o.records,
                start.elapsed().as_secs_f64(),
                o.expired,
                o.unsendable,
                o.refused,
                o.first_refusal.as_deref().map(|r| format!(", first: {r}")).unwrap_or_default()
            );
            u8::from(o.refused > 0 || o.unsendable > 0)
        }
        Err(Failure::BadFile(why)) => {
            eprintln!("ferrocache restore: {file} refused: {why}; nothing was sent");
            65
        }
        Err(Failure::Node(e)) => {
            eprintln!("ferrocache restore: {addr}: {e}");
            69
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(key: &'a [u8], value: &'a [u8], exptime: u64) -> Record<'a> {
        Record { key, value, flags: 7, exptime, cas: 9 }
    }

    #[test]
    fn sets_carry_flags_and_the_remaining_ttl() {
        let now = 1_700_000_000;
        let mut out = Vec::new();
        assert_eq!(encode(&rec(b"k", b"hello", 0), now, &mut out), Encoded::Set);
        assert_eq!(out, b"ms k 5 F7 q\r\nhello\r\n");
        out.clear();
        assert_eq!(encode(&rec(b"k", b"v", now + 100), now, &mut out), Encoded::Set);
        assert_eq!(out, b"ms k 1 F7 T100 q\r\nv\r\n");
        // Past 30 days a TTL reads as a unix time: the exptime itself goes.
        out.clear();
        let far = now + REALTIME_MAXDELTA + 1;
        assert_eq!(encode(&rec(b"k", b"v", far), now, &mut out), Encoded::Set);
        assert_eq!(out, format!("ms k 1 F7 T{far} q\r\nv\r\n").into_bytes());
        out.clear();
        assert_eq!(encode(&rec(b"k", b"v", now), now, &mut out), Encoded::Expired);
        assert!(out.is_empty());
    }

    #[test]
    fn keys_the_text_protocol_cannot_carry_go_in_base64() {
        let mut out = Vec::new();
        assert_eq!(encode(&rec(b"a b\n", b"v", 0), 1, &mut out), Encoded::Set);
        assert_eq!(out, b"ms YSBiCg== 1 F7 q b\r\nv\r\n");
        // 186 bytes are 248 in base64, within the 250 a line may carry;
        // 187 would be 252: not sent at all (never a line to refuse).
        out.clear();
        assert_eq!(encode(&rec(&[1; 186], b"v", 0), 1, &mut out), Encoded::Set);
        assert!(out.starts_with(b"ms AQEBAQEB"));
        assert_eq!(out.iter().position(|&b| b == b'\r'), Some(3 + 248 + " 1 F7 q b".len()));
        out.clear();
        assert_eq!(encode(&rec(&[1; 187], b"v", 0), 1, &mut out), Encoded::Unsendable);
        assert!(out.is_empty());
        // A text key of 250 bytes goes as it is; 251, or none, cannot.
        assert_eq!(encode(&rec(&[b'k'; 250], b"v", 0), 1, &mut out), Encoded::Set);
        out.clear();
        assert_eq!(encode(&rec(&[b'k'; 251], b"v", 0), 1, &mut out), Encoded::Unsendable);
        assert_eq!(encode(&rec(b"", b"v", 0), 1, &mut out), Encoded::Unsendable);
        // 250 spaces: 336 characters of base64.
        assert_eq!(encode(&rec(&[b' '; 250], b"flush_all", 0), 1, &mut out), Encoded::Unsendable);
        assert!(out.is_empty());
    }

    #[test]
    fn only_refusals_of_one_set_are_expected_replies() {
        for line in ["NS", "SERVER_ERROR out of memory storing object", "SERVER_ERROR object too large for cache"] {
            assert!(refused(line.as_bytes()), "{line}");
        }
        // What a value run as a command, or a line the node could not
        // parse, answers: the stream is out of step.
        for stray in
            ["OK", "HD", "ERROR", "CLIENT_ERROR bad command line format", "CLIENT_ERROR bad data chunk", "", "NS "]
        {
            assert!(!refused(stray.as_bytes()), "{stray}");
        }
    }
}
