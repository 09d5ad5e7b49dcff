//! Typed errors of the parser and of the typed header views.
//!
//! Every error carries the byte offset where the problem was found (relative to the start
//! of the message for [`ParseError`], to the start of the parsed value for [`ValueError`])
//! and says what was expected, precisely enough that a proxy can answer with a useful
//! reason phrase ([`ParseError::reason_phrase`]) and status code ([`ParseError::status_code`]).

use crate::header::HeaderName;

/// What is wrong with a header value or a URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueErrorKind {
    /// The value is empty where something is required.
    #[error("empty value")]
    Empty,
    /// A quoted string has no closing quote.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// A `<` has no matching `>`.
    #[error("'<' without matching '>'")]
    UnterminatedAngle,
    /// White space where the grammar allows none (inside a URI, for example).
    #[error("unexpected white space")]
    UnexpectedWhitespace,
    /// A character that may not appear here.
    #[error("unexpected character")]
    UnexpectedChar,
    /// Expected `;` before a parameter.
    #[error("expected ';' before a parameter")]
    ExpectedSemicolon,
    /// A parameter without a name (`;;`).
    #[error("empty parameter")]
    EmptyParam,
    /// A parameter with `=` but no value.
    #[error("parameter without a value after '='")]
    EmptyParamValue,
    /// A parameter value out of its allowed range or form (`ttl=300`, `rport=x`).
    #[error("invalid parameter value")]
    InvalidParamValue,
    /// The URI scheme is missing or not `ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")`.
    #[error("invalid URI scheme")]
    InvalidScheme,
    /// The host of a URI or Via is missing or malformed.
    #[error("invalid host")]
    InvalidHost,
    /// An IPv6 reference is malformed (`[...]`).
    #[error("invalid IPv6 reference")]
    InvalidIpv6,
    /// The port is not a number from 0 to 65535.
    #[error("invalid port")]
    InvalidPort,
    /// A `%` escape is not followed by two hex digits.
    #[error("invalid %-escape")]
    InvalidEscape,
    /// A number is missing, malformed, or too large.
    #[error("invalid number")]
    InvalidNumber,
    /// A method name is not a token.
    #[error("invalid method")]
    InvalidMethod,
    /// The `SIP/2.0/transport` part of a Via is malformed.
    #[error("invalid sent-protocol")]
    InvalidProtocol,
    /// Several values where the header allows only one.
    #[error("several values where one is allowed")]
    MultipleValues,
    /// Characters left after a complete value.
    #[error("unexpected characters after the value")]
    TrailingCharacters,
    /// The display name is neither a quoted string nor tokens.
    #[error("invalid display name")]
    InvalidDisplayName,
    /// A header (`?h=v`) in a URI where none is allowed, or a malformed one.
    #[error("invalid URI header")]
    InvalidUriHeader,
}

/// An error in a header value or URI, with the offset into the parsed slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at offset {offset}")]
pub struct ValueError {
    /// What is wrong.
    pub kind: ValueErrorKind,
    /// Byte offset into the parsed value where it was found.
    pub offset: usize,
}

impl ValueError {
    /// A new error.
    #[inline]
    pub const fn new(kind: ValueErrorKind, offset: usize) -> Self {
        ValueError { kind, offset }
    }

    /// The same error with its offset moved by `base` (a view parsed from a sub-slice
    /// reports offsets relative to the enclosing slice).
    #[inline]
    pub const fn shifted(self, base: usize) -> Self {
        ValueError {
            kind: self.kind,
            offset: self.offset + base,
        }
    }
}

/// What is wrong with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// No bytes (or only CRLFs).
    #[error("empty message")]
    Empty,
    /// The message is larger than `Limits::max_message_size`.
    #[error("message larger than {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: u32,
    },
    /// More header fields than `Limits::max_headers`.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The configured limit.
        limit: u32,
    },
    /// A (logical, unfolded) line longer than `Limits::max_line_length`.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The configured limit.
        limit: u32,
    },
    /// More Via values than `Limits::max_via`.
    #[error("more than {limit} Via values")]
    TooManyVia {
        /// The configured limit.
        limit: u32,
    },
    /// More Route values than `Limits::max_route`.
    #[error("more than {limit} Route values")]
    TooManyRoutes {
        /// The configured limit.
        limit: u32,
    },
    /// The Request-URI is longer than `Limits::max_uri_length`.
    #[error("Request-URI longer than {limit} bytes")]
    UriTooLong {
        /// The configured limit.
        limit: u32,
    },
    /// The header section does not end with an empty line (a truncated message).
    #[error("the header section does not end with an empty line")]
    Incomplete,
    /// The request line is not `Method SP Request-URI SP SIP-Version CRLF` with single spaces.
    #[error("malformed request line")]
    InvalidRequestLine,
    /// The method is not a token.
    #[error("invalid method")]
    InvalidMethod,
    /// The Request-URI is malformed (no scheme, `<...>`, white space, headers in a SIP URI).
    #[error("invalid Request-URI")]
    InvalidRequestUri,
    /// The status line is not `SIP-Version SP Status-Code SP Reason-Phrase CRLF`.
    #[error("malformed status line")]
    InvalidStatusLine,
    /// The status code is not three digits from 100 to 699.
    #[error("invalid status code")]
    InvalidStatusCode,
    /// The protocol version is not `SIP/2.0`.
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// A header line has no name or a name with non-token characters.
    #[error("invalid header name")]
    InvalidHeaderName,
    /// A header line has no `:` after its name.
    #[error("missing ':' after a header name")]
    MissingColon,
    /// A single-valued header the proxy relies on appears more than once.
    #[error("duplicate {0} header")]
    DuplicateHeader(HeaderName),
    /// A header the proxy relies on is malformed.
    #[error("invalid {header} header: {error}")]
    InvalidHeader {
        /// Which header.
        header: HeaderName,
        /// What is wrong with it.
        error: ValueErrorKind,
    },
    /// The CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    /// The body is shorter than its Content-Length (RFC 3261 §18.3: discard a datagram).
    #[error("body shorter than Content-Length ({declared} declared, {actual} present)")]
    BodyTooShort {
        /// The Content-Length value.
        declared: u32,
        /// The bytes present after the header section.
        actual: u32,
    },
    /// Content-Length is required (stream transports) but absent.
    #[error("missing Content-Length")]
    MissingContentLength,
}

/// A message that could not be parsed: what is wrong and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct ParseError {
    /// What is wrong.
    pub kind: ParseErrorKind,
    /// Byte offset from the start of the message where it was found.
    pub offset: u32,
}

impl ParseError {
    /// A new error.
    #[inline]
    pub const fn new(kind: ParseErrorKind, offset: usize) -> Self {
        ParseError {
            kind,
            offset: offset as u32,
        }
    }

    /// The status code a proxy answers a request that failed to parse with: 513 for an
    /// oversized message, 505 for an unknown SIP version, 414 for an oversized Request-URI,
    /// 400 otherwise.
    pub const fn status_code(&self) -> u16 {
        match self.kind {
            ParseErrorKind::TooLarge { .. } => 513,
            ParseErrorKind::UnsupportedVersion => 505,
            ParseErrorKind::UriTooLong { .. } => 414,
            _ => 400,
        }
    }

    /// A short reason phrase naming the problem, for the reply (e.g. `Bad CSeq`,
    /// `Duplicate Call-ID`).
    pub const fn reason_phrase(&self) -> &'static str {
        use HeaderName as H;
        match self.kind {
            ParseErrorKind::Empty => "Empty Message",
            ParseErrorKind::TooLarge { .. } => "Message Too Large",
            ParseErrorKind::TooManyHeaders { .. } => "Too Many Headers",
            ParseErrorKind::LineTooLong { .. } => "Header Line Too Long",
            ParseErrorKind::TooManyVia { .. } => "Too Many Via Values",
            ParseErrorKind::TooManyRoutes { .. } => "Too Many Route Values",
            ParseErrorKind::UriTooLong { .. } => "Request-URI Too Long",
            ParseErrorKind::Incomplete => "Incomplete Header Section",
            ParseErrorKind::InvalidRequestLine => "Malformed Request Line",
            ParseErrorKind::InvalidMethod => "Bad Method",
            ParseErrorKind::InvalidRequestUri => "Bad Request-URI",
            ParseErrorKind::InvalidStatusLine => "Malformed Status Line",
            ParseErrorKind::InvalidStatusCode => "Bad Status Code",
            ParseErrorKind::UnsupportedVersion => "Version Not Supported",
            ParseErrorKind::InvalidHeaderName => "Bad Header Name",
            ParseErrorKind::MissingColon => "Malformed Header Line",
            ParseErrorKind::DuplicateHeader(h) => match h {
                H::CallId => "Duplicate Call-ID",
                H::CSeq => "Duplicate CSeq",
                H::From => "Duplicate From",
                H::To => "Duplicate To",
                H::MaxForwards => "Duplicate Max-Forwards",
                H::ContentLength => "Duplicate Content-Length",
                _ => "Duplicate Header",
            },
            ParseErrorKind::InvalidHeader { header, .. } => match header {
                H::Via => "Bad Via",
                H::CallId => "Bad Call-ID",
                H::CSeq => "Bad CSeq",
                H::From => "Bad From",
                H::To => "Bad To",
                H::MaxForwards => "Bad Max-Forwards",
                H::ContentLength => "Bad Content-Length",
                H::Route => "Bad Route",
                _ => "Bad Header",
            },
            ParseErrorKind::CSeqMethodMismatch => "CSeq Method Mismatch",
            ParseErrorKind::BodyTooShort { .. } => "Body Shorter Than Content-Length",
            ParseErrorKind::MissingContentLength => "Missing Content-Length",
        }
    }
}
