//! The uncached expectation path on one real fixture, stage by stage:
//! parse (Nexon JSON → borrowed structs), compute (parse + all presets),
//! render (response → JSON bytes) and gzip (the bytes the server stores).
//! `cargo bench -p engine --bench calc`; fixtures from the repository's
//! `fixtures/maple/` (or `$MAPLE_SHARED_DATA`).

use std::io::Write;
use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use engine::expectation::cube::{CubeKind, CubeQuery, CubeTables};
use engine::expectation::flame::{flame_expectation_of, FlameInput};
use engine::expectation::{calculator::potential_part, equipment, Calculator};

fn fixture(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("MAPLE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/maple"));
    std::fs::read(dir.join(name)).expect("fixture")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn bench(c: &mut Criterion) {
    let input = fixture("evan_equip.json");
    let calc = Calculator::embedded();
    let response = calc.compute("evan", &input, "2026-11-23T10:00:00".into()).unwrap();
    let rendered = serde_json::to_vec(&response).unwrap();
    eprintln!("input {} B, response {} B, gzip {} B", input.len(), rendered.len(), gzip(&rendered).len());

    let mut group = c.benchmark_group("calc_evan");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("parse", |b| {
        b.iter(|| {
            let json = equipment::plain_json(black_box(&input)).unwrap();
            black_box(equipment::parse(&json).unwrap().preset(1).len())
        })
    });
    // Measured alternative: sonic-rs into the same borrowed structs.
    group.bench_function("parse_sonic_rs", |b| {
        b.iter(|| {
            let doc: equipment::EquipmentDoc = sonic_rs::from_slice(black_box(&input)).unwrap();
            black_box(doc.preset(1).len())
        })
    });
    group.bench_function("compute", |b| b.iter(|| calc.compute("evan", black_box(&input), "2026-11-23T10:00:00".into()).unwrap()));
    group.throughput(Throughput::Bytes(rendered.len() as u64));
    group.bench_function("render", |b| b.iter(|| serde_json::to_vec(black_box(&response)).unwrap()));
    group.bench_function("gzip", |b| b.iter(|| gzip(black_box(&rendered))));
    // What the server stores: the same bytes at its level (fast).
    group.bench_function("gzip_server", |b| b.iter(|| engine::shard::gzip(black_box(&rendered))));
    group.finish();

    // Where compute's time goes: every cube and flame query of the document's
    // three presets (what compute would do without its per-item memo).
    let json = equipment::plain_json(&input).unwrap();
    let doc = equipment::parse(&json).unwrap();
    let items: Vec<_> = (1..=3).flat_map(|n| doc.preset(n).iter()).collect();
    let class = doc.character_class.as_deref().unwrap_or("");
    let mut group = c.benchmark_group("calc_evan_parts");
    group.bench_function("cube_all_items", |b| {
        b.iter(|| {
            for item in &items {
                let (Some(grade), lines) = (item.potential_grade(), item.potential_lines()) else { continue };
                let part = potential_part(&item.item_equipment_slot, item.item_equipment_part.as_deref());
                let q = CubeQuery { kind: CubeKind::Black, slot: part, level: item.level(), grade, lines: &lines };
                black_box(CubeTables::embedded().expectation(&q));
            }
        })
    });
    let null = serde_json::Value::Null;
    group.bench_function("flame_all_items", |b| {
        b.iter(|| {
            for item in &items {
                let input = FlameInput {
                    item_name: &item.item_name,
                    slot: &item.item_equipment_slot,
                    level: item.level(),
                    character_class: class,
                    add_option: &null,
                    base_attack_power: item.base_attack_power(),
                    base_magic_power: item.base_magic_power(),
                };
                black_box(flame_expectation_of(&input, &item.item_add_option.unwrap_or_default()));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
