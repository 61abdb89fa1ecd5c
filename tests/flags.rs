//! Flags memcached has that ferrocache refuses stop the start with a
//! message and exit status 64 (EX_USAGE); `--config-file` feeds the same
//! parser.

mod common;

use std::process::Command;

use common::{temp_dir, Server};

fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["-l", "127.0.0.1", "-p", "-1"])
        .args(args)
        .output()
        .expect("run ferrocache");
    assert_eq!(out.status.code(), Some(64), "{args:?} must exit 64");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_refused_flag_exits_64_with_the_reason() {
    assert!(refused(&["-o", "lru_maintainer"]).contains("-o lru_maintainer is not supported"));
    assert!(refused(&["-L"]).contains("-L is not supported"));
    assert!(refused(&["-o", "no_such_option"]).contains("Illegal suboption"));
}

#[test]
fn a_config_file_is_read_and_the_command_line_adds_to_it() {
    let dir = temp_dir("flags");
    let conf = dir.join("memcached.conf");
    std::fs::write(&conf, "# as Debian ships it\n-m 16\n-c 99\n-p 11211\n").unwrap();
    let server = Server::start(&["--config-file", conf.to_str().unwrap(), "-o", "no_lru_crawler"]);
    let settings = server.stats("settings");
    assert_eq!(settings["maxconns"], "99");
    assert_eq!(settings["maxbytes"], (16 * 1024 * 1024).to_string());
    assert_eq!(settings["lru_crawler"], "no");
    drop(server);
    std::fs::write(&conf, "-o temporary_ttl=61\n").unwrap();
    assert!(refused(&["--config-file", conf.to_str().unwrap()]).contains("temporary_ttl"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-e FILE`: SIGUSR1 keeps the cache for the next start; SIGTERM does not;
/// a damaged FILE.meta refuses the start.
#[test]
fn memory_file_survives_a_graceful_restart_only() {
    let dir = temp_dir("memfile");
    let file = dir.join("mem");
    let path = file.to_str().unwrap();
    let mut server = Server::start(&["-e", path]);
    assert_eq!(server.stats("settings")["memory_file"], path);
    let mut c = server.connect();
    c.expect(b"set k 0 0 1\r\nv\r\n", b"STORED\r\n");
    drop(c);
    assert!(server.signal_and_wait(libc::SIGUSR1).success());
    assert!(dir.join("mem.meta").exists());

    let mut server = Server::start(&["-e", path]);
    let mut c = server.connect();
    c.expect(b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n");
    drop(c);
    assert!(!dir.join("mem.meta").exists(), "the metadata is consumed at start");
    assert!(server.signal_and_wait(libc::SIGTERM).success());

    let mut server = Server::start(&["-e", path]);
    server.connect().expect(b"get k\r\n", b"END\r\n");
    assert!(server.signal_and_wait(libc::SIGTERM).success());

    std::fs::write(dir.join("mem.meta"), "").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["-l", "127.0.0.1", "-p", "-1", "-e", path])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt restart metadata"));
    let _ = std::fs::remove_dir_all(&dir);
}
