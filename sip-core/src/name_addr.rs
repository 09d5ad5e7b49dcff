//! `name-addr` / `addr-spec` values with header parameters (From, To, Contact, Route,
//! Record-Route, Refer-To, ...), RFC 3261 §20.10 and §25.1.
//!
//! Parsing locates the display name, the URI and the parameters without parsing the URI
//! itself; [`NameAddr::uri`] parses it on demand.
//!
//! ```
//! use sip_core::name_addr::NameAddr;
//! let na = NameAddr::parse(br#""J Rosenberg \\\"" <sip:jdrosen@example.com> ; tag = 98asjd8"#).unwrap();
//! assert_eq!(na.display_name(), Some(&br#""J Rosenberg \\\"""#[..]));
//! assert_eq!(na.display_name_text().unwrap(), br#"J Rosenberg \""#);
//! assert_eq!(na.uri().unwrap().user(), Some(&b"jdrosen"[..]));
//! assert_eq!(na.tag(), Some(&b"98asjd8"[..]));
//! ```

use crate::error::{ValueError, ValueErrorKind as K};
use crate::scan::{
    HeaderParams, is_lws, is_token, quoted_end, skip_lws, trim_lws, unescape_quoted,
};
use crate::uri::Uri;

/// A `name-addr` (`"Name" <uri>;params`) or `addr-spec` (`uri;params`) borrowing from its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    display_name: Option<&'a [u8]>,
    uri: &'a [u8],
    uri_offset: usize,
    bracketed: bool,
    params: &'a [u8],
    params_offset: usize,
    /// The first `tag` parameter's value, found while validating the parameters.
    tag: Option<&'a [u8]>,
}

/// Validates header parameters and returns the value of the first `tag` parameter (one
/// pass: From and To are parsed on every message for their tag).
#[inline]
fn validate_params(params: &[u8], base: usize) -> Result<Option<&[u8]>, ValueError> {
    let mut tag = None;
    let mut seen = false;
    for p in HeaderParams::new(params, base) {
        let p = p?;
        if !seen && p.name.len() == 3 && p.is("tag") {
            tag = p.value;
            seen = true;
        }
    }
    Ok(tag)
}

impl<'a> NameAddr<'a> {
    /// Parses one value (already separated from its neighbours in a comma list).
    /// Checks the display name, the brackets, white space around the URI and the
    /// parameter syntax; the URI is parsed later by [`NameAddr::uri`].
    pub fn parse(s: &'a [u8]) -> Result<NameAddr<'a>, ValueError> {
        let mut i = skip_lws(s, 0);
        if i >= s.len() {
            return Err(ValueError::new(K::Empty, i));
        }
        let mut display_name = None;
        // Find where the display name (if any) ends: a quoted string, or tokens up to '<'.
        if s[i] == b'"' {
            let e = quoted_end(s, i).ok_or(ValueError::new(K::UnterminatedQuote, i))?;
            display_name = Some(&s[i..e]);
            i = skip_lws(s, e);
            if i >= s.len() || s[i] != b'<' {
                return Err(ValueError::new(K::InvalidDisplayName, i));
            }
        } else {
            let mut j = i;
            while j < s.len() && !matches!(s[j], b'<' | b';' | b'"' | b'>') {
                j += 1;
            }
            if j < s.len() && s[j] == b'<' {
                let dn = trim_lws(&s[i..j]);
                if let Some(k) = dn
                    .iter()
                    .position(|&b| !(is_token(b) || is_lws(b) || b >= 0x80))
                {
                    return Err(ValueError::new(K::InvalidDisplayName, i + k));
                }
                if !dn.is_empty() {
                    display_name = Some(dn);
                }
                i = j;
            }
        }

        if i < s.len() && s[i] == b'<' {
            let start = i + 1;
            let close = memchr::memchr(b'>', &s[start..])
                .map(|k| start + k)
                .ok_or(ValueError::new(K::UnterminatedAngle, i))?;
            let uri = &s[start..close];
            if uri.is_empty() {
                return Err(ValueError::new(K::Empty, start));
            }
            if let Some(k) = uri.iter().position(|&b| is_lws(b)) {
                return Err(ValueError::new(K::UnexpectedWhitespace, start + k));
            }
            let params_offset = close + 1;
            let params = &s[params_offset..];
            let tag = validate_params(params, params_offset)?;
            Ok(NameAddr {
                display_name,
                uri,
                uri_offset: start,
                bracketed: true,
                params,
                params_offset,
                tag,
            })
        } else {
            // addr-spec: the URI ends at the first ';' or white space; a URI with ',', '?'
            // or ';' must be enclosed in '<>' (RFC 3261 §20.10).
            let start = i;
            let mut j = i;
            while j < s.len() && s[j] != b';' && !is_lws(s[j]) {
                if matches!(s[j], b'?' | b',' | b'<' | b'>' | b'"') {
                    return Err(ValueError::new(
                        if s[j] == b'?' {
                            K::InvalidUriHeader
                        } else {
                            K::UnexpectedChar
                        },
                        j,
                    ));
                }
                j += 1;
            }
            let params = &s[j..];
            let tag = validate_params(params, j)?;
            Ok(NameAddr {
                display_name: None,
                uri: &s[start..j],
                uri_offset: start,
                bracketed: false,
                params,
                params_offset: j,
                tag,
            })
        }
    }

    /// The display name as written (a quoted string keeps its quotes and escapes).
    #[inline]
    pub fn display_name(&self) -> Option<&'a [u8]> {
        self.display_name
    }

    /// The display name's text: quotes removed and `\` escapes resolved (allocates).
    pub fn display_name_text(&self) -> Option<Vec<u8>> {
        let d = self.display_name?;
        Some(if d.first() == Some(&b'"') && d.len() >= 2 {
            unescape_quoted(&d[1..d.len() - 1]).collect()
        } else {
            d.to_vec()
        })
    }

    /// The URI text.
    #[inline]
    pub fn uri_raw(&self) -> &'a [u8] {
        self.uri
    }

    /// Offset of the URI within the parsed text.
    #[inline]
    pub fn uri_offset(&self) -> usize {
        self.uri_offset
    }

    /// Parses the URI (errors report offsets within the parsed text).
    pub fn uri(&self) -> Result<Uri<'a>, ValueError> {
        Uri::parse(self.uri).map_err(|e| e.shifted(self.uri_offset))
    }

    /// True for the `<uri>` form.
    #[inline]
    pub fn is_bracketed(&self) -> bool {
        self.bracketed
    }

    /// The raw parameter section after the URI (starts with optional LWS and `;`).
    #[inline]
    pub fn params_raw(&self) -> &'a [u8] {
        self.params
    }

    /// Iterates over the header parameters (already validated, so items are `Ok`).
    pub fn params(&self) -> HeaderParams<'a> {
        HeaderParams::new(self.params, self.params_offset)
    }

    /// The first header parameter named `name` (case-insensitive); `Some(None)` when present
    /// without a value.
    pub fn param(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.params().find(name).ok().flatten()
    }

    /// The `tag` parameter (From, To).
    #[inline]
    pub fn tag(&self) -> Option<&'a [u8]> {
        self.tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::Host;

    #[test]
    fn forms() {
        let na =
            NameAddr::parse(b"sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert!(!na.is_bracketed());
        assert_eq!(na.uri_raw(), b"sip:vivekg@chair-dnrc.example.com");
        assert_eq!(na.tag(), Some(&b"1918181833n"[..]));

        let na = NameAddr::parse(b"caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(na.display_name(), Some(&b"caller"[..]));
        assert_eq!(na.uri().unwrap().host(), Some(Host::Domain(b"example.com")));
        assert_eq!(na.tag(), Some(&b"323"[..]));

        let na =
            NameAddr::parse(b"<sip:services.example.com;lr;unknownwith=value;unknown-no-value>")
                .unwrap();
        assert!(na.uri().unwrap().is_loose_router());
        assert_eq!(na.tag(), None);

        let na = NameAddr::parse(b"\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33").unwrap();
        assert_eq!(na.param("newparam"), Some(Some(&b"newvalue"[..])));
        assert_eq!(na.param("secondparam"), Some(None));
        assert_eq!(na.param("q"), Some(Some(&b"0.33"[..])));
        assert_eq!(na.display_name_text().unwrap(), b"Quoted string \"\"");

        let na = NameAddr::parse(b"Mr. J. User <sip:j.user@example.com>").unwrap();
        assert_eq!(na.display_name(), Some(&b"Mr. J. User"[..]));
    }

    #[test]
    fn rejects_what_the_grammar_forbids() {
        // RFC 4475 3.1.2.6: unterminated quote
        assert_eq!(
            NameAddr::parse(b"\"Mr. J. User <sip:j.user@example.com>")
                .unwrap_err()
                .kind,
            K::UnterminatedQuote
        );
        // 3.1.2.14: spaces within addr-spec
        assert_eq!(
            NameAddr::parse(b"\"Watson, Thomas\" < sip:t.watson@example.org >")
                .unwrap_err()
                .kind,
            K::UnexpectedWhitespace
        );
        // 3.1.2.15: non-token characters in display name
        assert_eq!(
            NameAddr::parse(b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43")
                .unwrap_err()
                .kind,
            K::InvalidDisplayName
        );
        // 3.1.2.13: URI with headers/params not enclosed in <>
        assert_eq!(
            NameAddr::parse(b"sip:user@example.com?Route=%3Csip:sip.example.com%3E")
                .unwrap_err()
                .kind,
            K::InvalidUriHeader
        );
        // badinv01: empty parameters
        assert!(NameAddr::parse(b"\"Joe\" <sip:joe@example.org>;;;;").is_err());
        assert!(NameAddr::parse(b"<sip:a@b").is_err());
        assert!(NameAddr::parse(b"<>").is_err());
        assert!(NameAddr::parse(b"").is_err());
        assert!(NameAddr::parse(b"\"x\" sip:a@b").is_err());
    }
}
