//! Credentials for SASL PLAIN (binary protocol, `-S`) and text-protocol
//! authentication (`-Y`): a file of `user:password` lines, memcached's
//! format. Comparisons take the same time whatever bytes differ, and
//! passwords are never logged or printed (`Debug` shows user names only).

use std::fmt;
use std::path::Path;

/// Users and passwords loaded from a file.
#[derive(Clone, Default)]
pub struct Credentials {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<_> = self.entries.iter().map(|(u, _)| String::from_utf8_lossy(u)).collect();
        f.debug_struct("Credentials").field("users", &users).finish_non_exhaustive()
    }
}

/// Equal length and bytes, comparing every byte regardless of where the
/// first difference is.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Credentials {
    /// Parses `user:password` lines; blank lines are skipped.
    pub fn parse(text: &[u8]) -> Result<Credentials, String> {
        let mut entries = Vec::new();
        for (n, line) in text.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return Err(format!("line {} is not user:password", n + 1));
            };
            entries.push((line[..colon].to_vec(), line[colon + 1..].to_vec()));
        }
        if entries.is_empty() {
            return Err("no user:password line".into());
        }
        Ok(Credentials { entries })
    }

    /// Loads a password file.
    pub fn load(path: &Path) -> Result<Credentials, String> {
        let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Credentials::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether `user` has password `pass`. Every entry is compared.
    pub fn check(&self, user: &[u8], pass: &[u8]) -> bool {
        self.entries.iter().fold(false, |ok, (u, p)| ok | (ct_eq(u, user) & ct_eq(p, pass)))
    }

    /// Checks a SASL PLAIN message: `[authzid] NUL authcid NUL passwd`.
    pub fn check_plain(&self, msg: &[u8]) -> bool {
        let mut parts = msg.splitn(3, |&b| b == 0);
        let (Some(_authzid), Some(user), Some(pass)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        self.check(user, pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_checks_passwords() {
        let c = Credentials::parse(b"alice:secret\r\n\nbob:pa:ss\n").unwrap();
        assert!(c.check(b"alice", b"secret"));
        assert!(c.check(b"bob", b"pa:ss"), "the password is everything after the first colon");
        assert!(!c.check(b"alice", b"secret2"));
        assert!(!c.check(b"alice", b"secre"));
        assert!(!c.check(b"carol", b"secret"));
        assert!(!c.check(b"", b""));
        assert!(!format!("{c:?}").contains("secret"), "Debug must not show passwords");
    }

    #[test]
    fn malformed_files_are_refused() {
        assert!(Credentials::parse(b"no colon here\n").is_err());
        assert!(Credentials::parse(b"\n\n").is_err());
    }

    #[test]
    fn sasl_plain_messages() {
        let c = Credentials::parse(b"alice:secret\n").unwrap();
        assert!(c.check_plain(b"\0alice\0secret"));
        assert!(c.check_plain(b"alice\0alice\0secret"));
        assert!(!c.check_plain(b"\0alice\0wrong"));
        assert!(!c.check_plain(b"alice secret"));
        assert!(!c.check_plain(b"\0alice"));
    }
}
