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

            fn from_full(name: &[u8]) -> HeaderName {
                $( if name.eq_ignore_ascii_case($canon.as_bytes()) { return HeaderName::$variant; } )*
                HeaderName::Other
            }

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
    #[inline]
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        match name.len() {
            0 => HeaderName::Other,
            1 => HeaderName::from_compact(name[0]),
            // Fast paths for the names on every message.
            2 if name.eq_ignore_ascii_case(b"to") => HeaderName::To,
            3 if name.eq_ignore_ascii_case(b"via") => HeaderName::Via,
            4 if name.eq_ignore_ascii_case(b"from") => HeaderName::From,
            4 if name.eq_ignore_ascii_case(b"cseq") => HeaderName::CSeq,
            7 if name.eq_ignore_ascii_case(b"call-id") => HeaderName::CallId,
            12 if name.eq_ignore_ascii_case(b"max-forwards") => HeaderName::MaxForwards,
            14 if name.eq_ignore_ascii_case(b"content-length") => HeaderName::ContentLength,
            _ => HeaderName::from_full(name),
        }
    }

    /// True when `raw` names this header (full or compact form, any case).
    #[inline]
    pub fn matches(self, raw: &[u8]) -> bool {
        self != HeaderName::Other && HeaderName::from_bytes(raw) == self
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
