#![no_main]
//! Arbitrary bytes from a peer: the frame stream decoder (fed in two splits),
//! then each frame's body through the decoder its kind selects. Nothing may
//! panic, hang or allocate beyond the input; whatever decodes re-encodes to
//! something that decodes the same.

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use net::peer::{decode_frame, Forward, FrameDecoder, Hello, KIND_FORWARD, KIND_HELLO};
use replication::codec::{self, Reader, Writer};
use replication::network::{decode_chunk, encode_chunk, MsgKind};

const MAX: usize = 1 << 20;

fn body(kind: u8, b: &Bytes) {
    match kind {
        KIND_HELLO => {
            if let Ok(h) = Hello::decode(b) {
                assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
            }
        }
        KIND_FORWARD => {
            if let Ok(f) = Forward::decode(b) {
                assert_eq!(Forward::decode(&f.encode()).unwrap(), f);
            }
        }
        k => match MsgKind::from_u8(k) {
            Some(MsgKind::Append) => {
                if let Ok(rq) = codec::get_append_request(&mut Reader::new(b)) {
                    let mut w = Writer::new();
                    codec::put_append_request(&mut w, &rq);
                    let back = codec::get_append_request(&mut Reader::new(&w.buf)).unwrap();
                    assert_eq!(back.entries, rq.entries);
                }
                let _ = codec::get_append_response(&mut Reader::new(b));
            }
            Some(MsgKind::Vote) | Some(MsgKind::PreVote) => {
                if let Ok(rq) = codec::get_vote_request(&mut Reader::new(b)) {
                    let mut w = Writer::new();
                    codec::put_vote_request(&mut w, &rq);
                    assert_eq!(codec::get_vote_request(&mut Reader::new(&w.buf)).unwrap(), rq);
                }
                let _ = codec::get_vote_response(&mut Reader::new(b));
            }
            Some(MsgKind::Transfer) => {
                let _ = codec::get_transfer_request(&mut Reader::new(b));
                let _ = codec::get_transfer_response(&mut Reader::new(b));
            }
            Some(MsgKind::SnapshotChunk) => {
                if let Ok(c) = decode_chunk(b) {
                    assert_eq!(decode_chunk(&encode_chunk(&c)).unwrap(), c);
                }
                let _ = codec::get_snapshot_response(&mut Reader::new(b));
            }
            Some(MsgKind::Ping) | None => {
                let _ = codec::decode_payload(b);
                let _ = codec::decode_vote(b);
                let _ = replication::AppliedState::decode(b);
            }
        },
    }
}

fuzz_target!(|data: &[u8]| {
    // one-shot decoder
    let mut at = 0;
    while let Ok(Some((f, used))) = decode_frame(&data[at..], MAX) {
        assert!(used >= net::peer::HEADER_LEN && at + used <= data.len());
        at += used;
        body(f.kind, &f.body);
    }
    // stream decoder, fed in two pieces
    let split = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut d = FrameDecoder::new(MAX);
    d.push(&data[..split]);
    while let Ok(Some(_)) = d.next_frame() {}
    d.push(&data[split..]);
    while let Ok(Some(_)) = d.next_frame() {}
});
