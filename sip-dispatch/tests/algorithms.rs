//! Behaviour of every algorithm, health transitions, reload, and exact counters under
//! concurrency.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sip_dispatch::*;

fn list(n: usize) -> DestinationList {
    let text: String = (0..n)
        .map(|i| format!("1 sip:10.0.0.{}:5060\n", i + 1))
        .collect();
    DestinationList::parse_kamailio(&text).unwrap()
}

fn first(d: &Dispatcher, a: Algorithm, key: &SelectKey<'_>, now: Instant) -> String {
    let mut s = Selection::default();
    assert_eq!(d.select(1, a, key, now, 0, &mut s), SelectOutcome::Selected);
    s.first().unwrap().uri().to_string()
}

#[test]
fn every_algorithm_selects_from_a_healthy_set_by_number_and_name() {
    let d = Dispatcher::new(list(4));
    let now = Instant::now();
    let key = SelectKey {
        call_id: b"c",
        from_uri: b"sip:a@x",
        to_uri: b"sip:b@y",
        request_uri: b"sip:b@y",
        auth_username: Some(b"alice"),
        custom: Some(b"k"),
        aor: Some(b"sip:b@y"),
    };
    for a in Algorithm::all() {
        let mut s = Selection::default();
        assert_eq!(
            d.select(1, a, &key, now, 0, &mut s),
            SelectOutcome::Selected,
            "{a}"
        );
        assert_eq!(s.len(), 4, "{a}: the whole set is the failover list");
        let by_name: Algorithm = a.name().parse().unwrap();
        assert_eq!(by_name, a);
    }
    let mut s = Selection::default();
    assert_eq!(
        d.select(9, Algorithm::RoundRobin, &key, now, 0, &mut s),
        SelectOutcome::Unavailable
    );
}

#[test]
fn round_robin_is_exactly_even_and_skips_unusable() {
    let d = Dispatcher::new(list(4));
    let now = Instant::now();
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..4000 {
        *counts
            .entry(first(&d, Algorithm::RoundRobin, &SelectKey::default(), now))
            .or_default() += 1;
    }
    assert!(counts.values().all(|&c| c == 1000), "{counts:?}");
    let snap = d.snapshot();
    snap.set(1).unwrap().destinations()[2].set_state(State::Inactive);
    for _ in 0..300 {
        assert_ne!(
            first(&d, Algorithm::RoundRobin, &SelectKey::default(), now),
            "sip:10.0.0.3:5060"
        );
    }
}

#[test]
fn weight_is_exactly_proportional_per_cycle() {
    let d = Dispatcher::new(
        DestinationList::parse_kamailio(
            "1 sip:10.0.0.1 0 0 weight=1\n1 sip:10.0.0.2 0 0 weight=2\n1 sip:10.0.0.3 0 0 weight=3\n1 sip:10.0.0.4 0 0 weight=4\n",
        )
        .unwrap(),
    );
    let now = Instant::now();
    for _cycle in 0..5 {
        let mut counts: HashMap<String, u32> = HashMap::new();
        for _ in 0..10 {
            *counts
                .entry(first(&d, Algorithm::Weight, &SelectKey::default(), now))
                .or_default() += 1;
        }
        assert_eq!(counts["sip:10.0.0.1"], 1);
        assert_eq!(counts["sip:10.0.0.2"], 2);
        assert_eq!(counts["sip:10.0.0.3"], 3);
        assert_eq!(counts["sip:10.0.0.4"], 4);
    }
}

#[test]
fn hash_and_random_spread_within_bounds() {
    let d = Dispatcher::new(list(4));
    let now = Instant::now();
    for a in [Algorithm::CallIdHash, Algorithm::Random] {
        let mut counts: HashMap<String, u32> = HashMap::new();
        for i in 0..40_000 {
            let cid = format!("call-{i}@host");
            let key = SelectKey {
                call_id: cid.as_bytes(),
                ..SelectKey::default()
            };
            *counts.entry(first(&d, a, &key, now)).or_default() += 1;
        }
        assert_eq!(counts.len(), 4);
        for (u, c) in &counts {
            assert!((9_000..11_000).contains(c), "{a}: {u} got {c}");
        }
    }
}

#[test]
fn hash_is_stable_across_instances_and_minimal_on_removal() {
    let now = Instant::now();
    let a = Dispatcher::new(list(5));
    let b = Dispatcher::new(list(5));
    let keys: Vec<String> = (0..5000).map(|i| format!("k{i}")).collect();
    let before: Vec<String> = keys
        .iter()
        .map(|k| {
            let key = SelectKey {
                call_id: k.as_bytes(),
                ..SelectKey::default()
            };
            let x = first(&a, Algorithm::CallIdHash, &key, now);
            assert_eq!(
                x,
                first(&b, Algorithm::CallIdHash, &key, now),
                "same on another instance"
            );
            x
        })
        .collect();
    // Losing one destination moves exactly the keys that were on it.
    a.snapshot().set(1).unwrap().destinations()[1].set_state(State::Inactive);
    let lost = "sip:10.0.0.2:5060";
    let mut moved = 0;
    for (k, old) in keys.iter().zip(&before) {
        let key = SelectKey {
            call_id: k.as_bytes(),
            ..SelectKey::default()
        };
        let now_on = first(&a, Algorithm::CallIdHash, &key, now);
        if old == lost {
            assert_ne!(now_on, lost);
            moved += 1;
        } else {
            assert_eq!(
                &now_on, old,
                "key {k} moved although its destination is alive"
            );
        }
    }
    assert!(moved > 500, "{moved}");
}

#[test]
fn priority_latency_and_call_load_order() {
    let d = Dispatcher::new(
        DestinationList::parse_kamailio(
            "1 sip:10.0.0.1 0 1 maxload=2\n1 sip:10.0.0.2 0 9 maxload=2\n1 sip:10.0.0.3 0 5 maxload=2\n",
        )
        .unwrap(),
    );
    let now = Instant::now();
    let mut s = Selection::default();
    d.select(
        1,
        Algorithm::Priority,
        &SelectKey::default(),
        now,
        0,
        &mut s,
    );
    let order: Vec<&str> = s.iter().map(|x| x.uri()).collect();
    assert_eq!(order, vec!["sip:10.0.0.2", "sip:10.0.0.3", "sip:10.0.0.1"]);

    let ds = d.snapshot();
    let ds = ds.set(1).unwrap().destinations();
    ds[0].call_started();
    ds[1].call_started();
    ds[1].call_started();
    // Fewest calls first; the destination at maxload is left out.
    d.select(
        1,
        Algorithm::CallLoad,
        &SelectKey::default(),
        now,
        0,
        &mut s,
    );
    let order: Vec<&str> = s.iter().map(|x| x.uri()).collect();
    assert_eq!(order, vec!["sip:10.0.0.3", "sip:10.0.0.1"]);
    // Autonomous queue: when every destination is full, the answer is "queue".
    ds[0].call_started();
    ds[2].call_started();
    ds[2].call_started();
    assert_eq!(
        d.select(
            1,
            Algorithm::AutonomousQueue,
            &SelectKey::default(),
            now,
            0,
            &mut s
        ),
        SelectOutcome::Queue
    );
    ds[2].call_ended();
    assert_eq!(
        d.select(
            1,
            Algorithm::AutonomousQueue,
            &SelectKey::default(),
            now,
            0,
            &mut s
        ),
        SelectOutcome::Selected
    );
    assert_eq!(s.first().unwrap().uri(), "sip:10.0.0.3");

    // Latency: the fastest first.
    ds[0].request_sent(now, 100);
    ds[0].response_received(200, Duration::from_millis(50), now);
    ds[1].request_sent(now, 100);
    ds[1].response_received(200, Duration::from_millis(5), now);
    ds[2].request_sent(now, 100);
    ds[2].response_received(200, Duration::from_millis(20), now);
    d.select(1, Algorithm::Latency, &SelectKey::default(), now, 0, &mut s);
    let order: Vec<&str> = s.iter().map(|x| x.uri()).collect();
    assert_eq!(order, vec!["sip:10.0.0.2", "sip:10.0.0.3", "sip:10.0.0.1"]);
}

#[test]
fn sticky_keeps_affinity_and_503_retry_after_takes_a_destination_out() {
    let d = Dispatcher::new(list(4));
    let now = Instant::now();
    let key = SelectKey {
        aor: Some(b"sip:alice@example.com"),
        call_id: b"x1",
        ..SelectKey::default()
    };
    let a = first(&d, Algorithm::Sticky, &key, now);
    let key2 = SelectKey {
        aor: Some(b"sip:alice@example.com"),
        call_id: b"x2",
        ..SelectKey::default()
    };
    assert_eq!(first(&d, Algorithm::Sticky, &key2, now), a);
    let dest = d.find(1, &a).unwrap();
    dest.mark_down_until(now + Duration::from_secs(30));
    assert!(!dest.is_usable(now + Duration::from_secs(1)));
    assert_ne!(
        first(&d, Algorithm::Sticky, &key2, now + Duration::from_secs(1)),
        a
    );
    assert!(dest.is_usable(now + Duration::from_secs(31)));
}

#[test]
fn health_thresholds_and_admin_state() {
    let d = Dispatcher::new(list(1));
    let x = d.snapshot().set(1).unwrap().destinations()[0].clone();
    let cfg = HealthConfig {
        inactive_threshold: 3,
        active_threshold: 2,
    };
    let now = Instant::now();
    assert_eq!(
        x.probe_result(false, None, now, &cfg).map(|c| c.to),
        Some(State::Trying)
    );
    assert_eq!(x.probe_result(false, None, now, &cfg), None);
    assert_eq!(
        x.probe_result(false, None, now, &cfg).map(|c| c.to),
        Some(State::Inactive)
    );
    assert!(!x.is_usable(now));
    assert_eq!(
        x.probe_result(true, Some(Duration::from_millis(3)), now, &cfg),
        None
    );
    assert_eq!(
        x.probe_result(true, None, now, &cfg).map(|c| c.to),
        Some(State::Active)
    );
    x.set_state(State::Disabled);
    assert_eq!(x.probe_result(true, None, now, &cfg), None);
    assert_eq!(x.state(), State::Disabled);
    let mut probe = Vec::new();
    d.probe_candidates(ProbeMode::All, now, &mut probe);
    assert!(probe.is_empty(), "disabled destinations are not probed");
}

#[test]
fn reload_keeps_state_of_unchanged_destinations() {
    let d = Dispatcher::new(list(3));
    let keep = d.find(1, "sip:10.0.0.2:5060").unwrap();
    keep.call_started();
    keep.set_state(State::Inactive);
    let text = "1 sip:10.0.0.2:5060\n1 sip:10.0.0.3:5060 0 0 weight=5\n1 sip:10.0.0.9:5060\n";
    let r = d.reload(DestinationList::parse_kamailio(text).unwrap());
    assert_eq!(r.added, vec![(1, "sip:10.0.0.9:5060".to_string())]);
    assert_eq!(r.removed, vec![(1, "sip:10.0.0.1:5060".to_string())]);
    assert_eq!(r.changed, vec![(1, "sip:10.0.0.3:5060".to_string())]);
    assert_eq!(r.kept, 1);
    let after = d.find(1, "sip:10.0.0.2:5060").unwrap();
    assert!(Arc::ptr_eq(&keep, &after));
    assert_eq!(after.stats().active_calls, 1);
    assert_eq!(after.state(), State::Inactive);
    assert_eq!(d.find(1, "sip:10.0.0.3:5060").unwrap().weight(), 5);
}

#[test]
fn a_reused_selection_follows_reloads_and_other_dispatchers() {
    let parse = |t: &str| DestinationList::parse_kamailio(t).unwrap();
    let (a, b) = (
        Dispatcher::new(parse("1 sip:a\n")),
        Dispatcher::new(parse("1 sip:b\n")),
    );
    let now = Instant::now();
    let key = SelectKey {
        call_id: b"k",
        ..SelectKey::default()
    };
    let mut sel = Selection::default();
    let uris = |s: &Selection| s.iter().map(|d| d.uri().to_owned()).collect::<Vec<_>>();
    for (d, want) in [(&a, "sip:a"), (&b, "sip:b"), (&a, "sip:a")] {
        assert_eq!(
            d.select(1, Algorithm::CallIdHash, &key, now, 0, &mut sel),
            SelectOutcome::Selected
        );
        assert_eq!(uris(&sel), [want]);
    }
    // Without a reload the selection keeps the snapshot it holds.
    let held = sel.snapshot().unwrap().clone();
    a.select(1, Algorithm::RoundRobin, &key, now, 0, &mut sel);
    assert!(Arc::ptr_eq(sel.snapshot().unwrap(), &held));
    // A reload: what was selected stays readable, the next selection sees the new list.
    a.reload(parse("1 sip:c\n2 sip:d\n"));
    assert_eq!(uris(&sel), ["sip:a"]);
    a.select(1, Algorithm::CallIdHash, &key, now, 0, &mut sel);
    assert_eq!(uris(&sel), ["sip:c"]);
    assert!(!Arc::ptr_eq(sel.snapshot().unwrap(), &held));
    a.select(2, Algorithm::CallIdHash, &key, now, 0, &mut sel);
    assert_eq!(
        (uris(&sel), sel.first().unwrap().uri()),
        (vec!["sip:d".to_owned()], "sip:d")
    );
    assert_eq!(
        a.select(3, Algorithm::CallIdHash, &key, now, 0, &mut sel),
        SelectOutcome::Unavailable
    );
    assert!(sel.is_empty() && sel.first().is_none());
    sel.release();
    assert!(sel.snapshot().is_none());
}

#[test]
fn counters_stay_exact_under_concurrency() {
    let d = Arc::new(Dispatcher::new(list(4)));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let d = d.clone();
            std::thread::spawn(move || {
                let mut s = Selection::default();
                let now = Instant::now();
                for i in 0..20_000u32 {
                    let cid = (t * 1_000_000 + i).to_le_bytes();
                    let key = SelectKey {
                        call_id: &cid,
                        ..SelectKey::default()
                    };
                    let algo = if i % 2 == 0 {
                        Algorithm::CallLoad
                    } else {
                        Algorithm::CallIdHash
                    };
                    if i % 50 == 0 {
                        // Timeouts make destinations inactive (passive health); bring
                        // them back now and then, as probes would.
                        for x in d.snapshot().set(1).unwrap().destinations() {
                            x.set_state(State::Active);
                        }
                    }
                    d.select(1, algo, &key, now, 2, &mut s);
                    let Some(x) = s.first().cloned() else {
                        continue;
                    };
                    x.request_sent(now, 500);
                    match i % 3 {
                        0 => {
                            x.response_received(200, Duration::from_millis(1), now);
                            x.call_started();
                            x.call_ended();
                        }
                        1 => {
                            x.transaction_timed_out(now);
                            // Failover to the alternate.
                            if let Some(y) = s.get(1) {
                                y.request_sent(now, 500);
                                y.transaction_cancelled();
                            }
                        }
                        _ => x.transaction_cancelled(),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for x in d.snapshot().set(1).unwrap().destinations() {
        let s = x.stats();
        assert_eq!((s.active_calls, s.outstanding), (0, 0), "{}", x.uri());
    }
}

proptest! {
    #[test]
    fn failover_lists_never_repeat_nor_hold_unusable(
        states in prop::collection::vec(0u8..4, 1..12),
        algo in 0usize..24,
        key in any::<u64>(),
        limit in 0usize..6,
    ) {
        let d = Dispatcher::new(list(states.len()));
        let now = Instant::now();
        for (x, st) in d.snapshot().set(1).unwrap().destinations().iter().zip(&states) {
            x.set_state(match st { 0 => State::Active, 1 => State::Trying, 2 => State::Inactive, _ => State::Disabled });
        }
        let a = Algorithm::all().nth(algo % Algorithm::all().count()).unwrap();
        let kb = key.to_le_bytes();
        let k = SelectKey { call_id: &kb, custom: Some(&kb), auth_username: Some(&kb), aor: Some(&kb), ..SelectKey::default() };
        let mut s = Selection::default();
        let out = d.select(1, a, &k, now, limit, &mut s);
        let usable = states.iter().filter(|&&x| x < 2).count();
        if usable == 0 {
            prop_assert_ne!(out, SelectOutcome::Selected);
        }
        let uris: Vec<&str> = s.iter().map(|x| x.uri()).collect();
        let mut dedup = uris.clone();
        dedup.sort();
        dedup.dedup();
        prop_assert_eq!(dedup.len(), uris.len());
        prop_assert!(s.iter().all(|x| x.is_usable(now)));
        if limit > 0 { prop_assert!(s.len() <= limit); }
    }

    #[test]
    fn rendezvous_moves_only_the_removed_destinations_keys(n in 2usize..10, gone in 0usize..10, keys in prop::collection::vec(any::<u64>(), 1..200), hash_slots in any::<bool>()) {
        let gone = gone % n;
        let d = Dispatcher::with_options(list(n), DispatcherOptions { hash_slots, ..DispatcherOptions::default() });
        let now = Instant::now();
        let before: Vec<String> = keys.iter().map(|k| { let b = k.to_le_bytes(); first(&d, Algorithm::CallIdHash, &SelectKey { call_id: &b, ..SelectKey::default() }, now) }).collect();
        let text: String = (0..n).filter(|&i| i != gone).map(|i| format!("1 sip:10.0.0.{}:5060\n", i + 1)).collect();
        d.reload(DestinationList::parse_kamailio(&text).unwrap());
        let gone_uri = format!("sip:10.0.0.{}:5060", gone + 1);
        for (k, old) in keys.iter().zip(&before) {
            let b = k.to_le_bytes();
            let now_on = first(&d, Algorithm::CallIdHash, &SelectKey { call_id: &b, ..SelectKey::default() }, now);
            if *old != gone_uri { prop_assert_eq!(&now_on, old); }
        }
    }
}

/// `Algorithm::key_fields`: leaving empty what an algorithm does not read changes no
/// selection (two identical dispatchers, one given every field, one only those; the
/// algorithms that draw random numbers read no key field at all).
#[test]
fn an_algorithm_reads_only_the_key_fields_it_declares() {
    let now = Instant::now();
    let random = [Algorithm::Random, Algorithm::RelativeWeight, Algorithm::Srv];
    for a in random {
        assert_eq!(a.key_fields(), KeyFields::default(), "{a}");
    }
    for a in Algorithm::all().filter(|a| !random.contains(a)) {
        let (full, trimmed) = (Dispatcher::new(list(8)), Dispatcher::new(list(8)));
        let (mut s1, mut s2) = (Selection::default(), Selection::default());
        let need = a.key_fields();
        for i in 0..200u32 {
            let cid = i.to_le_bytes();
            let from = format!("sip:user{}@example.com", i % 13);
            let to = format!("sip:callee{}@example.com", i % 7);
            let user = format!("u{}", i % 5);
            let key = SelectKey {
                call_id: &cid,
                from_uri: from.as_bytes(),
                to_uri: to.as_bytes(),
                request_uri: b"sip:service@10.0.0.9",
                auth_username: Some(user.as_bytes()),
                custom: Some(&cid[..2]),
                aor: Some(to.as_bytes()),
            };
            let only = SelectKey {
                from_uri: if need.from_uri { key.from_uri } else { b"" },
                to_uri: if need.to_uri { key.to_uri } else { b"" },
                aor: key.aor.filter(|_| need.to_uri),
                auth_username: key.auth_username.filter(|_| need.auth_username),
                ..key
            };
            let r1 = full.select(1, a, &key, now, 3, &mut s1);
            let r2 = trimmed.select(1, a, &only, now, 3, &mut s2);
            let uris = |s: &Selection| s.iter().map(|d| d.uri().to_owned()).collect::<Vec<_>>();
            assert_eq!((r1, uris(&s1)), (r2, uris(&s2)), "{a} at {i}");
        }
    }
}
