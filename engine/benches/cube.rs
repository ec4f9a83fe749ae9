//! Cube expectation cost per query (the uncached-character path runs ~20–70 of
//! these). `cargo bench -p engine --bench cube`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use engine::expectation::cube::{CubeKind, CubeQuery, CubeTables};

/// Representative line sets from the fixtures: DP with small and large
/// targets, the exact-lines engine, and the two unavailable paths.
const CASES: [(&str, CubeKind, &str, u32, [&str; 3]); 7] = [
    ("dp_str_30", CubeKind::Black, "모자", 200, ["STR +12%", "STR +9%", "STR +9%"]),
    ("dp_damage_105", CubeKind::Black, "무기", 200, ["보스 몬스터 데미지 +40%", "보스 몬스터 데미지 +35%", "보스 몬스터 데미지 +30%"]),
    ("dp_item_drop_20", CubeKind::Black, "반지1", 120, ["아이템 드롭률 +20%", "INT +9%", "INT +9%"]),
    (
        "v1_cooldown",
        CubeKind::Black,
        "모자",
        250,
        ["스킬 재사용 대기시간 -2초", "스킬 재사용 대기시간 -2초", "피격 시 5% 확률로 데미지의 40% 무시"],
    ),
    ("v1_allstat", CubeKind::Black, "신발", 200, ["올스탯 +9%", "올스탯 +9%", "INT +9%"]),
    ("unavailable_level", CubeKind::Black, "눈장식", 145, ["아이템 드롭률 +20%", "아이템 드롭률 +20%", "최대 MP +9%"]),
    ("additional", CubeKind::Additional, "모자", 250, ["스킬 재사용 대기시간 -1초", "INT +7%", "INT +7%"]),
];

fn bench(c: &mut Criterion) {
    c.bench_function("cube/parse_embedded_tables", |b| {
        b.iter(|| CubeTables::parse(engine::expectation::cube::EMBEDDED_CSV, engine::expectation::cube::EMBEDDED_LOOKUP_JSON).unwrap())
    });
    let tables = CubeTables::embedded();
    for (name, kind, slot, level, lines) in CASES {
        c.bench_function(&format!("cube/{name}"), |b| {
            b.iter(|| {
                let q = CubeQuery { kind, slot, level, grade: "레전드리", lines: &lines };
                black_box(tables.expectation(black_box(&q)))
            })
        });
    }
    // One uncached character: every case once, black and additional (~14 queries).
    c.bench_function("cube/character_14_queries", |b| {
        b.iter(|| {
            for (_, _, slot, level, lines) in CASES {
                for kind in [CubeKind::Black, CubeKind::Additional] {
                    let q = CubeQuery { kind, slot, level, grade: "레전드리", lines: &lines };
                    black_box(tables.expectation(&q));
                }
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
