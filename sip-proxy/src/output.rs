//! What a [`Proxy`](crate::Proxy) hands to its runtime: messages to transmit, events to
//! log and count, and counters.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sip_core::Transport;
use sip_dispatch::{Destination, StateChange};

/// Where a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The peer's address.
    pub source: SocketAddr,
    /// Our address it arrived on.
    pub local: SocketAddr,
    /// The transport it arrived over.
    pub transport: Transport,
    /// The stream connection it arrived on (TCP, TLS, WebSocket), for responses that must
    /// go back on it (RFC 5923).
    pub connection: Option<u64>,
}

impl Origin {
    /// A datagram from `source` received on `local`.
    pub fn udp(source: SocketAddr, local: SocketAddr) -> Self {
        Origin {
            source,
            local,
            transport: Transport::Udp,
            connection: None,
        }
    }
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// Over which transport.
    pub transport: Transport,
    /// The local address to send from (`None`: any socket of the transport).
    pub local: Option<SocketAddr>,
    /// The connection to use when it is still open (responses on streams).
    pub connection: Option<u64>,
    /// The whole message.
    pub bytes: Bytes,
}

/// Why a message was dropped without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// A response or ACK that does not parse.
    Malformed,
    /// A response whose top Via is not ours.
    NotOurVia,
    /// A response for a transaction that no longer exists (not a 2xx to INVITE).
    StrayResponse,
    /// A response whose next Via names a host we cannot reach without DNS, or a broadcast
    /// or unspecified address.
    Unroutable,
    /// An ACK that matches nothing and carries no route to follow.
    StrayAck,
    /// A response carrying a branch of another worker (the runtime should steer those).
    OtherWorker,
}

impl DropReason {
    /// A short name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NotOurVia => "not_our_via",
            DropReason::StrayResponse => "stray_response",
            DropReason::Unroutable => "unroutable",
            DropReason::StrayAck => "stray_ack",
            DropReason::OtherWorker => "other_worker",
        }
    }
}

/// Why the proxy moved on to the next destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailoverCause {
    /// No response within the configured time.
    Timeout,
    /// A final response with a failover code.
    Response(u16),
}

/// Something a runtime logs or counts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A destination changed state (probe results, passive failures).
    DestinationState {
        /// The destination.
        destination: Arc<Destination>,
        /// The change.
        change: StateChange,
    },
    /// A call was answered (2xx to the initial INVITE).
    CallStarted {
        /// Where it went.
        destination: Arc<Destination>,
    },
    /// A call ended (BYE, or its dialog timed out).
    CallEnded {
        /// Where it had gone.
        destination: Arc<Destination>,
        /// True when it ended by the dialog timeout rather than a BYE.
        timed_out: bool,
    },
    /// A request was answered by the proxy with an error.
    Rejected {
        /// Status code sent.
        code: u16,
        /// Why (the reason phrase).
        reason: &'static str,
        /// Who sent the request.
        source: SocketAddr,
    },
    /// A message was dropped.
    Dropped {
        /// Why.
        reason: DropReason,
        /// Who sent it.
        source: SocketAddr,
    },
    /// A request moved on to its next destination.
    Failover {
        /// The destination that failed.
        destination: Arc<Destination>,
        /// Why.
        cause: FailoverCause,
    },
}

/// Counters of one proxy (one worker); a runtime sums them over workers for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Requests received, by method (index: [`method_index`]).
    pub requests_by_method: [u64; METHODS],
    /// Responses received from downstream, by class (index 1..=6).
    pub responses_by_class: [u64; 7],
    /// Requests forwarded (every attempt, not retransmissions).
    pub requests_forwarded: u64,
    /// Responses forwarded upstream.
    pub responses_forwarded: u64,
    /// Responses the proxy generated itself, by class (index 1..=6).
    pub local_replies_by_class: [u64; 7],
    /// Requests rejected by sanity checks or routing (4xx/5xx sent by us).
    pub rejected: u64,
    /// Messages dropped.
    pub dropped: u64,
    /// Retransmissions absorbed (answered from transaction state or ignored).
    pub retransmissions_absorbed: u64,
    /// Retransmissions sent by our timers.
    pub retransmissions_sent: u64,
    /// Failovers to another destination.
    pub failovers: u64,
    /// Client transactions that timed out.
    pub timeouts: u64,
    /// OPTIONS probes sent.
    pub probes_sent: u64,
    /// Probes answered with an alive code.
    pub probes_alive: u64,
    /// Probes failed (timeout or other code).
    pub probes_failed: u64,
    /// INVITEs queued by the autonomous-queue algorithm.
    pub queued: u64,
    /// Queued INVITEs answered 503 at their deadline.
    pub queue_timeouts: u64,
    /// Current server transactions.
    pub server_transactions: u64,
    /// Current client transactions.
    pub client_transactions: u64,
    /// Current queue length.
    pub queue_len: u64,
    /// Transaction timers armed and not yet come round (retransmission, timeout and
    /// wait timers; a timer whose transaction has moved on stays counted until its
    /// time). A busy proxy holds about six per call answered in the last five seconds.
    pub timers_pending: u64,
}

/// Number of method slots in [`ProxyStats::requests_by_method`].
pub const METHODS: usize = sip_core::Method::KNOWN.len() + 1;

/// Method names in the order of [`ProxyStats::requests_by_method`]: those of
/// [`sip_core::Method::KNOWN`], then `other`.
pub const METHOD_NAMES: [&str; METHODS] = {
    let mut names = ["other"; METHODS];
    let mut i = 0;
    while i < sip_core::Method::KNOWN.len() {
        if let Some(n) = sip_core::Method::KNOWN[i].as_str() {
            names[i] = n;
        }
        i += 1;
    }
    names
};

/// The slot of a method in [`ProxyStats::requests_by_method`]: its place in
/// [`sip_core::Method::KNOWN`], the last slot for an extension method.
pub fn method_index(m: sip_core::Method) -> usize {
    // (The declaration order, which `Method::KNOWN` follows; sip-core tests it.)
    m as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_core::Method;

    #[test]
    fn each_method_counts_under_its_own_name() {
        for m in Method::KNOWN {
            assert_eq!(Some(METHOD_NAMES[method_index(m)]), m.as_str());
        }
        assert_eq!(METHOD_NAMES[method_index(Method::Extension)], "other");
        assert_eq!(method_index(Method::Extension), METHODS - 1);
    }
}
