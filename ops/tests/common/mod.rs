//! What the `ops` test files share: running the `maple` binary
//! ([`maple`]), a std-only HTTP/1.1 client ([`http`]), the parsed response.
#![allow(dead_code)]

pub mod http;
pub mod maple;

/// One parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Percent-encodes every byte of a name (UTF-8), as a path segment.
pub fn enc(name: &str) -> String {
    name.bytes().map(|b| format!("%{b:02X}")).collect()
}
