//! Sanity checks on requests (what Kamailio's `sanity` module checks, built in) and the
//! answer to a request too broken to parse.

use bytes::{BufMut, Bytes, BytesMut};
use sip_core::uri::Scheme;
use sip_core::{HeaderName, Message, Method, ParseError, values::option_tags};

/// A request the proxy refuses, with the status to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Status code.
    pub code: u16,
    /// Reason phrase naming the problem.
    pub reason: &'static str,
}

const fn refuse(code: u16, reason: &'static str) -> Refusal {
    Refusal { code, reason }
}

/// Checks what the proxy relies on in a parsed request: the mandatory headers (§8.1.1),
/// a routable Request-URI scheme (416), Proxy-Require (420). On a refusal, for 420 the
/// caller lists the unsupported tags with [`unsupported_tags`]. (The Request-URI itself
/// was parsed and checked by the parse pass: [`Message::request_uri_parsed`] gives it.)
#[inline]
pub fn check_request(msg: &Message, supported: &[String]) -> Result<(), Refusal> {
    if msg.via_count() == 0 {
        return Err(refuse(400, "Missing Via"));
    }
    // The parser has already checked the top Via (a message whose top Via does not
    // parse is refused there), and located and checked From and To when present.
    if msg.from_index().is_none() {
        return Err(refuse(400, "Missing From"));
    }
    if msg.to_index().is_none() {
        return Err(refuse(400, "Missing To"));
    }
    if msg.call_id().is_none_or(<[u8]>::is_empty) {
        return Err(refuse(400, "Missing Call-ID"));
    }
    if msg.cseq().is_none() {
        return Err(refuse(400, "Missing CSeq"));
    }
    // (None only for a response; the parser refuses a Request-URI that does not parse.)
    let Some(scheme) = msg.request_uri_scheme() else {
        return Err(refuse(400, "Bad Request-URI"));
    };
    if matches!(scheme, Scheme::Other) && msg.method() != Some(Method::Ack) {
        return Err(refuse(416, "Unsupported URI Scheme"));
    }
    if unsupported_tags(msg, supported).next().is_some() {
        return Err(refuse(420, "Bad Extension"));
    }
    Ok(())
}

/// The Proxy-Require option tags not in `supported` (case-sensitive, RFC 3261 §19.2).
pub fn unsupported_tags<'m>(
    msg: &'m Message,
    supported: &'m [String],
) -> impl Iterator<Item = &'m [u8]> + 'm {
    msg.headers_named(HeaderName::ProxyRequire)
        .flat_map(|h| option_tags(h.value))
        .filter_map(Result::ok)
        .filter(move |t| !supported.iter().any(|s| s.as_bytes() == *t))
}

fn header_kind(name: &[u8]) -> Option<HeaderName> {
    match HeaderName::from_bytes(name) {
        h @ (HeaderName::Via
        | HeaderName::From
        | HeaderName::To
        | HeaderName::CallId
        | HeaderName::CSeq) => Some(h),
        _ => None,
    }
}

/// The answer to a request that does not parse: the status line for `err`, and the Via,
/// From, To (with `to_tag` added), Call-ID and CSeq lines copied verbatim from whatever
/// could be found. `None` for a response, an ACK, or when no Via line exists (no one to
/// answer). Never panics on any input.
pub fn reply_to_unparsable(data: &[u8], err: &ParseError, to_tag: &[u8]) -> Option<Bytes> {
    if data.starts_with(b"SIP/") || data.starts_with(b"ACK ") {
        return None;
    }
    let first_end = memfind(data, b"\n")?;
    if data[..first_end].len() < 4 {
        return None;
    }
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(b"SIP/2.0 ");
    let mut b = itoa::Buffer::new();
    out.put_slice(b.format(err.status_code()).as_bytes());
    out.put_u8(b' ');
    out.put_slice(err.reason_phrase().as_bytes());
    out.put_slice(b"\r\n");
    let mut have_via = false;
    let mut seen = 0u8;
    let mut pos = first_end + 1;
    let mut lines = 0;
    while pos < data.len() && lines < 256 {
        lines += 1;
        let end = memfind(&data[pos..], b"\n").map_or(data.len(), |e| pos + e);
        let line = &data[pos..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos = end + 1;
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        let Some(kind) = header_kind(name) else {
            continue;
        };
        if line.len() > 2048 || line.iter().any(|&c| c < 0x20 && c != b'\t') {
            continue;
        }
        // One of each single-valued header, or the reply itself would be malformed.
        let bit = match kind {
            HeaderName::From => 1,
            HeaderName::To => 2,
            HeaderName::CallId => 4,
            HeaderName::CSeq => 8,
            _ => 0,
        };
        if seen & bit != 0 {
            continue;
        }
        seen |= bit;
        have_via |= kind == HeaderName::Via;
        out.put_slice(kind.as_str().as_bytes());
        out.put_slice(b": ");
        let value = trim(&line[colon + 1..]);
        out.put_slice(value);
        if kind == HeaderName::To && !to_tag.is_empty() && find_ci(value, b";tag=").is_none() {
            out.put_slice(b";tag=");
            out.put_slice(to_tag);
        }
        out.put_slice(b"\r\n");
    }
    if !have_via {
        return None;
    }
    out.put_slice(b"Content-Length: 0\r\n\r\n");
    Some(out.freeze())
}

fn trim(s: &[u8]) -> &[u8] {
    let a = s
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(s.len());
    let b = s
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(a, |p| p + 1);
    &s[a..b.max(a)]
}

fn memfind(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn find_ci(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unparsable_request_gets_a_reply_with_its_headers() {
        let data = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
            From: <sip:x@y>;tag=9\r\nTo: <sip:a@b>\r\nCall-ID: abc\r\nCSeq: 1 INVITE\r\nCSeq: 2 INVITE\r\n\r\n";
        let err = Message::parse(Bytes::from_static(data)).unwrap_err();
        let r = reply_to_unparsable(data, &err, b"lb1").unwrap();
        let m = Message::parse(r).unwrap();
        assert_eq!(m.status_code(), Some(400));
        assert_eq!(m.reason(), Some(&b"Duplicate CSeq"[..]));
        assert_eq!(m.to_tag(), Some(&b"lb1"[..]));
        assert_eq!(m.top_via_branch(), Some(&b"z9hG4bK1"[..]));
    }

    #[test]
    fn responses_acks_and_garbage_get_nothing() {
        let err = Message::parse(Bytes::from_static(b"\x00")).unwrap_err();
        assert!(reply_to_unparsable(b"SIP/2.0 200 OK\r\n\r\n", &err, b"").is_none());
        assert!(reply_to_unparsable(b"ACK sip:a SIP/2.0\r\nVia: x\r\n\r\n", &err, b"").is_none());
        assert!(reply_to_unparsable(b"", &err, b"").is_none());
        assert!(reply_to_unparsable(b"\xff\xfe\n\n", &err, b"").is_none());
    }
}
