//! Table-driven scenarios: messages in at given times, exactly these messages and timers out.

mod support;

use std::time::Duration;

use bytes::Bytes;
use sip_core::{HeaderName, Message, Method};
use sip_proxy::{Event, Mode};
use support::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn caller() -> std::net::SocketAddr {
    addr(CALLER)
}

#[test]
fn basic_call_stateful() {
    let mut net = Net::with_backends(Mode::Stateful, 1);
    net.send(caller(), invite("c1", "z9hG4bKinv1"));
    let out = net.out();
    assert_eq!(out.len(), 2, "{}", describe(&out));
    let trying = Message::parse(out[0].bytes.clone()).unwrap();
    assert_eq!(out[0].destination, caller());
    assert_eq!(trying.status_code(), Some(100));
    assert_eq!(out[1].destination, backend(0));
    let fwd = Message::parse(out[1].bytes.clone()).unwrap();
    // Our Via on top, the caller's below with received and rport filled.
    assert_eq!(fwd.via_count(), 2);
    let vias: Vec<_> = fwd.vias().map(Result::unwrap).collect();
    assert!(vias[0].branch().unwrap().starts_with(b"z9hG4bK"));
    assert_eq!(vias[1].rport(), Some(Some(5070)));
    assert_eq!(vias[1].received(), Some(&b"127.0.0.1"[..]));
    assert_eq!(fwd.max_forwards(), Some(69));
    let rr = fwd.header(HeaderName::RecordRoute).unwrap();
    assert!(
        rr.starts_with(b"<sip:127.0.0.1:5060;lr;lbd="),
        "{}",
        String::from_utf8_lossy(rr)
    );
    assert_eq!(fwd.body(), b"v=0\n");

    // 100 from the backend is absorbed, 180 and 200 go up without our Via.
    net.send(backend(0), respond(&fwd, 100, "Trying"));
    net.expect_none();
    net.send(backend(0), respond(&fwd, 180, "Ringing"));
    let ringing = net.expect_one(caller());
    assert_eq!(ringing.status_code(), Some(180));
    assert_eq!(ringing.via_count(), 1);
    net.send(backend(0), respond(&fwd, 200, "OK"));
    let ok = net.expect_one(caller());
    assert_eq!(ok.status_code(), Some(200));
    assert_eq!(ok.via_count(), 1);
    assert_eq!(net.active_calls(0), 1);
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, Event::CallStarted { .. }))
    );

    // ACK and BYE follow the Record-Route to the backend.
    net.send(caller(), in_dialog("ACK", &ok, "z9hG4bKack1", 1));
    let ack = net.expect_one(backend(0));
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(ack.route_count(), 0, "our Route is removed");
    assert_eq!(ack.via_count(), 2);
    net.send(caller(), in_dialog("BYE", &ok, "z9hG4bKbye1", 2));
    let bye = net.expect_one(backend(0));
    assert_eq!(bye.method(), Some(Method::Bye));
    assert_eq!(net.active_calls(0), 0);
    net.send(backend(0), respond(&bye, 200, "OK"));
    let bye_ok = net.expect_one(caller());
    assert_eq!(bye_ok.status_code(), Some(200));
    assert_eq!(bye_ok.cseq().unwrap().1, Method::Bye);
    net.drain_and_check();
    assert!(net.calls.is_empty());
}

#[test]
fn a_call_answered_within_t1_arms_six_timers_and_none_outlives_the_wait() {
    // INVITE answered at once, ACK, BYE answered at once: each client transaction arms
    // its first retransmission only (its timeout is armed by that timer if it is still
    // waiting then), and each transaction its wait after the final response: Timers A
    // and M, E and K, L and J. No timeout's timer (5 s) and no Timer C (3 minutes) is
    // left to come round for a transaction long gone.
    let mut net = Net::with_backends(Mode::Stateful, 1);
    let (_, fwd) = net.invite_forwarded("c6", "z9hG4bKinv6");
    net.send(backend(0), respond(&fwd, 180, "Ringing"));
    net.send(backend(0), respond(&fwd, 200, "OK"));
    let out = net.out();
    let ok = Message::parse(out[1].bytes.clone()).unwrap();
    assert_eq!(ok.status_code(), Some(200));
    net.send(caller(), in_dialog("ACK", &ok, "z9hG4bKack6", 1));
    net.send(caller(), in_dialog("BYE", &ok, "z9hG4bKbye6", 2));
    let out = net.out();
    let bye = Message::parse(out.last().unwrap().bytes.clone()).unwrap();
    assert_eq!(bye.method(), Some(Method::Bye));
    net.send(backend(0), respond(&bye, 200, "OK"));
    assert_eq!(net.out().len(), 1);
    assert_eq!(net.proxy.stats().timers_pending, 6);
    // Past T1 the two retransmission timers have come round and sent nothing.
    let sent = net.advance_collect(ms(600));
    assert!(sent.is_empty(), "{}", describe(&sent));
    assert_eq!(net.proxy.stats().timers_pending, 4);
    // Past the 5-second waits nothing is left: no transaction, no timer.
    let sent = net.advance_collect(ms(5_000));
    assert!(sent.is_empty(), "{}", describe(&sent));
    assert_eq!(net.proxy.transaction_count(), (0, 0));
    assert_eq!(net.proxy.stats().timers_pending, 0);
    net.drain_and_check();
}

#[test]
fn retransmissions_are_absorbed_and_answered_from_state() {
    let mut net = Net::with_backends(Mode::Stateful, 1);
    let (out, fwd) = net.invite_forwarded("c2", "z9hG4bKinv2");
    // The caller retransmits: we answer 100 again and do not forward.
    net.send(caller(), invite("c2", "z9hG4bKinv2"));
    let again = net.expect_one(caller());
    assert_eq!(again.status_code(), Some(100));
    // The same 100 Trying, byte for byte (built again from the retransmission).
    assert_eq!(out[0].destination, caller());
    assert_eq!(again.as_bytes(), &out[0].bytes[..]);
    // Timer A: the INVITE is retransmitted to the backend at T1, 2·T1.
    let sent = net.advance_collect(ms(500));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].destination, backend(0));
    assert_eq!(sent[0].bytes, out[1].bytes);
    let sent = net.advance_collect(ms(999));
    assert!(sent.is_empty(), "{}", describe(&sent));
    let sent = net.advance_collect(ms(1));
    assert_eq!(sent.len(), 1);
    // A 486 is ACKed hop by hop and forwarded once; its retransmission only re-ACKs.
    net.send(backend(0), respond(&fwd, 486, "Busy Here"));
    let out = net.out();
    assert_eq!(out.len(), 2, "{}", describe(&out));
    let ack = Message::parse(out[0].bytes.clone()).unwrap();
    assert_eq!(out[0].destination, backend(0));
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(ack.top_via_branch(), fwd.top_via_branch());
    assert_eq!(ack.to_tag(), Some(&b"b1"[..]));
    let busy = Message::parse(out[1].bytes.clone()).unwrap();
    assert_eq!(busy.status_code(), Some(486));
    net.send(backend(0), respond(&fwd, 486, "Busy Here"));
    let re_ack = net.expect_one(backend(0));
    assert_eq!(re_ack.method(), Some(Method::Ack));
    // Timer G retransmits the 486 to the caller until its ACK arrives.
    let sent = net.advance_collect(ms(500));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].destination, caller());
    let mut ack_up = request("ACK", "c2", "z9hG4bKinv2", 1);
    ack_up = ack_up.replace(
        "To: <sip:service@127.0.0.1:5060>",
        &format!(
            "To: {}",
            String::from_utf8_lossy(busy.header(HeaderName::To).unwrap())
        ),
    );
    net.send(caller(), ack_up);
    net.expect_none();
    let sent = net.advance_collect(Duration::from_secs(10));
    assert!(sent.is_empty(), "{}", describe(&sent));
    net.drain_and_check();
}

#[test]
fn after_a_2xx_an_invite_retransmission_is_absorbed_and_the_callees_2xx_goes_up() {
    // RFC 6026 §7.1: in Accepted the server transaction absorbs a retransmitted INVITE
    // (it does not answer it with the 2xx: the callee retransmits its own 2xx until the
    // ACK, and §7.2 forwards each retransmission).
    let mut net = Net::with_backends(Mode::Stateful, 1);
    let (_, fwd) = net.invite_forwarded("c9", "z9hG4bKinv9");
    net.send(backend(0), respond(&fwd, 200, "OK"));
    let ok = net.expect_one(caller());
    assert_eq!(ok.status_code(), Some(200));
    let absorbed = net.proxy.stats().retransmissions_absorbed;
    net.send(caller(), invite("c9", "z9hG4bKinv9"));
    net.expect_none();
    assert_eq!(net.proxy.stats().retransmissions_absorbed, absorbed + 1);
    // The callee's retransmitted 2xx still reaches the caller, who then ACKs.
    net.send(backend(0), respond(&fwd, 200, "OK"));
    let again = net.expect_one(caller());
    assert_eq!(again.status_code(), Some(200));
    assert_eq!(again.via_count(), 1);
    net.send(caller(), in_dialog("ACK", &ok, "z9hG4bKack9", 1));
    let ack = net.expect_one(backend(0));
    assert_eq!(ack.method(), Some(Method::Ack));
    // A retransmission within the wait timer is still recognised (absorbed, not a new
    // call to the backend).
    net.advance(ms(4000));
    net.send(caller(), invite("c9", "z9hG4bKinv9"));
    net.expect_none();
    net.send(caller(), in_dialog("BYE", &ok, "z9hG4bKbye9", 2));
    let bye = net.expect_one(backend(0));
    net.send(backend(0), respond(&bye, 200, "OK"));
    net.expect_one(caller());
    net.drain_and_check();
}

#[test]
fn cancel_before_answer() {
    let mut net = Net::with_backends(Mode::Stateful, 1);
    let (_, fwd) = net.invite_forwarded("c3", "z9hG4bKinv3");
    net.send(backend(0), respond(&fwd, 180, "Ringing"));
    net.expect_one(caller());
    net.send(caller(), request("CANCEL", "c3", "z9hG4bKinv3", 1));
    let out = net.out();
    assert_eq!(out.len(), 2, "{}", describe(&out));
    let ok = Message::parse(out[0].bytes.clone()).unwrap();
    assert_eq!(out[0].destination, caller());
    assert_eq!(ok.status_code(), Some(200));
    assert_eq!(ok.cseq().unwrap().1, Method::Cancel);
    let cancel = Message::parse(out[1].bytes.clone()).unwrap();
    assert_eq!(out[1].destination, backend(0));
    assert_eq!(cancel.method(), Some(Method::Cancel));
    assert_eq!(cancel.top_via_branch(), fwd.top_via_branch());
    net.send(backend(0), respond(&cancel, 200, "OK"));
    net.expect_none();
    net.send(backend(0), respond(&fwd, 487, "Request Terminated"));
    let out = net.out();
    assert_eq!(out.len(), 2, "{}", describe(&out));
    assert_eq!(out[0].destination, backend(0)); // ACK
    let up = Message::parse(out[1].bytes.clone()).unwrap();
    assert_eq!(up.status_code(), Some(487));
    assert_eq!(net.active_calls(0), 0);
    net.drain_and_check();
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut net = Net::with_backends(Mode::Stateful, 1);
    let (_, fwd) = net.invite_forwarded("c3b", "z9hG4bKinv3b");
    net.send(caller(), request("CANCEL", "c3b", "z9hG4bKinv3b", 1));
    let ok = net.expect_one(caller());
    assert_eq!(ok.status_code(), Some(200));
    net.send(backend(0), respond(&fwd, 180, "Ringing"));
    let out = net.out();
    assert!(out.iter().any(|t| t.destination == backend(0)
        && Message::parse(t.bytes.clone()).unwrap().method() == Some(Method::Cancel)));
    net.send(backend(0), respond(&fwd, 487, "Request Terminated"));
    let out = net.out();
    assert!(out.iter().any(|t| t.destination == caller()
        && Message::parse(t.bytes.clone()).unwrap().status_code() == Some(487)));
    net.drain_and_check();
}

/// An INVITE whose callee rang past timer C: the proxy has sent it a CANCEL and the caller
/// a 408. Returns the network, the callee and the INVITE as forwarded.
fn past_timer_c(call_id: &str, branch: &str) -> (Net, std::net::SocketAddr, Message) {
    let mut cfg = config(Mode::Stateful);
    cfg.timers.no_final_invite = Duration::from_secs(2);
    let mut net = Net::new(cfg, &list(2));
    let (out, fwd) = net.invite_forwarded(call_id, branch);
    let callee = out[1].destination;
    net.send(callee, respond(&fwd, 180, "Ringing"));
    net.expect_one(caller());
    let sent: Vec<_> = net
        .advance_collect(ms(2100))
        .into_iter()
        .map(|t| (t.destination, Message::parse(t.bytes).unwrap()))
        .collect();
    assert!(
        sent.iter()
            .any(|(to, m)| *to == callee && m.method() == Some(Method::Cancel))
    );
    assert!(
        sent.iter()
            .any(|(to, m)| *to == caller() && m.status_code() == Some(408))
    );
    (net, callee, fwd)
}

#[test]
fn timer_c_shorter_than_the_response_timeout_fires_on_time_over_tcp() {
    // Over TCP nothing is retransmitted: the only timer the INVITE's send arms is its
    // 5-second response timeout. A Timer C of 2 seconds, started by the 180, ends before
    // it and is armed itself.
    let mut cfg = config(Mode::Stateful);
    cfg.listeners.push(sip_proxy::LocalEndpoint::new(
        sip_core::Transport::Tcp,
        addr(LB),
    ));
    cfg.timers.no_final_invite = Duration::from_secs(2);
    let mut net = Net::new(cfg, &format!("1 sip:{};transport=tcp\n", backend(0)));
    net.send(caller(), invite("c3t", "z9hG4bKinv3t"));
    let out = net.out();
    assert_eq!(out[1].transport, sip_core::Transport::Tcp);
    let fwd = Message::parse(out[1].bytes.clone()).unwrap();
    net.send(backend(0), respond(&fwd, 180, "Ringing"));
    net.expect_one(caller());
    let sent: Vec<_> = net
        .advance_collect(ms(2100))
        .into_iter()
        .map(|t| (t.destination, Message::parse(t.bytes).unwrap()))
        .collect();
    assert!(
        sent.iter()
            .any(|(to, m)| *to == backend(0) && m.method() == Some(Method::Cancel)),
        "no CANCEL by 2.1 s"
    );
    assert!(
        sent.iter()
            .any(|(to, m)| *to == caller() && m.status_code() == Some(408)),
        "no 408 by 2.1 s"
    );
    net.send(backend(0), respond(&fwd, 487, "Request Terminated"));
    net.drain_and_check();
}

fn failovers(net: &Net) -> usize {
    net.events
        .iter()
        .filter(|e| matches!(e, Event::Failover { .. }))
        .count()
}

#[test]
fn a_late_final_response_after_timer_c_is_acknowledged_and_not_tried_elsewhere() {
    let (mut net, callee, fwd) = past_timer_c("c3c", "z9hG4bKinv3c");
    let before = failovers(&net);
    // The callee answers the INVITE with 500 instead of 487: it gets its ACK; the caller,
    // already answered, gets nothing more, and no other destination gets the INVITE.
    net.send(callee, respond(&fwd, 500, "Server Internal Error"));
    let ack = net.expect_one(callee);
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(failovers(&net), before);
    net.drain_and_check();
}

#[test]
fn a_late_2xx_after_timer_c_still_reaches_the_caller() {
    // §16.7: every 2xx goes upstream, so that the caller can ACK and end the call it was
    // told had failed, rather than the callee retransmitting its 200 into nothing.
    let (mut net, callee, fwd) = past_timer_c("c3d", "z9hG4bKinv3d");
    net.send(callee, respond(&fwd, 200, "OK"));
    let ok = net.expect_one(caller());
    assert_eq!(ok.status_code(), Some(200));
    assert_eq!(ok.via_count(), 1);
    net.send(caller(), in_dialog("ACK", &ok, "z9hG4bKack3d", 1));
    assert_eq!(net.expect_one(callee).method(), Some(Method::Ack));
    net.send(caller(), in_dialog("BYE", &ok, "z9hG4bKbye3d", 2));
    let bye = net.expect_one(callee);
    assert_eq!(bye.method(), Some(Method::Bye));
    net.send(callee, respond(&bye, 200, "OK"));
    assert_eq!(net.expect_one(caller()).status_code(), Some(200));
    net.drain_and_check();
    assert!(net.calls.is_empty());
}

#[test]
fn cancel_without_transaction_is_481() {
    let mut net = Net::with_backends(Mode::Stateful, 1);
    net.send(caller(), request("CANCEL", "nope", "z9hG4bKnope", 1));
    assert_eq!(net.expect_one(caller()).status_code(), Some(481));
}

#[test]
fn failover_on_timeout() {
    let mut net = Net::with_backends(Mode::Stateful, 2);
    net.send(caller(), invite("c4", "z9hG4bKinv4"));
    let out = net.out();
    let first = out[1].destination;
    let sent = net.advance_collect(Duration::from_secs(5));
    // Retransmissions at 0.5, 1.5, 3.5 s to the first, then the INVITE to the other.
    let to_first = sent.iter().filter(|t| t.destination == first).count();
    assert_eq!(to_first, 3, "{}", describe(&sent));
    let other: Vec<_> = sent.iter().filter(|t| t.destination != first).collect();
    assert_eq!(other.len(), 1, "{}", describe(&sent));
    let fwd2 = Message::parse(other[0].bytes.clone()).unwrap();
    assert_eq!(fwd2.method(), Some(Method::Invite));
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, Event::Failover { .. }))
    );
    net.send(other[0].destination, respond(&fwd2, 200, "OK"));
    let ok = net.expect_one(caller());
    assert_eq!(ok.status_code(), Some(200));
    net.drain_and_check();
}

#[test]
fn failover_on_500_then_answer() {
    let mut net = Net::with_backends(Mode::Stateful, 2);
    let (out, fwd) = net.invite_forwarded("c5", "z9hG4bKinv5");
    let first = out[1].destination;
    net.send(first, respond(&fwd, 500, "Server Internal Error"));
    let out = net.out();
    assert_eq!(out.len(), 2, "{}", describe(&out));
    assert_eq!(out[0].destination, first); // ACK for the 500
    assert_ne!(out[1].destination, first); // the INVITE elsewhere
    let fwd2 = Message::parse(out[1].bytes.clone()).unwrap();
    assert_ne!(fwd2.top_via_branch(), fwd.top_via_branch());
    net.send(out[1].destination, respond(&fwd2, 200, "OK"));
    assert_eq!(net.expect_one(caller()).status_code(), Some(200));
    net.drain_and_check();
}

#[test]
fn every_destination_failing_gives_best_response_or_503() {
    // Both answer 503: the caller gets our 503 with Retry-After? No: the best response
    // received (a 503 from downstream) per §16.7.
    let mut net = Net::with_backends(Mode::Stateful, 2);
    let (out, fwd) = net.invite_forwarded("c6", "z9hG4bKinv6");
    net.send(out[1].destination, respond(&fwd, 500, "Oops"));
    let out = net.out();
    let fwd2 = Message::parse(out[1].bytes.clone()).unwrap();
    net.send(out[1].destination, respond(&fwd2, 503, "Busy"));
    let out = net.out();
    let up = out
        .iter()
        .find(|t| t.destination == caller())
        .map(|t| Message::parse(t.bytes.clone()).unwrap())
        .unwrap();
    assert_eq!(up.status_code(), Some(500));
    net.drain_and_check();

    // Nobody answers at all: 503 with Retry-After.
    let mut net = Net::with_backends(Mode::Stateful, 2);
    net.send(caller(), invite("c7", "z9hG4bKinv7"));
    net.out();
    let sent = net.advance_collect(Duration::from_secs(11));
    let up: Vec<_> = sent
        .iter()
        .filter(|t| t.destination == caller())
        .map(|t| Message::parse(t.bytes.clone()).unwrap())
        .collect();
    // Our 503 (retransmitted by timer G until the caller ACKs it).
    assert!(!up.is_empty(), "{}", describe(&sent));
    assert!(up.iter().all(|m| m.status_code() == Some(503)));
    assert!(up[0].header(HeaderName::RetryAfter).is_some());
    net.drain_and_check();
}

#[test]
fn no_usable_destination_is_503() {
    let mut net = Net::new(config(Mode::Stateful), "1 sip:127.0.0.1:5080 4\n");
    net.send(caller(), invite("c8", "z9hG4bKinv8"));
    let out = net.out();
    let last = Message::parse(out.last().unwrap().bytes.clone()).unwrap();
    assert_eq!(last.status_code(), Some(503));
    assert!(last.header(HeaderName::RetryAfter).is_some());
    // Our final response carries a To tag of ours (the 100 Trying before it none), and
    // the one the stateless path would give the same request is the same tag.
    let trying = Message::parse(out[0].bytes.clone()).unwrap();
    assert_eq!(trying.status_code(), Some(100));
    assert_eq!(trying.to_tag(), None);
    let tag = last.to_tag().expect("a To tag on our 503").to_vec();
    assert!(tag.len() > 8, "{}", String::from_utf8_lossy(&tag));
    let mut again = Net::new(config(Mode::Stateless), "1 sip:127.0.0.1:5080 4\n");
    again.send(caller(), invite("c8", "z9hG4bKinv8"));
    let other = again.expect_one(caller());
    assert_eq!(other.status_code(), Some(503));
    assert_eq!(other.to_tag(), Some(&tag[..]));
    net.drain_and_check();
}

#[test]
fn stateless_retransmission_goes_to_the_same_destination() {
    let mut net = Net::with_backends(Mode::Stateless, 2);
    net.send(caller(), invite("s1", "z9hG4bKs1"));
    let a = net.out();
    assert_eq!(a.len(), 1, "{}", describe(&a));
    net.send(caller(), invite("s1", "z9hG4bKs1"));
    let b = net.out();
    assert_eq!(b.len(), 1);
    assert_eq!(a[0].destination, b[0].destination);
    assert_eq!(a[0].bytes, b[0].bytes, "same branch, same bytes");
    // A new call goes to the other backend (round robin), its CANCEL follows it.
    net.send(caller(), invite("s2", "z9hG4bKs2"));
    let c = net.out();
    assert_ne!(c[0].destination, a[0].destination);
    net.send(caller(), request("CANCEL", "s2", "z9hG4bKs2", 1));
    let d = net.out();
    assert_eq!(d[0].destination, c[0].destination);
    let fwd_inv = Message::parse(c[0].bytes.clone()).unwrap();
    let fwd_cancel = Message::parse(d[0].bytes.clone()).unwrap();
    assert_eq!(fwd_inv.top_via_branch(), fwd_cancel.top_via_branch());
    // Responses go back by Via.
    net.send(c[0].destination, respond(&fwd_inv, 180, "Ringing"));
    let up = net.expect_one(caller());
    assert_eq!(up.via_count(), 1);
    net.send(c[0].destination, respond(&fwd_inv, 200, "OK"));
    let ok = net.expect_one(caller());
    assert_eq!(ok.status_code(), Some(200));
    net.send(caller(), in_dialog("BYE", &ok, "z9hG4bKsbye", 2));
    let bye = net.out();
    assert_eq!(
        bye[0].destination, c[0].destination,
        "BYE follows the cookie"
    );
}

#[test]
fn stateless_retransmission_and_cancel_follow_their_invite_under_load() {
    // 4000 new calls a second for 5 s (20 000 INVITEs) in between: the CANCEL and the
    // INVITE retransmissions of each of the first calls must still go where their INVITE
    // went (round robin would send them elsewhere), every one of them.
    let mut net = Net::with_backends(Mode::Stateless, 2);
    let first: Vec<_> = (0..50)
        .map(|i| {
            let (cid, br) = (format!("early{i}"), format!("z9hG4bKearly{i}"));
            net.send(caller(), invite(&cid, &br));
            let out = net.out();
            assert_eq!(out.len(), 1, "{}", describe(&out));
            (cid, br, out[0].destination)
        })
        .collect();
    for i in 0..20_000 {
        if i % 4 == 0 {
            net.advance(ms(1));
        }
        net.send(
            caller(),
            invite(&format!("load{i}"), &format!("z9hG4bKload{i}")),
        );
        net.out();
    }
    let mut wrong = 0;
    for (cid, br, dest) in &first {
        net.send(caller(), invite(cid, br));
        let again = net.out();
        net.send(caller(), request("CANCEL", cid, br, 1));
        let cancel = net.out();
        assert_eq!((again.len(), cancel.len()), (1, 1));
        wrong += usize::from(again[0].destination != *dest);
        wrong += usize::from(cancel[0].destination != *dest);
    }
    assert_eq!(
        wrong, 0,
        "retransmissions or CANCELs sent to another destination"
    );
}

#[test]
fn forged_cookie_is_refused() {
    let mut net = Net::with_backends(Mode::Stateful, 1);
    let (_, fwd) = net.invite_forwarded("f1", "z9hG4bKf1");
    net.send(backend(0), respond(&fwd, 200, "OK"));
    let ok = net.expect_one(caller());
    let bye = in_dialog("BYE", &ok, "z9hG4bKfbye", 2);
    // Flip one hex digit of the cookie.
    let pos = bye.find("lbd=").unwrap() + 6;
    let mut bytes = bye.into_bytes();
    bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
    net.send(caller(), Bytes::from(bytes));
    let r = net.expect_one(caller());
    assert_eq!(r.status_code(), Some(403));
    assert_eq!(net.active_calls(0), 1, "a refused BYE ends nothing");
}

#[test]
fn max_forwards_zero_is_483_and_oversized_is_513() {
    let mut net = Net::with_backends(Mode::Stateful, 1);
    let m = invite("m1", "z9hG4bKm1").replace("Max-Forwards: 70", "Max-Forwards: 0");
    net.send(caller(), m);
    assert_eq!(net.expect_one(caller()).status_code(), Some(483));
    let big = invite("m2", "z9hG4bKm2").replace(
        "Content-Length: 4\r\n\r\nv=0\n",
        &format!("Content-Length: 70000\r\n\r\n{}", "a".repeat(70000)),
    );
    net.send(caller(), big);
    assert_eq!(net.expect_one(caller()).status_code(), Some(513));
    net.drain_and_check();
}

#[test]
fn options_to_the_balancer_is_200_and_other_checks() {
    let mut net = Net::with_backends(Mode::Stateful, 1);
    net.send(caller(), request("OPTIONS", "o1", "z9hG4bKo1", 1));
    let r = net.expect_one(caller());
    assert_eq!(r.status_code(), Some(200));
    // Proxy-Require with an unknown extension: 420 with Unsupported.
    let m = request("MESSAGE", "o2", "z9hG4bKo2", 1)
        .replace("Max-Forwards: 70", "Max-Forwards: 70\r\nProxy-Require: foo");
    net.send(caller(), m);
    let r = net.expect_one(caller());
    assert_eq!(r.status_code(), Some(420));
    assert_eq!(r.header(HeaderName::Unsupported), Some(&b"foo"[..]));
    // Unknown scheme: 416.
    let m = request("MESSAGE", "o3", "z9hG4bKo3", 1).replace(
        "MESSAGE sip:service@127.0.0.1:5060",
        "MESSAGE mailto:x@example.com",
    );
    net.send(caller(), m);
    assert_eq!(net.expect_one(caller()).status_code(), Some(416));
    // Missing Call-ID: 400.
    let m = request("MESSAGE", "o4", "z9hG4bKo4", 1).replace("Call-ID: o4\r\n", "");
    net.send(caller(), m);
    assert_eq!(net.expect_one(caller()).status_code(), Some(400));
    // Missing From, missing To: 400 naming the header.
    for (cid, line, reason) in [
        (
            "o5",
            "From: <sip:alice@127.0.0.1:5070>;tag=a-o5\r\n",
            "Missing From",
        ),
        ("o6", "To: <sip:service@127.0.0.1:5060>\r\n", "Missing To"),
    ] {
        let m = request("MESSAGE", cid, &format!("z9hG4bK{cid}"), 1).replace(line, "");
        net.send(caller(), m);
        let r = net.expect_one(caller());
        assert_eq!(
            (r.status_code(), r.reason()),
            (Some(400), Some(reason.as_bytes()))
        );
    }
    // Both in their compact forms: forwarded.
    let m = request("MESSAGE", "o7", "z9hG4bKo7", 1)
        .replace("From: ", "f: ")
        .replace("To: ", "t: ");
    net.send(caller(), m);
    let fwd = net.expect_one(backend(0));
    assert_eq!(fwd.method(), Some(Method::Message));
}

#[test]
fn a_looping_request_is_482() {
    let mut net = Net::with_backends(Mode::Stateless, 1);
    net.send(caller(), request("MESSAGE", "l1", "z9hG4bKl1", 1));
    let out = net.out();
    // The backend sends it straight back to us (adding its own Via).
    let looped = String::from_utf8_lossy(&out[0].bytes).replacen(
        "Via: ",
        "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKback\r\nVia: ",
        1,
    );
    net.send(backend(0), looped);
    assert_eq!(net.expect_one(backend(0)).status_code(), Some(482));
}

#[test]
fn probes_mark_a_destination_down_then_up() {
    let mut cfg = config(Mode::Stateful);
    cfg.probing = Some(sip_proxy::ProbeConfig {
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        ..Default::default()
    });
    let mut net = Net::new(cfg, &list(1));
    let mut down = false;
    // No answers: after the threshold the destination is inactive.
    for _ in 0..10 {
        let sent = net.advance_collect(Duration::from_secs(2));
        assert!(sent.iter().all(|t| t.destination == backend(0)));
        if !net.dispatcher.snapshot().set(1).unwrap().destinations()[0].is_usable(net.now) {
            down = true;
            break;
        }
    }
    assert!(down, "never marked down");
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, Event::DestinationState { .. }))
    );
    // Now it answers every probe.
    let mut up = false;
    for _ in 0..10 {
        let sent = net.advance_collect(Duration::from_secs(2));
        for t in sent {
            let m = Message::parse(t.bytes.clone()).unwrap();
            if m.method() == Some(Method::Options) {
                net.send(backend(0), respond(&m, 200, "OK"));
            }
        }
        if net.dispatcher.snapshot().set(1).unwrap().destinations()[0].is_usable(net.now) {
            up = true;
            break;
        }
    }
    assert!(up, "never marked up again");
}

#[test]
fn rfc4475_invalid_requests_get_4xx_and_nothing_is_forwarded() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sip-core/tests/corpus/rfc4475"
    );
    for f in [
        "badinv01",
        "clerr",
        "ncl",
        "scalar02",
        "quotbal",
        "ltgtruri",
        "lwsruri",
        "lwsstart",
        "trws",
        "escruri",
        "badaspec",
        "baddn",
        "badvers",
        "mismatch01",
        "mismatch02",
        "insuf",
        "multi01",
        "mcl01",
        "bext01",
        "unkscm",
        "zeromf",
    ] {
        let mut net = Net::with_backends(Mode::Stateful, 1);
        let data = std::fs::read(format!("{dir}/{f}.dat")).unwrap();
        net.send(caller(), data);
        let out = net.out();
        assert!(
            out.iter().all(|t| t.destination == caller()),
            "{f}: forwarded: {}",
            describe(&out)
        );
        if let Some(t) = out.first() {
            // The reply copies the request's own (possibly broken) Via, so read its status
            // line only.
            let line = String::from_utf8_lossy(&t.bytes[..12]).to_string();
            assert!(
                line.starts_with("SIP/2.0 4") || line.starts_with("SIP/2.0 505"),
                "{f}: {line}"
            );
        } else {
            // Only a request too broken to carry a Via may go unanswered.
            assert!(
                net.events
                    .iter()
                    .any(|e| matches!(e, Event::Dropped { .. })),
                "{f}: neither answered nor counted"
            );
        }
    }
}

#[test]
fn autonomous_queue_holds_with_182_then_forwards_or_503() {
    let mut cfg = config(Mode::Stateful);
    cfg.algorithm = sip_dispatch::Algorithm::AutonomousQueue;
    let mut net = Net::new(cfg, "1 sip:127.0.0.1:5080 0 0 maxload=1\n");
    // Call 1 takes the only slot.
    net.send(caller(), invite("q1", "z9hG4bKq1"));
    let out = net.out();
    let fwd1 = Message::parse(out[1].bytes.clone()).unwrap();
    net.send(backend(0), respond(&fwd1, 200, "OK"));
    let ok1 = net.expect_one(caller());
    assert_eq!(net.active_calls(0), 1);
    // Call 2 waits: 100 Trying, then 182 Queued, nothing to the backend.
    net.send(caller(), invite("q2", "z9hG4bKq2"));
    let out = net.out();
    let codes: Vec<_> = out
        .iter()
        .map(|t| Message::parse(t.bytes.clone()).unwrap().status_code())
        .collect();
    assert_eq!(codes, vec![Some(100), Some(182)], "{}", describe(&out));
    assert!(out.iter().all(|t| t.destination == caller()));
    // Call 1 ends: the slot frees and call 2 goes to the backend.
    net.send(caller(), in_dialog("BYE", &ok1, "z9hG4bKqbye", 2));
    let bye = net.expect_one(backend(0));
    assert_eq!(bye.method(), Some(Method::Bye));
    let sent = net.advance_collect(ms(50));
    let fwd2: Vec<_> = sent
        .iter()
        .filter(|t| t.destination == backend(0))
        .map(|t| Message::parse(t.bytes.clone()).unwrap())
        .collect();
    assert_eq!(fwd2.len(), 1, "{}", describe(&sent));
    assert_eq!(fwd2[0].call_id(), Some(&b"q2"[..]));
    net.send(backend(0), respond(&fwd2[0], 200, "OK"));
    assert_eq!(net.expect_one(caller()).status_code(), Some(200));
    // Call 3 waits for a slot that never frees: 503 at the deadline.
    net.send(caller(), invite("q3", "z9hG4bKq3"));
    net.out();
    let sent = net.advance_collect(Duration::from_secs(11));
    let up: Vec<_> = sent
        .iter()
        .filter(|t| t.destination == caller())
        .map(|t| Message::parse(t.bytes.clone()).unwrap().status_code())
        .collect();
    assert!(up.contains(&Some(503)), "{}", describe(&sent));
    assert!(sent.iter().all(|t| t.destination != backend(0)
        || Message::parse(t.bytes.clone()).unwrap().call_id() != Some(&b"q3"[..])));
}

/// A received datagram is usually a slice of a receive chunk shared with many others;
/// a transaction that lives for seconds must not keep that chunk allocated.
/// One datagram cut from a larger receive chunk, as `sip-transport` delivers them, and a
/// flag set when the chunk is freed.
fn chunked_datagram(text: &[u8]) -> (Bytes, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    struct Chunk(Vec<u8>, Arc<AtomicBool>);
    impl AsRef<[u8]> for Chunk {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for Chunk {
        fn drop(&mut self) {
            self.1.store(true, Ordering::SeqCst);
        }
    }
    let freed = Arc::new(AtomicBool::new(false));
    let mut v = text.to_vec();
    v.extend_from_slice(&[b'x'; 4096]);
    let chunk = Bytes::from_owner(Chunk(v, freed.clone()));
    (chunk.slice(..text.len()), freed)
}

/// The best response held while a failover goes on is a copy, not a slice of its
/// receive chunk, and is still the one the caller gets when every destination fails.
#[test]
fn the_best_response_held_during_failover_is_a_copy() {
    use std::sync::atomic::Ordering;
    let mut net = Net::with_backends(Mode::Stateful, 2);
    let (out, fwd) = net.invite_forwarded("c9", "z9hG4bKinv9");
    let (failure, freed) = chunked_datagram(&respond(&fwd, 500, "Held Here"));
    net.send(out[1].destination, failure);
    let out = net.out();
    assert_eq!(
        out.len(),
        2,
        "ACK and the INVITE elsewhere: {}",
        describe(&out)
    );
    assert!(
        freed.load(Ordering::SeqCst),
        "the 500's receive chunk is freed"
    );
    let fwd2 = Message::parse(out[1].bytes.clone()).unwrap();
    net.send(out[1].destination, respond(&fwd2, 503, "Busy"));
    let up = net
        .out()
        .into_iter()
        .find(|t| t.destination == caller())
        .map(|t| Message::parse(t.bytes).unwrap())
        .unwrap();
    assert_eq!(up.status_code(), Some(500));
    assert_eq!(up.reason(), Some(&b"Held Here"[..]));
    net.drain_and_check();
}

#[test]
fn transactions_keep_copies_not_the_received_buffers() {
    use std::sync::atomic::Ordering;
    let mut net = Net::with_backends(Mode::Stateful, 1);
    let (inv, inv_freed) = chunked_datagram(invite("c1", "z9hG4bKinv1").as_bytes());
    net.send(caller(), inv);
    let out = net.out();
    assert_eq!(out.len(), 2, "{}", describe(&out));
    let fwd = Message::parse(out[1].bytes.clone()).unwrap();
    assert_eq!(net.proxy.transaction_count(), (1, 1));
    assert!(
        inv_freed.load(Ordering::SeqCst),
        "the INVITE's receive chunk is freed"
    );
    let (ringing, ringing_freed) = chunked_datagram(&respond(&fwd, 180, "Ringing"));
    net.send(backend(0), ringing);
    net.expect_one(caller());
    assert!(
        ringing_freed.load(Ordering::SeqCst),
        "the 180's receive chunk is freed"
    );
    assert_eq!(net.proxy.transaction_count(), (1, 1));
}

/// A response is ours by its top Via: our branch and our sent-by, whether the sent-by is
/// written as we wrote it or differently (parsed then); another host's sent-by is not.
#[test]
fn responses_are_matched_by_our_sent_by_however_it_is_written() {
    use sip_proxy::DropReason;
    for (sent_by, ours) in [
        ("127.0.0.1:5060", true),
        ("127.0.0.1", true),
        // Written differently: parsed, the same address.
        ("127.000.0.1:5060", true),
        ("127.0.0.2:5060", false),
        ("127.0.0.1:5061", false),
    ] {
        let mut net = Net::with_backends(Mode::Stateful, 1);
        let (_, fwd) = net.invite_forwarded("c1", "z9hG4bKinv1");
        let ringing = respond(&fwd, 180, "Ringing");
        let text = String::from_utf8(ringing.to_vec()).unwrap();
        let text = text.replacen(
            "SIP/2.0/UDP 127.0.0.1:5060;",
            &format!("SIP/2.0/UDP {sent_by};"),
            1,
        );
        net.send(backend(0), text);
        let up = net.out();
        let dropped = net.events.iter().any(|e| {
            matches!(
                e,
                Event::Dropped {
                    reason: DropReason::NotOurVia,
                    ..
                }
            )
        });
        assert_eq!(
            (up.len(), dropped),
            if ours { (1, false) } else { (0, true) },
            "{sent_by}: {}",
            describe(&up)
        );
    }
}

/// The hash algorithms that read From, To or the credentials' username get them from the
/// request: requests sharing that value go to one destination whatever their Call-ID,
/// and different values spread over the set.
#[test]
fn uri_and_username_hashes_keep_a_value_on_one_destination() {
    use sip_dispatch::Algorithm;
    for algorithm in [
        Algorithm::FromUriHash,
        Algorithm::ToUriHash,
        Algorithm::AuthUsernameHash,
    ] {
        let cfg = sip_proxy::ProxyConfig {
            algorithm,
            ..config(Mode::Stateful)
        };
        let mut net = Net::new(cfg, &list(4));
        let mut seen: std::collections::HashMap<usize, std::net::SocketAddr> = Default::default();
        for i in 0..40usize {
            let user = i % 8;
            let text = invite(&format!("h{i}"), &format!("z9hG4bKh{i}"));
            let text = match algorithm {
                Algorithm::FromUriHash => {
                    text.replace("<sip:alice@127.0.0.1:5070>;tag", &format!("<sip:u{user}@127.0.0.1:5070>;tag"))
                }
                Algorithm::ToUriHash => text.replace(
                    "To: <sip:service@127.0.0.1:5060>",
                    &format!("To: <sip:u{user}@example.com>"),
                ),
                _ => text.replace(
                    "CSeq: 1 INVITE\r\n",
                    &format!(
                        "CSeq: 1 INVITE\r\nAuthorization: Digest username=\"u{user}\", realm=\"x\", nonce=\"n\", uri=\"sip:service@127.0.0.1\", response=\"0\"\r\n"
                    ),
                ),
            };
            net.send(caller(), text);
            let out = net.out();
            assert_eq!(out.len(), 2, "{algorithm}: {}", describe(&out));
            let to = out[1].destination;
            assert_eq!(
                *seen.entry(user).or_insert(to),
                to,
                "{algorithm}: u{user} moved"
            );
        }
        let used: std::collections::HashSet<_> = seen.values().collect();
        assert!(
            used.len() >= 2,
            "{algorithm}: 8 values on {} destination(s)",
            used.len()
        );
    }
}

/// The previous hop's Via as forwarded: the first `rport` (whatever its case) gets the
/// source port, the first wrong `received` is replaced, later ones stay as they are, and
/// white space around the parameters (the reference parser's path) changes nothing.
#[test]
fn received_and_rport_go_where_the_first_such_parameter_is() {
    for (via, want) in [
        (
            "SIP/2.0/UDP 127.0.0.1:5070;RPORT;branch=z9hG4bKv1;rport",
            "SIP/2.0/UDP 127.0.0.1:5070;RPORT=5070;branch=z9hG4bKv1;rport;received=127.0.0.1",
        ),
        (
            "SIP/2.0/UDP client.example;received=10.0.0.1;branch=z9hG4bKv2;received=10.0.0.2",
            "SIP/2.0/UDP client.example;received=127.0.0.1;branch=z9hG4bKv2;received=10.0.0.2",
        ),
        (
            "SIP/2.0/UDP 127.0.0.1:5070 ;rport ; branch=z9hG4bKv3",
            "SIP/2.0/UDP 127.0.0.1:5070 ;rport=5070 ; branch=z9hG4bKv3;received=127.0.0.1",
        ),
        (
            "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKv5;rport",
            "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKv5;rport=5070;received=127.0.0.1",
        ),
        (
            "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKv4;rport=5070;received=127.0.0.1",
            "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKv4;rport=5070;received=127.0.0.1",
        ),
    ] {
        let mut net = Net::with_backends(Mode::Stateful, 1);
        let text = invite("c1", "z9hG4bKinv1").replace(
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKinv1;rport",
            &format!("Via: {via}"),
        );
        assert!(text.contains(via));
        net.send(caller(), text);
        let out = net.out();
        assert_eq!(out.len(), 2, "{via}: {}", describe(&out));
        let fwd = Message::parse(out[1].bytes.clone()).unwrap();
        let second = fwd.second_via().unwrap();
        assert_eq!(std::str::from_utf8(second).unwrap(), want, "{via}");
    }
}

/// A request routed by our cookie is accounted to its destination (outstanding until its
/// final response), also to a destination that a reload added after the proxy had
/// indexed the destinations by address.
#[test]
fn a_destination_added_by_a_reload_is_found_by_its_cookie() {
    let mut net = Net::with_backends(Mode::Stateful, 1);
    let call = |net: &mut Net, cid: &str, n: u32| -> (std::net::SocketAddr, Message) {
        net.send(caller(), invite(cid, &format!("z9hG4bKinv{n}")));
        let out = net.out();
        let fwd = out.iter().find(|t| t.destination != caller()).unwrap();
        let to = fwd.destination;
        let fwd = Message::parse(fwd.bytes.clone()).unwrap();
        net.send(to, respond(&fwd, 200, "OK"));
        let ok = net.expect_one(caller());
        net.send(
            caller(),
            in_dialog("ACK", &ok, &format!("z9hG4bKack{n}"), 1),
        );
        assert_eq!(net.expect_one(to).method(), Some(Method::Ack));
        (to, ok)
    };
    // The first call's ACK, routed by its cookie, makes the proxy index the destinations.
    let (to, _) = call(&mut net, "r1", 1);
    assert_eq!(to, backend(0));
    let report = net
        .dispatcher
        .reload(sip_dispatch::DestinationList::parse_kamailio(&list(2)).unwrap());
    assert_eq!(report.added.len(), 1);
    // Round robin gives one of the next two calls to the new destination.
    let (mut to, mut ok) = call(&mut net, "r2", 2);
    if to != backend(1) {
        (to, ok) = call(&mut net, "r3", 3);
    }
    assert_eq!(to, backend(1));
    net.send(caller(), in_dialog("BYE", &ok, "z9hG4bKbye2", 2));
    let bye = net.expect_one(backend(1));
    let added = net.dispatcher.snapshot().set(1).unwrap().destinations()[1].clone();
    assert_eq!(
        added.stats().outstanding,
        1,
        "the BYE is the new destination's"
    );
    net.send(backend(1), respond(&bye, 200, "OK"));
    assert_eq!(net.expect_one(caller()).status_code(), Some(200));
    assert_eq!(added.stats().outstanding, 0);
    net.drain_and_check();
}
