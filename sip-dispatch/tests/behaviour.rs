//! Table tests of every algorithm by number and name, and the behaviour of each one,
//! of the backup destination, passive and active health, probing modes and overload
//! control; property tests of the distributions and of reload.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sip_dispatch::*;

fn dispatcher(text: &str) -> Dispatcher {
    Dispatcher::new(DestinationList::parse_kamailio(text).unwrap())
}

fn uris(s: &Selection) -> Vec<&str> {
    s.iter().map(|d| d.uri()).collect()
}

fn pick(d: &Dispatcher, set: u32, a: Algorithm, key: &SelectKey<'_>, now: Instant) -> String {
    let mut s = Selection::default();
    assert_eq!(
        d.select(set, a, key, now, 0, &mut s),
        SelectOutcome::Selected,
        "{a}"
    );
    s.first().unwrap().uri().to_string()
}

fn count(
    d: &Dispatcher,
    a: Algorithm,
    n: usize,
    now: Instant,
    mut each: impl FnMut(&Arc<Destination>),
) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    let mut s = Selection::default();
    for i in 0..n {
        let cid = format!("call-{i}");
        let key = SelectKey {
            call_id: cid.as_bytes(),
            ..SelectKey::default()
        };
        assert_eq!(
            d.select(1, a, &key, now, 0, &mut s),
            SelectOutcome::Selected
        );
        let f = s.first().unwrap().clone();
        each(&f);
        *c.entry(f.uri().to_string()).or_default() += 1;
    }
    c
}

#[test]
fn every_number_and_name_parses_to_its_algorithm() {
    let table: &[(&str, Algorithm)] = &[
        ("0", Algorithm::CallIdHash),
        ("call-id-hash", Algorithm::CallIdHash),
        ("1", Algorithm::FromUriHash),
        ("from-uri-hash", Algorithm::FromUriHash),
        ("2", Algorithm::ToUriHash),
        ("to-uri-hash", Algorithm::ToUriHash),
        ("3", Algorithm::RequestUriHash),
        ("request-uri-hash", Algorithm::RequestUriHash),
        ("4", Algorithm::RoundRobin),
        ("round-robin", Algorithm::RoundRobin),
        ("5", Algorithm::AuthUsernameHash),
        ("auth-username-hash", Algorithm::AuthUsernameHash),
        ("6", Algorithm::Random),
        ("random", Algorithm::Random),
        ("7", Algorithm::KeyHash),
        ("key-hash", Algorithm::KeyHash),
        ("8", Algorithm::Priority),
        ("priority", Algorithm::Priority),
        ("9", Algorithm::Weight),
        ("weight", Algorithm::Weight),
        ("10", Algorithm::CallLoad),
        ("call-load", Algorithm::CallLoad),
        ("11", Algorithm::RelativeWeight),
        ("relative-weight", Algorithm::RelativeWeight),
        ("12", Algorithm::Parallel),
        ("parallel", Algorithm::Parallel),
        ("13", Algorithm::Latency),
        ("latency", Algorithm::Latency),
        ("least-response-time", Algorithm::Latency),
        ("14", Algorithm::PriorityRoundRobin),
        ("priority-round-robin", Algorithm::PriorityRoundRobin),
        ("15", Algorithm::Srv),
        ("srv", Algorithm::Srv),
        ("64", Algorithm::OverloadRoundRobin),
        ("overload-round-robin", Algorithm::OverloadRoundRobin),
        ("least-connections", Algorithm::LeastConnections),
        (
            "weighted-least-connections",
            Algorithm::WeightedLeastConnections,
        ),
        ("observed", Algorithm::Observed),
        ("predictive", Algorithm::Predictive),
        ("even-task-queue", Algorithm::EvenTaskQueue),
        ("autonomous-queue", Algorithm::AutonomousQueue),
        ("least-bandwidth", Algorithm::LeastBandwidth),
        ("sticky", Algorithm::Sticky),
        (
            " Weighted_Least_Connections ",
            Algorithm::WeightedLeastConnections,
        ),
    ];
    for &(text, a) in table {
        assert_eq!(text.parse::<Algorithm>(), Ok(a), "{text}");
    }
    assert_eq!(Algorithm::all().count(), 25);
    for a in Algorithm::all() {
        assert!(
            table.iter().any(|&(_, b)| a == b),
            "{a} missing from the table"
        );
        assert_eq!(a.to_string(), a.name());
    }
    for bad in ["16", "65", "", "round robin", "fastest"] {
        let e = bad.parse::<Algorithm>().unwrap_err();
        assert!(e.to_string().contains("unknown algorithm"));
    }
}

#[test]
fn round_robin_and_auth_username_without_credentials() {
    let d = dispatcher("1 sip:10.0.0.1\n1 sip:10.0.0.2\n1 sip:10.0.0.3\n");
    let now = Instant::now();
    for a in [Algorithm::RoundRobin, Algorithm::AuthUsernameHash] {
        let order: Vec<String> = (0..6)
            .map(|_| pick(&d, 1, a, &SelectKey::default(), now))
            .collect();
        assert_eq!(order[..3], order[3..], "{a}: a strict rotation");
        let mut u = order[..3].to_vec();
        u.sort();
        u.dedup();
        assert_eq!(u.len(), 3, "{a}");
    }
    // With a username, algorithm 5 hashes it: the same user, the same destination.
    let key = SelectKey {
        auth_username: Some(b"alice"),
        ..SelectKey::default()
    };
    let first = pick(&d, 1, Algorithm::AuthUsernameHash, &key, now);
    for _ in 0..10 {
        assert_eq!(pick(&d, 1, Algorithm::AuthUsernameHash, &key, now), first);
    }
}

#[test]
fn uri_hashes_use_kamailio_key_user_host_port() {
    let d = dispatcher("1 sip:10.0.0.1\n1 sip:10.0.0.2\n1 sip:10.0.0.3\n1 sip:10.0.0.4\n");
    let now = Instant::now();
    let mut differ = 0;
    for i in 0..200 {
        let plain = format!("sip:user{i}@example.com");
        let variants = [
            format!("<sip:user{i}@example.com:5060;transport=tcp>"),
            format!("sip:user{i}@example.com;lr"),
        ];
        for a in [
            Algorithm::FromUriHash,
            Algorithm::ToUriHash,
            Algorithm::RequestUriHash,
        ] {
            let k = |u: &str| {
                let b = u.as_bytes();
                pick(
                    &d,
                    1,
                    a,
                    &SelectKey {
                        from_uri: b,
                        to_uri: b,
                        request_uri: b,
                        ..SelectKey::default()
                    },
                    now,
                )
            };
            let base = k(&plain);
            for v in &variants {
                assert_eq!(k(v), base, "{a}: {v}");
            }
            if k(&format!("sip:user{i}@example.com:5070")) != base {
                differ += 1;
            }
        }
    }
    assert!(
        differ > 300,
        "a non-default port is part of the key ({differ})"
    );
    // hash_user_only: only the user counts.
    let d = Dispatcher::with_options(
        DestinationList::parse_kamailio("1 sip:10.0.0.1\n1 sip:10.0.0.2\n1 sip:10.0.0.3\n")
            .unwrap(),
        DispatcherOptions {
            hash_user_only: true,
            ..DispatcherOptions::default()
        },
    );
    for i in 0..100 {
        let a = format!("sip:u{i}@a.example.com");
        let b = format!("sip:u{i}@b.example.org:5080");
        let ka = SelectKey {
            from_uri: a.as_bytes(),
            ..SelectKey::default()
        };
        let kb = SelectKey {
            from_uri: b.as_bytes(),
            ..SelectKey::default()
        };
        assert_eq!(
            pick(&d, 1, Algorithm::FromUriHash, &ka, now),
            pick(&d, 1, Algorithm::FromUriHash, &kb, now)
        );
    }
}

#[test]
fn key_hash_uses_the_custom_key() {
    let d = dispatcher("1 sip:10.0.0.1\n1 sip:10.0.0.2\n1 sip:10.0.0.3\n");
    let now = Instant::now();
    let mut seen = std::collections::HashSet::new();
    for i in 0..50 {
        let src = format!("192.0.2.{i}");
        let a = SelectKey {
            custom: Some(src.as_bytes()),
            call_id: b"one",
            ..SelectKey::default()
        };
        let b = SelectKey {
            custom: Some(src.as_bytes()),
            call_id: b"two",
            ..SelectKey::default()
        };
        let x = pick(&d, 1, Algorithm::KeyHash, &a, now);
        assert_eq!(x, pick(&d, 1, Algorithm::KeyHash, &b, now));
        seen.insert(x);
    }
    assert_eq!(seen.len(), 3);
}

#[test]
fn priority_and_algorithm_14() {
    let d = dispatcher(
        "1 sip:10.0.0.1 0 5\n1 sip:10.0.0.2 0 9\n1 sip:10.0.0.3 0 5\n\
         2 sip:10.0.1.1 0 7\n2 sip:10.0.1.2 0 7\n2 sip:10.0.1.3 0 7\n\
         3 sip:10.0.2.1 0 0\n3 sip:10.0.2.2 0 0\n",
    );
    let now = Instant::now();
    let mut s = Selection::default();
    for a in [Algorithm::Priority, Algorithm::PriorityRoundRobin] {
        d.select(1, a, &SelectKey::default(), now, 0, &mut s);
        assert_eq!(
            uris(&s),
            ["sip:10.0.0.2", "sip:10.0.0.1", "sip:10.0.0.3"],
            "{a}"
        );
    }
    // 14 with one priority above 0: round robin.
    let firsts: Vec<String> = (0..3)
        .map(|_| {
            pick(
                &d,
                2,
                Algorithm::PriorityRoundRobin,
                &SelectKey::default(),
                now,
            )
        })
        .collect();
    assert_eq!(firsts, ["sip:10.0.1.1", "sip:10.0.1.2", "sip:10.0.1.3"]);
    // 14 with every priority 0: serial.
    for _ in 0..3 {
        assert_eq!(
            pick(
                &d,
                3,
                Algorithm::PriorityRoundRobin,
                &SelectKey::default(),
                now
            ),
            "sip:10.0.2.1"
        );
    }
    // Serial failover skips the unusable.
    d.find(1, "sip:10.0.0.2")
        .unwrap()
        .set_state(State::Inactive);
    d.select(
        1,
        Algorithm::Priority,
        &SelectKey::default(),
        now,
        1,
        &mut s,
    );
    assert_eq!(uris(&s), ["sip:10.0.0.1"]);
}

#[test]
fn srv_priority_then_weight() {
    let d = dispatcher(
        "1 sip:10.0.0.1 0 10 weight=70\n1 sip:10.0.0.2 0 10 weight=30\n\
         1 sip:10.0.0.3 0 20 weight=50\n1 sip:10.0.0.4 0 20 weight=50\n",
    );
    let now = Instant::now();
    let c = count(&d, Algorithm::Srv, 20_000, now, |_| {});
    assert!(!c.contains_key("sip:10.0.0.3") && !c.contains_key("sip:10.0.0.4"));
    let a = c["sip:10.0.0.1"];
    assert!((13_400..14_600).contains(&a), "70 % of 20 000: {a}");
    // The failover list: the rest of the best priority, then the next level.
    let mut s = Selection::default();
    d.select(1, Algorithm::Srv, &SelectKey::default(), now, 0, &mut s);
    assert_eq!(s.len(), 4);
    assert_eq!(s.get(2).unwrap().priority(), 20);
    for u in ["sip:10.0.0.1", "sip:10.0.0.2"] {
        d.find(1, u).unwrap().set_state(State::Inactive);
    }
    let c = count(&d, Algorithm::Srv, 20_000, now, |_| {});
    let a = c["sip:10.0.0.3"];
    assert!((9_400..10_600).contains(&a), "50 %: {a}");
}

#[test]
fn relative_weight_recomputes_on_availability() {
    // Kamailio's example: rweight 1/2/1 gives 25/50/25; without the third, 33/67.
    let d = dispatcher(
        "1 sip:10.0.0.1 0 0 rweight=1\n1 sip:10.0.0.2 0 0 rweight=2\n1 sip:10.0.0.3 0 0 rweight=1\n",
    );
    let now = Instant::now();
    let c = count(&d, Algorithm::RelativeWeight, 40_000, now, |_| {});
    let b = c["sip:10.0.0.2"];
    assert!((19_000..21_000).contains(&b), "{c:?}");
    d.find(1, "sip:10.0.0.3")
        .unwrap()
        .set_state(State::Inactive);
    let c = count(&d, Algorithm::RelativeWeight, 30_000, now, |_| {});
    assert!(!c.contains_key("sip:10.0.0.3"));
    let b = c["sip:10.0.0.2"];
    assert!((19_000..21_000).contains(&b), "{c:?}");
}

#[test]
fn relative_weight_congestion_control_lowers_the_congested() {
    let d = dispatcher("1 sip:10.0.0.1 0 0 rweight=50;cc=1\n1 sip:10.0.0.2 0 0 rweight=50;cc=1\n");
    let now = Instant::now();
    let slow = d.find(1, "sip:10.0.0.1").unwrap();
    // A long calm history, then a sudden rise of 45 ms: rweight 50 - 45 ms.
    for _ in 0..200 {
        slow.request_sent(now, 0);
        slow.response_received(200, Duration::from_millis(5), now);
    }
    for _ in 0..30 {
        slow.request_sent(now, 0);
        slow.response_received(200, Duration::from_millis(60), now);
    }
    let c = count(&d, Algorithm::RelativeWeight, 10_000, now, |_| {});
    assert!(
        c.get("sip:10.0.0.1").copied().unwrap_or(0) < 2_500,
        "the congested destination gets much less: {c:?}"
    );
}

#[test]
fn weighted_least_connections_observed_predictive_even_task_queue_bandwidth() {
    let text = "1 sip:10.0.0.1 0 0 weight=1\n1 sip:10.0.0.2 0 0 weight=3\n";
    let now = Instant::now();
    let d = dispatcher(text);
    let (a, b) = (
        d.find(1, "sip:10.0.0.1").unwrap(),
        d.find(1, "sip:10.0.0.2").unwrap(),
    );
    a.call_started();
    b.call_started();
    b.call_started();
    // 1/1 against 2/3.
    assert_eq!(
        pick(
            &d,
            1,
            Algorithm::WeightedLeastConnections,
            &SelectKey::default(),
            now
        ),
        "sip:10.0.0.2"
    );
    assert_eq!(
        pick(
            &d,
            1,
            Algorithm::LeastConnections,
            &SelectKey::default(),
            now
        ),
        "sip:10.0.0.1"
    );

    // Observed: equal calls, but a recent history of failures weighs.
    let d = dispatcher(text);
    let (a, b) = (
        d.find(1, "sip:10.0.0.1").unwrap(),
        d.find(1, "sip:10.0.0.2").unwrap(),
    );
    for _ in 0..2 {
        a.request_sent(now, 0);
        a.transaction_timed_out(now);
    }
    a.set_state(State::Active);
    for _ in 0..5 {
        assert_eq!(
            pick(&d, 1, Algorithm::Observed, &SelectKey::default(), now),
            "sip:10.0.0.2"
        );
    }
    // Predictive: with the same history, the one whose latency improves wins.
    let d = dispatcher(text);
    let (a, b2) = (
        d.find(1, "sip:10.0.0.1").unwrap(),
        d.find(1, "sip:10.0.0.2").unwrap(),
    );
    for (x, first, then) in [(&a, 10, 30), (&b2, 30, 10)] {
        for ms in [first; 50].into_iter().chain([then; 5]) {
            x.request_sent(now, 0);
            x.response_received(200, Duration::from_millis(ms), now);
        }
    }
    assert_eq!(
        pick(&d, 1, Algorithm::Predictive, &SelectKey::default(), now),
        "sip:10.0.0.2"
    );
    drop(b);

    // Even task queue: fewest outstanding transactions.
    let d = dispatcher(text);
    d.find(1, "sip:10.0.0.2").unwrap().request_sent(now, 10);
    assert_eq!(
        pick(&d, 1, Algorithm::EvenTaskQueue, &SelectKey::default(), now),
        "sip:10.0.0.1"
    );
    // Least bandwidth: fewest bytes in the last 10 s; old bytes leave the window.
    let d = dispatcher(text);
    let (a, b) = (
        d.find(1, "sip:10.0.0.1").unwrap(),
        d.find(1, "sip:10.0.0.2").unwrap(),
    );
    a.request_sent(now, 5_000);
    b.request_sent(now + Duration::from_secs(5), 1_000);
    let at = now + Duration::from_secs(6);
    assert_eq!(
        pick(&d, 1, Algorithm::LeastBandwidth, &SelectKey::default(), at),
        "sip:10.0.0.2"
    );
    let later = now + Duration::from_secs(12);
    assert_eq!(a.bytes_in_window(later), 0);
    assert_eq!(b.bytes_in_window(later), 1_000);
    assert_eq!(
        pick(
            &d,
            1,
            Algorithm::LeastBandwidth,
            &SelectKey::default(),
            later
        ),
        "sip:10.0.0.1"
    );
}

#[test]
fn call_load_shares_load_by_duid_and_spreads_ties() {
    let d = dispatcher(
        "1 sip:10.0.0.1 0 0 duid=pbx\n1 sip:10.0.0.2 0 0 duid=pbx\n1 sip:10.0.0.3 0 0 maxload=1\n",
    );
    let now = Instant::now();
    d.find(1, "sip:10.0.0.1").unwrap().call_started();
    // 10.0.0.2 shares the call of its duid: 10.0.0.3 (no calls) is first.
    assert_eq!(
        pick(&d, 1, Algorithm::CallLoad, &SelectKey::default(), now),
        "sip:10.0.0.3"
    );
    d.find(1, "sip:10.0.0.3").unwrap().call_started();
    let mut s = Selection::default();
    d.select(
        1,
        Algorithm::CallLoad,
        &SelectKey::default(),
        now,
        0,
        &mut s,
    );
    assert_eq!(s.len(), 2, "10.0.0.3 is at maxload: {:?}", uris(&s));
    // Least connections ignores maxload.
    d.select(
        1,
        Algorithm::LeastConnections,
        &SelectKey::default(),
        now,
        0,
        &mut s,
    );
    assert_eq!(s.len(), 3);
    // Equal loads share the calls evenly.
    let d = dispatcher("1 sip:10.0.0.1\n1 sip:10.0.0.2\n1 sip:10.0.0.3\n");
    let c = count(&d, Algorithm::CallLoad, 300, now, |_| {});
    assert!(c.values().all(|&n| n == 100), "{c:?}");
}

#[test]
fn autonomous_queue_with_wait_queue() {
    let d = dispatcher("1 sip:10.0.0.1 0 0 maxload=1\n1 sip:10.0.0.2 0 0 maxload=1\n");
    let now = Instant::now();
    let mut s = Selection::default();
    let mut q = WaitQueue::new(4);
    let mut started = Vec::new();
    for call in 0..4u32 {
        match d.select(
            1,
            Algorithm::AutonomousQueue,
            &SelectKey::default(),
            now,
            0,
            &mut s,
        ) {
            SelectOutcome::Selected => {
                let x = s.first().unwrap().clone();
                x.call_started();
                started.push(x);
            }
            SelectOutcome::Queue => q.push(call, now + Duration::from_secs(5)).unwrap(),
            SelectOutcome::Unavailable => panic!("unavailable"),
        }
    }
    assert_eq!((started.len(), q.len()), (2, 2));
    // A slot frees: the oldest waiting call goes to that destination.
    started[1].call_ended();
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
    assert_eq!(s.first().unwrap().uri(), started[1].uri());
    assert_eq!(q.pop_ready(now), Some(2));
    let mut expired = Vec::new();
    q.expire(now + Duration::from_secs(6), &mut expired);
    assert_eq!(expired, vec![3]);
    // Without maxload nothing is ever full.
    let d = dispatcher("1 sip:10.0.0.1\n");
    d.find(1, "sip:10.0.0.1").unwrap().call_started();
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
}

#[test]
fn backup_destination_with_use_default() {
    let list = DestinationList::parse_kamailio(
        "1 sip:10.0.0.1\n1 sip:10.0.0.2\n1 sip:10.0.0.99\n2 sip:10.0.1.1\n",
    )
    .unwrap();
    let d = Dispatcher::with_options(
        list,
        DispatcherOptions {
            use_default: true,
            ..DispatcherOptions::default()
        },
    );
    let now = Instant::now();
    let snap = d.snapshot();
    assert_eq!(
        snap.set(1).unwrap().backup().unwrap().uri(),
        "sip:10.0.0.99"
    );
    assert!(
        snap.set(2).unwrap().backup().is_none(),
        "a set of one has no backup"
    );
    let mut s = Selection::default();
    for a in Algorithm::all() {
        let key = SelectKey {
            call_id: b"x",
            ..SelectKey::default()
        };
        assert_eq!(
            d.select(1, a, &key, now, 0, &mut s),
            SelectOutcome::Selected
        );
        assert_eq!(s.len(), 3, "{a}");
        assert_eq!(
            s.get(2).unwrap().uri(),
            "sip:10.0.0.99",
            "{a}: the backup is last"
        );
    }
    for u in ["sip:10.0.0.1", "sip:10.0.0.2"] {
        d.find(1, u).unwrap().set_state(State::Inactive);
    }
    d.select(
        1,
        Algorithm::RoundRobin,
        &SelectKey::default(),
        now,
        0,
        &mut s,
    );
    assert_eq!(uris(&s), ["sip:10.0.0.99"]);
    d.find(1, "sip:10.0.0.99")
        .unwrap()
        .set_state(State::Disabled);
    assert_eq!(
        d.select(
            1,
            Algorithm::RoundRobin,
            &SelectKey::default(),
            now,
            0,
            &mut s
        ),
        SelectOutcome::Unavailable
    );
    assert!(s.is_empty());
}

#[test]
fn overload_control_loss_and_rate() {
    let d = dispatcher("1 sip:10.0.0.1\n1 sip:10.0.0.2\n");
    let now = Instant::now();
    let a = d.find(1, "sip:10.0.0.1").unwrap();
    a.overload_advertised(
        OverloadControl::Loss {
            percent: 50,
            validity: Duration::from_secs(10),
        },
        now,
    );
    let c = count(&d, Algorithm::OverloadRoundRobin, 200, now, |_| {});
    // A's 100 turns: exactly half are withheld and go to B.
    assert_eq!(c["sip:10.0.0.1"], 50, "{c:?}");
    assert_eq!(c["sip:10.0.0.2"], 150, "{c:?}");
    // Withheld, not removed: still in the failover list, last.
    let mut s = Selection::default();
    d.select(
        1,
        Algorithm::OverloadRoundRobin,
        &SelectKey::default(),
        now,
        0,
        &mut s,
    );
    assert_eq!(s.len(), 2);
    // After oc-validity the overload is over.
    let later = now + Duration::from_secs(11);
    let c = count(&d, Algorithm::OverloadRoundRobin, 100, later, |_| {});
    assert_eq!(c["sip:10.0.0.1"], 50);

    // Rate: at most 3 requests per second to A.
    let d = dispatcher("1 sip:10.0.0.1\n1 sip:10.0.0.2\n");
    let a = d.find(1, "sip:10.0.0.1").unwrap();
    a.overload_advertised(
        OverloadControl::Rate {
            per_second: 3,
            validity: Duration::from_secs(60),
        },
        now,
    );
    let c = count(&d, Algorithm::OverloadRoundRobin, 40, now, |x| {
        x.request_sent(now, 100)
    });
    assert_eq!(c["sip:10.0.0.1"], 3, "{c:?}");
    let next_second = now + Duration::from_millis(1500);
    let c = count(&d, Algorithm::OverloadRoundRobin, 40, next_second, |x| {
        x.request_sent(next_second, 100)
    });
    assert_eq!(c["sip:10.0.0.1"], 3, "{c:?}");
    a.overload_advertised(OverloadControl::None, next_second);
    let c = count(&d, Algorithm::OverloadRoundRobin, 40, next_second, |_| {});
    assert_eq!(c["sip:10.0.0.1"], 20);
}

#[test]
fn passive_health_thresholds() {
    let now = Instant::now();
    let list = || DestinationList::parse_kamailio("1 sip:10.0.0.1\n1 sip:10.0.0.2\n").unwrap();
    let d = Dispatcher::with_options(
        list(),
        DispatcherOptions {
            passive: PassiveHealth {
                failure_threshold: 2,
                server_errors: true,
                success_recovers: true,
            },
            ..DispatcherOptions::default()
        },
    );
    let x = d.find(1, "sip:10.0.0.1").unwrap();
    x.request_sent(now, 1);
    assert_eq!(
        x.transaction_timed_out(now),
        Some(StateChange {
            from: State::Active,
            to: State::Trying
        })
    );
    assert!(x.is_probing(), "a failure sets the probing flag");
    x.request_sent(now, 1);
    assert_eq!(
        x.response_received(200, Duration::from_millis(1), now),
        Some(StateChange {
            from: State::Trying,
            to: State::Active
        })
    );
    x.request_sent(now, 1);
    x.response_received(500, Duration::from_millis(1), now);
    x.request_sent(now, 1);
    x.response_received(503, Duration::from_millis(1), now);
    assert_eq!(x.state(), State::Active, "503 resets, it is not a failure");
    x.request_sent(now, 1);
    x.response_received(408, Duration::from_millis(1), now);
    x.request_sent(now, 1);
    assert_eq!(
        x.response_received(502, Duration::from_millis(1), now)
            .map(|c| c.to),
        Some(State::Inactive)
    );
    assert!(!x.is_usable(now));
    assert_eq!(x.stats().outstanding, 0);

    // Server errors not counted; threshold 0 = traffic never changes the state.
    d.set_passive_health(PassiveHealth {
        failure_threshold: 0,
        server_errors: false,
        success_recovers: false,
    });
    let y = d.find(1, "sip:10.0.0.2").unwrap();
    for _ in 0..10 {
        y.request_sent(now, 1);
        y.transaction_timed_out(now);
        y.request_sent(now, 1);
        y.response_received(500, Duration::from_millis(1), now);
    }
    assert_eq!(y.state(), State::Active);
    assert_eq!(d.options().passive.failure_threshold, 0);
    // Disabled destinations never change by traffic.
    y.set_state(State::Disabled);
    d.set_passive_health(PassiveHealth::default());
    y.request_sent(now, 1);
    assert_eq!(y.transaction_timed_out(now), None);
    assert_eq!(y.state(), State::Disabled);
}

#[test]
fn retry_after_marks_down_for_that_time_without_a_clock() {
    // Instants far from "now": the crate never reads the clock.
    let t0 = Instant::now() + Duration::from_secs(100_000);
    let d = dispatcher("1 sip:10.0.0.1\n1 sip:10.0.0.2\n");
    let x = d.find(1, "sip:10.0.0.1").unwrap();
    x.mark_down_until(t0 + Duration::from_secs(30));
    x.mark_down_until(t0 + Duration::from_secs(10));
    for s in [0, 29] {
        let now = t0 + Duration::from_secs(s);
        assert!(!x.is_usable(now));
        assert_eq!(
            pick(&d, 1, Algorithm::CallIdHash, &SelectKey::default(), now),
            "sip:10.0.0.2"
        );
    }
    assert!(x.is_usable(t0 + Duration::from_secs(30)));
    assert_eq!(x.state(), State::Active, "not a state change");
    x.mark_down_until(t0 + Duration::from_secs(99));
    x.set_state(State::Active);
    assert!(x.is_usable(t0 + Duration::from_secs(31)), "admin clears it");
}

#[test]
fn probing_modes_as_kamailio() {
    let now = Instant::now();
    let d = dispatcher(
        "1 sip:10.0.0.1 8\n1 sip:10.0.0.2\n1 sip:10.0.0.3 1\n1 sip:10.0.0.4 32\n1 sip:10.0.0.5 4\n",
    );
    let cfg = HealthConfig {
        inactive_threshold: 2,
        active_threshold: 2,
    };
    let list = |mode| {
        let mut v = Vec::new();
        d.probe_candidates(mode, now, &mut v);
        v.iter().map(|x| x.uri().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        list(ProbeMode::All),
        ["sip:10.0.0.1", "sip:10.0.0.2", "sip:10.0.0.3"]
    );
    assert_eq!(list(ProbeMode::OnlyInactive), ["sip:10.0.0.3"]);
    assert_eq!(list(ProbeMode::FlaggedContinuous), ["sip:10.0.0.1"]);
    // Mode 3 keeps the flag after a successful probe.
    let x = d.find(1, "sip:10.0.0.1").unwrap();
    x.probe_result(true, Some(Duration::from_millis(2)), now, &cfg);
    assert_eq!(list(ProbeMode::FlaggedContinuous), ["sip:10.0.0.1"]);
    // Mode 0 clears it.
    assert_eq!(list(ProbeMode::Flagged), ["sip:10.0.0.1"]);
    x.probe_result(true, Some(Duration::from_millis(2)), now, &cfg);
    assert!(list(ProbeMode::Flagged).is_empty());
    // A failed probe: trying and probing; at the threshold inactive; back after two
    // successes.
    let y = d.find(1, "sip:10.0.0.2").unwrap();
    assert_eq!(
        y.probe_result(false, None, now, &cfg).map(|c| c.to),
        Some(State::Trying)
    );
    assert_eq!(list(ProbeMode::Flagged), ["sip:10.0.0.2"]);
    assert_eq!(
        y.probe_result(false, None, now, &cfg).map(|c| c.to),
        Some(State::Inactive)
    );
    assert_eq!(y.probe_result(true, None, now, &cfg), None);
    assert_eq!(
        y.probe_result(true, None, now, &cfg).map(|c| c.to),
        Some(State::Active)
    );
    let st = y.stats();
    assert_eq!(
        (st.last_probe_ok, st.failures, st.failures_total),
        (Some(true), 0, 2)
    );
    assert_eq!(ProbeMode::from_code(3), Some(ProbeMode::FlaggedContinuous));
    for m in 0..4 {
        assert_eq!(ProbeMode::from_code(m).unwrap().code(), m);
    }
    assert_eq!("ip".parse::<State>(), Ok(State::Inactive));
    assert!("probing".parse::<State>().is_err());
}

#[test]
fn sticky_survives_restart_and_leaves_removed_destinations() {
    let text = "1 sip:10.0.0.1\n1 sip:10.0.0.2\n1 sip:10.0.0.3\n1 sip:10.0.0.4\n";
    let now = Instant::now();
    let key = SelectKey {
        aor: Some(b"sip:bob@example.com"),
        ..SelectKey::default()
    };
    let d = dispatcher(text);
    let first = pick(&d, 1, Algorithm::Sticky, &key, now);
    // A restarted instance (empty table) falls back to the same rendezvous choice.
    assert_eq!(
        pick(&dispatcher(text), 1, Algorithm::Sticky, &key, now),
        first
    );
    // Pinned even when the hash would now choose another: bring a new destination in
    // that wins the hash for many keys, and check the affinity holds for all of them.
    let keys: Vec<String> = (0..200).map(|i| format!("sip:u{i}@example.com")).collect();
    let before: Vec<String> = keys
        .iter()
        .map(|k| {
            let key = SelectKey {
                aor: Some(k.as_bytes()),
                ..SelectKey::default()
            };
            pick(&d, 1, Algorithm::Sticky, &key, now)
        })
        .collect();
    d.reload(DestinationList::parse_kamailio(&format!("{text}1 sip:10.0.0.5\n")).unwrap());
    for (k, b) in keys.iter().zip(&before) {
        let key = SelectKey {
            aor: Some(k.as_bytes()),
            ..SelectKey::default()
        };
        assert_eq!(&pick(&d, 1, Algorithm::Sticky, &key, now), b);
        let mut s = Selection::default();
        d.select(1, Algorithm::Sticky, &key, now, 0, &mut s);
        assert_eq!(
            s.len(),
            5,
            "pinned first, then every other destination once"
        );
    }
    // The pinned destination is removed by a reload: never selected again.
    let gone = first.clone();
    let rest: String = text
        .lines()
        .filter(|l| !l.ends_with(&gone))
        .map(|l| format!("{l}\n"))
        .collect();
    d.reload(DestinationList::parse_kamailio(&rest).unwrap());
    let mut s = Selection::default();
    d.select(1, Algorithm::Sticky, &key, now, 0, &mut s);
    assert!(s.iter().all(|x| x.uri() != gone));
    // Expiry.
    let d = dispatcher(text).with_sticky_ttl(Duration::from_secs(60));
    pick(&d, 1, Algorithm::Sticky, &key, now);
    assert_eq!(d.expire_sticky(now + Duration::from_secs(59)), 1);
    assert_eq!(d.expire_sticky(now + Duration::from_secs(61)), 0);
}

#[test]
fn limits_unknown_sets_and_empty_selection() {
    let d = dispatcher("1 sip:10.0.0.1\n1 sip:10.0.0.2\n1 sip:10.0.0.3\n");
    let now = Instant::now();
    let mut s = Selection::with_capacity(3);
    for a in Algorithm::all() {
        assert_eq!(
            d.select(1, a, &SelectKey::default(), now, 2, &mut s),
            SelectOutcome::Selected
        );
        assert_eq!(s.len(), 2, "{a}");
        assert_eq!(
            d.select(7, a, &SelectKey::default(), now, 0, &mut s),
            SelectOutcome::Unavailable
        );
        assert!(s.is_empty());
    }
    for x in d.snapshot().set(1).unwrap().destinations() {
        x.set_state(State::Trying);
    }
    assert_eq!(
        d.select(
            1,
            Algorithm::RoundRobin,
            &SelectKey::default(),
            now,
            0,
            &mut s
        ),
        SelectOutcome::Selected,
        "trying destinations are still used, as in Kamailio"
    );
}

fn weighted_list(weights: &[u32]) -> DestinationList {
    let text: String = weights
        .iter()
        .enumerate()
        .map(|(i, w)| format!("1 sip:10.0.0.{}:5060 0 0 weight={w}\n", i + 1))
        .collect();
    DestinationList::parse_kamailio(&text).unwrap()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Round robin: over whole cycles every destination is first exactly as often.
    #[test]
    fn round_robin_exactly_even(n in 1usize..20, cycles in 1usize..10) {
        let d = Dispatcher::new(weighted_list(&vec![1; n]));
        let c = count(&d, Algorithm::RoundRobin, n * cycles, Instant::now(), |_| {});
        prop_assert_eq!(c.len(), n);
        prop_assert!(c.values().all(|&k| k == cycles));
    }

    /// Weight (9): every cycle of Σw/gcd picks holds each destination exactly w/gcd
    /// times.
    #[test]
    fn weight_exactly_proportional_per_cycle(weights in prop::collection::vec(1u32..30, 1..8)) {
        let g = weights.iter().copied().fold(0, gcd);
        let cycle: u32 = weights.iter().map(|w| w / g).sum();
        let d = Dispatcher::new(weighted_list(&weights));
        let now = Instant::now();
        for _ in 0..3 {
            let c = count(&d, Algorithm::Weight, cycle as usize, now, |_| {});
            for (i, w) in weights.iter().enumerate() {
                let u = format!("sip:10.0.0.{}:5060", i + 1);
                prop_assert_eq!(c.get(&u).copied().unwrap_or(0), (w / g) as usize);
            }
        }
    }

    /// Hashing (unweighted and weighted) and random stay within statistical bounds.
    #[test]
    fn hash_and_random_within_bounds(weights in prop::collection::vec(1u32..5, 2..7), seed in any::<u32>(), hash_slots in any::<bool>()) {
        let d = Dispatcher::with_options(weighted_list(&weights), DispatcherOptions { hash_slots, ..DispatcherOptions::default() });
        let now = Instant::now();
        let total: u32 = weights.iter().sum();
        let n = 12_000usize;
        for a in [Algorithm::CallIdHash, Algorithm::KeyHash, Algorithm::RelativeWeight] {
            let mut c: HashMap<String, usize> = HashMap::new();
            let mut s = Selection::default();
            for i in 0..n {
                let k = format!("{seed}-{i}");
                let key = SelectKey { call_id: k.as_bytes(), custom: Some(k.as_bytes()), ..SelectKey::default() };
                d.select(1, a, &key, now, 1, &mut s);
                *c.entry(s.first().unwrap().uri().to_string()).or_default() += 1;
            }
            for (i, w) in weights.iter().enumerate() {
                let expect = n as f64 * f64::from(*w) / f64::from(total);
                let got = c.get(&format!("sip:10.0.0.{}:5060", i + 1)).copied().unwrap_or(0) as f64;
                // Five standard deviations of a binomial count.
                let sd = (expect * (1.0 - expect / n as f64)).sqrt();
                prop_assert!((got - expect).abs() < 5.0 * sd + 1.0, "{}: dest {} got {} expected {:.0}", a, i, got, expect);
            }
        }
        let d = Dispatcher::new(weighted_list(&vec![1; weights.len()]));
        let c = count(&d, Algorithm::Random, n, now, |_| {});
        let expect = n as f64 / weights.len() as f64;
        for v in c.values() {
            prop_assert!((*v as f64 - expect).abs() < 5.0 * expect.sqrt() + 1.0);
        }
    }

    /// Reload keeps the Arc, state and counters of every destination that remains,
    /// whatever else changes.
    #[test]
    fn reload_keeps_state_of_unchanged(
        keep in prop::collection::vec(any::<bool>(), 1..10),
        states in prop::collection::vec(0u8..4, 10),
        calls in prop::collection::vec(0u8..5, 10),
        added in 0usize..4,
        new_weight in 1u32..5,
    ) {
        let n = keep.len();
        let d = Dispatcher::new(weighted_list(&vec![1; n]));
        let now = Instant::now();
        let before: Vec<Arc<Destination>> = d.snapshot().set(1).unwrap().destinations().to_vec();
        for (i, x) in before.iter().enumerate() {
            x.set_state([State::Active, State::Trying, State::Inactive, State::Disabled][states[i] as usize]);
            for _ in 0..calls[i] { x.call_started(); x.request_sent(now, 10); }
        }
        let mut text = String::new();
        for (i, k) in keep.iter().enumerate() {
            if *k { text += &format!("1 sip:10.0.0.{}:5060 0 0 weight={new_weight}\n", i + 1); }
        }
        for j in 0..added { text += &format!("1 sip:10.9.0.{}:5060\n", j + 1); }
        let r = d.reload(DestinationList::parse_kamailio(&text).unwrap());
        prop_assert_eq!(r.added.len(), added);
        prop_assert_eq!(r.removed.len(), keep.iter().filter(|k| !**k).count());
        prop_assert_eq!(r.kept + r.changed.len(), keep.iter().filter(|k| **k).count());
        for (i, x) in before.iter().enumerate() {
            match d.find(1, x.uri()) {
                Some(y) => {
                    prop_assert!(keep[i]);
                    prop_assert!(Arc::ptr_eq(x, &y));
                    let st = y.stats();
                    prop_assert_eq!(st.active_calls, i64::from(calls[i]));
                    prop_assert_eq!(st.outstanding, i64::from(calls[i]));
                    prop_assert_eq!(st.state, x.state());
                    prop_assert_eq!(y.weight(), new_weight);
                }
                None => prop_assert!(!keep[i]),
            }
        }
    }
}
