//! The parsed message: one `Bytes` buffer plus spans, located in a single pass.

use bytes::Bytes;
use smallvec::SmallVec;

use crate::error::{ParseError, ParseErrorKind as E, ValueError, ValueErrorKind};
use crate::header::HeaderName;
use crate::lex::find_lf;
use crate::limits::Limits;
use crate::method::Method;
use crate::name_addr::NameAddr;
use crate::scan::{CommaSplit, count_values, is_token, parse_u32, trim_lws_range};
use crate::span::Span;
use crate::uri::UriSpans;
use crate::values::CSeq;
use crate::via::{Via, ViaSpans};

mod fast;

/// How the bytes of a message were delimited, which decides how its body is framed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// A UDP datagram (RFC 3261 §18.3): octets beyond Content-Length are discarded, a body
    /// shorter than Content-Length is an error, and without Content-Length the body runs
    /// to the end of the datagram.
    #[default]
    Datagram,
    /// One message cut from a stream by a framer: Content-Length is mandatory.
    Stream,
}

/// Options for [`Message::parse_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Bounds on sizes and counts.
    pub limits: Limits,
    /// How the message was delimited.
    pub framing: Framing,
}

/// The parsed start line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StartLine {
    Request {
        method: Method,
        method_span: Span,
        uri: Span,
        /// The Request-URI as the parse pass parsed it.
        parsed_uri: UriSpans,
    },
    Response {
        code: u16,
        reason: Span,
    },
}

/// One header field line (logical: folded continuation lines included), in sixteen bytes
/// (a by-value parse moves the inline table of them): the line ends where the next one
/// starts (the last where the header section ends), and the name is kept by its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawHeader {
    /// The line's first byte, the name's.
    pub(crate) start: u32,
    pub(crate) value: Span,
    pub(crate) name: HeaderName,
    /// The name's length; `u16::MAX` for a name that long or longer, which is then the
    /// run of token characters at `start` (as both parsers cut a name).
    name_len: u16,
}

impl RawHeader {
    /// The line whose name is at `name_span` and value at `value`.
    #[inline(always)]
    pub(crate) fn new(name: HeaderName, name_span: Span, value: Span) -> RawHeader {
        RawHeader::with_name_len(
            name,
            name_span.start,
            RawHeader::name_len(name_span.len()),
            value,
        )
    }

    /// The line at `start`, its name [`RawHeader::name_len`] long and its value at `value`.
    #[inline(always)]
    pub(crate) fn with_name_len(
        name: HeaderName,
        start: u32,
        name_len: u16,
        value: Span,
    ) -> RawHeader {
        RawHeader {
            start,
            value,
            name,
            name_len,
        }
    }

    /// A name's length as a line keeps it (`u16::MAX` for that long or longer).
    #[inline(always)]
    pub(crate) fn name_len(len: usize) -> u16 {
        len.min(usize::from(u16::MAX)) as u16
    }

    /// Where the name is in `d`, the message the line was parsed from.
    #[inline]
    pub(crate) fn name_span(&self, d: &[u8]) -> Span {
        let start = self.start as usize;
        let len = if self.name_len == u16::MAX {
            d.get(start..)
                .map_or(0, |rest| rest.iter().take_while(|&&b| is_token(b)).count())
        } else {
            usize::from(self.name_len)
        };
        Span::new(start, start + len)
    }
}

/// A header field as seen through [`Message::headers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderField<'a> {
    /// Position among the message's header lines (0 = first).
    pub index: usize,
    /// The name, classified (compact forms resolved).
    pub name: HeaderName,
    /// The name as written.
    pub raw_name: &'a [u8],
    /// The value as written, trimmed (a folded value keeps its inner CRLF and white space).
    pub value: &'a [u8],
    /// Where the value is in the message.
    pub value_span: Span,
    /// The whole line in the message, from the name to just past its line end.
    pub line: Span,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Essentials {
    /// (header index, span of the first via-parm) of the top Via.
    pub(crate) top_via: Option<(u16, Span)>,
    /// The top Via's first via-parm parsed, when `top_via` is `Some` (the default
    /// otherwise). Apart from it, so that the parse pass writes it in place: it is over a
    /// hundred bytes, and moving it out of the Via's parse into an `Option` cost about 65
    /// instructions per message (`benches/count-instructions.sh parse`).
    pub(crate) top_via_parsed: ViaSpans,
    pub(crate) call_id: Option<Span>,
    /// (number, method, method span)
    pub(crate) cseq: Option<(u32, Method, Span)>,
    /// (header index, tag span)
    pub(crate) from: Option<(u16, Option<Span>)>,
    pub(crate) to: Option<(u16, Option<Span>)>,
    /// (header index, value)
    pub(crate) max_forwards: Option<(u16, u8)>,
    pub(crate) content_length: Option<u32>,
    /// (header index, span of the first route value)
    pub(crate) top_route: Option<(u16, Span)>,
    pub(crate) via_count: u16,
    pub(crate) route_count: u16,
}

/// Inline capacity for header lines: typical INVITEs have 10 to 20.
const INLINE_HEADERS: usize = 24;

/// A parsed SIP message: the received bytes (one `Bytes`, never copied) and positions into
/// them. The fields a proxy touches on every message are located during the single parse
/// pass; everything else is available as raw header values or typed views parsed on demand.
///
/// Two messages are equal when they hold the same bytes parsed the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    buf: Bytes,
    start: StartLine,
    /// Offset of the first header line.
    headers_start: u32,
    headers: SmallVec<[RawHeader; INLINE_HEADERS]>,
    /// Offset of the empty line ending the header section.
    headers_end: u32,
    body: Span,
    pub(crate) ess: Essentials,
}

impl Default for Message {
    /// An empty message, storage for [`Message::parse_in_place`]: no bytes, no headers;
    /// until something is parsed into it, it reads as a response with status 0.
    fn default() -> Self {
        Message::empty()
    }
}

#[inline]
fn offset_in(buf: &[u8], sub: &[u8]) -> usize {
    sub.as_ptr() as usize - buf.as_ptr() as usize
}

#[inline]
fn span_in(buf: &[u8], sub: &[u8]) -> Span {
    let s = offset_in(buf, sub);
    Span::new(s, s + sub.len())
}

fn header_err(header: HeaderName, e: ValueError, value_start: usize) -> ParseError {
    ParseError::new(
        E::InvalidHeader {
            header,
            error: e.kind,
        },
        value_start + e.offset,
    )
}

fn header_err_kind(header: HeaderName, kind: ValueErrorKind, at: usize) -> ParseError {
    ParseError::new(
        E::InvalidHeader {
            header,
            error: kind,
        },
        at,
    )
}

impl Message {
    /// Parses a datagram with the default [`Limits`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use sip_core::{Message, Method};
    /// let msg = Message::parse(Bytes::from_static(
    ///     b"OPTIONS sip:lb.example.com SIP/2.0\r\n\
    ///       Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
    ///       Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:lb.example.com>\r\n\
    ///       Call-ID: x1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    /// )).unwrap();
    /// assert_eq!(msg.method(), Some(Method::Options));
    /// assert_eq!(msg.max_forwards(), Some(70));
    /// ```
    pub fn parse(buf: Bytes) -> Result<Message, ParseError> {
        Message::parse_with(buf, &ParseOptions::default())
    }

    /// Parses with explicit limits and framing.
    ///
    /// The usual shapes of message are recognised by a fast path; anything else (and every
    /// error) is handled by the reference parser, which knows the whole grammar. Both
    /// give the same result for every input the fast path accepts.
    pub fn parse_with(buf: Bytes, opts: &ParseOptions) -> Result<Message, ParseError> {
        let mut msg = Message::empty();
        if fast::parse_into(&buf, opts, &mut msg) {
            // (The empty buffer replaced owns nothing: no drop, which is a call.)
            std::mem::forget(std::mem::replace(&mut msg.buf, buf));
            Ok(msg)
        } else {
            Message::parse_reference(buf, opts)
        }
    }

    /// Parses `buf` into this message, reusing its storage: the same result as
    /// [`Message::parse_with`], without building and moving a new `Message` (800 bytes)
    /// for each datagram (the `httparse` model: the caller owns the storage). On error
    /// the message is left empty.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use sip_core::{Message, ParseOptions};
    ///
    /// let opts = ParseOptions::default();
    /// let mut msg = Message::default();
    /// msg.parse_in_place(Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"), &opts)?;
    /// assert_eq!(msg.status_code(), Some(200));
    /// msg.clear(); // let go of the buffer until the next datagram
    /// assert!(msg.as_bytes().is_empty());
    /// # Ok::<(), sip_core::ParseError>(())
    /// ```
    pub fn parse_in_place(&mut self, buf: Bytes, opts: &ParseOptions) -> Result<(), ParseError> {
        let buf = match self.fast_in_place(buf, opts) {
            Ok(()) => return Ok(()),
            Err(buf) => buf,
        };
        *self = Message::parse_reference(buf, opts)?;
        Ok(())
    }

    /// The fast path of [`Message::parse_in_place`]: the buffer back, and the message
    /// left empty, when the message is the reference parser's to judge.
    #[inline(always)]
    fn fast_in_place(&mut self, buf: Bytes, opts: &ParseOptions) -> Result<(), Bytes> {
        // A message without a buffer is empty already: `clear` is the only thing that
        // takes the buffer away, and every parse that fails leaves the message cleared (a
        // proxy clears its message after each datagram, and resetting the 236 bytes of
        // essentials twice per datagram cost 49 instructions).
        if self.buf.is_empty() {
            debug_assert!(
                *self == Message::empty(),
                "a message without a buffer is empty"
            );
        } else {
            self.clear();
        }
        if fast::parse_into(&buf, opts, self) {
            // (The empty buffer `clear` left owns nothing: no drop, which is a call.)
            std::mem::forget(std::mem::replace(&mut self.buf, buf));
            return Ok(());
        }
        self.clear();
        Err(buf)
    }

    /// [`Message::parse_in_place`], giving the buffer back with the error: a caller that
    /// answers an unparsable datagram then needs no second reference to it (for a buffer
    /// not yet shared, the first clone allocates its shared count). Only the reference
    /// parser's path, taken for the unusual message, holds a second one.
    pub fn parse_in_place_or_return(
        &mut self,
        buf: Bytes,
        opts: &ParseOptions,
    ) -> Result<(), (Bytes, ParseError)> {
        let buf = match self.fast_in_place(buf, opts) {
            Ok(()) => return Ok(()),
            Err(buf) => buf,
        };
        match Message::parse_reference(buf.clone(), opts) {
            Ok(m) => {
                *self = m;
                Ok(())
            }
            Err(e) => Err((buf, e)),
        }
    }

    /// Empties the message: drops its reference to the buffer (so a receive buffer it was
    /// cut from can be reused) and forgets what was parsed, keeping the storage of its
    /// header table for the next [`Message::parse_in_place`].
    pub fn clear(&mut self) {
        self.buf = Bytes::new();
        self.start = StartLine::Response {
            code: 0,
            reason: Span::default(),
        };
        self.headers_start = 0;
        self.headers.clear();
        self.headers_end = 0;
        self.body = Span::default();
        self.ess = Essentials::default();
    }

    /// A message with nothing parsed yet, for a parser to fill in.
    fn empty() -> Message {
        Message {
            buf: Bytes::new(),
            start: StartLine::Response {
                code: 0,
                reason: Span::default(),
            },
            headers_start: 0,
            headers: SmallVec::new(),
            headers_end: 0,
            body: Span::default(),
            ess: Essentials::default(),
        }
    }

    /// Where the CSeq method is when it differs from the request method (RFC 3261
    /// §8.1.1.5; extension methods compared as written).
    fn cseq_mismatch(&self, d: &[u8]) -> Option<usize> {
        let (
            &StartLine::Request {
                method,
                method_span,
                ..
            },
            &Some((_, cm, cspan)),
        ) = (&self.start, &self.ess.cseq)
        else {
            return None;
        };
        let same = if method == Method::Extension || cm == Method::Extension {
            method_span.of(d) == cspan.of(d)
        } else {
            method == cm
        };
        (!same).then_some(cspan.start as usize)
    }

    /// Only the fast path of [`Message::parse_with`]: `None` when it leaves the message to
    /// the reference parser. For tests and fuzzing, which check that the two agree.
    #[doc(hidden)]
    pub fn parse_fast_path(buf: Bytes, opts: &ParseOptions) -> Option<Message> {
        let mut msg = fast::parse(&buf, opts)?;
        msg.buf = buf;
        Some(msg)
    }

    /// Only the reference parser of [`Message::parse_with`], which handles the whole
    /// grammar and words every error. For tests and fuzzing.
    #[doc(hidden)]
    pub fn parse_reference(buf: Bytes, opts: &ParseOptions) -> Result<Message, ParseError> {
        let limits = &opts.limits;
        let d: &[u8] = &buf;
        if d.len() > limits.max_message_size as usize {
            return Err(ParseError::new(
                E::TooLarge {
                    limit: limits.max_message_size,
                },
                limits.max_message_size as usize,
            ));
        }
        // RFC 3261 §7.5: ignore CRLFs before the start line.
        let mut pos = 0;
        while pos < d.len() && (d[pos] == b'\r' || d[pos] == b'\n') {
            pos += 1;
        }
        if pos == d.len() {
            return Err(ParseError::new(E::Empty, pos));
        }
        let (start, headers_start) = parse_start_line(d, pos, limits)?;

        let mut msg = Message {
            buf: Bytes::new(),
            start,
            headers_start: headers_start as u32,
            headers: SmallVec::new(),
            headers_end: 0,
            body: Span::default(),
            ess: Essentials::default(),
        };
        let max_headers = limits.max_headers.min(u16::MAX as u32) as usize;
        let max_line = limits.max_line_length as usize;
        let mut pos = headers_start;
        let body_start;
        loop {
            let Some(&first) = d.get(pos) else {
                return Err(ParseError::new(E::Incomplete, pos));
            };
            if first == b'\n' {
                msg.headers_end = pos as u32;
                body_start = pos + 1;
                break;
            }
            if first == b'\r' {
                if d.get(pos + 1) == Some(&b'\n') {
                    msg.headers_end = pos as u32;
                    body_start = pos + 2;
                    break;
                }
                return Err(ParseError::new(E::InvalidHeaderName, pos));
            }
            // Header name.
            let name_start = pos;
            let mut i = pos;
            while i < d.len() && is_token(d[i]) {
                i += 1;
            }
            if i == name_start {
                return Err(ParseError::new(E::InvalidHeaderName, i));
            }
            let name_end = i;
            while i < d.len() && (d[i] == b' ' || d[i] == b'\t') {
                i += 1;
            }
            if d.get(i) != Some(&b':') {
                return Err(ParseError::new(
                    if i < d.len() && d[i] != b'\r' && d[i] != b'\n' && i == name_end {
                        E::InvalidHeaderName
                    } else {
                        E::MissingColon
                    },
                    i,
                ));
            }
            let value_from = i + 1;
            // Logical line end: the LF not followed by SP/HT (folding).
            let mut lf = match find_lf(d, value_from) {
                Some(k) => k,
                None => return Err(ParseError::new(E::Incomplete, d.len())),
            };
            while matches!(d.get(lf + 1), Some(b' ' | b'\t')) {
                lf = match find_lf(d, lf + 1) {
                    Some(k) => k,
                    None => return Err(ParseError::new(E::Incomplete, d.len())),
                };
            }
            let line_end = lf + 1;
            if line_end - name_start > max_line {
                return Err(ParseError::new(
                    E::LineTooLong {
                        limit: limits.max_line_length,
                    },
                    name_start,
                ));
            }
            if msg.headers.len() >= max_headers {
                return Err(ParseError::new(
                    E::TooManyHeaders {
                        limit: limits.max_headers,
                    },
                    name_start,
                ));
            }
            let (a, b) = trim_lws_range(&d[value_from..lf]);
            let value = Span::new(value_from + a, value_from + b);
            let name = HeaderName::from_bytes(&d[name_start..name_end]);
            let index = msg.headers.len() as u16;
            if name != HeaderName::Other {
                msg.locate_essential(d, name, index, value, limits)?;
            }
            msg.headers
                .push(RawHeader::new(name, Span::new(name_start, name_end), value));
            pos = line_end;
        }

        // CSeq method must match the request method.
        if let Some(at) = msg.cseq_mismatch(d) {
            return Err(ParseError::new(E::CSeqMethodMismatch, at));
        }

        // Body framing.
        let available = d.len() - body_start;
        let body_len = match msg.ess.content_length {
            Some(cl) => {
                let cl_usize = cl as usize;
                if cl_usize > available {
                    return Err(ParseError::new(
                        E::BodyTooShort {
                            declared: cl,
                            actual: available as u32,
                        },
                        body_start,
                    ));
                }
                cl_usize
            }
            None if opts.framing == Framing::Stream => {
                return Err(ParseError::new(E::MissingContentLength, body_start));
            }
            None => available,
        };
        msg.body = Span::new(body_start, body_start + body_len);
        msg.buf = buf;
        Ok(msg)
    }

    /// Records the proxy-essential fields of one known header.
    #[inline]
    fn locate_essential(
        &mut self,
        d: &[u8],
        name: HeaderName,
        index: u16,
        value: Span,
        limits: &Limits,
    ) -> Result<(), ParseError> {
        let v = value.of(d);
        let vstart = value.start as usize;
        match name {
            HeaderName::Via => {
                // One pass over the value: the first element (for the top Via) and the count.
                let mut it = CommaSplit::new(v);
                let first = if self.ess.top_via.is_none() {
                    it.next()
                } else {
                    None
                };
                let n = match first {
                    Some(_) => 1 + it.count(),
                    None => count_values(v),
                };
                let total = self.ess.via_count as usize + n;
                if total > limits.max_via as usize {
                    return Err(ParseError::new(
                        E::TooManyVia {
                            limit: limits.max_via,
                        },
                        vstart,
                    ));
                }
                self.ess.via_count = total as u16;
                if let Some((off, first)) = first {
                    let via = Via::parse(first).map_err(|e| header_err(name, e, vstart + off))?;
                    self.ess.top_via = Some((index, span_in(d, first)));
                    self.ess.top_via_parsed = ViaSpans::of(&via, d);
                }
            }
            HeaderName::CallId => {
                if self.ess.call_id.is_some() {
                    return Err(ParseError::new(E::DuplicateHeader(name), vstart));
                }
                if v.is_empty() {
                    return Err(header_err_kind(name, ValueErrorKind::Empty, vstart));
                }
                if let Some(k) = v
                    .iter()
                    .position(|&b| !(crate::scan::is_word(b) || b == b'@'))
                {
                    return Err(header_err_kind(
                        name,
                        ValueErrorKind::UnexpectedChar,
                        vstart + k,
                    ));
                }
                self.ess.call_id = Some(value);
            }
            HeaderName::CSeq => {
                if self.ess.cseq.is_some() {
                    return Err(ParseError::new(E::DuplicateHeader(name), vstart));
                }
                let c = CSeq::parse(v).map_err(|e| header_err(name, e, vstart))?;
                self.ess.cseq = Some((c.number, c.method, span_in(d, c.method_raw)));
            }
            HeaderName::From | HeaderName::To => {
                let slot = if name == HeaderName::From {
                    &mut self.ess.from
                } else {
                    &mut self.ess.to
                };
                if slot.is_some() {
                    return Err(ParseError::new(E::DuplicateHeader(name), vstart));
                }
                let na = NameAddr::parse(v).map_err(|e| header_err(name, e, vstart))?;
                *slot = Some((index, na.tag().map(|t| span_in(d, t))));
            }
            HeaderName::MaxForwards => {
                if self.ess.max_forwards.is_some() {
                    return Err(ParseError::new(E::DuplicateHeader(name), vstart));
                }
                let n = parse_u32(v, 255).ok_or(header_err_kind(
                    name,
                    ValueErrorKind::InvalidNumber,
                    vstart,
                ))?;
                self.ess.max_forwards = Some((index, n as u8));
            }
            HeaderName::ContentLength => {
                if self.ess.content_length.is_some() {
                    return Err(ParseError::new(E::DuplicateHeader(name), vstart));
                }
                let n = parse_u32(v, limits.max_message_size).ok_or(header_err_kind(
                    name,
                    ValueErrorKind::InvalidNumber,
                    vstart,
                ))?;
                self.ess.content_length = Some(n);
            }
            HeaderName::Route => {
                let mut it = CommaSplit::new(v);
                let first = if self.ess.top_route.is_none() {
                    it.next()
                } else {
                    None
                };
                let n = match first {
                    Some(_) => 1 + it.count(),
                    None => count_values(v),
                };
                let total = self.ess.route_count as usize + n;
                if total > limits.max_route as usize {
                    return Err(ParseError::new(
                        E::TooManyRoutes {
                            limit: limits.max_route,
                        },
                        vstart,
                    ));
                }
                self.ess.route_count = total as u16;
                if let Some((off, first)) = first {
                    NameAddr::parse(first).map_err(|e| header_err(name, e, vstart + off))?;
                    self.ess.top_route = Some((index, span_in(d, first)));
                }
            }
            _ => {}
        }
        Ok(())
    }

    // ---- the buffer -------------------------------------------------------------------

    /// The whole message as received (for a datagram: including any octets after the body,
    /// which are not part of the message; see [`Message::message_len`]).
    #[inline]
    pub fn buffer(&self) -> &Bytes {
        &self.buf
    }

    /// The message bytes (start line to the end of the body).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.body.end as usize]
    }

    /// Length of the message in bytes (start line to the end of the body).
    #[inline]
    pub fn message_len(&self) -> usize {
        self.body.end as usize
    }

    /// The bytes a span covers.
    #[inline]
    pub fn slice(&self, span: Span) -> &[u8] {
        span.of(&self.buf)
    }

    // ---- start line -------------------------------------------------------------------

    /// True for a request.
    #[inline]
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// True for a response.
    #[inline]
    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// The request method (`None` for a response).
    #[inline]
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The request method as written (extension methods included).
    #[inline]
    pub fn method_bytes(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Request { method_span, .. } => Some(self.slice(method_span)),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI as written.
    #[inline]
    pub fn request_uri(&self) -> Option<&[u8]> {
        self.request_uri_span().map(|s| self.slice(s))
    }

    /// Where the Request-URI is.
    #[inline]
    pub fn request_uri_span(&self) -> Option<Span> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI as a typed view (`None` for a response). It was parsed once, by the
    /// parse pass, which refuses a request whose Request-URI does not parse.
    pub fn request_uri_parsed(&self) -> Option<crate::uri::Uri<'_>> {
        match &self.start {
            StartLine::Request { parsed_uri, .. } => Some(parsed_uri.view(self.as_bytes())),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI's scheme (`None` for a response), read from the parse pass's
    /// result without building the view of [`Message::request_uri_parsed`].
    #[inline]
    pub fn request_uri_scheme(&self) -> Option<crate::uri::Scheme> {
        match &self.start {
            StartLine::Request { parsed_uri, .. } => Some(parsed_uri.scheme()),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code (`None` for a request).
    #[inline]
    pub fn status_code(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase as written (may be empty or UTF-8).
    #[inline]
    pub fn reason(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.slice(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// Offset of the first header line (just past the start line).
    #[inline]
    pub fn headers_start(&self) -> usize {
        self.headers_start as usize
    }

    /// Offset of the empty line that ends the header section.
    #[inline]
    pub fn headers_end(&self) -> usize {
        self.headers_end as usize
    }

    // ---- headers ----------------------------------------------------------------------

    /// Number of header lines.
    #[inline]
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    #[inline]
    fn field(&self, index: usize, h: &RawHeader) -> HeaderField<'_> {
        // A line ends where the next starts, the last where the header section ends.
        let end = self
            .headers
            .get(index + 1)
            .map_or(self.headers_end, |next| next.start);
        HeaderField {
            index,
            name: h.name,
            raw_name: self.slice(h.name_span(&self.buf)),
            value: self.slice(h.value),
            value_span: h.value,
            line: Span {
                start: h.start,
                end,
            },
        }
    }

    /// The header line at `index`.
    pub fn header_at(&self, index: usize) -> Option<HeaderField<'_>> {
        self.headers.get(index).map(|h| self.field(index, h))
    }

    /// Every header line, in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderField<'_>> + '_ {
        self.headers
            .iter()
            .enumerate()
            .map(|(i, h)| self.field(i, h))
    }

    /// Every header line with this name (compact forms included), in order.
    pub fn headers_named(&self, name: HeaderName) -> impl Iterator<Item = HeaderField<'_>> + '_ {
        // The name is compared on the raw entry: a field (its slices) is built only for
        // the lines that match, not for every line passed over.
        let known = name != HeaderName::Other;
        self.headers
            .iter()
            .enumerate()
            .filter(move |(_, h)| known && h.name == name)
            .map(|(i, h)| self.field(i, h))
    }

    /// The value of the first header line with this name.
    pub fn header(&self, name: HeaderName) -> Option<&[u8]> {
        self.headers_named(name).next().map(|h| h.value)
    }

    /// Every header line whose name is `raw_name` (case-insensitive; known names also
    /// match their compact form), for extension headers such as `X-Tenant`.
    pub fn headers_by_name<'a>(
        &'a self,
        raw_name: &'a str,
    ) -> impl Iterator<Item = HeaderField<'a>> + 'a {
        let known = HeaderName::from_bytes(raw_name.as_bytes());
        self.headers().filter(move |h| {
            if known != HeaderName::Other {
                h.name == known
            } else {
                h.raw_name.eq_ignore_ascii_case(raw_name.as_bytes())
            }
        })
    }

    /// The value of the first header line whose name is `raw_name` (see
    /// [`Message::headers_by_name`]).
    pub fn header_by_name<'a>(&'a self, raw_name: &'a str) -> Option<&'a [u8]> {
        self.headers_by_name(raw_name).next().map(|h| h.value)
    }

    /// Every comma-separated value of every header line with this name, in order (for list
    /// headers such as Via, Route, Record-Route, Contact, Supported). Each item is
    /// `(span in the message, value)`.
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = (Span, &[u8])> + '_ {
        self.headers_named(name).flat_map(|h| {
            let base = h.value_span.start as usize;
            CommaSplit::new(h.value)
                .map(move |(off, v)| (Span::new(base + off, base + off + v.len()), v))
        })
    }

    // ---- essentials located by the parse pass -----------------------------------------

    /// The top Via value as a typed view (parsed once, by the parse pass).
    #[inline]
    pub fn top_via(&self) -> Option<Via<'_>> {
        self.ess.top_via?;
        Some(self.ess.top_via_parsed.view(self.as_bytes()))
    }

    /// What a proxy reads of the top Via to fill in `received` and `rport` (the same as
    /// `top_via().map(|v| v.nat())`, without building the whole view).
    #[inline]
    pub fn top_via_nat(&self) -> Option<crate::via::ViaNat<'_>> {
        self.ess.top_via?;
        Some(self.ess.top_via_parsed.nat(self.as_bytes()))
    }

    /// Where the top Via value is: `(header line index, span of the first via-parm)`.
    #[inline]
    pub fn top_via_span(&self) -> Option<(usize, Span)> {
        self.ess.top_via.map(|(i, s)| (i as usize, s))
    }

    /// The `branch` of the top Via.
    #[inline]
    pub fn top_via_branch(&self) -> Option<&[u8]> {
        self.ess.top_via?;
        match self.ess.top_via_parsed.branch() {
            Some(b) if !b.is_empty() => Some(self.slice(b)),
            _ => None,
        }
    }

    /// The same message over a copy of its bytes: keeping it then does not keep alive the
    /// buffer it was received in (a receive buffer holds many datagrams, and one slice of
    /// it holds all of it). Every position stays valid: the message's bytes start the
    /// buffer.
    pub fn copied(&self) -> Message {
        let mut m = self.clone();
        m.buf = Bytes::copy_from_slice(self.as_bytes());
        m
    }

    /// The second Via value as written (the one under the top Via, where a proxy sends a
    /// response after removing its own): what `header_values(HeaderName::Via).nth(1)`
    /// gives, without splitting the lines above it again.
    pub fn second_via(&self) -> Option<&[u8]> {
        let (index, first) = self.ess.top_via.as_ref()?;
        let index = *index as usize;
        let top = &self.headers[index];
        let d = self.as_bytes();
        if first.end != top.value.end {
            // More values on the top Via's line.
            return CommaSplit::new(top.value.of(d)).nth(1).map(|(_, v)| v);
        }
        let next = self.headers[index + 1..]
            .iter()
            .find(|h| h.name == HeaderName::Via)?;
        CommaSplit::new(next.value.of(d)).next().map(|(_, v)| v)
    }

    /// Every Via value, top first, each parsed (a malformed lower Via is reported as an
    /// error item; the parse pass validated only the top one).
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ValueError>> + '_ {
        self.header_values(HeaderName::Via)
            .map(|(_, v)| Via::parse(v))
    }

    /// Number of Via values over all Via header lines.
    #[inline]
    pub fn via_count(&self) -> usize {
        self.ess.via_count as usize
    }

    /// The Call-ID.
    #[inline]
    pub fn call_id(&self) -> Option<&[u8]> {
        self.ess.call_id.map(|s| self.slice(s))
    }

    /// The CSeq number and method.
    #[inline]
    pub fn cseq(&self) -> Option<(u32, Method)> {
        self.ess.cseq.map(|(n, m, _)| (n, m))
    }

    /// The CSeq method as written.
    #[inline]
    pub fn cseq_method_bytes(&self) -> Option<&[u8]> {
        self.ess.cseq.map(|(_, _, s)| self.slice(s))
    }

    /// The From header parsed as a name-addr.
    pub fn from(&self) -> Option<NameAddr<'_>> {
        let (i, _) = self.ess.from?;
        NameAddr::parse(self.slice(self.headers[i as usize].value)).ok()
    }

    /// The To header parsed as a name-addr.
    pub fn to(&self) -> Option<NameAddr<'_>> {
        let (i, _) = self.ess.to?;
        NameAddr::parse(self.slice(self.headers[i as usize].value)).ok()
    }

    /// The From tag.
    #[inline]
    pub fn from_tag(&self) -> Option<&[u8]> {
        self.ess.from.and_then(|(_, t)| t).map(|s| self.slice(s))
    }

    /// The To tag.
    #[inline]
    pub fn to_tag(&self) -> Option<&[u8]> {
        self.ess.to.and_then(|(_, t)| t).map(|s| self.slice(s))
    }

    /// Span of the To header's value (to add a tag, for example).
    pub fn to_value_span(&self) -> Option<Span> {
        self.ess.to.map(|(i, _)| self.headers[i as usize].value)
    }

    /// The Max-Forwards value.
    #[inline]
    pub fn max_forwards(&self) -> Option<u8> {
        self.ess.max_forwards.map(|(_, v)| v)
    }

    /// Index of the From header line (the parse pass located and checked it).
    #[inline]
    pub fn from_index(&self) -> Option<usize> {
        self.ess.from.map(|(i, _)| i as usize)
    }

    /// Index of the To header line (the parse pass located and checked it).
    #[inline]
    pub fn to_index(&self) -> Option<usize> {
        self.ess.to.map(|(i, _)| i as usize)
    }

    /// Index of the Max-Forwards header line.
    #[inline]
    pub fn max_forwards_index(&self) -> Option<usize> {
        self.ess.max_forwards.map(|(i, _)| i as usize)
    }

    /// The Content-Length value, when the header is present.
    #[inline]
    pub fn content_length(&self) -> Option<u32> {
        self.ess.content_length
    }

    /// The first Route value parsed as a name-addr.
    pub fn top_route(&self) -> Option<NameAddr<'_>> {
        let (_, span) = self.ess.top_route?;
        NameAddr::parse(self.slice(span)).ok()
    }

    /// Where the first Route value is: `(header line index, span of the value)`.
    #[inline]
    pub fn top_route_span(&self) -> Option<(usize, Span)> {
        self.ess.top_route.map(|(i, s)| (i as usize, s))
    }

    /// Number of Route values over all Route header lines.
    #[inline]
    pub fn route_count(&self) -> usize {
        self.ess.route_count as usize
    }

    /// Every Route value, in order, parsed.
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ValueError>> + '_ {
        self.header_values(HeaderName::Route)
            .map(|(_, v)| NameAddr::parse(v))
    }

    /// Every Record-Route value, in order, parsed.
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ValueError>> + '_ {
        self.header_values(HeaderName::RecordRoute)
            .map(|(_, v)| NameAddr::parse(v))
    }

    // ---- body -------------------------------------------------------------------------

    /// The body (exactly Content-Length bytes when the header is present).
    #[inline]
    pub fn body(&self) -> &[u8] {
        self.slice(self.body)
    }

    /// The body as a `Bytes` sharing the message buffer (no copy).
    #[inline]
    pub fn body_bytes(&self) -> Bytes {
        self.buf.slice(self.body.range())
    }

    /// Where the body is.
    #[inline]
    pub fn body_span(&self) -> Span {
        self.body
    }
}

/// Parses the start line at `pos`; returns it and the offset of the next line.
fn parse_start_line(
    d: &[u8],
    pos: usize,
    limits: &Limits,
) -> Result<(StartLine, usize), ParseError> {
    let lf = match memchr::memchr(b'\n', &d[pos..]) {
        Some(k) => pos + k,
        None => return Err(ParseError::new(E::Incomplete, d.len())),
    };
    let next = lf + 1;
    let mut end = lf;
    if end > pos && d[end - 1] == b'\r' {
        end -= 1;
    }
    if end - pos > limits.max_line_length as usize {
        return Err(ParseError::new(
            E::LineTooLong {
                limit: limits.max_line_length,
            },
            pos,
        ));
    }
    let line = &d[pos..end];
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
        let sp = memchr::memchr(b' ', line).ok_or(ParseError::new(E::InvalidStatusLine, pos))?;
        check_version(&line[..sp], pos, E::InvalidStatusLine)?;
        let c = sp + 1;
        let code = line
            .get(c..c + 3)
            .ok_or(ParseError::new(E::InvalidStatusCode, pos + c))?;
        if !code.iter().all(u8::is_ascii_digit) || line.get(c + 3).is_some_and(|&b| b != b' ') {
            return Err(ParseError::new(E::InvalidStatusCode, pos + c));
        }
        let code = code.iter().fold(0u16, |a, &b| a * 10 + u16::from(b - b'0'));
        if !(100..=699).contains(&code) {
            return Err(ParseError::new(E::InvalidStatusCode, pos + c));
        }
        let r = (c + 4).min(line.len());
        return Ok((
            StartLine::Response {
                code,
                reason: Span::new(pos + r, end),
            },
            next,
        ));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version CRLF
    let mut i = 0;
    while i < line.len() && is_token(line[i]) {
        i += 1;
    }
    if i == 0 || line.get(i) != Some(&b' ') {
        return Err(ParseError::new(
            if i == 0 || line.get(i).is_some() {
                E::InvalidMethod
            } else {
                E::InvalidRequestLine
            },
            pos + i,
        ));
    }
    let method_span = Span::new(pos, pos + i);
    let u0 = i + 1;
    let u1 = memchr::memchr(b' ', &line[u0..])
        .map(|k| u0 + k)
        .ok_or(ParseError::new(E::InvalidRequestLine, pos + line.len()))?;
    if u1 == u0 {
        return Err(ParseError::new(E::InvalidRequestLine, pos + u0));
    }
    let uri = &line[u0..u1];
    let version = &line[u1 + 1..];
    if version.iter().any(|&b| b == b' ' || b == b'\t') || version.is_empty() {
        return Err(ParseError::new(E::InvalidRequestLine, pos + u1 + 1));
    }
    check_version(version, pos + u1 + 1, E::InvalidRequestLine)?;
    if uri.len() > limits.max_uri_length as usize {
        return Err(ParseError::new(
            E::UriTooLong {
                limit: limits.max_uri_length,
            },
            pos + u0,
        ));
    }
    let parsed =
        check_request_uri(uri).map_err(|k| ParseError::new(E::InvalidRequestUri, pos + u0 + k))?;
    Ok((
        StartLine::Request {
            method: Method::from_bytes(&line[..i]),
            method_span,
            uri: Span::new(pos + u0, pos + u1),
            parsed_uri: UriSpans::of(&parsed, d),
        },
        next,
    ))
}

/// `SIP/2.0` is accepted; another well-formed `SIP/x.y` is unsupported (505); anything
/// else is `otherwise`.
fn check_version(v: &[u8], at: usize, otherwise: E) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case(b"SIP/2.0") {
        return Ok(());
    }
    let well_formed = v.len() > 4 && v[..4].eq_ignore_ascii_case(b"SIP/") && {
        let rest = &v[4..];
        match memchr::memchr(b'.', rest) {
            Some(dot) => {
                dot > 0
                    && dot + 1 < rest.len()
                    && rest[..dot].iter().all(u8::is_ascii_digit)
                    && rest[dot + 1..].iter().all(u8::is_ascii_digit)
            }
            None => false,
        }
    };
    Err(ParseError::new(
        if well_formed {
            E::UnsupportedVersion
        } else {
            otherwise
        },
        at,
    ))
}

/// Validates a Request-URI with the URI parser; returns the offset of the problem.
fn check_request_uri(uri: &[u8]) -> Result<crate::uri::Uri<'_>, usize> {
    let parsed = crate::uri::Uri::parse(uri).map_err(|e| e.offset)?;
    // RFC 3261 §19.1.5: a SIP Request-URI carries no headers.
    if parsed.scheme().is_sip() && !parsed.headers_raw().is_empty() {
        return Err(uri.len() - parsed.headers_raw().len() - 1);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::{Limits, Message, ParseOptions, RawHeader};
    use bytes::Bytes;

    /// Each field's name and whole line, as the text has them (a line ends where the
    /// next starts; a name is cut at the first byte that is not a token character).
    fn names_and_lines(m: &Message) -> Vec<(Vec<u8>, Vec<u8>)> {
        m.headers()
            .map(|h| (h.raw_name.to_vec(), h.line.of(m.as_bytes()).to_vec()))
            .collect()
    }

    #[test]
    fn a_header_line_keeps_its_name_and_its_whole_line_in_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<RawHeader>(), 16);
        let text = "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                    f: <sip:a@b>;tag=1\r\nTo : <sip:c@d>\r\nX-Folded: a,\r\n b\r\n\
                    Call-ID: c1\r\nCSeq: 1 INVITE\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n";
        let want: Vec<(Vec<u8>, Vec<u8>)> = [
            ("Via", "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"),
            ("f", "f: <sip:a@b>;tag=1\r\n"),
            ("To", "To : <sip:c@d>\r\n"),
            ("X-Folded", "X-Folded: a,\r\n b\r\n"),
            ("Call-ID", "Call-ID: c1\r\n"),
            ("CSeq", "CSeq: 1 INVITE\r\n"),
            ("X-Empty", "X-Empty:\r\n"),
            ("Content-Length", "Content-Length: 0\r\n"),
        ]
        .iter()
        .map(|(n, l)| (n.as_bytes().to_vec(), l.as_bytes().to_vec()))
        .collect();
        let b = Bytes::from_static(text.as_bytes());
        let opts = ParseOptions::default();
        let by_ref = Message::parse_reference(b.clone(), &opts).unwrap();
        assert_eq!(names_and_lines(&by_ref), want);
        assert_eq!(names_and_lines(&Message::parse(b).unwrap()), want);
    }

    #[test]
    fn a_name_longer_than_a_line_keeps_by_its_length_is_read_from_the_text() {
        let long = "X".repeat(70_000);
        let text = format!(
            "OPTIONS sip:a@b SIP/2.0\r\n{long}: 1\r\n{long}-2 :2\r\nContent-Length: 0\r\n\r\n"
        );
        let opts = ParseOptions {
            limits: Limits {
                max_message_size: 1 << 20,
                max_line_length: 1 << 20,
                ..Limits::DEFAULT
            },
            ..ParseOptions::default()
        };
        let m = Message::parse_with(Bytes::from(text.clone()), &opts).unwrap();
        let got = names_and_lines(&m);
        assert_eq!(got[0].0, long.as_bytes());
        assert_eq!(got[0].1, format!("{long}: 1\r\n").as_bytes());
        assert_eq!(got[1].0, format!("{long}-2").as_bytes());
        assert_eq!(got[1].1, format!("{long}-2 :2\r\n").as_bytes());
        assert_eq!(m.header_by_name(&long), Some(&b"1"[..]));
    }

    #[test]
    fn a_copied_message_has_the_same_parts_over_only_its_own_bytes() {
        let text = b"SIP/2.0 500 Oops\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 2\r\n\r\nhi";
        let mut chunk = text.to_vec();
        chunk.extend_from_slice(b"the next datagram of the receive buffer");
        let m = super::Message::parse(bytes::Bytes::from(chunk)).unwrap();
        let c = m.copied();
        assert_eq!(c.as_bytes(), m.as_bytes());
        assert_eq!(c.buffer().len(), text.len());
        assert_ne!(c.buffer().as_ptr(), m.buffer().as_ptr());
        assert_eq!(c.top_via(), m.top_via());
        assert_eq!(c.body(), b"hi");
        assert_eq!(c.reason(), Some(&b"Oops"[..]));
    }
}
