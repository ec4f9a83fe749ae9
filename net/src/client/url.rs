//! The client's base URL: scheme, host, port, optional path prefix.

use super::ClientError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Without a trailing `/`, e.g. `""` or `/api`.
    pub path_prefix: String,
}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<BaseUrl, ClientError> {
        let bad = || ClientError::InvalidUrl(url.to_string());
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            // [::1]:8080
            let end = v6.find(']').ok_or_else(bad)?;
            let host = &v6[..end];
            let port = match &v6[end + 1..] {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad())?,
            None if https => 443,
            None => 80,
        };
        if host.is_empty() || host.bytes().any(|b| b <= b' ' || b == 0x7f) || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad());
        }
        Ok(BaseUrl { https, host: host.to_string(), port, path_prefix: path.trim_end_matches('/').to_string() })
    }

    /// Value of the `Host` header (port only when not the scheme's default).
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = BaseUrl::parse("https://open.api.nexon.com").unwrap();
        assert_eq!((u.https, u.host.as_str(), u.port, u.path_prefix.as_str()), (true, "open.api.nexon.com", 443, ""));
        assert_eq!(u.host_header(), "open.api.nexon.com");
        let u = BaseUrl::parse("http://127.0.0.1:8081/sim/").unwrap();
        assert_eq!((u.port, u.path_prefix.as_str(), u.host_header().as_str()), (8081, "/sim", "127.0.0.1:8081"));
        let u = BaseUrl::parse("http://[::1]:9000").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.host_header().as_str()), ("::1", 9000, "[::1]:9000"));
        for bad in ["ftp://x", "http://", "http://a:99999", "http://u@h", "http://h/p?q", "h:80"] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
