//! Cluster routing as a Redis Cluster client does it: a key's slot (CRC16
//! of the key, or of its `{hash tag}`, mod 16384), a slot → node map from
//! `CLUSTER SLOTS`, and the `-MOVED slot host:port` redirect.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::codec::Value;

pub const SLOTS: usize = 16384;

/// CRC16-CCITT (XMODEM: poly 0x1021, init 0), the Redis Cluster key hash.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The slot of `key`: only the part between the first `{` and the next
/// `}` is hashed when that part is not empty (Redis' hash tags).
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % SLOTS as u16
}

/// A `-MOVED` or `-ASK` redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirect {
    pub slot: u16,
    pub addr: SocketAddr,
}

/// Parses the text of `-MOVED 3999 127.0.0.1:6381` (or `ASK ...`).
/// An empty host (`:6381`, Redis' "same host as you asked") is `asked_host`.
pub fn parse_redirect(text: &[u8], asked_host: IpAddr) -> Option<Redirect> {
    let text = std::str::from_utf8(text).ok()?;
    let mut words = text.split_ascii_whitespace();
    let _code = words.next()?;
    let slot: u16 = words.next()?.parse().ok().filter(|s| (*s as usize) < SLOTS)?;
    let addr = resolve(words.next()?, asked_host)?;
    Some(Redirect { slot, addr })
}

/// `host:port` (IPv6 in brackets), `:port`, or a name resolved once.
fn resolve(hostport: &str, asked_host: IpAddr) -> Option<SocketAddr> {
    if let Ok(a) = hostport.parse::<SocketAddr>() {
        return Some(a);
    }
    let (host, port) = hostport.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if host.is_empty() {
        return Some(SocketAddr::new(asked_host, port));
    }
    (host.trim_start_matches('[').trim_end_matches(']'), port).to_socket_addrs().ok()?.next()
}

/// Which node serves each slot, as far as this client knows.
#[derive(Debug, Clone)]
pub struct SlotMap {
    /// Index into `nodes` per slot; `u16::MAX` = unknown.
    owner: Vec<u16>,
    nodes: Vec<SocketAddr>,
}

/// Most distinct nodes a map holds (a cluster of more is refused).
pub const MAX_NODES: usize = 1024;

impl Default for SlotMap {
    fn default() -> Self {
        SlotMap { owner: vec![u16::MAX; SLOTS], nodes: Vec::new() }
    }
}

impl SlotMap {
    pub fn node_of(&self, slot: u16) -> Option<SocketAddr> {
        self.owner.get(slot as usize).and_then(|&i| self.nodes.get(i as usize)).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Slots with a known owner.
    pub fn known_slots(&self) -> usize {
        self.owner.iter().filter(|&&i| i != u16::MAX).count()
    }

    /// Distinct nodes named.
    pub fn nodes(&self) -> &[SocketAddr] {
        &self.nodes
    }

    /// Records that `addr` serves `slot` (after a `-MOVED`). False if the
    /// map is full of nodes (the slot stays as it was).
    pub fn set(&mut self, slot: u16, addr: SocketAddr) -> bool {
        let Some(i) = self.index_of(addr) else { return false };
        if let Some(o) = self.owner.get_mut(slot as usize) {
            *o = i;
        }
        true
    }

    fn index_of(&mut self, addr: SocketAddr) -> Option<u16> {
        if let Some(i) = self.nodes.iter().position(|n| *n == addr) {
            return Some(i as u16);
        }
        if self.nodes.len() >= MAX_NODES {
            return None;
        }
        self.nodes.push(addr);
        Some((self.nodes.len() - 1) as u16)
    }

    /// The map of a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id?, ...], replicas...], ...]`
    /// (the first node of a range is its master). `asked` is the node that
    /// answered (an empty host means it). `None` when the reply is not that shape.
    pub fn from_cluster_slots(v: &Value, asked: SocketAddr) -> Option<SlotMap> {
        let Value::Array(ranges) = v else { return None };
        let mut map = SlotMap::default();
        for r in ranges {
            let Value::Array(parts) = r else { return None };
            let start = parts.first()?.as_int()?;
            let end = parts.get(1)?.as_int()?;
            if !(0 <= start && start <= end && end < SLOTS as i64) {
                return None;
            }
            let Value::Array(master) = parts.get(2)? else { return None };
            let host = std::str::from_utf8(master.first()?.as_bytes()?).ok()?;
            let port = u16::try_from(master.get(1)?.as_int()?).ok()?;
            let addr = if host.is_empty() || host == "?" {
                SocketAddr::new(asked.ip(), port)
            } else {
                resolve(&format!("{host}:{port}"), asked.ip()).or_else(|| resolve(&format!("[{host}]:{port}"), asked.ip()))?
            };
            let i = map.index_of(addr)?;
            for slot in start..=end {
                map.owner[slot as usize] = i;
            }
        }
        (!map.nodes.is_empty()).then_some(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::codec::decode;

    /// Redis Cluster's published values (cluster-spec, `CLUSTER KEYSLOT`).
    #[test]
    fn slots_match_redis() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384, "empty tag: the whole key");
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn redirects() {
        let here: IpAddr = "10.0.0.1".parse().unwrap();
        let r = parse_redirect(b"MOVED 3999 127.0.0.1:6381", here).unwrap();
        assert_eq!(r, Redirect { slot: 3999, addr: "127.0.0.1:6381".parse().unwrap() });
        assert_eq!(parse_redirect(b"MOVED 12 :7000", here).unwrap().addr, "10.0.0.1:7000".parse().unwrap());
        assert_eq!(parse_redirect(b"ASK 1 [::1]:7000", here).unwrap().addr, "[::1]:7000".parse().unwrap());
        assert_eq!(parse_redirect(b"MOVED 16384 127.0.0.1:1", here), None);
        assert_eq!(parse_redirect(b"MOVED x 127.0.0.1:1", here), None);
        assert_eq!(parse_redirect(b"MOVED 1", here), None);
        assert_eq!(parse_redirect(b"MOVED 1 127.0.0.1:99999", here), None);
    }

    #[test]
    fn cluster_slots_reply_to_map() {
        let wire = b"*2\r\n\
            *4\r\n:0\r\n:8191\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n\
            *3\r\n:8192\r\n:16383\r\n*2\r\n$0\r\n\r\n:7002\r\n";
        let (v, _) = decode(wire).unwrap().unwrap();
        let asked: SocketAddr = "127.0.0.5:7002".parse().unwrap();
        let map = SlotMap::from_cluster_slots(&v, asked).unwrap();
        assert_eq!(map.node_of(0), Some("127.0.0.1:7000".parse().unwrap()));
        assert_eq!(map.node_of(8191), Some("127.0.0.1:7000".parse().unwrap()), "the master, not the replica");
        assert_eq!(map.node_of(16383), Some("127.0.0.5:7002".parse().unwrap()), "empty host = the node asked");
        assert_eq!(map.known_slots(), SLOTS);
        assert_eq!(map.nodes().len(), 2);
        let (v, _) = decode(b"-ERR This instance has cluster support disabled\r\n").unwrap().unwrap();
        assert!(SlotMap::from_cluster_slots(&v, asked).is_none());
        let (v, _) = decode(b"*1\r\n*3\r\n:5\r\n:2\r\n*2\r\n+h\r\n:1\r\n").unwrap().unwrap();
        assert!(SlotMap::from_cluster_slots(&v, asked).is_none(), "start > end");
        let mut m = SlotMap::default();
        assert_eq!(m.node_of(5), None);
        assert!(m.set(5, asked));
        assert_eq!(m.node_of(5), Some(asked));
        assert_eq!(m.known_slots(), 1);
    }
}
