//! `--config-file PATH`: Debian's `/etc/memcached.conf`, read the way its
//! `start-memcached` script reads it, so an operator can swap the binary
//! and keep the file.
//!
//! The format: one option per line (`-m 64`, `-p 11211`, `-u memcache`),
//! `#` starts a comment line, blank lines are skipped, and `logfile PATH`
//! sends the daemon's stderr to PATH (appended). Each line is split on
//! whitespace into arguments, as the script's shell does; quotes are not
//! interpreted. The file's arguments come first and the command line's
//! after them, so a flag given on the command line adds to (`-o`, `-v`) or
//! overrides (everything else) the file's.
//!
//! `-d` in the file detaches as usual, except under systemd (`$NOTIFY_SOCKET`
//! or `$INVOCATION_ID` set), where forking would leave systemd watching the
//! wrong process: it is then dropped with a warning.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::bad;
use crate::error::Error;

/// What a configuration file adds to the command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileArgs {
    /// Arguments, in file order.
    pub args: Vec<String>,
    /// `logfile PATH`.
    pub logfile: Option<PathBuf>,
    /// Said once logging is up.
    pub warnings: Vec<String>,
}

/// Whether systemd started us (it sets one of these for every service).
pub fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some() || std::env::var_os("INVOCATION_ID").is_some()
}

/// Parses a file's text. `systemd`: whether `-d` is to be dropped.
pub fn parse(text: &str, systemd: bool) -> FileArgs {
    let mut out = FileArgs::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        if let Some(rest) = line.strip_prefix("logfile").filter(|r| r.starts_with(char::is_whitespace)) {
            out.logfile = Some(PathBuf::from(rest.trim()));
            continue;
        }
        let first = words.next().unwrap_or_default();
        if systemd && (first == "-d" || first == "--daemon") {
            out.warnings.push("ignoring -d from the configuration file: running under systemd".into());
            continue;
        }
        out.args.push(first.to_string());
        out.args.extend(words.map(str::to_string));
    }
    out
}

/// Reads `path`.
pub fn read(path: &Path) -> Result<FileArgs, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("cannot read the configuration file {}: {e}", path.display())))?;
    Ok(parse(&text, under_systemd()))
}

/// Splits `--config-file PATH` (or `--config-file=PATH`) out of a command
/// line: the file's path, and the other arguments in order.
pub fn split_config_file(args: Vec<OsString>) -> Result<(Option<PathBuf>, Vec<OsString>), Error> {
    let mut path = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--" {
            rest.push(a);
            rest.extend(it.by_ref());
            break;
        }
        if a == "--config-file" {
            let p = it.next().ok_or_else(|| bad("--config-file needs a path"))?;
            path = Some(PathBuf::from(p));
        } else if let Some(p) = a.to_str().and_then(|s| s.strip_prefix("--config-file=")) {
            path = Some(PathBuf::from(p));
        } else {
            rest.push(a);
        }
    }
    Ok((path, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "\
# memcached default config file
# 2003 - Jay Bonci <jaybonci@debian.org>

# Run memcached as a daemon.
-d

# Log memcached's output to /var/log/memcached
logfile /var/log/memcached.log

# Start with a cap of 64 megs of memory.
-m 64

# Default connection port is 11211
-p 11211

# Run the daemon as root.
-u memcache

-l 127.0.0.1
  -o idle_timeout=5 , modern
-P /var/run/memcached/memcached.pid
";

    #[test]
    fn debians_file_reads_as_its_script_reads_it() {
        let f = parse(DEBIAN, false);
        assert_eq!(f.logfile, Some(PathBuf::from("/var/log/memcached.log")));
        let want =
            "-d -m 64 -p 11211 -u memcache -l 127.0.0.1 -o idle_timeout=5 , modern -P /var/run/memcached/memcached.pid";
        assert_eq!(f.args.join(" "), want);
        assert!(f.warnings.is_empty());
    }

    #[test]
    fn under_systemd_dash_d_is_dropped_with_a_warning() {
        let f = parse(DEBIAN, true);
        assert!(!f.args.iter().any(|a| a == "-d"));
        assert_eq!(f.warnings.len(), 1);
    }

    #[test]
    fn logfile_needs_a_separator() {
        let f = parse("logfilex\nlogfile   /tmp/a b.log  \n", false);
        assert_eq!(f.args, vec!["logfilex".to_string()]);
        assert_eq!(f.logfile, Some(PathBuf::from("/tmp/a b.log")));
    }

    #[test]
    fn the_config_file_flag_is_split_out() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let (p, rest) = split_config_file(args(&["x", "-p", "1", "--config-file", "/etc/m.conf", "-v"])).unwrap();
        assert_eq!(p, Some(PathBuf::from("/etc/m.conf")));
        assert_eq!(rest, args(&["x", "-p", "1", "-v"]));
        let (p, _) = split_config_file(args(&["x", "--config-file=/a"])).unwrap();
        assert_eq!(p, Some(PathBuf::from("/a")));
        assert!(split_config_file(args(&["x", "--config-file"])).is_err());
    }
}
