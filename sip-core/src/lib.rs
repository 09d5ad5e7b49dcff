//! # sip-core
//!
//! Zero-copy parsing, inspection and editing of SIP (RFC 3261) messages, for proxies and
//! anything else that reads SIP from the wire.
//!
//! - [`Message::parse`] takes one received datagram (or framed stream message) as
//!   [`bytes::Bytes`] and locates, in a single pass and without heap allocation for a typical
//!   message, the start line, every header line as spans, and what a proxy touches on every
//!   message: method and Request-URI or status, the top Via and its branch, Call-ID, CSeq,
//!   From and To tags, Max-Forwards, Content-Length, the top Route and the number of Via and
//!   Route values.
//! - Typed views borrow from the buffer and are parsed on demand: [`uri::Uri`],
//!   [`name_addr::NameAddr`], [`via::Via`], [`values::CSeq`], [`values::Contact`],
//!   [`values::RetryAfter`], [`values::Credentials`], option tags, and any header as raw
//!   values ([`Message::header_values`]).
//! - [`editor::Editor`] records a proxy's edits as splices and writes the result in one
//!   pass; [`builder`] writes the messages a proxy originates (responses, OPTIONS, CANCEL,
//!   ACK); [`framer`] cuts TCP/TLS/WebSocket byte streams into messages.
//! - Every byte is treated as hostile: parsing never panics, is linear in the input, and is
//!   bounded by [`Limits`]; errors are typed ([`ParseError`]) with the byte offset and map to
//!   the status code and reason phrase a proxy answers with.
//!
//! ## Parse, inspect, edit
//!
//! ```
//! use bytes::Bytes;
//! use sip_core::{Message, Method, editor::Editor};
//!
//! let datagram = Bytes::from_static(
//!     b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n\
//!       Max-Forwards: 70\r\n\
//!       To: Bob <sip:bob@biloxi.example.com>\r\n\
//!       From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
//!       Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
//!       CSeq: 314159 INVITE\r\n\
//!       Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
//!       Content-Length: 0\r\n\r\n",
//! );
//!
//! // Parse: one pass, spans into the datagram.
//! let msg = Message::parse(datagram)?;
//!
//! // Inspect: the fields located by the pass, and typed views on demand.
//! assert_eq!(msg.method(), Some(Method::Invite));
//! assert_eq!(msg.call_id(), Some(&b"a84b4c76e66710@pc33.atlanta.example.com"[..]));
//! assert_eq!(msg.cseq(), Some((314159, Method::Invite)));
//! assert_eq!(msg.from_tag(), Some(&b"1928301774"[..]));
//! assert_eq!(msg.to_tag(), None);
//! assert_eq!(msg.top_via_branch(), Some(&b"z9hG4bK776asdhds"[..]));
//! let via = msg.top_via().unwrap();
//! assert_eq!(via.rport(), Some(None)); // the client asks for rport
//! let ruri = msg.request_uri_parsed().unwrap();
//! assert_eq!(ruri.user(), Some(&b"bob"[..]));
//!
//! // Edit: what a proxy does, written in one pass over the original bytes.
//! let mut ed = Editor::new(&msg);
//! ed.prepend_via(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-lb-1");
//! ed.prepend_record_route(&[b"<sip:10.0.0.1;lr>"]);
//! ed.set_max_forwards(msg.max_forwards().unwrap() - 1)?;
//! let forwarded = Message::parse(ed.finish()?)?;
//!
//! assert_eq!(forwarded.via_count(), 2);
//! assert_eq!(forwarded.top_via_branch(), Some(&b"z9hG4bK-lb-1"[..]));
//! assert_eq!(forwarded.max_forwards(), Some(69));
//! assert_eq!(forwarded.record_routes().count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod builder;
pub mod editor;
pub mod error;
pub mod framer;
pub mod header;
mod lex;
pub mod limits;
pub mod message;
pub mod method;
pub mod name_addr;
pub mod scan;
pub mod span;
pub mod transport;
pub mod uri;
pub mod values;
pub mod via;

pub use error::{ParseError, ParseErrorKind, ValueError, ValueErrorKind};
pub use framer::{Frame, Framer, FramerError};
pub use header::HeaderName;
pub use limits::Limits;
pub use message::{Framing, HeaderField, Message, ParseOptions};
pub use method::Method;
pub use span::Span;
pub use transport::Transport;
