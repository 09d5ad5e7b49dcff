//! URIs (RFC 3261 §19.1, RFC 3966 `tel:`, RFC 3986 absolute URIs), parsed on demand as a view
//! borrowing from the message buffer.
//!
//! ```
//! use sip_core::uri::{Host, Scheme, Uri};
//! let uri = Uri::parse(b"sips:alice:secret@[2001:db8::10]:5071;transport=tcp;lr?subject=hi").unwrap();
//! assert_eq!(uri.scheme(), Scheme::Sips);
//! assert_eq!(uri.user(), Some(&b"alice"[..]));
//! assert_eq!(uri.password(), Some(&b"secret"[..]));
//! assert_eq!(uri.host(), Some(Host::V6("2001:db8::10".parse().unwrap())));
//! assert_eq!(uri.port(), Some(5071));
//! assert_eq!(uri.param("TRANSPORT"), Some(Some(&b"tcp"[..])));
//! assert!(uri.has_param("lr"));
//! assert_eq!(uri.headers().next(), Some((&b"subject"[..], &b"hi"[..])));
//! ```

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{ValueError, ValueErrorKind as K};
use crate::lex;
use crate::scan::{is_alpha, is_digit, is_host_char};
use crate::span::Span;
use crate::transport::Transport;

/// The scheme of a URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:` (RFC 3261).
    Sip,
    /// `sips:` (RFC 3261).
    Sips,
    /// `tel:` (RFC 3966).
    Tel,
    /// Any other scheme: an absolute URI with an opaque part.
    Other,
}

impl Scheme {
    /// True for `sip` and `sips`, the schemes a SIP proxy can route by host.
    pub const fn is_sip(self) -> bool {
        matches!(self, Scheme::Sip | Scheme::Sips)
    }
}

/// The host of a SIP URI or a Via sent-by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// A domain name as written (compare case-insensitively).
    Domain(&'a [u8]),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written as a reference `[...]`).
    V6(Ipv6Addr),
}

impl Host<'_> {
    /// The address when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Host::Domain(_) => None,
            Host::V4(a) => Some(IpAddr::V4(a)),
            Host::V6(a) => Some(IpAddr::V6(a)),
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(&String::from_utf8_lossy(d)),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A parsed URI borrowing from its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    raw: &'a [u8],
    scheme: Scheme,
    scheme_raw: &'a [u8],
    user: Option<&'a [u8]>,
    password: Option<&'a [u8]>,
    host_raw: &'a [u8],
    host: Option<Host<'a>>,
    port: Option<u16>,
    params: &'a [u8],
    headers: &'a [u8],
    opaque: &'a [u8],
}

impl<'a> Uri<'a> {
    /// Parses a whole URI (no surrounding white space or angle brackets).
    ///
    /// The usual `sip:`/`sips:` URIs (no escapes, no headers) take a fast path; anything
    /// else, and every error, the reference parser ([`Uri::parse_reference`]). Both give
    /// the same result for every input the fast path accepts.
    pub fn parse(s: &'a [u8]) -> Result<Uri<'a>, ValueError> {
        match Uri::parse_fast(s) {
            Some(u) => Ok(u),
            None => Uri::parse_reference(s),
        }
    }

    /// Only the fast path of [`Uri::parse`] (`None`: "ask the reference parser"). For
    /// tests and fuzzing, which check that the two agree.
    #[doc(hidden)]
    pub fn parse_fast(s: &'a [u8]) -> Option<Uri<'a>> {
        let mut spans = UriSpans::EMPTY;
        UriSpans::parse_fast(s, 0, &mut spans)?;
        Some(spans.view(s))
    }

    /// Only the reference parser of [`Uri::parse`], which knows the whole grammar.
    #[doc(hidden)]
    pub fn parse_reference(s: &'a [u8]) -> Result<Uri<'a>, ValueError> {
        let colon = parse_scheme(s)?;
        let scheme_raw = &s[..colon];
        let scheme = if scheme_raw.eq_ignore_ascii_case(b"sip") {
            Scheme::Sip
        } else if scheme_raw.eq_ignore_ascii_case(b"sips") {
            Scheme::Sips
        } else if scheme_raw.eq_ignore_ascii_case(b"tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        };
        let rest_start = colon + 1;
        let rest = &s[rest_start..];
        if let Some(i) = rest.iter().position(|&b| b <= b' ' || b == 0x7f) {
            return Err(ValueError::new(
                if matches!(rest[i], b' ' | b'\t' | b'\r' | b'\n') {
                    K::UnexpectedWhitespace
                } else {
                    K::UnexpectedChar
                },
                rest_start + i,
            ));
        }
        let mut uri = Uri {
            raw: s,
            scheme,
            scheme_raw,
            user: None,
            password: None,
            // Absent parts are empty slices of the input (so that a parsed message can
            // keep every part as a position in it).
            host_raw: &s[s.len()..],
            host: None,
            port: None,
            params: &s[s.len()..],
            headers: &s[s.len()..],
            opaque: rest,
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => uri.parse_sip(rest, rest_start)?,
            Scheme::Tel => uri.parse_tel(rest, rest_start)?,
            Scheme::Other => {
                if rest.is_empty() {
                    return Err(ValueError::new(K::Empty, rest_start));
                }
                if let Some(i) = rest.iter().position(|&b| matches!(b, b'<' | b'>' | b'"')) {
                    return Err(ValueError::new(K::UnexpectedChar, rest_start + i));
                }
            }
        }
        Ok(uri)
    }

    fn parse_sip(&mut self, rest: &'a [u8], base: usize) -> Result<(), ValueError> {
        // The only unescaped '@' a SIP URI may contain ends the userinfo (params and
        // headers cannot hold one; the user part can hold ';' and '?').
        let mut hp_start = 0;
        if let Some(at) = memchr::memchr(b'@', rest) {
            let userinfo = &rest[..at];
            let (user, password) = match memchr::memchr(b':', userinfo) {
                Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                None => (userinfo, None),
            };
            if user.is_empty() {
                return Err(ValueError::new(K::Empty, base));
            }
            check_escapes(userinfo, base)?;
            if let Some(i) = userinfo
                .iter()
                .position(|&b| matches!(b, b'<' | b'>' | b'"' | b'@'))
            {
                return Err(ValueError::new(K::UnexpectedChar, base + i));
            }
            self.user = Some(user);
            self.password = password;
            hp_start = at + 1;
        }
        let hp = &rest[hp_start..];
        let hp_base = base + hp_start;
        let (host, host_len) = parse_host(hp, hp_base)?;
        self.host = Some(host);
        self.host_raw = &hp[..host_len];
        let mut i = host_len;
        if i < hp.len() && hp[i] == b':' {
            let pstart = i + 1;
            let mut j = pstart;
            while j < hp.len() && is_digit(hp[j]) {
                j += 1;
            }
            self.port = Some(parse_port(&hp[pstart..j], hp_base + pstart)?);
            i = j;
        }
        if i < hp.len() && hp[i] == b';' {
            let pstart = i;
            let pend = memchr::memchr(b'?', &hp[i..]).map_or(hp.len(), |q| i + q);
            self.params = &hp[pstart..pend];
            validate_uri_params(self.params, hp_base + pstart)?;
            i = pend;
        }
        if i < hp.len() && hp[i] == b'?' {
            self.headers = &hp[i + 1..];
            validate_uri_headers(self.headers, hp_base + i + 1)?;
            i = hp.len();
        }
        if i != hp.len() {
            return Err(ValueError::new(K::UnexpectedChar, hp_base + i));
        }
        Ok(())
    }

    fn parse_tel(&mut self, rest: &'a [u8], base: usize) -> Result<(), ValueError> {
        let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
        let number = &rest[..end];
        if number.is_empty() {
            return Err(ValueError::new(K::Empty, base));
        }
        // global-number-digits / local-number-digits: digits, hex digits, * # + and
        // visual separators - . ( )
        if let Some(i) = number.iter().position(|&b| {
            !(b.is_ascii_hexdigit() || matches!(b, b'+' | b'*' | b'#' | b'-' | b'.' | b'(' | b')'))
        }) {
            return Err(ValueError::new(K::UnexpectedChar, base + i));
        }
        self.user = Some(number);
        self.params = &rest[end..];
        validate_uri_params(self.params, base + end)
    }

    /// The whole URI as written.
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// The scheme.
    #[inline]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The scheme as written (`sip`, `SIP`, `soap.beep`, ...).
    #[inline]
    pub fn scheme_raw(&self) -> &'a [u8] {
        self.scheme_raw
    }

    /// The user part as written (still %-escaped; see [`percent_decode`]); for `tel:` the
    /// number.
    #[inline]
    pub fn user(&self) -> Option<&'a [u8]> {
        self.user
    }

    /// The password as written, if the userinfo has one.
    #[inline]
    pub fn password(&self) -> Option<&'a [u8]> {
        self.password
    }

    /// The host of a `sip:`/`sips:` URI.
    #[inline]
    pub fn host(&self) -> Option<Host<'a>> {
        self.host
    }

    /// The host as written (IPv6 references with their brackets); empty without a host.
    #[inline]
    pub fn host_raw(&self) -> &'a [u8] {
        self.host_raw
    }

    /// The port, if written.
    #[inline]
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The `transport=` parameter, when it names a transport sip-lb knows.
    pub fn transport(&self) -> Option<Transport> {
        self.param("transport")
            .flatten()
            .and_then(Transport::from_token)
    }

    /// The transport to reach this URI by when none is resolved otherwise: the
    /// `transport=` parameter, TLS for `sips:`, else UDP (RFC 3263 §4.1 without DNS).
    pub fn effective_transport(&self) -> Transport {
        match self.transport() {
            Some(t) => t,
            None if self.scheme == Scheme::Sips => Transport::Tls,
            None => Transport::Udp,
        }
    }

    /// The port, or the default port for the effective transport (5060, 5061 for TLS).
    pub fn port_or_default(&self) -> u16 {
        self.port
            .unwrap_or_else(|| self.effective_transport().default_port())
    }

    /// The raw parameter section, starting at its first `;` (empty when none).
    #[inline]
    pub fn params_raw(&self) -> &'a [u8] {
        self.params
    }

    /// Iterates over the URI parameters as `(name, value)`, as written.
    pub fn params(&self) -> UriParams<'a> {
        UriParams { s: self.params }
    }

    /// The first parameter named `name` (case-insensitive): `Some(None)` when it has no value.
    pub fn param(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.params()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// True when the URI has a parameter named `name` (case-insensitive).
    pub fn has_param(&self, name: &str) -> bool {
        self.param(name).is_some()
    }

    /// True when the URI carries `lr` (a loose router, RFC 3261 §16.12).
    pub fn is_loose_router(&self) -> bool {
        self.has_param("lr")
    }

    /// The raw header section after `?` (empty when none).
    #[inline]
    pub fn headers_raw(&self) -> &'a [u8] {
        self.headers
    }

    /// Iterates over the URI headers `?name=value&...` as `(name, value)`, as written.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.headers
            .split(|&b| b == b'&')
            .filter(|h| !h.is_empty())
            .map(|h| match memchr::memchr(b'=', h) {
                Some(e) => (&h[..e], &h[e + 1..]),
                None => (h, &h[h.len()..]),
            })
    }

    /// Everything after `scheme:` (for schemes other than sip, sips and tel).
    #[inline]
    pub fn opaque(&self) -> &'a [u8] {
        self.opaque
    }
}

/// Iterator over URI parameters (`;name[=value]`).
#[derive(Clone, Debug)]
pub struct UriParams<'a> {
    s: &'a [u8],
}

impl<'a> Iterator for UriParams<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let s = self.s;
            if s.is_empty() {
                return None;
            }
            let s = if s[0] == b';' { &s[1..] } else { s };
            let end = memchr::memchr(b';', s).unwrap_or(s.len());
            let p = &s[..end];
            self.s = &s[end..];
            if p.is_empty() {
                continue;
            }
            return Some(match memchr::memchr(b'=', p) {
                Some(e) => (&p[..e], Some(&p[e + 1..])),
                None => (p, None),
            });
        }
    }
}

/// Returns the index of the `:` that ends a valid scheme.
fn parse_scheme(s: &[u8]) -> Result<usize, ValueError> {
    if s.is_empty() {
        return Err(ValueError::new(K::Empty, 0));
    }
    if !is_alpha(s[0]) {
        return Err(ValueError::new(K::InvalidScheme, 0));
    }
    let mut i = 1;
    while i < s.len() && (s[i].is_ascii_alphanumeric() || matches!(s[i], b'+' | b'-' | b'.')) {
        i += 1;
    }
    if i >= s.len() || s[i] != b':' {
        return Err(ValueError::new(K::InvalidScheme, i));
    }
    Ok(i)
}

fn parse_port(digits: &[u8], at: usize) -> Result<u16, ValueError> {
    if digits.is_empty() || digits.len() > 5 {
        return Err(ValueError::new(K::InvalidPort, at));
    }
    let mut v: u32 = 0;
    for &b in digits {
        v = v * 10 + u32::from(b - b'0');
    }
    u16::try_from(v).map_err(|_| ValueError::new(K::InvalidPort, at))
}

/// Parses a `host` (hostname, IPv4address or IPv6reference) at the start of `s`; returns it
/// and its length. Used by URIs and Via sent-by.
pub(crate) fn parse_host(s: &[u8], base: usize) -> Result<(Host<'_>, usize), ValueError> {
    if s.first() == Some(&b'[') {
        let close = memchr::memchr(b']', s).ok_or(ValueError::new(K::InvalidIpv6, base))?;
        let addr = parse_ipv6(&s[1..close]).ok_or(ValueError::new(K::InvalidIpv6, base + 1))?;
        return Ok((Host::V6(addr), close + 1));
    }
    let mut i = 0;
    while i < s.len() && is_host_char(s[i]) {
        i += 1;
    }
    let name = &s[..i];
    if name.is_empty() {
        return Err(ValueError::new(K::InvalidHost, base));
    }
    // A name whose last label starts with a digit is an IPv4 address (a toplabel begins
    // with a letter, RFC 3261 §25.1); anything else is a domain name.
    let last_label = name
        .rsplit(|&b| b == b'.')
        .find(|l| !l.is_empty())
        .unwrap_or(name);
    if last_label.first().is_some_and(|b| b.is_ascii_digit()) {
        if let Some(a) = parse_ipv4(name) {
            return Ok((Host::V4(a), i));
        }
        return Err(ValueError::new(K::InvalidHost, base));
    }
    if name.starts_with(b".") || name.starts_with(b"-") || name.windows(2).any(|w| w == b"..") {
        return Err(ValueError::new(K::InvalidHost, base));
    }
    Ok((Host::Domain(name), i))
}

/// Parses dotted-quad IPv4 (no leading `+`, each part 0..=255).
pub(crate) fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    lex::ipv4(s)
}

/// Parses an IPv6 address (without brackets), including an IPv4 tail (RFC 5954 grammar).
pub(crate) fn parse_ipv6(s: &[u8]) -> Option<Ipv6Addr> {
    if s.len() > 45
        || !s
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    {
        return None;
    }
    core::str::from_utf8(s).ok()?.parse().ok()
}

/// Checks that every `%` starts a valid `%HH` escape.
fn check_escapes(s: &[u8], base: usize) -> Result<(), ValueError> {
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'%', &s[i..]) {
        let p = i + k;
        let ok = s.len() >= p + 3 && s[p + 1].is_ascii_hexdigit() && s[p + 2].is_ascii_hexdigit();
        if !ok {
            return Err(ValueError::new(K::InvalidEscape, base + p));
        }
        i = p + 3;
    }
    Ok(())
}

fn validate_uri_params(s: &[u8], base: usize) -> Result<(), ValueError> {
    check_escapes(s, base)?;
    if let Some(i) = s
        .iter()
        .position(|&b| matches!(b, b'<' | b'>' | b'"' | b'@' | b','))
    {
        return Err(ValueError::new(K::UnexpectedChar, base + i));
    }
    Ok(())
}

fn validate_uri_headers(s: &[u8], base: usize) -> Result<(), ValueError> {
    check_escapes(s, base)?;
    if let Some(i) = s
        .iter()
        .position(|&b| matches!(b, b'<' | b'>' | b'"' | b',' | b';'))
    {
        return Err(ValueError::new(K::InvalidUriHeader, base + i));
    }
    Ok(())
}

/// A port as the URI grammar has it: 1 to 5 decimal digits, at most 65535.
///
/// ```
/// assert_eq!(sip_core::uri::port_number(b"5060"), Some(5060));
/// assert_eq!(sip_core::uri::port_number(b"65536"), None);
/// ```
pub fn port_number(digits: &[u8]) -> Option<u16> {
    lex::port(digits)
}

/// Iterates over the bytes of `s` with `%HH` escapes decoded (an invalid escape is passed
/// through unchanged). Never allocates.
pub fn percent_decode(s: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    core::iter::from_fn(move || {
        let b = *s.get(i)?;
        if b == b'%'
            && let (Some(h), Some(l)) = (
                s.get(i + 1).and_then(|&c| hex_val(c)),
                s.get(i + 2).and_then(|&c| hex_val(c)),
            )
        {
            i += 3;
            return Some((h << 4) | l);
        }
        i += 1;
        Some(b)
    })
}

/// True when `a` and `b` are equal after %-decoding both (RFC 3261 §19.1.4 compares user
/// parts this way).
pub fn eq_percent_decoded(a: &[u8], b: &[u8]) -> bool {
    percent_decode(a).eq(percent_decode(b))
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A [`Uri`] kept as positions in the text it was parsed from, so that a parsed
/// [`Message`](crate::Message) hands out its Request-URI without a second parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UriSpans {
    raw: Span,
    scheme: Scheme,
    scheme_raw: Span,
    user: Option<Span>,
    password: Option<Span>,
    host_raw: Span,
    host: Option<HostSpan>,
    port: Option<u16>,
    params: Span,
    headers: Span,
    opaque: Span,
}

/// [`Host`] with a domain name as a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostSpan {
    Domain(Span),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl HostSpan {
    /// The position of `host`, whose name (if any) lies in `base`.
    #[inline]
    pub(crate) fn of(host: Host<'_>, base: &[u8]) -> HostSpan {
        match host {
            Host::Domain(d) => HostSpan::Domain(Span::within(base, d)),
            Host::V4(a) => HostSpan::V4(a),
            Host::V6(a) => HostSpan::V6(a),
        }
    }

    /// The host again, borrowing from `base`.
    #[inline]
    pub(crate) fn view(self, base: &[u8]) -> Host<'_> {
        match self {
            HostSpan::Domain(d) => Host::Domain(d.of(base)),
            HostSpan::V4(a) => Host::V4(a),
            HostSpan::V6(a) => Host::V6(a),
        }
    }
}

impl UriSpans {
    /// The positions of `uri`, whose slices all lie in `base`.
    #[inline(always)]
    pub(crate) fn of(uri: &Uri<'_>, base: &[u8]) -> UriSpans {
        let at = |sub: &[u8]| Span::within(base, sub);
        UriSpans {
            raw: at(uri.raw),
            scheme: uri.scheme,
            scheme_raw: at(uri.scheme_raw),
            user: uri.user.map(at),
            password: uri.password.map(at),
            host_raw: at(uri.host_raw),
            host: uri.host.map(|h| HostSpan::of(h, base)),
            port: uri.port,
            params: at(uri.params),
            headers: at(uri.headers),
            opaque: at(uri.opaque),
        }
    }

    /// No URI: every span empty (storage for [`UriSpans::parse_fast`]).
    pub(crate) const EMPTY: UriSpans = UriSpans {
        raw: Span::new(0, 0),
        scheme: Scheme::Other,
        scheme_raw: Span::new(0, 0),
        user: None,
        password: None,
        host_raw: Span::new(0, 0),
        host: None,
        port: None,
        params: Span::new(0, 0),
        headers: Span::new(0, 0),
        opaque: Span::new(0, 0),
    };

    /// [`Uri::parse_fast`] on `d[u0..]`, written into `uri` as positions in `d` (the
    /// parse pass of `Message` keeps its Request-URI so, in place, without building a
    /// `Uri` first). On `None`, `uri` holds whatever was read so far.
    #[inline]
    pub(crate) fn parse_fast(d: &[u8], u0: usize, uri: &mut UriSpans) -> Option<()> {
        let s = d.get(u0..)?;
        let at = |a: usize, b: usize| Span::new(u0 + a, u0 + b);
        let (scheme, colon) = if s.starts_with(b"sip:") {
            (Scheme::Sip, 3)
        } else if s.starts_with(b"sips:") {
            (Scheme::Sips, 4)
        } else {
            return None;
        };
        let r0 = colon + 1;
        let rest = &s[r0..];
        // One '@' at most (it ends the userinfo); no character whose place in a SIP URI
        // the fast path does not judge (escapes, headers, controls, ...).
        // (The bytes after a user part are judged below, past the host and port.)
        let k = lex::run_long(rest, 0, lex::URI_OK);
        let at_sign = if rest.get(k) == Some(&b'@') {
            Some(k)
        } else if k == rest.len() {
            None
        } else {
            return None;
        };
        let (user, password, h0) = match at_sign {
            Some(a) => {
                let userinfo = &rest[..a];
                // (A user part is short: a plain loop, not a search's set-up.)
                let (user, password) = match userinfo.iter().position(|&b| b == b':') {
                    Some(c) => (at(r0, r0 + c), Some(at(r0 + c + 1, r0 + a))),
                    None => (at(r0, r0 + a), None),
                };
                if user.is_empty() {
                    return None;
                }
                (Some(user), password, r0 + a + 1)
            }
            None => (None, None, r0),
        };
        let hp = &s[h0..];
        let (host, hlen) = lex::host(hp)?;
        let mut i = hlen;
        let mut port = None;
        if hp.get(i) == Some(&b':') {
            let (p, p1) = lex::port_at(hp, i + 1)?;
            port = Some(p);
            i = p1;
        }
        if i != hp.len() && hp[i] != b';' {
            return None;
        }
        // After a user part, the rest is yet to be searched for a byte the fast path does
        // not judge (a second `@` among them): the parameters only, since a host name and
        // a port are made of such bytes (an IPv6 reference is searched whole).
        if at_sign.is_some() && (i != hp.len() || hp.first() == Some(&b'[')) {
            let from = if hp.first() == Some(&b'[') { 0 } else { i };
            if lex::run_long(hp, from, lex::URI_OK) != hp.len() {
                return None;
            }
        }
        *uri = UriSpans {
            raw: at(0, s.len()),
            scheme,
            scheme_raw: at(0, colon),
            user,
            password,
            host_raw: at(h0, h0 + hlen),
            host: Some(HostSpan::of(host, d)),
            port,
            params: at(h0 + i, s.len()),
            headers: at(s.len(), s.len()),
            opaque: at(r0, s.len()),
        };
        Some(())
    }

    /// The scheme, without building the view.
    #[inline]
    pub(crate) fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The `Uri` again, borrowing from `base` (the text [`UriSpans::of`] was given).
    #[inline]
    pub(crate) fn view<'a>(&self, base: &'a [u8]) -> Uri<'a> {
        let of = |s: Span| s.of(base);
        Uri {
            raw: of(self.raw),
            scheme: self.scheme,
            scheme_raw: of(self.scheme_raw),
            user: self.user.map(of),
            password: self.password.map(of),
            host_raw: of(self.host_raw),
            host: self.host.map(|h| h.view(base)),
            port: self.port,
            params: of(self.params),
            headers: of(self.headers),
            opaque: of(self.opaque),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Uri<'_> {
        Uri::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn sip_uris() {
        let u = p("sip:vivekg@chair-dnrc.example.com;unknownparam");
        assert_eq!(u.scheme(), Scheme::Sip);
        assert_eq!(u.user(), Some(&b"vivekg"[..]));
        assert_eq!(u.host(), Some(Host::Domain(b"chair-dnrc.example.com")));
        assert_eq!(u.port(), None);
        assert_eq!(u.port_or_default(), 5060);
        assert_eq!(u.param("unknownparam"), Some(None));

        let u = p("sip:services.example.com;lr;unknownwith=value;unknown-no-value");
        assert_eq!(u.user(), None);
        assert!(u.is_loose_router());
        assert_eq!(u.param("unknownwith"), Some(Some(&b"value"[..])));

        let u = p("SIP:192.0.2.4:5070;transport=TCP");
        assert_eq!(u.host(), Some(Host::V4(Ipv4Addr::new(192, 0, 2, 4))));
        assert_eq!(u.port(), Some(5070));
        assert_eq!(u.transport(), Some(Transport::Tcp));

        let u = p("sips:example.com");
        assert_eq!(u.effective_transport(), Transport::Tls);
        assert_eq!(u.port_or_default(), 5061);
    }

    #[test]
    fn escapes_and_odd_users() {
        let u = p("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(u.user(), Some(&b"sips%3Auser%40example.com"[..]));
        let dec: Vec<u8> = percent_decode(u.user().unwrap()).collect();
        assert_eq!(dec, b"sips:user@example.com");
        assert_eq!(u.host(), Some(Host::Domain(b"example.net")));

        let u = p("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user(), Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host(), Some(Host::Domain(b"example.com")));
        assert!(u.params_raw().is_empty());

        let u = p("sip:null-%00-null@example.com");
        assert_eq!(
            percent_decode(u.user().unwrap()).collect::<Vec<_>>(),
            b"null-\0-null"
        );
        assert!(eq_percent_decoded(b"%75se%72", b"user"));
        assert!(Uri::parse(b"sip:a%2@example.com").is_err());
        assert!(Uri::parse(b"sip:a%zz@example.com").is_err());
    }

    #[test]
    fn ipv6_references() {
        let u = p("sip:[2001:db8::10]:5070");
        assert_eq!(u.host(), Some(Host::V6("2001:db8::10".parse().unwrap())));
        assert_eq!(u.port(), Some(5070));
        let u = p("sip:user@[2001:db8::10:5070]");
        assert_eq!(
            u.host(),
            Some(Host::V6("2001:db8::10:5070".parse().unwrap()))
        );
        assert_eq!(u.port(), None);
        assert_eq!(u.host_raw(), b"[2001:db8::10:5070]");
        let u = p("sip:[::ffff:192.0.2.10]");
        assert_eq!(
            u.host(),
            Some(Host::V6("::ffff:192.0.2.10".parse().unwrap()))
        );
        // Without brackets an IPv6 literal is not a host (RFC 5118 §4.2).
        assert!(Uri::parse(b"sip:user@2001:db8::10").is_err());
        assert!(Uri::parse(b"sip:[2001:db8:::192.0.2.1]").is_err());
        assert!(Uri::parse(b"sip:[2001:db8::10").is_err());
        assert!(Uri::parse(b"sip:[::1]:99999").is_err());
    }

    #[test]
    fn tel_and_absolute() {
        let u = p("tel:+1-201-555-0123;phone-context=example.com");
        assert_eq!(u.scheme(), Scheme::Tel);
        assert_eq!(u.user(), Some(&b"+1-201-555-0123"[..]));
        assert_eq!(u.param("phone-context"), Some(Some(&b"example.com"[..])));
        assert_eq!(u.host(), None);
        let u = p("soap.beep://192.0.2.103:3002");
        assert_eq!(u.scheme(), Scheme::Other);
        assert_eq!(u.scheme_raw(), b"soap.beep");
        assert_eq!(u.opaque(), b"//192.0.2.103:3002");
        let u = p("nobodyKnowsThisScheme:totallyopaquecontent");
        assert_eq!(u.scheme(), Scheme::Other);
        assert!(Uri::parse(b"tel:").is_err());
        assert!(Uri::parse(b"tel:+1 555").is_err());
    }

    #[test]
    fn headers_in_uris() {
        let u = p("sip:user@example.com?Route=%3Csip:example.com%3E&subject=x");
        let hs: Vec<_> = u.headers().collect();
        assert_eq!(
            hs,
            vec![
                (&b"Route"[..], &b"%3Csip:example.com%3E"[..]),
                (&b"subject"[..], &b"x"[..])
            ]
        );
    }

    #[test]
    fn invalid_uris() {
        for bad in [
            "",
            "sip",
            "1sip:a",
            "<sip:user@example.com>",
            "sip:user@example.com; lr",
            "sip:",
            "sip:@example.com",
            "sip:user@",
            "sip:user@host:",
            "sip:user@host:65536",
            "sip:user@ex ample.com",
            "sip:user@host;a<b",
            "sip:user@host>x",
            "sip:us\"er@host",
            "sip:a@b@c",
            "sip:a@999.1.1.1",
            "sip:a@.example.com",
            "sip:a@exa..mple.com",
        ] {
            assert!(
                Uri::parse(bad.as_bytes()).is_err(),
                "{bad:?} must not parse"
            );
        }
    }
}
