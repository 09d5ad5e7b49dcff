//! Stream framing of SIP messages over TCP, TLS and other byte streams (RFC 3261 §18.3,
//! RFC 5626 §3.5.1).
//!
//! A [`Framer`] owns a receive buffer. Append whatever the socket delivered
//! ([`Framer::extend_from_slice`], or read straight into [`Framer::buffer_mut`]) and call
//! [`Framer::next_frame`] until it returns `Ok(None)` ("need more bytes"). Each complete
//! message comes out as one [`Bytes`] split off the buffer without copying, ready for
//! [`Message::parse_with`](crate::Message::parse_with) with
//! [`Framing::Stream`](crate::Framing::Stream).
//!
//! The framer
//!
//! - cuts messages by `Content-Length` (full or compact `l` form, any case, folded values),
//!   which is mandatory on streams: a message without one is [`FramerError::MissingContentLength`];
//! - handles a message split across any number of reads and several messages in one read;
//! - reports the RFC 5626 keep-alive: a double CRLF between messages is a
//!   [`Frame::Ping`] (answer it with [`PONG`], a single CRLF); a single CRLF received while
//!   the owner waits for the answer to its own ping ([`Framer::set_awaiting_pong`]) is a
//!   [`Frame::Pong`]; other stray CRLFs between messages are skipped (RFC 3261 §7.5);
//! - refuses a message larger than [`Limits::max_message_size`] as soon as that is known
//!   (from the declared `Content-Length`, or a header section that outgrows the limit),
//!   never buffering more than the limit;
//! - scans each byte once however the stream is split (a peer sending one byte at a time
//!   costs linear time), and is deterministic: the same bytes give the same frames however
//!   they are split into reads.
//!
//! After an error the stream cannot be resynchronised (the message boundary is unknown):
//! the framer keeps returning the same error, and the connection should be closed (after
//! an optional `400`/`413` response).
//!
//! ```
//! use sip_core::framer::{Frame, Framer};
//! use sip_core::Limits;
//!
//! let mut framer = Framer::new(Limits::default());
//! let msg = b"OPTIONS sip:lb.example.com SIP/2.0\r\nContent-Length: 2\r\n\r\nhi";
//!
//! // The first read holds a ping, a whole message and the start of the next one.
//! framer.extend_from_slice(b"\r\n\r\n");
//! framer.extend_from_slice(msg);
//! framer.extend_from_slice(&msg[..10]);
//! assert_eq!(framer.next_frame()?, Some(Frame::Ping));
//! assert_eq!(framer.next_frame()?, Some(Frame::Message(msg[..].into())));
//! assert_eq!(framer.next_frame()?, None); // need more bytes
//!
//! framer.extend_from_slice(&msg[10..]);
//! assert_eq!(framer.next_frame()?, Some(Frame::Message(msg[..].into())));
//! assert_eq!(framer.buffered(), 0);
//! # Ok::<(), sip_core::framer::FramerError>(())
//! ```

use bytes::{Buf, Bytes, BytesMut};

use crate::header::HeaderName;
use crate::limits::Limits;
use crate::scan::{parse_u32, trim_lws};

/// The answer to a keep-alive [`Frame::Ping`]: a single CRLF (RFC 5626 §3.5.1).
pub const PONG: &[u8] = b"\r\n";

/// The keep-alive ping a client sends on a stream: a double CRLF (RFC 5626 §3.5.1).
pub const PING: &[u8] = b"\r\n\r\n";

/// One result of [`Framer::next_frame`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete SIP message: start line, headers, empty line and exactly
    /// `Content-Length` bytes of body. Split off the framer's buffer without copying.
    Message(Bytes),
    /// A double-CRLF keep-alive ping: answer with [`PONG`].
    Ping,
    /// A single CRLF received while [`Framer::set_awaiting_pong`] was set: the peer
    /// answered our ping.
    Pong,
}

/// Why a stream cannot be framed. The offsets are relative to the start of the message
/// being framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramerError {
    /// The header section ended without a `Content-Length` header, which streams require
    /// (RFC 3261 §18.3).
    #[error("missing Content-Length on a stream (header section ends at offset {offset})")]
    MissingContentLength {
        /// Offset of the empty line that ends the header section.
        offset: usize,
    },
    /// A `Content-Length` value that is not a decimal number.
    #[error("invalid Content-Length value at offset {offset}")]
    InvalidContentLength {
        /// Offset of the header line.
        offset: usize,
    },
    /// Two `Content-Length` headers: the framing would be ambiguous (request smuggling).
    #[error("duplicate Content-Length header at offset {offset}")]
    DuplicateContentLength {
        /// Offset of the second header line.
        offset: usize,
    },
    /// The message is larger than [`Limits::max_message_size`] (known from its
    /// `Content-Length`, or from a header section that is already larger).
    #[error("message larger than {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: u32,
    },
}

/// Incremental stream framer; see the [module documentation](self).
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    max: usize,
    /// Bytes of the current message already scanned (lines fully processed end here).
    scanned: usize,
    /// True once the start line has been passed.
    past_start_line: bool,
    /// Start of the current (possibly folded) logical line.
    line_start: usize,
    content_length: Option<usize>,
    /// Total length of the current message once its header section is complete.
    total: Option<usize>,
    /// Set while we wait for the answer to our own ping.
    awaiting_pong: bool,
    /// Sticky error: the stream cannot be resynchronised.
    error: Option<FramerError>,
}

impl Framer {
    /// A framer bounded by `limits.max_message_size`.
    pub fn new(limits: Limits) -> Framer {
        Framer::with_max_message_size(limits.max_message_size)
    }

    /// A framer that refuses messages larger than `max` bytes.
    pub fn with_max_message_size(max: u32) -> Framer {
        Framer {
            buf: BytesMut::new(),
            max: max as usize,
            scanned: 0,
            past_start_line: false,
            line_start: 0,
            content_length: None,
            total: None,
            awaiting_pong: false,
            error: None,
        }
    }

    /// Appends received bytes.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The receive buffer, to read into directly (for example with tokio's `read_buf`).
    /// Only append to it; bytes already in it must not be changed or removed.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes received but not yet returned as frames (part of a message, or a lone CRLF).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True when part of a message (not merely a CRLF) is buffered: a reader uses this to
    /// run its per-message read deadline.
    pub fn in_message(&self) -> bool {
        // Line ends before a message are consumed by `next_frame`, except up to three bytes
        // that may still become a ping.
        self.buf.iter().take(4).any(|&b| b != b'\r' && b != b'\n')
    }

    /// Says whether we sent a ping and wait for its pong. While set, a single CRLF between
    /// messages is reported as [`Frame::Pong`] (which clears the flag).
    pub fn set_awaiting_pong(&mut self, awaiting: bool) {
        self.awaiting_pong = awaiting;
    }

    /// The largest message accepted, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.max
    }

    /// The error that stopped the framer, if any.
    pub fn error(&self) -> Option<FramerError> {
        self.error
    }

    /// The next frame, `Ok(None)` when more bytes are needed, or the error that makes the
    /// stream unusable (returned again on every later call).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramerError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.step() {
            Ok(f) => Ok(f),
            Err(e) => {
                self.error = Some(e);
                Err(e)
            }
        }
    }

    fn step(&mut self) -> Result<Option<Frame>, FramerError> {
        // Between messages: keep-alives and stray line ends.
        if self.scanned == 0 {
            loop {
                let d = &self.buf[..];
                match d {
                    [] => return Ok(None),
                    [b'\r', b'\n', b'\r', b'\n', ..] if !self.awaiting_pong => {
                        self.buf.advance(4);
                        return Ok(Some(Frame::Ping));
                    }
                    [b'\r', b'\n', ..] if self.awaiting_pong => {
                        self.buf.advance(2);
                        self.awaiting_pong = false;
                        return Ok(Some(Frame::Pong));
                    }
                    // Could still become a ping.
                    [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => return Ok(None),
                    [b'\r', b'\n', ..] => self.buf.advance(2),
                    [b'\n', ..] => self.buf.advance(1),
                    _ => break,
                }
            }
        }
        if self.total.is_none() {
            self.scan_headers()?;
        }
        match self.total {
            Some(total) if self.buf.len() >= total => {
                let msg = self.buf.split_to(total).freeze();
                self.reset();
                Ok(Some(Frame::Message(msg)))
            }
            _ => Ok(None),
        }
    }

    fn reset(&mut self) {
        self.scanned = 0;
        self.past_start_line = false;
        self.line_start = 0;
        self.content_length = None;
        self.total = None;
    }

    /// Advances through complete lines; sets `total` when the header section is complete.
    fn scan_headers(&mut self) -> Result<(), FramerError> {
        let d = &self.buf[..];
        let mut pos = self.scanned;
        // `pos` is the start of a physical line; `line_start` the start of the logical
        // line it belongs to (equal unless `pos` starts a continuation).
        while let Some(k) = memchr::memchr(b'\n', &d[pos..]) {
            let lf = pos + k;
            if lf >= self.max {
                // The header section alone would exceed the limit.
                return Err(FramerError::TooLarge {
                    limit: self.max as u32,
                });
            }
            let is_empty_line = lf == pos || (lf == pos + 1 && d[pos] == b'\r');
            if is_empty_line && pos == self.line_start && self.past_start_line {
                // End of the header section.
                let Some(cl) = self.content_length else {
                    return Err(FramerError::MissingContentLength { offset: pos });
                };
                let total = lf + 1 + cl;
                if total > self.max {
                    return Err(FramerError::TooLarge {
                        limit: self.max as u32,
                    });
                }
                self.total = Some(total);
                self.scanned = lf + 1;
                return Ok(());
            }
            // Does a continuation line follow? We need the next byte to know.
            let Some(&next) = d.get(lf + 1) else {
                break;
            };
            if self.past_start_line && (next == b' ' || next == b'\t') {
                pos = lf + 1; // folded: same logical line
                continue;
            }
            // A complete logical line [line_start, lf].
            if self.past_start_line {
                self.content_length = content_length_of_line(
                    &d[self.line_start..lf],
                    self.line_start,
                    self.max,
                    self.content_length,
                )?;
            } else {
                self.past_start_line = true;
            }
            pos = lf + 1;
            self.line_start = pos;
        }
        self.scanned = pos;
        if d.len() > self.max {
            return Err(FramerError::TooLarge {
                limit: self.max as u32,
            });
        }
        Ok(())
    }
}

/// The Content-Length declared by one logical header line (`line` starts at `offset`),
/// given the one seen before (`seen`): `Ok(seen)` for any other header.
fn content_length_of_line(
    line: &[u8],
    offset: usize,
    max: usize,
    seen: Option<usize>,
) -> Result<Option<usize>, FramerError> {
    let Some(colon) = memchr::memchr(b':', line) else {
        return Ok(seen); // malformed; the parser reports it
    };
    let mut name = &line[..colon];
    while let [rest @ .., b' ' | b'\t'] = name {
        name = rest;
    }
    if HeaderName::from_bytes(name) != HeaderName::ContentLength {
        return Ok(seen);
    }
    if seen.is_some() {
        return Err(FramerError::DuplicateContentLength { offset });
    }
    let too_large = FramerError::TooLarge { limit: max as u32 };
    let value = trim_lws(&line[colon + 1..]);
    let Some(n) = parse_u32(value, u32::MAX) else {
        if !value.is_empty() && value.iter().all(u8::is_ascii_digit) {
            // A number too large for u32 is certainly too large a message.
            return Err(too_large);
        }
        return Err(FramerError::InvalidContentLength { offset });
    };
    if n as usize > max {
        return Err(too_large);
    }
    Ok(Some(n as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Framing, Message, ParseOptions};
    use proptest::prelude::*;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 12\r\n\r\n\
v=0\r\no=x y\r\n";

    const BYE_COMPACT_FOLDED: &[u8] = b"BYE sip:alice@atlanta.example.com SIP/2.0\r\n\
v: SIP/2.0/TCP biloxi.example.com;branch=z9hG4bKnashds7\r\n\
f: <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
t: <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
i: a84b4c76e66710\r\n\
CSeq: 231 BYE\r\n\
l:\r\n  4\r\n\r\n\
body";

    const OK: &[u8] = b"SIP/2.0 200 OK\r\nCONTENT-LENGTH : 0\r\n\r\n";

    fn frames(f: &mut Framer) -> Result<Vec<Frame>, FramerError> {
        let mut out = Vec::new();
        while let Some(fr) = f.next_frame()? {
            out.push(fr);
        }
        Ok(out)
    }

    fn msg(b: &[u8]) -> Frame {
        Frame::Message(Bytes::copy_from_slice(b))
    }

    #[test]
    fn framer_several_messages_in_one_read() {
        let mut f = Framer::new(Limits::default());
        let mut all = Vec::new();
        all.extend_from_slice(INVITE);
        all.extend_from_slice(OK);
        all.extend_from_slice(BYE_COMPACT_FOLDED);
        f.extend_from_slice(&all);
        assert_eq!(
            frames(&mut f).unwrap(),
            vec![msg(INVITE), msg(OK), msg(BYE_COMPACT_FOLDED)]
        );
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn framer_messages_parse_as_stream_messages() {
        let mut f = Framer::new(Limits::default());
        f.extend_from_slice(BYE_COMPACT_FOLDED);
        let Some(Frame::Message(b)) = f.next_frame().unwrap() else {
            panic!("no message");
        };
        let opts = ParseOptions {
            limits: Limits::default(),
            framing: Framing::Stream,
        };
        let m = Message::parse_with(b, &opts).unwrap();
        assert_eq!(m.content_length(), Some(4));
        assert_eq!(m.body(), b"body");
    }

    #[test]
    fn framer_byte_at_a_time() {
        let mut f = Framer::new(Limits::default());
        let mut got = Vec::new();
        for &b in INVITE.iter().chain(OK) {
            f.extend_from_slice(&[b]);
            got.extend(frames(&mut f).unwrap());
        }
        assert_eq!(got, vec![msg(INVITE), msg(OK)]);
    }

    #[test]
    fn framer_output_shares_the_buffer() {
        let mut f = Framer::new(Limits::default());
        f.extend_from_slice(INVITE);
        f.extend_from_slice(OK);
        let base = f.buffer_mut().as_ptr() as usize;
        let Some(Frame::Message(a)) = f.next_frame().unwrap() else {
            panic!()
        };
        let Some(Frame::Message(b)) = f.next_frame().unwrap() else {
            panic!()
        };
        assert_eq!(a.as_ptr() as usize, base, "no copy of the first message");
        assert_eq!(
            b.as_ptr() as usize,
            base + INVITE.len(),
            "no copy of the second"
        );
    }

    #[test]
    fn framer_keepalive_ping_pong() {
        let mut f = Framer::new(Limits::default());
        f.extend_from_slice(b"\r\n");
        assert_eq!(f.next_frame(), Ok(None), "a lone CRLF may be half a ping");
        f.extend_from_slice(b"\r\n");
        assert_eq!(f.next_frame(), Ok(Some(Frame::Ping)));
        // A stray CRLF before a message is skipped.
        f.extend_from_slice(b"\r\n");
        f.extend_from_slice(OK);
        assert_eq!(frames(&mut f).unwrap(), vec![msg(OK)]);
        // Waiting for our own ping's answer: a single CRLF is a pong, reported at once.
        f.set_awaiting_pong(true);
        f.extend_from_slice(b"\r\n");
        assert_eq!(f.next_frame(), Ok(Some(Frame::Pong)));
        f.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            f.next_frame(),
            Ok(Some(Frame::Ping)),
            "flag cleared by the pong"
        );
    }

    #[test]
    fn framer_missing_content_length() {
        let mut f = Framer::new(Limits::default());
        f.extend_from_slice(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n");
        let e = f.next_frame().unwrap_err();
        assert_eq!(e, FramerError::MissingContentLength { offset: 43 });
        assert_eq!(f.next_frame(), Err(e), "errors are sticky");
        f.extend_from_slice(OK);
        assert_eq!(f.next_frame(), Err(e));
    }

    #[test]
    fn framer_bad_and_duplicate_content_length() {
        for (input, want) in [
            (
                &b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 1x\r\n\r\n"[..],
                FramerError::InvalidContentLength { offset: 23 },
            ),
            (
                &b"OPTIONS sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n"[..],
                FramerError::InvalidContentLength { offset: 23 },
            ),
            (
                &b"OPTIONS sip:x SIP/2.0\r\nContent-Length:\r\n\r\n"[..],
                FramerError::InvalidContentLength { offset: 23 },
            ),
            (
                &b"OPTIONS sip:x SIP/2.0\r\nl: 0\r\nContent-Length: 0\r\n\r\n"[..],
                FramerError::DuplicateContentLength { offset: 29 },
            ),
        ] {
            let mut f = Framer::new(Limits::default());
            f.extend_from_slice(input);
            assert_eq!(
                f.next_frame(),
                Err(want),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn framer_oversized_is_refused_early() {
        let mut f = Framer::with_max_message_size(200);
        // The declared length alone exceeds the limit: refused before the body arrives.
        f.extend_from_slice(b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 190\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramerError::TooLarge { limit: 200 }));
        // Huge number.
        let mut f = Framer::with_max_message_size(200);
        f.extend_from_slice(b"MESSAGE sip:x SIP/2.0\r\nl: 99999999999999999999\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramerError::TooLarge { limit: 200 }));
        // A header section that never ends is refused once it passes the limit.
        let mut f = Framer::with_max_message_size(200);
        f.extend_from_slice(b"MESSAGE sip:x SIP/2.0\r\n");
        let mut refused = false;
        for _ in 0..100 {
            f.extend_from_slice(b"X-Junk: aaaaaaaaaaaa\r\n");
            if f.next_frame() == Err(FramerError::TooLarge { limit: 200 }) {
                refused = true;
                break;
            }
        }
        assert!(refused);
        assert!(f.buffered() < 250, "buffered {}", f.buffered());
        // Exactly at the limit is accepted.
        let head = b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 150\r\n\r\n";
        let mut m = head.to_vec();
        m.resize(head.len() + 150, b'a');
        let mut f = Framer::with_max_message_size(m.len() as u32);
        f.extend_from_slice(&m);
        assert_eq!(f.next_frame(), Ok(Some(msg(&m))));
    }

    #[test]
    fn framer_bare_lf_lines() {
        let m = b"SIP/2.0 200 OK\nContent-Length: 3\n\nabc";
        let mut f = Framer::new(Limits::default());
        f.extend_from_slice(m);
        f.extend_from_slice(m);
        assert_eq!(frames(&mut f).unwrap(), vec![msg(m), msg(m)]);
    }

    fn stream_item() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(INVITE.to_vec()),
            Just(OK.to_vec()),
            Just(BYE_COMPACT_FOLDED.to_vec()),
            Just(PING.to_vec()),
            (0usize..300, any::<u8>()).prop_map(|(n, b)| {
                let mut v =
                    format!("MESSAGE sip:a@b SIP/2.0\r\nContent-Length: {n}\r\n\r\n").into_bytes();
                v.extend(std::iter::repeat_n(b, n));
                v
            }),
        ]
    }

    fn run(chunks: &[&[u8]]) -> (Vec<Frame>, Option<FramerError>, usize) {
        let mut f = Framer::with_max_message_size(2000);
        let mut out = Vec::new();
        let mut err = None;
        for c in chunks {
            f.extend_from_slice(c);
            match frames(&mut f) {
                Ok(v) => out.extend(v),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        (out, err, f.buffered())
    }

    proptest! {
        #[test]
        fn framer_same_frames_however_split(
            items in prop::collection::vec(stream_item(), 0..8),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let stream: Vec<u8> = items.concat();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&stream[last..p]);
                last = p;
            }
            chunks.push(&stream[last..]);
            let (split, err, rest) = run(&chunks);
            let (whole, err2, rest2) = run(&[&stream]);
            prop_assert_eq!(err, None);
            prop_assert_eq!(err2, None);
            prop_assert_eq!(&split, &whole);
            prop_assert_eq!(rest, rest2);
            // And the frames are exactly the items.
            let expected: Vec<Frame> = items
                .iter()
                .map(|i| if i == PING { Frame::Ping } else { Frame::Message(Bytes::copy_from_slice(i)) })
                .collect();
            prop_assert_eq!(split, expected);
        }

        #[test]
        fn framer_arbitrary_bytes_never_panic_and_stay_bounded(
            data in prop::collection::vec(any::<u8>(), 0..3000),
            cut in 0usize..3000,
        ) {
            let cut = cut.min(data.len());
            let mut f = Framer::with_max_message_size(1000);
            for c in [&data[..cut], &data[cut..]] {
                f.extend_from_slice(c);
                loop {
                    match f.next_frame() {
                        Ok(Some(Frame::Message(m))) => prop_assert!(m.len() <= 1000),
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
                if f.error().is_none() {
                    prop_assert!(f.buffered() <= 1000, "buffered {}", f.buffered());
                }
            }
        }
    }
}
