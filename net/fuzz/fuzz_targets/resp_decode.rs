//! The RESP request decoder on arbitrary bytes, split into reads of a
//! size picked by the first byte. Checks: no panic; every request it
//! returns respects the limits; the unparsed buffer stays bounded; and
//! what it decoded, written back as a multibulk (and as a RESP3 reply by
//! our encoder), decodes to the same words with redis-protocol.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use net::resp::{DecodeLimits, Decoder, Protocol, Reply};

const LIMITS: DecodeLimits = DecodeLimits { max_bulk_bytes: 4096, max_args: 64, max_inline_bytes: 1024, max_request_bytes: 16 * 1024 };

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else { return };
    let chunk = (first as usize % 64) + 1;
    let mut d = Decoder::new(LIMITS);
    let mut buf = BytesMut::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(args)) => check(&args),
                Ok(None) => break,
                Err(_) => return, // the connection would answer and close
            }
        }
        // Unparsed input never exceeds one request (plus the bytes of one read).
        assert!(buf.len() + d.partial_bytes() <= LIMITS.max_request_bytes + LIMITS.max_inline_bytes + chunk + 64, "buffer {}", buf.len());
    }
});

fn check(args: &[bytes::Bytes]) {
    assert!(!args.is_empty() && args.len() <= LIMITS.max_args);
    assert!(args.iter().all(|a| a.len() <= LIMITS.max_bulk_bytes.max(LIMITS.max_inline_bytes)));
    // Round trip 1: as a client request, through redis-protocol's RESP2 decoder.
    let mut wire = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        wire.extend_from_slice(a);
        wire.extend_from_slice(b"\r\n");
    }
    let (frame, used) = redis_protocol::resp2::decode::decode(&wire).expect("valid RESP2").expect("complete");
    assert_eq!(used, wire.len());
    let redis_protocol::resp2::types::OwnedFrame::Array(items) = frame else { panic!("not an array") };
    for (item, a) in items.iter().zip(args) {
        assert_eq!(item, &redis_protocol::resp2::types::OwnedFrame::BulkString(a.to_vec()));
    }
    // Round trip 2: our RESP3 encoder on a reply made of them.
    let reply = Reply::Array(args.iter().map(|a| Reply::Bulk(a.clone())).collect());
    let mut out = Vec::new();
    reply.encode(Protocol::Resp3, &mut out);
    let (frame, used) = redis_protocol::resp3::decode::complete::decode(&out).expect("valid RESP3").expect("complete");
    assert_eq!(used, out.len());
    let redis_protocol::resp3::types::OwnedFrame::Array { data, .. } = frame else { panic!("not an array") };
    assert_eq!(data.len(), args.len());
}
