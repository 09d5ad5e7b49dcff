//! Header names: the ones sip-lb knows by name (with their RFC 3261 §7.3.3 compact forms),
//! matched case-insensitively, and every other name kept verbatim.

use core::fmt;

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident = $canon:literal $(, compact $c:literal)? ; )*) => {
        /// A header field name. Names sip-lb handles are variants; any other is
        /// [`HeaderName::Other`] (the raw name stays available from the message).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $(#[$doc])* $variant, )*
            /// A header this enum does not name (kept verbatim).
            Other,
        }

        impl HeaderName {
            /// The canonical spelling (`Call-ID`, `CSeq`, ...); `""` for [`HeaderName::Other`].
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// The compact form letter (RFC 3261 §7.3.3 and later RFCs), if the header has one.
            pub const fn compact(self) -> Option<u8> {
                match self {
                    $( $( HeaderName::$variant => Some($c), )? )*
                    _ => None,
                }
            }

            /// Every header this enum names (not [`HeaderName::Other`]), in declaration order.
            pub const ALL: &'static [HeaderName] = &[ $( HeaderName::$variant, )* ];

            fn from_compact(c: u8) -> HeaderName {
                match c.to_ascii_lowercase() {
                    $( $( $c => HeaderName::$variant, )? )*
                    _ => HeaderName::Other,
                }
            }
        }
    };
}

header_names! {
    /// `Via` (`v`).
    Via = "Via", compact b'v';
    /// `From` (`f`).
    From = "From", compact b'f';
    /// `To` (`t`).
    To = "To", compact b't';
    /// `Call-ID` (`i`).
    CallId = "Call-ID", compact b'i';
    /// `CSeq`.
    CSeq = "CSeq";
    /// `Max-Forwards`.
    MaxForwards = "Max-Forwards";
    /// `Content-Length` (`l`).
    ContentLength = "Content-Length", compact b'l';
    /// `Route`.
    Route = "Route";
    /// `Record-Route`.
    RecordRoute = "Record-Route";
    /// `Contact` (`m`).
    Contact = "Contact", compact b'm';
    /// `Expires`.
    Expires = "Expires";
    /// `Retry-After`.
    RetryAfter = "Retry-After";
    /// `Authorization`.
    Authorization = "Authorization";
    /// `Proxy-Authorization`.
    ProxyAuthorization = "Proxy-Authorization";
    /// `WWW-Authenticate`.
    WwwAuthenticate = "WWW-Authenticate";
    /// `Proxy-Authenticate`.
    ProxyAuthenticate = "Proxy-Authenticate";
    /// `Require`.
    Require = "Require";
    /// `Proxy-Require`.
    ProxyRequire = "Proxy-Require";
    /// `Supported` (`k`).
    Supported = "Supported", compact b'k';
    /// `Unsupported`.
    Unsupported = "Unsupported";
    /// `Content-Type` (`c`).
    ContentType = "Content-Type", compact b'c';
    /// `Content-Encoding` (`e`).
    ContentEncoding = "Content-Encoding", compact b'e';
    /// `Allow`.
    Allow = "Allow";
    /// `Accept`.
    Accept = "Accept";
    /// `Subject` (`s`).
    Subject = "Subject", compact b's';
    /// `Event` (`o`, RFC 6665).
    Event = "Event", compact b'o';
    /// `Allow-Events` (`u`, RFC 6665).
    AllowEvents = "Allow-Events", compact b'u';
    /// `Refer-To` (`r`, RFC 3515).
    ReferTo = "Refer-To", compact b'r';
    /// `Referred-By` (`b`, RFC 3892).
    ReferredBy = "Referred-By", compact b'b';
    /// `Session-Expires` (`x`, RFC 4028).
    SessionExpires = "Session-Expires", compact b'x';
    /// `Identity` (`y`, RFC 8224).
    Identity = "Identity", compact b'y';
    /// `Identity-Info` (`n`, RFC 4474).
    IdentityInfo = "Identity-Info", compact b'n';
    /// `Accept-Contact` (`a`, RFC 3841).
    AcceptContact = "Accept-Contact", compact b'a';
    /// `Reject-Contact` (`j`, RFC 3841).
    RejectContact = "Reject-Contact", compact b'j';
    /// `Request-Disposition` (`d`, RFC 3841).
    RequestDisposition = "Request-Disposition", compact b'd';
    /// `Path` (RFC 3327).
    Path = "Path";
    /// `User-Agent`.
    UserAgent = "User-Agent";
    /// `Server`.
    Server = "Server";
    /// `Timestamp`.
    Timestamp = "Timestamp";
    /// `Date`.
    Date = "Date";
}

impl HeaderName {
    /// Classifies a raw header name: compact forms and any letter case are recognised.
    ///
    /// One branch on the length and the first letter leaves at most two candidates, each
    /// compared once (this runs for every header line of every message).
    #[inline]
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        use HeaderName as H;
        let Some(&first) = name.first() else {
            return H::Other;
        };
        let f = first.to_ascii_lowercase();
        let (a, b): (HeaderName, HeaderName) = match (name.len(), f) {
            (1, _) => return H::from_compact(first),
            (2, b't') => (H::To, H::Other),
            (3, b'v') => (H::Via, H::Other),
            (4, b'f') => (H::From, H::Other),
            (4, b'c') => (H::CSeq, H::Other),
            (4, b'p') => (H::Path, H::Other),
            (4, b'd') => (H::Date, H::Other),
            (5, b'r') => (H::Route, H::Other),
            (5, b'a') => (H::Allow, H::Other),
            (5, b'e') => (H::Event, H::Other),
            (6, b'a') => (H::Accept, H::Other),
            (6, b's') => (H::Server, H::Other),
            (7, b'c') => (H::CallId, H::Contact),
            (7, b'e') => (H::Expires, H::Other),
            (7, b'r') => (H::Require, H::Other),
            (7, b's') => (H::Subject, H::Other),
            (8, b'r') => (H::ReferTo, H::Other),
            (8, b'i') => (H::Identity, H::Other),
            (9, b's') => (H::Supported, H::Other),
            (9, b't') => (H::Timestamp, H::Other),
            (10, b'u') => (H::UserAgent, H::Other),
            (11, b'r') => (H::RetryAfter, H::ReferredBy),
            (11, b'u') => (H::Unsupported, H::Other),
            (12, b'm') => (H::MaxForwards, H::Other),
            (12, b'r') => (H::RecordRoute, H::Other),
            (12, b'c') => (H::ContentType, H::Other),
            (12, b'a') => (H::AllowEvents, H::Other),
            (13, b'a') => (H::Authorization, H::Other),
            (13, b'p') => (H::ProxyRequire, H::Other),
            (13, b'i') => (H::IdentityInfo, H::Other),
            (14, b'c') => (H::ContentLength, H::Other),
            (14, b'a') => (H::AcceptContact, H::Other),
            (14, b'r') => (H::RejectContact, H::Other),
            (15, b's') => (H::SessionExpires, H::Other),
            (16, b'w') => (H::WwwAuthenticate, H::Other),
            (16, b'c') => (H::ContentEncoding, H::Other),
            (18, b'p') => (H::ProxyAuthenticate, H::Other),
            (19, b'p') => (H::ProxyAuthorization, H::Other),
            (19, b'r') => (H::RequestDisposition, H::Other),
            _ => return H::Other,
        };
        if pattern_matches(name, a) {
            a
        } else if b != H::Other && pattern_matches(name, b) {
            b
        } else {
            H::Other
        }
    }

    /// True when `raw` names this header (full or compact form, any case).
    #[inline]
    pub fn matches(self, raw: &[u8]) -> bool {
        self != HeaderName::Other && HeaderName::from_bytes(raw) == self
    }
}

/// A known name as folded machine words, to compare a candidate name in two or three
/// loads instead of byte by byte: `(input_word | mask) == word`, where `mask` holds 0x20 on
/// the letters (folding their case) and 0 on every other byte (compared exactly).
#[derive(Clone, Copy)]
struct Pattern {
    head: (u64, u64),
    mid: (u64, u64),
    tail: (u64, u64),
}

/// `(folded word, mask)` of `s[at..at + n]`, little-endian.
const fn folded(s: &[u8], at: usize, n: usize) -> (u64, u64) {
    let mut w = 0u64;
    let mut m = 0u64;
    let mut i = 0;
    while i < n {
        let b = s[at + i];
        let mk = if b.is_ascii_alphabetic() { 0x20 } else { 0 };
        w |= ((b | mk) as u64) << (8 * i);
        m |= (mk as u64) << (8 * i);
        i += 1;
    }
    (w, m)
}

/// Width of the head and tail words for a name of length `len` (2, 4 or 8 bytes): the
/// head and the tail overlap so that together (and with `mid` past 16) they cover it.
const fn word_width(len: usize) -> usize {
    if len >= 8 {
        8
    } else if len >= 4 {
        4
    } else {
        2
    }
}

const fn pattern_of(h: HeaderName) -> Pattern {
    let s = h.as_str().as_bytes();
    let n = s.len();
    if n < 2 {
        return Pattern {
            head: (0, 0),
            mid: (0, 0),
            tail: (0, 0),
        };
    }
    let w = word_width(n);
    Pattern {
        head: folded(s, 0, w),
        mid: if n > 16 { folded(s, 8, 8) } else { (0, 0) },
        tail: folded(s, n - w, w),
    }
}

const PATTERNS: [Pattern; HeaderName::ALL.len()] = {
    let mut t = [Pattern {
        head: (0, 0),
        mid: (0, 0),
        tail: (0, 0),
    }; HeaderName::ALL.len()];
    let mut i = 0;
    while i < HeaderName::ALL.len() {
        t[HeaderName::ALL[i] as usize] = pattern_of(HeaderName::ALL[i]);
        i += 1;
    }
    t
};

/// Little-endian word of `s[at..at + n]` (`n` is 2, 4 or 8; the caller keeps it in bounds).
#[inline(always)]
fn load(s: &[u8], at: usize, n: usize) -> u64 {
    match n {
        8 => u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or([0; 8])),
        4 => u64::from(u32::from_le_bytes(
            s[at..at + 4].try_into().unwrap_or([0; 4]),
        )),
        _ => u64::from(u16::from_le_bytes(
            s[at..at + 2].try_into().unwrap_or([0; 2]),
        )),
    }
}

/// True when `name` (already known to have `h`'s length, at least 2) spells `h` in any case.
#[inline(always)]
fn pattern_matches(name: &[u8], h: HeaderName) -> bool {
    let p = &PATTERNS[h as usize];
    let n = name.len();
    let w = word_width(n);
    (load(name, 0, w) | p.head.1) == p.head.0
        && (load(name, n - w, w) | p.tail.1) == p.tail.0
        && (n <= 16 || (load(name, 8, 8) | p.mid.1) == p.mid.0)
}

/// A known name followed directly by its colon (`Via:`, `content-length:`, any case), as a
/// pattern over the first sixteen bytes of a header line: `(word | fold) & keep == word`,
/// per eight-byte word. `colon` is the colon's index.
#[derive(Clone, Copy)]
struct LinePattern {
    name: HeaderName,
    colon: u8,
    fold: [u64; 2],
    keep: [u64; 2],
    word: [u64; 2],
}

/// Candidates per first letter (`r` has the most: seven).
const LINE_CANDIDATES: usize = 8;

/// The filler of a letter's unused candidate slots (it would match nothing: its word has
/// a bit its mask clears).
const NO_LINE_PATTERN: LinePattern = LinePattern {
    name: HeaderName::Other,
    colon: 0,
    fold: [0; 2],
    keep: [0; 2],
    word: [1; 2],
};

/// The pattern of `h`'s canonical name and a colon, when that fits in sixteen bytes: the
/// name's [`folded`] words, with a mask that keeps the bytes up to the colon.
const fn line_pattern_of(h: HeaderName) -> Option<LinePattern> {
    let s = h.as_str().as_bytes();
    let n = s.len() + 1;
    if n > 16 {
        return None;
    }
    let mut line = [0u8; 16];
    let mut i = 0;
    while i < s.len() {
        line[i] = s[i];
        i += 1;
    }
    line[s.len()] = b':';
    let mut p = LinePattern {
        name: h,
        colon: s.len() as u8,
        fold: [0; 2],
        keep: [0; 2],
        word: [0; 2],
    };
    let mut w = 0;
    while w < 2 && 8 * w < n {
        let len = if n - 8 * w < 8 { n - 8 * w } else { 8 };
        let (word, fold) = folded(&line, 8 * w, len);
        p.word[w] = word;
        p.fold[w] = fold;
        p.keep[w] = if len == 8 {
            u64::MAX
        } else {
            (1 << (8 * len)) - 1
        };
        w += 1;
    }
    Some(p)
}

/// [`LinePattern`]s by the lowercased first letter, in declaration order (the usual
/// headers first), then [`NO_LINE_PATTERN`]s; and how many there are.
const LINE_PATTERNS: [([LinePattern; LINE_CANDIDATES], usize); 26] = {
    let mut t = [([NO_LINE_PATTERN; LINE_CANDIDATES], 0); 26];
    let mut i = 0;
    while i < HeaderName::ALL.len() {
        let h = HeaderName::ALL[i];
        if let Some(p) = line_pattern_of(h) {
            let l = (h.as_str().as_bytes()[0].to_ascii_lowercase() - b'a') as usize;
            // (A compile error if a letter has more candidates than slots.)
            t[l].0[t[l].1] = p;
            t[l].1 += 1;
        }
        i += 1;
    }
    t
};

impl HeaderName {
    /// The header a line starts with, when the line starts with a known name (full up to
    /// fifteen bytes, or compact) directly followed by its colon: the name and the
    /// colon's index. `None` leaves the line to [`HeaderName::from_bytes`] (white space
    /// before the colon, a longer or an unknown name, fewer than sixteen bytes left).
    ///
    /// The parser's fast path runs this on every header line: one branch on the first
    /// letter and two masked word comparisons per candidate, instead of a search for the
    /// colon, a trim and a classification of the name.
    #[inline(always)]
    pub(crate) fn at_line_start(line: &[u8]) -> Option<(HeaderName, usize)> {
        let head: &[u8; 16] = line.first_chunk()?;
        let l = (head[0] | 0x20).wrapping_sub(b'a');
        let (candidates, n) = LINE_PATTERNS.get(l as usize)?;
        let (w0, w1) = head.split_at(8);
        let w0 = u64::from_le_bytes(w0.try_into().unwrap_or([0; 8]));
        let w1 = u64::from_le_bytes(w1.try_into().unwrap_or([0; 8]));
        let full = candidates.get(..*n)?.iter().find(|p| {
            (w0 | p.fold[0]) & p.keep[0] == p.word[0] && (w1 | p.fold[1]) & p.keep[1] == p.word[1]
        });
        if let Some(p) = full {
            return Some((p.name, p.colon as usize));
        }
        // A compact form (after the full names, which are the usual lines: no full
        // name's pattern holds a colon second). Every compact letter is a letter.
        if head[1] == b':' {
            let h = HeaderName::from_compact(head[0]);
            return (h != HeaderName::Other).then_some((h, 1));
        }
        None
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderName::Other => f.write_str("extension"),
            h => f.write_str(h.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_compact_forms() {
        for (raw, h) in [
            ("Via", HeaderName::Via),
            ("v", HeaderName::Via),
            ("V", HeaderName::Via),
            ("MaX-fOrWaRdS", HeaderName::MaxForwards),
            ("i", HeaderName::CallId),
            ("call-ID", HeaderName::CallId),
            ("l", HeaderName::ContentLength),
            ("m", HeaderName::Contact),
            ("k", HeaderName::Supported),
            ("c", HeaderName::ContentType),
            ("e", HeaderName::ContentEncoding),
            ("s", HeaderName::Subject),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("r", HeaderName::ReferTo),
            ("x", HeaderName::SessionExpires),
            ("y", HeaderName::Identity),
            ("b", HeaderName::ReferredBy),
            ("j", HeaderName::RejectContact),
            ("a", HeaderName::AcceptContact),
            ("d", HeaderName::RequestDisposition),
            ("n", HeaderName::IdentityInfo),
            ("f", HeaderName::From),
            ("t", HeaderName::To),
            ("record-route", HeaderName::RecordRoute),
            ("Proxy-Require", HeaderName::ProxyRequire),
            ("NewFangledHeader", HeaderName::Other),
            ("z", HeaderName::Other),
            ("", HeaderName::Other),
        ] {
            assert_eq!(HeaderName::from_bytes(raw.as_bytes()), h, "{raw}");
        }
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
        assert_eq!(HeaderName::Via.compact(), Some(b'v'));
        assert_eq!(HeaderName::CSeq.compact(), None);
        assert!(HeaderName::Via.matches(b"v"));
        assert!(!HeaderName::Other.matches(b"X-Foo"));
    }

    #[test]
    fn every_known_name_and_its_compact_form_is_recognised() {
        for &h in HeaderName::ALL {
            let canon = h.as_str();
            assert_eq!(HeaderName::from_bytes(canon.as_bytes()), h, "{canon}");
            assert_eq!(
                HeaderName::from_bytes(canon.to_ascii_uppercase().as_bytes()),
                h
            );
            assert_eq!(
                HeaderName::from_bytes(canon.to_ascii_lowercase().as_bytes()),
                h
            );
            if let Some(c) = h.compact() {
                assert_eq!(HeaderName::from_bytes(&[c]), h);
                assert_eq!(HeaderName::from_bytes(&[c.to_ascii_uppercase()]), h);
            }
            // One byte changed anywhere, or one byte more or less, is another header.
            for i in 0..canon.len() {
                let mut v = canon.as_bytes().to_vec();
                v[i] = b'#';
                assert_ne!(HeaderName::from_bytes(&v), h, "{canon} with # at {i}");
            }
            let mut longer = canon.as_bytes().to_vec();
            longer.push(b'x');
            assert_ne!(HeaderName::from_bytes(&longer), h);
            if canon.len() > 2 {
                // ("T" is the compact form of "To".)
                assert_ne!(
                    HeaderName::from_bytes(&canon.as_bytes()[..canon.len() - 1]),
                    h
                );
            }
        }
        assert_eq!(HeaderName::ALL.len(), 40);
    }

    /// What `at_line_start` must say of `line`: a known name ending at the first colon,
    /// with no white space before it, when the line has sixteen bytes.
    fn line_start_by_the_name(line: &[u8]) -> Option<(HeaderName, usize)> {
        let colon = line.iter().position(|&b| b == b':')?;
        let h = HeaderName::from_bytes(&line[..colon]);
        (line.len() >= 16 && colon <= 15 && h != HeaderName::Other).then_some((h, colon))
    }

    #[test]
    fn a_line_start_is_recognised_exactly_when_it_spells_a_known_name_and_its_colon() {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for &h in HeaderName::ALL {
            let canon = h.as_str().as_bytes();
            let mut forms = vec![
                canon.to_vec(),
                canon.to_ascii_lowercase(),
                canon.to_ascii_uppercase(),
            ];
            forms.extend(h.compact().map(|c| vec![c]));
            for name in forms {
                for tail in [&b": x"[..], b":", b" : x", b"\t: x", b"x: y"] {
                    let mut line = name.clone();
                    line.extend_from_slice(tail);
                    // Every byte value at every position of the name and the colon.
                    for i in 0..=name.len() {
                        for b in 0..=255u8 {
                            let mut v = line.clone();
                            v[i] = b;
                            lines.push(v);
                        }
                    }
                    lines.push(line);
                }
            }
        }
        for line in &mut lines {
            for pad in [0usize, 16] {
                let mut l = line.clone();
                l.resize(l.len().max(pad), b'z');
                // Full names of up to fifteen bytes and the compact forms are found;
                // longer names are left to the general path.
                let got = HeaderName::at_line_start(&l);
                assert_eq!(
                    got,
                    line_start_by_the_name(&l),
                    "{:?}",
                    String::from_utf8_lossy(&l)
                );
                if let Some((h, n)) = got {
                    assert_eq!(HeaderName::from_bytes(&l[..n]), h);
                    assert_eq!(l[n], b':');
                }
            }
        }
    }

    #[test]
    fn every_canonical_name_round_trips() {
        for h in [
            HeaderName::Via,
            HeaderName::Route,
            HeaderName::RecordRoute,
            HeaderName::Authorization,
            HeaderName::WwwAuthenticate,
            HeaderName::Date,
            HeaderName::Path,
        ] {
            assert_eq!(HeaderName::from_bytes(h.as_str().as_bytes()), h);
            assert_eq!(
                HeaderName::from_bytes(h.as_str().to_ascii_uppercase().as_bytes()),
                h
            );
        }
    }
}
