//! Endpoint membership from DNS (`--cluster-dns NAME:PORT`): the configured
//! node list is what NAME resolves to, looked up again every
//! `--cluster-poll-ms`, as an orchestrator publishes it (a Kubernetes
//! headless Service: one A/AAAA record per ready pod).
//!
//! - `NAME:PORT`: A and AAAA records, following CNAMEs; each address is a
//!   node `ip|ip|PORT`.
//! - `_service._proto.NAME` (a first label starting with `_`): SRV
//!   records; each target is a node `target|ip|port`, its address taken
//!   from the reply's additional section or asked for (A, then AAAA).
//!   Priority and weight are not used: every target is a node.
//!
//! The list is sorted, so an unchanged answer is no change. A lookup that
//! fails (no reply, an error code, a malformed reply, no records at all)
//! keeps the last list: it is counted, shown in `stats cluster` and logged
//! when the error changes.
//!
//! The client asks one server (`--dns-server`, else the first `nameserver`
//! of /etc/resolv.conf) over UDP, one question per query from a fresh
//! socket (a random source port) with a random id; a reply must come from
//! that server, carry the id and repeat the question, else it is ignored.
//! No TCP: a truncated reply, or one over 4096 bytes, is a failed lookup. Nothing async: the
//! lookups run on their own thread (`server`).

pub mod wire;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Node;
use wire::{Data, Reply};

/// How long one query waits for its reply, and how often it is sent.
const QUERY_TIMEOUT: Duration = Duration::from_millis(1000);
const QUERY_ATTEMPTS: u32 = 2;
/// CNAME hops followed from the asked name.
const MAX_CHAIN: usize = 8;
/// Largest reply read. A query offers [`wire::EDNS_PAYLOAD`] bytes (512
/// without EDNS); a server that ignores the offer is still heard up to the
/// 4096 bytes resolvers commonly offered before 2020. A larger datagram
/// is not read whole and counts as a bad reply.
const MAX_REPLY: usize = 4096;

/// Where `--cluster-dns` looks (the first `nameserver` of this file when no
/// `--dns-server` is given).
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The first `nameserver` line's address, port 53.
pub fn nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        words.next()?.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
    })
}

/// A random query id: std's hasher keys are random per process and change
/// with every `RandomState`.
fn random_id() -> u16 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(Instant::now()) as u16
}

/// A one-server stub resolver.
#[derive(Debug, Clone)]
pub struct Resolver {
    pub server: SocketAddr,
    pub timeout: Duration,
    pub attempts: u32,
}

impl Resolver {
    pub fn new(server: SocketAddr) -> Resolver {
        Resolver { server, timeout: QUERY_TIMEOUT, attempts: QUERY_ATTEMPTS }
    }

    /// Asks `name` of type `qtype`. A reply with NOERROR or NXDOMAIN comes
    /// back (NXDOMAIN: no records); any other code is an error. Queries
    /// offer EDNS(0); a server that answers FORMERR to that (one without
    /// EDNS, RFC 6891 section 7) is asked again without it. A datagram
    /// with the query's id that does not decode is skipped (an answer may
    /// still come); it is the error only if none does.
    pub fn query(&self, name: &str, qtype: u16) -> Result<Reply, String> {
        let (mut edns, mut tries, mut bad) = (true, 0, None);
        while tries < self.attempts.max(1) {
            match self.query_once(name, qtype, edns, &mut bad)? {
                None => tries += 1,
                Some(r) if r.rcode == wire::RCODE_OK || r.rcode == wire::RCODE_NXDOMAIN => return Ok(r),
                Some(r) if r.rcode == wire::RCODE_FORMERR && edns => edns = false,
                Some(r) => return Err(format!("{name}: server answered {}", rcode_name(r.rcode))),
            }
        }
        match bad {
            Some(e) => {
                Err(format!("{name}: no valid reply from {} within {:?}, only a {e}", self.server, self.timeout))
            }
            None => Err(format!("{name}: no reply from {} within {:?}", self.server, self.timeout)),
        }
    }

    /// One query; `Ok(None)` when no acceptable reply came in time (then
    /// `bad` says why the last datagram with our id was not one).
    fn query_once(
        &self,
        name: &str,
        qtype: u16,
        edns: bool,
        bad: &mut Option<String>,
    ) -> Result<Option<Reply>, String> {
        let id = random_id();
        let query = wire::encode_query(id, name, qtype, edns)?;
        let local: SocketAddr = match self.server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let io = |e: std::io::Error| format!("{name}: DNS server {}: {e}", self.server);
        let socket = UdpSocket::bind(local).map_err(io)?;
        // connected: the kernel passes on datagrams from the server only
        socket.connect(self.server).map_err(io)?;
        socket.send(&query).map_err(io)?;
        let deadline = Instant::now() + self.timeout;
        // one byte more than a reply may have: a datagram that fills it
        // was cut by the read
        let mut buf = [0u8; MAX_REPLY + 1];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            socket.set_read_timeout(Some(left)).map_err(io)?;
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            let msg = &buf[..n];
            if msg.len() < 2 || msg[..2] != id.to_be_bytes() {
                continue; // not ours (a late reply to an earlier query)
            }
            if n > MAX_REPLY {
                *bad = Some(format!("reply larger than {MAX_REPLY} bytes"));
                continue;
            }
            let reply = match wire::decode(msg) {
                Ok(reply) => reply,
                Err(e) => {
                    // a forged or damaged datagram: the real answer may follow
                    *bad = Some(e.to_string());
                    continue;
                }
            };
            let (qname, qt) = &reply.question;
            if *qt != qtype || !qname.eq_ignore_ascii_case(name.strip_suffix('.').unwrap_or(name)) {
                continue; // our id, another question: not an answer to this one
            }
            return Ok(Some(reply));
        }
    }

    /// The `qtype` (A or AAAA) addresses of `name`, following CNAMEs; asks
    /// again for a chain's end when the reply stops there.
    pub fn addresses(&self, name: &str, qtype: u16) -> Result<Vec<IpAddr>, String> {
        let mut asked = name.to_string();
        for _ in 0..MAX_CHAIN {
            let reply = self.query(&asked, qtype)?;
            let end = wire::chain_end(&reply.answers, &asked, MAX_CHAIN);
            let found = addresses_in(&reply.answers, &end);
            if !found.is_empty() || end.eq_ignore_ascii_case(&asked) {
                return Ok(found);
            }
            asked = end;
        }
        Err(format!("{name}: CNAME chain longer than {MAX_CHAIN}"))
    }
}

/// The A and AAAA addresses owned by `name` in `records`.
fn addresses_in(records: &[wire::Record], name: &str) -> Vec<IpAddr> {
    wire::owned_by(records, name)
        .filter_map(|d| match d {
            Data::A(a) => Some(IpAddr::V4(*a)),
            Data::Aaaa(a) => Some(IpAddr::V6(*a)),
            _ => None,
        })
        .collect()
}

/// The addresses of a name's A and AAAA questions together. One family's
/// failure (a resolver that drops or refuses AAAA questions) leaves the
/// other's answer; only both failing is an error (one reason when both
/// failed alike).
fn either_family(v4: Result<Vec<IpAddr>, String>, v6: Result<Vec<IpAddr>, String>) -> Result<Vec<IpAddr>, String> {
    match (v4, v6) {
        (Ok(mut v4), Ok(v6)) => {
            v4.extend(v6);
            Ok(v4)
        }
        (Ok(found), Err(e)) | (Err(e), Ok(found)) => {
            log::debug!("--cluster-dns: one address family failed, the other answered: {e}");
            Ok(found)
        }
        (Err(e4), Err(e6)) if e4 == e6 => Err(e4),
        (Err(e4), Err(e6)) => Err(format!("{e4}; {e6}")),
    }
}

fn rcode_name(code: u8) -> String {
    match code {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        c => format!("rcode {c}"),
    }
}

/// What `--cluster-dns` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    /// The nodes' port (A/AAAA); SRV records carry their own.
    pub port: Option<u16>,
    pub srv: bool,
}

impl Target {
    /// Parses `NAME:PORT`; an SRV name (`_service._proto.NAME`) may leave
    /// out `:PORT` (its records have the port).
    pub fn parse(spec: &str) -> Result<Target, String> {
        let (name, port) = match spec.rsplit_once(':') {
            Some((name, port)) => {
                let port: u16 = port.parse().map_err(|_| format!("{spec}: not NAME:PORT"))?;
                if port == 0 {
                    return Err(format!("{spec}: port 0"));
                }
                (name, Some(port))
            }
            None => (spec, None),
        };
        let srv = name.starts_with('_');
        if port.is_none() && !srv {
            return Err(format!("{spec}: not NAME:PORT (the port is needed for A/AAAA records)"));
        }
        if name.strip_suffix('.').unwrap_or(name).is_empty() {
            return Err(format!("{spec}: no name"));
        }
        wire::encode_query(0, name, wire::TYPE_A, false)?; // the name is one DNS can carry
        Ok(Target { name: name.strip_suffix('.').unwrap_or(name).to_string(), port, srv })
    }
}

#[derive(Debug, Default)]
struct Status {
    lookups: u64,
    failures: u64,
    last_error: Option<String>,
}

/// The DNS source of the configured list: what to ask, whom, and how the
/// lookups went.
#[derive(Debug)]
pub struct Membership {
    target: Target,
    resolver: Resolver,
    status: Mutex<Status>,
}

impl Membership {
    pub fn new(target: Target, resolver: Resolver) -> Membership {
        Membership { target, resolver, status: Mutex::new(Status::default()) }
    }

    /// From `--cluster-dns` and `--dns-server`; None without
    /// `--cluster-dns`. (`Config` has parsed its target and refused it
    /// beside `--cluster-file`.)
    pub fn from_config(cluster: &crate::cluster::ClusterConfig) -> Result<Option<Membership>, String> {
        let Some(target) = &cluster.dns else { return Ok(None) };
        let server = match cluster.dns_server {
            Some(s) => s,
            None => {
                let text = std::fs::read_to_string(RESOLV_CONF).map_err(|e| format!("{RESOLV_CONF}: {e}"))?;
                nameserver(&text).ok_or_else(|| format!("no nameserver in {RESOLV_CONF}: give --dns-server"))?
            }
        };
        Ok(Some(Membership::new(target.clone(), Resolver::new(server))))
    }

    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// One lookup: the sorted node list, or why there is none (counted,
    /// and logged when the reason changes).
    pub fn lookup(&self) -> Result<Vec<Node>, String> {
        let result = self.resolve();
        let mut st = self.status.lock();
        st.lookups += 1;
        match &result {
            Ok(nodes) => {
                if st.last_error.take().is_some() {
                    log::info!("--cluster-dns {}: resolved again ({} node(s))", self.target.name, nodes.len());
                }
            }
            Err(e) => {
                st.failures += 1;
                if st.last_error.as_ref() != Some(e) {
                    log::warn!("--cluster-dns: lookup failed, keeping the last node list: {e}");
                }
                st.last_error = Some(e.clone());
            }
        }
        result
    }

    fn resolve(&self) -> Result<Vec<Node>, String> {
        let t = &self.target;
        let mut nodes = Vec::new();
        if t.srv {
            let reply = self.resolver.query(&t.name, wire::TYPE_SRV)?;
            let owner = wire::chain_end(&reply.answers, &t.name, MAX_CHAIN);
            for data in wire::owned_by(&reply.answers, &owner) {
                let Data::Srv { port, target, .. } = data else { continue };
                if target.is_empty() {
                    continue; // "." : the service is not offered
                }
                match self.srv_address(&reply, target)? {
                    Some(ip) => nodes.push(Node { host: target.clone(), ip: ip.to_string(), port: *port }),
                    None => log::warn!("--cluster-dns {}: SRV target {target} has no address", t.name),
                }
            }
        } else {
            let port = t.port.unwrap_or(0); // parse() requires it without SRV
            let v4 = self.resolver.addresses(&t.name, wire::TYPE_A);
            for ip in either_family(v4, self.resolver.addresses(&t.name, wire::TYPE_AAAA))? {
                nodes.push(Node { host: ip.to_string(), ip: ip.to_string(), port });
            }
        }
        if nodes.is_empty() {
            return Err(format!("{}: no records", t.name));
        }
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    /// An SRV target's address: the lowest (IPv4 first) of those in the
    /// reply's additional section, else of those it resolves to (A, then
    /// AAAA if A gives none; an error only if both questions fail).
    fn srv_address(&self, reply: &Reply, target: &str) -> Result<Option<IpAddr>, String> {
        let end = wire::chain_end(&reply.additional, target, MAX_CHAIN);
        if let Some(ip) = addresses_in(&reply.additional, &end).into_iter().min() {
            return Ok(Some(ip));
        }
        let v4 = self.resolver.addresses(target, wire::TYPE_A);
        if let Some(ip) = v4.as_ref().ok().and_then(|found| found.iter().min()) {
            return Ok(Some(*ip));
        }
        Ok(either_family(v4, self.resolver.addresses(target, wire::TYPE_AAAA))?.into_iter().min())
    }

    /// `stats cluster` lines.
    pub fn stats(&self) -> Vec<(String, String)> {
        let st = self.status.lock();
        let mut out = vec![
            ("cluster_dns_name".to_string(), self.target.name.clone()),
            ("cluster_dns_server".to_string(), self.resolver.server.to_string()),
            ("cluster_dns_lookups".to_string(), st.lookups.to_string()),
            ("cluster_dns_failures".to_string(), st.failures.to_string()),
        ];
        if let Some(e) = &st.last_error {
            out.push(("cluster_dns_error".to_string(), e.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_nameserver_of_resolv_conf_is_used() {
        let text = "# comment\nsearch example\nnameserver bogus\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n";
        assert_eq!(nameserver(text), Some("10.0.0.2:53".parse().unwrap()));
        assert_eq!(nameserver("nameserver ::1\n"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(nameserver("domain x\n"), None);
    }

    #[test]
    fn targets_parse() {
        let t = Target::parse("cache.svc.cluster.local:11211").unwrap();
        assert_eq!(t, Target { name: "cache.svc.cluster.local".into(), port: Some(11211), srv: false });
        let t = Target::parse("_memcache._tcp.cache.test.").unwrap();
        assert_eq!(t, Target { name: "_memcache._tcp.cache.test".into(), port: None, srv: true });
        for bad in ["cache.test", "cache.test:0", "cache.test:x", ":11211", "a..b:1", "a b:1", ".:1"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    /// A server on loopback answering its first `queries` queries with
    /// `reply(query)`, then nothing.
    fn serve(queries: usize, mut reply: impl FnMut(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            for _ in 0..queries {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { return };
                for datagram in reply(&buf[..n]) {
                    let _ = sock.send_to(&datagram, from);
                }
            }
        });
        addr
    }

    fn serve_once(reply: impl FnOnce(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> SocketAddr {
        let mut reply = Some(reply);
        serve(1, move |q| reply.take().map_or_else(Vec::new, |f| f(q)))
    }

    /// A query's header and question (without its OPT record).
    fn question(query: &[u8]) -> &[u8] {
        let mut end = 12;
        while query[end] != 0 {
            end += 1 + usize::from(query[end]);
        }
        &query[..end + 5]
    }

    /// A query's type and name's first label.
    fn asked(query: &[u8]) -> (u16, String) {
        let q = question(query);
        let qtype = u16::from_be_bytes([q[q.len() - 4], q[q.len() - 3]]);
        let len = usize::from(query[12]);
        (qtype, String::from_utf8_lossy(&query[13..13 + len]).into_owned())
    }

    /// The reply to `query` (its id and question) with `answers` (owner
    /// compressed to the question) and `rcode`.
    fn answer(query: &[u8], rcode: u8, answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = question(query).to_vec();
        m[11] = 0; // no OPT record in the reply
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[7] = answers.len() as u8;
        for (rtype, rdata) in answers {
            m.extend_from_slice(&[0xc0, 0x0c]);
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 5]);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m
    }

    /// A resolver that waits long enough for a loaded machine's fake
    /// server (the tests that expect silence use a short wait).
    fn resolver(server: SocketAddr) -> Resolver {
        Resolver { server, timeout: Duration::from_secs(10), attempts: 1 }
    }

    #[test]
    fn replies_with_another_id_or_question_are_ignored() {
        let server = serve_once(|q| {
            let mut wrong_id = answer(q, 0, &[(wire::TYPE_A, &[10, 0, 0, 1])]);
            wrong_id[1] ^= 1;
            let mut other_type = answer(q, 0, &[(wire::TYPE_A, &[10, 0, 0, 2])]);
            let at = other_type.len() - 16 - 4; // the question's type
            other_type[at + 1] = 28;
            vec![wrong_id, other_type, answer(q, 0, &[(wire::TYPE_A, &[10, 0, 0, 3])])]
        });
        let ips = resolver(server).addresses("cache.test", wire::TYPE_A).unwrap();
        assert_eq!(ips, [IpAddr::from([10, 0, 0, 3])]);
    }

    #[test]
    fn error_codes_malformed_replies_and_silence_are_errors() {
        let server = serve_once(|q| vec![answer(q, 2, &[])]);
        let e = resolver(server).query("cache.test", wire::TYPE_A).unwrap_err();
        assert!(e.contains("SERVFAIL"), "{e}");
        // a malformed datagram with our id, then silence: the datagram is
        // skipped, and named when no answer comes
        let server = serve_once(|q| vec![answer(q, 0, &[(wire::TYPE_A, &[10, 0, 0])])]);
        let e = Resolver { timeout: Duration::from_secs(3), ..resolver(server) }
            .query("cache.test", wire::TYPE_A)
            .unwrap_err();
        assert!(e.contains("no valid reply") && e.contains("malformed"), "{e}");
        let server = serve_once(|_| vec![]);
        let e = Resolver { timeout: Duration::from_millis(100), ..resolver(server) }
            .query("cache.test", wire::TYPE_A)
            .unwrap_err();
        assert!(e.contains("no reply"), "{e}");
        // NXDOMAIN is an answer: no addresses
        let server = serve_once(|q| vec![answer(q, wire::RCODE_NXDOMAIN, &[])]);
        assert_eq!(resolver(server).addresses("cache.test", wire::TYPE_A).unwrap(), Vec::<IpAddr>::new());
    }

    #[test]
    fn a_datagram_with_our_id_that_does_not_decode_is_skipped() {
        let server = serve_once(|q| {
            let mut truncated = answer(q, 0, &[(wire::TYPE_A, &[10, 0, 0, 9])]);
            truncated.truncate(truncated.len() - 2);
            vec![truncated, q[..2].to_vec(), answer(q, 0, &[(wire::TYPE_A, &[10, 0, 0, 3])])]
        });
        let ips = resolver(server).addresses("cache.test", wire::TYPE_A).unwrap();
        assert_eq!(ips, [IpAddr::from([10, 0, 0, 3])]);
    }

    #[test]
    fn replies_past_the_offered_size_are_read_up_to_4096_bytes() {
        // 250 A records: about 4 KB, more than the 1232 bytes offered
        let ips: Vec<[u8; 4]> = (0..250u8).map(|i| [10, 1, 0, i]).collect();
        let reply_to = move |q: &[u8]| {
            let records: Vec<(u16, &[u8])> = ips.iter().map(|ip| (wire::TYPE_A, &ip[..])).collect();
            answer(q, 0, &records)
        };
        let size = reply_to(&wire::encode_query(0, "cache.test", wire::TYPE_A, true).unwrap()).len();
        assert!(size > usize::from(wire::EDNS_PAYLOAD) && size <= MAX_REPLY, "{size}");
        let server = serve_once(move |q| vec![reply_to(q)]);
        assert_eq!(resolver(server).addresses("cache.test", wire::TYPE_A).unwrap().len(), 250);
        // the same reply with more bytes after it than a reply may have
        let server = serve_once(|q| {
            let mut big = answer(q, 0, &[(wire::TYPE_A, &[10, 0, 0, 1])]);
            big.resize(MAX_REPLY + 1, 0);
            vec![big]
        });
        let e = Resolver { timeout: Duration::from_secs(2), ..resolver(server) }
            .query("cache.test", wire::TYPE_A)
            .unwrap_err();
        assert!(e.contains("no valid reply") && e.contains("larger than 4096 bytes"), "{e}");
    }

    /// A server answering A questions with `a` and AAAA ones with `aaaa`
    /// (None: silence) for `queries` queries.
    fn dual(queries: usize, a: Option<u8>, aaaa: Option<u8>) -> SocketAddr {
        serve(queries, move |q| match (asked(q).0, a, aaaa) {
            (wire::TYPE_A, Some(rcode), _) => vec![answer(q, rcode, &[(wire::TYPE_A, &[10, 0, 0, 1])])],
            (wire::TYPE_AAAA, _, Some(rcode)) => {
                vec![answer(q, rcode, &[(wire::TYPE_AAAA, &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])])]
            }
            _ => vec![],
        })
    }

    #[test]
    fn one_address_family_answering_is_enough() {
        let quick = |server| Resolver { timeout: Duration::from_secs(2), ..resolver(server) };
        let node = |ip: &str| Node { host: ip.into(), ip: ip.into(), port: 11211 };
        let target = || Target::parse("cache.test:11211").unwrap();
        // A answers, AAAA is dropped or refused
        for aaaa in [None, Some(2)] {
            let m = Membership::new(target(), quick(dual(2, Some(0), aaaa)));
            assert_eq!(m.lookup(), Ok(vec![node("10.0.0.1")]), "AAAA {aaaa:?}");
        }
        // AAAA answers, A fails
        let m = Membership::new(target(), quick(dual(2, Some(5), Some(0))));
        assert_eq!(m.lookup(), Ok(vec![node("fd00::1")]));
        // both answer: both families
        let m = Membership::new(target(), resolver(dual(2, Some(0), Some(0))));
        assert_eq!(m.lookup(), Ok(vec![node("10.0.0.1"), node("fd00::1")]));
        // both fail: the lookup fails, naming both
        let m = Membership::new(target(), quick(dual(2, Some(2), None)));
        let e = m.lookup().unwrap_err();
        assert!(e.contains("SERVFAIL") && e.contains("no reply"), "{e}");
    }

    #[test]
    fn a_server_without_edns_is_asked_again_without_it() {
        let server = serve(2, |q| {
            if q[11] == 1 {
                vec![answer(q, wire::RCODE_FORMERR, &[])]
            } else {
                vec![answer(q, 0, &[(wire::TYPE_A, &[10, 0, 0, 4])])]
            }
        });
        assert_eq!(resolver(server).addresses("cache.test", wire::TYPE_A).unwrap(), [IpAddr::from([10, 0, 0, 4])]);
        // FORMERR without EDNS is an error
        let server = serve(2, |q| vec![answer(q, wire::RCODE_FORMERR, &[])]);
        let e = resolver(server).query("cache.test", wire::TYPE_A).unwrap_err();
        assert!(e.contains("FORMERR"), "{e}");
    }

    #[test]
    fn srv_targets_without_additional_records_are_asked_for() {
        let server = serve(5, |q| match asked(q) {
            (wire::TYPE_SRV, _) => {
                let srv = |port: u8, target: &[u8]| [&[0, 1, 0, 1, 0x2b, port][..], target].concat();
                vec![answer(
                    q,
                    0,
                    &[
                        (wire::TYPE_SRV, &srv(0xcb, b"\x05node1\x04test\x00")),
                        (wire::TYPE_SRV, &srv(0xcc, b"\x05node2\x04test\x00")),
                    ],
                )]
            }
            (wire::TYPE_A, label) if label == "node1" => vec![answer(q, 0, &[(wire::TYPE_A, &[10, 0, 0, 1])])],
            // node2: a CNAME to a name whose address the reply leaves out
            (wire::TYPE_A, label) if label == "node2" => {
                vec![answer(q, 0, &[(wire::TYPE_CNAME, b"\x04pod2\x04test\x00")])]
            }
            _ => vec![answer(q, 2, &[])],
        });
        // pod2.test A and node2.test AAAA fail: the lookup fails
        let m = Membership::new(Target::parse("_memcache._tcp.test").unwrap(), resolver(server));
        let e = m.lookup().unwrap_err();
        assert!(e.starts_with("pod2.test: "), "{e}");
        let server = serve(4, |q| match asked(q) {
            (wire::TYPE_SRV, _) => {
                vec![answer(q, 0, &[(wire::TYPE_SRV, b"\x00\x01\x00\x01\x2b\xcc\x05node2\x04test\x00")])]
            }
            (wire::TYPE_A, label) if label == "node2" => {
                vec![answer(q, 0, &[(wire::TYPE_CNAME, b"\x04pod2\x04test\x00")])]
            }
            (wire::TYPE_A, label) if label == "pod2" => vec![answer(q, 0, &[(wire::TYPE_A, &[10, 0, 0, 2])])],
            _ => vec![],
        });
        let m = Membership::new(Target::parse("_memcache._tcp.test").unwrap(), resolver(server));
        let want = Node { host: "node2.test".into(), ip: "10.0.0.2".into(), port: 11212 };
        assert_eq!(m.lookup(), Ok(vec![want]));
    }

    #[test]
    fn an_srv_target_whose_families_both_fail_alike_gives_one_reason() {
        // the SRV question is answered; node1's A and AAAA ones are not
        let server = serve(3, |q| match asked(q) {
            (wire::TYPE_SRV, _) => {
                vec![answer(q, 0, &[(wire::TYPE_SRV, b"\x00\x01\x00\x01\x2b\xcb\x05node1\x04test\x00")])]
            }
            _ => vec![],
        });
        let quick = Resolver { timeout: Duration::from_secs(1), ..resolver(server) };
        let e = Membership::new(Target::parse("_memcache._tcp.test").unwrap(), quick).lookup().unwrap_err();
        assert!(e.starts_with("node1.test: no reply from") && e.matches("no reply").count() == 1, "{e}");
    }

    #[test]
    fn a_failed_lookup_is_counted_and_keeps_its_reason() {
        let server = serve_once(|q| vec![answer(q, wire::RCODE_NXDOMAIN, &[])]);
        let m = Membership::new(Target::parse("cache.test:11211").unwrap(), resolver(server));
        let e = m.lookup().unwrap_err();
        let stats = m.stats();
        let get = |k: &str| stats.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("cluster_dns_lookups").as_deref(), Some("1"));
        assert_eq!(get("cluster_dns_failures").as_deref(), Some("1"));
        assert_eq!(get("cluster_dns_error"), Some(e));
    }
}
