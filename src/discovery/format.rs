//! The auto-discovery reply, as ElastiCache clients parse it. Pure bytes,
//! no I/O.
//!
//! ```text
//! CONFIG cluster 0 <n>\r\n
//! <version>\n
//! <host>|<ip>|<port>[ <host>|<ip>|<port>...]\n
//! \r\n
//! END\r\n
//! ```
//!
//! `<n>` counts the two payload lines, both `\n` included. The legacy form
//! (`get AmazonElastiCache:cluster`) carries the same payload in a `VALUE`
//! reply.

use std::fmt;

/// One cache node: host name, IP (may be empty), port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    pub host: String,
    pub ip: String,
    pub port: u16,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}|{}", self.host, self.ip, self.port)
    }
}

impl Node {
    /// Parses `host|ip|port`.
    pub fn parse(s: &str) -> Option<Node> {
        let mut parts = s.trim().split('|');
        let (host, ip, port) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || host.is_empty() || host.contains(char::is_whitespace) {
            return None;
        }
        if ip.contains(char::is_whitespace) {
            return None;
        }
        Some(Node { host: host.to_string(), ip: ip.to_string(), port: port.parse().ok()? })
    }

    /// Where to connect: the IP when given, else the host name.
    pub fn address(&self) -> String {
        let h = if self.ip.is_empty() { &self.host } else { &self.ip };
        if h.contains(':') {
            format!("[{h}]:{}", self.port)
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

/// Parses a node list: `host|ip|port` entries separated by spaces or
/// newlines; blank lines and `#` comments are skipped.
pub fn parse_nodes(text: &str) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        for entry in line.split_whitespace() {
            nodes.push(Node::parse(entry).ok_or_else(|| format!("not host|ip|port: {entry}"))?);
        }
    }
    Ok(nodes)
}

/// The two payload lines: `<version>\n<nodes>\n`.
pub fn payload(version: u64, nodes: &[Node]) -> Vec<u8> {
    let list: Vec<String> = nodes.iter().map(Node::to_string).collect();
    format!("{version}\n{}\n", list.join(" ")).into_bytes()
}

/// The reply to `config get cluster`.
pub fn config_reply(version: u64, nodes: &[Node]) -> Vec<u8> {
    let p = payload(version, nodes);
    let mut out = format!("CONFIG cluster 0 {}\r\n", p.len()).into_bytes();
    out.extend_from_slice(&p);
    out.extend_from_slice(b"\r\nEND\r\n");
    out
}

/// The key old clients `get`: dispatch answers it with [`payload`] as the
/// value, through the connection's usual `VALUE` reply.
pub const LEGACY_KEY: &[u8] = b"AmazonElastiCache:cluster";

#[cfg(test)]
mod tests {
    use super::*;

    fn n(host: &str, ip: &str, port: u16) -> Node {
        Node { host: host.into(), ip: ip.into(), port }
    }

    #[test]
    fn golden_bytes_for_zero_one_and_many_nodes() {
        assert_eq!(config_reply(1, &[]), b"CONFIG cluster 0 3\r\n1\n\n\r\nEND\r\n");
        assert_eq!(
            config_reply(12, &[n("node1.example", "10.0.0.1", 11211)]),
            b"CONFIG cluster 0 32\r\n12\nnode1.example|10.0.0.1|11211\n\r\nEND\r\n"
        );
        let many = [n("a", "127.0.0.11", 11211), n("b", "127.0.0.12", 11212), n("c", "127.0.0.13", 11213)];
        let reply = config_reply(3, &many);
        assert_eq!(
            reply,
            &b"CONFIG cluster 0 59\r\n3\na|127.0.0.11|11211 b|127.0.0.12|11212 c|127.0.0.13|11213\n\r\nEND\r\n"[..]
        );
        // <n> is exactly the bytes between the first \r\n and the final \r\nEND
        let body = &reply[reply.iter().position(|&b| b == b'\n').unwrap() + 1..reply.len() - 7];
        assert_eq!(body.len(), 59);
        assert!(!body.contains(&b'\r'));
    }

    #[test]
    fn an_empty_ip_is_kept() {
        assert_eq!(
            config_reply(2, &[n("cache.local", "", 11211)]),
            b"CONFIG cluster 0 21\r\n2\ncache.local||11211\n\r\nEND\r\n"
        );
    }

    #[test]
    fn node_lists_parse_from_files_and_config_set_data() {
        let nodes = parse_nodes("# cluster\na|127.0.0.11|11211\n\nb||11212 c|127.0.0.13|11213\n").unwrap();
        assert_eq!(nodes, vec![n("a", "127.0.0.11", 11211), n("b", "", 11212), n("c", "127.0.0.13", 11213)]);
        assert_eq!(nodes[1].address(), "b:11212");
        assert_eq!(n("h", "::1", 5).address(), "[::1]:5");
        for bad in ["a|b", "a|b|c", "a|b|1|2", "|1.2.3.4|5", "a|1.2.3.4|70000"] {
            assert!(parse_nodes(bad).is_err(), "{bad}");
        }
    }
}
