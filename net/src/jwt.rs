//! HS256 JSON Web Tokens: the caller of a like is the token's subject.
//!
//! Only what the API needs: `{"alg":"HS256","typ":"JWT"}` headers, `sub` and
//! `exp` claims, constant-time signature check. Anything else is rejected.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest token we look at; anything longer is rejected before decoding.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Longest subject (user id) accepted.
pub const MAX_SUBJECT_BYTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token is not three base64url parts")]
    Malformed,
    #[error("token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("unsupported token header (only HS256 JWT)")]
    UnsupportedHeader,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token claims are invalid: {0}")]
    BadClaims(&'static str),
}

const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Sign a token for `user`, valid until `exp` (Unix seconds).
pub fn sign(secret: &[u8], user: &str, exp: u64) -> String {
    let claims = Claims { sub: user.to_string(), exp };
    let header = B64.encode(HEADER_JSON);
    let payload = B64.encode(serde_json::to_vec(&claims).expect("claims serialise"));
    let signing_input = format!("{header}.{payload}");
    let sig = B64.encode(mac(secret, signing_input.as_bytes()).finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verify signature, header and expiry against `now` (Unix seconds).
pub fn verify(secret: &[u8], token: &str, now: u64) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed);
    };
    let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
    let signing_input_len = h.len() + 1 + p.len();
    mac(secret, &token.as_bytes()[..signing_input_len]).verify_slice(&sig).map_err(|_| JwtError::BadSignature)?;

    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(h).map_err(|_| JwtError::Malformed)?).map_err(|_| JwtError::Malformed)?;
    if header.get("alg").and_then(|v| v.as_str()) != Some("HS256") {
        return Err(JwtError::UnsupportedHeader);
    }
    let claims: Claims = serde_json::from_slice(&B64.decode(p).map_err(|_| JwtError::Malformed)?)
        .map_err(|_| JwtError::BadClaims("need string `sub` and integer `exp`"))?;
    if claims.sub.is_empty() || claims.sub.len() > MAX_SUBJECT_BYTES {
        return Err(JwtError::BadClaims("`sub` must be 1..=256 bytes"));
    }
    if claims.exp <= now {
        return Err(JwtError::Expired);
    }
    Ok(claims)
}

fn mac(secret: &[u8], data: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(data);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret";

    #[test]
    fn round_trip() {
        let t = sign(SECRET, "user-7", 2_000);
        assert_eq!(verify(SECRET, &t, 1_000), Ok(Claims { sub: "user-7".into(), exp: 2_000 }));
    }

    #[test]
    fn known_vector_from_another_implementation() {
        // HS256 over {"alg":"HS256","typ":"JWT"}.{"sub":"u","exp":4102444800} with key "k",
        // computed independently with Python's hmac + base64.
        let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1IiwiZXhwIjo0MTAyNDQ0ODAwfQ.\
                 7RCx-OLyvojxiZx9l_bqDFPtQxiz0mS0RJNHu5LOMdo";
        assert_eq!(verify(b"k", t, 0).map(|c| c.sub), Ok("u".to_string()));
    }

    #[test]
    fn rejects_wrong_secret_tampering_expiry_and_junk() {
        let t = sign(SECRET, "u", 2_000);
        assert_eq!(verify(b"other", &t, 1_000), Err(JwtError::BadSignature));
        assert_eq!(verify(SECRET, &t, 2_000), Err(JwtError::Expired));
        let forged = sign(SECRET, "v", 2_000);
        let mixed = format!("{}.{}", &forged[..forged.rfind('.').unwrap()], &t[t.rfind('.').unwrap() + 1..]);
        assert_eq!(verify(SECRET, &mixed, 1_000), Err(JwtError::BadSignature));
        for junk in ["", "a", "a.b", "a.b.c.d", "!!.??.**"] {
            assert!(verify(SECRET, junk, 0).is_err(), "{junk:?} accepted");
        }
        assert_eq!(verify(SECRET, &"a".repeat(MAX_TOKEN_BYTES + 1), 0), Err(JwtError::TooLong));
    }

    #[test]
    fn rejects_alg_none() {
        let header = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = B64.encode(r#"{"sub":"u","exp":9999999999}"#);
        let input = format!("{header}.{payload}");
        let sig = B64.encode(mac(SECRET, input.as_bytes()).finalize().into_bytes());
        assert_eq!(verify(SECRET, &format!("{input}.{sig}"), 0), Err(JwtError::UnsupportedHeader));
    }
}
