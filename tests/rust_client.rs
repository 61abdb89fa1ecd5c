//! The `memcache` crate (a third-party Rust client) against the daemon,
//! over the text protocol.

mod common;

use common::Server;

fn client(server: &Server) -> memcache::Client {
    let c = memcache::Client::connect(format!("memcache://127.0.0.1:{}?protocol=ascii", server.port())).unwrap();
    c.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    c
}

#[test]
fn storage_and_retrieval_commands() {
    let server = Server::start(&["-t", "2"]);
    let c = client(&server);
    c.flush().unwrap();
    c.set("greeting", "hello", 0).unwrap();
    assert_eq!(c.get::<String>("greeting").unwrap().as_deref(), Some("hello"));
    assert_eq!(c.get::<String>("missing").unwrap(), None);
    // The client maps NOT_STORED to Ok; the value must be unchanged.
    c.add("greeting", "again", 0).unwrap();
    assert_eq!(c.get::<String>("greeting").unwrap().as_deref(), Some("hello"));
    c.add("fresh", "1", 0).unwrap();
    c.replace("fresh", "2", 0).unwrap();
    c.append("fresh", "3").unwrap();
    c.prepend("fresh", "0").unwrap();
    assert_eq!(c.get::<String>("fresh").unwrap().as_deref(), Some("023"));
    assert!(c.delete("fresh").unwrap());
    assert!(!c.delete("fresh").unwrap());
    c.set("n", 10u64, 0).unwrap();
    assert_eq!(c.increment("n", 5).unwrap(), 15);
    assert_eq!(c.decrement("n", 20).unwrap(), 0);
    assert!(c.touch("n", 100).unwrap());
    assert!(!c.touch("none", 100).unwrap());
    let many: std::collections::HashMap<String, String> = c.gets(&["greeting", "n", "missing"]).unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!(many["greeting"], "hello");
}

#[test]
fn cas_through_the_client() {
    let server = Server::start(&[]);
    let c = client(&server);
    c.set("k", "v1", 0).unwrap();
    let got: std::collections::HashMap<String, (Vec<u8>, u32, Option<u64>)> = c.gets(&["k"]).unwrap();
    let cas = got["k"].2.expect("gets returns a cas");
    assert!(c.cas("k", "v2", 0, cas).unwrap());
    assert!(!c.cas("k", "v3", 0, cas).unwrap(), "a used token fails");
    assert_eq!(c.get::<String>("k").unwrap().as_deref(), Some("v2"));
}

#[test]
fn version() {
    // (The crate's `stats` stops at the first STAT line, so it is not used.)
    let server = Server::start(&["-t", "3"]);
    let c = client(&server);
    let v = c.version().unwrap();
    assert_eq!(v[0].1, "1.6.18");
}
