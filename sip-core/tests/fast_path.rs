//! The parser's fast path against its reference parser.
//!
//! `Message::parse` first tries a fast path that recognises the usual shapes of message
//! and leaves everything else to the reference parser. The contract: whenever the fast
//! path takes a message, the reference parser returns exactly the same message. Here:
//! the messages real SIP software sends take the fast path; every corpus message, and
//! every one-byte change, insertion and deletion of the typical messages, gets the same
//! answer from both (and from `Message::parse`).

use bytes::Bytes;
use sip_core::uri::Uri;
use sip_core::via::Via;
use sip_core::{Framing, HeaderName, Limits, Message, ParseOptions};

/// Messages as sipp, Kamailio, Asterisk and sip-lb itself write them.
const TYPICAL: &[&[u8]] = &[
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
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
c=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
    b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKsLf0100000001.ab;rport=5060\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;received=192.0.2.101\r\n\
Record-Route: <sip:10.0.0.1:5060;lr;lbd=0a00000113c4a1b2c3d4e5f60708>\r\n\
Record-Route: <sip:edge1.example.com;lr>, <sip:edge2.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:bob@192.0.2.4>\r\n\
Content-Length: 0\r\n\r\n",
    b"ACK sip:bob@192.0.2.4 SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds9;rport\r\n\
Route: <sip:10.0.0.1:5060;lr;lbd=0a00000113c4a1b2c3d4e5f60708>\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 ACK\r\n\
Content-Length: 0\r\n\r\n",
    b"BYE sip:service@127.0.0.1:5080 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-4711-2;rport\r\n\
Route: <sip:127.0.0.1:5060;lr;lbd=01_7f000001_13d8_9c1e2f3a4b5c6d7e>, <sip:10.1.1.1;lr>\r\n\
Max-Forwards: 70\r\n\
From: \"sipp\" <sip:sipp@127.0.0.1:5070>;tag=4711SIPpTag001\r\n\
To: <sip:service@127.0.0.1:5060>;tag=b1\r\n\
Call-ID: 4711-bench@127.0.0.1\r\n\
CSeq: 2 BYE\r\n\
Content-Length: 0\r\n\r\n",
    b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:bob@192.0.2.4>;expires=7200\r\n\
Authorization: Digest username=\"bob\", realm=\"biloxi.example.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:registrar.biloxi.example.com\", response=\"245f23415f11432b3434341c022\"\r\n\
Content-Length: 0\r\n\r\n",
    b"OPTIONS sip:127.0.0.1:5080 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:40123;branch=z9hG4bKsLp00000000000000001.0;rport\r\n\
From: <sip:sip-lb@127.0.0.1>;tag=probe1\r\n\
To: <sip:127.0.0.1:5080>\r\n\
Call-ID: probe-1-127.0.0.1\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n",
    b"CANCEL sip:service@127.0.0.1:5060 SIP/2.0\r\n\
v: SIP/2.0/TCP [::1]:5070;branch=z9hG4bK-1-1\r\n\
f: sipp <sip:sipp@[::1]:5070>;tag=1\r\n\
t: <sip:service@[::1]:5060>\r\n\
i: 1-compact@::1\r\n\
CSeq: 1 CANCEL\r\n\
l: 0\r\n\r\n",
    b"SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP 127.0.0.1:40123;branch=z9hG4bKsLf01000000010000002.1a2b3c4d;rport=40123;received=127.0.0.1\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-4711-1;rport=5070\r\n\
Record-Route: <sip:127.0.0.1:5060;lr;lbd=01_7f000001_13d8_9c1e2f3a4b5c6d7e>\r\n\
From: \"sipp\" <sip:sipp@127.0.0.1:5070>;tag=4711SIPpTag001\r\n\
To: <sip:service@127.0.0.1:5060>;tag=b1\r\n\
Call-ID: 4711-bench@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:127.0.0.1:5080;transport=UDP>\r\n\
Content-Length: 0\r\n\r\n",
];

/// Messages that take the fast path although they are unusual in one respect.
const ALSO_FAST: &[&[u8]] = &[
    // An extension method and an unknown header.
    b"FOO sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nX-Tenant: a b c\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: c1\r\nCSeq: 1 FOO\r\nContent-Length: 0\r\n\r\n",
    // No Content-Length on a datagram: the body runs to the end.
    b"MESSAGE sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: sip:a@b;tag=1\r\nTo: sip:c@d\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\n\r\nhello",
];

fn opts(framing: Framing, limits: Limits) -> ParseOptions {
    ParseOptions { limits, framing }
}

/// The URI and Via views' fast paths agree with their reference parsers on `s`;
/// returns how many of the two fast paths took it.
fn views_agree(s: &[u8]) -> usize {
    let mut n = 0;
    if let Some(f) = Uri::parse_fast(s) {
        assert_eq!(
            Uri::parse_reference(s),
            Ok(f),
            "URI {}",
            String::from_utf8_lossy(s)
        );
        n += 1;
    }
    if let Some(f) = Via::parse_fast(s) {
        assert_eq!(
            Via::parse_reference(s),
            Ok(f),
            "Via {}",
            String::from_utf8_lossy(s)
        );
        n += 1;
    }
    n
}

fn option_sets() -> Vec<ParseOptions> {
    let small = Limits {
        max_message_size: 400,
        max_headers: 9,
        max_line_length: 80,
        max_uri_length: 24,
        max_via: 1,
        max_route: 1,
    };
    vec![
        opts(Framing::Datagram, Limits::default()),
        opts(Framing::Stream, Limits::default()),
        opts(Framing::Datagram, small),
    ]
}

/// What the parse pass kept of the top Via and the Request-URI equals what parsing their
/// text again gives, and the second Via is the second of all Via values.
fn kept_views_agree(m: &Message) {
    let text = m.top_via_span().map(|(_, s)| m.slice(s));
    assert_eq!(
        m.top_via(),
        text.and_then(|t| Via::parse(t).ok()),
        "top Via of\n{}",
        String::from_utf8_lossy(m.as_bytes())
    );
    assert_eq!(
        m.request_uri_parsed().map(Some),
        m.request_uri().map(|u| Uri::parse(u).ok()),
        "Request-URI of\n{}",
        String::from_utf8_lossy(m.as_bytes())
    );
    assert_eq!(
        m.top_via_nat(),
        m.top_via().map(|v| v.nat()),
        "top Via's received and rport of\n{}",
        String::from_utf8_lossy(m.as_bytes())
    );
    assert_eq!(
        (m.from_index(), m.to_index()),
        (
            m.headers_named(HeaderName::From).next().map(|h| h.index),
            m.headers_named(HeaderName::To).next().map(|h| h.index)
        ),
        "From and To lines of\n{}",
        String::from_utf8_lossy(m.as_bytes())
    );
    assert_eq!(
        m.request_uri_scheme(),
        m.request_uri_parsed().map(|u| u.scheme()),
        "Request-URI scheme of\n{}",
        String::from_utf8_lossy(m.as_bytes())
    );
    assert_eq!(
        m.second_via(),
        m.header_values(HeaderName::Via).nth(1).map(|(_, v)| v),
        "second Via of\n{}",
        String::from_utf8_lossy(m.as_bytes())
    );
}

thread_local! {
    /// One message every check parses into, whatever it held before.
    static REUSED: std::cell::RefCell<Message> = std::cell::RefCell::new(Message::default());
}

/// Checks the contract on `b` under every option set; returns whether the fast path took
/// it with the default options.
fn agree(b: &[u8]) -> bool {
    let mut taken = false;
    for (k, o) in option_sets().iter().enumerate() {
        let fast = Message::parse_fast_path(Bytes::copy_from_slice(b), o);
        let reference = Message::parse_reference(Bytes::copy_from_slice(b), o);
        let parsed = Message::parse_with(Bytes::copy_from_slice(b), o);
        if let Ok(m) = &parsed {
            kept_views_agree(m);
        }
        // Parsing into storage that held every message before gives the same answer.
        REUSED.with_borrow_mut(|m| {
            let r = m.parse_in_place(Bytes::copy_from_slice(b), o);
            match &parsed {
                Ok(p) => assert_eq!((&r, &*m), (&Ok(()), p), "parse_in_place differs"),
                Err(e) => assert_eq!((&r, &*m), (&Err(*e), &Message::default())),
            }
        });
        assert_eq!(
            parsed,
            reference,
            "parse_with and the reference parser differ on\n{}",
            String::from_utf8_lossy(b)
        );
        if let Some(f) = fast {
            assert_eq!(
                reference.as_ref(),
                Ok(&f),
                "the fast path accepted what the reference parser sees otherwise ({o:?}):\n{}",
                String::from_utf8_lossy(b)
            );
            taken |= k == 0;
        }
    }
    taken
}

#[test]
fn typical_messages_take_the_fast_path() {
    for m in TYPICAL.iter().chain(ALSO_FAST) {
        assert!(
            agree(m),
            "not on the fast path:\n{}",
            String::from_utf8_lossy(m)
        );
    }
}

#[test]
fn the_second_via_and_the_kept_top_via_whatever_the_via_lines_look_like() {
    let head = "SIP/2.0 200 OK\r\n";
    let tail = "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let a = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa;rport=5060;received=127.0.0.2";
    let b = "SIP/2.0/TCP [::1]:5070;branch=z9hG4bKb";
    let c = "SIP/2.0/UDP host.example;branch=z9hG4bKc;rport";
    for vias in [
        format!("Via: {a}\r\n"),
        format!("Via: {a}\r\nVia: {b}\r\n"),
        format!("Via: {a},{b}\r\n"),
        format!("Via: {a}, {b}\r\nVia: {c}\r\n"),
        format!("Via: {a} ,{b}\r\n"),
        format!("v: {a}\r\nX-Other: x\r\nv: {b},{c}\r\n"),
        format!("Via: {a}\r\nVia: {b} , {c}\r\n"),
        format!("Via: {a},\r\n {b}\r\n"),
    ] {
        let m = format!("{head}{vias}{tail}");
        agree(m.as_bytes());
        let parsed = Message::parse(Bytes::from(m.clone())).unwrap();
        assert!(
            parsed.second_via().is_some() == (parsed.via_count() > 1),
            "{m}"
        );
    }
}

/// A request line with its spaces anywhere (the fast path takes the URI to end at the
/// space before the closing `SIP/2.0`), header values with white space or a CR at their
/// edges (the fast path trims one space and one CR), and folded lines (left to the
/// reference parser).
#[test]
fn start_lines_and_value_edges_with_unusual_white_space() {
    let rest = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n\
                Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n";
    for line in [
        "INVITE sip:a@b SIP/2.0",
        "INVITE sip:a@b  SIP/2.0",
        "INVITE  sip:a@b SIP/2.0",
        "INVITE sip:a@b SIP/2.0 SIP/2.0",
        "INVITE sip:a b SIP/2.0",
        "INVITE sip:a@b\tSIP/2.0",
        "INVITE SIP/2.0",
        "INVITE  SIP/2.0",
        "INVITE sip: SIP/2.0",
        "INVITE sip:a@b SIP/2.0 ",
        "INVITE sip:a@bSIP/2.0",
        "INVITE sip:a@b SIP/2.00",
    ] {
        let m = format!("{line}\r\n{rest}Content-Length: 0\r\n\r\n");
        let taken = agree(m.as_bytes());
        assert_eq!(taken, line == "INVITE sip:a@b SIP/2.0", "{line:?}");
    }
    for value in [
        " x\r", "x\r", " x", "x", "  x\r", " x \r", " x\r\r", " \r", "\r", " ", "", "\t x\r",
        " x\t\r", " \rx\r",
    ] {
        let m = format!("INVITE sip:a@b SIP/2.0\r\n{rest}X-V:{value}\nContent-Length: 0\r\n\r\n");
        agree(m.as_bytes());
    }
    // Numbers at the edges of their bounds and of the fast path's ten digits.
    let numbers = [
        "0",
        "7",
        "0070",
        "255",
        "256",
        "2147483647",
        "2147483648",
        "4294967295",
        "4294967296",
        "99999999999",
        "00000000001",
        "0000000000",
        "1a",
        "a1",
        "-1",
        "+1",
        "",
    ];
    for n in numbers {
        for (header, tail) in [
            ("CSeq: ", " INVITE"),
            ("Max-Forwards: ", ""),
            ("Content-Length: ", ""),
        ] {
            let rest = rest
                .replace("CSeq: 1 INVITE\r\n", "")
                .replace("Max-Forwards: 70\r\n", "");
            let mut m = format!("INVITE sip:a@b SIP/2.0\r\n{rest}");
            for (h, t, v) in [("CSeq: ", " INVITE", "1"), ("Max-Forwards: ", "", "70")] {
                if h != header {
                    m += &format!("{h}{v}{t}\r\n");
                }
            }
            m += &format!("{header}{n}{tail}\r\n");
            if header != "Content-Length: " {
                m += "Content-Length: 0\r\n";
            }
            m += "\r\n";
            let taken = agree(m.as_bytes());
            let usual = [
                ("CSeq: ", "2147483647"),
                ("Max-Forwards: ", "0070"),
                ("Content-Length: ", "0000000000"),
            ];
            if usual.contains(&(header, n)) {
                assert!(taken, "{m}");
            }
        }
    }
    // A folded line is the reference parser's, whichever header it continues.
    for folded in [
        "X-V: a,\r\n b",
        "X-V: a\r\n\tb",
        "Via: SIP/2.0/UDP g;branch=z9hG4bK2,\r\n SIP/2.0/UDP k",
    ] {
        let m = format!("INVITE sip:a@b SIP/2.0\r\n{rest}{folded}\r\nContent-Length: 0\r\n\r\n");
        assert!(!agree(m.as_bytes()), "{folded:?}");
    }
}

/// Inputs on which the fuzzer once found the two parsers differing.
#[test]
fn regressions_found_by_fuzzing() {
    // An empty value after white space: the span sits at the end of the line.
    for v in [&b"Via: \r\n"[..], b"Via:\r\n", b"Via:  \t \r\n", b"Via:\n"] {
        let mut m = TYPICAL[5].to_vec();
        let at = m.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
        m.splice(at..at, v.iter().copied());
        m.splice(at..at, b"X-Empty: \r\n".iter().copied());
        agree(&m);
    }
}

#[test]
fn every_corpus_message_gets_the_same_answer() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut n = 0;
    for sub in ["rfc4475", "rfc5118"] {
        for e in std::fs::read_dir(format!("{dir}/{sub}")).unwrap() {
            let b = std::fs::read(e.unwrap().path()).unwrap();
            agree(&b);
            n += 1;
        }
    }
    assert!(n > 60);
}

/// Bytes that change the meaning of a SIP message, and a few ordinary ones.
const INTERESTING: &[u8] = b" \t\r\n:;,<>\"\\%@[]=/?.-_0129aZ~\x00\x7f\xff";

#[test]
fn every_one_byte_change_of_typical_messages_gets_the_same_answer() {
    let mut fast = 0usize;
    let mut total = 0usize;
    for m in TYPICAL.iter().chain(ALSO_FAST) {
        for p in 0..m.len() {
            for &b in INTERESTING {
                let mut v = m.to_vec();
                v[p] = b;
                fast += usize::from(agree(&v));
                let mut ins = m.to_vec();
                ins.insert(p, b);
                fast += usize::from(agree(&ins));
                total += 2;
            }
            let mut del = m.to_vec();
            del.remove(p);
            fast += usize::from(agree(&del));
            total += 1;
        }
    }
    // Most changes keep a valid, usual message (a letter in a value, say), so the fast
    // path stays in play.
    assert!(fast > total / 4, "{fast} of {total} on the fast path");
}

#[test]
fn two_byte_changes_near_the_fields_the_fast_path_reads() {
    // Pairs of changes within the Via, From and Request-URI of the INVITE.
    let m = TYPICAL[0];
    let spots: Vec<usize> = (0..m.len())
        .filter(|&i| {
            let line_start = m[..i]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |k| k + 1);
            matches!(m[line_start], b'I' | b'V' | b'F')
        })
        .step_by(3)
        .collect();
    for (k, &p) in spots.iter().enumerate() {
        for &q in spots.iter().skip(k + 1).step_by(7) {
            for (&a, &b) in INTERESTING.iter().zip(INTERESTING.iter().rev()) {
                let mut v = m.to_vec();
                v[p] = a;
                v[q] = b;
                agree(&v);
            }
        }
    }
}

/// Every Via value and every URI (Request-URI, inside name-addrs) of the typical
/// messages and the corpus, and every one-byte change of the typical ones.
#[test]
fn via_and_uri_fast_paths_agree_with_their_reference_parsers() {
    let mut values: Vec<Vec<u8>> = Vec::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut messages: Vec<Vec<u8>> = TYPICAL.iter().map(|m| m.to_vec()).collect();
    for sub in ["rfc4475", "rfc5118"] {
        for e in std::fs::read_dir(format!("{dir}/{sub}")).unwrap() {
            messages.push(std::fs::read(e.unwrap().path()).unwrap());
        }
    }
    for m in &messages {
        let Ok(msg) = Message::parse_reference(Bytes::copy_from_slice(m), &ParseOptions::default())
        else {
            continue;
        };
        if let Some(u) = msg.request_uri() {
            values.push(u.to_vec());
        }
        for (_, v) in msg.header_values(HeaderName::Via) {
            values.push(v.to_vec());
        }
        for h in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::Route,
            HeaderName::RecordRoute,
            HeaderName::Contact,
        ] {
            for (_, v) in msg.header_values(h) {
                if let Ok(na) = sip_core::name_addr::NameAddr::parse(v) {
                    values.push(na.uri_raw().to_vec());
                }
            }
        }
    }
    let typical_count = values.len();
    assert!(typical_count > 100);
    let mut fast = 0;
    for v in &values {
        fast += views_agree(v);
    }
    assert!(
        fast > typical_count / 2,
        "{fast} of {typical_count} on a fast path"
    );
    for v in values.iter().take(80) {
        for p in 0..v.len() {
            for &b in INTERESTING {
                let mut w = v.clone();
                w[p] = b;
                views_agree(&w);
                w.insert(p, b);
                views_agree(&w);
            }
            let mut w = v.clone();
            w.remove(p);
            views_agree(&w);
        }
    }
}
