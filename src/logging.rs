//! Logging setup: env_logger on stderr, and under systemd's journal the
//! kernel-style priority prefixes (`<3>` error ... `<7>` debug) that
//! journald reads from a service's stream, so `journalctl -p warning`
//! filters ferrocache's lines.
//!
//! systemd sets `$JOURNAL_STREAM` to `DEVICE:INODE` of the stream it gave
//! the service; the prefixes are written only while stderr is still that
//! stream (not after `logfile`/`--logfile` sent it to a file), as
//! systemd.exec(5) advises. The journal timestamps each line itself, so
//! the prefixed format has no time.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;

use log::Level;

/// syslog(3) priority for a log level (`trace` shares `debug`'s 7).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// One record as journald reads it: every line of the message carries the
/// priority prefix (journald splits a stream at newlines), the first one
/// also the module that logged it.
pub fn journal_line(level: Level, target: &str, message: &str) -> String {
    let p = priority(level);
    let mut out = String::with_capacity(message.len() + target.len() + 8);
    for (i, line) in message.split('\n').enumerate() {
        if i == 0 {
            let _ = write!(out, "<{p}>{target}: {line}");
        } else {
            let _ = write!(out, "\n<{p}>{line}");
        }
    }
    out
}

/// Whether `value` (a `$JOURNAL_STREAM`) names the file with `dev` and `ino`.
pub fn names_stream(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else { return false };
    d.parse::<u64>().ok() == Some(dev) && i.parse::<u64>().ok() == Some(ino)
}

/// Whether stderr is the journal stream systemd connected us to.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some(value) = value.to_str() else { return false };
    let Ok(fd) = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() else { return false };
    let Ok(meta) = std::fs::File::from(fd).metadata() else { return false };
    names_stream(value, meta.dev(), meta.ino())
}

/// Installs the logger. Everything passes the logger itself; `log`'s max
/// level is the gate, so that the `verbosity` command can change it at run
/// time. `RUST_LOG`, when set, filters per module as usual and fixes the
/// level; otherwise `-v` (`verbosity`) sets it.
pub fn init(verbosity: u8) {
    let mut logger = env_logger::Builder::new();
    logger.filter_level(log::LevelFilter::Trace);
    let rust_log = std::env::var("RUST_LOG").ok();
    if let Some(spec) = &rust_log {
        logger.parse_filters(spec);
    }
    if stderr_is_journal() {
        logger.format(|buf, record| {
            let line = journal_line(record.level(), record.target(), &record.args().to_string());
            writeln!(buf, "{line}")
        });
    }
    logger.init();
    if rust_log.is_none() {
        log::set_max_level(crate::log_level(verbosity));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        let got: Vec<u8> =
            [Level::Error, Level::Warn, Level::Info, Level::Debug, Level::Trace].into_iter().map(priority).collect();
        assert_eq!(got, vec![3, 4, 6, 7, 7]);
    }

    #[test]
    fn a_line_carries_its_priority_and_module() {
        assert_eq!(
            journal_line(Level::Warn, "ferrocache::server", "snapshot refused"),
            "<4>ferrocache::server: snapshot refused"
        );
        assert_eq!(journal_line(Level::Error, "x", ""), "<3>x: ");
    }

    #[test]
    fn every_line_of_a_message_is_prefixed() {
        assert_eq!(journal_line(Level::Info, "m", "one\ntwo\nthree"), "<6>m: one\n<6>two\n<6>three");
    }

    #[test]
    fn the_stream_must_be_ours() {
        assert!(names_stream("8:123", 8, 123));
        assert!(names_stream("8:123\n", 8, 123));
        assert!(!names_stream("8:124", 8, 123));
        assert!(!names_stream("9:123", 8, 123));
        assert!(!names_stream("8123", 8, 123));
        assert!(!names_stream("", 8, 123));
        assert!(!names_stream("a:b", 8, 123));
    }
}
