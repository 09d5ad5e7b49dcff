//! Every RFC 4475 and RFC 5118 torture message against the verdict documented in
//! `tests/corpus/README.md`: valid ones parse and their views give the values the RFCs
//! describe; invalid ones give the documented error, never a panic or a silent accept.

use std::net::{IpAddr, Ipv6Addr};

use bytes::Bytes;
use sip_core::uri::{Host, Scheme, Uri};
use sip_core::values::{CSeq, Contact, Credentials, option_tags};
use sip_core::{HeaderName, Message, Method, ParseErrorKind, Transport, ValueErrorKind};

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
    m.request_uri_parsed().unwrap()
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
    assert_eq!(m.content_length(), Some(150));
    assert_eq!(m.call_id(), Some(&b"wsinv.ndaksdj@192.0.2.1"[..]));
    // `cseq: 0009\r\n  INVITE`: a folded CSeq.
    assert_eq!(m.cseq(), Some((9, Method::Invite)));
    // Three Via values: one folded over three lines, two more in one compact `v:` line.
    assert_eq!(m.via_count(), 3);
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias[0].transport(), Some(Transport::Udp));
    assert_eq!(vias[0].host(), Host::V4("192.0.2.2".parse().unwrap()));
    assert_eq!(vias[0].branch(), Some(&b"390skdjuw"[..]));
    assert!(!vias[0].has_rfc3261_branch());
    assert_eq!(m.top_via_branch(), Some(&b"390skdjuw"[..]));
    assert_eq!(vias[1].transport(), Some(Transport::Tcp));
    assert_eq!(vias[1].host(), Host::Domain(b"spindle.example.com"));
    assert_eq!(vias[1].branch(), Some(&b"z9hG4bK9ikj8"[..]));
    assert_eq!(vias[2].host(), Host::V4("192.168.255.111".parse().unwrap()));
    assert_eq!(vias[2].branch(), Some(&b"z9hG4bK30239"[..]));
    // The display name with escaped quote and backslash.
    assert_eq!(
        m.from().unwrap().display_name_text().as_deref(),
        Some(&br#"J Rosenberg \""#[..])
    );
    assert_eq!(
        m.to().unwrap().uri_raw(),
        b"sip:vivekg@chair-dnrc.example.com"
    );
    assert_eq!(m.route_count(), 1);
    let route = m.top_route().unwrap().uri().unwrap();
    assert!(route.is_loose_router());
    assert_eq!(route.param("unknownwith"), Some(Some(&b"value"[..])));
    assert_eq!(route.param("unknown-no-value"), Some(None));
    // Unknown headers are kept verbatim, folding included; `s :` is an empty Subject.
    assert_eq!(
        m.header_by_name("NewFangledHeader"),
        Some(&b"newfangled value\r\n continued newfangled value"[..])
    );
    assert_eq!(
        m.header_by_name("UnknownHeaderWithUnusualValue"),
        Some(&b";;,,;;,;"[..])
    );
    assert_eq!(m.header(HeaderName::Subject), Some(&b""[..]));
    let Contact::List(mut contacts) =
        Contact::parse(m.header(HeaderName::Contact).unwrap()).unwrap()
    else {
        panic!("not a star")
    };
    let c = contacts.next().unwrap();
    assert_eq!(
        c.addr.display_name_text().as_deref(),
        Some(&br#"Quoted string """#[..])
    );
    assert_eq!(c.addr.param("newparam"), Some(Some(&b"newvalue"[..])));
    assert_eq!(c.addr.param("secondparam"), Some(None));
    assert_eq!(c.q(), Some(&b"0.33"[..]));
    assert!(contacts.next().is_none());

    // 3.1.1.2 intmeth: an unknown method made of every token character.
    let m = parse("rfc4475/intmeth.dat");
    assert_eq!(m.method(), Some(Method::Extension));
    assert_eq!(
        m.method_bytes().unwrap(),
        b"!interesting-Method0123456789_*+`.%indeed'~"
    );
    assert_eq!(m.cseq_method_bytes(), m.method_bytes());
    assert_eq!(m.cseq().unwrap().0, 139122385);
    assert_eq!(m.max_forwards(), Some(255));
    let u = ruri(&m);
    assert_eq!(
        u.user(),
        Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
    );
    assert_eq!(
        u.password(),
        Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
    );
    assert_eq!(u.host(), Some(Host::Domain(b"example.com")));
    assert_eq!(m.top_via_branch(), Some(&b"z9hG4bK-.!%66*_+`'~"[..]));
    assert_eq!(
        m.call_id(),
        Some(&br#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#[..])
    );
    assert_eq!(m.from_tag(), Some(&b"_token~1'+`*%!-."[..]));
    assert_eq!(
        m.from().unwrap().display_name(),
        Some(&b"token1~` token2'+_ token3*%!.-"[..])
    );
    assert_eq!(
        m.header_by_name("extensionHeader-!.%*+_`'~"),
        Some("\u{feff}大停電".as_bytes())
    );

    // 3.1.1.3 esc01: escaped characters in the Request-URI user part.
    let m = parse("rfc4475/esc01.dat");
    let u = ruri(&m);
    assert_eq!(u.user(), Some(&b"sips%3Auser%40example.com"[..]));
    let decoded: Vec<u8> = sip_core::uri::percent_decode(u.user().unwrap()).collect();
    assert_eq!(decoded, b"sips:user@example.com");
    assert_eq!(u.host(), Some(Host::Domain(b"example.net")));
    let to_user: Vec<u8> =
        sip_core::uri::percent_decode(m.to().unwrap().uri().unwrap().user().unwrap()).collect();
    assert_eq!(to_user, b"user");
    let from_user: Vec<u8> =
        sip_core::uri::percent_decode(m.from().unwrap().uri().unwrap().user().unwrap()).collect();
    assert_eq!(from_user, b"I have spaces");
    assert_eq!(
        m.call_id(),
        Some(&b"esc01.239409asdfakjkn23onasd0-3234"[..])
    );
    let Contact::List(mut l) = Contact::parse(m.header(HeaderName::Contact).unwrap()).unwrap()
    else {
        panic!("not a star")
    };
    let contact = l.next().unwrap().addr.uri().unwrap();
    assert_eq!(contact.param("%6C%72"), Some(None));
    assert_eq!(
        contact.param("n%61me"),
        Some(Some(&b"v%61lue%25%34%31"[..]))
    );

    // 3.1.1.4 escnull: %00 in a URI user part (To/From), still valid.
    let m = parse("rfc4475/escnull.dat");
    assert_eq!(m.method(), Some(Method::Register));
    let to = m.to().unwrap();
    assert_eq!(to.uri().unwrap().user(), Some(&b"null-%00-null"[..]));
    let user: Vec<u8> = sip_core::uri::percent_decode(to.uri().unwrap().user().unwrap()).collect();
    assert_eq!(user, b"null-\0-null");
    assert_eq!(m.header_values(HeaderName::Contact).count(), 2);

    // 3.1.1.5 esc02: % in the method name, which is a token.
    let m = parse("rfc4475/esc02.dat");
    assert_eq!(m.method_bytes(), Some(&b"RE%47IST%45R"[..]));
    assert_eq!(m.method(), Some(Method::Extension));
    assert_eq!(m.cseq_method_bytes(), Some(&b"RE%47IST%45R"[..]));
    assert_eq!(m.top_via_branch(), Some(&b"z9hG4bK209%fzsnel234"[..]));
    assert_eq!(m.from().unwrap().display_name(), Some(&br#""%Z%45""#[..]));
    // `C%6Fntact` is not Contact: an unknown header, kept.
    assert_eq!(m.headers_named(HeaderName::Contact).count(), 2);
    assert!(m.header_by_name("C%6Fntact").is_some());

    // 3.1.1.6 lwsdisp: no LWS between display name and <.
    let m = parse("rfc4475/lwsdisp.dat");
    assert_eq!(m.from().unwrap().display_name(), Some(&b"caller"[..]));
    assert_eq!(m.from().unwrap().uri_raw(), b"sip:caller@example.com");
    assert_eq!(m.from_tag(), Some(&b"323"[..]));

    // 3.1.1.7 longreq: very long values and many Vias.
    let m = parse("rfc4475/longreq.dat");
    assert!(m.via_count() >= 30, "{}", m.via_count());
    assert!(m.header(HeaderName::To).unwrap().len() > 100);
    assert!(m.vias().all(|v| v.is_ok()));
    assert_eq!(
        m.top_via().unwrap().host(),
        Host::Domain(b"sip33.example.com")
    );
    let cid = m.call_id().unwrap();
    assert_eq!(cid.len(), 141);
    assert!(cid.starts_with(b"longreq.onereally") && cid.ends_with(b"longcallid"));
    let to = m.to().unwrap();
    assert!(
        to.display_name_text()
            .unwrap()
            .ends_with(b"extreme proportion")
    );
    assert_eq!(m.cseq(), Some((3882340, Method::Invite)));
    let unknown = m
        .headers()
        .find(|h| h.raw_name.starts_with(b"Unknown-LongLong"))
        .unwrap();
    assert_eq!(unknown.name, HeaderName::Other);
    assert!(unknown.value.len() > 100);

    // 3.1.1.8 dblreq: extra bytes after the message in the datagram are ignored.
    let m = parse("rfc4475/dblreq.dat");
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.body().len() as u32, m.content_length().unwrap());
    assert!(m.message_len() < m.buffer().len());
    assert_eq!(m.content_length(), Some(0));
    assert!(m.as_bytes().ends_with(b"\r\n\r\n"));
    assert!(m.buffer()[m.message_len()..].starts_with(b"\r\nINVITE sip:joe@example.com"));

    // 3.1.1.9 semiuri: a semicolon in the user part.
    let m = parse("rfc4475/semiuri.dat");
    let u = ruri(&m);
    assert_eq!(u.user(), Some(&b"user;par=u%40example.net"[..]));
    assert_eq!(u.host(), Some(Host::Domain(b"example.com")));
    assert!(u.params().next().is_none(), "the ;par= is in the user part");
    // A list header folded over three lines: six values.
    assert_eq!(m.header_values(HeaderName::Accept).count(), 6);

    // 3.1.1.10 transports: unknown Via transports.
    let m = parse("rfc4475/transports.dat");
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert!(vias.len() >= 3);
    assert_eq!(vias.len(), 5);
    let transports: Vec<_> = vias.iter().map(|v| v.transport_raw()).collect();
    assert_eq!(
        transports,
        [&b"UDP"[..], b"SCTP", b"TLS", b"UNKNOWN", b"TCP"]
    );
    assert_eq!(vias[3].transport(), None, "an unknown transport stays raw");
    assert_eq!(vias[3].host(), Host::Domain(b"t4.example.com"));
    assert_eq!(vias[4].transport(), Some(Transport::Tcp));
    assert_eq!(m.content_length(), Some(0));

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
    assert_eq!(m.to_tag(), Some(&b"902jndnke3"[..]));
}

/// The line of `buf` that contains byte `offset`.
fn line_at(buf: &[u8], offset: usize) -> &[u8] {
    let start = buf[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let end = buf[offset..]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map_or(buf.len(), |p| offset + p);
    &buf[start..end]
}

#[test]
fn invalid_rfc4475_messages_are_rejected_with_the_documented_error() {
    use ParseErrorKind as K;
    use ValueErrorKind as V;
    let header = |header, error| K::InvalidHeader { header, error };
    // (file, section, error, start of the line the error offset points into, status)
    let cases: &[(&str, &str, ParseErrorKind, &[u8], u16)] = &[
        // `Via: SIP/2.0/UDP 192.0.2.15;;,;,,`: separators with nothing between them.
        (
            "badinv01",
            "3.1.2.1",
            header(HeaderName::Via, V::EmptyParam),
            b"Via:",
            400,
        ),
        (
            "clerr",
            "3.1.2.2",
            K::BodyTooShort {
                declared: 9999,
                actual: 154,
            },
            b"",
            400,
        ),
        (
            "ncl",
            "3.1.2.3",
            header(HeaderName::ContentLength, V::InvalidNumber),
            b"Content-Length:",
            400,
        ),
        // CSeq 36893488147419103232 is the first overlarge scalar in both.
        (
            "scalar02",
            "3.1.2.4",
            header(HeaderName::CSeq, V::InvalidNumber),
            b"CSeq:",
            400,
        ),
        (
            "scalarlg",
            "3.1.2.5",
            header(HeaderName::CSeq, V::InvalidNumber),
            b"CSeq:",
            400,
        ),
        (
            "quotbal",
            "3.1.2.6",
            header(HeaderName::To, V::UnterminatedQuote),
            b"To:",
            400,
        ),
        (
            "ltgtruri",
            "3.1.2.7",
            K::InvalidRequestUri,
            b"INVITE <sip:",
            400,
        ),
        (
            "lwsruri",
            "3.1.2.8",
            K::InvalidRequestLine,
            b"INVITE sip:",
            400,
        ),
        (
            "lwsstart",
            "3.1.2.9",
            K::InvalidRequestLine,
            b"INVITE  ",
            400,
        ),
        (
            "trws",
            "3.1.2.10",
            K::InvalidRequestLine,
            b"OPTIONS sip:",
            400,
        ),
        (
            "escruri",
            "3.1.2.11",
            K::InvalidRequestUri,
            b"INVITE sip:",
            400,
        ),
        (
            "badaspec",
            "3.1.2.14",
            header(HeaderName::To, V::UnexpectedWhitespace),
            b"To:",
            400,
        ),
        (
            "baddn",
            "3.1.2.15",
            header(HeaderName::From, V::InvalidDisplayName),
            b"From:",
            400,
        ),
        (
            "badvers",
            "3.1.2.16",
            K::UnsupportedVersion,
            b"OPTIONS sip:",
            505,
        ),
        (
            "mismatch01",
            "3.1.2.17",
            K::CSeqMethodMismatch,
            b"CSeq:",
            400,
        ),
        (
            "mismatch02",
            "3.1.2.18",
            K::CSeqMethodMismatch,
            b"CSeq:",
            400,
        ),
        (
            "bigcode",
            "3.1.2.19",
            K::InvalidStatusCode,
            b"SIP/2.0 4294967301",
            400,
        ),
        // 3.3.8 and 3.3.9: several values of single-valued headers the proxy reads.
        (
            "multi01",
            "3.3.8",
            K::DuplicateHeader(HeaderName::CSeq),
            b"CSeq:",
            400,
        ),
        (
            "mcl01",
            "3.3.9",
            K::DuplicateHeader(HeaderName::ContentLength),
            b"Content-Length:",
            400,
        ),
        // Not referenced by RFC 4475: its request line is not a SIP request line.
        ("test", "-", K::InvalidRequestLine, b"", 400),
    ];
    for &(f, section, ref kind, line, status) in cases {
        let buf = load(&format!("rfc4475/{f}.dat"));
        let e = match Message::parse(buf.clone()) {
            Ok(_) => panic!("{f} ({section}) accepted"),
            Err(e) => e,
        };
        assert_eq!(&e.kind, kind, "{f} ({section})");
        assert_eq!(e.status_code(), status, "{f}");
        assert!(!e.reason_phrase().is_empty(), "{f}");
        assert!(e.offset as usize <= buf.len(), "{f}: offset {}", e.offset);
        if !line.is_empty() {
            let l = line_at(&buf, e.offset as usize);
            assert!(
                l.starts_with(line),
                "{f}: error at {} is in {:?}",
                e.offset,
                String::from_utf8_lossy(l)
            );
        }
    }
    // The body of clerr starts where the error points.
    let clerr = load("rfc4475/clerr.dat");
    let e = Message::parse(clerr.clone()).unwrap_err();
    assert_eq!(clerr.len() - e.offset as usize, 154);

    // Faults in fields a proxy does not read need not be detected (README, RFC 4475
    // §3.1.2.12 and §3.1.2.13): they parse, and the views that do read them refuse them.
    let m = parse("rfc4475/baddate.dat");
    assert!(m.header(HeaderName::Date).unwrap().ends_with(b"EST"));
    let m = parse("rfc4475/regbadct.dat");
    let contact = m.header(HeaderName::Contact).unwrap();
    assert_eq!(
        contact,
        b"sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    );
    assert!(
        Contact::parse(contact).is_err(),
        "an addr-spec with URI headers outside <> is not a Contact"
    );
}

fn only_contact(m: &Message) -> sip_core::values::ContactEntry<'_> {
    let Contact::List(mut l) = Contact::parse(m.header(HeaderName::Contact).unwrap()).unwrap()
    else {
        panic!("not a star")
    };
    let c = l.next().unwrap();
    assert!(l.next().is_none());
    c
}

#[test]
fn semantic_rfc4475_messages_parse_and_expose_what_a_proxy_decides_on() {
    // 3.2.1 badbranch: a branch that is only the magic cookie is not an RFC 3261 branch.
    let m = parse("rfc4475/badbranch.dat");
    assert_eq!(m.top_via_branch(), Some(&b"z9hG4bK"[..]));
    assert!(!m.top_via().unwrap().has_rfc3261_branch());
    // 3.3.1 insuf: no Call-ID, From, To or Max-Forwards (the proxy answers 400).
    let m = parse("rfc4475/insuf.dat");
    assert_eq!(m.call_id(), None);
    assert!(m.from().is_none() && m.to().is_none() && m.from_tag().is_none());
    assert_eq!(m.max_forwards(), None);
    assert_eq!(m.cseq(), Some((193942, Method::Invite)));
    assert_eq!(m.top_via_branch(), Some(&b"z9hG4bKkdj.insuf"[..]));
    // 3.3.2 unkscm: unknown scheme in the Request-URI (416 from a proxy), kept opaque.
    let m = parse("rfc4475/unkscm.dat");
    let u = ruri(&m);
    assert_eq!(u.scheme(), Scheme::Other);
    assert_eq!(u.scheme_raw(), b"nobodyKnowsThisScheme");
    assert_eq!(u.opaque(), b"totallyopaquecontent");
    assert_eq!(u.host(), None);
    // 3.3.3 novelsc: a known but atypical scheme.
    let m = parse("rfc4475/novelsc.dat");
    let u = ruri(&m);
    assert!(!u.scheme().is_sip());
    assert_eq!(u.scheme_raw(), b"soap.beep");
    assert_eq!(u.opaque(), b"//192.0.2.103:3002");
    // 3.3.4 unksm2: unknown schemes in To, From and Contact.
    let m = parse("rfc4475/unksm2.dat");
    assert_eq!(m.to().unwrap().uri().unwrap().scheme_raw(), b"isbn");
    assert_eq!(m.from().unwrap().uri().unwrap().scheme_raw(), b"http");
    assert_eq!(m.from_tag(), Some(&b"3234233"[..]));
    assert_eq!(only_contact(&m).addr.uri().unwrap().scheme_raw(), b"name");
    // 3.3.5 bext01: Proxy-Require with unknown option tags (420 from a proxy).
    let m = parse("rfc4475/bext01.dat");
    let tags: Vec<_> = option_tags(m.header(HeaderName::ProxyRequire).unwrap())
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        tags,
        [&b"noProxiesSupportThis"[..], b"norDoAnyProxiesSupportThis"]
    );
    assert_eq!(
        option_tags(m.header(HeaderName::Require).unwrap()).count(),
        2
    );
    assert_eq!(m.top_via().unwrap().transport(), Some(Transport::Tls));
    // 3.3.6 invut: unknown Content-Type, body kept.
    let m = parse("rfc4475/invut.dat");
    assert_eq!(
        m.header(HeaderName::ContentType),
        Some(&b"application/unknownformat"[..])
    );
    assert_eq!(m.body().len(), 40);
    // 3.3.7 regaut01: unknown authorization scheme, no username.
    let m = parse("rfc4475/regaut01.dat");
    let cred = Credentials::parse(m.header(HeaderName::Authorization).unwrap()).unwrap();
    assert_eq!(cred.scheme(), b"NoOneKnowsThisScheme");
    assert_eq!(cred.username(), None);
    // 3.3.10 bcast: broadcast sent-by in the second Via.
    let m = parse("rfc4475/bcast.dat");
    assert_eq!(m.status_code(), Some(200));
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias[1].host(), Host::V4("255.255.255.255".parse().unwrap()));
    assert_eq!(m.body().len(), 154);
    // 3.3.11 zeromf: Max-Forwards 0.
    assert_eq!(parse("rfc4475/zeromf.dat").max_forwards(), Some(0));
    // 3.3.12 cparam01: without <>, `;unknownparam` is a Contact parameter.
    let m = parse("rfc4475/cparam01.dat");
    let c = only_contact(&m);
    assert_eq!(c.addr.uri_raw(), b"sip:+19725552222@gw1.example.net");
    assert!(!c.addr.uri().unwrap().has_param("unknownparam"));
    assert_eq!(c.addr.param("unknownparam"), Some(None));
    // 3.3.13 cparam02: inside <>, it is a URI parameter.
    let m = parse("rfc4475/cparam02.dat");
    let c = only_contact(&m);
    assert!(c.addr.uri().unwrap().has_param("unknownparam"));
    assert_eq!(c.addr.param("unknownparam"), None);
    // 3.3.14 regescrt: a Contact URI with an escaped header.
    let m = parse("rfc4475/regescrt.dat");
    let u = only_contact(&m).addr.uri().unwrap();
    let headers: Vec<_> = u.headers().collect();
    assert_eq!(
        headers,
        [(&b"Route"[..], &b"%3Csip:sip.example.com%3E"[..])]
    );
    // 3.3.15 sdp01: an Accept the UAS cannot satisfy: forwarded as is.
    let m = parse("rfc4475/sdp01.dat");
    assert_eq!(
        m.header(HeaderName::Accept),
        Some(&b"text/nobodyKnowsThis"[..])
    );
    // 3.4.1 inv2543: RFC 2543 syntax, a Via without branch.
    let m = parse("rfc4475/inv2543.dat");
    assert_eq!(m.top_via_branch(), None);
    assert_eq!(
        m.top_via().unwrap().host(),
        Host::Domain(b"iftgw.example.com")
    );
    assert_eq!(m.from_tag(), None);
    // Without <>, `;user=phone` belongs to the To header, not to its URI.
    let to = m.to().unwrap();
    assert_eq!(to.uri_raw(), b"sip:+16505552222@ss1.example.net");
    assert_eq!(to.param("user"), Some(Some(&b"phone"[..])));
    for f in ["unksm2", "invut", "regaut01", "sdp01", "inv2543"] {
        let m = parse(&format!("rfc4475/{f}.dat"));
        assert!(m.is_request(), "{f}");
        assert!(
            CSeq::parse(m.header(HeaderName::CSeq).unwrap()).is_ok(),
            "{f}"
        );
    }
}

/// Every file of the corpus directories is covered by one of the tests above.
#[test]
fn every_corpus_file_is_listed_in_the_readme() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let readme = std::fs::read_to_string(format!("{dir}/README.md")).unwrap();
    let mut n = 0;
    for sub in ["rfc4475", "rfc5118"] {
        for e in std::fs::read_dir(format!("{dir}/{sub}")).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(readme.contains(&format!("| {name} |")), "{name}");
            // Whatever the verdict, parsing never panics and never reads past the buffer.
            let _ = Message::parse(load(&format!("{sub}/{name}")));
            n += 1;
        }
    }
    assert_eq!(n, 50 + 12);
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
