//! # sip-transport
//!
//! All socket I/O of the sip-lb family: UDP, TCP, TLS, WebSocket and secure WebSocket,
//! IPv4 and IPv6, bounded by explicit limits. The proxy core never sees a socket: it gets
//! [`Incoming`] values (bytes, source, local address, transport, connection id) and hands
//! back [`Outgoing`] values (destination, transport, bytes, optional connection id).
//!
//! - [`udp`]: `SO_REUSEPORT` sockets, one per worker thread, with batched
//!   `recvmmsg`/`sendmmsg` on Linux and zero-copy receive into reused buffers; usable from
//!   a plain blocking thread ([`udp::UdpSocket`], with a read timeout so the worker can
//!   service timers) or from tokio ([`udp::AsyncUdpSocket`]). ICMP errors never kill a
//!   socket.
//! - [`stream`]: TCP, TLS (rustls), WS and WSS (RFC 7118) on a tokio runtime: listeners,
//!   framing by the [`sip_core::framer`], RFC 5626 CRLF keep-alive, a connection table
//!   and outbound pool with RFC 5923-style reuse (a response goes back on the connection
//!   its request came in on), limits on connections in total and per source IP, an idle
//!   timeout, a per-message read deadline against slow senders, a maximum message size,
//!   and bounded write queues.
//! - [`tls`]: helpers to build rustls configurations from PEM.
//!
//! ## A UDP echo of SIP messages
//!
//! ```
//! use std::net::SocketAddr;
//! use bytes::Bytes;
//! use sip_core::Message;
//! use sip_transport::udp::{RecvBatch, UdpConfig, UdpSocket};
//! use sip_transport::Outgoing;
//!
//! let cfg = UdpConfig::default();
//! let local: SocketAddr = "127.0.0.1:0".parse()?;
//! // Two worker sockets sharing one port (SO_REUSEPORT), and a client socket.
//! let workers = UdpSocket::bind_reuseport(local, 2, &cfg)?;
//! let server_addr = workers[0].local_addr();
//! let client = UdpSocket::bind_ephemeral("127.0.0.1".parse()?, &cfg)?;
//!
//! let options = Bytes::from_static(
//!     b"OPTIONS sip:lb.example.com SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-1\r\n\
//!       Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:lb.example.com>\r\n\
//!       Call-ID: echo-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
//! );
//! client.send_batch(&[Outgoing::udp(server_addr, options.clone())])?;
//!
//! // The kernel hands the datagram to one of the workers; poll both like worker loops do.
//! let mut batch = RecvBatch::default();
//! let mut echoed = 0;
//! for _ in 0..100 {
//!     for w in &workers {
//!         w.set_read_timeout(Some(std::time::Duration::from_millis(10)))?;
//!         if w.recv_batch(&mut batch)? == 0 {
//!             continue;
//!         }
//!         // Parse each message (zero copy: the Bytes share the receive buffer) and echo it.
//!         let replies: Vec<Outgoing> = batch
//!             .drain()
//!             .map(|inc| {
//!                 let msg = Message::parse(inc.bytes.clone()).expect("valid SIP");
//!                 assert_eq!(msg.call_id(), Some(&b"echo-1"[..]));
//!                 Outgoing::udp(inc.source, inc.bytes)
//!             })
//!             .collect();
//!         echoed += w.send_batch(&replies)?;
//!     }
//!     if echoed > 0 {
//!         break;
//!     }
//! }
//! assert_eq!(echoed, 1);
//!
//! client.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
//! assert_eq!(client.recv_batch(&mut batch)?, 1);
//! let echo = &batch.incoming()[0];
//! assert_eq!(echo.bytes, options);
//! assert_eq!(echo.source, server_addr);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

use std::net::SocketAddr;

use bytes::Bytes;
pub use sip_core::Transport;

pub mod error;
#[cfg(unix)]
pub mod poll;
pub mod stream;
pub mod tls;
pub mod udp;

pub use error::Error;
pub use stream::{
    ConnectionEvent, IncomingSink, StreamConfig, StreamLimits, StreamSender, StreamTransport,
};
pub use udp::{AsyncUdpSocket, RecvBatch, UdpConfig, UdpSocket};

/// Identifies one stream connection (TCP, TLS, WS or WSS) for its whole life; never reused
/// within a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// One received SIP message (a datagram, or one message framed from a stream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The message, sharing the receive buffer (no copy).
    pub bytes: Bytes,
    /// Who sent it (IPv4-mapped IPv6 addresses are given as IPv4).
    pub source: SocketAddr,
    /// The local address it arrived on (the bound address; may be unspecified for a
    /// socket bound to `0.0.0.0` or `::`).
    pub local: SocketAddr,
    /// The transport it arrived over.
    pub transport: Transport,
    /// The stream connection it arrived on (`None` for UDP).
    pub connection: Option<ConnectionId>,
}

/// One SIP message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Where to send it.
    pub destination: SocketAddr,
    /// Over which transport.
    pub transport: Transport,
    /// The bytes of the message.
    pub bytes: Bytes,
    /// For streams: the connection to use if it is still open (for example the one the
    /// request came in on); otherwise a pooled connection to `(destination, transport)` is
    /// used, or a new one is opened.
    pub connection: Option<ConnectionId>,
}

impl Outgoing {
    /// A UDP datagram to `destination`.
    pub fn udp(destination: SocketAddr, bytes: Bytes) -> Outgoing {
        Outgoing {
            destination,
            transport: Transport::Udp,
            bytes,
            connection: None,
        }
    }

    /// A message for `destination` over `transport`, on any suitable connection.
    pub fn new(destination: SocketAddr, transport: Transport, bytes: Bytes) -> Outgoing {
        Outgoing {
            destination,
            transport,
            bytes,
            connection: None,
        }
    }

    /// The reply to `incoming`: same transport, back to its source, on its connection.
    pub fn reply_to(incoming: &Incoming, bytes: Bytes) -> Outgoing {
        Outgoing {
            destination: incoming.source,
            transport: incoming.transport,
            bytes,
            connection: incoming.connection,
        }
    }
}
