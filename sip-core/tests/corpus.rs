//! Every RFC 4475 and RFC 5118 torture message against the verdict documented in
//! `tests/corpus/README.md`: valid ones parse and their views give the values the RFCs
//! describe; invalid ones give the documented error, never a panic or a silent accept.

use std::net::{IpAddr, Ipv6Addr};

use bytes::Bytes;
use sip_core::uri::{Host, Scheme, Uri};
use sip_core::values::{CSeq, Contact};
use sip_core::{HeaderName, Message, Method, ParseErrorKind};

fn load(path: &str) -> Bytes {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/").to_string() + path;
    Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
}

fn parse(path: &str) -> Message {
    Message::parse(load(path)).unwrap_or_else(|e| panic!("{path} must parse: {e:?}"))
}

fn error(path: &str) -> ParseErrorKind {
    match Message::parse(load(path)) {
        Ok(_) => panic!("{path} must be rejected"),
        Err(e) => e.kind,
    }
}

fn ruri(m: &Message) -> Uri<'_> {
    m.request_uri_parsed().unwrap().unwrap()
}

#[test]
fn valid_rfc4475_messages_parse_with_their_values() {
    // 3.1.1.1 wsinv: odd whitespace, folding, compact forms, escapes.
    let m = parse("rfc4475/wsinv.dat");
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(
        ruri(&m).host(),
        Some(Host::Domain(b"chair-dnrc.example.com"))
    );
    assert!(ruri(&m).has_param("unknownparam"));
    assert!(m.call_id().is_some());
    assert_eq!(m.cseq().map(|c| c.1), Some(Method::Invite));
    assert_eq!(m.max_forwards(), Some(68));
    assert!(m.via_count() >= 2);
    assert_eq!(m.to_tag(), Some(&b"1918181833n"[..]));
    assert_eq!(m.from_tag(), Some(&b"98asjd8"[..]));
    assert_eq!(m.body().len() as u32, m.content_length().unwrap());

    // 3.1.1.2 intmeth: an unknown method made of every token character.
    let m = parse("rfc4475/intmeth.dat");
    assert_eq!(m.method(), Some(Method::Extension));
    assert_eq!(
        m.method_bytes().unwrap(),
        b"!interesting-Method0123456789_*+`.%indeed'~"
    );
    assert_eq!(m.cseq_method_bytes(), m.method_bytes());

    // 3.1.1.3 esc01: escaped characters in the Request-URI user part.
    let m = parse("rfc4475/esc01.dat");
    let u = ruri(&m);
    assert_eq!(u.user(), Some(&b"sips%3Auser%40example.com"[..]));
    let decoded: Vec<u8> = sip_core::uri::percent_decode(u.user().unwrap()).collect();
    assert_eq!(decoded, b"sips:user@example.com");
    assert_eq!(u.host(), Some(Host::Domain(b"example.net")));

    // 3.1.1.4 escnull: %00 in a URI user part (To/From), still valid.
    let m = parse("rfc4475/escnull.dat");
    assert_eq!(m.method(), Some(Method::Register));
    let to = m.to().unwrap();
    assert!(to.uri_raw().windows(3).any(|w| w == b"%00"));

    // 3.1.1.5 esc02: % in the method name, which is a token.
    let m = parse("rfc4475/esc02.dat");
    assert_eq!(m.method_bytes(), Some(&b"RE%47IST%45R"[..]));
    assert_eq!(m.method(), Some(Method::Extension));

    // 3.1.1.6 lwsdisp: no LWS between display name and <.
    let m = parse("rfc4475/lwsdisp.dat");
    assert_eq!(m.from().unwrap().display_name(), Some(&b"caller"[..]));

    // 3.1.1.7 longreq: very long values and many Vias.
    let m = parse("rfc4475/longreq.dat");
    assert!(m.via_count() >= 30, "{}", m.via_count());
    assert!(m.header(HeaderName::To).unwrap().len() > 100);
    assert!(m.vias().all(|v| v.is_ok()));

    // 3.1.1.8 dblreq: extra bytes after the message in the datagram are ignored.
    let m = parse("rfc4475/dblreq.dat");
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.body().len() as u32, m.content_length().unwrap());
    assert!(m.message_len() < m.buffer().len());

    // 3.1.1.9 semiuri: a semicolon in the user part.
    let m = parse("rfc4475/semiuri.dat");
    let u = ruri(&m);
    assert_eq!(u.user(), Some(&b"user;par=u%40example.net"[..]));
    assert_eq!(u.host(), Some(Host::Domain(b"example.com")));

    // 3.1.1.10 transports: unknown Via transports.
    let m = parse("rfc4475/transports.dat");
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert!(vias.len() >= 3);
    assert!(
        vias.iter().any(|v| v.transport().is_none()),
        "an unknown transport stays raw"
    );

    // 3.1.1.11 mpart01: multipart body kept intact.
    let m = parse("rfc4475/mpart01.dat");
    assert_eq!(m.body().len() as u32, m.content_length().unwrap());
    assert!(
        m.header(HeaderName::ContentType)
            .unwrap()
            .starts_with(b"multipart/mixed")
    );

    // 3.1.1.12 / 13: unusual and empty reason phrases.
    let m = parse("rfc4475/unreason.dat");
    assert_eq!(m.status_code(), Some(200));
    assert!(
        std::str::from_utf8(m.reason().unwrap())
            .unwrap()
            .contains("простое")
    );
    let m = parse("rfc4475/noreason.dat");
    assert_eq!(m.status_code(), Some(100));
    assert_eq!(m.reason(), Some(&b""[..]));
}

#[test]
fn invalid_rfc4475_messages_are_rejected_with_the_documented_error() {
    use ParseErrorKind as K;
    type Check = fn(&ParseErrorKind) -> bool;
    let cases: &[(&str, Check)] = &[
        ("badinv01", |k| {
            matches!(
                k,
                K::InvalidHeader { .. } | K::MissingColon | K::InvalidHeaderName
            )
        }),
        ("clerr", |k| matches!(k, K::BodyTooShort { .. })),
        ("ncl", |k| {
            matches!(
                k,
                K::InvalidHeader {
                    header: HeaderName::ContentLength,
                    ..
                }
            )
        }),
        ("scalar02", |k| matches!(k, K::InvalidHeader { .. })),
        ("scalarlg", |k| {
            matches!(k, K::InvalidHeader { .. } | K::InvalidStatusCode)
        }),
        ("quotbal", |k| matches!(k, K::InvalidHeader { .. })),
        ("ltgtruri", |k| {
            matches!(k, K::InvalidRequestUri | K::InvalidRequestLine)
        }),
        ("lwsruri", |k| {
            matches!(k, K::InvalidRequestLine | K::UnsupportedVersion)
        }),
        ("lwsstart", |k| {
            matches!(k, K::InvalidRequestLine | K::InvalidRequestUri)
        }),
        ("trws", |k| {
            matches!(k, K::InvalidRequestLine | K::UnsupportedVersion)
        }),
        ("escruri", |k| matches!(k, K::InvalidRequestUri)),
        ("badaspec", |k| {
            matches!(k, K::InvalidHeader { .. } | K::InvalidRequestLine)
        }),
        ("baddn", |k| {
            matches!(k, K::Incomplete | K::InvalidHeader { .. })
        }),
        ("badvers", |k| matches!(k, K::UnsupportedVersion)),
        ("mismatch01", |k| matches!(k, K::CSeqMethodMismatch)),
        ("mismatch02", |k| matches!(k, K::CSeqMethodMismatch)),
        ("bigcode", |k| matches!(k, K::InvalidStatusCode)),
        ("multi01", |k| matches!(k, K::DuplicateHeader(_))),
        ("mcl01", |k| {
            matches!(k, K::DuplicateHeader(HeaderName::ContentLength))
        }),
        ("test", |k| matches!(k, K::InvalidRequestLine)),
    ];
    let mut rejected = 0;
    for (f, ok) in cases {
        match Message::parse(load(&format!("rfc4475/{f}.dat"))) {
            Err(e) => {
                assert!(ok(&e.kind), "{f}: unexpected error {:?}", e.kind);
                assert!((400..=513).contains(&e.status_code()), "{f}");
                rejected += 1;
            }
            // 3.1.2.12 baddate: an element that does not read Date need not detect it.
            Ok(_) => panic!("{f}: accepted"),
        }
    }
    assert_eq!(rejected, cases.len());
    // Faults in fields a proxy does not read may parse (RFC 4475 §3.1.2.12 Date,
    // §3.1.2.13 a Contact's parameters outside <>): the README allows it.
    assert!(Message::parse(load("rfc4475/baddate.dat")).is_ok());
    let _ = Message::parse(load("rfc4475/regbadct.dat"));
}

#[test]
fn semantic_rfc4475_messages_parse_and_expose_what_a_proxy_decides_on() {
    // 3.2.1 badbranch: an RFC 2543 branch.
    let m = parse("rfc4475/badbranch.dat");
    assert!(!m.top_via().unwrap().has_rfc3261_branch());
    // 3.3.1 insuf: missing mandatory headers (the proxy answers 400).
    let m = Message::parse(load("rfc4475/insuf.dat"));
    if let Ok(m) = m {
        assert!(
            m.call_id().is_none() || m.from().is_none() || m.to().is_none() || m.cseq().is_none()
        );
    }
    // 3.3.2 unkscm: unknown scheme in the Request-URI (416 from a proxy).
    let m = parse("rfc4475/unkscm.dat");
    assert_eq!(ruri(&m).scheme(), Scheme::Other);
    // 3.3.3 novelsc: a known but atypical scheme.
    let m = parse("rfc4475/novelsc.dat");
    assert!(!ruri(&m).scheme().is_sip());
    // 3.3.5 bext01: Proxy-Require with an unknown option tag.
    let m = parse("rfc4475/bext01.dat");
    assert!(m.header(HeaderName::ProxyRequire).is_some());
    // 3.3.10 bcast: broadcast sent-by.
    let m = parse("rfc4475/bcast.dat");
    assert!(m.vias().count() >= 1);
    // 3.3.11 zeromf: Max-Forwards 0.
    assert_eq!(parse("rfc4475/zeromf.dat").max_forwards(), Some(0));
    // 3.3.12-14: REGISTER with Contact parameters and escaped headers.
    let m = parse("rfc4475/cparam01.dat");
    match Contact::parse(m.header(HeaderName::Contact).unwrap()).unwrap() {
        Contact::List(l) => assert!(l.count() >= 1),
        Contact::Star => panic!("not a star"),
    }
    parse("rfc4475/cparam02.dat");
    parse("rfc4475/regescrt.dat");
    // 3.3.4, 3.3.6-9, 3.3.15, 3.4.1: forwardable.
    for f in ["unksm2", "invut", "regaut01", "sdp01", "inv2543"] {
        let m = parse(&format!("rfc4475/{f}.dat"));
        assert!(m.is_request(), "{f}");
        assert!(
            CSeq::parse(m.header(HeaderName::CSeq).unwrap()).is_ok(),
            "{f}"
        );
    }
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn rfc5118_ipv6_messages() {
    let m = parse("rfc5118/ipv6-good.dat");
    assert_eq!(ruri(&m).host(), Some(Host::V6(v6("2001:db8::10"))));
    assert_eq!(
        error("rfc5118/ipv6-bad.dat"),
        ParseErrorKind::InvalidRequestUri
    );
    let m = parse("rfc5118/port-ambiguous.dat");
    assert_eq!(ruri(&m).host(), Some(Host::V6(v6("2001:db8::10:5070"))));
    assert_eq!(ruri(&m).port(), None);
    let m = parse("rfc5118/port-unambiguous.dat");
    assert_eq!(ruri(&m).host(), Some(Host::V6(v6("2001:db8::10"))));
    assert_eq!(ruri(&m).port(), Some(5070));
    for f in [
        "via-received-param-with-delim",
        "via-received-param-no-delim",
    ] {
        let m = parse(&format!("rfc5118/{f}.dat"));
        let via = m.top_via().unwrap();
        assert_eq!(via.host(), Host::V6(v6("2001:db8::9:1")), "{f}");
        assert_eq!(
            via.received_ip(),
            Some(IpAddr::V6(v6("2001:db8::9:255"))),
            "{f}"
        );
    }
    let m = parse("rfc5118/mult-ip-in-header.dat");
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias[0].port(), Some(6050));
    assert_eq!(vias[1].host(), Host::V4("192.0.2.1".parse().unwrap()));
    assert_eq!(vias[2].received_ip(), Some("192.0.2.200".parse().unwrap()));
    for f in ["ipv6-in-sdp", "mult-ip-in-sdp"] {
        let m = parse(&format!("rfc5118/{f}.dat"));
        assert_eq!(m.body().len() as u32, m.content_length().unwrap(), "{f}");
    }
    let m = parse("rfc5118/ipv4-mapped-ipv6.dat");
    assert!(m.body().windows(6).any(|w| w == b"::ffff"));
    let m = parse("rfc5118/ipv6-correct-abnf-2-colons.dat");
    assert_eq!(ruri(&m).host(), Some(Host::V6(v6("2001:db8::192.0.2.1"))));
    // RFC 5954: `:::` is not valid; rejecting it is the strict (allowed) choice.
    assert_eq!(
        error("rfc5118/ipv6-bug-abnf-3-colons.dat"),
        ParseErrorKind::InvalidRequestUri
    );
}
