//! Consistent hashing as the clients compute it.
//!
//! A ring is a sorted list of points, each naming a node. A key goes to the
//! node of the first point at (or, for uhashring, after) the key's hash,
//! wrapping around to the first point. When a node leaves, exactly its keys
//! move, each to the node of the next point that is not the leaving node's:
//! that node is the key's *successor*.
//!
//! Each [`Scheme`] reproduces one client library, measured against the
//! library itself (`scripts/ring-golden` writes `ring_golden.txt`, which the
//! tests below check point for point):
//!
//! - [`Scheme::Ketama`], libmemcached's `MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA`
//!   (pylibmc `behaviors={"ketama": True}`): 100 points per node, point `i`
//!   is the one-at-a-time hash of `"name-i"` (i in 0..100); a key hashes
//!   with the same function.
//! - [`Scheme::KetamaWeighted`], libmemcached's `ketama_weighted` (pylibmc
//!   `{"ketama_weighted": True}`): 160 points per node, four per
//!   `md5("name-i")` (i in 0..40, bytes 4k..4k+3 little endian); a key hashes
//!   to the first four bytes of its md5, little endian.
//! - [`Scheme::Uhashring`], python-memcached patched by uhashring 2.3
//!   (elasticache-pyclient): 160 points per node, point `w` is
//!   `md5("name-w")` read as one 128-bit big-endian number; a key hashes the
//!   same way, over the text Python prints for the key's bytes (`b'key'`),
//!   and goes to the first point strictly after its hash.
//!
//! libmemcached names a node `host:port`, or `host` alone on port 11211;
//! uhashring names it by its host alone ([`ring_name`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use md5::{Digest, Md5};

use crate::discovery::Node;

/// How points and keys are hashed; each matches a family of clients (see
/// `docs/cluster.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// libmemcached's ketama, pylibmc `{"ketama": True}`: one-at-a-time
    /// hash, 100 points per node.
    #[default]
    Ketama,
    /// libmemcached's weighted ketama, pylibmc `{"ketama_weighted": True}`:
    /// md5, 160 points per node (40 digests of 4 points), all weights 1.
    KetamaWeighted,
    /// uhashring 2.3's ring as `uhashring.monkey.patch_memcache` builds it
    /// for python-memcached (elasticache-pyclient): 128-bit md5 points, 160
    /// per node, nodes named by host.
    Uhashring,
}

impl std::str::FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Scheme, String> {
        match s {
            "ketama" => Ok(Scheme::Ketama),
            "ketama_weighted" => Ok(Scheme::KetamaWeighted),
            "uhashring" => Ok(Scheme::Uhashring),
            _ => Err(format!("unknown hash ring {s:?} (ketama, ketama_weighted, uhashring)")),
        }
    }
}

/// The name a client hashes for `node` under `scheme` (a point's name is
/// this, `-`, and the point's number): for libmemcached `host:port`, or
/// `host` alone when the port is 11211; for uhashring the host alone. The
/// host is the node list's host field, as clients take it.
pub fn ring_name(scheme: Scheme, node: &Node) -> String {
    match scheme {
        Scheme::Ketama | Scheme::KetamaWeighted if node.port != DEFAULT_PORT => format!("{}:{}", node.host, node.port),
        Scheme::Ketama | Scheme::KetamaWeighted | Scheme::Uhashring => node.host.clone(),
    }
}

/// The port libmemcached leaves out of a node's name.
const DEFAULT_PORT: u16 = 11211;
/// Points per node for [`Scheme::Ketama`].
const KETAMA_POINTS: u32 = 100;
/// md5 digests per node for [`Scheme::KetamaWeighted`] (4 points each).
const WEIGHTED_DIGESTS: u32 = 40;
/// Points per node for [`Scheme::Uhashring`].
const UHASHRING_POINTS: u32 = 160;

/// A ring's points, (point, node index) sorted by point, stored as small
/// as the scheme allows: 8 bytes a point for the two 32-bit ketama schemes,
/// 20 for uhashring's 128-bit points (kept as big-endian bytes, which sort
/// as the numbers do, so that no 16-byte alignment pads them to 32).
#[derive(Debug, Clone)]
enum Points {
    Narrow(Vec<(u32, u32)>),
    Wide(Vec<([u8; 16], u32)>),
}

impl Default for Points {
    fn default() -> Points {
        Points::Narrow(Vec::new())
    }
}

impl Points {
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn len(&self) -> usize {
        match self {
            Points::Narrow(p) => p.len(),
            Points::Wide(p) => p.len(),
        }
    }

    /// The point at position `k`, as a number.
    #[cfg(test)]
    fn point(&self, k: usize) -> u128 {
        match self {
            Points::Narrow(p) => u128::from(p[k].0),
            Points::Wide(p) => u128::from_be_bytes(p[k].0),
        }
    }

    /// The node index of the point at position `k`.
    fn node(&self, k: usize) -> usize {
        match self {
            Points::Narrow(p) => p[k].1 as usize,
            Points::Wide(p) => p[k].1 as usize,
        }
    }

    /// The number of points below `h` (`or_equal`: at or below `h`).
    fn count_below(&self, h: u128, or_equal: bool) -> usize {
        match self {
            Points::Narrow(p) => {
                // a ketama hash is 32 bits wide; a larger `h` is past every point
                let Ok(h) = u32::try_from(h) else { return p.len() };
                p.partition_point(|&(x, _)| x < h || (or_equal && x == h))
            }
            Points::Wide(p) => {
                let h = h.to_be_bytes();
                p.partition_point(|(x, _)| *x < h || (or_equal && *x == h))
            }
        }
    }
}

/// A hash ring over a list of node names.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    scheme: Scheme,
    points: Points,
    nodes: usize,
}

fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// The `k`th little-endian 32-bit word of a digest.
fn word(d: &[u8; 16], k: usize) -> u32 {
    u32::from_le_bytes([d[4 * k], d[4 * k + 1], d[4 * k + 2], d[4 * k + 3]])
}

/// libhashkit's one-at-a-time hash. It adds each byte as a C `char`, which
/// is signed on the platforms libmemcached is built for: bytes from 0x80 add
/// a negative number (measured: with unsigned bytes 2,899 of 3,000 random
/// keys hash differently).
fn one_at_a_time(data: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &b in data {
        h = h.wrapping_add(b as i8 as u32);
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h.wrapping_add(h << 15)
}

/// md5 of what Python's `str()` gives for a `bytes` object holding `key`
/// (`b'abc'`, `b"it's"`, `b'\xc3\xa9'`): python-memcached hands uhashring
/// the key encoded to bytes, and uhashring hashes `str(key)`. Streams into
/// the digest through a stack buffer; allocates nothing.
fn md5_of_bytes_repr(key: &[u8]) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let quote = if key.contains(&b'\'') && !key.contains(&b'"') { b'"' } else { b'\'' };
    let mut md5 = Md5::new();
    let mut buf = [0u8; 256];
    buf[0] = b'b';
    buf[1] = quote;
    let mut n = 2;
    for &c in key {
        // room for the longest escape (4 bytes) and the closing quote
        if n + 4 >= buf.len() {
            md5.update(&buf[..n]);
            n = 0;
        }
        let escaped: &[u8] = match c {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ if c == quote => {
                buf[n] = b'\\';
                buf[n + 1] = c;
                n += 2;
                continue;
            }
            0x20..=0x7e => {
                buf[n] = c;
                n += 1;
                continue;
            }
            _ => {
                buf[n..n + 4].copy_from_slice(&[b'\\', b'x', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
                n += 4;
                continue;
            }
        };
        buf[n..n + escaped.len()].copy_from_slice(escaped);
        n += escaped.len();
    }
    buf[n] = quote;
    md5.update(&buf[..=n]);
    md5.finalize().into()
}

/// `"name-i"`, the text a point's hash is taken of, written into `buf`.
fn point_name<'a>(buf: &'a mut String, name: &str, i: u32) -> &'a [u8] {
    buf.clear();
    let _ = write!(buf, "{name}-{i}");
    buf.as_bytes()
}

impl Ring {
    /// The ring clients build from `names` (each node's [`ring_name`]), in
    /// list order: indexes returned refer to `names`. Under
    /// [`Scheme::Uhashring`] a name given twice is one node, the last one
    /// given (python-memcached's servers become a dict keyed by host).
    ///
    /// Node indexes are stored in 32 bits: callers bound the list (the
    /// follower takes at most `follow::MAX_NODES`).
    pub fn new(scheme: Scheme, names: &[String]) -> Ring {
        let mut buf = String::new();
        let index = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let points = match scheme {
            Scheme::Ketama | Scheme::KetamaWeighted => {
                let per_node = if scheme == Scheme::Ketama { KETAMA_POINTS } else { 4 * WEIGHTED_DIGESTS };
                let mut points = Vec::with_capacity(names.len() * per_node as usize);
                for (n, name) in names.iter().enumerate() {
                    if scheme == Scheme::Ketama {
                        for i in 0..KETAMA_POINTS {
                            points.push((one_at_a_time(point_name(&mut buf, name, i)), index(n)));
                        }
                    } else {
                        for i in 0..WEIGHTED_DIGESTS {
                            let d = md5(point_name(&mut buf, name, i));
                            points.extend((0..4).map(|k| (word(&d, k), index(n))));
                        }
                    }
                }
                points.sort_unstable();
                Points::Narrow(points)
            }
            Scheme::Uhashring => {
                // the last index each name is given at (one pass, not one
                // search per name)
                let last: HashMap<&str, usize> = names.iter().enumerate().map(|(n, s)| (s.as_str(), n)).collect();
                let mut points = Vec::with_capacity(last.len() * UHASHRING_POINTS as usize);
                for (n, name) in names.iter().enumerate() {
                    if last.get(name.as_str()) != Some(&n) {
                        continue;
                    }
                    for w in 0..UHASHRING_POINTS {
                        points.push((md5(point_name(&mut buf, name, w)), index(n)));
                    }
                }
                points.sort_unstable();
                Points::Wide(points)
            }
        };
        Ring { scheme, points, nodes: names.len() }
    }

    /// The ring clients build from a served node list; indexes refer to
    /// `nodes`.
    pub fn from_nodes(scheme: Scheme, nodes: &[Node]) -> Ring {
        let names: Vec<String> = nodes.iter().map(|n| ring_name(scheme, n)).collect();
        Ring::new(scheme, &names)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes
    }

    /// True for a ring without nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes == 0
    }

    /// The hash of a key on this ring. Allocates nothing.
    pub fn hash_key(&self, key: &[u8]) -> u128 {
        match self.scheme {
            Scheme::Ketama => u128::from(one_at_a_time(key)),
            Scheme::KetamaWeighted => u128::from(word(&md5(key), 0)),
            Scheme::Uhashring => u128::from_be_bytes(md5_of_bytes_repr(key)),
        }
    }

    /// Position of the point a key of hash `h` goes to: the first point at
    /// or after `h` (libmemcached), or strictly after it (uhashring's
    /// `bisect`), wrapping to the first point.
    fn position(&self, h: u128) -> usize {
        let i = self.points.count_below(h, self.scheme == Scheme::Uhashring);
        if i == self.points.len() {
            0
        } else {
            i
        }
    }

    /// The node clients send `key` to; None on an empty ring.
    pub fn owner(&self, key: &[u8]) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        Some(self.points.node(self.position(self.hash_key(key))))
    }

    /// The key's successor: where clients send it once its owner has left.
    /// None with fewer than two nodes.
    pub fn successor(&self, key: &[u8]) -> Option<usize> {
        self.placement(key)?.1
    }

    /// The key's owner and successor, hashing the key once; None on an
    /// empty ring.
    pub fn placement(&self, key: &[u8]) -> Option<(usize, Option<usize>)> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.position(self.hash_key(key));
        let owner = self.points.node(start);
        Some((owner, self.next_other(start, |n| n == owner)))
    }

    /// The key's owner and the node of the first point from the owner's on,
    /// wrapping, that `skip` does not reject (with `skip` true for the
    /// owner alone, [`Ring::placement`]); None on an empty ring.
    pub fn placement_skipping(&self, key: &[u8], skip: impl Fn(usize) -> bool) -> Option<(usize, Option<usize>)> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.position(self.hash_key(key));
        Some((self.points.node(start), self.next_other(start, skip)))
    }

    /// The node of the first point from `start` on, wrapping, that `skip`
    /// does not reject.
    fn next_other(&self, start: usize, skip: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.points.len();
        (0..len).map(|k| self.points.node((start + k) % len)).find(|&n| !skip(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owners and successors taken from the client libraries themselves
    /// (`scripts/ring-golden`).
    const GOLDEN: &str = include_str!("ring_golden.txt");

    fn node(s: &str) -> Node {
        let (host, port) = s.rsplit_once(':').unwrap();
        Node { host: host.to_string(), ip: String::new(), port: port.parse().unwrap() }
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn golden_lists() -> Vec<(&'static str, Vec<Node>)> {
        GOLDEN
            .lines()
            .filter_map(|l| l.strip_prefix("list "))
            .map(|l| {
                let mut w = l.split(' ');
                (w.next().unwrap(), w.map(node).collect())
            })
            .collect()
    }

    fn golden_ring(column: &str) -> Ring {
        let (scheme, list) = column.split_once(':').unwrap();
        let nodes = golden_lists().into_iter().find(|(name, _)| *name == list).unwrap().1;
        Ring::from_nodes(scheme.parse().unwrap(), &nodes)
    }

    #[test]
    fn owners_and_successors_match_the_clients() {
        let columns: Vec<&str> = GOLDEN.lines().find_map(|l| l.strip_prefix("columns ")).unwrap().split(' ').collect();
        assert_eq!(columns.len(), 6);
        let rings: Vec<Ring> = columns.iter().map(|c| golden_ring(c)).collect();
        let rows: Vec<&str> = GOLDEN.lines().skip_while(|l| !l.starts_with("columns ")).skip(1).collect();
        assert_eq!(rows.len(), 300);
        for row in rows {
            let mut w = row.split(' ');
            let key = unhex(w.next().unwrap());
            for ((column, ring), want) in columns.iter().zip(&rings).zip(w) {
                let (owner, successor) = want.split_once('.').unwrap();
                let got = (ring.owner(&key).unwrap(), ring.successor(&key).unwrap());
                assert_eq!(ring.placement(&key), Some((got.0, Some(got.1))));
                assert_eq!(got, (owner.parse().unwrap(), successor.parse().unwrap()), "{column} {row}");
            }
        }
    }

    #[test]
    fn uhashring_points_match_uhashring() {
        for line in GOLDEN.lines().filter_map(|l| l.strip_prefix("points uhashring ")) {
            let (list, points) = line.split_once(' ').unwrap();
            let ring = golden_ring(&format!("uhashring:{list}"));
            let want: Vec<u128> = points.split(' ').map(|p| u128::from_str_radix(p, 16).unwrap()).collect();
            let got: Vec<u128> = (0..want.len()).map(|k| ring.points.point(k)).collect();
            assert_eq!(got, want, "{list}");
            assert_eq!(ring.points.len(), ring.len() * 160);
        }
    }

    #[test]
    fn point_counts_and_names() {
        let nodes = [node("10.0.0.1:11211"), node("10.0.0.2:11311")];
        assert_eq!(Ring::from_nodes(Scheme::Ketama, &nodes).points.len(), 200);
        assert_eq!(Ring::from_nodes(Scheme::KetamaWeighted, &nodes).points.len(), 320);
        assert_eq!(ring_name(Scheme::Ketama, &nodes[0]), "10.0.0.1");
        assert_eq!(ring_name(Scheme::KetamaWeighted, &nodes[1]), "10.0.0.2:11311");
        assert_eq!(ring_name(Scheme::Uhashring, &nodes[1]), "10.0.0.2");
        assert_eq!("uhashring".parse(), Ok(Scheme::Uhashring));
        assert_eq!("ketama_weighted".parse(), Ok(Scheme::KetamaWeighted));
        assert!("md5".parse::<Scheme>().is_err());
    }

    #[test]
    fn hashes_match_libhashkit_and_python() {
        // libhashkit's libhashkit_one_at_a_time("a") and ("\xe9"), and
        // Python: int(hashlib.md5(str(b"it's").encode()).hexdigest(), 16).
        assert_eq!(one_at_a_time(b"a"), 0xca2e_9442);
        assert_eq!(one_at_a_time(&[0xe9]), 0x4098_48ff);
        assert_eq!(md5_of_bytes_repr(b"it's"), md5(b"b\"it's\""));
        assert_eq!(md5_of_bytes_repr(b"a'\"\\\xff\t"), md5(b"b'a\\'\"\\\\\\xff\\t'"));
        let long = [b'x'; 250];
        let mut text = b"b'".to_vec();
        text.extend_from_slice(&long);
        text.push(b'\'');
        assert_eq!(md5_of_bytes_repr(&long), md5(&text));
    }

    /// The whole `b'...'` text Python prints for `key`, built in memory.
    fn bytes_repr(key: &[u8]) -> Vec<u8> {
        let quote = if key.contains(&b'\'') && !key.contains(&b'"') { b'"' } else { b'\'' };
        let mut out = vec![b'b', quote];
        for &c in key {
            match c {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ if c == quote => out.extend_from_slice(&[b'\\', c]),
                0x20..=0x7e => out.push(c),
                _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
            }
        }
        out.push(quote);
        out
    }

    #[test]
    fn a_repr_filling_the_buffer_to_its_last_byte_hashes() {
        // 2 + 2 + 63 * 4 = 256 bytes before the closing quote: this key
        // indexed past the stack buffer before the flush kept room for it
        let mut key = b"aa".to_vec();
        key.extend_from_slice(&[0x80; 63]);
        assert_eq!(md5_of_bytes_repr(&key), md5(&bytes_repr(&key)));
        let ring = Ring::new(Scheme::Uhashring, &names(2));
        assert!(ring.owner(&key).is_some());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]
        #[test]
        fn streamed_repr_digest_matches_the_whole_text(key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=250)) {
            proptest::prop_assert_eq!(md5_of_bytes_repr(&key), md5(&bytes_repr(&key)));
        }

        #[test]
        fn long_escaped_keys_match_too(prefix in 0..8usize, fill in proptest::sample::select(vec![0x80u8, b'\\', b'\'', b'\n', b'a']), len in 0..=250usize) {
            let mut key = vec![b'a'; prefix.min(len)];
            key.resize(len, fill);
            proptest::prop_assert_eq!(md5_of_bytes_repr(&key), md5(&bytes_repr(&key)));
        }
    }

    #[test]
    fn uhashring_sends_a_hash_equal_to_a_point_past_it() {
        let ring = Ring::new(Scheme::Uhashring, &names(3));
        let ketama = Ring::new(Scheme::Ketama, &names(3));
        for r in [&ring, &ketama] {
            for k in 0..r.points.len() {
                let at = r.position(r.points.point(k));
                let want = if r.scheme == Scheme::Uhashring { (k + 1) % r.points.len() } else { k };
                assert_eq!(at, want);
            }
        }
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("127.0.0.{}:11311", 10 + i)).collect()
    }

    #[test]
    fn every_node_gets_its_points_and_keys_spread() {
        for scheme in [Scheme::Ketama, Scheme::KetamaWeighted, Scheme::Uhashring] {
            let ring = Ring::new(scheme, &names(4));
            let mut counts = [0usize; 4];
            for i in 0..4000 {
                counts[ring.owner(format!("key{i}").as_bytes()).unwrap()] += 1;
            }
            assert!(counts.iter().all(|&c| c > 500), "{scheme:?} {counts:?}");
        }
    }

    #[test]
    fn removing_a_node_moves_exactly_its_keys_to_their_successors() {
        let all = names(4);
        for scheme in [Scheme::Ketama, Scheme::KetamaWeighted, Scheme::Uhashring] {
            let ring = Ring::new(scheme, &all);
            let without: Vec<String> = all.iter().filter(|n| *n != &all[2]).cloned().collect();
            let smaller = Ring::new(scheme, &without);
            let index_in_all = |i: usize| all.iter().position(|n| *n == without[i]).unwrap();
            for i in 0..2000 {
                let key = format!("k:{i}");
                let before = ring.owner(key.as_bytes()).unwrap();
                let after = index_in_all(smaller.owner(key.as_bytes()).unwrap());
                if before == 2 {
                    assert_eq!(Some(after), ring.successor(key.as_bytes()), "{scheme:?} {key}");
                } else {
                    assert_eq!(after, before, "{scheme:?} {key} moved though its owner stayed");
                }
            }
        }
    }

    #[test]
    fn uhashring_names_a_host_given_twice_once_the_last() {
        let ring = Ring::new(Scheme::Uhashring, &["a".to_string(), "b".to_string(), "a".to_string()]);
        assert_eq!(ring.points.len(), 320);
        assert!((0..200).all(|i| ring.owner(format!("{i}").as_bytes()) != Some(0)));
    }

    #[test]
    fn points_are_stored_small_and_in_order() {
        // the lookup's binary search needs the stored order to be the
        // numbers' order: wide points as big-endian bytes keep it
        for scheme in [Scheme::Ketama, Scheme::KetamaWeighted, Scheme::Uhashring] {
            let ring = Ring::new(scheme, &names(3));
            let points: Vec<u128> = (0..ring.points.len()).map(|k| ring.points.point(k)).collect();
            assert!(points.windows(2).all(|w| w[0] <= w[1]), "{scheme:?}: points out of order");
        }
        assert!(matches!(Ring::new(Scheme::Ketama, &names(2)).points, Points::Narrow(_)));
        assert!(matches!(Ring::new(Scheme::KetamaWeighted, &names(2)).points, Points::Narrow(_)));
        assert!(matches!(Ring::new(Scheme::Uhashring, &names(2)).points, Points::Wide(_)));
        // a hash past 32 bits on a 32-bit ring wraps to the first point
        let ring = Ring::new(Scheme::Ketama, &names(2));
        assert_eq!(ring.position(u128::from(u32::MAX) + 1), 0);
    }

    #[test]
    fn uhashring_dedup_of_a_long_list_keeps_the_last_of_each_name() {
        // 1024 names, each given twice: one pass keeps the second of each
        let names: Vec<String> = (0..2048).map(|i| format!("10.0.{}.{}", (i % 1024) / 256, i % 256)).collect();
        let ring = Ring::new(Scheme::Uhashring, &names);
        assert_eq!(ring.points.len(), 1024 * 160);
        assert!((0..ring.points.len()).all(|k| ring.points.node(k) >= 1024));
    }

    #[test]
    fn placement_skipping_passes_every_rejected_node() {
        for scheme in [Scheme::Ketama, Scheme::KetamaWeighted, Scheme::Uhashring] {
            let ring = Ring::new(scheme, &names(4));
            for i in 0..500 {
                let key = format!("s{i}");
                let (owner, next) = ring.placement_skipping(key.as_bytes(), |n| n == 0 || n == 1).unwrap();
                assert_eq!(Some(owner), ring.owner(key.as_bytes()));
                assert!(matches!(next, Some(2 | 3)), "{scheme:?} {key}");
                assert_eq!(ring.placement_skipping(key.as_bytes(), |n| n == owner), ring.placement(key.as_bytes()));
                assert_eq!(ring.placement_skipping(key.as_bytes(), |_| true), Some((owner, None)));
            }
        }
    }

    #[test]
    fn small_rings() {
        for scheme in [Scheme::Ketama, Scheme::KetamaWeighted, Scheme::Uhashring] {
            assert_eq!(Ring::new(scheme, &[]).owner(b"a"), None);
            let one = Ring::new(scheme, &names(1));
            assert_eq!(one.owner(b"a"), Some(0));
            assert_eq!(one.successor(b"a"), None);
            assert_eq!(one.placement(b"a"), Some((0, None)));
            assert_eq!(Ring::new(scheme, &[]).placement(b"a"), None);
        }
    }
}
