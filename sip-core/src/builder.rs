//! Building the messages a proxy originates: responses to requests (RFC 3261 §8.2.6),
//! OPTIONS probes, CANCEL (§9.1) and the ACK for a non-2xx final response (§17.1.1.3).
//!
//! Everything is written directly into one output buffer (numbers with `itoa`), without
//! intermediate `String`s.
//!
//! ```
//! use bytes::Bytes;
//! use sip_core::{Message, builder::ResponseBuilder};
//! let req = Message::parse(Bytes::from_static(
//!     b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
//!       Max-Forwards: 0\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n\
//!       Call-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n",
//! )).unwrap();
//! let resp = ResponseBuilder::new(&req, 483, "Too Many Hops").to_tag(b"lb1").build();
//! let resp = Message::parse(resp).unwrap();
//! assert_eq!(resp.status_code(), Some(483));
//! assert_eq!(resp.to_tag(), Some(&b"lb1"[..]));
//! assert_eq!(resp.cseq(), Some((7, sip_core::Method::Invite)));
//! ```

use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};

use crate::header::HeaderName;
use crate::message::Message;
use crate::method::Method;
use crate::transport::Transport;

/// A small writer over `BytesMut` for message text.
struct Out<'a>(&'a mut BytesMut);

impl Out<'_> {
    #[inline]
    fn put(&mut self, b: &[u8]) -> &mut Self {
        self.0.put_slice(b);
        self
    }
    #[inline]
    fn num(&mut self, n: impl itoa::Integer) -> &mut Self {
        let mut b = itoa::Buffer::new();
        self.0.put_slice(b.format(n).as_bytes());
        self
    }
    #[inline]
    fn header(&mut self, name: &[u8], value: &[u8]) -> &mut Self {
        self.put(name).put(b": ").put(value).put(b"\r\n")
    }
}

/// Writes the via-parm `via` (parsed: `v`, whose slices lie in `via`) of a request
/// received from `src` with `received` and `rport` filled in as RFC 3261 §18.2.1 and
/// RFC 3581 §4 ask. (A message's top Via always has its parsed view: the parse pass
/// refuses a message whose top Via does not parse.)
fn write_via_from(o: &mut Out<'_>, via: &[u8], v: &crate::via::ViaNat<'_>, src: SocketAddr) {
    let offset = |sub: &[u8]| sub.as_ptr() as usize - via.as_ptr() as usize;
    let rport = v.rport;
    // Where `=port` goes (after an `rport` without a value).
    let rport_at = match rport {
        Some(None) => v.rport_name.map(|n| offset(n) + n.len()),
        _ => None,
    };
    let need_received =
        (v.host_ip != Some(src.ip()) || rport.is_some()) && v.received_ip() != Some(src.ip());
    // The span of a wrong `received` value to replace, or the end to append one.
    let received_at = if !need_received {
        None
    } else if let Some(val) = v.received {
        Some((offset(val), offset(val) + val.len()))
    } else {
        Some((via.len(), via.len()))
    };
    let mut ip = [0u8; 48];
    let ip_len = write_ip(src.ip(), &mut ip);
    let mut pos = 0;
    let mut edits: [(usize, usize, u8); 2] = [(usize::MAX, 0, 0); 2];
    if let Some(at) = rport_at {
        edits[0] = (at, at, b'p');
    }
    if let Some((s, e)) = received_at {
        edits[1] = (s, e, b'r');
    }
    edits.sort_unstable();
    for (s, e, kind) in edits {
        if s == usize::MAX {
            continue;
        }
        o.put(&via[pos..s]);
        match kind {
            b'p' => {
                o.put(b"=").num(src.port());
            }
            _ => {
                if s == e && s == via.len() {
                    o.put(b";received=");
                }
                o.put(&ip[..ip_len]);
            }
        }
        pos = e;
    }
    o.put(&via[pos..]);
}

/// Each octet's decimal digits, then their count (a `received` is written per request).
const OCTET_TEXT: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut o = 0;
    while o < 256 {
        let v = o as u8;
        t[o] = if v >= 100 {
            [b'0' + v / 100, b'0' + v / 10 % 10, b'0' + v % 10, 3]
        } else if v >= 10 {
            [b'0' + v / 10, b'0' + v % 10, 0, 2]
        } else {
            [b'0' + v, 0, 0, 1]
        };
        o += 1;
    }
    t
};

/// Writes `ip` as text into `out` (IPv4 dotted, IPv6 without brackets, as in `received`);
/// returns the length.
pub fn write_ip(ip: IpAddr, out: &mut [u8; 48]) -> usize {
    match ip {
        IpAddr::V4(a) => {
            // An octet's text from a table, four bytes at a time (the room after the
            // digits is overwritten by what follows): no division, no copy call.
            let mut n = 0;
            for (i, &o) in a.octets().iter().enumerate() {
                if i > 0 {
                    out[n] = b'.';
                    n += 1;
                }
                let t = OCTET_TEXT[usize::from(o)];
                out[n..n + 4].copy_from_slice(&t);
                n += usize::from(t[3]);
            }
            n
        }
        IpAddr::V6(a) => {
            use std::io::Write;
            let mut cur = std::io::Cursor::new(&mut out[..]);
            let _ = write!(cur, "{a}");
            cur.position() as usize
        }
    }
}

/// Builds a response to a request (RFC 3261 §8.2.6): copies every Via (in order), From,
/// To (adding a tag when it has none, except for 100 Trying), Call-ID and CSeq, and for a
/// 100 Trying the Timestamp (§8.2.6.1); adds the extra headers given and Content-Length.
#[derive(Debug)]
pub struct ResponseBuilder<'a> {
    req: &'a Message,
    code: u16,
    reason: &'a str,
    to_tag: Option<&'a [u8]>,
    extra: smallvec::SmallVec<[(&'a [u8], &'a [u8]); 4]>,
    retry_after: Option<u32>,
    body: Option<(&'a [u8], &'a [u8])>,
    source: Option<SocketAddr>,
}

impl<'a> ResponseBuilder<'a> {
    /// A response with this status code and reason phrase to `req`.
    #[inline]
    pub fn new(req: &'a Message, code: u16, reason: &'a str) -> Self {
        ResponseBuilder {
            req,
            code,
            reason,
            to_tag: None,
            extra: smallvec::SmallVec::new(),
            retry_after: None,
            body: None,
            source: None,
        }
    }

    /// The address the request came from. The response's top Via then carries what the
    /// request's would have carried when forwarded: `received` with the source IP when
    /// the sent-by differs from it or `rport` is present, and the source port in an
    /// `rport` without a value (RFC 3261 §18.2.1, RFC 3581 §4), so that a client behind
    /// a NAT learns its public address from every response, local ones included.
    #[inline]
    pub fn source(mut self, addr: SocketAddr) -> Self {
        self.source = Some(addr);
        self
    }

    /// The tag to add to To when the request's To has none (ignored for 100 Trying and when
    /// To already has a tag).
    #[inline]
    pub fn to_tag(mut self, tag: &'a [u8]) -> Self {
        self.to_tag = Some(tag);
        self
    }

    /// Adds a header line.
    #[inline]
    pub fn header(mut self, name: &'a [u8], value: &'a [u8]) -> Self {
        self.extra.push((name, value));
        self
    }

    /// Adds `Retry-After: seconds`.
    #[inline]
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Sets a body with its Content-Type.
    #[inline]
    pub fn body(mut self, content_type: &'a [u8], body: &'a [u8]) -> Self {
        self.body = Some((content_type, body));
        self
    }

    /// Writes the response at the end of `buf`.
    pub fn write_into(&self, buf: &mut BytesMut) {
        let req = self.req;
        let d = req.as_bytes();
        buf.reserve(self.size_hint());
        let mut o = Out(buf);
        // The status line in one copy when the code has three digits (always, for a code
        // of the grammar: 100 to 699).
        if (100..=999).contains(&self.code) {
            let c = self.code;
            let mut line = *b"SIP/2.0 000 ";
            line[8] = b'0' + (c / 100) as u8;
            line[9] = b'0' + (c / 10 % 10) as u8;
            line[10] = b'0' + (c % 10) as u8;
            o.put(&line);
        } else {
            o.put(b"SIP/2.0 ").num(self.code).put(b" ");
        }
        o.put(self.reason.as_bytes()).put(b"\r\n");
        let top_via = req.top_via_span().zip(req.top_via_nat());
        let add_tag = (self.code > 100 && req.to_tag().is_none())
            .then_some(self.to_tag)
            .flatten();
        // Lines copied as they are written in the request (name, value, line end), runs of
        // adjacent ones in one copy: most of a response is the request's Via, From, To,
        // Call-ID and CSeq lines, usually next to each other. A run ends where the next
        // line not copied starts (or the header section ends).
        let mut run: Option<usize> = None;
        // A line of the run that ends in a bare LF (which the parser tolerates) gets the CRLF
        // of the grammar: the response is written strictly.
        let cut = |o: &mut Out<'_>, start: usize, end: usize| {
            if d[end - 2] == b'\r' {
                o.put(&d[start..end]);
            } else {
                o.put(&d[start..end - 1]).put(b"\r\n");
            }
        };
        for h in req.headers() {
            let at = h.line.start as usize;
            if let Some(start) = run
                && d[at - 2] != b'\r'
            {
                cut(&mut o, start, at);
                run = None;
            }
            let copy = match h.name {
                HeaderName::Via => !matches!(
                    (self.source, &top_via),
                    (Some(_), Some(((idx, _), _))) if *idx == h.index
                ),
                HeaderName::From | HeaderName::CallId | HeaderName::CSeq => true,
                HeaderName::To => add_tag.is_none(),
                HeaderName::Timestamp => self.code == 100,
                _ => false,
            };
            if copy {
                run.get_or_insert(at);
                continue;
            }
            if let Some(start) = run.take() {
                cut(&mut o, start, at);
            }
            match h.name {
                HeaderName::Via => {
                    if let (Some(src), Some(((_, span), via))) = (self.source, &top_via) {
                        let v0 = h.value_span.start as usize;
                        let (a, b) = (span.start as usize - v0, span.end as usize - v0);
                        o.put(b"Via: ").put(&h.value[..a]);
                        write_via_from(&mut o, &h.value[a..b], via, src);
                        o.put(&h.value[b..]).put(b"\r\n");
                    }
                }
                HeaderName::To => {
                    o.put(b"To: ").put(h.value);
                    if let Some(tag) = add_tag {
                        o.put(b";tag=").put(tag);
                    }
                    o.put(b"\r\n");
                }
                _ => {}
            }
        }
        if let Some(start) = run {
            cut(&mut o, start, req.headers_end());
        }
        if let Some(s) = self.retry_after {
            o.put(b"Retry-After: ").num(s).put(b"\r\n");
        }
        for (n, v) in &self.extra {
            o.header(n, v);
        }
        match self.body {
            Some((ct, body)) => {
                o.header(b"Content-Type", ct);
                o.put(b"Content-Length: ")
                    .num(body.len())
                    .put(b"\r\n\r\n")
                    .put(body);
            }
            None => {
                o.put(b"Content-Length: 0\r\n\r\n");
            }
        }
    }

    /// Room enough for the response in the usual case (the request's headers and some).
    fn size_hint(&self) -> usize {
        let extra: usize = self.extra.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        self.req.headers_end() + 128 + extra + self.body.map_or(0, |b| b.0.len() + b.1.len())
    }

    /// The response.
    pub fn build(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.size_hint());
        self.write_into(&mut b);
        b.freeze()
    }
}

/// The parts of a Via header value a proxy writes for itself.
#[derive(Clone, Copy, Debug)]
pub struct ViaParts<'a> {
    /// The transport of the hop.
    pub transport: Transport,
    /// The sent-by host (an IPv6 address with brackets).
    pub host: &'a [u8],
    /// The sent-by port.
    pub port: u16,
    /// The branch (starting with `z9hG4bK`).
    pub branch: &'a [u8],
    /// Add an empty `rport` parameter (RFC 3581).
    pub rport: bool,
}

impl ViaParts<'_> {
    /// Writes `SIP/2.0/UDP host:port;branch=...[;rport]` at the end of `buf`.
    pub fn write_into(&self, buf: &mut BytesMut) {
        let mut o = Out(buf);
        o.put(b"SIP/2.0/")
            .put(self.transport.via_token().as_bytes())
            .put(b" ")
            .put(self.host)
            .put(b":")
            .num(self.port)
            .put(b";branch=")
            .put(self.branch);
        if self.rport {
            o.put(b";rport");
        }
    }
}

/// An OPTIONS request probing a destination (what Kamailio's dispatcher sends to check
/// that a destination is alive).
#[derive(Clone, Copy, Debug)]
pub struct OptionsProbe<'a> {
    /// Request-URI and To URI (the destination's URI).
    pub target: &'a [u8],
    /// From URI (`ping_from`).
    pub from: &'a [u8],
    /// From tag.
    pub from_tag: &'a [u8],
    /// Call-ID.
    pub call_id: &'a [u8],
    /// CSeq number.
    pub cseq: u32,
    /// Our Via.
    pub via: ViaParts<'a>,
    /// User-Agent value, if any.
    pub user_agent: Option<&'a [u8]>,
}

impl OptionsProbe<'_> {
    /// Writes the request at the end of `buf`.
    pub fn write_into(&self, buf: &mut BytesMut) {
        buf.reserve(256 + 2 * self.target.len() + self.from.len() + self.call_id.len());
        Out(buf)
            .put(b"OPTIONS ")
            .put(self.target)
            .put(b" SIP/2.0\r\nVia: ");
        self.via.write_into(buf);
        let mut o = Out(buf);
        o.put(b"\r\nMax-Forwards: 70\r\nFrom: <")
            .put(self.from)
            .put(b">;tag=")
            .put(self.from_tag)
            .put(b"\r\nTo: <")
            .put(self.target)
            .put(b">\r\nCall-ID: ")
            .put(self.call_id)
            .put(b"\r\nCSeq: ")
            .num(self.cseq)
            .put(b" OPTIONS\r\n");
        if let Some(ua) = self.user_agent {
            o.header(b"User-Agent", ua);
        }
        o.put(b"Content-Length: 0\r\n\r\n");
    }

    /// The request.
    pub fn build(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.write_into(&mut b);
        b.freeze()
    }
}

/// Writes the start line and the headers a CANCEL and a non-2xx ACK share with the INVITE.
fn write_invite_derived(invite: &Message, method: &[u8], to_value: &[u8], buf: &mut BytesMut) {
    let uri = invite.request_uri().unwrap_or_default();
    buf.reserve(invite.headers_end() + 64);
    let mut o = Out(buf);
    o.put(method).put(b" ").put(uri).put(b" SIP/2.0\r\n");
    if let Some((_, span)) = invite.top_via_span() {
        o.header(b"Via", invite.slice(span));
    }
    for h in invite.headers_named(HeaderName::Route) {
        o.header(b"Route", h.value);
    }
    o.put(b"Max-Forwards: 70\r\n");
    if let Some(from) = invite.header(HeaderName::From) {
        o.header(b"From", from);
    }
    o.header(b"To", to_value);
    if let Some(cid) = invite.call_id() {
        o.header(b"Call-ID", cid);
    }
    let n = invite.cseq().map_or(0, |c| c.0);
    o.put(b"CSeq: ").num(n).put(b" ").put(method).put(b"\r\n");
    o.put(b"Content-Length: 0\r\n\r\n");
}

/// The CANCEL for an INVITE as we sent it (RFC 3261 §9.1): same Request-URI, Call-ID, From,
/// To, CSeq number and Route set, one Via equal to the INVITE's top Via.
pub fn cancel_for(invite: &Message) -> Bytes {
    let mut b = BytesMut::new();
    let to = invite.header(HeaderName::To).unwrap_or_default();
    write_invite_derived(invite, b"CANCEL", to, &mut b);
    b.freeze()
}

/// The ACK for a non-2xx final response to an INVITE as we sent it (RFC 3261 §17.1.1.3):
/// the INVITE's Request-URI, Call-ID, From, CSeq number, Route set and top Via, and the To
/// of the response (with its tag).
pub fn ack_for(invite: &Message, response: &Message) -> Bytes {
    let mut b = BytesMut::new();
    let to = response
        .header(HeaderName::To)
        .or_else(|| invite.header(HeaderName::To))
        .unwrap_or_default();
    write_invite_derived(invite, b"ACK", to, &mut b);
    b.freeze()
}

/// True when `m` is an INVITE (convenience for callers building CANCEL/ACK).
pub fn is_invite(m: &Message) -> bool {
    m.method() == Some(Method::Invite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_ip_writes_what_display_writes() {
        let mut buf = [0u8; 48];
        for o in 0..=255u8 {
            for ip in [
                [o, 0, 9, 255],
                [255, o, 10, 1],
                [1, 99, o, 100],
                [7, 8, 9, o],
            ] {
                let ip = IpAddr::from(ip);
                let n = write_ip(ip, &mut buf);
                assert_eq!(&buf[..n], ip.to_string().as_bytes());
            }
        }
        let ip: IpAddr = "2001:db8::9:1".parse().unwrap();
        let n = write_ip(ip, &mut buf);
        assert_eq!(&buf[..n], b"2001:db8::9:1");
    }

    fn invite() -> Message {
        Message::parse(Bytes::from_static(
            b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKlb1\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc1;received=192.0.2.1\r\n\
Route: <sip:edge.example.com;lr>\r\n\
Max-Forwards: 69\r\n\
From: \"A\" <sip:a@example.com>;tag=fa\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: cid-1\r\n\
CSeq: 42 INVITE\r\n\
Timestamp: 54\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 3\r\n\r\nv=0",
        ))
        .unwrap()
    }

    #[test]
    fn response_copies_what_8_2_6_lists() {
        let req = invite();
        let r = ResponseBuilder::new(&req, 503, "Service Unavailable")
            .to_tag(b"t1")
            .retry_after(30)
            .header(b"Server", b"sip-lb")
            .build();
        let m = Message::parse(r).unwrap();
        assert_eq!(m.status_code(), Some(503));
        assert_eq!(m.reason(), Some(&b"Service Unavailable"[..]));
        assert_eq!(m.via_count(), 2);
        assert_eq!(m.top_via_branch(), Some(&b"z9hG4bKlb1"[..]));
        assert_eq!(m.from_tag(), Some(&b"fa"[..]));
        assert_eq!(m.to_tag(), Some(&b"t1"[..]));
        assert_eq!(m.call_id(), Some(&b"cid-1"[..]));
        assert_eq!(m.cseq(), Some((42, Method::Invite)));
        assert_eq!(m.header(HeaderName::RetryAfter), Some(&b"30"[..]));
        assert_eq!(m.header(HeaderName::Server), Some(&b"sip-lb"[..]));
        assert_eq!(m.header(HeaderName::Timestamp), None);
        assert_eq!(m.body(), b"");
        assert_eq!(m.content_length(), Some(0));
    }

    #[test]
    fn trying_has_no_tag_and_echoes_timestamp() {
        let req = invite();
        let m = Message::parse(
            ResponseBuilder::new(&req, 100, "Trying")
                .to_tag(b"t1")
                .build(),
        )
        .unwrap();
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.header(HeaderName::Timestamp), Some(&b"54"[..]));
    }

    #[test]
    fn the_top_via_gets_received_and_rport_from_the_source() {
        let with_via = |via: &str| {
            Message::parse(Bytes::from(format!(
                "OPTIONS sip:lb SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKlow\r\n\
                 From: <sip:a@b>;tag=1\r\nTo: <sip:lb>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n"
            )))
            .unwrap()
        };
        let top = |req: &Message, src: &str| {
            let r = Message::parse(
                ResponseBuilder::new(req, 200, "OK")
                    .source(src.parse().unwrap())
                    .build(),
            )
            .unwrap();
            assert_eq!(r.via_count(), 2);
            let v = r.header_values(HeaderName::Via).nth(1).unwrap().1.to_vec();
            assert_eq!(
                v, b"SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKlow",
                "lower Vias stay"
            );
            String::from_utf8(r.header_values(HeaderName::Via).next().unwrap().1.to_vec()).unwrap()
        };
        for (via, source, want) in [
            // rport without a value gets the port; received the IP (RFC 3581 §4).
            (
                "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport",
                "203.0.113.7:40000",
                "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport=40000;received=203.0.113.7",
            ),
            // The same IP and no rport: nothing to add (§18.2.1).
            (
                "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1",
                "192.0.2.1:5060",
                "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1",
            ),
            // A domain sent-by always gets received; a wrong received is replaced.
            (
                "SIP/2.0/UDP pc.example.com;received=10.0.0.1;branch=z9hG4bK1",
                "192.0.2.9:5060",
                "SIP/2.0/UDP pc.example.com;received=192.0.2.9;branch=z9hG4bK1",
            ),
            // rport in the middle and IPv6 (RFC 5118: received without brackets).
            (
                "SIP/2.0/UDP [2001:db8::1]:5060;rport;branch=z9hG4bK1",
                "[2001:db8::9]:7000",
                "SIP/2.0/UDP [2001:db8::1]:5060;rport=7000;branch=z9hG4bK1;received=2001:db8::9",
            ),
            // The first rport (any case) and the first received are the ones filled in.
            (
                "SIP/2.0/UDP 192.0.2.1:5060;RPORT;branch=z9hG4bK1;rport",
                "203.0.113.7:40000",
                "SIP/2.0/UDP 192.0.2.1:5060;RPORT=40000;branch=z9hG4bK1;rport;received=203.0.113.7",
            ),
            (
                "SIP/2.0/UDP pc.example.com;received=10.0.0.1;branch=z9hG4bK1;received=10.0.0.2",
                "192.0.2.9:5060",
                "SIP/2.0/UDP pc.example.com;received=192.0.2.9;branch=z9hG4bK1;received=10.0.0.2",
            ),
            // White space around the parameters (the reference parser's path).
            (
                "SIP/2.0/UDP 192.0.2.1:5060 ;rport ; branch=z9hG4bK1",
                "203.0.113.7:40000",
                "SIP/2.0/UDP 192.0.2.1:5060 ;rport=40000 ; branch=z9hG4bK1;received=203.0.113.7",
            ),
        ] {
            assert_eq!(top(&with_via(via), source), want, "{via} from {source}");
        }
        // Several values in the top line: only the first changes.
        let req = Message::parse(Bytes::from_static(
            b"OPTIONS sip:lb SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;rport;branch=z9hG4bK1, SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKlow\r\n\
              From: <sip:a@b>;tag=1\r\nTo: <sip:lb>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(
            top(&req, "192.0.2.1:5070"),
            "SIP/2.0/UDP 192.0.2.1;rport=5070;branch=z9hG4bK1;received=192.0.2.1"
        );
    }

    #[test]
    fn response_copies_the_request_lines_as_written_with_crlf_line_ends() {
        // Compact names, odd spacing, a line between the copied ones, bare LF line ends
        // (which the parser tolerates), the copied lines last in the header section.
        let text = "INVITE sip:bob@example.com SIP/2.0\r\n\
                    v:  SIP/2.0/UDP 192.0.2.1:5060 ;branch=z9hG4bKa;rport\n\
                    Via: SIP/2.0/TCP 10.1.1.1;branch=z9hG4bKb\r\n\
                    Max-Forwards: 70\r\n\
                    f: \"A, B\" <sip:a@example.com> ;tag=fa\n\
                    Subject: not copied\r\n\
                    t:<sip:bob@example.com>\r\n\
                    Timestamp: 54 0.5\r\n\
                    i: cid-7\r\n\
                    CSeq:   9   INVITE\n\r\n";
        let req = Message::parse(Bytes::from(text)).unwrap();
        let src: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        for (code, tag) in [(100, None), (180, Some("t9")), (486, Some("t9"))] {
            let mut b = ResponseBuilder::new(&req, code, "R").source(src);
            if let Some(t) = tag {
                b = b.to_tag(t.as_bytes());
            }
            let r = b.build();
            let s = std::str::from_utf8(&r).unwrap();
            // Every line ends in CRLF.
            assert!(!s.replace("\r\n", "").contains('\n'), "{s:?}");
            let head = s.split("\r\n\r\n").next().unwrap();
            let lines: Vec<&str> = head.split("\r\n").collect();
            assert_eq!(lines[0], format!("SIP/2.0 {code} R"));
            assert_eq!(
                lines[1],
                "Via: SIP/2.0/UDP 192.0.2.1:5060 ;branch=z9hG4bKa;rport=4000;received=203.0.113.9"
            );
            assert_eq!(lines[2], "Via: SIP/2.0/TCP 10.1.1.1;branch=z9hG4bKb");
            assert_eq!(lines[3], "f: \"A, B\" <sip:a@example.com> ;tag=fa");
            // The To line as written for a 100 (which also copies Timestamp), with our tag
            // otherwise.
            let (to, ts) = match tag {
                None => (
                    "t:<sip:bob@example.com>".to_string(),
                    Some("Timestamp: 54 0.5"),
                ),
                Some(t) => (format!("To: <sip:bob@example.com>;tag={t}"), None),
            };
            assert_eq!(lines[4], to);
            let rest: Vec<&str> = lines[5..].to_vec();
            let want: Vec<&str> = ts
                .into_iter()
                .chain(["i: cid-7", "CSeq:   9   INVITE", "Content-Length: 0"])
                .collect();
            assert_eq!(rest, want, "{s}");
            let m = Message::parse(r.clone()).unwrap();
            assert_eq!(m.status_code(), Some(code));
            assert_eq!(m.call_id(), Some(&b"cid-7"[..]));
            assert_eq!(m.cseq(), Some((9, Method::Invite)));
            assert_eq!(m.via_count(), 2);
            assert_eq!(m.to_tag(), tag.map(str::as_bytes));
            assert_eq!(m.from_tag(), Some(&b"fa"[..]));
        }
    }

    #[test]
    fn response_with_body() {
        let req = invite();
        let m = Message::parse(
            ResponseBuilder::new(&req, 200, "OK")
                .to_tag(b"x")
                .body(b"text/plain", b"hi")
                .build(),
        )
        .unwrap();
        assert_eq!(m.body(), b"hi");
        assert_eq!(m.header(HeaderName::ContentType), Some(&b"text/plain"[..]));
    }

    #[test]
    fn cancel_and_ack() {
        let inv = invite();
        let c = Message::parse(cancel_for(&inv)).unwrap();
        assert_eq!(c.method(), Some(Method::Cancel));
        assert_eq!(c.request_uri(), inv.request_uri());
        assert_eq!(c.via_count(), 1);
        assert_eq!(c.top_via_branch(), Some(&b"z9hG4bKlb1"[..]));
        assert_eq!(c.cseq(), Some((42, Method::Cancel)));
        assert_eq!(c.route_count(), 1);
        assert_eq!(c.to_tag(), None);

        let resp = Message::parse(
            ResponseBuilder::new(&inv, 486, "Busy Here")
                .to_tag(b"callee")
                .build(),
        )
        .unwrap();
        let a = Message::parse(ack_for(&inv, &resp)).unwrap();
        assert_eq!(a.method(), Some(Method::Ack));
        assert_eq!(a.cseq(), Some((42, Method::Ack)));
        assert_eq!(a.to_tag(), Some(&b"callee"[..]));
        assert_eq!(a.top_via_branch(), Some(&b"z9hG4bKlb1"[..]));
        assert_eq!(a.via_count(), 1);
    }

    #[test]
    fn options_probe() {
        let p = OptionsProbe {
            target: b"sip:10.0.0.5:5070",
            from: b"sip:lb@10.0.0.1",
            from_tag: b"p1",
            call_id: b"probe-1",
            cseq: 9,
            via: ViaParts {
                transport: Transport::Udp,
                host: b"10.0.0.1",
                port: 5060,
                branch: b"z9hG4bKp1",
                rport: true,
            },
            user_agent: Some(b"sip-lb"),
        };
        let m = Message::parse(p.build()).unwrap();
        assert_eq!(m.method(), Some(Method::Options));
        assert_eq!(m.request_uri(), Some(&b"sip:10.0.0.5:5070"[..]));
        let via = m.top_via().unwrap();
        assert_eq!(via.port(), Some(5060));
        assert_eq!(via.rport(), Some(None));
        assert_eq!(m.cseq(), Some((9, Method::Options)));
        assert_eq!(m.max_forwards(), Some(70));
        assert_eq!(m.to().unwrap().uri_raw(), b"sip:10.0.0.5:5070");
    }
}
