//! Proof of the end-to-end harness itself, without sip-lb in between: sipp callers
//! against sipp backends running the scenarios of `tests/scenarios/`, on loopback.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use support::*;

#[test]
fn a_caller_honouring_record_route_against_one_backend_directly() {
    let _g = serial();
    let dir = TestDir::new("harness-direct");
    let backend = Backend::start(&dir, free_port(), Duration::from_secs(60));
    let r = sipp_uac(
        &dir,
        backend.addr(),
        "caller.xml",
        50,
        100,
        "u1",
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(
        (r.successful, r.failed, r.created),
        (50, 0, 50),
        "{}",
        r.log
    );
    assert_eq!(r.exit, Some(0), "{}", r.log);
    assert!(
        backend.wait_counts(Duration::from_secs(5), |b| b.calls() == 50),
        "{:?}",
        backend.counts()
    );
    // The readiness probe is the only OPTIONS; no call was cancelled.
    assert_eq!((backend.probes(), backend.cancels()), (1, 0));
}

#[test]
fn probes_and_calls_are_counted_apart_and_cancel_before_answer_works() {
    let _g = serial();
    let dir = TestDir::new("harness-mixed");
    let backend = Backend::start(&dir, free_port(), Duration::from_secs(60));
    for _ in 0..4 {
        assert_eq!(options_ping(backend.addr()), Some(200));
    }
    let r = sipp_uac(
        &dir,
        backend.addr(),
        "uac_cancel.xml",
        10,
        50,
        "u1",
        &[],
        Duration::from_secs(30),
    );
    r.assert_all_succeeded(10, "");
    let r = sipp_uac(
        &dir,
        backend.addr(),
        "caller.xml",
        20,
        100,
        "u1",
        &[],
        Duration::from_secs(30),
    );
    r.assert_all_succeeded(20, "");
    assert_eq!(options_ping(backend.addr()), Some(200));
    assert!(
        backend.wait_counts(Duration::from_secs(5), |b| b.calls() == 30
            && b.probes() == 6
            && b.cancels() == 10),
        "{:?}",
        backend.counts()
    );
}

/// Through a stateful proxy an INVITE carries two Vias and the proxy's CANCEL only one:
/// the backend's 487 must carry the INVITE's Vias (RFC 3261 §9.2), not the CANCEL's.
#[test]
fn the_backend_answers_a_proxied_cancel_with_the_invite_vias() {
    let _g = serial();
    let dir = TestDir::new("harness-487");
    let backend = Backend::start(&dir, free_port(), Duration::from_secs(30));
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = s.local_addr().unwrap();
    let to = backend.addr();
    let common = format!(
        "From: <sip:a@{me}>;tag=f1\r\nTo: <sip:b@{to}>\r\nCall-ID: cancel-vias-{}\r\nMax-Forwards: 69\r\n",
        std::process::id()
    );
    let invite = format!(
        "INVITE sip:b@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKproxy1\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKcaller1;received=127.0.0.1\r\n\
         {common}CSeq: 7 INVITE\r\nContact: <sip:a@{me}>\r\nContent-Length: 0\r\n\r\n"
    );
    s.send_to(invite.as_bytes(), to).unwrap();
    let recv = |want: &str| -> String {
        let mut buf = [0u8; 4096];
        loop {
            let (n, _) = s.recv_from(&mut buf).expect(want);
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            if m.starts_with(want) {
                return m;
            }
        }
    };
    recv("SIP/2.0 180");
    let cancel = format!(
        "CANCEL sip:b@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKproxy1\r\n\
         {common}CSeq: 7 CANCEL\r\nContent-Length: 0\r\n\r\n"
    );
    s.send_to(cancel.as_bytes(), to).unwrap();
    let ok = recv("SIP/2.0 200");
    assert!(ok.contains("CSeq: 7 CANCEL"), "{ok}");
    assert_eq!(ok.matches("Via:").count(), 1, "{ok}");
    let t487 = recv("SIP/2.0 487");
    assert!(t487.contains("CSeq: 7 INVITE"), "{t487}");
    assert!(
        t487.contains(&format!(
            "Via: SIP/2.0/UDP {me};branch=z9hG4bKproxy1\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKcaller1;received=127.0.0.1\r\n"
        )),
        "{t487}"
    );
    let to_tag = t487
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .to_string();
    let ack = format!(
        "ACK sip:b@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKproxy1\r\n\
         From: <sip:a@{me}>;tag=f1\r\n{to_tag}\r\nCall-ID: cancel-vias-{}\r\nMax-Forwards: 69\r\n\
         CSeq: 7 ACK\r\nContent-Length: 0\r\n\r\n",
        std::process::id()
    );
    s.send_to(ack.as_bytes(), to).unwrap();
    assert!(backend.wait_counts(Duration::from_secs(5), |b| b.cancels() == 1));
}

/// The harness sees failures: calls to a port where nobody answers fail, and sipp's exit
/// code says so.
#[test]
fn the_harness_reports_failed_calls() {
    let _g = serial();
    let dir = TestDir::new("harness-fail");
    // Bound and silent: datagrams are swallowed, no ICMP.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target: SocketAddr = silent.local_addr().unwrap();
    let r = sipp_uac(
        &dir,
        target,
        "caller.xml",
        3,
        10,
        "u1",
        &["-recv_timeout", "1000"],
        Duration::from_secs(20),
    );
    assert_eq!(r.successful, 0, "{}", r.log);
    assert_eq!(r.failed, 3, "{}", r.log);
    assert_ne!(r.exit, Some(0), "{}", r.log);
}

/// A process of the harness is stopped, by its PID, when its handle is dropped.
#[test]
fn dropping_a_backend_stops_its_process() {
    let _g = serial();
    let dir = TestDir::new("harness-drop");
    let backend = Backend::start(&dir, free_port(), Duration::from_secs(60));
    let addr = backend.addr();
    assert_eq!(options_ping(addr), Some(200));
    drop(backend);
    assert_eq!(options_ping(addr), None);
}

/// The harness with sip-lb in between: per-backend call counts stay exact while probes
/// run, and a CANCEL before answer goes through.
#[test]
fn through_sip_lb_calls_are_counted_per_backend_apart_from_probes() {
    let _g = serial();
    let dir = TestDir::new("harness-lb");
    let backends: Vec<Backend> = (0..4)
        .map(|_| Backend::start(&dir, free_port(), Duration::from_secs(120)))
        .collect();
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();
    let list = write_list(&dir, &ports);
    let lb = SipLb::start(
        &dir,
        &[
            "--dispatcher-list",
            list.to_str().unwrap(),
            "--algorithm",
            "4",
        ],
    );
    let r = sipp_uac(
        &dir,
        lb.addr,
        "caller.xml",
        200,
        100,
        "u1",
        &[],
        Duration::from_secs(60),
    );
    r.assert_all_succeeded(200, "");
    let r = sipp_uac(
        &dir,
        lb.addr,
        "uac_cancel.xml",
        8,
        20,
        "u1",
        &[],
        Duration::from_secs(30),
    );
    r.assert_all_succeeded(8, "");
    for b in &backends {
        assert!(
            b.wait_counts(Duration::from_secs(5), |b| b.calls() == 52
                && b.cancels() == 2),
            "backend {}: {:?}",
            b.port,
            b.counts()
        );
        // sip-lb probed it at start (the readiness probe of the harness is the other one).
        assert!(b.probes() >= 2, "backend {}: {:?}", b.port, b.counts());
    }
}
