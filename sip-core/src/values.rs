//! Typed views of the other header values a proxy or registrar reads: `CSeq`, `Contact`
//! (including `*`), `Expires`, `Retry-After`, the username of `Authorization` /
//! `Proxy-Authorization`, and option-tag lists (`Require`, `Proxy-Require`, `Supported`).

use crate::error::{ValueError, ValueErrorKind as K};
use crate::method::Method;
use crate::name_addr::NameAddr;
use crate::scan::{
    CommaSplit, HeaderParams, is_digit, is_lws, is_token, is_token_str, skip_lws, trim_lws, unquote,
};

/// A `CSeq` value: sequence number and method.
///
/// ```
/// use sip_core::{Method, values::CSeq};
/// let c = CSeq::parse(b"0009\r\n  INVITE").unwrap();
/// assert_eq!((c.number, c.method), (9, Method::Invite));
/// assert!(CSeq::parse(b"36893488147419103232 REGISTER").is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number (less than 2³¹, RFC 3261 §8.1.1.5).
    pub number: u32,
    /// The method.
    pub method: Method,
    /// The method as written.
    pub method_raw: &'a [u8],
}

impl<'a> CSeq<'a> {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &'a [u8]) -> Result<CSeq<'a>, ValueError> {
        let i = skip_lws(s, 0);
        let mut j = i;
        while j < s.len() && is_digit(s[j]) {
            j += 1;
        }
        let number = crate::scan::parse_u32(&s[i..j], (1u32 << 31) - 1)
            .ok_or(ValueError::new(K::InvalidNumber, i))?;
        if j >= s.len() || !is_lws(s[j]) {
            return Err(ValueError::new(K::InvalidMethod, j));
        }
        let m0 = skip_lws(s, j);
        let mut m1 = m0;
        while m1 < s.len() && is_token(s[m1]) {
            m1 += 1;
        }
        if m1 == m0 {
            return Err(ValueError::new(K::InvalidMethod, m0));
        }
        if skip_lws(s, m1) != s.len() {
            return Err(ValueError::new(K::TrailingCharacters, m1));
        }
        let method_raw = &s[m0..m1];
        Ok(CSeq {
            number,
            method: Method::from_bytes(method_raw),
            method_raw,
        })
    }
}

/// Parses `delta-seconds`, saturating at `u32::MAX` for larger values (as RFC 3261 §20.19
/// asks of Expires; so a 100-digit value is a long time, not an error).
pub fn parse_delta_seconds(s: &[u8]) -> Result<u32, ValueError> {
    let s = trim_lws(s);
    if s.is_empty() || !s.iter().all(|&b| is_digit(b)) {
        return Err(ValueError::new(K::InvalidNumber, 0));
    }
    let mut v: u64 = 0;
    for &b in s {
        v = (v * 10 + u64::from(b - b'0')).min(u64::from(u32::MAX));
    }
    Ok(v as u32)
}

/// An `Expires` value in seconds (see [`parse_delta_seconds`]).
pub fn parse_expires(s: &[u8]) -> Result<u32, ValueError> {
    parse_delta_seconds(s)
}

/// A `Retry-After` value: seconds, an optional comment and an optional `duration`.
///
/// ```
/// use sip_core::values::RetryAfter;
/// let r = RetryAfter::parse(b"18000;duration=3600").unwrap();
/// assert_eq!((r.seconds, r.duration), (18000, Some(3600)));
/// let r = RetryAfter::parse(b"120 (I'm in a meeting)").unwrap();
/// assert_eq!(r.comment, Some(&b"I'm in a meeting"[..]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter<'a> {
    /// Seconds (saturating at `u32::MAX`).
    pub seconds: u32,
    /// The comment without its parentheses.
    pub comment: Option<&'a [u8]>,
    /// The `duration` parameter in seconds.
    pub duration: Option<u32>,
}

impl<'a> RetryAfter<'a> {
    /// Parses `delta-seconds [ comment ] *( SEMI retry-param )`.
    pub fn parse(s: &'a [u8]) -> Result<RetryAfter<'a>, ValueError> {
        let i = skip_lws(s, 0);
        let mut j = i;
        while j < s.len() && is_digit(s[j]) {
            j += 1;
        }
        let seconds = parse_delta_seconds(&s[i..j]).map_err(|e| e.shifted(i))?;
        let mut k = skip_lws(s, j);
        let mut comment = None;
        if k < s.len() && s[k] == b'(' {
            // comments nest (RFC 3261 §25.1)
            let mut depth = 0usize;
            let mut e = k;
            while e < s.len() {
                match s[e] {
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b'\\' => e += 1,
                    _ => {}
                }
                e += 1;
            }
            if e >= s.len() {
                return Err(ValueError::new(K::UnexpectedChar, k));
            }
            comment = Some(&s[k + 1..e]);
            k = e + 1;
        }
        let mut duration = None;
        for p in HeaderParams::new(&s[k..], k) {
            let p = p?;
            if p.is("duration") {
                let v = p.value.ok_or(ValueError::new(K::InvalidParamValue, k))?;
                duration = Some(parse_delta_seconds(v).map_err(|e| e.shifted(k))?);
            }
        }
        Ok(RetryAfter {
            seconds,
            comment,
            duration,
        })
    }
}

/// A `Contact` header value: `*` or a list of contacts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (remove all bindings, with `Expires: 0`).
    Star,
    /// One or more contacts.
    List(ContactList<'a>),
}

impl<'a> Contact<'a> {
    /// Parses a whole Contact header value (and validates every element).
    ///
    /// ```
    /// use sip_core::values::Contact;
    /// assert_eq!(Contact::parse(b" * ").unwrap(), Contact::Star);
    /// let Contact::List(list) = Contact::parse(b"<sip:a@h1>;expires=60, \"B\" <sip:b@h2>;q=0.5").unwrap() else { panic!() };
    /// let v: Vec<_> = list.map(|c| (c.expires(), c.q())).collect();
    /// assert_eq!(v, vec![(Some(60), None), (None, Some(&b"0.5"[..]))]);
    /// ```
    pub fn parse(s: &'a [u8]) -> Result<Contact<'a>, ValueError> {
        if trim_lws(s) == b"*" {
            return Ok(Contact::Star);
        }
        for (off, v) in CommaSplit::new(s) {
            let c = NameAddr::parse(v).map_err(|e| e.shifted(off))?;
            if let Some(Some(e)) = c.param("expires") {
                parse_delta_seconds(e).map_err(|e| e.shifted(off))?;
            }
        }
        Ok(Contact::List(ContactList {
            inner: CommaSplit::new(s),
        }))
    }
}

/// Iterator over the contacts of a validated Contact value.
#[derive(Clone, Debug)]
pub struct ContactList<'a> {
    inner: CommaSplit<'a>,
}

impl PartialEq for ContactList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.clone().eq(other.clone())
    }
}
impl Eq for ContactList<'_> {}

impl<'a> Iterator for ContactList<'a> {
    type Item = ContactEntry<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let (_, v) = self.inner.next()?;
        NameAddr::parse(v).ok().map(|addr| ContactEntry { addr })
    }
}

/// One contact: its name-addr and the registration parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactEntry<'a> {
    /// The name-addr (URI and parameters).
    pub addr: NameAddr<'a>,
}

impl<'a> ContactEntry<'a> {
    /// The `expires` parameter in seconds.
    pub fn expires(&self) -> Option<u32> {
        self.addr
            .param("expires")
            .flatten()
            .and_then(|v| parse_delta_seconds(v).ok())
    }

    /// The `q` parameter as written.
    pub fn q(&self) -> Option<&'a [u8]> {
        self.addr.param("q").flatten()
    }
}

/// Authorization / Proxy-Authorization credentials: the scheme and its parameters.
///
/// ```
/// use sip_core::values::Credentials;
/// let c = Credentials::parse(br#"Digest username="bob", realm="biloxi.com", nonce="dcd98b""#).unwrap();
/// assert_eq!(c.scheme(), b"Digest");
/// assert_eq!(c.username(), Some(&b"bob"[..]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credentials<'a> {
    scheme: &'a [u8],
    params: &'a [u8],
}

impl<'a> Credentials<'a> {
    /// Parses `auth-scheme LWS auth-param *(COMMA auth-param)`.
    pub fn parse(s: &'a [u8]) -> Result<Credentials<'a>, ValueError> {
        let i = skip_lws(s, 0);
        let mut j = i;
        while j < s.len() && is_token(s[j]) {
            j += 1;
        }
        if j == i {
            return Err(ValueError::new(K::Empty, i));
        }
        Ok(Credentials {
            scheme: &s[i..j],
            params: &s[j..],
        })
    }

    /// The scheme (`Digest`, or any other token).
    pub fn scheme(&self) -> &'a [u8] {
        self.scheme
    }

    /// The `name=value` parameters, values as written (quoted strings keep their quotes).
    pub fn params(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        CommaSplit::new(self.params).filter_map(|(_, p)| {
            let eq = memchr::memchr(b'=', p)?;
            Some((trim_lws(&p[..eq]), trim_lws(&p[eq + 1..])))
        })
    }

    /// The `username` parameter without quotes.
    pub fn username(&self) -> Option<&'a [u8]> {
        self.params()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"username"))
            .map(|(_, v)| unquote(v))
    }
}

/// Iterates over the option tags of a `Require`, `Proxy-Require`, `Supported` or
/// `Unsupported` value; an element that is not a token is an error item.
pub fn option_tags(s: &[u8]) -> impl Iterator<Item = Result<&[u8], ValueError>> + '_ {
    CommaSplit::new(s)
        .filter(|(_, v)| !v.is_empty())
        .map(|(off, v)| {
            if is_token_str(v) {
                Ok(v)
            } else {
                Err(ValueError::new(K::UnexpectedChar, off))
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        let c = CSeq::parse(b"234234 INVITE").unwrap();
        assert_eq!(c.number, 234234);
        assert_eq!(
            CSeq::parse(b"8 NEWMETHOD").unwrap().method,
            Method::Extension
        );
        assert!(CSeq::parse(b"2147483648 INVITE").is_err());
        assert!(CSeq::parse(b"2147483647 INVITE").is_ok());
        assert!(CSeq::parse(b"INVITE").is_err());
        assert!(CSeq::parse(b"1INVITE").is_err());
        assert!(CSeq::parse(b"1 INVITE x").is_err());
        assert!(CSeq::parse(b"-1 INVITE").is_err());
        assert!(CSeq::parse(b"").is_err());
    }

    #[test]
    fn delta_seconds_saturate() {
        assert_eq!(parse_expires(b"3600").unwrap(), 3600);
        assert_eq!(
            parse_expires(b"10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000").unwrap(),
            u32::MAX
        );
        assert!(parse_expires(b"-1").is_err());
        assert!(parse_expires(b"").is_err());
        let r = RetryAfter::parse(b"949302838503028349304023988").unwrap();
        assert_eq!(r.seconds, u32::MAX);
        assert!(RetryAfter::parse(b"x").is_err());
        assert!(RetryAfter::parse(b"5 (unclosed").is_err());
        let r = RetryAfter::parse(b"5 (a (nested) comment) ;duration=10").unwrap();
        assert_eq!(r.comment, Some(&b"a (nested) comment"[..]));
        assert_eq!(r.duration, Some(10));
    }

    #[test]
    fn contacts() {
        let Contact::List(mut l) =
            Contact::parse(b"<sip:user@host129.example.com>\r\n  ;expires=280297596632815")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(l.next().unwrap().expires(), Some(u32::MAX));
        assert!(Contact::parse(b"\"Joe\" <sip:joe@example.org>;;;;").is_err());
        assert!(Contact::parse(b"sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(Contact::parse(b"<sip:a@b>;expires=soon").is_err());
    }

    #[test]
    fn credentials_and_tags() {
        let c = Credentials::parse(b"NoOneKnowsThisScheme opaque-data=here").unwrap();
        assert_eq!(c.scheme(), b"NoOneKnowsThisScheme");
        assert_eq!(c.username(), None);
        let tags: Vec<_> = option_tags(b"100rel, timer ,path")
            .map(Result::unwrap)
            .collect();
        assert_eq!(tags, vec![&b"100rel"[..], b"timer", b"path"]);
        assert!(option_tags(b"a b").any(|t| t.is_err()));
    }
}
