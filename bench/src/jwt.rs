//! HS256 JSON Web Tokens for the write workloads, signed here so the bench
//! needs nothing from the server's code: `base64url(header).base64url(claims)
//! .base64url(HMAC-SHA256(secret, first two parts))`, no padding, claims
//! `{"sub": user, "iat": now, "exp": now + ttl}`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The server's development default (`maple serve` without a configured secret).
pub const DEV_SECRET: &str = "maple-dev-secret";

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

pub fn sign_hs256(secret: &[u8], sub: &str, iat: u64, exp: u64) -> String {
    let claims = serde_json::json!({ "sub": sub, "iat": iat, "exp": exp });
    let mut token = URL_SAFE_NO_PAD.encode(HEADER);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(token.as_bytes());
    let sig = mac.finalize().into_bytes();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig));
    token
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token decodes to the standard header and our claims, and its
    /// signature verifies with the secret (the server's check).
    #[test]
    fn token_shape_and_signature() {
        let t = sign_hs256(b"maple-dev-secret", "user-1", 1_700_000_000, 1_700_086_400);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[0]).unwrap(), HEADER.as_bytes());
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "user-1");
        assert_eq!(claims["exp"], 1_700_086_400u64);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"maple-dev-secret").unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        // A different secret gives a different signature.
        let other = sign_hs256(b"other", "user-1", 1_700_000_000, 1_700_086_400);
        assert_ne!(other.rsplit('.').next(), t.rsplit('.').next());
    }
}
