//! HS256 JSON Web Tokens: the caller of a like is the token's subject.
//!
//! Only what the API needs: `{"alg":"HS256","typ":"JWT"}` headers, `sub`,
//! `exp` and (optional) `nbf` claims, constant-time signature check. A
//! header with `crit` is rejected: this verifier implements no extension
//! (RFC 7515 4.1.11). Anything else is rejected. [`bearer_token`] takes the
//! token out of an `Authorization` header.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;

use crate::lograte::LogLimiter;

type HmacSha256 = Hmac<Sha256>;

/// Longest token we look at; anything longer is rejected before decoding.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Longest subject (user id) accepted.
pub const MAX_SUBJECT_BYTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// Expiry, seconds since the Unix epoch: valid while `now < exp`.
    pub exp: u64,
    /// Not before, seconds since the Unix epoch: valid once `now >= nbf`.
    /// No clock leeway, as for `exp` (issuer and verifier share a clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
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
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    #[error("token header has critical parameters this verifier does not understand (crit)")]
    UnknownCritical,
    #[error("token claims are invalid: {0}")]
    BadClaims(&'static str),
}

const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Sign a token for `user`, valid until `exp` (Unix seconds).
pub fn sign(secret: &[u8], user: &str, exp: u64) -> String {
    let claims = Claims { sub: user.to_string(), exp, nbf: None };
    let header = B64.encode(HEADER_JSON);
    let payload = B64.encode(serde_json::to_vec(&claims).expect("claims serialise"));
    let signing_input = format!("{header}.{payload}");
    let sig = B64.encode(mac(secret, signing_input.as_bytes()).finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verify signature, header, expiry and not-before against `now` (Unix seconds).
/// A rejection is logged (rate-limited: a client can send them at will).
pub fn verify(secret: &[u8], token: &str, now: u64) -> Result<Claims, JwtError> {
    let result = verify_quietly(secret, token, now);
    if let Err(e) = &result {
        static LOG: LogLimiter = LogLimiter::new(Duration::from_secs(1));
        if let Some(suppressed) = LOG.check() {
            tracing::warn!(error = %e, token_bytes = token.len(), suppressed, "rejected a bearer token");
        }
    }
    result
}

fn verify_quietly(secret: &[u8], token: &str, now: u64) -> Result<Claims, JwtError> {
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
    // We understand no JWS extension, so any `crit` (even a malformed or
    // empty one, which RFC 7515 forbids) makes the token invalid.
    if header.get("crit").is_some() {
        return Err(JwtError::UnknownCritical);
    }
    let claims: Claims = serde_json::from_slice(&B64.decode(p).map_err(|_| JwtError::Malformed)?)
        .map_err(|_| JwtError::BadClaims("need string `sub`, integer `exp` and, if present, integer `nbf`"))?;
    if claims.sub.is_empty() || claims.sub.len() > MAX_SUBJECT_BYTES {
        return Err(JwtError::BadClaims("`sub` must be 1..=256 bytes"));
    }
    if claims.exp <= now {
        return Err(JwtError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now) {
        return Err(JwtError::NotYetValid);
    }
    Ok(claims)
}

/// Why an `Authorization` header carries no bearer token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("Authorization must be 'Bearer <token>'")]
    NotBearer,
    #[error("Authorization 'Bearer' without a token")]
    MissingToken,
    #[error("the bearer token has characters a token cannot have")]
    BadToken,
}

/// The token of an `Authorization: Bearer <token>` header value (RFC 6750
/// 2.1, RFC 9110 11.4): the scheme is case-insensitive (`Bearer`, `bearer`,
/// `BEARER`), one or more spaces follow it, and the token is token68
/// (base64url, a JWT included). Surrounding whitespace is ignored. A
/// rejection is logged (rate-limited).
pub fn bearer_token(header: &[u8]) -> Result<&str, BearerError> {
    let result = bearer_token_quietly(header);
    if let Err(e) = &result {
        static LOG: LogLimiter = LogLimiter::new(Duration::from_secs(1));
        if let Some(suppressed) = LOG.check() {
            tracing::warn!(error = %e, header_bytes = header.len(), suppressed, "rejected an Authorization header");
        }
    }
    result
}

fn bearer_token_quietly(header: &[u8]) -> Result<&str, BearerError> {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = header.iter().position(|b| !ows(b)).unwrap_or(header.len());
    let end = header.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    let value = &header[start..end];
    let scheme_end = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
    if !value[..scheme_end].eq_ignore_ascii_case(b"bearer") {
        return Err(BearerError::NotBearer);
    }
    let token = &value[scheme_end..];
    let token = &token[token.iter().position(|&b| b != b' ').unwrap_or(token.len())..];
    if token.is_empty() {
        return Err(BearerError::MissingToken);
    }
    // token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body_len = token.iter().position(|&b| !(b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))).unwrap_or(token.len());
    if body_len == 0 || !token[body_len..].iter().all(|&b| b == b'=') {
        return Err(BearerError::BadToken);
    }
    std::str::from_utf8(token).map_err(|_| BearerError::BadToken)
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
        assert_eq!(verify(SECRET, &t, 1_000), Ok(Claims { sub: "user-7".into(), exp: 2_000, nbf: None }));
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

    /// A token over any header and payload JSON, signed with `SECRET`.
    fn sign_raw(header: &str, payload: &str) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let sig = B64.encode(mac(SECRET, input.as_bytes()).finalize().into_bytes());
        format!("{input}.{sig}")
    }

    #[test]
    fn not_before_in_the_future_is_rejected() {
        let t = sign_raw(HEADER_JSON, r#"{"sub":"u","exp":5000,"nbf":2000}"#);
        assert_eq!(verify(SECRET, &t, 1_000), Err(JwtError::NotYetValid), "a token not valid before 2000 accepted at 1000");
        assert_eq!(verify(SECRET, &t, 1_999), Err(JwtError::NotYetValid));
        assert_eq!(verify(SECRET, &t, 2_000).map(|c| c.sub), Ok("u".to_string()));
        // Expiry is checked first: an expired token is "expired" whatever its nbf.
        assert_eq!(verify(SECRET, &t, 5_000), Err(JwtError::Expired));
        let t = sign_raw(HEADER_JSON, r#"{"sub":"u","exp":5000,"nbf":"soon"}"#);
        assert!(verify(SECRET, &t, 3_000).is_err(), "a non-numeric nbf accepted");
    }

    #[test]
    fn any_crit_header_is_rejected() {
        for header in [
            r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#,
            r#"{"alg":"HS256","typ":"JWT","crit":["b64"],"b64":false}"#,
            r#"{"alg":"HS256","crit":[]}"#,
            r#"{"alg":"HS256","crit":"x"}"#,
        ] {
            let t = sign_raw(header, r#"{"sub":"u","exp":5000}"#);
            assert_eq!(verify(SECRET, &t, 1_000), Err(JwtError::UnknownCritical), "{header}");
        }
        // Unknown non-critical header parameters are ignored (RFC 7515 4).
        let t = sign_raw(r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#, r#"{"sub":"u","exp":5000}"#);
        assert!(verify(SECRET, &t, 1_000).is_ok());
    }

    #[test]
    fn rejects_alg_none() {
        let header = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = B64.encode(r#"{"sub":"u","exp":9999999999}"#);
        let input = format!("{header}.{payload}");
        let sig = B64.encode(mac(SECRET, input.as_bytes()).finalize().into_bytes());
        assert_eq!(verify(SECRET, &format!("{input}.{sig}"), 0), Err(JwtError::UnsupportedHeader));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let t = sign(SECRET, "u", 2_000);
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            for (pre, gap, post) in [("", " ", ""), ("  ", "   ", " \t"), ("\t", " ", "")] {
                let header = format!("{pre}{scheme}{gap}{t}{post}");
                assert_eq!(bearer_token(header.as_bytes()), Ok(t.as_str()), "{header:?}");
            }
        }
        assert_eq!(bearer_token(b"Bearer abc+/~_-.=="), Ok("abc+/~_-.=="));
    }

    #[test]
    fn bearer_rejects_other_schemes_and_bad_tokens() {
        for h in [&b"Basic dTpw"[..], b"Bearertoken", b"Bearer\ttoken", b"Token abc", b"", b"   ", b"Bearerx abc", b"\xffBearer abc"] {
            assert_eq!(bearer_token(h), Err(BearerError::NotBearer), "{:?}", String::from_utf8_lossy(h));
        }
        for h in [&b"Bearer"[..], b"bearer ", b"BEARER    "] {
            assert_eq!(bearer_token(h), Err(BearerError::MissingToken), "{:?}", String::from_utf8_lossy(h));
        }
        for h in [&b"Bearer a b"[..], b"Bearer a=b", b"Bearer =", b"Bearer a,b", b"Bearer a\x01", b"Bearer \xc3\xa9", b"Bearer a\"b"] {
            assert_eq!(bearer_token(h), Err(BearerError::BadToken), "{:?}", String::from_utf8_lossy(h));
        }
    }

    proptest::proptest! {
        /// Any case of the scheme, any run of spaces, any token68: the token
        /// comes back; bytes never panic it.
        #[test]
        fn bearer_round_trip(
            case in proptest::collection::vec(proptest::bool::ANY, 6),
            gap in 1usize..5,
            token in "[A-Za-z0-9._~+/-]{1,60}={0,2}",
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            let scheme: String = "bearer".chars().zip(&case).map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c }).collect();
            let header = format!("{scheme}{}{token}", " ".repeat(gap));
            proptest::prop_assert_eq!(bearer_token(header.as_bytes()), Ok(token.as_str()));
            let _ = bearer_token(&junk);
        }
    }
}
