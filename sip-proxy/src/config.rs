//! Configuration of a [`Proxy`](crate::Proxy): mode, local endpoints, routing, timers,
//! failover, probing, queueing and limits.

use std::net::SocketAddr;
use std::time::Duration;

use sip_core::{Limits, Transport};
use sip_dispatch::{Algorithm, HealthConfig, ProbeMode};

/// Stateless or transaction-stateful forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// RFC 3261 §17 transactions on both sides: 100 Trying, retransmissions absorbed,
    /// failover to the next destination, CANCEL, hop-by-hop ACK, load accounting.
    #[default]
    Stateful,
    /// Each message forwarded on its own (§16.11): branches derived from the incoming
    /// request, so retransmissions, CANCEL and non-2xx ACK follow the INVITE.
    Stateless,
}

/// A local address the proxy receives on and sends from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalEndpoint {
    /// Transport of this endpoint.
    pub transport: Transport,
    /// The socket address (what the runtime binds and sends from).
    pub addr: SocketAddr,
    /// Host written into Via sent-by and Record-Route (defaults to the address's IP; set it
    /// when the proxy is reached through NAT or by name).
    pub advertise: Option<String>,
    /// Port written into Via and Record-Route (defaults to `addr`'s port).
    pub advertise_port: Option<u16>,
}

impl LocalEndpoint {
    /// An endpoint that advertises its own address.
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        LocalEndpoint {
            transport,
            addr,
            advertise: None,
            advertise_port: None,
        }
    }

    /// The host as it appears in Via and Record-Route (IPv6 in brackets).
    pub fn host_text(&self) -> String {
        match &self.advertise {
            Some(h) => h.clone(),
            None => match self.addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            },
        }
    }

    /// The port as it appears in Via and Record-Route.
    pub fn port(&self) -> u16 {
        self.advertise_port.unwrap_or(self.addr.port())
    }
}

/// RFC 3261 timer values and the final-response timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// T1, the round-trip estimate (500 ms).
    pub t1: Duration,
    /// T2, the cap of non-INVITE retransmission intervals (4 s).
    pub t2: Duration,
    /// T4, how long a message may stay in the network (5 s).
    pub t4: Duration,
    /// How long a client transaction waits for any response before it fails over (Kamailio
    /// `fr_timer`; default 64·T1 = 32 s capped here at 5 s so a dead backend is left fast).
    pub no_response: Duration,
    /// How long an INVITE client transaction waits for a final response after a
    /// provisional one (Kamailio `fr_inv_timer`, timer C; default 120 s). Then it is
    /// cancelled and 408 is answered.
    pub no_final_invite: Duration,
    /// How long a transaction lingers after its final response to absorb retransmissions
    /// (timers D, J, L and M; RFC 3261 says 32 s for D and 64·T1 for the others over UDP,
    /// Kamailio's `wait_timer` uses 5 s, which is what we default to).
    pub wait: Duration,
    /// How long a confirmed call counts as active without any in-dialog request or BYE
    /// (the dialog timeout that closes the books on a call whose BYE was lost).
    pub dialog: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            no_response: Duration::from_secs(5),
            no_final_invite: Duration::from_secs(120),
            wait: Duration::from_secs(5),
            dialog: Duration::from_secs(3 * 3600),
        }
    }
}

/// Which final responses from a destination make the proxy try the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failover {
    /// Codes that fail over (default: 408 and every 5xx).
    pub codes: Vec<u16>,
    /// Whole classes that fail over (5 → every 5xx).
    pub classes: Vec<u8>,
    /// At most this many destinations are tried for one request (including the first).
    pub max_attempts: usize,
    /// Retry-After sent with our own 503 when no destination is left.
    pub retry_after: u32,
}

impl Default for Failover {
    fn default() -> Self {
        Failover {
            codes: vec![408],
            classes: vec![5],
            max_attempts: 4,
            retry_after: 30,
        }
    }
}

impl Failover {
    /// True when a final response with `code` makes the proxy try the next destination.
    pub fn fails_over(&self, code: u16) -> bool {
        self.codes.contains(&code) || self.classes.contains(&((code / 100) as u8))
    }
}

/// OPTIONS health probing (Kamailio `ds_ping_interval`, `ds_probing_mode`,
/// `ds_ping_from`, `ds_ping_reply_codes`, `ds_probing_threshold`,
/// `ds_inactive_threshold`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Time between probe rounds.
    pub interval: Duration,
    /// Which destinations are probed.
    pub mode: ProbeMode,
    /// The From URI of probes.
    pub from: String,
    /// Method of the probe (OPTIONS).
    pub method: String,
    /// Reply codes (besides 2xx) that count as alive, e.g. 404, 405, 501.
    pub alive_codes: Vec<u16>,
    /// How long one probe may go unanswered before it counts as failed.
    pub timeout: Duration,
    /// State-transition thresholds.
    pub health: HealthConfig,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            interval: Duration::from_secs(10),
            mode: ProbeMode::All,
            from: "sip:sip-lb@localhost".into(),
            method: "OPTIONS".into(),
            alive_codes: Vec::new(),
            timeout: Duration::from_secs(4),
            health: HealthConfig::default(),
        }
    }
}

impl ProbeConfig {
    /// True when a reply with `code` proves the destination alive.
    pub fn is_alive_code(&self, code: u16) -> bool {
        (200..300).contains(&code) || self.alive_codes.contains(&code)
    }
}

/// Holding INVITEs while every destination is full (the autonomous-queue algorithm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// At most this many INVITEs wait per worker; beyond, 503.
    pub capacity: usize,
    /// How long an INVITE may wait before it is answered 503.
    pub deadline: Duration,
    /// How often a waiting queue re-checks for room freed by other workers.
    pub recheck: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 1024,
            deadline: Duration::from_secs(10),
            recheck: Duration::from_millis(20),
        }
    }
}

/// Everything a [`Proxy`](crate::Proxy) needs to know.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Stateful or stateless forwarding.
    pub mode: Mode,
    /// The endpoints requests arrive on (used to recognise Route and Request-URI values
    /// that name the proxy, and for Record-Route).
    pub listeners: Vec<LocalEndpoint>,
    /// Per transport, the endpoint requests to destinations are sent from (its address goes
    /// into our Via, so responses come back to it). Falls back to the first listener of the
    /// transport.
    pub outbound: Vec<LocalEndpoint>,
    /// Other names and addresses that mean "this proxy" in a Route or Request-URI.
    pub aliases: Vec<String>,
    /// The destination set new requests are balanced over.
    pub set: u32,
    /// The balancing algorithm.
    pub algorithm: Algorithm,
    /// Timers.
    pub timers: Timers,
    /// Failover rules.
    pub failover: Failover,
    /// Secret for the Record-Route cookie (HMAC-SHA256). Every instance that shares it can
    /// route the dialogs of the others.
    pub cookie_key: Vec<u8>,
    /// Health probing; `None` disables it (e.g. on every worker but one).
    pub probing: Option<ProbeConfig>,
    /// The queue of the autonomous-queue algorithm.
    pub queue: QueueConfig,
    /// Parser limits (size → 513, counts → 400).
    pub limits: Limits,
    /// Option tags accepted in Proxy-Require (others → 420).
    pub supported: Vec<String>,
    /// Worker number (0-255): written into branches so a response can be steered to the
    /// worker that owns its transaction.
    pub worker: u8,
    /// Distinguishes the branches (and the Call-IDs of probes) this process writes from
    /// those of an earlier run: transaction branches start their sequence here. RFC 3261
    /// §8.1.1.7 wants a branch unique across time, and a backend that still remembers a
    /// transaction of the previous run (a restart within its 32 s) must not take a new
    /// request for a retransmission of an old one. The runtime sets a random value per
    /// start; 0 (the default) gives reproducible output for tests.
    pub instance: u32,
    /// Server / User-Agent value of messages the proxy originates.
    pub user_agent: String,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            mode: Mode::Stateful,
            listeners: Vec::new(),
            outbound: Vec::new(),
            aliases: Vec::new(),
            set: 1,
            algorithm: Algorithm::RoundRobin,
            timers: Timers::default(),
            failover: Failover::default(),
            cookie_key: Vec::new(),
            probing: None,
            queue: QueueConfig::default(),
            limits: Limits::default(),
            supported: Vec::new(),
            worker: 0,
            instance: 0,
            user_agent: "sip-lb".into(),
        }
    }
}
