//! One full call through the sans-IO proxy core, no I/O, one core: INVITE, 100, 180,
//! 200, ACK, BYE, 200 (7 messages, both directions), in stateful and stateless mode.
//! Only the time spent inside the proxy is measured (building the backend's responses is
//! the test harness's work and is excluded).
//!
//! `cargo bench -p sip-lb-benches --bench proxy`

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use sip_core::builder::ResponseBuilder;
use sip_core::{HeaderName, Message, Transport};
use sip_dispatch::{DestinationList, Dispatcher};
use sip_proxy::{CallTable, LocalEndpoint, Mode, Origin, Proxy, ProxyConfig};

const LB: &str = "127.0.0.1:5060";
const CALLER: &str = "127.0.0.1:5070";

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn proxy(mode: Mode) -> Proxy {
    let list = DestinationList::parse_kamailio(
        "1 sip:127.0.0.1:5080\n1 sip:127.0.0.1:5081\n1 sip:127.0.0.1:5082\n1 sip:127.0.0.1:5083\n",
    )
    .unwrap();
    let cfg = ProxyConfig {
        mode,
        listeners: vec![LocalEndpoint::new(Transport::Udp, a(LB))],
        cookie_key: b"bench".to_vec(),
        ..ProxyConfig::default()
    };
    Proxy::new(
        cfg,
        Arc::new(Dispatcher::new(list)),
        Arc::new(CallTable::new()),
    )
}

fn invite(n: u64) -> Bytes {
    Bytes::from(format!(
        "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{n}-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"sipp\" <sip:sipp@127.0.0.1:5070>;tag={n}SIPpTag001\r\n\
         To: <sip:service@127.0.0.1:5060>\r\n\
         Call-ID: {n}-bench@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:sipp@127.0.0.1:5070>\r\n\
         Subject: Performance Test\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: 129\r\n\r\n\
         v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
         t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    ))
}

fn in_dialog(method: &str, ok: &Message, n: u64, cseq: u32) -> Bytes {
    let rr = ok.header(HeaderName::RecordRoute).unwrap();
    Bytes::from(format!(
        "{method} sip:service@127.0.0.1:5080 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{n}-{cseq};rport\r\n\
         Route: {}\r\n\
         Max-Forwards: 70\r\n\
         From: \"sipp\" <sip:sipp@127.0.0.1:5070>;tag={n}SIPpTag001\r\n\
         To: {}\r\n\
         Call-ID: {n}-bench@127.0.0.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n",
        String::from_utf8_lossy(rr),
        String::from_utf8_lossy(ok.header(HeaderName::To).unwrap()),
    ))
}

fn respond(req: &Message, code: u16, reason: &str) -> Bytes {
    let mut b = ResponseBuilder::new(req, code, reason).to_tag(b"b1");
    let rr: Vec<&[u8]> = req
        .headers_named(HeaderName::RecordRoute)
        .map(|h| h.value)
        .collect();
    for v in rr {
        b = b.header(b"Record-Route", v);
    }
    b.build()
}

/// Runs `iters` calls; returns the time spent inside the proxy.
fn calls(p: &mut Proxy, start: &mut u64, now: &mut Instant, iters: u64) -> Duration {
    let caller = Origin::udp(a(CALLER), a(LB));
    let mut inside = Duration::ZERO;
    let mut last = None;
    for _ in 0..iters {
        *start += 1;
        let n = *start;
        *now += Duration::from_micros(200);
        let inv = invite(n);
        let t = Instant::now();
        p.handle_datagram(*now, caller, inv);
        let mut fwd = None;
        while let Some(x) = p.poll_transmit() {
            fwd = Some(x);
        }
        inside += t.elapsed();
        let fwd = fwd.unwrap();
        let backend = Origin::udp(fwd.destination, a(LB));
        let req = Message::parse(fwd.bytes).unwrap();
        let r100 = respond(&req, 100, "Trying");
        let r180 = respond(&req, 180, "Ringing");
        let r200 = respond(&req, 200, "OK");
        let t = Instant::now();
        p.handle_datagram(*now, backend, r100);
        p.handle_datagram(*now, backend, r180);
        p.handle_datagram(*now, backend, r200);
        let mut ok = None;
        while let Some(x) = p.poll_transmit() {
            ok = Some(x);
        }
        inside += t.elapsed();
        let ok = Message::parse(ok.unwrap().bytes).unwrap();
        let ack = in_dialog("ACK", &ok, n, 1);
        let bye = in_dialog("BYE", &ok, n, 2);
        let t = Instant::now();
        p.handle_datagram(*now, caller, ack);
        p.handle_datagram(*now, caller, bye);
        let mut fbye = None;
        while let Some(x) = p.poll_transmit() {
            fbye = Some(x);
        }
        inside += t.elapsed();
        let fbye = Message::parse(fbye.unwrap().bytes).unwrap();
        let r = respond(&fbye, 200, "OK");
        let t = Instant::now();
        p.handle_datagram(*now, backend, r);
        while let Some(x) = p.poll_transmit() {
            last = Some(x);
        }
        // Timers (transaction clean-up) are part of the cost of a call.
        p.handle_timeout(*now);
        while p.poll_event().is_some() {}
        inside += t.elapsed();
    }
    black_box(last);
    inside
}

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
