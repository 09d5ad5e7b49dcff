//! Fuzz the sans-IO proxy core: a script of the fuzzer's choosing of requests from a
//! caller (INVITE, CANCEL, BYE, OPTIONS, mutated or raw bytes), responses from the
//! backends to whatever the proxy sent them (any status code), echoes of the proxy's own
//! messages, and time passing, in stateful or stateless mode.
//!
//! Checks: nothing panics; every message the proxy sends to a backend parses; once the timers have run
//! out, no transaction is left and no destination has an outstanding transaction.
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip_core::builder::ResponseBuilder;
use sip_core::{HeaderName, Message, Transport};
use sip_dispatch::{DestinationList, Dispatcher, DispatcherOptions};
use sip_proxy::{CallTable, LocalEndpoint, Mode, Origin, Proxy, ProxyConfig, Transmit};

const CODES: [u16; 12] = [100, 180, 183, 200, 302, 404, 408, 486, 487, 500, 503, 603];

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn request(method: &str, call: u8, cseq: u32, to_tag: bool) -> Vec<u8> {
    format!(
        "{method} sip:service@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{method}{call}{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1:5070>;tag=f{call}\r\n\
         To: <sip:service@127.0.0.1:5060>{}\r\nCall-ID: fuzz-{call}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:a@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n",
        if to_tag { ";tag=b1" } else { "" }
    )
    .into_bytes()
}

fn respond(req: &Message, code: u16) -> Bytes {
    let mut b = ResponseBuilder::new(req, code, "Fuzz").to_tag(b"b1");
    let rr: Vec<&[u8]> = req.headers_named(HeaderName::RecordRoute).map(|h| h.value).collect();
    for v in rr {
        b = b.header(b"Record-Route", v);
    }
    b.build()
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let mode = if first & 1 == 0 { Mode::Stateful } else { Mode::Stateless };
    let lb = a("127.0.0.1:5060");
    let caller = a("127.0.0.1:5070");
    let list = DestinationList::parse_kamailio(
        "1 sip:127.0.0.1:5080\n1 sip:127.0.0.1:5081\n1 sip:127.0.0.1:5082\n",
    )
    .unwrap();
    // Round robin needs no hash slot table; building one (65 536 slots scored per
    // destination) took three quarters of every run.
    let options = DispatcherOptions { hash_slots: false, ..DispatcherOptions::default() };
    let dispatcher = Arc::new(Dispatcher::with_options(list, options));
    let cfg = ProxyConfig {
        mode,
        listeners: vec![LocalEndpoint::new(Transport::Udp, lb)],
        cookie_key: b"fuzz".to_vec(),
        ..ProxyConfig::default()
    };
    let mut p = Proxy::new(cfg, dispatcher.clone(), Arc::new(CallTable::new()));
    let mut now = Instant::now();
    p.start(now);
    let mut sent: Vec<Transmit> = Vec::new();
    let take = |n: usize, rest: &mut &[u8]| -> Vec<u8> {
        let k = n.min(rest.len());
        let (h, t) = rest.split_at(k);
        *rest = t;
        h.to_vec()
    };
    let mut steps = 0;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        steps += 1;
        if steps > 64 {
            break;
        }
        let call = (op >> 3) & 3;
        let arg = take(2, &mut rest);
        let x = arg.first().copied().unwrap_or(0);
        let y = arg.get(1).copied().unwrap_or(0);
        match op & 7 {
            0 => p.handle_datagram(now, Origin::udp(caller, lb), request("INVITE", call, 1, false).into()),
            1 => p.handle_datagram(now, Origin::udp(caller, lb), request("CANCEL", call, 1, false).into()),
            2 => p.handle_datagram(now, Origin::udp(caller, lb), request("BYE", call, 2, true).into()),
            3 => {
                // A backend answers the x-th last request the proxy sent it.
                let reqs: Vec<(SocketAddr, Message)> = sent
                    .iter()
                    .rev()
                    .filter_map(|t| Some((t.destination, Message::parse(t.bytes.clone()).ok()?)))
                    .filter(|(_, m)| m.is_request())
                    .take(8)
                    .collect();
                if !reqs.is_empty() {
                    let (to, m) = &reqs[x as usize % reqs.len()];
                    let code = CODES[y as usize % CODES.len()];
                    p.handle_datagram(now, Origin::udp(*to, lb), respond(m, code));
                }
            }
            4 => {
                if !sent.is_empty() {
                    let t = &sent[sent.len() - 1 - (x as usize % sent.len())];
                    let from = if y & 1 == 0 { a("127.0.0.1:5080") } else { caller };
                    p.handle_datagram(now, Origin::udp(from, lb), t.bytes.clone());
                }
            }
            5 => {
                let raw = take(x as usize, &mut rest);
                let from = if y & 1 == 0 { caller } else { a("127.0.0.1:5081") };
                p.handle_datagram(now, Origin::udp(from, lb), Bytes::from(raw));
            }
            6 => {
                let mut m = request(if y & 1 == 0 { "INVITE" } else { "ACK" }, call, 1, y & 2 != 0);
                let at = x as usize % m.len();
                m[at] = y;
                p.handle_datagram(now, Origin::udp(caller, lb), m.into());
            }
            _ => {
                now += Duration::from_millis(u64::from(x) * 50);
                p.handle_timeout(now);
            }
        }
        while let Some(t) = p.poll_transmit() {
            // Nothing malformed ever reaches a backend (a reply to a malformed request, on
            // the other hand, echoes its Via and may not parse).
            if t.destination != caller
                && let Err(e) = Message::parse(t.bytes.clone())
            {
                panic!("sent to a backend, does not parse ({e}):\n{}", String::from_utf8_lossy(&t.bytes));
            }
            sent.push(t);
        }
        while p.poll_event().is_some() {}
        if sent.len() > 64 {
            sent.drain(..32);
        }
    }
    // Let every timer run out: half-second steps through the transaction timers (64·T1
    // = 32 s), then longer ones to past Timer C (3 minutes).
    for i in 0..130 {
        now += Duration::from_millis(if i < 80 { 500 } else { 4000 });
        p.handle_timeout(now);
        while p.poll_transmit().is_some() {}
        while p.poll_event().is_some() {}
    }
    assert_eq!(p.transaction_count(), (0, 0), "transactions left");
    for set in dispatcher.snapshot().sets() {
        for d in set.destinations() {
            assert_eq!(d.stats().outstanding, 0, "outstanding transactions on {}", d.uri());
        }
    }
});
