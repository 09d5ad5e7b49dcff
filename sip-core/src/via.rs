//! `Via` values (RFC 3261 §20.42, RFC 3581 `rport`), with white space allowed around `/`,
//! `:`, `;` and `=` as the grammar permits.
//!
//! ```
//! use sip_core::{Transport, via::Via, uri::Host};
//! let via = Via::parse(b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport;received=192.0.2.9").unwrap();
//! assert_eq!(via.transport(), Some(Transport::Udp));
//! assert_eq!(via.host(), Host::V4("192.0.2.1".parse().unwrap()));
//! assert_eq!(via.port(), Some(5060));
//! assert_eq!(via.branch(), Some(&b"z9hG4bK776"[..]));
//! assert_eq!(via.rport(), Some(None));
//! assert_eq!(via.received_ip(), Some("192.0.2.9".parse().unwrap()));
//! ```

use std::net::IpAddr;

use crate::error::{ValueError, ValueErrorKind as K};
use crate::lex;
use crate::scan::{HeaderParams, is_digit, is_lws, is_token, skip_lws};
use crate::span::Span;
use crate::transport::Transport;
use crate::uri::{Host, HostSpan, parse_host, parse_ipv6};

/// The RFC 3261 magic cookie that starts every compliant branch.
pub const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

/// One Via value (`via-parm`) borrowing from its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    protocol_name: &'a [u8],
    protocol_version: &'a [u8],
    transport_raw: &'a [u8],
    host: Host<'a>,
    host_raw: &'a [u8],
    port: Option<u16>,
    params: &'a [u8],
    params_offset: usize,
    branch: Option<&'a [u8]>,
    received: Option<&'a [u8]>,
    rport: Option<Option<u16>>,
    /// The name of the first `rport` parameter as written (where a value goes).
    rport_name: Option<&'a [u8]>,
    maddr: Option<&'a [u8]>,
    ttl: Option<u8>,
}

/// What a proxy reads of a Via to fill in `received` and `rport` on it (RFC 3261 §18.2.1,
/// RFC 3581 §4): fewer fields than [`Via`], so that [`crate::Message::top_via_nat`] gives
/// them without building the whole view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViaNat<'a> {
    /// The sent-by host's address, when it is an IP literal.
    pub host_ip: Option<IpAddr>,
    /// The `received` parameter as written.
    pub received: Option<&'a [u8]>,
    /// The `rport` parameter, as [`Via::rport`].
    pub rport: Option<Option<u16>>,
    /// The `rport` parameter's name as written, as [`Via::rport_name`].
    pub rport_name: Option<&'a [u8]>,
}

impl ViaNat<'_> {
    /// The `received` address, as [`Via::received_ip`].
    pub fn received_ip(&self) -> Option<IpAddr> {
        self.received.and_then(parse_received)
    }
}

fn token_at(s: &[u8], i: usize) -> Result<(usize, usize), ValueError> {
    let mut j = i;
    while j < s.len() && is_token(s[j]) {
        j += 1;
    }
    if j == i {
        return Err(ValueError::new(K::InvalidProtocol, i));
    }
    Ok((i, j))
}

fn slash_at(s: &[u8], i: usize) -> Result<usize, ValueError> {
    let i = skip_lws(s, i);
    if i >= s.len() || s[i] != b'/' {
        return Err(ValueError::new(K::InvalidProtocol, i));
    }
    Ok(skip_lws(s, i + 1))
}

impl<'a> Via<'a> {
    /// Parses one `via-parm` (one element of a comma-separated Via header value).
    ///
    /// The usual shape (`SIP/2.0/UDP host:port;params` without white space around the
    /// separators) takes a fast path; anything else, and every error, the reference
    /// parser ([`Via::parse_reference`]). Both give the same result for every input the
    /// fast path accepts.
    pub fn parse(s: &'a [u8]) -> Result<Via<'a>, ValueError> {
        match Via::parse_fast(s) {
            Some(v) => Ok(v),
            None => Via::parse_reference(s),
        }
    }

    /// Only the fast path of [`Via::parse`] (`None`: "ask the reference parser"). For
    /// tests and fuzzing, which check that the two agree.
    #[doc(hidden)]
    pub fn parse_fast(s: &'a [u8]) -> Option<Via<'a>> {
        Via::parse_fast_prefix(s)
            .filter(|&(_, end)| end == s.len())
            .map(|(v, _)| v)
    }

    /// The fast path on the first via-parm of a header value: the Via and where it ends
    /// (the end of `s`, or the comma before the next via-parm).
    pub(crate) fn parse_fast_prefix(s: &'a [u8]) -> Option<(Via<'a>, usize)> {
        let mut spans = ViaSpans::EMPTY;
        let end = ViaSpans::parse_fast_prefix(s, 0, &mut spans)?;
        Some((spans.view(s), end))
    }

    /// Only the reference parser of [`Via::parse`], which knows the whole grammar.
    #[doc(hidden)]
    pub fn parse_reference(s: &'a [u8]) -> Result<Via<'a>, ValueError> {
        // `SIP/2.0/` as nearly every Via writes it, or the general grammar (LWS allowed
        // around the slashes, any token).
        let ((n0, n1), (v0, v1), (t0, t1)) = if s.starts_with(b"SIP/2.0/") {
            ((0, 3), (4, 7), token_at(s, 8)?)
        } else {
            let i = skip_lws(s, 0);
            let n = token_at(s, i)?;
            let v = token_at(s, slash_at(s, n.1)?)?;
            let t = token_at(s, slash_at(s, v.1)?)?;
            (n, v, t)
        };
        let mut i = t1;
        if i >= s.len() || !is_lws(s[i]) {
            return Err(ValueError::new(K::InvalidProtocol, i));
        }
        i = skip_lws(s, i);
        let (host, hlen) = parse_host(&s[i..], i)?;
        let host_raw = &s[i..i + hlen];
        i += hlen;
        let mut port = None;
        let j = skip_lws(s, i);
        if j < s.len() && s[j] == b':' {
            let p0 = skip_lws(s, j + 1);
            let mut p1 = p0;
            while p1 < s.len() && is_digit(s[p1]) {
                p1 += 1;
            }
            let digits = &s[p0..p1];
            if digits.is_empty() || digits.len() > 5 {
                return Err(ValueError::new(K::InvalidPort, p0));
            }
            let v = digits
                .iter()
                .fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
            port = Some(u16::try_from(v).map_err(|_| ValueError::new(K::InvalidPort, p0))?);
            i = p1;
        }
        let params = &s[i..];
        let mut via = Via {
            protocol_name: &s[n0..n1],
            protocol_version: &s[v0..v1],
            transport_raw: &s[t0..t1],
            host,
            host_raw,
            port,
            params,
            params_offset: i,
            branch: None,
            received: None,
            rport: None,
            rport_name: None,
            maddr: None,
            ttl: None,
        };
        for p in HeaderParams::new(params, i) {
            let p = p?;
            let bad = || ValueError::new(K::InvalidParamValue, i);
            match p.name.len() {
                6 if p.is("branch") => {
                    let v = p.value.ok_or_else(bad)?;
                    if !v.iter().all(|&b| is_token(b)) {
                        return Err(bad());
                    }
                    via.branch.get_or_insert(v);
                }
                8 if p.is("received") => {
                    let v = p.value.ok_or_else(bad)?;
                    if parse_received(v).is_none() {
                        return Err(bad());
                    }
                    via.received.get_or_insert(v);
                }
                5 if p.is("rport") => {
                    let v = match p.value {
                        None => None,
                        Some(v) => {
                            if v.is_empty() || v.len() > 5 || !v.iter().all(|&b| is_digit(b)) {
                                return Err(bad());
                            }
                            let n = v.iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
                            Some(u16::try_from(n).map_err(|_| bad())?)
                        }
                    };
                    if via.rport.is_none() {
                        via.rport = Some(v);
                        via.rport_name = Some(p.name);
                    }
                }
                5 if p.is("maddr") => {
                    let v = p.value.ok_or_else(bad)?;
                    let (_, n) = parse_host(v, 0).map_err(|_| bad())?;
                    if n != v.len() {
                        return Err(bad());
                    }
                    via.maddr.get_or_insert(v);
                }
                3 if p.is("ttl") => {
                    let v = p.value.ok_or_else(bad)?;
                    let n = crate::scan::parse_u32(v, 255).ok_or_else(bad)?;
                    via.ttl.get_or_insert(n as u8);
                }
                _ => {}
            }
        }
        Ok(via)
    }

    /// `SIP` in `SIP/2.0/UDP`.
    #[inline]
    pub fn protocol_name(&self) -> &'a [u8] {
        self.protocol_name
    }

    /// `2.0` in `SIP/2.0/UDP`.
    #[inline]
    pub fn protocol_version(&self) -> &'a [u8] {
        self.protocol_version
    }

    /// The transport token as written (`UDP`, `TCP`, `UNKNOWN`, ...).
    #[inline]
    pub fn transport_raw(&self) -> &'a [u8] {
        self.transport_raw
    }

    /// The transport, when it is one sip-lb knows.
    #[inline]
    pub fn transport(&self) -> Option<Transport> {
        Transport::from_token(self.transport_raw)
    }

    /// The sent-by host.
    #[inline]
    pub fn host(&self) -> Host<'a> {
        self.host
    }

    /// The sent-by host as written (IPv6 with brackets).
    #[inline]
    pub fn host_raw(&self) -> &'a [u8] {
        self.host_raw
    }

    /// The sent-by port, if written.
    #[inline]
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The `branch` parameter.
    #[inline]
    pub fn branch(&self) -> Option<&'a [u8]> {
        self.branch
    }

    /// True when the branch starts with the RFC 3261 magic cookie `z9hG4bK`.
    pub fn has_rfc3261_branch(&self) -> bool {
        // A branch that is only the cookie (RFC 4475 §3.2.1) carries no transaction id.
        self.branch
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter as written.
    #[inline]
    pub fn received(&self) -> Option<&'a [u8]> {
        self.received
    }

    /// The `received` address (IPv6 with or without brackets, RFC 5118 §4.5).
    pub fn received_ip(&self) -> Option<IpAddr> {
        self.received.and_then(parse_received)
    }

    /// The `rport` parameter (RFC 3581): `Some(None)` when present without a value (a
    /// request asking for it), `Some(Some(port))` when filled in.
    #[inline]
    pub fn rport(&self) -> Option<Option<u16>> {
        self.rport
    }

    /// The name of the `rport` parameter that [`Via::rport`] reports, as written: where a
    /// proxy appends `=port` to an `rport` without a value (RFC 3581 §4).
    #[inline]
    pub fn rport_name(&self) -> Option<&'a [u8]> {
        self.rport_name
    }

    /// The fields [`ViaNat`] holds.
    #[inline]
    pub fn nat(&self) -> ViaNat<'a> {
        ViaNat {
            host_ip: self.host.ip(),
            received: self.received,
            rport: self.rport,
            rport_name: self.rport_name,
        }
    }

    /// The `maddr` parameter.
    #[inline]
    pub fn maddr(&self) -> Option<&'a [u8]> {
        self.maddr
    }

    /// The `ttl` parameter.
    #[inline]
    pub fn ttl(&self) -> Option<u8> {
        self.ttl
    }

    /// The raw parameter section (starting with optional LWS and `;`).
    #[inline]
    pub fn params_raw(&self) -> &'a [u8] {
        self.params
    }

    /// Iterates over every parameter.
    pub fn params(&self) -> HeaderParams<'a> {
        HeaderParams::new(self.params, self.params_offset)
    }

    /// The first parameter named `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.params().find(name).ok().flatten()
    }

    /// Where a response to the request carrying this Via goes (RFC 3261 §18.2.2, RFC 3581 §4):
    /// the `received` address (else the sent-by host when it is an IP literal) and the
    /// `rport` value (else the sent-by port, else the transport's default port). `None` when
    /// the host is a domain name without `received` (the caller must resolve it).
    pub fn response_target(&self) -> Option<(IpAddr, u16)> {
        let ip = match self.received_ip() {
            Some(ip) => ip,
            None => self.host.ip()?,
        };
        let default = self.transport().map_or(5060, Transport::default_port);
        let port = match self.rport {
            Some(Some(p)) => p,
            _ => self.port.unwrap_or(default),
        };
        Some((ip, port))
    }
}

pub(crate) fn parse_received(v: &[u8]) -> Option<IpAddr> {
    if v.first() == Some(&b'[') && v.last() == Some(&b']') {
        return parse_ipv6(&v[1..v.len() - 1]).map(IpAddr::V6);
    }
    if let Some(a) = lex::ipv4(v) {
        return Some(IpAddr::V4(a));
    }
    parse_ipv6(v).map(IpAddr::V6)
}

/// A [`Via`] kept as positions in the text it was parsed from, so that a parsed
/// [`Message`](crate::Message) holds its top Via without borrowing from itself and hands
/// it out again without a second parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ViaSpans {
    /// Where the parameters start in the parsed text (for [`HeaderParams`]' offsets).
    params_offset: u32,
    protocol_name: Span,
    protocol_version: Span,
    transport_raw: Span,
    host: HostSpan,
    host_raw: Span,
    port: Option<u16>,
    params: Span,
    branch: Option<Span>,
    received: Option<Span>,
    rport: Option<Option<u16>>,
    rport_name: Option<Span>,
    maddr: Option<Span>,
    ttl: Option<u8>,
}

impl Default for ViaSpans {
    /// [`ViaSpans::EMPTY`].
    fn default() -> ViaSpans {
        ViaSpans::EMPTY
    }
}

/// `;branch=` as one little-endian word, and the bits that fold its letters' case.
const BRANCH_WORD: u64 = u64::from_le_bytes(*b";branch=");
const BRANCH_FOLD: u64 = 0x0020_2020_2020_2000;

impl ViaSpans {
    /// No Via: every span empty, the host `0.0.0.0` (storage for
    /// [`ViaSpans::parse_fast_prefix`], and what a message without a Via holds).
    pub(crate) const EMPTY: ViaSpans = ViaSpans {
        params_offset: 0,
        protocol_name: Span::new(0, 0),
        protocol_version: Span::new(0, 0),
        transport_raw: Span::new(0, 0),
        host: HostSpan::V4(std::net::Ipv4Addr::UNSPECIFIED),
        host_raw: Span::new(0, 0),
        port: None,
        params: Span::new(0, 0),
        branch: None,
        received: None,
        rport: None,
        rport_name: None,
        maddr: None,
        ttl: None,
    };

    /// The positions of `via`, whose slices all lie in `base`.
    #[inline(always)]
    pub(crate) fn of(via: &Via<'_>, base: &[u8]) -> ViaSpans {
        let at = |sub: &[u8]| Span::within(base, sub);
        let params = at(via.params);
        ViaSpans {
            params_offset: via.params_offset as u32,
            protocol_name: at(via.protocol_name),
            protocol_version: at(via.protocol_version),
            transport_raw: at(via.transport_raw),
            host: HostSpan::of(via.host, base),
            host_raw: at(via.host_raw),
            port: via.port,
            params,
            branch: via.branch.map(at),
            received: via.received.map(at),
            rport: via.rport,
            rport_name: via.rport_name.map(at),
            maddr: via.maddr.map(at),
            ttl: via.ttl,
        }
    }

    /// [`Via::parse_fast_prefix`] on `d[v0..]`, written into `via` (which must be
    /// [`ViaSpans::EMPTY`]) as positions in `d`
    /// (the parse pass of `Message` keeps the top Via so, in place, without building a
    /// `Via` first); returns the end, relative to `v0`. On `None`, `via` holds whatever
    /// was read so far.
    #[inline]
    pub(crate) fn parse_fast_prefix(d: &[u8], v0: usize, via: &mut ViaSpans) -> Option<usize> {
        debug_assert_eq!(*via, ViaSpans::EMPTY);
        let s = d.get(v0..)?;
        let at = |a: usize, b: usize| Span::new(v0 + a, v0 + b);
        if !s.starts_with(b"SIP/2.0/") {
            return None;
        }
        // (A three-letter transport, `UDP`, `TCP`, `TLS`, by one test of its bytes.)
        let t = if s.get(11) == Some(&b' ')
            && lex::CLASS[usize::from(s[8])]
                & lex::CLASS[usize::from(s[9])]
                & lex::CLASS[usize::from(s[10])]
                & lex::TOKEN
                != 0
        {
            11
        } else {
            lex::run(s, 8, lex::TOKEN)
        };
        if t == 8 || s.get(t) != Some(&b' ') {
            return None;
        }
        let h0 = t + 1;
        let (host, hlen) = lex::host(s.get(h0..)?)?;
        let mut i = h0 + hlen;
        let mut port = None;
        if s.get(i) == Some(&b':') {
            let (p, p1) = lex::port_at(s, i + 1)?;
            port = Some(p);
            i = p1;
        }
        let params_offset = i;
        // (The parameters' fields are `None` in `EMPTY`, which `via` is: only the others
        // are written.)
        via.params_offset = params_offset as u32;
        via.protocol_name = at(0, 3);
        via.protocol_version = at(4, 7);
        via.transport_raw = at(8, t);
        via.host = HostSpan::of(host, d);
        via.host_raw = at(h0, h0 + hlen);
        via.port = port;
        while i < s.len() {
            if s[i] == b',' {
                break;
            }
            if s[i] != b';' {
                return None;
            }
            // `;branch=`, the usual first parameter, in one comparison: then what
            // `lex::param` and the `branch` arm below read, without the name's run.
            if lex::word_at_is(s, i, BRANCH_WORD, BRANCH_FOLD, u64::MAX) {
                let v0 = i + 8;
                let t = lex::run_long(s, v0, lex::TOKEN);
                // (An empty value, or one that goes on with a parameter-value byte that is
                // not a token byte, is not a branch `lex::param` reads as one.)
                if t == v0
                    || s.get(t)
                        .is_some_and(|&b| lex::CLASS[b as usize] & lex::PVAL != 0)
                {
                    return None;
                }
                via.branch.get_or_insert(at(v0, t));
                i = t;
                continue;
            }
            // `;rport` (often the last parameter, with no eight bytes after it): what
            // `lex::param` and the `rport` arm below read, the value by `lex::port_at`.
            if let Some(n) = s.get(i + 1..i + 6)
                && lex::eq_lower_word(n, b"rport")
                && s.get(i + 6)
                    .is_none_or(|&b| lex::CLASS[b as usize] & lex::TOKEN == 0)
            {
                let (v, next) = if s.get(i + 6) == Some(&b'=') {
                    let (p, end) = lex::port_at(s, i + 7)?;
                    // (More of a parameter value after the digits is not a port.)
                    if s.get(end)
                        .is_some_and(|&b| lex::CLASS[b as usize] & lex::PVAL != 0)
                    {
                        return None;
                    }
                    (Some(p), end)
                } else {
                    (None, i + 6)
                };
                if via.rport.is_none() {
                    via.rport = Some(v);
                    via.rport_name = Some(at(i + 1, i + 6));
                }
                i = next;
                continue;
            }
            let (name, value, all_token, next) = lex::param(s, i)?;
            let n = &s[name.0..name.1];
            let val = value.map(|r| &s[r.0..r.1]);
            match n.len() {
                6 if lex::eq_lower_word(n, b"branch") => {
                    if !all_token {
                        return None;
                    }
                    let r = value?;
                    via.branch.get_or_insert(at(r.0, r.1));
                }
                8 if lex::eq_lower_word(n, b"received") => {
                    parse_received(val?)?;
                    let r = value?;
                    via.received.get_or_insert(at(r.0, r.1));
                }
                5 if lex::eq_lower_word(n, b"rport") => {
                    let v = match val {
                        None => None,
                        Some(v) => Some(lex::port(v)?),
                    };
                    if via.rport.is_none() {
                        via.rport = Some(v);
                        via.rport_name = Some(at(name.0, name.1));
                    }
                }
                5 if lex::eq_lower_word(n, b"maddr") => return None,
                3 if lex::eq_lower_word(n, b"ttl") => return None,
                _ => {}
            }
            i = next;
        }
        via.params = at(params_offset, i);
        Some(i)
    }

    /// The `Via` again, borrowing from `base` (the text [`ViaSpans::of`] was given).
    #[inline]
    pub(crate) fn view<'a>(&self, base: &'a [u8]) -> Via<'a> {
        let of = |s: Span| s.of(base);
        Via {
            protocol_name: of(self.protocol_name),
            protocol_version: of(self.protocol_version),
            transport_raw: of(self.transport_raw),
            host: self.host.view(base),
            host_raw: of(self.host_raw),
            port: self.port,
            params: of(self.params),
            params_offset: self.params_offset as usize,
            branch: self.branch.map(of),
            received: self.received.map(of),
            rport: self.rport,
            rport_name: self.rport_name.map(of),
            maddr: self.maddr.map(of),
            ttl: self.ttl,
        }
    }

    /// [`Via::nat`] of [`ViaSpans::view`], without the view.
    #[inline]
    pub(crate) fn nat<'a>(&self, base: &'a [u8]) -> ViaNat<'a> {
        let of = |s: Span| s.of(base);
        ViaNat {
            host_ip: match self.host {
                HostSpan::Domain(_) => None,
                HostSpan::V4(a) => Some(IpAddr::V4(a)),
                HostSpan::V6(a) => Some(IpAddr::V6(a)),
            },
            received: self.received.map(of),
            rport: self.rport,
            rport_name: self.rport_name.map(of),
        }
    }

    /// The branch's position.
    #[inline]
    pub(crate) fn branch(&self) -> Option<Span> {
        self.branch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_branch_read_in_one_comparison_is_the_branch_the_reference_reads() {
        for v in [
            "SIP/2.0/UDP h;branch=z9hG4bK1",
            "SIP/2.0/UDP h;BRANCH=z9hG4bK1;rport",
            "SIP/2.0/UDP h;Branch=z9hG4bK1,SIP/2.0/UDP g",
            "SIP/2.0/UDP h;branch=",
            "SIP/2.0/UDP h;branch=;rport",
            "SIP/2.0/UDP h;branch=a:b",
            "SIP/2.0/UDP h;branch=[a]",
            "SIP/2.0/UDP h;branch=a;branch=b",
            "SIP/2.0/UDP h;rport;branch=x",
            "SIP/2.0/UDP h;branchx=y",
            "SIP/2.0/UDP h;branch\x1b=y",
            "SIP/2.0/UDP h;\x1bbranch=y",
            "SIP/2.0/UDP h;branch=z9hG4bK1;rport",
            "SIP/2.0/UDP h;RPort=5060;branch=z9hG4bK1",
            "SIP/2.0/UDP h;rport=;branch=z9hG4bK1",
            "SIP/2.0/UDP h;rport=65536",
            "SIP/2.0/UDP h;rport=123456",
            "SIP/2.0/UDP h;rport=50a",
            "SIP/2.0/UDP h;rport=50:",
            "SIP/2.0/UDP h;rport=5060,SIP/2.0/UDP g",
            "SIP/2.0/UDP h;rportx",
            "SIP/2.0/UDP h;rport;rport=1",
            "SIP/2.0/UDP h;rport=1;rport",
        ] {
            let s = v.as_bytes();
            if let Some((fast, end)) = Via::parse_fast_prefix(s) {
                assert_eq!(
                    end,
                    s.len()
                        .min(s.iter().position(|&b| b == b',').unwrap_or(s.len()))
                );
                if end == s.len() {
                    assert_eq!(Ok(fast), Via::parse_reference(s), "{v}");
                }
            }
        }
        let (v, _) = Via::parse_fast_prefix(b"SIP/2.0/UDP h;BRANCH=z9hG4bK1;rport").unwrap();
        assert_eq!(v.branch(), Some(&b"z9hG4bK1"[..]));
        assert!(Via::parse_fast_prefix(b"SIP/2.0/UDP h;branch=a:b").is_none());
    }

    #[test]
    fn tortuous_whitespace() {
        let v = Via::parse(b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.protocol_name(), b"SIP");
        assert_eq!(v.protocol_version(), b"2.0");
        assert_eq!(v.transport(), Some(Transport::Udp));
        assert_eq!(v.branch(), Some(&b"390skdjuw"[..]));
        assert!(!v.has_rfc3261_branch());

        let v = Via::parse(
            b"SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        )
        .unwrap();
        assert_eq!(v.host(), Host::Domain(b"spindle.example.com"));
        assert_eq!(v.branch(), Some(&b"z9hG4bK9ikj8"[..]));
        assert!(v.has_rfc3261_branch());

        let v = Via::parse(b"SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239")
            .unwrap();
        assert_eq!(v.branch(), Some(&b"z9hG4bK30239"[..]));
        let v = Via::parse(b"SIP/2.0/UDP host : 5070 ;branch=z9hG4bKx").unwrap();
        assert_eq!(v.port(), Some(5070));
    }

    #[test]
    fn ipv6_and_received() {
        let v = Via::parse(
            b"SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111",
        )
        .unwrap();
        assert_eq!(v.host(), Host::V6("2001:db8::9:1".parse().unwrap()));
        assert_eq!(v.received_ip(), Some("2001:db8::9:255".parse().unwrap()));
        let v =
            Via::parse(b"SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3")
                .unwrap();
        assert_eq!(v.received_ip(), Some("2001:db8::9:255".parse().unwrap()));
        assert_eq!(
            v.response_target(),
            Some(("2001:db8::9:255".parse().unwrap(), 5060))
        );
    }

    #[test]
    fn rport_and_response_target() {
        let v = Via::parse(b"SIP/2.0/UDP 10.0.0.1:5062;rport=40000;received=192.0.2.7").unwrap();
        assert_eq!(v.rport(), Some(Some(40000)));
        assert_eq!(
            v.response_target(),
            Some(("192.0.2.7".parse().unwrap(), 40000))
        );
        let v = Via::parse(b"SIP/2.0/TLS example.com;branch=z9hG4bK1").unwrap();
        assert_eq!(v.response_target(), None);
        let v = Via::parse(b"SIP/2.0/TLS 10.1.1.1;branch=z9hG4bK1;ttl=16;maddr=224.2.0.1").unwrap();
        assert_eq!(
            v.response_target(),
            Some(("10.1.1.1".parse().unwrap(), 5061))
        );
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some(&b"224.2.0.1"[..]));
        assert_eq!(v.param("TTL"), Some(Some(&b"16"[..])));
    }

    #[test]
    fn invalid_vias() {
        for bad in [
            &b"SIP/2.0/UDP 192.0.2.15;;,;,,"[..],
            b"SIP/2.0/UDP",
            b"SIP/2.0/UDP192.0.2.1",
            b"SIP/2.0 192.0.2.1",
            b"SIP/2.0/UDP 192.0.2.1:",
            b"SIP/2.0/UDP 192.0.2.1:70000",
            b"SIP/2.0/UDP 192.0.2.1;branch",
            b"SIP/2.0/UDP 192.0.2.1;rport=abc",
            b"SIP/2.0/UDP 192.0.2.1;ttl=300",
            b"SIP/2.0/UDP 192.0.2.1;received=not-an-ip",
            b"SIP/2.0/UDP 192.0.2.1 junk",
            b"",
        ] {
            assert!(
                Via::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
