//! systemd's notify protocol (sd_notify(3)), implemented directly: one
//! datagram of `KEY=value` lines to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`).
//! Without the variable (not under systemd) every call is a no-op.
//!
//! [`Notifier::extend_while`] keeps a long phase (a large snapshot loading
//! before `READY=1` or written after `STOPPING=1`) from being killed by
//! systemd's start or stop timeout: `EXTEND_TIMEOUT_USEC` at once and then
//! every few seconds, until the phase ends.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often [`Notifier::extend_while`] asks for more time.
pub const EXTEND_EVERY: Duration = Duration::from_secs(5);
/// How much time each request asks for: several periods, so a late tick
/// (a busy machine) does not let the timeout run out.
pub const EXTEND_BY: Duration = Duration::from_secs(30);

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

    /// Until the returned guard is dropped, tells systemd every
    /// [`EXTEND_EVERY`] that `what` (shown as the unit's status) needs
    /// [`EXTEND_BY`] more. Not under systemd: no thread, nothing sent.
    pub fn extend_while(&self, what: &str) -> Extension {
        self.extend_every(what, EXTEND_EVERY, EXTEND_BY)
    }

    /// [`Self::extend_while`] with explicit periods (tests).
    pub fn extend_every(&self, what: &str, every: Duration, by: Duration) -> Extension {
        if self.socket.is_none() {
            return Extension { stop: None, thread: None };
        }
        let message = format!("EXTEND_TIMEOUT_USEC={}\nSTATUS={what}", by.as_micros());
        let send = {
            let n = self.clone();
            move || {
                if let Err(e) = n.notify(&message) {
                    log::warn!("systemd notification failed: {e}");
                }
            }
        };
        // The first request goes out before the phase starts.
        send();
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("notify-extend".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    send();
                }
            })
            .map_err(|e| log::warn!("cannot start the timeout extension thread: {e}"))
            .ok();
        Extension { stop: Some(tx), thread }
    }
}

/// A running [`Notifier::extend_while`]; dropping it stops the requests.
#[derive(Debug)]
pub struct Extension {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Extension {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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
        let e = Notifier::default().extend_while("loading");
        assert!(e.thread.is_none());
    }

    #[test]
    fn an_extension_repeats_until_dropped() {
        let path = std::env::temp_dir().join(format!("ferrocache-extend-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        listener.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let n = Notifier::to_path(path.to_str().unwrap());
        let ext = n.extend_every("loading the snapshot", Duration::from_millis(20), Duration::from_secs(7));
        let mut buf = [0u8; 128];
        // The first at once, then at least two repeats (the read timeout
        // bounds the wait).
        for _ in 0..3 {
            let len = listener.recv(&mut buf).unwrap();
            assert_eq!(&buf[..len], b"EXTEND_TIMEOUT_USEC=7000000\nSTATUS=loading the snapshot");
        }
        drop(ext);
        // After the drop nothing more comes: drain what was in flight,
        // then the socket stays quiet.
        listener.set_nonblocking(true).unwrap();
        while listener.recv(&mut buf).is_ok() {}
        std::thread::sleep(Duration::from_millis(100));
        assert!(listener.recv(&mut buf).is_err());
        let _ = std::fs::remove_file(&path);
    }
}
