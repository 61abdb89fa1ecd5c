//! Consistent hashing as the clients compute it.
//!
//! A ring is a sorted list of points, each naming a node. A key goes to the
//! node of the first point at or after the key's hash, wrapping around to
//! the first point. When a node leaves, exactly its keys move, each to the
//! node of the next point that is not the leaving node's: that node is the
//! key's *successor*.
//!
//! [`Scheme::Ketama`] is libketama's continuum: for each node name and
//! `i` in 0..40, `md5("name-i")` gives four points (bytes 4k..4k+3, little
//! endian), 160 points per node; a key hashes to the first four bytes of
//! its md5, little endian.

use md5::{Digest, Md5};

use crate::discovery::Node;

/// How points and keys are hashed; each matches a family of clients (see
/// `docs/cluster.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// libketama: md5, 160 points per node (40 digests of 4 points).
    #[default]
    Ketama,
}

impl std::str::FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Scheme, String> {
        match s {
            "ketama" => Ok(Scheme::Ketama),
            _ => Err(format!("unknown hash ring {s:?} (ketama)")),
        }
    }
}

/// The name a client hashes for `node` under `scheme`: `host:port`, the
/// host as the node list names it.
pub fn ring_name(scheme: Scheme, node: &Node) -> String {
    match scheme {
        Scheme::Ketama => format!("{}:{}", node.host, node.port),
    }
}

/// A hash ring over a list of node names.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    scheme: Scheme,
    /// (point, node index), sorted by point.
    points: Vec<(u128, usize)>,
    nodes: usize,
}

fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

fn word(d: &[u8; 16], k: usize) -> u128 {
    u128::from(u32::from_le_bytes([d[4 * k], d[4 * k + 1], d[4 * k + 2], d[4 * k + 3]]))
}

impl Ring {
    /// The ring clients build from `names` (each node's name as the clients
    /// name it, e.g. `host:port`), in list order: indexes returned refer to
    /// `names`.
    pub fn new(scheme: Scheme, names: &[String]) -> Ring {
        let mut points = Vec::with_capacity(names.len() * 160);
        for (n, name) in names.iter().enumerate() {
            match scheme {
                Scheme::Ketama => {
                    for i in 0..40 {
                        let d = md5(format!("{name}-{i}").as_bytes());
                        for k in 0..4 {
                            points.push((word(&d, k), n));
                        }
                    }
                }
            }
        }
        points.sort_unstable();
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

    /// The hash of a key on this ring.
    pub fn hash_key(&self, key: &[u8]) -> u128 {
        match self.scheme {
            Scheme::Ketama => word(&md5(key), 0),
        }
    }

    /// Position of the first point at or after `h`, wrapping.
    fn position(&self, h: u128) -> usize {
        let i = self.points.partition_point(|&(p, _)| p < h);
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
        Some(self.points[self.position(self.hash_key(key))].1)
    }

    /// The node clients send `key` to once `excluded` has left the list:
    /// the owner on this ring without `excluded`'s points.
    pub fn owner_without(&self, key: &[u8], excluded: usize) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.position(self.hash_key(key));
        (0..self.points.len()).map(|k| self.points[(start + k) % self.points.len()].1).find(|&n| n != excluded)
    }

    /// The key's successor: where clients send it once its owner has left.
    /// None with fewer than two nodes.
    pub fn successor(&self, key: &[u8]) -> Option<usize> {
        let owner = self.owner(key)?;
        self.owner_without(key, owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("127.0.0.{}:11311", 10 + i)).collect()
    }

    #[test]
    fn every_node_gets_its_points_and_keys_spread() {
        let ring = Ring::new(Scheme::Ketama, &names(4));
        assert_eq!(ring.points.len(), 4 * 160);
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[ring.owner(format!("key{i}").as_bytes()).unwrap()] += 1;
        }
        assert!(counts.iter().all(|&c| c > 500), "{counts:?}");
    }

    #[test]
    fn removing_a_node_moves_exactly_its_keys_to_their_successors() {
        let all = names(4);
        let ring = Ring::new(Scheme::Ketama, &all);
        let without: Vec<String> = all.iter().filter(|n| *n != &all[2]).cloned().collect();
        let smaller = Ring::new(Scheme::Ketama, &without);
        let index_in_all = |i: usize| all.iter().position(|n| *n == without[i]).unwrap();
        for i in 0..2000 {
            let key = format!("k:{i}");
            let before = ring.owner(key.as_bytes()).unwrap();
            let after = index_in_all(smaller.owner(key.as_bytes()).unwrap());
            if before == 2 {
                assert_eq!(Some(after), ring.successor(key.as_bytes()), "{key}");
            } else {
                assert_eq!(after, before, "{key} moved though its owner stayed");
            }
        }
    }

    #[test]
    fn small_rings() {
        assert_eq!(Ring::new(Scheme::Ketama, &[]).owner(b"a"), None);
        let one = Ring::new(Scheme::Ketama, &names(1));
        assert_eq!(one.owner(b"a"), Some(0));
        assert_eq!(one.successor(b"a"), None);
    }
}
