//! Parsing the same bytes with sip-core and with other Rust SIP parsers, in the same run.
//!
//! ```text
//! cargo bench -p sip-lb-benches --bench parse                    # sip-core and httparse only
//! cargo bench -p sip-lb-benches --bench parse --features peers   # + rsipstack, sipx-sip, rsip
//! ```
//! sip-core's figure includes locating the proxy essentials (top Via branch, Call-ID, CSeq,
//! tags, Max-Forwards, Content-Length, top Route) — it does that in its one pass anyway.
//! httparse parses only the header block (name/value splitting) and is the floor.
//! After criterion's groups, the bench prints "sip-core vs X: N.Nx" for each message.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sip_core::Message;

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
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

const OK_RR: &[u8] = b"SIP/2.0 200 OK\r\n\
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

const ACK: &[u8] = b"ACK sip:bob@192.0.2.4 SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds9;rport\r\n\
Route: <sip:10.0.0.1:5060;lr;lbd=0a00000113c4a1b2c3d4e5f60708>\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 ACK\r\n\
Content-Length: 0\r\n\r\n";

const BYE: &[u8] = b"BYE sip:bob@192.0.2.4 SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds10;rport\r\n\
Route: <sip:10.0.0.1:5060;lr;lbd=0a00000113c4a1b2c3d4e5f60708>\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314160 BYE\r\n\
Content-Length: 0\r\n\r\n";

const REGISTER: &[u8] = b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:bob@192.0.2.4>;expires=7200\r\n\
Authorization: Digest username=\"bob\", realm=\"biloxi.example.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:registrar.biloxi.example.com\", response=\"245f23415f11432b3434341c022\"\r\n\
Content-Length: 0\r\n\r\n";

fn deep_via() -> Vec<u8> {
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

fn sip_core_parse(b: &Bytes) -> usize {
    let m = Message::parse(b.clone()).expect("valid");
    // The essentials are located by the parse; touching them costs nothing more.
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

fn httparse_headers(b: &[u8]) -> usize {
    let start = b.iter().position(|&c| c == b'\n').map_or(0, |p| p + 1);
    let mut h = [httparse::EMPTY_HEADER; 32];
    match httparse::parse_headers(&b[start..], &mut h) {
        Ok(httparse::Status::Complete((n, hs))) => n + hs.len(),
        _ => 0,
    }
}

type Parser = (&'static str, fn(&Bytes) -> usize);

fn parsers() -> Vec<Parser> {
    #[allow(unused_mut)]
    let mut v: Vec<Parser> = vec![
        ("sip-core", sip_core_parse),
        ("httparse (headers only)", |b| httparse_headers(b)),
    ];
    #[cfg(feature = "peers")]
    {
        v.push(("rsipstack", |b| {
            usize::from(rsipstack::sip::parser::parse_message(b).is_ok())
        }));
        v.push(("sipx-sip", |b| {
            usize::from(sipx_sip::parse_datagram(b.clone(), &sipx_sip::Limits::default()).is_ok())
        }));
        v.push(("rsip", |b| {
            usize::from(rsip::SipMessage::try_from(&b[..]).is_ok())
        }));
    }
    v
}

/// Whether the parser accepts the message: a peer that rejects one is not timed on it
/// (failing fast is not parsing).
fn accepts(p: &str, f: fn(&Bytes) -> usize, b: &Bytes) -> bool {
    match p {
        "sip-core" => Message::parse(b.clone()).is_ok(),
        "httparse (headers only)" => httparse_headers(b) > 0,
        _ => f(b) == 1,
    }
}

fn messages() -> Vec<(&'static str, Bytes)> {
    vec![
        ("invite_sdp", Bytes::from_static(INVITE)),
        ("200_record_route", Bytes::from_static(OK_RR)),
        ("ack", Bytes::from_static(ACK)),
        ("bye", Bytes::from_static(BYE)),
        ("register_auth", Bytes::from_static(REGISTER)),
        ("deep_via", Bytes::from(deep_via())),
    ]
}

/// Median time per call over 9 batches of 20 000 calls.
fn time(f: fn(&Bytes) -> usize, msg: &Bytes) -> f64 {
    let mut v: Vec<f64> = (0..9)
        .map(|_| {
            let n = 20_000u32;
            let t = Instant::now();
            for _ in 0..n {
                black_box(f(black_box(msg)));
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[4]
}

fn bench(c: &mut Criterion) {
    for (name, msg) in messages() {
        let mut g = c.benchmark_group(format!("parse/{name}"));
        g.throughput(Throughput::Bytes(msg.len() as u64));
        for (p, f) in parsers() {
            if accepts(p, f, &msg) {
                g.bench_function(p, |b| b.iter(|| black_box(f(black_box(&msg)))));
            }
        }
        g.finish();
    }
    // Ratios, timed here on the same bytes in the same run (median of 9 batches).
    println!("\nsip-core vs each parser (their time / sip-core's time; higher = sip-core faster):");
    for (name, msg) in messages() {
        let ours = time(sip_core_parse, &msg);
        println!("  {name} ({} bytes): sip-core {ours:.0} ns", msg.len());
        let mut fastest: Option<(&str, f64)> = None;
        for (p, f) in parsers().into_iter().skip(1) {
            if !accepts(p, f, &msg) {
                println!("    {p:24} rejects this message: not compared");
                continue;
            }
            let t = time(f, &msg);
            println!("    sip-core vs {p:24} {t:>7.0} ns: {:.1}x", t / ours);
            if !p.starts_with("httparse") && fastest.is_none_or(|(_, ft)| t < ft) {
                fastest = Some((p, t));
            }
        }
        if let Some((p, t)) = fastest {
            println!(
                "    fastest full parser: {p}, sip-core {:.1}x faster",
                t / ours
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
