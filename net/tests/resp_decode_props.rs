//! The RESP request decoder under random input (issue 12's fuzzing, as a
//! property test: cargo-fuzz needs a nightly toolchain this project's
//! machines cannot fetch). Small limits so every bound is reached often.
//!
//! - Random bytes, fed in random chunk sizes: no panic; each decoded request
//!   respects the limits; while a request is incomplete the input it holds
//!   (split off plus still buffered) stays within the request bound.
//! - Valid requests (multibulk, binary-safe arguments), cut at random
//!   points: decoded back exactly, in order.

use bytes::BytesMut;
use net::resp::{DecodeLimits, Decoder};
use proptest::prelude::*;

const LIMITS: DecodeLimits = DecodeLimits { max_bulk_bytes: 64, max_args: 8, max_inline_bytes: 128, max_request_bytes: 512 };

/// Header lines are at most 24 bytes and line ends 2: the slack over a bound
/// while a header or line end is still arriving.
const SLACK: usize = 26;

fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Bytes that look like RESP often: framing characters, digits, signs, letters.
fn resp_ish() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: Vec<u8> = b"*$%~>_#,(=!+-:\r\n\r\n0123456789-PING \"'\\x".to_vec();
    prop::collection::vec(prop_oneof![4 => prop::sample::select(alphabet), 1 => any::<u8>()], 0..2048)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_input_never_panics_and_stays_bounded(input in resp_ish(), cuts in prop::collection::vec(1usize..300, 1..16)) {
        let mut dec = Decoder::new(LIMITS);
        let mut buf = BytesMut::new();
        let (mut at, mut i) = (0, 0);
        'feed: while at < input.len() {
            let n = cuts[i % cuts.len()].min(input.len() - at);
            i += 1;
            buf.extend_from_slice(&input[at..at + n]);
            at += n;
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(args)) => {
                        prop_assert!(!args.is_empty() && args.len() <= LIMITS.max_args, "{} args", args.len());
                        for a in &args {
                            prop_assert!(a.len() <= LIMITS.max_bulk_bytes.max(LIMITS.max_inline_bytes));
                        }
                    }
                    Ok(None) => {
                        let held = dec.partial_bytes() + buf.len();
                        prop_assert!(
                            held <= LIMITS.max_request_bytes.max(LIMITS.max_inline_bytes) + SLACK,
                            "an incomplete request holds {held} bytes"
                        );
                        break;
                    }
                    Err(_) => break 'feed, // the connection answers the error and closes
                }
            }
        }
    }

    #[test]
    fn valid_requests_decode_back_whatever_the_cuts(
        requests in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..8), 1..12),
        cuts in prop::collection::vec(1usize..97, 1..16),
    ) {
        let wire: Vec<u8> = requests.iter().flat_map(|r| encode(r)).collect();
        let mut dec = Decoder::new(LIMITS);
        let mut buf = BytesMut::new();
        let mut got: Vec<Vec<Vec<u8>>> = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < wire.len() {
            let n = cuts[i % cuts.len()].min(wire.len() - at);
            i += 1;
            buf.extend_from_slice(&wire[at..at + n]);
            at += n;
            while let Some(args) = dec.decode(&mut buf).expect("valid input") {
                got.push(args.iter().map(|a| a.to_vec()).collect());
            }
        }
        prop_assert!(!dec.in_request() && buf.is_empty());
        prop_assert_eq!(got, requests);
    }
}
