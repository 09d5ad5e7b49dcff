//! Selection per algorithm with 4, 16 and 64 destinations (no I/O, warm output buffer,
//! first choice plus one failover alternate, as the proxy asks).
//!
//! `cargo bench -p sip-lb-benches --bench dispatch` (add `-- round-robin` to filter).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sip_dispatch::{Algorithm, Selection};
use sip_lb_benches::select::{dispatcher, key};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("select");
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_millis(1000));
    let now = Instant::now();
    for n in [4usize, 16, 64] {
        let d = dispatcher(n, now);
        let mut sel = Selection::with_capacity(n + 1);
        for a in Algorithm::all() {
            let mut i = 0u64;
            g.bench_with_input(BenchmarkId::new(a.name(), n), &n, |b, _| {
                b.iter(|| {
                    i += 1;
                    let cid = i.to_le_bytes();
                    black_box(d.select(1, a, &key(&cid), now, 2, &mut sel));
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
