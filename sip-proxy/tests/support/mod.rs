//! A tiny in-memory network around one `Proxy` for scenario tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_core::builder::ResponseBuilder;
use sip_core::{HeaderName, Message, Transport};
use sip_dispatch::{DestinationList, Dispatcher};
use sip_proxy::{CallTable, Event, LocalEndpoint, Mode, Origin, Proxy, ProxyConfig, Transmit};

pub const LB: &str = "127.0.0.1:5060";
pub const CALLER: &str = "127.0.0.1:5070";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn backend(i: usize) -> SocketAddr {
    addr(&format!("127.0.0.1:{}", 5080 + i))
}

pub struct Net {
    pub proxy: Proxy,
    pub dispatcher: Arc<Dispatcher>,
    pub calls: Arc<CallTable>,
    pub now: Instant,
    pub events: Vec<Event>,
}

pub fn config(mode: Mode) -> ProxyConfig {
    ProxyConfig {
        mode,
        listeners: vec![LocalEndpoint::new(Transport::Udp, addr(LB))],
        cookie_key: b"test key".to_vec(),
        ..ProxyConfig::default()
    }
}

pub fn list(n: usize) -> String {
    (0..n)
        .map(|i| format!("1 sip:{}\n", backend(i)))
        .collect::<String>()
}

impl Net {
    pub fn new(cfg: ProxyConfig, list_text: &str) -> Net {
        let list = DestinationList::parse_kamailio(list_text).unwrap();
        let dispatcher = Arc::new(Dispatcher::new(list));
        let calls = Arc::new(CallTable::new());
        let now = Instant::now();
        let mut proxy = Proxy::new(cfg, dispatcher.clone(), calls.clone());
        proxy.start(now);
        Net {
            proxy,
            dispatcher,
            calls,
            now,
            events: Vec::new(),
        }
    }

    pub fn with_backends(mode: Mode, n: usize) -> Net {
        Net::new(config(mode), &list(n))
    }

    pub fn send(&mut self, from: SocketAddr, text: impl Into<Bytes>) {
        self.proxy
            .handle_datagram(self.now, Origin::udp(from, addr(LB)), text.into());
        self.collect_events();
    }

    pub fn collect_events(&mut self) {
        while let Some(e) = self.proxy.poll_event() {
            self.events.push(e);
        }
    }

    /// Every message the proxy wants to send now.
    pub fn out(&mut self) -> Vec<Transmit> {
        let mut v = Vec::new();
        while let Some(t) = self.proxy.poll_transmit() {
            v.push(t);
        }
        v
    }

    /// Exactly one message, to `to`, parsed.
    pub fn expect_one(&mut self, to: SocketAddr) -> Message {
        let out = self.out();
        assert_eq!(
            out.len(),
            1,
            "expected one message to {to}, got {}",
            describe(&out)
        );
        assert_eq!(out[0].destination, to, "{}", describe(&out));
        Message::parse(out[0].bytes.clone()).unwrap()
    }

    /// Sends the caller's INVITE and returns what the proxy sent for it (its 100 Trying
    /// to the caller, then the INVITE to a backend) with the forwarded INVITE parsed.
    pub fn invite_forwarded(&mut self, call_id: &str, branch: &str) -> (Vec<Transmit>, Message) {
        self.send(addr(CALLER), invite(call_id, branch));
        let out = self.out();
        assert!(out.len() >= 2, "{}", describe(&out));
        assert_eq!(out[0].destination, addr(CALLER), "{}", describe(&out));
        let fwd = Message::parse(out[1].bytes.clone()).unwrap();
        assert_eq!(
            fwd.method(),
            Some(sip_core::Method::Invite),
            "{}",
            describe(&out)
        );
        (out, fwd)
    }

    pub fn expect_none(&mut self) {
        let out = self.out();
        assert!(out.is_empty(), "expected nothing, got {}", describe(&out));
    }

    /// Advances time to `at` (relative to now) firing timers on the way.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(t) = self.proxy.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.proxy.handle_timeout(self.now);
            self.collect_events();
        }
        self.now = end;
        self.proxy.handle_timeout(self.now);
        self.collect_events();
    }

    /// Advances time, collecting everything sent.
    pub fn advance_collect(&mut self, by: Duration) -> Vec<Transmit> {
        let end = self.now + by;
        let mut all = Vec::new();
        while let Some(t) = self.proxy.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.proxy.handle_timeout(self.now);
            self.collect_events();
            all.extend(self.out());
        }
        self.now = end;
        self.proxy.handle_timeout(self.now);
        self.collect_events();
        all.extend(self.out());
        all
    }

    /// Lets every transaction end, then checks that nothing is left and every counter is
    /// back to zero.
    pub fn drain_and_check(&mut self) {
        let _ = self.advance_collect(Duration::from_secs(200));
        assert_eq!(self.proxy.transaction_count(), (0, 0), "transactions left");
        for set in self.dispatcher.snapshot().sets() {
            for d in set.destinations() {
                let s = d.stats();
                assert_eq!(s.outstanding, 0, "outstanding transactions on {}", d.uri());
            }
        }
    }

    pub fn active_calls(&self, i: usize) -> u64 {
        self.dispatcher.snapshot().set(1).unwrap().destinations()[i]
            .stats()
            .active_calls as u64
    }
}

pub fn describe(out: &[Transmit]) -> String {
    out.iter()
        .map(|t| {
            let first = t.bytes.split(|&b| b == b'\r').next().unwrap_or_default();
            format!("[{} -> {}]", String::from_utf8_lossy(first), t.destination)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn invite(call_id: &str, branch: &str) -> String {
    format!(
        "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag=a-{call_id}\r\n\
         To: <sip:service@127.0.0.1:5060>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@127.0.0.1:5070>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: 4\r\n\r\nv=0\n"
    )
}

pub fn request(method: &str, call_id: &str, branch: &str, cseq: u32) -> String {
    format!(
        "{method} sip:service@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.1:5070>;tag=a-{call_id}\r\n\
         To: <sip:service@127.0.0.1:5060>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A response of the backend to the request it received (Vias copied, To tag added,
/// Record-Route echoed as a UAS does for dialog-creating requests).
pub fn respond(req: &Message, code: u16, reason: &str) -> Bytes {
    let rr: Vec<&[u8]> = req
        .headers_named(HeaderName::RecordRoute)
        .map(|h| h.value)
        .collect();
    let mut b = ResponseBuilder::new(req, code, reason).to_tag(b"b1");
    for v in rr {
        b = b.header(b"Record-Route", v);
    }
    if (200..300).contains(&code) {
        b = b.header(b"Contact", b"<sip:service@127.0.0.1:5080>");
    }
    b.build()
}

/// An in-dialog request from the caller after a 2xx: Route set from the 2xx's
/// Record-Route (reversed), Request-URI the callee's Contact.
pub fn in_dialog(method: &str, ok: &Message, branch: &str, cseq: u32) -> String {
    let mut routes: Vec<String> = ok
        .headers_named(HeaderName::RecordRoute)
        .flat_map(|h| {
            String::from_utf8_lossy(h.value)
                .split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    routes.reverse();
    let route_lines: String = routes.iter().map(|r| format!("Route: {r}\r\n")).collect();
    let cid = String::from_utf8_lossy(ok.call_id().unwrap()).to_string();
    let to = String::from_utf8_lossy(ok.header(HeaderName::To).unwrap()).to_string();
    let from = String::from_utf8_lossy(ok.header(HeaderName::From).unwrap()).to_string();
    format!(
        "{method} sip:service@127.0.0.1:5080 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\n\
         {route_lines}Max-Forwards: 70\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}
