//! One full call through the sans-IO proxy core, no I/O, one core: INVITE, 100, 180,
//! 200, ACK, BYE, 200 (7 messages, both directions), in stateful and stateless mode.
//! Only the time spent inside the proxy is measured (building the backend's responses is
//! the test harness's work and is excluded).
//!
//! `cargo bench -p sip-lb-benches --bench proxy`

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use sip_lb_benches::call::{calls, proxy};
use sip_proxy::Mode;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("proxy_call");
    for (name, mode) in [("stateful", Mode::Stateful), ("stateless", Mode::Stateless)] {
        let mut p = proxy(mode);
        let mut n = 0u64;
        let mut now = Instant::now();
        p.start(now);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| calls(&mut p, &mut n, &mut now, iters))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
