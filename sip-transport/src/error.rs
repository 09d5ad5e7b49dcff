//! Typed errors of the transports.

use std::io;
use std::net::SocketAddr;

use sip_core::Transport;

/// What went wrong in a transport operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// A TLS configuration or handshake error.
    #[error("TLS error: {0}")]
    Tls(#[from] rustls::Error),
    /// A WebSocket handshake or protocol error.
    #[error("WebSocket error: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    /// A PEM file holds no certificate or no private key, or an unusable one.
    #[error("invalid PEM: {0}")]
    Pem(&'static str),
    /// The operation needs a transport this object does not handle (UDP or SCTP on a
    /// stream transport, TLS without a TLS configuration).
    #[error("transport {0} is not available here")]
    UnsupportedTransport(Transport),
    /// A TLS or WSS connection is needed but no client configuration was given.
    #[error("no TLS client configuration for an outbound {0} connection")]
    NoTlsClientConfig(Transport),
    /// The connection's write queue is full (the peer reads too slowly): the message was
    /// not queued.
    #[error("write queue full for {destination}")]
    QueueFull {
        /// The peer.
        destination: SocketAddr,
    },
    /// The limit on outbound connections is reached.
    #[error("outbound connection limit ({limit}) reached")]
    ConnectionLimit {
        /// The configured limit.
        limit: usize,
    },
    /// The connection closed before the message could be queued.
    #[error("connection closed")]
    Closed,
    /// The stream transport was shut down.
    #[error("transport shut down")]
    Shutdown,
    /// An operation did not finish in time (connect, TLS or WebSocket handshake).
    #[error("timed out")]
    Timeout,
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Error::WebSocket(Box::new(e))
    }
}
