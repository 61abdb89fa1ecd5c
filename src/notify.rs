//! systemd's notify protocol (sd_notify(3)), implemented directly: one
//! datagram of `KEY=value` lines to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`).
//! Without the variable (not under systemd) every call is a no-op.

use std::io;
use std::os::unix::net::UnixDatagram;

/// Where notifications go, read once from the environment.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<String>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`.
    pub fn from_env() -> Notifier {
        Notifier { socket: std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty()) }
    }

    /// To an explicit socket path (tests).
    pub fn to_path(path: &str) -> Notifier {
        Notifier { socket: Some(path.to_string()) }
    }

    /// Sends `state` (e.g. `READY=1`); Ok(false) when not under systemd.
    pub fn notify(&self, state: &str) -> io::Result<bool> {
        let Some(target) = &self.socket else { return Ok(false) };
        let sock = UnixDatagram::unbound()?;
        if let Some(name) = target.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            sock.send_to(state.as_bytes(), target)?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_one_datagram_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("ferrocache-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let listener = UnixDatagram::bind(&dir).unwrap();
        let n = Notifier::to_path(dir.to_str().unwrap());
        assert!(n.notify("READY=1\nSTATUS=serving").unwrap());
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving");
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("ferrocache-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        assert!(Notifier::to_path(&format!("@{name}")).notify("STOPPING=1").unwrap());
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1");
    }

    #[test]
    fn without_systemd_it_does_nothing() {
        assert!(!Notifier::default().notify("READY=1").unwrap());
    }
}
