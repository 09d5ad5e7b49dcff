//! Fuzz the message parser and every accessor and typed view of what parses, plus the
//! response builder for requests. Nothing may panic; an accepted message must be
//! self-consistent (body length = Content-Length for datagrams).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip_core::builder::ResponseBuilder;
use sip_core::{HeaderName, Message};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let _ = (m.method(), m.method_bytes(), m.status_code(), m.reason());
    let _ = (m.top_via(), m.top_via_branch(), m.call_id(), m.cseq(), m.from(), m.to());
    let _ = (m.from_tag(), m.to_tag(), m.max_forwards(), m.top_route(), m.route_count());
    if let Some(Ok(u)) = m.request_uri_parsed() {
        let _ = (u.user(), u.password(), u.host(), u.port(), u.transport(), u.headers().count());
        let _ = u.params().count();
    }
    for v in m.vias().flatten() {
        let _ = (v.branch(), v.received_ip(), v.rport(), v.maddr(), v.ttl(), v.response_target());
    }
    for r in m.routes().chain(m.record_routes()).flatten() {
        let _ = (r.display_name_text(), r.uri(), r.tag());
    }
    for h in m.headers() {
        let _ = (h.name, h.value);
    }
    if let Some(c) = m.header(HeaderName::Contact) {
        let _ = sip_core::values::Contact::parse(c);
    }
    if let Some(cl) = m.content_length() {
        assert_eq!(m.body().len(), cl as usize);
    }
    if m.is_request() {
        let r = ResponseBuilder::new(&m, 400, "Bad Request").to_tag(b"x").build();
        let _ = Message::parse(r);
    }
});
