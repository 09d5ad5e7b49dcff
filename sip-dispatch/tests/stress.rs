//! Many threads select, report and fail over while another reloads the list: every
//! counter ends exact (each increment has its decrement, on every path).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use sip_dispatch::*;

const LIST_A: &str = "1 sip:10.0.0.1 0 0 maxload=50;duid=a\n1 sip:10.0.0.2 0 0 maxload=50;duid=a\n\
                      1 sip:10.0.0.3 0 0 weight=2\n1 sip:10.0.0.4 0 0 weight=3\n";
const LIST_B: &str = "1 sip:10.0.0.1 0 0 maxload=60;duid=a\n1 sip:10.0.0.2 0 0 maxload=60;duid=b\n\
                      1 sip:10.0.0.3 0 5 weight=1\n1 sip:10.0.0.4 0 0 weight=4\n";

#[test]
fn counters_stay_exact_with_failover_timeouts_and_reloads() {
    let d = Arc::new(Dispatcher::new(
        DestinationList::parse_kamailio(LIST_A).unwrap(),
    ));
    let every: Vec<Arc<Destination>> = d.snapshot().set(1).unwrap().destinations().to_vec();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let reloader = {
        let (d, stop) = (d.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Relaxed) {
                let text = if n.is_multiple_of(2) { LIST_B } else { LIST_A };
                let r = d.reload(DestinationList::parse_kamailio(text).unwrap());
                assert!(r.added.is_empty() && r.removed.is_empty());
                n += 1;
                std::thread::yield_now();
            }
            n
        })
    };
    let algorithms: Vec<Algorithm> = Algorithm::all().collect();
    let workers: Vec<_> = (0..6u32)
        .map(|t| {
            let (d, sent, algorithms) = (d.clone(), sent.clone(), algorithms.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let mut s = Selection::default();
                // Calls this worker holds open, ended later (some after a failover).
                let mut open: Vec<Arc<Destination>> = Vec::new();
                for i in 0..15_000u32 {
                    let now = t0 + Duration::from_micros(u64::from(i) * 50);
                    let cid = (t * 1_000_000 + i).to_le_bytes();
                    let key = SelectKey {
                        call_id: &cid,
                        aor: Some(&cid[..1]),
                        ..SelectKey::default()
                    };
                    let a = algorithms[(i as usize + t as usize) % algorithms.len()];
                    if i % 97 == 0 {
                        for x in d.snapshot().set(1).unwrap().destinations() {
                            x.set_state(State::Active);
                        }
                    }
                    if d.select(1, a, &key, now, 3, &mut s) != SelectOutcome::Selected {
                        continue;
                    }
                    // Walk the failover list: each attempt is a transaction.
                    for (k, x) in s.iter().enumerate() {
                        x.request_sent(now, 400);
                        sent.fetch_add(1, Relaxed);
                        match (i + k as u32) % 5 {
                            0 => {
                                x.transaction_timed_out(now);
                                continue;
                            }
                            1 => {
                                x.response_received(503, Duration::from_millis(2), now);
                                continue;
                            }
                            2 => {
                                x.transaction_cancelled();
                                break;
                            }
                            _ => {
                                x.response_received(200, Duration::from_millis(1), now);
                                x.call_started();
                                open.push(x.clone());
                                break;
                            }
                        }
                    }
                    if open.len() > 20 {
                        for x in open.drain(..10) {
                            x.call_ended();
                        }
                    }
                }
                for x in open {
                    x.call_ended();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Relaxed);
    let reloads = reloader.join().unwrap();
    assert!(reloads > 0);
    let now_list: Vec<Arc<Destination>> = d.snapshot().set(1).unwrap().destinations().to_vec();
    let mut requests = 0;
    for (x, y) in every.iter().zip(&now_list) {
        assert!(Arc::ptr_eq(x, y), "reloads kept every destination");
        let st = x.stats();
        assert_eq!(
            (st.active_calls, st.outstanding),
            (0, 0),
            "{}: {st:?}",
            x.uri()
        );
        requests += st.requests;
    }
    assert_eq!(
        requests,
        sent.load(Relaxed),
        "no request lost or counted twice"
    );
}
