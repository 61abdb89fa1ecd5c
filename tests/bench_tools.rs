//! The benchmark tools against real servers: `ferrocache-bench` verifies
//! what ferrocache stores and catches a server that returns the wrong
//! bytes; `ferrocache-floor` starts like ferrocache (`-p -1`, the ready
//! line) and answers both protocols. Every run is bounded by a request
//! count; none depends on how fast the machine is.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;

/// Runs the generator against `addr`; returns whether it exited 0 and its
/// `RESULT` line's fields.
fn bench(addr: std::net::SocketAddr, args: &[&str]) -> (bool, Vec<(String, f64)>) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrocache-bench"))
        .arg("-s")
        .arg(addr.to_string())
        .args(["--duration", "60"])
        .args(args)
        .output()
        .expect("run ferrocache-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    let fields = line
        .split(' ')
        .map(|f| {
            let (k, v) = f.split_once('=').expect("key=value");
            (k.to_string(), v.parse().expect("a number"))
        })
        .collect();
    (out.status.success(), fields)
}

fn field(fields: &[(String, f64)], name: &str) -> f64 {
    fields.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no {name}")).1
}

fn start_floor(value_size: usize) -> Server {
    Server::start_command(Command::new(env!("CARGO_BIN_EXE_ferrocache-floor")).args([
        "-l",
        "127.0.0.1",
        "-p",
        "-1",
        "-t",
        "2",
        "--value-size",
        &value_size.to_string(),
    ]))
}

#[test]
fn the_generator_verifies_every_reply_of_a_real_server() {
    let server = Server::start(&["-t", "2"]);
    for proto in ["text", "binary"] {
        let (ok, r) = bench(
            server.addr(),
            &[
                "--protocol",
                proto,
                "--prefill",
                "--keys",
                "300",
                "--requests",
                "400",
                "-t",
                "2",
                "-c",
                "2",
                "--pipeline",
                "8",
                "--ratio",
                "1:1",
                "-d",
                "100",
            ],
        );
        assert!(ok, "{proto}: {r:?}");
        assert_eq!(field(&r, "ops"), 1600.0, "{proto}: every request answered");
        assert_eq!(field(&r, "wrong") + field(&r, "errors") + field(&r, "lost"), 0.0, "{proto}");
        assert_eq!(field(&r, "hit_ratio"), 1.0, "{proto}: prefilled keys all hit");
    }
    // Large values cross many reads and writes.
    let (ok, r) = bench(server.addr(), &["--requests", "50", "-c", "2", "--ratio", "1:1", "-d", "102400"]);
    assert!(ok && field(&r, "ops") == 100.0, "{r:?}");
}

#[test]
fn the_floor_answers_both_protocols_and_fails_verification() {
    let floor = start_floor(40);
    for proto in ["text", "binary"] {
        let args = ["--protocol", proto, "--requests", "300", "-c", "3", "--pipeline", "4", "--ratio", "1:3"];
        let (ok, r) = bench(floor.addr(), &[&args[..], &["--no-verify", "-d", "40"]].concat());
        assert!(ok, "{proto}: {r:?}");
        assert_eq!(field(&r, "ops"), 900.0);
        assert_eq!(field(&r, "hit_ratio"), 1.0, "every get answers");
        // Its values are not what the sets wrote: the check must see it.
        let (ok, r) = bench(floor.addr(), &[&args[..], &["-d", "40"]].concat());
        assert!(!ok && field(&r, "wrong") > 0.0, "{proto}: {r:?}");
    }
    let mut c = floor.connect();
    let v = "x".repeat(40);
    c.expect(
        b"set k 0 0 3\r\nabc\r\nget a b\r\nversion\r\n",
        format!("STORED\r\nVALUE a 0 40\r\n{v}\r\nVALUE b 0 40\r\n{v}\r\nEND\r\nVERSION ferrocache-floor\r\n")
            .as_bytes(),
    );
}

#[test]
fn rate_mode_does_not_send_ahead_of_its_schedule() {
    let server = Server::start(&["-t", "1"]);
    // 100 requests at 1000/s on one connection take at least 99 ms, however
    // fast the server answers.
    let t0 = Instant::now();
    let (ok, r) = bench(server.addr(), &["--rate", "1000", "--requests", "100", "-c", "1"]);
    assert!(ok, "{r:?}");
    assert_eq!(field(&r, "ops"), 100.0);
    assert!(t0.elapsed() >= Duration::from_millis(99));
    assert!(field(&r, "secs") >= 0.099, "{r:?}");
}

/// `--ring` and `--owner`: the generator stores exactly the keys the ring
/// gives to the owner (here the server, listed first of two), the first
/// `--keys` of them, and no other.
#[test]
fn the_generator_keeps_to_the_keys_a_ring_gives_its_owner() {
    use ferrocache::cluster::{Ring, Scheme};
    use ferrocache::discovery::Node;
    let server = Server::start(&[]);
    let me = format!("127.0.0.1:{}", server.port());
    let other = "127.0.0.2:7777";
    let ring_arg = format!("{me},{other}");
    let args = ["--prefill", "--keys", "150", "--requests", "1", "--ratio", "0:1", "--ring", &ring_arg, "--owner", &me];
    let (ok, r) = bench(server.addr(), &args);
    assert!(ok && field(&r, "hit_ratio") == 1.0, "{r:?}");
    let nodes: Vec<Node> = [("127.0.0.1", server.port()), ("127.0.0.2", 7777)]
        .map(|(ip, port)| Node { host: ip.into(), ip: ip.into(), port })
        .to_vec();
    let ring = Ring::from_nodes(Scheme::Ketama, &nodes);
    let mut c = server.connect();
    let (mut owned, mut id) = (0, 0);
    while owned < 150 {
        let key = format!("key:{id}");
        c.send(format!("mg {key}\r\nmn\r\n").as_bytes());
        let held = c.read_until(b"MN\r\n") == b"HD\r\nMN\r\n";
        let mine = ring.owner(key.as_bytes()) == Some(0);
        assert_eq!(held, mine, "{key}: held {held}, owned {mine}");
        owned += usize::from(mine);
        id += 1;
        assert!(id < 10_000, "the ring gives the owner too few keys");
    }
    // the key after the last owned one is not stored even if owned
    let next = (id..id + 10_000).find(|i| ring.owner(format!("key:{i}").as_bytes()) == Some(0)).unwrap();
    c.send(format!("mg key:{next}\r\nmn\r\n").as_bytes());
    assert_eq!(c.read_until(b"MN\r\n"), b"EN\r\nMN\r\n");
}
