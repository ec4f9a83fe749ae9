//! Apply of one like toggle from its log payload: the partition state
//! machine (format-2 rkyv decode + `Partition::apply` + its `KvWrite`s), the
//! same from a format-1 payload (what a migration replays), and the two
//! codecs alone. (The like book this replaced, `engine::likes`, is gone.)
//!
//! Steady state: 512 (user, character) pairs, liked on the first pass of
//! the 1024-record cycle and unliked on the second, so the state does not
//! grow with the iteration count.
//!
//! Timings on a shared, loaded machine are noisy; the instruction count is
//! not. `PARTITION_APPLY_IR=<path>:<n>` runs one path `n` times and exits
//! (paths: `v2`, `v1`, `encode_v2`, `encode_v1`, `decode_v2`, `decode_v1`); under `valgrind --tool=callgrind`, the difference of the
//! totals for two `n` divided by their difference is the cost of one.
use std::hint::black_box;

use criterion::{criterion_group, Criterion, Throughput};
use engine::partition::{LikeToggled, Limits, Partition, Record};

fn cycle() -> Vec<LikeToggled> {
    let pairs: Vec<(String, String)> = (0..512)
        .map(|i| (format!("user-{:04}", i % 64), format!("character{}", ["", "아델", "hero"][i % 3].to_string() + &(i / 64).to_string())))
        .collect();
    let mut counts = std::collections::HashMap::<String, u64>::new();
    let mut out = Vec::new();
    for liked in [true, false] {
        for (user, character) in &pairs {
            let c = counts.entry(character.clone()).or_default();
            if liked {
                *c += 1;
            } else {
                *c -= 1;
            }
            out.push(LikeToggled {
                user: user.clone(),
                character: character.clone(),
                liked,
                count_after: *c,
                at_ms: 1_733_300_000_000,
                idempotency_key: None,
            });
        }
    }
    out
}

/// A format-1 like body: `version 1 | liked | count_after u64 | user | character | key`,
/// strings as `len u16 | utf-8`.
fn v1_body(t: &LikeToggled) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + t.user.len() + t.character.len());
    out.push(1);
    out.push(t.liked as u8);
    out.extend_from_slice(&t.count_after.to_le_bytes());
    for s in [&t.user, &t.character, t.idempotency_key.as_ref().unwrap_or(&String::new())] {
        out.extend_from_slice(&(s.len() as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

/// Format-1 `LIKE_AT`: kind | at_ms | like body.
fn v1_payload(t: &LikeToggled) -> (Vec<u8>, LikeToggled) {
    let mut p = vec![3u8];
    p.extend_from_slice(&t.at_ms.to_le_bytes());
    p.extend_from_slice(&v1_body(t));
    (p, t.clone())
}

fn bench(c: &mut Criterion) {
    let toggles = cycle();
    let v2: Vec<Vec<u8>> = toggles.iter().map(|t| Record::LikeToggled(t.clone()).encode().unwrap()).collect();
    let v1: Vec<(Vec<u8>, LikeToggled)> = toggles.iter().map(v1_payload).collect();
    let avg = |v: &mut dyn Iterator<Item = usize>| v.sum::<usize>() as f64 / toggles.len() as f64;
    eprintln!(
        "payload bytes per toggle: format 2 (rkyv) {:.1}, format 1 (hand) {:.1}",
        avg(&mut v2.iter().map(Vec::len)),
        avg(&mut v1.iter().map(|(p, _)| p.len()))
    );

    let mut g = c.benchmark_group("like_apply");
    g.throughput(Throughput::Elements(1));
    {
        let mut p = Partition::new(Limits::default());
        let mut index = 0u64;
        g.bench_function("partition: decode v2 + apply + writes", |b| {
            b.iter(|| {
                index += 1;
                let payload = &v2[(index % v2.len() as u64) as usize];
                let record = Record::decode(black_box(payload)).unwrap();
                black_box(p.apply(index, &record).writes);
            })
        });
    }
    {
        let mut p = Partition::new(Limits::default());
        let mut index = 0u64;
        g.bench_function("partition: decode v1 + apply + writes", |b| {
            b.iter(|| {
                index += 1;
                let payload = &v1[(index % v1.len() as u64) as usize].0;
                let record = Record::decode(black_box(payload)).unwrap();
                black_box(p.apply(index, &record).writes);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("like_codec");
    g.throughput(Throughput::Elements(1));
    let records: Vec<Record> = toggles.iter().cloned().map(Record::LikeToggled).collect();
    let mut i = 0usize;
    g.bench_function("encode v2 (rkyv)", |b| {
        b.iter(|| {
            i += 1;
            black_box(records[i % records.len()].encode().unwrap())
        })
    });
    g.bench_function("encode v1 (hand)", |b| {
        b.iter(|| {
            i += 1;
            let (r, at_ms) = (&v1[i % v1.len()].1, toggles[i % toggles.len()].at_ms);
            let body = v1_body(black_box(r));
            let mut p = Vec::with_capacity(9 + body.len());
            p.push(3u8);
            p.extend_from_slice(&at_ms.to_le_bytes());
            p.extend_from_slice(&body);
            black_box(p)
        })
    });
    g.bench_function("decode v2 (rkyv, validated)", |b| {
        b.iter(|| {
            i += 1;
            black_box(Record::decode(black_box(&v2[i % v2.len()])).unwrap())
        })
    });
    g.bench_function("decode v1 (hand)", |b| {
        b.iter(|| {
            i += 1;
            black_box(Record::decode(black_box(&v1[i % v1.len()].0)).unwrap())
        })
    });
    g.finish();
}

/// One path `n` times (see the module doc).
fn instructions(spec: &str) {
    let (path, n) = spec.split_once(':').expect("PARTITION_APPLY_IR=<path>:<n>");
    let n: u64 = n.parse().expect("a count");
    let toggles = cycle();
    let v2: Vec<Vec<u8>> = toggles.iter().map(|t| Record::LikeToggled(t.clone()).encode().unwrap()).collect();
    let v1: Vec<(Vec<u8>, LikeToggled)> = toggles.iter().map(v1_payload).collect();
    let records: Vec<Record> = toggles.iter().cloned().map(Record::LikeToggled).collect();
    let mut p = Partition::new(Limits::default());
    for index in 1..=n {
        let i = (index % toggles.len() as u64) as usize;
        match path {
            "v2" => {
                let record = Record::decode(black_box(&v2[i])).unwrap();
                black_box(p.apply(index, &record).writes);
            }
            "v1" => {
                let record = Record::decode(black_box(&v1[i].0)).unwrap();
                black_box(p.apply(index, &record).writes);
            }
            "encode_v2" => {
                black_box(black_box(&records[i]).encode().unwrap());
            }
            "encode_v1" => {
                let body = v1_body(black_box(&v1[i].1));
                let mut out = Vec::with_capacity(9 + body.len());
                out.push(3u8);
                out.extend_from_slice(&toggles[i].at_ms.to_le_bytes());
                out.extend_from_slice(&body);
                black_box(out);
            }
            "decode_v2" => {
                black_box(Record::decode(black_box(&v2[i])).unwrap());
            }
            "decode_v1" => {
                black_box(Record::decode(black_box(&v1[i].0)).unwrap());
            }
            other => panic!("unknown path {other}"),
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(spec) = std::env::var("PARTITION_APPLY_IR") {
        instructions(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
