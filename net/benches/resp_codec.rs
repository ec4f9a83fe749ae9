//! Request decoding and reply encoding: our RESP codec vs `redis-protocol`
//! 6 on the same inputs. A tool, not a test:
//! `cargo bench -p net --bench resp_codec` (env: ROUNDS=200000).
//!
//! Inputs: redis-benchmark style pipelines (16 × PING, 16 × a 3-argument
//! command) and one 60 KiB argument arriving in 4 KiB reads.

use bytes::{Bytes, BytesMut};
use net::resp::{DecodeLimits, Decoder, Protocol, Reply};
use redis_protocol::resp2::types::BytesFrame as F2;
use std::hint::black_box;
use std::time::Instant;

fn encode_cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// Decode everything with ours; returns the number of arguments seen.
fn ours(input: &[u8], chunk: usize) -> usize {
    let mut d = Decoder::new(DecodeLimits::default());
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut n = 0;
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(args) = d.decode(&mut buf).expect("valid") {
            n += args.len();
        }
    }
    n
}

/// Decode everything with redis-protocol (a server must still check the
/// frame is an array of bulk strings and take the arguments out).
fn theirs(input: &[u8], chunk: usize) -> usize {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut n = 0;
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some((frame, _, _)) = redis_protocol::resp2::decode::decode_bytes_mut(&mut buf).expect("valid") {
            let F2::Array(items) = frame else { panic!("not an array") };
            let args: Vec<Bytes> = items
                .into_iter()
                .map(|f| match f {
                    F2::BulkString(b) => b,
                    _ => panic!("not a bulk"),
                })
                .collect();
            n += args.len();
        }
    }
    n
}

fn time(label: &str, rounds: usize, per_round: usize, f: impl Fn() -> usize) -> f64 {
    let expect = f();
    let t = Instant::now();
    for _ in 0..rounds {
        assert_eq!(black_box(f()), expect);
    }
    let secs = t.elapsed().as_secs_f64();
    let rate = (rounds * per_round) as f64 / secs;
    println!("{label:<52} {:>8.1} M/s", rate / 1e6);
    rate
}

/// `DEEP=1`: what each decoder does with 100,000 nested one-element
/// arrays on a 2 MiB thread stack (a core thread's default). Ours refuses
/// at the second level; redis-protocol recurses once per level.
fn deep() {
    let mut input = b"*1\r\n".repeat(100_000);
    input.extend_from_slice(b":1\r\n");
    let mut d = Decoder::new(DecodeLimits::default());
    println!("ours: {:?}", d.decode(&mut BytesMut::from(&input[..])));
    println!("redis-protocol resp3 on a 2 MiB stack (a stack overflow aborts the process):");
    let t = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || redis_protocol::resp3::decode::complete::decode(&input).map(|o| o.map(|(_, n)| n)))
        .expect("thread");
    println!("redis-protocol: {:?}", t.join());
}

fn main() {
    if std::env::var("DEEP").is_ok() {
        return deep();
    }
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let ping: Vec<u8> = (0..16).flat_map(|_| encode_cmd(&[b"PING"])).collect();
    let set: Vec<u8> = (0..16).flat_map(|_| encode_cmd(&[b"LIKE.TOGGLE", b"character-name-01", b"IDEMPOTENCY"])).collect();
    let big_arg = vec![b'x'; 60 * 1024];
    let big = encode_cmd(&[b"ECHO", &big_arg]);

    println!("decode (commands/s; 'M/s' = million per second)");
    let a = time("ours: 16 x PING in one read", rounds, 16, || ours(&ping, ping.len()));
    let b = time("redis-protocol: 16 x PING in one read", rounds, 16, || theirs(&ping, ping.len()));
    println!("  ratio ours/redis-protocol: {:.2}", a / b);
    let a = time("ours: 16 x 3-arg command in one read", rounds, 16, || ours(&set, set.len()));
    let b = time("redis-protocol: 16 x 3-arg command in one read", rounds, 16, || theirs(&set, set.len()));
    println!("  ratio ours/redis-protocol: {:.2}", a / b);
    let r = rounds / 100;
    let a = time("ours: one 60 KiB argument in 4 KiB reads", r, 1, || ours(&big, 4096));
    let b = time("redis-protocol: one 60 KiB argument in 4 KiB reads", r, 1, || theirs(&big, 4096));
    println!("  ratio ours/redis-protocol: {:.2}", a / b);

    println!("encode (replies/s)");
    let reply = Reply::map([("liked", Reply::Bool(true)), ("likeCount", Reply::Int(1234))]);
    let a = time("ours: {liked, likeCount} as RESP3", rounds * 10, 1, || {
        let mut out = Vec::with_capacity(64);
        reply.encode(Protocol::Resp3, &mut out);
        out.len()
    });
    let frame = {
        use redis_protocol::resp3::types::BytesFrame as F3;
        let mut m = redis_protocol::resp3::types::FrameMap::default();
        m.insert(F3::BlobString { data: "liked".into(), attributes: None }, F3::Boolean { data: true, attributes: None });
        m.insert(F3::BlobString { data: "likeCount".into(), attributes: None }, F3::Number { data: 1234, attributes: None });
        F3::Map { data: m, attributes: None }
    };
    let b = time("redis-protocol: the same map as RESP3", rounds * 10, 1, || {
        let mut out = BytesMut::with_capacity(64);
        redis_protocol::resp3::encode::complete::extend_encode(&mut out, &frame, false).expect("encode")
    });
    println!("  ratio ours/redis-protocol: {:.2}", a / b);
}
