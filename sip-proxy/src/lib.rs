//! # sip-proxy
//!
//! The protocol heart of sip-lb: a SIP proxy (RFC 3261 §16) as a plain state machine with
//! no sockets, no clock and no async runtime, in the manner of `quinn-proto`. A runtime
//! feeds it what arrives ([`Proxy::handle_datagram`]) and the passing of time
//! ([`Proxy::handle_timeout`]), and polls it for messages to send
//! ([`Proxy::poll_transmit`]), the next deadline ([`Proxy::poll_timeout`]) and events for
//! logs and metrics ([`Proxy::poll_event`]).
//!
//! It balances new requests over a [`sip_dispatch::Dispatcher`] destination set, in
//! either of two modes:
//! - **stateful** ([`Mode::Stateful`]): server and client transactions (§17) with timers
//!   A, B, D, E, F, G, H, I, J, K, L, M; 100 Trying; retransmissions absorbed; failover to
//!   the next destination on timeout or configured codes; CANCEL; hop-by-hop ACK for
//!   non-2xx, RFC 6026 forwarding of 2xx retransmissions; call and transaction accounting
//!   for the load-based algorithms; the autonomous queue (182 Queued);
//! - **stateless** ([`Mode::Stateless`]): §16.11, with branches derived from the incoming
//!   request so a retransmitted INVITE, its CANCEL and its non-2xx ACK reach the same
//!   destination.
//!
//! In both modes: sanity checks (400 naming the problem, 513, 416, 420, 482, 483),
//! `received`/`rport` (RFC 3581), Record-Route with `lr` (double Record-Route when the
//! transport changes, RFC 5658) carrying an HMAC-protected **cookie** naming the chosen
//! destination ([`cookie`]), loose routing of in-dialog requests, OPTIONS to the proxy
//! itself answered 200, OPTIONS health probes of destinations.
//!
//! One `Proxy` per worker thread; workers share the [`sip_dispatch::Dispatcher`] and a
//! [`CallTable`]. Branches name the worker ([`branch::worker_of`]) so a runtime can
//! steer a response to the worker that owns its transaction.
//!
//! ## Example: one call through the proxy with in-memory "sockets"
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use bytes::Bytes;
//! use sip_core::{Message, Transport};
//! use sip_dispatch::{DestinationList, Dispatcher};
//! use sip_proxy::{CallTable, LocalEndpoint, Origin, Proxy, ProxyConfig};
//!
//! let lb: std::net::SocketAddr = "127.0.0.1:5060".parse().unwrap();
//! let caller: std::net::SocketAddr = "127.0.0.1:5070".parse().unwrap();
//! let backend: std::net::SocketAddr = "127.0.0.1:5080".parse().unwrap();
//! let list = DestinationList::parse_kamailio("1 sip:127.0.0.1:5080\n").unwrap();
//! let dispatcher = Arc::new(Dispatcher::new(list));
//! let cfg = ProxyConfig {
//!     listeners: vec![LocalEndpoint::new(Transport::Udp, lb)],
//!     cookie_key: b"secret".to_vec(),
//!     ..ProxyConfig::default()
//! };
//! let mut proxy = Proxy::new(cfg, dispatcher.clone(), Arc::new(CallTable::new()));
//! let now = Instant::now();
//!
//! // The caller's INVITE arrives.
//! let invite = "INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc1;rport\r\n\
//!     Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\n\
//!     Call-ID: call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5070>\r\n\
//!     Content-Length: 0\r\n\r\n";
//! proxy.handle_datagram(now, Origin::udp(caller, lb), Bytes::from(invite));
//!
//! // Out come 100 Trying to the caller and the INVITE to the backend.
//! let trying = proxy.poll_transmit().unwrap();
//! assert_eq!(trying.destination, caller);
//! let fwd = proxy.poll_transmit().unwrap();
//! assert_eq!(fwd.destination, backend);
//! let fwd = Message::parse(fwd.bytes).unwrap();
//! assert_eq!(fwd.via_count(), 2);
//! assert_eq!(fwd.max_forwards(), Some(69));
//! assert!(fwd.header(sip_core::HeaderName::RecordRoute).is_some());
//!
//! // The backend answers 200 OK; it goes to the caller without our Via.
//! let ok = format!(
//!     "SIP/2.0 200 OK\r\nVia: {}\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc1;rport=5070\r\n\
//!      From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=b1\r\nCall-ID: call-1\r\n\
//!      CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
//!     std::str::from_utf8(fwd.header(sip_core::HeaderName::Via).unwrap()).unwrap()
//! );
//! proxy.handle_datagram(now, Origin::udp(backend, lb), Bytes::from(ok));
//! let up = proxy.poll_transmit().unwrap();
//! assert_eq!(up.destination, caller);
//! assert_eq!(Message::parse(up.bytes).unwrap().via_count(), 1);
//! let snapshot = dispatcher.snapshot();
//! let backend_state = &snapshot.set(1).unwrap().destinations()[0];
//! assert_eq!(backend_state.stats().active_calls, 1);
//! ```

#![warn(missing_docs)]

pub mod branch;
pub mod calls;
pub mod config;
pub mod cookie;
pub mod output;
mod proxy;
mod recent;
pub mod sanity;
mod slab;
mod timer;

pub use calls::CallTable;
pub use config::{Failover, LocalEndpoint, Mode, ProbeConfig, ProxyConfig, QueueConfig, Timers};
pub use output::{DropReason, Event, FailoverCause, Origin, ProxyStats, Transmit};
pub use proxy::Proxy;
