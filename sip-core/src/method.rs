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
    /// Classifies a method token (case-sensitive, as RFC 3261 requires).
    #[inline]
    pub fn from_bytes(s: &[u8]) -> Method {
        match s {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"PUBLISH" => Method::Publish,
            b"INFO" => Method::Info,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"UPDATE" => Method::Update,
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
