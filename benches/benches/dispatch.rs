//! Selection per algorithm with 4, 16 and 64 destinations (no I/O, warm output buffer,
//! first choice plus one failover alternate, as the proxy asks).
//!
//! `cargo bench -p sip-lb-benches --bench dispatch` (add `-- round-robin` to filter).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sip_dispatch::{Algorithm, DestinationList, Dispatcher, SelectKey, Selection};

fn dispatcher(n: usize, now: Instant) -> Dispatcher {
    let text: String = (0..n)
        .map(|i| {
            format!(
                "1 sip:10.0.{}.{}:5060 0 {} weight={};rweight={};maxload=1000000;duid=d{}\n",
                i / 250,
                i % 250 + 1,
                i % 5,
                i % 7 + 1,
                i % 7 + 1,
                i % 3,
            )
        })
        .collect();
    let d = Dispatcher::new(DestinationList::parse_kamailio(&text).unwrap());
    // Some history, so that load, latency and bandwidth algorithms compare real values.
    for (i, x) in d
        .snapshot()
        .set(1)
        .unwrap()
        .destinations()
        .iter()
        .enumerate()
    {
        for _ in 0..(i % 4) {
            x.call_started();
            x.request_sent(now, 500 + i);
        }
        x.request_sent(now, 800);
        x.response_received(200, Duration::from_micros(1000 + 37 * i as u64), now);
    }
    d
}

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
                    let key = SelectKey {
                        call_id: &cid,
                        from_uri: b"sip:alice@atlanta.example.com",
                        to_uri: b"sip:bob@biloxi.example.com",
                        request_uri: b"sip:bob@192.0.2.4",
                        auth_username: Some(&cid),
                        custom: Some(&cid),
                        aor: Some(&cid[..1]),
                    };
                    black_box(d.select(1, a, &key, now, 2, &mut sel));
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
