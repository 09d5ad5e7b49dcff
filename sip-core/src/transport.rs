//! The SIP transport protocols, as named in `Via` headers and `transport=` URI parameters.

use core::fmt;

/// A SIP transport protocol (RFC 3261 §18, RFC 4168 for SCTP, RFC 7118 for WebSocket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP datagrams.
    Udp,
    /// TCP byte stream.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// SCTP (parsed and named; sip-lb has no SCTP sockets).
    Sctp,
    /// WebSocket (RFC 7118), `SIP/2.0/WS` in Via.
    Ws,
    /// Secure WebSocket (RFC 7118), `SIP/2.0/WSS` in Via.
    Wss,
}

impl Transport {
    /// Every transport, in declaration order.
    pub const ALL: [Transport; 6] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Sctp,
        Transport::Ws,
        Transport::Wss,
    ];

    /// The token as written in a `Via` header (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, `WSS`).
    pub const fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// The value as written in a `transport=` URI parameter (lower case).
    pub const fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Sctp => "sctp",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// Parses a transport token case-insensitively (`udp`, `TCP`, `Tls`, ...).
    /// Returns `None` for a token this enum does not name (RFC 3261 allows other tokens).
    pub fn from_token(token: &[u8]) -> Option<Transport> {
        Transport::ALL
            .into_iter()
            .find(|t| t.via_token().as_bytes().eq_ignore_ascii_case(token))
    }

    /// True for transports that deliver a byte stream or reliable messages (no
    /// retransmission timers A and E are run over them, RFC 3261 §17.1.1.2).
    pub const fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// True for transports secured by TLS (TLS, WSS); a `sips:` URI requires one.
    pub const fn is_secure(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    /// The default port of the transport when a URI or Via gives none
    /// (5060, or 5061 for TLS; 80 and 443 for WS and WSS per RFC 7118 common use).
    pub const fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp | Transport::Sctp => 5060,
            Transport::Tls => 5061,
            Transport::Ws => 80,
            Transport::Wss => 443,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_token())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_case_insensitively() {
        for t in Transport::ALL {
            assert_eq!(Transport::from_token(t.via_token().as_bytes()), Some(t));
            assert_eq!(Transport::from_token(t.uri_param().as_bytes()), Some(t));
        }
        assert_eq!(Transport::from_token(b"Tls"), Some(Transport::Tls));
        assert_eq!(Transport::from_token(b"UNKNOWN"), None);
        assert_eq!(Transport::from_token(b""), None);
    }

    #[test]
    fn reliability_and_ports() {
        assert!(!Transport::Udp.is_reliable());
        assert!(Transport::Tcp.is_reliable() && Transport::Ws.is_reliable());
        assert!(
            Transport::Tls.is_secure() && Transport::Wss.is_secure() && !Transport::Tcp.is_secure()
        );
        assert_eq!(Transport::Tls.default_port(), 5061);
        assert_eq!(Transport::Udp.default_port(), 5060);
    }
}
