//! The RESP request decoder under random input (issue 12's fuzzing, as a
//! property test: cargo-fuzz needs a nightly toolchain this project's
//! machines cannot fetch). Small limits so every bound is reached often.
//!
//! - Random bytes, and requests shaped as redis-cli / redis-benchmark /
//!   redis-rs send them with random edits, fed in random chunk sizes: no panic; each decoded request
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

/// Requests in the form real clients send them (redis-cli's `COMMAND DOCS`
/// and `AUTH` at start, redis-rs's `HELLO 3` and `CLIENT SETINFO`,
/// redis-benchmark's `CONFIG GET` and pipelined commands, telnet's inline
/// lines): the seeds the mutation property starts from.
const REAL_TRAFFIC: [&[u8]; 10] = [
    b"*2\r\n$7\r\nCOMMAND\r\n$4\r\nDOCS\r\n",
    b"*2\r\n$4\r\nAUTH\r\n$20\r\neyJhbGciOiJIUzI1NiJ9\r\n",
    b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n",
    b"*4\r\n$6\r\nCLIENT\r\n$7\r\nSETINFO\r\n$8\r\nLIB-NAME\r\n$8\r\nredis-rs\r\n",
    b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$10\r\nappendonly\r\n",
    b"*2\r\n$11\r\nLIKE.TOGGLE\r\n$16\r\nchar000000000417\r\n*2\r\n$11\r\nLIKE.TOGGLE\r\n$16\r\nchar000000000089\r\n",
    b"*3\r\n$10\r\nEXPECT.GET\r\n$4\r\nevan\r\n$4\r\nGZIP\r\n",
    b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n",
    b"PING\r\nLIKE.COUNT \"hero\"\r\n",
    b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n",
];

/// One of the captured requests with a few edits: bytes flipped, replaced,
/// inserted or cut off.
fn mutated_traffic() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(REAL_TRAFFIC.to_vec()),
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 0..6),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(seed, edits, cut)| {
            let mut v = seed.to_vec();
            for (at, kind, byte) in edits {
                if v.is_empty() {
                    break;
                }
                let i = at.index(v.len());
                match kind {
                    0 => v[i] ^= 1 << (byte % 8),
                    1 => v[i] = byte,
                    2 => v.insert(i, byte),
                    _ => {
                        v.remove(i);
                    }
                }
            }
            let keep = cut.index(v.len() + 1);
            v.truncate(keep.max(v.len() / 2));
            v
        })
}

/// Feed `input` in chunks of the `cuts` sizes; asserts the bounds; stops at
/// the first protocol error (the connection answers it and closes).
fn feed(input: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
    let mut dec = Decoder::new(LIMITS);
    let mut buf = BytesMut::new();
    let (mut at, mut i) = (0, 0);
    while at < input.len() {
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
                Err(_) => return Ok(()),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_input_never_panics_and_stays_bounded(input in resp_ish(), cuts in prop::collection::vec(1usize..300, 1..16)) {
        feed(&input, &cuts)?;
    }

    #[test]
    fn mutated_real_traffic_never_panics_and_stays_bounded(
        parts in prop::collection::vec(mutated_traffic(), 1..8),
        cuts in prop::collection::vec(1usize..64, 1..16),
    ) {
        feed(&parts.concat(), &cuts)?;
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
