//! Benchmarks that cross crates; see `benches/benches/` and BENCHMARKS.md. This library
//! holds what several of them share: the messages parsed, the call driven through the proxy
//! core, the destination sets selected from.

/// Messages of the parse bench and the instruction counts.
pub mod messages {
    use std::hint::black_box;

    use bytes::Bytes;
    use sip_core::{Message, ParseOptions};

    /// Parses `b` with sip-core and touches the fields a proxy needs on every message
    /// (located by the parse itself); returns the message length. What the parse
    /// benches and the instruction count measure.
    pub fn parse_essentials(b: &Bytes) -> usize {
        read_essentials(&Message::parse(b.clone()).expect("valid"))
    }

    /// Reads what the parse pass located (the proxy essentials); returns the length.
    /// (Inlined: as a call, it made the by-value parse 123 instructions dearer.)
    #[inline(always)]
    fn read_essentials(m: &Message) -> usize {
        black_box((
            m.top_via_branch(),
            m.call_id(),
            m.cseq(),
            m.from_tag(),
            m.to_tag(),
            m.max_forwards(),
            m.content_length(),
            m.top_route_span(),
            (m.via_count(), m.route_count()),
        ));
        m.message_len()
    }

    /// [`parse_essentials`] into storage the caller keeps from one datagram to the next
    /// ([`Message::parse_in_place`], the `httparse` model and what the proxy does), so
    /// that no ~1 KiB `Message` is built and moved per parse.
    pub fn parse_essentials_in_place(b: &Bytes) -> usize {
        thread_local! {
            static MSG: std::cell::RefCell<Message> = std::cell::RefCell::new(Message::default());
        }
        MSG.with_borrow_mut(|m| {
            m.parse_in_place(b.clone(), &ParseOptions::default())
                .expect("valid");
            read_essentials(m)
        })
    }

    /// An INVITE with SDP of ~600 bytes.
    pub const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
    Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
    Max-Forwards: 70\r\n\
    To: Bob <sip:bob@biloxi.example.com>\r\n\
    From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
    Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
    CSeq: 314159 INVITE\r\n\
    Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
    Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n\
    User-Agent: example/1.0\r\n\
    Content-Type: application/sdp\r\n\
    Content-Length: 142\r\n\r\n\
    v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\ns=-\r\n\
    c=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    /// A 200 OK with a Record-Route list.
    pub const OK_RR: &[u8] = b"SIP/2.0 200 OK\r\n\
    Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKsLf0100000001.ab;rport=5060\r\n\
    Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;received=192.0.2.101\r\n\
    Record-Route: <sip:10.0.0.1:5060;lr;lbd=0a00000113c4a1b2c3d4e5f60708>\r\n\
    Record-Route: <sip:edge1.example.com;lr>, <sip:edge2.example.com;lr>\r\n\
    To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
    From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
    Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
    CSeq: 314159 INVITE\r\n\
    Contact: <sip:bob@192.0.2.4>\r\n\
    Content-Length: 0\r\n\r\n";

    /// An ACK routed by our Record-Route cookie.
    pub const ACK: &[u8] = b"ACK sip:bob@192.0.2.4 SIP/2.0\r\n\
    Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds9;rport\r\n\
    Route: <sip:10.0.0.1:5060;lr;lbd=0a00000113c4a1b2c3d4e5f60708>\r\n\
    Max-Forwards: 70\r\n\
    To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
    From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
    Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
    CSeq: 314159 ACK\r\n\
    Content-Length: 0\r\n\r\n";

    /// A BYE routed by our Record-Route cookie.
    pub const BYE: &[u8] = b"BYE sip:bob@192.0.2.4 SIP/2.0\r\n\
    Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds10;rport\r\n\
    Route: <sip:10.0.0.1:5060;lr;lbd=0a00000113c4a1b2c3d4e5f60708>\r\n\
    Max-Forwards: 70\r\n\
    To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
    From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
    Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
    CSeq: 314160 BYE\r\n\
    Content-Length: 0\r\n\r\n";

    /// A REGISTER with Authorization.
    pub const REGISTER: &[u8] = b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n\
    Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7;rport\r\n\
    Max-Forwards: 70\r\n\
    To: Bob <sip:bob@biloxi.example.com>\r\n\
    From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n\
    Call-ID: 843817637684230@998sdasdh09\r\n\
    CSeq: 1826 REGISTER\r\n\
    Contact: <sip:bob@192.0.2.4>;expires=7200\r\n\
    Authorization: Digest username=\"bob\", realm=\"biloxi.example.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:registrar.biloxi.example.com\", response=\"245f23415f11432b3434341c022\"\r\n\
    Content-Length: 0\r\n\r\n";

    /// Every message of the parse bench and the instruction counts, by the name both
    /// use (`count parse NAME N`).
    pub fn all() -> Vec<(&'static str, Bytes)> {
        vec![
            ("invite", Bytes::from_static(INVITE)),
            ("200-record-route", Bytes::from_static(OK_RR)),
            ("ack", Bytes::from_static(ACK)),
            ("bye", Bytes::from_static(BYE)),
            ("register", Bytes::from_static(REGISTER)),
            ("deep-via", Bytes::from(deep_via())),
        ]
    }

    /// A parse of one datagram as the benches call it: returns a figure of the result
    /// (sip-core: the message length; a peer: 1 when it accepted the message, 0 when not).
    pub type Parse = fn(&Bytes) -> usize;

    /// The other Rust SIP parsers compared with sip-core (feature `peers`), each as a
    /// function that parses a datagram and returns 1 when it accepted it, 0 when not
    /// (the shape of [`parse_essentials`], so that the benches call every parser alike).
    #[cfg(feature = "peers")]
    pub fn peers() -> Vec<(&'static str, Parse)> {
        vec![
            ("rsipstack", |b| {
                usize::from(rsipstack::sip::parser::parse_message(b).is_ok())
            }),
            ("sipx-sip", |b| {
                usize::from(
                    sipx_sip::parse_datagram(b.clone(), &sipx_sip::Limits::default()).is_ok(),
                )
            }),
            ("rsip", |b| {
                usize::from(rsip::SipMessage::try_from(&b[..]).is_ok())
            }),
        ]
    }

    /// A 180 Ringing with 12 Vias.
    pub fn deep_via() -> Vec<u8> {
        let mut m = b"SIP/2.0 180 Ringing\r\n".to_vec();
        for i in 0..12 {
            m.extend_from_slice(
                format!("Via: SIP/2.0/UDP proxy{i}.example.com:5060;branch=z9hG4bKhop{i}x7;received=192.0.2.{i}\r\n")
                    .as_bytes(),
            );
        }
        m.extend_from_slice(
            b"To: <sip:bob@biloxi.example.com>;tag=8321234356\r\nFrom: <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
              Call-ID: 3848276298220188511@atlanta.example.com\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        );
        m
    }
}

/// One call through the sans-IO proxy core, no I/O.
pub mod call {
    use std::hint::black_box;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use sip_core::builder::ResponseBuilder;
    use sip_core::{HeaderName, Message, Transport};
    use sip_dispatch::{DestinationList, Dispatcher};
    use sip_proxy::{CallTable, LocalEndpoint, Mode, Origin, Proxy, ProxyConfig};

    /// The balancer's address.
    pub const LB: &str = "127.0.0.1:5060";
    /// The caller's address.
    pub const CALLER: &str = "127.0.0.1:5070";

    /// An address from text.
    pub fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A proxy core with four UDP destinations (127.0.0.1:5080-5083), round robin.
    pub fn proxy(mode: Mode) -> Proxy {
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

    /// The INVITE of call `n`, as sipp writes it (~470 bytes with SDP).
    pub fn invite(n: u64) -> Bytes {
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

    /// A backend's response to `req` (To tag, Record-Route echoed).
    pub fn respond(req: &Message, code: u16, reason: &str) -> Bytes {
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

    /// Runs `iters` calls (INVITE, 100, 180, 200, ACK, BYE, 200, and the timers); returns the
    /// time spent inside the proxy.
    pub fn calls(p: &mut Proxy, start: &mut u64, now: &mut Instant, iters: u64) -> Duration {
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
}

/// Destination sets for the selection bench.
pub mod select {
    use std::time::{Duration, Instant};

    use sip_dispatch::{DestinationList, Dispatcher, SelectKey};

    /// The key of a selection: `cid` as Call-ID, authentication username, custom key
    /// and (its first byte) AOR, with fixed From, To and Request-URI.
    pub fn key(cid: &[u8]) -> SelectKey<'_> {
        SelectKey {
            call_id: cid,
            from_uri: b"sip:alice@atlanta.example.com",
            to_uri: b"sip:bob@biloxi.example.com",
            request_uri: b"sip:bob@192.0.2.4",
            auth_username: Some(cid),
            custom: Some(cid),
            aor: Some(&cid[..1]),
        }
    }

    /// A set of `n` destinations with unequal weights (1-7), priorities, `maxload`, `duid`s
    /// and some call, transaction and latency history.
    pub fn dispatcher(n: usize, now: Instant) -> Dispatcher {
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
}
