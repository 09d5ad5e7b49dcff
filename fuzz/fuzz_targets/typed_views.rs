//! Fuzz each typed view on arbitrary bytes: URI, name-addr, Via, CSeq, Contact,
//! Retry-After, Expires, credentials, option tags. Nothing may panic, and the fast paths
//! of the URI and Via views agree with their reference parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::name_addr::NameAddr;
use sip_core::uri::Uri;
use sip_core::values::{Contact, Credentials, CSeq, RetryAfter, option_tags, parse_expires};
use sip_core::via::Via;

fuzz_target!(|data: &[u8]| {
    if let Some(f) = Uri::parse_fast(data) {
        assert_eq!(Uri::parse_reference(data), Ok(f), "URI fast path and reference differ");
    }
    if let Some(f) = Via::parse_fast(data) {
        assert_eq!(Via::parse_reference(data), Ok(f), "Via fast path and reference differ");
    }
    if let Ok(u) = Uri::parse(data) {
        let _ = (u.scheme(), u.user(), u.host(), u.port_or_default(), u.effective_transport());
        let _ = (u.params().count(), u.headers().count(), u.is_loose_router());
        let _ = (u.password(), u.port(), u.transport(), u.param("transport"), u.opaque());
        if let Some(h) = u.host() {
            let _ = (h.ip(), h.to_string());
        }
        let _: Vec<u8> = sip_core::uri::percent_decode(u.as_bytes()).collect();
    }
    if let Ok(n) = NameAddr::parse(data) {
        let _ = (n.display_name_text(), n.tag(), n.params().count(), n.is_bracketed());
        if let Ok(u) = n.uri() {
            // The URI view of a name-addr is the URI parsed on its own.
            assert_eq!(Uri::parse(n.uri_raw()).map(|x| x.as_bytes()), Ok(u.as_bytes()));
        }
    }
    if let Ok(v) = Via::parse(data) {
        let _ = (v.transport(), v.host(), v.port(), v.branch(), v.received_ip(), v.rport());
        let _ = (v.params().count(), v.response_target(), v.maddr(), v.ttl(), v.param("x"));
        let _ = (v.protocol_name(), v.protocol_version(), v.transport_raw(), v.has_rfc3261_branch());
    }
    if let Ok(c) = CSeq::parse(data) {
        let _ = (c.number, c.method, c.method_raw);
    }
    if let Ok(Contact::List(l)) = Contact::parse(data) {
        for c in l {
            let _ = (c.expires(), c.q(), c.addr.uri());
        }
    }
    let _ = RetryAfter::parse(data);
    let _ = parse_expires(data);
    if let Ok(c) = Credentials::parse(data) {
        let _ = (c.username(), c.params().count());
    }
    let _ = option_tags(data).count();
});
