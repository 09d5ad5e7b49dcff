//! Request methods.

use core::fmt;

/// A SIP request method. Methods are case-sensitive (RFC 3261 §7.1); an extension method
/// (any other token) is [`Method::Extension`], its name available from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `INVITE` (RFC 3261).
    Invite,
    /// `ACK` (RFC 3261).
    Ack,
    /// `BYE` (RFC 3261).
    Bye,
    /// `CANCEL` (RFC 3261).
    Cancel,
    /// `OPTIONS` (RFC 3261).
    Options,
    /// `REGISTER` (RFC 3261).
    Register,
    /// `PRACK` (RFC 3262).
    Prack,
    /// `SUBSCRIBE` (RFC 6665).
    Subscribe,
    /// `NOTIFY` (RFC 6665).
    Notify,
    /// `PUBLISH` (RFC 3903).
    Publish,
    /// `INFO` (RFC 6086).
    Info,
    /// `REFER` (RFC 3515).
    Refer,
    /// `MESSAGE` (RFC 3428).
    Message,
    /// `UPDATE` (RFC 3311).
    Update,
    /// Any other token.
    Extension,
}

impl Method {
    /// Every method sip-lb knows by name, in the order of their declaration (so that
    /// `m as usize` is a known method's place here, and [`Method::Extension`] comes
    /// after them).
    pub const KNOWN: [Method; 14] = [
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Options,
        Method::Register,
        Method::Prack,
        Method::Subscribe,
        Method::Notify,
        Method::Publish,
        Method::Info,
        Method::Refer,
        Method::Message,
        Method::Update,
    ];

    /// Classifies a method token (case-sensitive, as RFC 3261 requires).
    #[inline]
    pub fn from_bytes(s: &[u8]) -> Method {
        // By length, then the first and the last four bytes as one word (they overlap
        // for names shorter than eight): a switch on constants, not a byte-by-byte
        // comparison per candidate.
        let n = s.len();
        let (Some(lo), Some(hi)) = (s.first_chunk::<4>(), s.last_chunk::<4>()) else {
            return match s {
                b"ACK" => Method::Ack,
                b"BYE" => Method::Bye,
                _ => Method::Extension,
            };
        };
        let key = u64::from(u32::from_le_bytes(*lo)) | u64::from(u32::from_le_bytes(*hi)) << 32;
        const fn key_of(m: &[u8]) -> u64 {
            let n = m.len();
            let lo = u32::from_le_bytes([m[0], m[1], m[2], m[3]]);
            let hi = u32::from_le_bytes([m[n - 4], m[n - 3], m[n - 2], m[n - 1]]);
            lo as u64 | (hi as u64) << 32
        }
        const INVITE: u64 = key_of(b"INVITE");
        const CANCEL: u64 = key_of(b"CANCEL");
        const OPTIONS: u64 = key_of(b"OPTIONS");
        const REGISTER: u64 = key_of(b"REGISTER");
        const PRACK: u64 = key_of(b"PRACK");
        const SUBSCRIBE: u64 = key_of(b"SUBSCRIBE");
        const NOTIFY: u64 = key_of(b"NOTIFY");
        const PUBLISH: u64 = key_of(b"PUBLISH");
        const INFO: u64 = key_of(b"INFO");
        const REFER: u64 = key_of(b"REFER");
        const MESSAGE: u64 = key_of(b"MESSAGE");
        const UPDATE: u64 = key_of(b"UPDATE");
        match (n, key) {
            (6, INVITE) => Method::Invite,
            (6, CANCEL) => Method::Cancel,
            (7, OPTIONS) => Method::Options,
            (8, REGISTER) => Method::Register,
            (5, PRACK) => Method::Prack,
            // (Nine bytes: the middle one is not in the word.)
            (9, SUBSCRIBE) if s[4] == b'C' => Method::Subscribe,
            (6, NOTIFY) => Method::Notify,
            (7, PUBLISH) => Method::Publish,
            (4, INFO) => Method::Info,
            (5, REFER) => Method::Refer,
            (7, MESSAGE) => Method::Message,
            (6, UPDATE) => Method::Update,
            _ => Method::Extension,
        }
    }

    /// The method token; `None` for an extension method.
    pub const fn as_str(self) -> Option<&'static str> {
        Some(match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Update => "UPDATE",
            Method::Extension => return None,
        })
    }

    /// True for methods that create a dialog (INVITE, SUBSCRIBE, REFER), which a
    /// record-routing proxy adds `Record-Route` to.
    pub const fn creates_dialog(self) -> bool {
        matches!(self, Method::Invite | Method::Subscribe | Method::Refer)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str().unwrap_or("extension"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names as a plain comparison reads them.
    fn by_comparison(s: &[u8]) -> Method {
        Method::KNOWN
            .into_iter()
            .find(|m| m.as_str().map(str::as_bytes) == Some(s))
            .unwrap_or(Method::Extension)
    }

    #[test]
    fn known_methods_are_in_declaration_order_and_named() {
        for (i, m) in Method::KNOWN.into_iter().enumerate() {
            assert_eq!(m as usize, i);
            assert!(m.as_str().is_some());
        }
        assert_eq!(Method::Extension as usize, Method::KNOWN.len());
    }

    #[test]
    fn a_method_read_by_words_is_the_method_a_comparison_reads() {
        // Every name, each with one byte changed to each of a few others, cut short and
        // made longer, and some strings of every length.
        let mut cases: Vec<Vec<u8>> = (0..12).map(|n| vec![b'A'; n]).collect();
        for m in Method::KNOWN.map(|m| m.as_str().unwrap_or_default()) {
            let m = m.as_bytes();
            for i in 0..m.len() {
                for b in [b'A', b'C', b'I', b'S', b'a', b'c', 0, 0xff] {
                    let mut v = m.to_vec();
                    v[i] = b;
                    cases.push(v);
                }
                cases.push(m[..i].to_vec());
                cases.push(m[i..].to_vec());
            }
            for b in [b'A', b'E', b' '] {
                let mut v = m.to_vec();
                v.push(b);
                cases.push(v.clone());
                v.insert(0, b);
                cases.push(v);
            }
        }
        for c in cases {
            assert_eq!(Method::from_bytes(&c), by_comparison(&c), "{c:?}");
        }
    }

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::from_bytes(b"INVITE"), Method::Invite);
        assert_eq!(Method::from_bytes(b"invite"), Method::Extension);
        assert_eq!(Method::from_bytes(b"NEWMETHOD"), Method::Extension);
        for m in [
            Method::Invite,
            Method::Ack,
            Method::Update,
            Method::Prack,
            Method::Message,
        ] {
            assert_eq!(Method::from_bytes(m.as_str().unwrap().as_bytes()), m);
        }
        assert!(Method::Invite.creates_dialog());
        assert!(!Method::Bye.creates_dialog());
    }
}
