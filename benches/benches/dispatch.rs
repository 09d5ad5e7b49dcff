//! Selection per algorithm with 4, 16 and 64 destinations (no I/O, warm output buffer).
//!
//! `cargo bench -p sip-lb-benches --bench dispatch`

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sip_dispatch::{Algorithm, DestinationList, Dispatcher, SelectKey, Selection};

fn dispatcher(n: usize) -> Dispatcher {
    let text: String = (0..n)
        .map(|i| {
            format!(
                "1 sip:10.0.{}.{}:5060 0 {} weight={}\n",
                i / 250,
                i % 250 + 1,
                i % 5,
                i % 7 + 1
            )
        })
        .collect();
    Dispatcher::new(DestinationList::parse_kamailio(&text).unwrap())
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("select");
    let now = Instant::now();
    for n in [4usize, 16, 64] {
        let d = dispatcher(n);
        let mut sel = Selection::with_capacity(n);
        for a in [
            Algorithm::RoundRobin,
            Algorithm::CallIdHash,
            Algorithm::Weight,
            Algorithm::CallLoad,
            Algorithm::Priority,
            Algorithm::Latency,
            Algorithm::Random,
            Algorithm::Sticky,
        ] {
            let mut i = 0u64;
            g.bench_with_input(BenchmarkId::new(a.name(), n), &n, |b, _| {
                b.iter(|| {
                    i += 1;
                    let cid = i.to_le_bytes();
                    let key = SelectKey {
                        call_id: &cid,
                        ..SelectKey::default()
                    };
                    // First choice plus one failover alternate, as the proxy asks.
                    black_box(d.select(1, a, &key, now, 2, &mut sel));
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
