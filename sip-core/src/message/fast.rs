//! The parser's fast path.
//!
//! It recognises the shapes nearly every message on the wire has (`SIP/2.0` start lines,
//! unfolded `Name: value` lines without odd white space, `SIP/2.0/UDP host:port;params` Vias,
//! `"Name" <uri>;tag=x` addresses, `sip:user@host:port;params` Request-URIs) in tight
//! loops, and answers `None` for anything else: then [`Message::parse_with`] runs the
//! reference parser, which knows the whole grammar and words every error. The fast path
//! never decides that a message is invalid, so every error (and every unusual but valid
//! message) comes from one place.
//!
//! The contract, checked by `tests/fast_path.rs` (generated and mutated messages, the RFC
//! 4475/5118 corpus) and the `parse_message` fuzz target: whenever the fast path returns a
//! message, the reference parser returns exactly the same message.

use super::{Essentials, Framing, Message, ParseOptions, RawHeader, StartLine};
use crate::header::HeaderName;
use crate::lex::{
    CALL_ID, DN_OK, PVAL, Rel, TOKEN, digits_in_word, eq_lower_word, find_byte_or_ctl,
    find_colon_or_lf, find_lf, param, params_go_on, run, run_long, word_at_is,
};
use crate::method::Method;
use crate::scan::{CommaSplit, count_values, is_lws, quoted_end, trim_lws_range};
use crate::span::Span;
use crate::uri::UriSpans;
use crate::via::ViaSpans;

/// Parses `d` if it has the usual shape; `None` means "ask the reference parser".
/// The returned message has an empty buffer; the caller puts the `Bytes` in.
pub(super) fn parse(d: &[u8], opts: &ParseOptions) -> Option<Message> {
    let mut msg = Message::empty();
    parse_into(d, opts, &mut msg).then_some(msg)
}

/// Parses `d` into `msg` (a fresh message with an empty buffer) if it has the usual
/// shape; false means "ask the reference parser" (and `msg` is left half-filled).
pub(super) fn parse_into(d: &[u8], opts: &ParseOptions, msg: &mut Message) -> bool {
    parse_inner(d, opts, msg).is_some()
}

#[inline(always)]
fn parse_inner(d: &[u8], opts: &ParseOptions, msg: &mut Message) -> Option<()> {
    let limits = &opts.limits;
    if d.len() > limits.max_message_size as usize {
        return None;
    }
    let headers_start = start_line(d, opts, &mut msg.start)?;
    msg.headers_start = headers_start as u32;
    let max_headers = limits.max_headers.min(u16::MAX as u32) as usize;
    let max_line = limits.max_line_length as usize;
    // No line is longer than `max_line` in a message that is not (one test, not one a
    // line, in the usual case).
    let lines_fit = d.len() <= max_line;
    let mut pos = headers_start;
    // `msg.headers.len()`, kept here: the table's own length is behind a test of where
    // its storage is (inline or on the heap).
    let mut count = msg.headers.len();
    let body_start = loop {
        let first = *d.get(pos)?;
        // (One comparison for the usual line, which starts with a letter.)
        if first <= b'\r' {
            if first == b'\r' {
                if d.get(pos + 1) != Some(&b'\n') {
                    return None;
                }
                msg.headers_end = pos as u32;
                break pos + 2;
            }
            if first == b'\n' {
                msg.headers_end = pos as u32;
                break pos + 1;
            }
        }
        // (A name `at_line_start` knows is at most fifteen bytes long.)
        let (name, name_len, colon) = match HeaderName::at_line_start(&d[pos..]) {
            Some((name, n)) => (name, n as u16, pos + n),
            None => other_name(d, pos)?,
        };
        let value_from = colon + 1;
        // A line folded onto the next (RFC 3261 §7.3.1: the next starts with SP or HT,
        // which no header name does) is the reference parser's: the next line, taken for
        // a header line of its own, has no name, and the path gives up there.
        let lf = find_lf(d, value_from)?;
        let line_end = lf + 1;
        if (!lines_fit && line_end - pos > max_line) || count >= max_headers {
            return None;
        }
        let (value, v) = trim_value(d, value_from, lf);
        let index = count as u16;
        if name != HeaderName::Other {
            essential(&mut msg.ess, d, name, index, value, v, opts)?;
        }
        msg.headers
            .push(RawHeader::with_name_len(name, pos as u32, name_len, value));
        count += 1;
        pos = line_end;
    };

    if msg.cseq_mismatch(d).is_some() {
        return None;
    }

    let available = d.len() - body_start;
    let body_len = match msg.ess.content_length {
        Some(cl) if cl as usize <= available => cl as usize,
        Some(_) => return None,
        None if opts.framing == Framing::Stream => return None,
        None => available,
    };
    msg.body = Span::new(body_start, body_start + body_len);
    Some(())
}

/// The name of a line [`HeaderName::at_line_start`] did not recognise: `(name, its
/// length as a line keeps it, index of the colon)`.
#[inline(never)]
fn other_name(d: &[u8], pos: usize) -> Option<(HeaderName, u16, usize)> {
    let colon = find_colon_or_lf(d, pos)?;
    if d[colon] != b':' {
        return None;
    }
    let mut name_end = colon;
    while name_end > pos && matches!(d[name_end - 1], b' ' | b'\t') {
        name_end -= 1;
    }
    let raw_name = &d[pos..name_end];
    if raw_name.is_empty() {
        return None;
    }
    // A known name is made of token characters by construction; check the others.
    let name = HeaderName::from_bytes(raw_name);
    if name == HeaderName::Other && run(raw_name, 0, TOKEN) != raw_name.len() {
        return None;
    }
    Some((name, RawHeader::name_len(name_end - pos), colon))
}

/// The value between the colon at `from - 1` and the LF at `lf`, without the white space
/// around it: one space and a CR in the usual case, any LWS otherwise. Its span and its
/// bytes (cut here, where their bounds are known, not again from the span).
#[inline(always)]
fn trim_value(d: &[u8], from: usize, lf: usize) -> (Span, &[u8]) {
    // The usual line, `: value\r\n`: one space, a value that starts and ends with a
    // visible byte, a CR. (`from <= lf`: the LF was searched for from `from`.)
    if let (Some(&f), Some(&c)) = (d.get(from), d.get(lf.wrapping_sub(1))) {
        let a = from + usize::from(f == b' ');
        let b = lf - usize::from(c == b'\r');
        if let Some(v) = d.get(a..b)
            && let (Some(&first), Some(&last)) = (v.first(), v.last())
            && first > b' '
            && last > b' '
        {
            return (Span::new(a, b), v);
        }
    }
    let value = trim_value_slow(d, from, lf);
    (value, value.of(d))
}

/// [`trim_value`] for any line.
#[inline(never)]
fn trim_value_slow(d: &[u8], from: usize, lf: usize) -> Span {
    let (mut a, mut b) = (from, lf);
    if b > a && d[b - 1] == b'\r' {
        b -= 1;
    }
    if a < b && d[a] == b' ' {
        a += 1;
    }
    // (A byte above the space is never white space: one comparison each in the usual case.)
    if a < b && (d[a] <= b' ' || d[b - 1] <= b' ') && (is_lws(d[a]) || is_lws(d[b - 1])) {
        let (x, y) = trim_lws_range(&d[a..b]);
        b = a + y;
        a += x;
    }
    if a >= b {
        // An empty value sits at the end of the line, as the reference parser puts it.
        return Span::new(lf, lf);
    }
    Span::new(a, b)
}

/// `Method SP sip-uri SP SIP/2.0 CRLF` or `SIP/2.0 SP code SP reason CRLF`.
/// Writes it into `start` (in place: it is about a hundred bytes) and returns where the
/// headers start.
fn start_line(d: &[u8], opts: &ParseOptions, start: &mut StartLine) -> Option<usize> {
    let limits = &opts.limits;
    let lf = find_lf(d, 0)?;
    let end = if lf > 0 && d[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    if end > limits.max_line_length as usize {
        return None;
    }
    let line = &d[..end];
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        let code = rest.get(..3)?;
        if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
            return None;
        }
        let code = code.iter().fold(0u16, |a, &b| a * 10 + u16::from(b - b'0'));
        if !(100..=699).contains(&code) {
            return None;
        }
        let r = (8 + 4).min(line.len());
        *start = StartLine::Response {
            code,
            reason: Span::new(r, end),
        };
        return Some(lf + 1);
    }
    let m = run(line, 0, TOKEN);
    if m == 0 || line.get(m) != Some(&b' ') {
        return None;
    }
    let u0 = m + 1;
    // The URI ends at the first space after it, which is the one before the `SIP/2.0`
    // ending the line: `UriSpans::parse_fast` below accepts no space in a URI (so no
    // byte-by-byte search for that space).
    let u1 = line.len().checked_sub(8).filter(|&u1| u1 >= u0)?;
    if &line[u1..] != b" SIP/2.0" {
        return None;
    }
    let uri = &line[u0..u1];
    // A `sip:`/`sips:` URI without headers, as `check_request_uri` wants it.
    if uri.len() > limits.max_uri_length as usize {
        return None;
    }
    *start = StartLine::Request {
        method: Method::from_bytes(&line[..m]),
        method_span: Span::new(0, m),
        uri: Span::new(u0, u1),
        parsed_uri: UriSpans::EMPTY,
    };
    // (The variant just written: the URI is parsed into it in place.)
    let StartLine::Request { parsed_uri, .. } = start else {
        return None;
    };
    UriSpans::parse_fast(&d[..u1], u0, parsed_uri)?;
    Some(lf + 1)
}

/// The proxy-essential fields of one known header (its value at `value`, the bytes `v`),
/// as `Message::locate_essential` records them.
#[inline]
fn essential(
    ess: &mut Essentials,
    d: &[u8],
    name: HeaderName,
    index: u16,
    value: Span,
    v: &[u8],
    opts: &ParseOptions,
) -> Option<()> {
    let limits = &opts.limits;
    let vstart = value.start as usize;
    match name {
        HeaderName::Via => {
            let n = if ess.top_via.is_none() {
                let end = ViaSpans::parse_fast_prefix(
                    &d[..vstart + v.len()],
                    vstart,
                    &mut ess.top_via_parsed,
                )?;
                let n = 1 + rest_count(v, end)?;
                ess.top_via = Some((index, Span::new(vstart, vstart + end)));
                n
            } else {
                count_values(v)
            };
            let total = ess.via_count as usize + n;
            if total > limits.max_via as usize {
                return None;
            }
            ess.via_count = total as u16;
        }
        HeaderName::CallId => {
            if ess.call_id.is_some() || v.is_empty() || run_long(v, 0, CALL_ID) != v.len() {
                return None;
            }
            ess.call_id = Some(value);
        }
        HeaderName::CSeq => {
            if ess.cseq.is_some() {
                return None;
            }
            let (number, method, m0) = cseq(v)?;
            ess.cseq = Some((number, method, Span::new(vstart + m0, vstart + v.len())));
        }
        HeaderName::From | HeaderName::To => {
            let slot = if name == HeaderName::From {
                &mut ess.from
            } else {
                &mut ess.to
            };
            if slot.is_some() {
                return None;
            }
            let (tag, end) = name_addr(v)?;
            if end != v.len() {
                return None;
            }
            *slot = Some((index, tag.map(|t| t.shift(vstart))));
        }
        HeaderName::MaxForwards => {
            if ess.max_forwards.is_some() {
                return None;
            }
            ess.max_forwards = Some((index, whole_number(v, 255)? as u8));
        }
        HeaderName::ContentLength => {
            if ess.content_length.is_some() {
                return None;
            }
            ess.content_length = Some(whole_number(v, limits.max_message_size)?);
        }
        HeaderName::Route => {
            let n = if ess.top_route.is_none() {
                let (_, end) = name_addr(v)?;
                let n = 1 + rest_count(v, end)?;
                ess.top_route = Some((index, Span::new(vstart, vstart + end)));
                n
            } else {
                count_values(v)
            };
            let total = ess.route_count as usize + n;
            if total > limits.max_route as usize {
                return None;
            }
            ess.route_count = total as u16;
        }
        _ => {}
    }
    Some(())
}

/// `number SP method` as `CSeq::parse` reads it: the number (at most 2^31 - 1), the method
/// and where the method starts.
#[inline]
fn cseq(v: &[u8]) -> Option<(u32, Method, usize)> {
    let (number, sp) = number_prefix(v)?;
    if v.get(sp) != Some(&b' ') || number > (1u64 << 31) - 1 {
        return None;
    }
    let m = &v[sp + 1..];
    // (A method `from_bytes` knows is made of token characters: only an extension's are
    // searched.)
    let method = Method::from_bytes(m);
    if method == Method::Extension && (m.is_empty() || run(m, 0, TOKEN) != m.len()) {
        return None;
    }
    Some((number as u32, method, sp + 1))
}

/// The digits at the start of `v`, at most ten (more, which only leading zeros allow
/// under 2^32, are the reference parser's): their value and how many there are; `None`
/// when `v` does not start with a digit. Fewer than eight digits followed by more bytes
/// (a CSeq number) are read as one word; otherwise one pass, no overflow test per digit.
#[inline(always)]
fn number_prefix(v: &[u8]) -> Option<(u64, usize)> {
    if let Some((n, len)) = digits_in_word(v, 0) {
        return (len > 0).then_some((n, len));
    }
    let mut n = 0u64;
    let mut i = 0;
    while let Some(&b) = v.get(i) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        if i == 10 {
            return None;
        }
        n = n * 10 + u64::from(digit);
        i += 1;
    }
    (i > 0).then_some((n, i))
}

/// `v` as a number of at most `max`, as `parse_u32` reads it, for the usual numbers (up
/// to ten digits).
#[inline(always)]
fn whole_number(v: &[u8], max: u32) -> Option<u32> {
    let (n, len) = number_prefix(v)?;
    (len == v.len() && n <= u64::from(max)).then_some(n as u32)
}

/// The number of list elements after the first one, which ended at `end` (the end of
/// `v` or a comma): what `CommaSplit` would still yield.
#[inline]
fn rest_count(v: &[u8], end: usize) -> Option<usize> {
    if end == v.len() {
        return Some(0);
    }
    // The first element is followed by its comma directly (no white space before it).
    if v[end] != b',' {
        return None;
    }
    Some(CommaSplit::new(&v[end + 1..]).count())
}

/// `;tag=` as the low five bytes of a little-endian word, the bits that fold its letters'
/// case, and the bytes compared.
const TAG_WORD: u64 = u64::from_le_bytes(*b";tag=\0\0\0");
const TAG_FOLD: u64 = 0x0000_0000_2020_2000;
const TAG_KEEP: u64 = 0x0000_00ff_ffff_ffff;

/// A name-addr or addr-spec with header parameters (From, To, a Route element). Returns
/// the first `tag` parameter's value and where the element ends (the end of `s` or a
/// comma).
fn name_addr(s: &[u8]) -> Option<(Option<Rel>, usize)> {
    let first = *s.first()?;
    let mut i = 0;
    if first == b'"' {
        let e = quoted_end(s, 0)?;
        i = e;
        while i < s.len() && is_lws(s[i]) {
            i += 1;
        }
        if s.get(i) != Some(&b'<') {
            return None;
        }
    } else if first != b'<' {
        // A display name is display-name bytes up to `<`, found in one pass. Where the
        // pass stops anywhere else, the value is read as an addr-spec, whose scan below
        // gives up at a `<` before any `;`: an unquoted display name holding a byte it may
        // not hold goes to the reference parser that way.
        let k = run(s, 0, DN_OK);
        if s.get(k) == Some(&b'<') {
            i = k;
        }
    }
    let params_from = if s.get(i) == Some(&b'<') {
        // The URI runs to '>' and holds no white space (nor, here, any control).
        let close = find_byte_or_ctl(s, i + 1, b'>')?;
        if s[close] != b'>' || close == i + 1 {
            return None;
        }
        close + 1
    } else {
        // addr-spec: up to the first ';' (a URI with '?', ',' or ';' needs brackets).
        let mut j = i;
        while j < s.len() && s[j] != b';' {
            if s[j] <= b' ' || matches!(s[j], b'?' | b',' | b'<' | b'>' | b'"') {
                return None;
            }
            j += 1;
        }
        j
    };
    let mut i = params_from;
    let mut tag = None;
    let mut seen = false;
    let mut go_on = params_go_on(s, i)?;
    while go_on {
        // `;tag=`, the usual parameter, in one comparison: then what `param` and the test
        // below read, without the name's run.
        if word_at_is(s, i, TAG_WORD, TAG_FOLD, TAG_KEEP) {
            let v0 = i + 5;
            let k = run(s, run_long(s, v0, TOKEN), PVAL);
            if k == v0 {
                return None;
            }
            if !seen {
                tag = Some(Rel(v0, k));
                seen = true;
            }
            i = k;
            go_on = params_go_on(s, i)?;
            continue;
        }
        let (name, value, _, next) = param(s, i)?;
        if !seen && eq_lower_word(&s[name.0..name.1], b"tag") {
            tag = value;
            seen = true;
        }
        i = next;
        go_on = params_go_on(s, i)?;
    }
    Some((tag, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tag's value and where the element ends.
    type Read<'a> = (Option<&'a str>, usize);

    /// What the fast path reads of `s`, or `None` when the reference parser must judge it.
    fn read(s: &str) -> Option<Read<'_>> {
        let (tag, end) = name_addr(s.as_bytes())?;
        Some((tag.map(|Rel(a, b)| &s[a..b]), end))
    }

    #[test]
    fn a_number_read_as_a_word_is_the_number_read_digit_by_digit() {
        let by_digits = |v: &[u8]| {
            let len = v.iter().take_while(|b| b.is_ascii_digit()).count();
            if len == 0 || len > 10 {
                return None;
            }
            Some((
                v[..len]
                    .iter()
                    .fold(0u64, |n, &b| n * 10 + u64::from(b - b'0')),
                len,
            ))
        };
        let ends = [
            b' ',
            b'/',
            b':',
            b'a',
            0,
            0x7f,
            0x80,
            0xb0,
            0xb9,
            0xc0,
            0xff,
            b'0' - 1,
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for len in 0..=12 {
            for &end in &ends {
                for tail in 0..=9 {
                    for _ in 0..200 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let mut v: Vec<u8> = (0..len)
                            .map(|k| b'0' + ((x >> (k * 4)) % 10) as u8)
                            .collect();
                        if x.is_multiple_of(7) && len > 0 {
                            v[0] = b'0';
                        }
                        v.push(end);
                        v.extend((0..tail).map(|k| (x >> (k * 5)) as u8));
                        assert_eq!(number_prefix(&v), by_digits(&v), "{v:?}");
                        assert_eq!(number_prefix(&v[..len]), by_digits(&v[..len]), "{v:?}");
                    }
                }
            }
        }
        assert_eq!(number_prefix(b"9999999 INVITE"), Some((9_999_999, 7)));
        assert_eq!(number_prefix(b"0000001 INVITE"), Some((1, 7)));
    }

    #[test]
    fn a_name_addr_is_read_by_its_usual_shapes_and_left_to_the_reference_otherwise() {
        let table: &[(&str, Option<Read>)] = &[
            ("Alice <sip:a@b>;tag=1", Some((Some("1"), 21))),
            ("Alice Liddell <sip:a@b>", Some((None, 23))),
            ("\"Alice\" <sip:a@b>;tag=x", Some((Some("x"), 23))),
            ("<sip:a@b>;tag=2, <sip:c@d>", Some((Some("2"), 15))),
            ("sip:a@b;tag=3", Some((Some("3"), 13))),
            // `;tag=` in any case, a tag with parameter-value bytes, the first of two.
            ("<sip:a@b>;TAG=4x", Some((Some("4x"), 16))),
            ("<sip:a@b>;Tag=[1:2]", Some((Some("[1:2]"), 19))),
            ("<sip:a@b>;tag=5;tag=6", Some((Some("5"), 21))),
            ("<sip:a@b>;x=1;tag=7", Some((Some("7"), 19))),
            ("<sip:a@b>;tag=;x=1", None),
            ("<sip:a@b>;tagx=1", Some((None, 16))),
            // A display name with a byte it may not hold: `@`, `:`, `/` before `<`.
            ("Al@ce <sip:a@b>;tag=1", None),
            ("Alice:x <sip:a@b>", None),
            ("A/B <sip:a@b>", None),
            // An addr-spec that holds a space, or a bracket without a display name.
            ("sip:a@b x;tag=1", None),
            ("sip:a@b>;tag=1", None),
        ];
        for &(value, want) in table {
            assert_eq!(read(value), want, "{value:?}");
        }
    }
}
