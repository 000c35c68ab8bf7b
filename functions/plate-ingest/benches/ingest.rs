//! Ingestion CPU per 1,000 plate reads, excluding DynamoDB round trips: decoding the rule
//! event (base64 + JSON), the per-read checks and normalisation, and mapping every read to its
//! DynamoDB item. Run: `cargo bench -p plate-ingest --bench ingest`.

use anpr_core::plates::IngestPolicy;
use anpr_protocol::{CameraId, FileName, PlateRead, PlateReadBatch, ReadId, encode};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plate_ingest::RuleEvent;

const NOW: u64 = 1_764_086_400_000;

/// 1,000 reads as cameras send them: batches of at most 128 KB (here 500 reads each, with an
/// image name on every read), wrapped in rule events.
fn events() -> Vec<serde_json::Value> {
    let camera = CameraId::parse("cam-bench-01").expect("valid id");
    (0..2)
        .map(|b| {
            let r = (0..500)
                .map(|i| PlateRead {
                    id: ReadId::parse(&format!("r{b}x{i:08}")).expect("valid id"),
                    t: NOW - 60_000 + i,
                    p: format!("ab-{i:03} cd"),
                    c: 90,
                    img: Some(FileName::parse(&format!("reads/{b}{i}.jpg")).expect("valid name")),
                    bb: Some([412, 300, 120, 40]),
                })
                .collect();
            let payload = encode(&PlateReadBatch { r }).expect("fits 128 KB");
            serde_json::to_value(RuleEvent::new(&camera, &payload)).expect("serialisable")
        })
        .collect()
}

fn ingest_1000(c: &mut Criterion) {
    let events = events();
    let policy = IngestPolicy::default();
    let mut g = c.benchmark_group("plate-ingest");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("prepare_and_map_1000_reads", |b| {
        b.iter(|| {
            let mut items = 0;
            for ev in &events {
                let (_, prepared) =
                    plate_ingest::prepare_event(ev, NOW, &policy).expect("valid batch");
                for r in &prepared.accepted {
                    let item = anpr_aws::plates::to_item(r).expect("mappable");
                    items += item.len();
                }
            }
            std::hint::black_box(items)
        })
    });
    g.finish();
}

criterion_group!(benches, ingest_1000);
criterion_main!(benches);
