//! Byte-level lexing shared by the message parser and the typed views.
//!
//! Everything here works on `&[u8]` slices of one message and never allocates. Inside a
//! header value, CR and LF can only appear as part of a folded (continuation) line, so they
//! count as linear white space (LWS) here, like SP and HT.

use crate::error::{ValueError, ValueErrorKind};

/// Byte class bits.
const TOKEN: u8 = 1; // RFC 3261 `token` characters
const LWS: u8 = 2; // SP, HT, CR, LF
const DIGIT: u8 = 4;
const ALPHA: u8 = 8;
const WORD: u8 = 16; // RFC 3261 `word` characters (Call-ID)
const HOST: u8 = 32; // hostname characters (lenient: also `_`)

const fn build_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let mut v = 0;
        if b.is_ascii_alphanumeric() {
            v |= TOKEN | WORD | HOST;
        }
        if b.is_ascii_digit() {
            v |= DIGIT;
        }
        if b.is_ascii_alphabetic() {
            v |= ALPHA;
        }
        match b {
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~' => {
                v |= TOKEN | WORD
            }
            _ => {}
        }
        match b {
            b'(' | b')' | b'<' | b'>' | b':' | b'\\' | b'"' | b'/' | b'[' | b']' | b'?' | b'{'
            | b'}' => v |= WORD,
            _ => {}
        }
        match b {
            b'-' | b'.' | b'_' => v |= HOST,
            _ => {}
        }
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => v |= LWS,
            _ => {}
        }
        t[c] = v;
        c += 1;
    }
    t
}

static CLASSES: [u8; 256] = build_classes();

/// True for an RFC 3261 `token` character.
#[inline]
pub fn is_token(b: u8) -> bool {
    CLASSES[b as usize] & TOKEN != 0
}

/// True for SP, HT, CR or LF (white space inside a possibly folded header value).
#[inline]
pub fn is_lws(b: u8) -> bool {
    CLASSES[b as usize] & LWS != 0
}

/// True for an ASCII digit.
#[inline]
pub fn is_digit(b: u8) -> bool {
    CLASSES[b as usize] & DIGIT != 0
}

/// True for an ASCII letter.
#[inline]
pub fn is_alpha(b: u8) -> bool {
    CLASSES[b as usize] & ALPHA != 0
}

/// True for an RFC 3261 `word` character (the characters of a Call-ID).
#[inline]
pub fn is_word(b: u8) -> bool {
    CLASSES[b as usize] & WORD != 0
}

/// True for a character of a host name (letters, digits, `-`, `.`, and leniently `_`).
#[inline]
pub fn is_host_char(b: u8) -> bool {
    CLASSES[b as usize] & HOST != 0
}

/// True when every byte is a `token` character and there is at least one.
#[inline]
pub fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

/// Index of the first byte at or after `i` that is not LWS (or `s.len()`).
#[inline]
pub fn skip_lws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_lws(s[i]) {
        i += 1;
    }
    i
}

/// The slice without leading and trailing LWS.
#[inline]
pub fn trim_lws(s: &[u8]) -> &[u8] {
    let mut a = 0;
    let mut b = s.len();
    while a < b && is_lws(s[a]) {
        a += 1;
    }
    while b > a && is_lws(s[b - 1]) {
        b -= 1;
    }
    &s[a..b]
}

/// Offsets `(start, end)` of `s` without leading and trailing LWS, relative to `s`.
#[inline]
pub fn trim_lws_range(s: &[u8]) -> (usize, usize) {
    let mut a = 0;
    let mut b = s.len();
    while a < b && is_lws(s[a]) {
        a += 1;
    }
    while b > a && is_lws(s[b - 1]) {
        b -= 1;
    }
    (a, b)
}

/// Index just past the closing quote of the quoted string that opens at `s[i] == b'"'`,
/// honouring `\` escapes (RFC 3261 `quoted-pair`), or `None` when it is not terminated.
#[inline]
pub fn quoted_end(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    None
}

/// The content of a quoted string without its quotes, or the slice itself when it is not
/// quoted. Escapes (`\"`) are left in place; see [`unescape_quoted`].
#[inline]
pub fn unquote(s: &[u8]) -> &[u8] {
    if s.len() >= 2 && s[0] == b'"' && s[s.len() - 1] == b'"' {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// Iterates over the bytes of a quoted string's content with `quoted-pair` escapes resolved.
pub fn unescape_quoted(content: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    core::iter::from_fn(move || {
        let b = *content.get(i)?;
        if b == b'\\' && i + 1 < content.len() {
            i += 2;
            Some(content[i - 1])
        } else {
            i += 1;
            Some(b)
        }
    })
}

/// Splits a header value into its comma-separated elements (RFC 3261 §7.3.1), where a comma
/// inside a quoted string or inside `<...>` does not split. Yields each element trimmed of
/// LWS, together with its offset in the input; an empty element (as in `a,,b`) is yielded as
/// an empty slice so that callers can reject it. An unterminated quote or `<` makes the
/// rest of the input one element (the typed view parsing it reports the error).
#[derive(Clone, Debug)]
pub struct CommaSplit<'a> {
    s: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> CommaSplit<'a> {
    /// Splits `s`.
    pub fn new(s: &'a [u8]) -> Self {
        CommaSplit {
            s,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for CommaSplit<'a> {
    /// `(offset of the trimmed element in the input, trimmed element)`
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let s = self.s;
        let start = self.pos;
        let mut i = start;
        let end;
        loop {
            match memchr::memchr3(b',', b'"', b'<', &s[i..]) {
                None => {
                    end = s.len();
                    self.done = true;
                    break;
                }
                Some(k) => {
                    let j = i + k;
                    match s[j] {
                        b',' => {
                            end = j;
                            self.pos = j + 1;
                            break;
                        }
                        b'"' => match quoted_end(s, j) {
                            Some(e) => i = e,
                            None => {
                                end = s.len();
                                self.done = true;
                                break;
                            }
                        },
                        _ => match memchr::memchr(b'>', &s[j..]) {
                            Some(e) => i = j + e + 1,
                            None => {
                                end = s.len();
                                self.done = true;
                                break;
                            }
                        },
                    }
                }
            }
        }
        let (a, b) = trim_lws_range(&s[start..end]);
        Some((start + a, &s[start + a..start + b]))
    }
}

/// Number of comma-separated elements in a header value (see [`CommaSplit`]).
#[inline]
pub fn count_values(s: &[u8]) -> usize {
    // Fast path: no quote, bracket or comma at all.
    if memchr::memchr3(b',', b'"', b'<', s).is_none() {
        return 1;
    }
    CommaSplit::new(s).count()
}

/// One `generic-param` of a header (`name [= value]`). The value is raw: a token, a host,
/// or a quoted string including its quotes (see [`unquote`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// The parameter name as written.
    pub name: &'a [u8],
    /// The value as written, if there is an `=`.
    pub value: Option<&'a [u8]>,
}

impl<'a> Param<'a> {
    /// True when the name equals `name` ignoring ASCII case.
    #[inline]
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// Parses the header parameters `*( SEMI generic-param )` of a header value, with LWS
/// allowed around `;` and `=` (as in `; tag = 1918`). `s` starts at the first `;` (or is
/// empty). Stops at the end of the input; anything that is not a parameter is an error.
#[derive(Clone, Debug)]
pub struct HeaderParams<'a> {
    s: &'a [u8],
    pos: usize,
    base: usize,
    failed: bool,
}

impl<'a> HeaderParams<'a> {
    /// Parses parameters from `s`, reporting error offsets relative to `base + offset in s`.
    pub fn new(s: &'a [u8], base: usize) -> Self {
        HeaderParams {
            s,
            pos: 0,
            base,
            failed: false,
        }
    }

    fn fail(&mut self, at: usize, kind: ValueErrorKind) -> Option<Result<Param<'a>, ValueError>> {
        self.failed = true;
        Some(Err(ValueError::new(kind, self.base + at)))
    }

    /// Finds the first parameter named `name` (case-insensitive). `Ok(None)` when absent,
    /// `Ok(Some(None))` when present without a value.
    pub fn find(self, name: &str) -> Result<Option<Option<&'a [u8]>>, ValueError> {
        for p in self {
            let p = p?;
            if p.is(name) {
                return Ok(Some(p.value));
            }
        }
        Ok(None)
    }

    /// Checks the whole parameter list for syntax errors.
    pub fn validate(self) -> Result<(), ValueError> {
        for p in self {
            p?;
        }
        Ok(())
    }
}

impl<'a> Iterator for HeaderParams<'a> {
    type Item = Result<Param<'a>, ValueError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let s = self.s;
        let mut i = skip_lws(s, self.pos);
        if i >= s.len() {
            return None;
        }
        if s[i] != b';' {
            return self.fail(i, ValueErrorKind::ExpectedSemicolon);
        }
        i = skip_lws(s, i + 1);
        let name_start = i;
        while i < s.len() && is_token(s[i]) {
            i += 1;
        }
        if i == name_start {
            return self.fail(i, ValueErrorKind::EmptyParam);
        }
        let name = &s[name_start..i];
        let after_name = i;
        i = skip_lws(s, i);
        if i < s.len() && s[i] == b'=' {
            i = skip_lws(s, i + 1);
            let vstart = i;
            if i < s.len() && s[i] == b'"' {
                match quoted_end(s, i) {
                    Some(e) => i = e,
                    None => return self.fail(i, ValueErrorKind::UnterminatedQuote),
                }
            } else {
                // token, host (including IPv6 references `[..]`), or gen-value characters
                while i < s.len() && (is_token(s[i]) || matches!(s[i], b'[' | b']' | b':')) {
                    i += 1;
                }
            }
            if i == vstart {
                return self.fail(i, ValueErrorKind::EmptyParamValue);
            }
            self.pos = i;
            Some(Ok(Param {
                name,
                value: Some(&s[vstart..i]),
            }))
        } else {
            self.pos = after_name;
            Some(Ok(Param { name, value: None }))
        }
    }
}

/// Parses an unsigned decimal number of at most `max`, with no sign and no white space.
/// Leading zeros are allowed (`0068`). Never overflows.
#[inline]
pub fn parse_u32(s: &[u8], max: u32) -> Option<u32> {
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !is_digit(b) {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
        if v > u64::from(max) {
            return None;
        }
    }
    Some(v as u32)
}

/// Position of the first byte of `b` that is one of `set`, eight bytes per step: a byte
/// equal to `c` is a zero byte of `word ^ c…c`, and `(x - 0x01…01) & !x & 0x80…80`
/// marks zero bytes exactly up to the first one (a borrow can only mark bytes above it),
/// so the lowest mark is the answer. For the short runs a proxy cuts on every message
/// (a sent-by at its `;`, a URI's user part at its `@`), where it beats a byte loop and
/// setting up a vectorised search.
///
/// ```
/// assert_eq!(sip_core::scan::find_any(b"SIP/2.0/UDP h:5060;branch=x", [b';']), Some(18));
/// assert_eq!(sip_core::scan::find_any(b"user@host", [b':', b'@']), Some(4));
/// assert_eq!(sip_core::scan::find_any(b"host", [b';']), None);
/// ```
#[inline]
pub fn find_any<const N: usize>(b: &[u8], set: [u8; N]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let mut marks = 0;
        for c in set {
            let x = w ^ (LO * u64::from(c));
            marks |= x.wrapping_sub(LO) & !x & HI;
        }
        if marks != 0 {
            return Some(at + (marks.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|c| set.contains(c))
        .map(|p| at + p)
}

/// Index of the first occurrence of `needle` (ASCII case-insensitive) in `hay`.
pub fn find_ignore_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    if hay.len() < needle.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_any_finds_the_first_byte_as_a_plain_search_does() {
        // Every length up to three words, the byte at every place (and again later, and
        // not at all), among neighbours that differ from it by one bit or the high bit.
        let plain = |b: &[u8], set: &[u8]| b.iter().position(|c| set.contains(c));
        for len in 0..=24 {
            for fill in [b'a', b':', b';' ^ 1, b';' ^ 0x80, b'@' ^ 0x80, 0xff, 0] {
                let mut s = vec![fill; len];
                for i in 0..len {
                    for j in i..len {
                        for (x, y) in [(b';', b';'), (b'@', b';'), (b'?', b':')] {
                            s[i] = x;
                            s[j] = y;
                            assert_eq!(find_any(&s, [b';']), plain(&s, b";"), "{s:?}");
                            assert_eq!(find_any(&s, [b'@']), plain(&s, b"@"), "{s:?}");
                            let set = [b':', b';', b'?'];
                            assert_eq!(find_any(&s, set), plain(&s, &set), "{s:?}");
                            s[i] = fill;
                            s[j] = fill;
                        }
                    }
                }
                assert_eq!(find_any(&s, [b';']), plain(&s, b";"));
            }
        }
    }

    fn split(s: &str) -> Vec<&str> {
        CommaSplit::new(s.as_bytes())
            .map(|(_, v)| core::str::from_utf8(v).unwrap())
            .collect()
    }

    #[test]
    fn comma_split_respects_quotes_and_brackets() {
        assert_eq!(split("a, b ,c"), vec!["a", "b", "c"]);
        assert_eq!(
            split("\"Bell, Alexander\" <sip:a@b>, <sip:c,d@e>;x=1"),
            vec!["\"Bell, Alexander\" <sip:a@b>", "<sip:c,d@e>;x=1"]
        );
        assert_eq!(split("a,,b"), vec!["a", "", "b"]);
        assert_eq!(
            split("\"esc \\\" , still\" , x"),
            vec!["\"esc \\\" , still\"", "x"]
        );
        assert_eq!(split("\"open, never closed"), vec!["\"open, never closed"]);
        assert_eq!(split("<sip:open, x"), vec!["<sip:open, x"]);
        assert_eq!(count_values(b"SIP/2.0/UDP a"), 1);
        assert_eq!(count_values(b"SIP/2.0/UDP a, SIP/2.0/TCP b"), 2);
        assert_eq!(split(""), vec![""]);
    }

    #[test]
    fn comma_split_offsets_point_at_elements() {
        let s = b"  x , yy";
        let v: Vec<_> = CommaSplit::new(s).collect();
        assert_eq!(v, vec![(2, &b"x"[..]), (6, &b"yy"[..])]);
    }

    #[test]
    fn header_params_with_lws() {
        let s = b" ;   tag    = 1918181833n ; lr;q=0.5;x=\"a;b\"";
        let ps: Vec<_> = HeaderParams::new(s, 0).map(|p| p.unwrap()).collect();
        assert_eq!(ps.len(), 4);
        assert_eq!(ps[0].name, b"tag");
        assert_eq!(ps[0].value, Some(&b"1918181833n"[..]));
        assert_eq!(
            ps[1],
            Param {
                name: b"lr",
                value: None
            }
        );
        assert_eq!(ps[3].value, Some(&b"\"a;b\""[..]));
        assert_eq!(
            HeaderParams::new(s, 0).find("TAG").unwrap(),
            Some(Some(&b"1918181833n"[..]))
        );
        assert_eq!(HeaderParams::new(s, 0).find("nope").unwrap(), None);
    }

    #[test]
    fn header_params_errors() {
        assert!(HeaderParams::new(b";;", 0).validate().is_err());
        assert!(HeaderParams::new(b";a=", 0).validate().is_err());
        assert!(HeaderParams::new(b";a=\"x", 0).validate().is_err());
        assert!(HeaderParams::new(b" x", 0).validate().is_err());
        assert!(HeaderParams::new(b"", 0).validate().is_ok());
        let e = HeaderParams::new(b";a;;", 10).validate().unwrap_err();
        assert_eq!(e.offset, 13);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"0068", 255), Some(68));
        assert_eq!(parse_u32(b"256", 255), None);
        assert_eq!(parse_u32(b"36893488147419103232", u32::MAX), None);
        assert_eq!(parse_u32(b"-1", 10), None);
        assert_eq!(parse_u32(b"", 10), None);
        assert_eq!(parse_u32(b"4294967295", u32::MAX), Some(u32::MAX));
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(quoted_end(b"\"a\\\"b\" x", 0), Some(6));
        assert_eq!(quoted_end(b"\"abc", 0), None);
        assert_eq!(quoted_end(b"\"abc\\", 0), None);
        let v: Vec<u8> = unescape_quoted(b"J Rosenberg \\\\\\\"").collect();
        assert_eq!(v, b"J Rosenberg \\\"");
        assert_eq!(unquote(b"\"x\""), b"x");
        assert_eq!(unquote(b"x"), b"x");
        assert_eq!(trim_lws(b" \r\n a b \t"), b"a b");
        assert_eq!(find_ignore_case(b"xx;TAG=1", b";tag="), Some(2));
    }
}
