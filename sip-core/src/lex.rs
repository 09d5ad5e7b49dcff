//! Lexing shared by the fast paths of the parser and of the typed views: byte classes
//! in one table, scanning loops unrolled four bytes at a time, word-at-a-time searches for
//! single bytes, and recognisers for the usual shapes of host, port and parameter. Each
//! recogniser answers `None` where it is unsure, and its caller then runs the reference
//! code of `scan`, `uri` and `via`, which knows the whole grammar and words every error.

use std::net::Ipv4Addr;

use crate::span::Span;
use crate::uri::Host;

pub(crate) const LO: u64 = 0x0101_0101_0101_0101;
pub(crate) const HI: u64 = 0x8080_8080_8080_8080;

/// Flags the bytes of `x` equal to `b` (exact for the lowest flagged byte).
#[inline(always)]
pub(crate) fn eq_mask(x: u64, b: u8) -> u64 {
    let y = x ^ (LO * u64::from(b));
    y.wrapping_sub(LO) & !y & HI
}

/// Flags the bytes of `x` below `n` (`n` at most 128; exact for the lowest flagged byte).
#[inline(always)]
pub(crate) fn lt_mask(x: u64, n: u8) -> u64 {
    x.wrapping_sub(LO * u64::from(n)) & !x & HI
}

/// Byte classes of the fast path (one table lookup per byte in the scanning loops).
pub(crate) const TOKEN: u8 = 1;
pub(crate) const HOST: u8 = 2;
/// An unquoted parameter value: token, `[`, `]`, `:`.
pub(crate) const PVAL: u8 = 4;
/// A Call-ID: `word` characters and `@`.
pub(crate) const CALL_ID: u8 = 8;
/// A character of an unquoted display name: token, LWS, or a UTF-8 byte.
pub(crate) const DN_OK: u8 = 32;
/// A Request-URI byte the fast path judges: not a control, space, DEL, `<`, `>`, `"`,
/// `,`, `?`, `%` or `@`.
pub(crate) const URI_OK: u8 = 64;
/// An ASCII digit.
pub(crate) const DIGIT: u8 = 128;

pub(crate) static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let token = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        let word = token
            || matches!(
                b,
                b'(' | b')'
                    | b'<'
                    | b'>'
                    | b':'
                    | b'\\'
                    | b'"'
                    | b'/'
                    | b'['
                    | b']'
                    | b'?'
                    | b'{'
                    | b'}'
            );
        let lws = matches!(b, b' ' | b'\t' | b'\r' | b'\n');
        let mut v = 0;
        if token {
            v |= TOKEN | PVAL;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
            v |= HOST;
        }
        if matches!(b, b'[' | b']' | b':') {
            v |= PVAL;
        }
        if word || b == b'@' {
            v |= CALL_ID;
        }
        if token || lws || b >= 0x80 {
            v |= DN_OK;
        }
        if !(b <= b' ' || b == 0x7f || matches!(b, b'<' | b'>' | b'"' | b',' | b'?' | b'%' | b'@'))
        {
            v |= URI_OK;
        }
        if b.is_ascii_digit() {
            v |= DIGIT;
        }
        t[c] = v;
        c += 1;
    }
    t
};

/// The classes that hold every ASCII letter, digit, `-` and `.`: all but `DIGIT` (a test
/// holds the table to it).
const HOLDS_ALNUM_DASH_DOT: u8 = TOKEN | HOST | PVAL | CALL_ID | DN_OK | URI_OK;

/// [`run`] for runs that are often longer than a block: sixteen bytes at a time are
/// first tested for letters, digits, `-` and `.` (what hosts, tags, branches and Call-IDs
/// are mostly made of), and only the other bytes of a block are looked up in the table
/// (the bytes after the last whole block in one last block that ends with `s`, when `s`
/// holds one). `class` must be made of [`HOLDS_ALNUM_DASH_DOT`] bits.
///
/// Where it pays, as counted (`benches/count-instructions.sh`): the Call-ID, parameter
/// values (branches, tags) and the Request-URI; host names have their own pass of
/// blocks ([`host_run`]), which also finds their dots. In every run, blocks made a
/// stateless call 460 instructions dearer than the table alone, since most runs (`UDP`,
/// `branch`, a display name) end in their first bytes, below a block's set-up cost.
#[inline(always)]
pub(crate) fn run_long(s: &[u8], mut i: usize, class: u8) -> usize {
    debug_assert!(class != 0 && class & !HOLDS_ALNUM_DASH_DOT == 0);
    while let Some(b) = Block::at(s, i) {
        let mut others = !b.alnum_dash_dot() & 0xffff;
        while others != 0 {
            let k = i + others.trailing_zeros() as usize;
            if CLASS[s[k] as usize] & class == 0 {
                return k;
            }
            others &= others - 1;
        }
        i += 16;
    }
    // The bytes after the last whole block: those of a last block that ends with `s`
    // (overlapping the one before it, its bytes before `i` masked off).
    if i < s.len()
        && let Some(last) = s.len().checked_sub(16)
        && let Some(b) = Block::at(s, last)
    {
        let mut others = !b.alnum_dash_dot() & 0xffff & (u32::MAX << (i - last));
        while others != 0 {
            let k = last + others.trailing_zeros() as usize;
            if CLASS[s[k] as usize] & class == 0 {
                return k;
            }
            others &= others - 1;
        }
        return s.len();
    }
    run(s, i, class)
}

/// Index of the first byte of `s` at or after `i` that is not in `class` (or `s.len()`).
#[inline(always)]
pub(crate) fn run(s: &[u8], mut i: usize, class: u8) -> usize {
    while let Some(c) = s.get(i..i + 4) {
        if CLASS[c[0] as usize] & class == 0 {
            return i;
        }
        if CLASS[c[1] as usize] & class == 0 {
            return i + 1;
        }
        if CLASS[c[2] as usize] & class == 0 {
            return i + 2;
        }
        if CLASS[c[3] as usize] & class == 0 {
            return i + 3;
        }
        i += 4;
    }
    while i < s.len() && CLASS[s[i] as usize] & class != 0 {
        i += 1;
    }
    i
}

/// Sixteen bytes at a time with SSE2: one comparison of the whole block and a mask of
/// one bit per byte. SSE2 is part of the x86-64 baseline, so the code needs no detection
/// at run time; elsewhere the searches use words of eight bytes only. (The compiler does
/// not turn a plain loop over the block into these instructions: measured, such a loop
/// made the INVITE's parse 8 436 instructions instead of 6 940.)
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
mod block {
    use core::arch::x86_64::{
        __m128i, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_sub_epi8,
    };

    /// A block of sixteen bytes in a vector register.
    #[derive(Clone, Copy)]
    pub(super) struct Block(__m128i);

    impl Block {
        /// The block `s[i..i + 16]`, if `s` holds it.
        #[inline(always)]
        pub(super) fn at(s: &[u8], i: usize) -> Option<Block> {
            let c: &[u8; 16] = s.get(i..i + 16)?.try_into().ok()?;
            // SAFETY: `c` is sixteen readable bytes; `loadu` has no alignment requirement;
            // SSE2 is enabled (this module is compiled only where it is).
            Some(Block(unsafe {
                _mm_loadu_si128(c.as_ptr().cast::<__m128i>())
            }))
        }

        /// The first byte at or after `from` that `flag` flags, sixteen bytes at a time:
        /// `Ok` with its index (`Ok(None)`: none), or `Err(from)` when `s` is shorter than
        /// a block. The loop tests one bound per block, computed once, where
        /// [`Block::at`] tests an overflow and an end; the bytes after the last whole
        /// block are those of a last block that ends with `s` (overlapping the one
        /// before it, its bytes before them masked off).
        #[inline(always)]
        pub(super) fn search(
            s: &[u8],
            from: usize,
            flag: impl Fn(Block) -> u32,
        ) -> Result<Option<usize>, usize> {
            let mut i = from;
            let Some(last) = s.len().checked_sub(16) else {
                return Err(i);
            };
            let load = |i: usize| {
                debug_assert!(i <= last);
                // SAFETY: every caller below has `i <= last = s.len() - 16`, so the
                // sixteen bytes at `i` are inside `s`; `loadu` has no alignment
                // requirement; SSE2 is enabled (see `at`).
                Block(unsafe { _mm_loadu_si128(s.as_ptr().add(i).cast::<__m128i>()) })
            };
            while i <= last {
                let t = flag(load(i));
                if t != 0 {
                    return Ok(Some(i + t.trailing_zeros() as usize));
                }
                i += 16;
            }
            if i >= s.len() {
                return Ok(None);
            }
            // `last < i < s.len()`: the last block's bits from `i - last` on are the
            // bytes not yet searched.
            let t = flag(load(last)) & (u32::MAX << (i - last));
            Ok((t != 0).then(|| last + t.trailing_zeros() as usize))
        }

        /// Bit `k` set where byte `k` is `b`.
        #[inline(always)]
        pub(super) fn eq(self, b: u8) -> u32 {
            // SAFETY: SSE2 register operations only, and SSE2 is enabled (see `at`).
            unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(self.0, _mm_set1_epi8(b as i8))) as u32 }
        }

        /// Bit `k` set where byte `k` is `a` or `b`.
        #[inline(always)]
        pub(super) fn eq2(self, a: u8, b: u8) -> u32 {
            // SAFETY: SSE2 register operations only, and SSE2 is enabled (see `at`).
            unsafe {
                let x = _mm_or_si128(
                    _mm_cmpeq_epi8(self.0, _mm_set1_epi8(a as i8)),
                    _mm_cmpeq_epi8(self.0, _mm_set1_epi8(b as i8)),
                );
                _mm_movemask_epi8(x) as u32
            }
        }

        /// Bit `k` set where byte `k` is an ASCII letter, digit, `-` or `.`.
        #[inline(always)]
        pub(super) fn alnum_dash_dot(self) -> u32 {
            // SAFETY: SSE2 register operations only, and SSE2 is enabled (see `at`).
            unsafe {
                // Letters: with bit 5 set, `a..=z` less `a` is 0..=25 (unsigned). Bit 5
                // folds `A..=Z` onto them; every other byte lands outside the range.
                let folded = _mm_or_si128(self.0, _mm_set1_epi8(0x20));
                let l = _mm_sub_epi8(folded, _mm_set1_epi8(b'a' as i8));
                let letter = _mm_cmpeq_epi8(_mm_min_epu8(l, _mm_set1_epi8(25)), l);
                // `-`, `.`, `/` and the digits are `-` + 0..=12; then drop `/`.
                let d = _mm_sub_epi8(self.0, _mm_set1_epi8(b'-' as i8));
                let dash_to_nine = _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(12)), d);
                let slash = _mm_cmpeq_epi8(self.0, _mm_set1_epi8(b'/' as i8));
                let ok = _mm_or_si128(letter, _mm_andnot_si128(slash, dash_to_nine));
                _mm_movemask_epi8(ok) as u32
            }
        }

        /// Bit `k` set where byte `k` is at most `n` (compared unsigned).
        #[inline(always)]
        pub(super) fn le(self, n: u8) -> u32 {
            // SAFETY: SSE2 register operations only, and SSE2 is enabled (see `at`).
            unsafe {
                let m = _mm_min_epu8(self.0, _mm_set1_epi8(n as i8));
                _mm_movemask_epi8(_mm_cmpeq_epi8(m, self.0)) as u32
            }
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use block::Block;

/// Where SSE2 is missing: no block stage, the searches start with words of eight.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[derive(Clone, Copy)]
struct Block;

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
impl Block {
    #[inline(always)]
    fn at(_: &[u8], _: usize) -> Option<Block> {
        None
    }
    #[inline(always)]
    fn search(_: &[u8], from: usize, _: impl Fn(Block) -> u32) -> Result<Option<usize>, usize> {
        Err(from)
    }
    #[inline(always)]
    fn eq(self, _: u8) -> u32 {
        0
    }
    #[inline(always)]
    fn eq2(self, _: u8, _: u8) -> u32 {
        0
    }
    #[inline(always)]
    fn le(self, _: u8) -> u32 {
        0
    }
    #[inline(always)]
    fn alnum_dash_dot(self) -> u32 {
        0
    }
}

/// Index of the first byte at or after `from` that `byte` flags: sixteen bytes at a time
/// that `block` flags (the last block ending with `s`); in an `s` shorter than a block (or
/// without SSE2), a word of eight that `word` flags (exact for the lowest flagged byte),
/// then byte by byte. The three must flag the same bytes.
#[inline(always)]
fn find_flagged(
    s: &[u8],
    from: usize,
    block: impl Fn(Block) -> u32,
    word: impl Fn(u64) -> u64,
    byte: impl Fn(u8) -> bool,
) -> Option<usize> {
    let mut i = match Block::search(s, from, block) {
        Ok(k) => return k,
        Err(i) => i,
    };
    if let Some(chunk) = s.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let t = word(u64::from_le_bytes(w));
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s.get(i..)?.iter().position(|&c| byte(c)).map(|k| i + k)
}

/// Index of the first byte at or after `from` that is `b` or a control or space
/// character (below `!`).
#[inline(always)]
pub(crate) fn find_byte_or_ctl(s: &[u8], from: usize, b: u8) -> Option<usize> {
    find_flagged(
        s,
        from,
        |v| v.eq(b) | v.le(b' '),
        |x| eq_mask(x, b) | lt_mask(x, b'!'),
        |c| c == b || c < b'!',
    )
}

/// Index of the first `:` or LF at or after `from`.
#[inline(always)]
pub(crate) fn find_colon_or_lf(d: &[u8], from: usize) -> Option<usize> {
    find_flagged(
        d,
        from,
        |v| v.eq2(b':', b'\n'),
        |x| eq_mask(x, b':') | eq_mask(x, b'\n'),
        |c| c == b':' || c == b'\n',
    )
}

/// Index of the first LF at or after `from`: where a header line ends.
#[inline(always)]
pub(crate) fn find_lf(d: &[u8], from: usize) -> Option<usize> {
    find_flagged(
        d,
        from,
        |v| v.eq(b'\n'),
        |x| eq_mask(x, b'\n'),
        |c| c == b'\n',
    )
}

/// True when `n` is `lower` in any letter case; `lower` is up to eight lowercase ASCII
/// letters (a parameter name such as `branch`). One folded word compare instead of a loop
/// over the bytes: setting bit 5 of every byte is exact here, since only a letter's two
/// cases have that letter's lowercase form.
#[inline(always)]
pub(crate) fn eq_lower_word<const N: usize>(n: &[u8], lower: &[u8; N]) -> bool {
    const { assert!(N >= 1 && N <= 8) };
    debug_assert!(lower.iter().all(u8::is_ascii_lowercase));
    let Ok(a) = <&[u8; N]>::try_from(n) else {
        return false;
    };
    let mut x = [0u8; 8];
    let mut y = [0u8; 8];
    x[..N].copy_from_slice(a);
    y[..N].copy_from_slice(lower);
    let fold = u64::MAX >> (64 - 8 * N) & 0x2020_2020_2020_2020;
    u64::from_le_bytes(x) | fold == u64::from_le_bytes(y)
}

/// True when the eight bytes at `s[i]` are `word` (little-endian) once the bits `fold`
/// flags are set in them (bit 5 of a letter's byte: either case) and only those `keep`
/// flags are compared: a parameter's `;name=` in one comparison.
#[inline(always)]
pub(crate) fn word_at_is(s: &[u8], i: usize, word: u64, fold: u64, keep: u64) -> bool {
    s.get(i..)
        .and_then(<[u8]>::first_chunk::<8>)
        .is_some_and(|w| (u64::from_le_bytes(*w) | fold) & keep == word)
}

/// Index of the first `b` in `s` at or after `from`; for the short runs inside a header
/// value, where a plain loop beats setting up a vectorised search.
#[inline(always)]
pub(crate) fn find_byte(s: &[u8], from: usize, b: u8) -> Option<usize> {
    s.get(from..)?
        .iter()
        .position(|&c| c == b)
        .map(|k| from + k)
}

/// A span relative to the start of a value.
#[derive(Clone, Copy)]
pub(crate) struct Rel(pub(crate) usize, pub(crate) usize);

impl Rel {
    #[inline]
    pub(crate) fn shift(self, base: usize) -> Span {
        Span::new(base + self.0, base + self.1)
    }
}

/// One `;name[=value]` at `s[i] == b';'` without white space; returns
/// `(name, value, value is all token characters, next index)`. `None` for anything else
/// (quoted values, LWS, an empty name or value).
#[inline(always)]
pub(crate) fn param(s: &[u8], i: usize) -> Option<(Rel, Option<Rel>, bool, usize)> {
    let n0 = i + 1;
    let j = run(s, n0, TOKEN);
    if j == n0 {
        return None;
    }
    let name = Rel(n0, j);
    if s.get(j) != Some(&b'=') {
        return Some((name, None, true, j));
    }
    let v0 = j + 1;
    let t = run_long(s, v0, TOKEN);
    let k = run(s, t, PVAL);
    if k == v0 {
        return None;
    }
    Some((name, Some(Rel(v0, k)), t == k, k))
}

/// After a parameter: the end of the value, a comma (end of a list element) or the next
/// `;`. Returns true when the parameters go on.
#[inline(always)]
pub(crate) fn params_go_on(s: &[u8], i: usize) -> Option<bool> {
    match s.get(i) {
        None | Some(b',') => Some(false),
        Some(b';') => Some(true),
        Some(_) => None,
    }
}

/// 1 to 5 digits, at most 65535.
#[inline(always)]
pub(crate) fn port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits
        .iter()
        .fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
    u16::try_from(v).ok()
}

/// The digits at `s[i]` read as one word of the eight bytes there, when fewer than eight
/// of those are digits before another byte: their value and how many there are (`(0, 0)`
/// for none). `None` when fewer than eight bytes are left or all eight are digits.
#[inline(always)]
pub(crate) fn digits_in_word(s: &[u8], i: usize) -> Option<(u64, usize)> {
    let w = s.get(i..)?.first_chunk::<8>()?;
    // Each byte less `0` (by its bits: `0` is 0x30): 0 to 9 for a digit.
    let t = u64::from_le_bytes(*w) ^ 0x3030_3030_3030_3030;
    // Bit 7 of the bytes above 9 (exact for the lowest: no carry reaches it).
    let other = (t.wrapping_add(0x7676_7676_7676_7676) | t) & 0x8080_8080_8080_8080;
    if other == 0 {
        return None;
    }
    let len = (other.trailing_zeros() / 8) as usize;
    if len == 0 {
        return Some((0, 0));
    }
    // The digits in the top bytes, zeros (leading zeros of the number) below; then pairs,
    // fours and the eight combined by multiplications.
    let x = t << (64 - 8 * len);
    let x = x.wrapping_mul(10).wrapping_add(x >> 8);
    let mask = 0x0000_00ff_0000_00ff;
    let n = (x & mask)
        .wrapping_mul(100 + (1_000_000 << 32))
        .wrapping_add(((x >> 16) & mask).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    Some((n & 0xffff_ffff, len))
}

/// The port whose digits start at `s[i]`: what `port(&s[i..run(s, i, DIGIT)])` gives,
/// and the index after the digits, in one pass over them (at most five digits, then the
/// next byte must not be a digit); as one word where eight bytes are left.
#[inline(always)]
pub(crate) fn port_at(s: &[u8], i: usize) -> Option<(u16, usize)> {
    if let Some((v, len)) = digits_in_word(s, i) {
        return (len > 0 && len <= 5 && v <= u64::from(u16::MAX)).then(|| (v as u16, i + len));
    }
    let mut v = 0u32;
    let mut j = i;
    while let Some(&b) = s.get(j) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if j - i == 5 {
            return None;
        }
        v = v * 10 + u32::from(d);
        j += 1;
    }
    if j == i || v > u32::from(u16::MAX) {
        return None;
    }
    Some((v as u16, j))
}

/// A hostname, IPv4 address or IPv6 reference at the start of `s`: the host and its
/// length, when it is valid as `uri::parse_host` judges it (a trailing dot, which that
/// accepts, is left to it, as is a name or address longer than [`HOST_RUN_MAX`]).
pub(crate) fn host(s: &[u8]) -> Option<(Host<'_>, usize)> {
    if s.first() == Some(&b'[') {
        let close = find_byte(s, 1, b']')?;
        let a = crate::uri::parse_ipv6(&s[1..close])?;
        return Some((Host::V6(a), close + 1));
    }
    // Most hosts on a proxy's path are dotted quads: read one in the same pass that finds
    // its end. It stands when the host characters end right after it; anything else
    // (`1.2.3.4.example`, `256.1.1.1`, `10.0.0.1x`) takes the general path, which gives the
    // same answer for the quads this one accepts.
    if let Some((a, n)) = dotted_quad_prefix(s)
        && s.get(n).is_none_or(|&b| CLASS[b as usize] & HOST == 0)
    {
        return Some((Host::V4(a), n));
    }
    host_general(s)
}

/// The general path of [`host`] for a name or an IPv4 address (not an IPv6 reference).
#[inline]
fn host_general(s: &[u8]) -> Option<(Host<'_>, usize)> {
    let HostRun {
        len: n,
        last_dot,
        dot_dot,
    } = host_run(s)?;
    let name = &s[..n];
    let &last = name.last()?;
    if last == b'.' {
        return None;
    }
    // The first byte of the last label: an IPv4 address ends in a number, a domain name
    // in a label that starts with a letter.
    let last_label = last_dot.map_or(0, |k| k + 1);
    if name[last_label].is_ascii_digit() {
        return ipv4(name).map(|a| (Host::V4(a), n));
    }
    if name[0] == b'.' || name[0] == b'-' || dot_dot {
        return None;
    }
    Some((Host::Domain(name), n))
}

/// What [`host_run`] finds at the start of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HostRun {
    /// How many host characters (letters, digits, `-`, `.`, `_`) it starts with.
    len: usize,
    /// The index of the last dot among them.
    last_dot: Option<usize>,
    /// Whether two of them are adjacent dots.
    dot_dot: bool,
}

/// The longest host [`host_run`] reads (a longer one is the reference parser's): its
/// dots are bits of one word.
const HOST_RUN_MAX: usize = 64;

/// The host characters at the start of `s`, their last dot and whether they hold `..`,
/// in one pass: sixteen bytes at a time (letters, digits, `-` and `.` by the block, the
/// other bytes of a block by the table), then byte by byte; the dots are collected as
/// bits of one word, and read once at the end. `None` for a run longer than
/// [`HOST_RUN_MAX`]. (A last block overlapping the one before it, in place of the bytes,
/// made the INVITE's parse 25 instructions dearer and the REGISTER's 90 cheaper: not
/// worth its lanes' masks. Counted again with the dots as bits: INVITE 17 dearer,
/// REGISTER 113 cheaper; for tails of four bytes or more only, INVITE 9 dearer.)
#[inline(always)]
fn host_run(s: &[u8]) -> Option<HostRun> {
    let mut i = 0;
    // Bit `k` set where byte `k` is a dot.
    let mut dots = 0u64;
    let found = |len: usize, dots: u64| HostRun {
        len,
        last_dot: (dots != 0).then(|| 63 - dots.leading_zeros() as usize),
        dot_dot: dots & (dots >> 1) != 0,
    };
    while let Some(b) = Block::at(s, i) {
        if i >= HOST_RUN_MAX {
            return (CLASS[s[i] as usize] & HOST == 0).then(|| found(i, dots));
        }
        let mut others = !b.alnum_dash_dot() & 0xffff;
        let mut end = 16;
        while others != 0 {
            let k = others.trailing_zeros() as usize;
            if CLASS[s[i + k] as usize] & HOST == 0 {
                end = k;
                break;
            }
            others &= others - 1;
        }
        dots |= u64::from(b.eq(b'.') & ((1u32 << end) - 1)) << i;
        if end < 16 {
            return Some(found(i + end, dots));
        }
        i += 16;
    }
    while let Some(&c) = s.get(i) {
        if CLASS[c as usize] & HOST == 0 {
            break;
        }
        if i >= HOST_RUN_MAX {
            return None;
        }
        dots |= u64::from(c == b'.') << i;
        i += 1;
    }
    Some(found(i, dots))
}

/// A dotted quad at the start of `s` (four parts of 1 to 3 digits, each at most 255) and
/// where it ends; `None` when `s` does not start with one. A fourth digit ends a part
/// as any other byte does (then a dot is missing, or the host goes on after the quad).
#[inline]
fn dotted_quad_prefix(s: &[u8]) -> Option<(Ipv4Addr, usize)> {
    let (a, i) = octet(s, 0)?;
    let (b, i) = octet(s, dot(s, i)?)?;
    let (c, i) = octet(s, dot(s, i)?)?;
    let (d, i) = octet(s, dot(s, i)?)?;
    Some((Ipv4Addr::new(a, b, c, d), i))
}

/// The index after the dot at `s[i]`.
#[inline(always)]
fn dot(s: &[u8], i: usize) -> Option<usize> {
    (s.get(i) == Some(&b'.')).then_some(i + 1)
}

/// The value of the digit at `s[i]`.
#[inline(always)]
fn digit_at(s: &[u8], i: usize) -> Option<u32> {
    let d = u32::from(s.get(i)?.wrapping_sub(b'0'));
    (d < 10).then_some(d)
}

/// One to three digits at `s[i]` worth at most 255, and the index after them.
#[inline(always)]
fn octet(s: &[u8], i: usize) -> Option<(u8, usize)> {
    let d0 = digit_at(s, i)?;
    let Some(d1) = digit_at(s, i + 1) else {
        return Some((d0 as u8, i + 1));
    };
    let Some(d2) = digit_at(s, i + 2) else {
        return Some((d0 as u8 * 10 + d1 as u8, i + 2));
    };
    u8::try_from(d0 * 100 + d1 * 10 + d2)
        .ok()
        .map(|v| (v, i + 3))
}

/// Dotted-quad IPv4: four parts of 1 to 3 digits, each at most 255.
#[inline]
pub(crate) fn ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut o = [0u8; 4];
    let mut parts = 0;
    let mut digits = 0;
    let mut v = 0u32;
    for &b in s {
        if b == b'.' {
            if digits == 0 || v > 255 || parts == 3 {
                return None;
            }
            o[parts] = v as u8;
            parts += 1;
            digits = 0;
            v = 0;
        } else if b.is_ascii_digit() {
            digits += 1;
            if digits > 3 {
                return None;
            }
            v = v * 10 + u32::from(b - b'0');
        } else {
            return None;
        }
    }
    if parts != 3 || digits == 0 || v > 255 {
        return None;
    }
    o[3] = v as u8;
    Some(Ipv4Addr::from(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls `f` with every string of `lens` bytes over `alphabet`.
    fn every_string(
        alphabet: &[u8],
        lens: std::ops::RangeInclusive<usize>,
        mut f: impl FnMut(&[u8]),
    ) {
        let mut s = Vec::new();
        for len in lens {
            for mut code in 0..alphabet.len().pow(len as u32) {
                s.clear();
                for _ in 0..len {
                    s.push(alphabet[code % alphabet.len()]);
                    code /= alphabet.len();
                }
                f(&s);
            }
        }
    }

    #[test]
    fn a_port_read_in_one_pass_is_the_port_of_its_digit_run() {
        // Every string of up to 7 bytes over digits that make ports, too large ones and
        // too long ones, and bytes that end them.
        every_string(b"06590:;", 0..=8, |s| {
            for i in 0..=s.len() {
                let end = run(s, i, DIGIT);
                let want = port(&s[i..end]).map(|p| (p, end));
                assert_eq!(port_at(s, i), want, "{} at {i}", String::from_utf8_lossy(s));
            }
        });
    }

    #[test]
    fn the_dotted_quad_fast_path_agrees_with_the_general_one() {
        // Every string of up to 7 bytes over an alphabet that makes quads, near-quads and
        // names, plus longer quads with what may follow them.
        let check = |s: &[u8]| {
            assert_eq!(host(s), host_general(s), "{}", String::from_utf8_lossy(s));
        };
        every_string(b"12560.a:-", 0..=7, check);
        for quad in [
            &b"127.0.0.1"[..],
            b"192.168.100.200",
            b"255.255.255.255",
            b"256.1.1.1",
            b"1.2.3.2555",
            b"001.002.003.004",
            b"0.0.0.0",
        ] {
            for tail in [
                &b""[..],
                b":5060",
                b";lr",
                b">",
                b".",
                b".example",
                b"x",
                b"-",
                b"5",
                b" ",
            ] {
                check(&[quad, tail].concat());
            }
        }
    }

    #[test]
    fn the_one_pass_host_run_agrees_with_three_plain_ones() {
        let plain = |s: &[u8]| {
            let len = s
                .iter()
                .position(|&c| CLASS[c as usize] & HOST == 0)
                .unwrap_or(s.len());
            let name = &s[..len];
            HostRun {
                len,
                last_dot: name.iter().rposition(|&c| c == b'.'),
                dot_dot: name.windows(2).any(|w| w == b".."),
            }
        };
        // Dots, a `_` (a host byte the block does not pass), a `:` (the end) and letters,
        // at every position around the block boundaries, then pseudo-random strings.
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for len in (0..=40).chain([62, 63, 64, 65, 66, 80]) {
            for a in 0..len {
                for (x, y) in [
                    (b'.', b'.'),
                    (b'.', b'a'),
                    (b'_', b'.'),
                    (b':', b'.'),
                    (b'.', b':'),
                ] {
                    let mut v = vec![b'a'; len];
                    v[a] = x;
                    if a + 1 < len {
                        v[a + 1] = y;
                    }
                    cases.push(v.clone());
                    for b in (a + 2)..len {
                        let mut w = v.clone();
                        w[b] = b'.';
                        cases.push(w);
                    }
                }
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 80) as usize;
            let v: Vec<u8> = (0..len)
                .map(|k| b".a._-9:\xc3"[((seed >> (k % 60)) % 8) as usize])
                .collect();
            cases.push(v);
        }
        let check = |s: &[u8]| {
            let want = plain(s);
            let want = (want.len <= HOST_RUN_MAX).then_some(want);
            assert_eq!(host_run(s), want, "{}", String::from_utf8_lossy(s));
        };
        cases.iter().for_each(|s| check(s));
        // Every string of up to 10 bytes over a host alphabet, alone and followed by
        // bytes that end the host (the dots after the `:` are not the name's).
        every_string(b"a.-9", 1..=10, |s| {
            check(s);
            check(&[s, b":...................."].concat());
        });
    }

    #[test]
    fn ipv4_as_the_grammar_has_it() {
        assert_eq!(ipv4(b"192.0.2.1"), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(ipv4(b"010.0.0.255"), Some(Ipv4Addr::new(10, 0, 0, 255)));
        for bad in [
            &b"256.0.0.1"[..],
            b"1.2.3",
            b"1.2.3.4.5",
            b"1..2.3",
            b"1.2.3.",
            b"1.2.3.4a",
            b"",
            b"1234.1.1.1",
        ] {
            assert_eq!(ipv4(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    /// Bytes a block or word search could confuse with what it looks for: one bit or one
    /// borrow away from LF, `:`, `!` and space, the top half, zero.
    const TRICKY: [u8; 14] = [
        b'a', 0x00, 0x09, 0x0b, 0x8a, 0x20, 0x21, 0x39, 0x3b, 0xba, 0x7f, 0x80, 0xff, b'\r',
    ];

    /// Checks `search` against `plain` on every buffer of up to 48 bytes made of one tricky
    /// filler with up to two wanted bytes placed anywhere, from every start.
    fn agrees(
        wanted: &[u8],
        search: impl Fn(&[u8], usize) -> Option<usize>,
        plain: impl Fn(u8) -> bool,
    ) {
        let mut buf = Vec::new();
        for len in 0..48 {
            for &fill in &TRICKY {
                for first in 0..=len {
                    for &w in wanted {
                        buf.clear();
                        buf.resize(len, fill);
                        if first < len {
                            buf[first] = w;
                        }
                        // A second wanted byte later, so a search that skips the first is seen.
                        if first + 3 < len {
                            buf[first + 3] = wanted[0];
                        }
                        for from in 0..=len {
                            let want = buf[from..].iter().position(|&c| plain(c)).map(|k| from + k);
                            assert_eq!(search(&buf, from), want, "{buf:?} from {from}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn find_lf_agrees_with_a_plain_search() {
        agrees(b"\n", find_lf, |c| c == b'\n');
    }

    #[test]
    fn find_colon_or_lf_agrees_with_a_plain_search() {
        agrees(b":\n", find_colon_or_lf, |c| c == b':' || c == b'\n');
    }

    #[test]
    fn find_byte_or_ctl_agrees_with_a_plain_search() {
        for b in [b';', b',', b'>', b'/'] {
            agrees(
                &[b, b' ', b'\t', 0x00, 0x1f],
                |s, i| find_byte_or_ctl(s, i, b),
                |c| c == b || c < b'!',
            );
        }
    }

    #[test]
    fn searches_agree_on_every_byte_value_at_every_lane() {
        // Each of the 256 byte values in each lane of a block and of the word after it.
        for v in 0..=255u8 {
            for at in 0..40 {
                let mut buf = [b'a'; 40];
                buf[at] = v;
                let plain = |f: &dyn Fn(u8) -> bool| buf.iter().position(|&c| f(c));
                assert_eq!(find_lf(&buf, 0), plain(&|c| c == b'\n'), "{v:#x} at {at}");
                assert_eq!(
                    find_colon_or_lf(&buf, 0),
                    plain(&|c| c == b':' || c == b'\n'),
                    "{v:#x} at {at}"
                );
                assert_eq!(
                    find_byte_or_ctl(&buf, 0, b';'),
                    plain(&|c| c == b';' || c < b'!'),
                    "{v:#x} at {at}"
                );
            }
        }
    }

    /// The block test of [`run`] says "letter, digit, `-` or `.`" of exactly those bytes,
    /// and each class the block test serves holds all of them.
    #[test]
    fn the_block_test_of_run_is_exact_and_every_class_it_serves_holds_it() {
        for v in 0..=255u8 {
            let want = v.is_ascii_alphanumeric() || v == b'-' || v == b'.';
            for lane in 0..16 {
                let mut buf = [b'a'; 16];
                buf[lane] = v;
                if let Some(b) = Block::at(&buf, 0) {
                    assert_eq!(
                        b.alnum_dash_dot() & (1 << lane) != 0,
                        want,
                        "{v:#x} in lane {lane}"
                    );
                }
            }
            if want {
                for class in [TOKEN, HOST, PVAL, CALL_ID, DN_OK, URI_OK] {
                    assert_ne!(CLASS[v as usize] & class, 0, "{v:#x} not in class {class}");
                }
            }
        }
        // A class bit added later must be sorted into `HOLDS_ALNUM_DASH_DOT` or not.
        for (v, &c) in CLASS.iter().enumerate() {
            assert_eq!(
                c & !(HOLDS_ALNUM_DASH_DOT | DIGIT),
                0,
                "{v:#x}: a class bit unaccounted for"
            );
        }
    }

    #[test]
    fn run_and_run_long_agree_with_a_plain_loop() {
        let plain = |s: &[u8], from: usize, class: u8| {
            from + s[from..]
                .iter()
                .take_while(|&&c| CLASS[c as usize] & class != 0)
                .count()
        };
        // Both scans, where `run_long` may serve the class.
        let run = |s: &[u8], from: usize, class: u8| {
            let r = run(s, from, class);
            if class & !HOLDS_ALNUM_DASH_DOT == 0 {
                assert_eq!(
                    run_long(s, from, class),
                    r,
                    "run_long {s:?} class {class} from {from}"
                );
            }
            r
        };
        let classes = [
            TOKEN,
            HOST,
            PVAL,
            CALL_ID,
            DN_OK,
            URI_OK,
            DIGIT,
            TOKEN | PVAL,
        ];
        // Every byte value in every lane of two blocks and the tail after them.
        for v in 0..=255u8 {
            for at in 0..40 {
                let mut buf = [b'a'; 40];
                buf[at] = v;
                for class in classes {
                    for from in [0, 1, at.saturating_sub(1), at] {
                        assert_eq!(
                            run(&buf, from, class),
                            plain(&buf, from, class),
                            "{v:#x} at {at} class {class} from {from}"
                        );
                    }
                }
            }
        }
        // Strings over the bytes where classes part, from a fixed pseudo-random sequence.
        let alphabet = b"aZ09-./:;@_!<>[]%\" ~,?=\t\r\n\x00\x7f\x80\xff";
        let mut x: u32 = 0x2545_f491;
        let mut buf = Vec::new();
        for _ in 0..20_000 {
            buf.clear();
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let len = (x % 70) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Mostly letters, so that runs are long enough to cross blocks.
                let c = if !x.is_multiple_of(4) {
                    b'k'
                } else {
                    alphabet[(x / 4) as usize % alphabet.len()]
                };
                buf.push(c);
            }
            for class in classes {
                for from in 0..=len.min(3) {
                    assert_eq!(
                        run(&buf, from, class),
                        plain(&buf, from, class),
                        "{buf:?} class {class} from {from}"
                    );
                }
            }
        }
    }

    #[test]
    fn eq_lower_word_is_eq_ignore_ascii_case() {
        fn check<const N: usize>(lower: &[u8; N]) {
            let mut n = lower.to_vec();
            for at in 0..N {
                for v in 0..=255u8 {
                    n[at] = v;
                    assert_eq!(
                        eq_lower_word(&n, lower),
                        n.eq_ignore_ascii_case(lower),
                        "{n:?}"
                    );
                }
                n[at] = lower[at].to_ascii_uppercase();
            }
            assert!(eq_lower_word(&n, lower));
            assert!(!eq_lower_word(&n[..N - 1], lower));
            n.push(b'x');
            assert!(!eq_lower_word(&n, lower));
        }
        check(b"branch");
        check(b"received");
        check(b"rport");
        check(b"maddr");
        check(b"ttl");
        check(b"tag");
        check(b"z");
    }
}
