//! Fuzz the message parser and every accessor and typed view of what parses, plus the
//! builder (response, CANCEL, ACK) on requests and the editor's pass-through.
//!
//! Nothing may panic, and an accepted message must be self-consistent: the fields located
//! by the one-pass parse agree with the typed views parsed on demand (top Via branch,
//! tags, counts, top Route), the views the pass keeps (top Via, Request-URI) equal a
//! fresh parse of their text, the second Via is found where the lists put it, the body has exactly Content-Length bytes, the message
//! re-parses to the same essentials when cut to its own length, and what the builder
//! writes from it parses again. The parser's fast path and its reference parser agree:
//! whenever the fast path takes the input, the reference parser returns the same message,
//! and parsing into a reused message (`parse_in_place`) gives that message too.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip_core::builder::{ResponseBuilder, ack_for, cancel_for};
use sip_core::editor::Editor;
use sip_core::values::{CSeq, Contact, Credentials, RetryAfter, option_tags, parse_expires};
use sip_core::{Framing, HeaderName, Message, ParseOptions};

thread_local! {
    /// One message every input is parsed into, whatever it held before.
    static REUSED: std::cell::RefCell<Message> = std::cell::RefCell::new(Message::default());
}

fuzz_target!(|data: &[u8]| {
    for framing in [Framing::Datagram, Framing::Stream] {
        let o = ParseOptions { framing, ..ParseOptions::default() };
        let reference = Message::parse_reference(Bytes::copy_from_slice(data), &o);
        if let Some(f) = Message::parse_fast_path(Bytes::copy_from_slice(data), &o) {
            assert_eq!(reference.as_ref(), Ok(&f), "fast path and reference parser differ");
        }
        assert_eq!(Message::parse_with(Bytes::copy_from_slice(data), &o), reference);
        // Parsing into storage that held the previous input gives the same answer.
        REUSED.with_borrow_mut(|m| {
            let r = m.parse_in_place(Bytes::copy_from_slice(data), &o);
            match &reference {
                Ok(want) => assert_eq!((&r, &*m), (&Ok(()), want), "parse_in_place differs"),
                Err(e) => assert_eq!((&r, &*m), (&Err(*e), &Message::default())),
            }
        });
    }
    let Ok(m) = Message::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let _ = (m.method(), m.method_bytes(), m.status_code(), m.reason());
    let _ = (m.headers_start(), m.headers_end(), m.header_count());
    let _ = (m.call_id(), m.cseq(), m.cseq_method_bytes(), m.max_forwards());
    let _ = (m.max_forwards_index(), m.to_value_span(), m.top_route_span());

    // The one pass and the typed views agree.
    assert_eq!(m.vias().count(), m.via_count(), "via count");
    assert_eq!(m.header_values(HeaderName::Route).count(), m.route_count());
    if m.via_count() > 0 {
        let top = m.top_via().expect("the pass validated the top Via");
        assert_eq!(top.branch().filter(|b| !b.is_empty()), m.top_via_branch());
        assert_eq!(m.vias().next().unwrap().ok().map(|v| v.branch()), Some(top.branch()));
    } else {
        assert!(m.top_via().is_none() && m.top_via_branch().is_none());
    }
    // What the pass kept (top Via, Request-URI, the second Via's place) equals a fresh parse.
    assert_eq!(
        m.top_via(),
        m.top_via_span().and_then(|(_, s)| sip_core::via::Via::parse(m.slice(s)).ok()),
        "kept top Via"
    );
    assert_eq!(
        m.request_uri_parsed().map(Some),
        m.request_uri().map(|u| sip_core::uri::Uri::parse(u).ok()),
        "kept Request-URI"
    );
    assert_eq!(m.second_via(), m.header_values(HeaderName::Via).nth(1).map(|(_, v)| v));
    let c = m.copied();
    assert_eq!((c.as_bytes(), c.top_via(), c.call_id()), (m.as_bytes(), m.top_via(), m.call_id()));
    assert_eq!(m.from().and_then(|f| f.tag()), m.from_tag());
    assert_eq!(m.to().and_then(|t| t.tag()), m.to_tag());
    if m.route_count() > 0 {
        let top = m.top_route().expect("the pass validated the top Route");
        assert_eq!(Some(top.uri_raw()), m.routes().next().unwrap().ok().map(|r| r.uri_raw()));
    }
    if let Some(v) = m.header(HeaderName::CSeq) {
        let c = CSeq::parse(v).expect("the pass validated CSeq");
        assert_eq!(m.cseq(), Some((c.number, c.method)));
    }

    if let Some(u) = m.request_uri_parsed() {
        let _ = (u.scheme(), u.scheme_raw(), u.user(), u.password(), u.host(), u.port());
        let _ = (u.transport(), u.effective_transport(), u.port_or_default(), u.opaque());
        let _ = (u.params().count(), u.headers().count(), u.is_loose_router(), u.param("lr"));
        let _: Vec<u8> = sip_core::uri::percent_decode(u.as_bytes()).collect();
        if let Some(h) = u.host() {
            let _ = (h.ip(), h.to_string());
        }
    }
    for v in m.vias().flatten() {
        let _ = (v.protocol_name(), v.protocol_version(), v.transport(), v.host(), v.port());
        let _ = (v.branch(), v.has_rfc3261_branch(), v.received_ip(), v.rport(), v.maddr());
        let _ = (v.ttl(), v.response_target(), v.params().count(), v.param("x"));
    }
    for r in m.routes().chain(m.record_routes()).flatten() {
        let _ = (r.display_name_text(), r.tag(), r.params().count(), r.is_bracketed());
        if let Ok(u) = r.uri() {
            let _ = (u.host(), u.port(), u.is_loose_router());
        }
    }
    for h in m.headers() {
        let _ = (h.name, h.raw_name, h.value, m.slice(h.line));
        assert!(h.line.end as usize <= m.headers_end());
    }
    for (name, raw) in [
        (HeaderName::Contact, None),
        (HeaderName::Expires, None),
        (HeaderName::RetryAfter, None),
        (HeaderName::Authorization, None),
        (HeaderName::ProxyAuthorization, None),
        (HeaderName::Require, None),
        (HeaderName::ProxyRequire, None),
        (HeaderName::Supported, None),
        (HeaderName::Other, Some("x-unknown")),
    ] {
        let value = match raw {
            Some(r) => m.header_by_name(r),
            None => m.header(name),
        };
        let Some(v) = value else { continue };
        match name {
            HeaderName::Contact => {
                if let Ok(Contact::List(l)) = Contact::parse(v) {
                    for c in l {
                        let _ = (c.expires(), c.q(), c.addr.uri());
                    }
                }
            }
            HeaderName::Expires => {
                let _ = parse_expires(v);
            }
            HeaderName::RetryAfter => {
                let _ = RetryAfter::parse(v);
            }
            HeaderName::Authorization | HeaderName::ProxyAuthorization => {
                if let Ok(c) = Credentials::parse(v) {
                    let _ = (c.scheme(), c.username(), c.params().count());
                }
            }
            _ => {
                let _ = option_tags(v).count();
            }
        }
    }

    // Datagram framing: the body is exactly Content-Length bytes.
    if let Some(cl) = m.content_length() {
        assert_eq!(m.body().len(), cl as usize);
    }
    // The message cut to its own length parses to the same essentials.
    let again = Message::parse(m.buffer().slice(..m.message_len())).expect("reparse");
    assert_eq!(again.as_bytes(), m.as_bytes());
    assert_eq!((again.call_id(), again.cseq(), again.via_count()), (m.call_id(), m.cseq(), m.via_count()));
    // Forwarded unchanged: the same bytes.
    assert_eq!(&Editor::new(&m).finish().expect("no edits")[..], m.as_bytes());

    // What the builder writes from a complete request parses again.
    let complete = m.via_count() > 0
        && m.call_id().is_some()
        && m.cseq().is_some()
        && m.from().is_some()
        && m.to().is_some();
    if m.is_request() && complete {
        let r = ResponseBuilder::new(&m, 400, "Bad Request").to_tag(b"x").build();
        let r = Message::parse(r).expect("built response parses");
        assert_eq!((r.call_id(), r.cseq()), (m.call_id(), m.cseq()));
        assert_eq!(r.via_count(), m.via_count());
        if m.method() == Some(sip_core::Method::Invite) {
            Message::parse(cancel_for(&m)).expect("built CANCEL parses");
            Message::parse(ack_for(&m, &r)).expect("built ACK parses");
        }
    }
});
