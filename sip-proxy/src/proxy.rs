//! The proxy state machine.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sip_core::builder::{OptionsProbe, ResponseBuilder, ViaParts, write_ip};
use sip_core::editor::{Editor, without_top_via};
use sip_core::name_addr::NameAddr;
use sip_core::scan::CommaSplit;
use sip_core::uri::{Host, Uri};
use sip_core::values::{Credentials, RetryAfter};
use sip_core::{Framing, HeaderName, Message, Method, ParseError, ParseOptions, Span, Transport};
use sip_dispatch::{Destination, Dispatcher, SelectKey, SelectOutcome, Selection, Snapshot};
use smallvec::SmallVec;

use crate::branch::{BranchKind, FieldHash, OurBranch};
use crate::calls::CallTable;
use crate::config::{LocalEndpoint, Mode, ProxyConfig};
use crate::cookie::{COOKIE_PARAM, CookieKey, RouteCookie, TagCache};
use crate::output::{DropReason, Event, FailoverCause, Origin, ProxyStats, Transmit, method_index};
use crate::recent::RecentHops;
use crate::sanity::{Refusal, check_request, reply_to_unparsable, unsupported_tags};
use crate::slab::Slab;
use crate::timer::TimerWheel;

/// A hasher for keys that are already hashes.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type PassThroughMap<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

/// A multiply-xorshift hasher for the map from a destination's address to the destination.
/// That map holds only the configured destinations, so a key an attacker picks (a
/// response's source, a cookie's address) cannot make it grow or collide in bulk: SipHash's
/// protection is not needed there, and its cost (about 150 instructions per lookup) is.
#[derive(Default)]
struct AddrHasher(u64);

impl AddrHasher {
    fn mix(&mut self, word: u64) {
        // The multiplication carries a difference only upwards; the shift brings the high
        // half down again (an IPv6 address's last bytes land in the top of a word).
        let x = (self.0 ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 32);
    }
}

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.mix(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }
}

/// Where a request goes next.
#[derive(Clone, Debug)]
struct NextHop {
    addr: SocketAddr,
    transport: Transport,
    destination: Option<Arc<Destination>>,
}

impl NextHop {
    /// The hop to a destination of the set (`None` while its address is unresolved).
    fn to_destination(d: &Arc<Destination>) -> Option<NextHop> {
        let t = d.target();
        t.socket_addr.map(|addr| NextHop {
            addr,
            transport: t.transport,
            destination: Some(d.clone()),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerState {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

#[derive(Debug)]
struct ServerTx {
    key: u64,
    /// The request as received. Kept as bytes, not as the parsed `Message` (800 bytes of
    /// spans): only the rare paths after the first attempt (failover, local replies,
    /// the queue) need it parsed, and they parse it again.
    request: Bytes,
    origin: Origin,
    invite: bool,
    state: ServerState,
    /// The last response sent upstream, for a retransmitted request; `None` for an
    /// INVITE in Proceeding whose last response is our 100 Trying (built again from the
    /// retransmission instead of kept).
    last_response: Option<Bytes>,
    retransmit_at: Option<Instant>,
    interval: Duration,
    expire_at: Option<Instant>,
    /// Routes naming us at the top of the request, removed when forwarding.
    pop_routes: u8,
    max_forwards: u8,
    record_route: bool,
    /// Fixed next hop (in-dialog requests): no selection, no failover.
    fixed: Option<NextHop>,
    alternates: SmallVec<[Arc<Destination>; 4]>,
    next_alternate: usize,
    attempts: usize,
    client: Option<(u32, u32)>,
    /// The best final response so far (§16.7), boxed: most transactions never hold one.
    best: Option<Box<Message>>,
    cancelled: bool,
    queued: bool,
    initial_invite: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientState {
    Calling,
    Proceeding,
    Completed,
    Accepted,
}

#[derive(Debug)]
struct CancelState {
    bytes: Bytes,
    retransmit_at: Option<Instant>,
    interval: Duration,
    expire_at: Instant,
}

#[derive(Debug)]
struct ClientTx {
    server: Option<(u32, u32)>,
    destination: Option<Arc<Destination>>,
    hop: SocketAddr,
    transport: Transport,
    local: Option<SocketAddr>,
    invite: bool,
    state: ClientState,
    request: Bytes,
    sent_at: Instant,
    retransmit_at: Option<Instant>,
    interval: Duration,
    timeout_at: Option<Instant>,
    expire_at: Option<Instant>,
    /// Holds one outstanding-transaction count on the destination.
    accounted: bool,
    /// The CANCEL in progress, boxed: few transactions are cancelled, and inline it
    /// would add 72 bytes to every one.
    cancel: Option<Box<CancelState>>,
    /// A CANCEL was sent (it may since have been answered or given up).
    cancel_sent: bool,
    cancel_pending: bool,
    ack: Option<Bytes>,
    probe: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerRef {
    Server(u32, u32),
    Client(u32, u32),
}

/// Most timers [`Proxy::handle_timeout`] takes from the wheel before firing them (see
/// `Proxy::touch_due`).
const DUE_BATCH: usize = 32;

/// The sans-IO SIP proxy: feed it messages and timeouts, poll it for messages to send,
/// the next deadline and events. One per worker thread; workers share only the
/// [`Dispatcher`] and the [`CallTable`].
#[derive(Debug)]
pub struct Proxy {
    cfg: ProxyConfig,
    dispatcher: Arc<Dispatcher>,
    calls: Arc<CallTable>,
    cookie_key: CookieKey,
    /// Cookie tags computed before (one HMAC per destination, not per request).
    cookie_tags: std::cell::RefCell<TagCache>,
    parse_options: ParseOptions,
    /// Storage each datagram is parsed into (boxed: taken out while the message is
    /// handled, so no 800-byte `Message` is built and moved per datagram).
    incoming: Option<Box<Message>>,
    servers: Slab<ServerTx>,
    server_index: PassThroughMap<(u32, u32)>,
    clients: Slab<ClientTx>,
    timers: TimerWheel<TimerRef>,
    /// The timers [`Self::handle_timeout`] is firing, a batch at a time (kept for its room).
    due: Vec<TimerRef>,
    /// Stateless mode: where recent requests went (retransmissions, CANCEL, non-2xx ACK).
    recent: RecentHops,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    selection: Selection,
    scratch: Vec<Arc<Destination>>,
    index_snapshot: Option<Arc<Snapshot>>,
    by_addr: HashMap<SocketAddr, Arc<Destination>, BuildHasherDefault<AddrHasher>>,
    next_probe: Option<Instant>,
    next_sweep: Option<Instant>,
    queue: VecDeque<((u32, u32), Instant)>,
    next_queue_check: Option<Instant>,
    probe_seq: u32,
    stats: ProxyStats,
    /// Via/Record-Route host text of every endpoint, formatted once.
    host_texts: Vec<(SocketAddr, String)>,
    /// `host:port` of every endpoint as our Via's sent-by writes it (none with a `;`,
    /// which a sent-by cannot hold).
    sent_by_texts: Vec<Vec<u8>>,
    /// What our Record-Route writes before its cookie, for every endpoint
    /// (`sip:host:port[;transport=t];lr;lbd=`), kept only where the general reading of a
    /// Route finds it ours (`Self::our_route_prefixes`).
    rr_prefixes: Vec<Vec<u8>>,
    /// The constant parts of our Via and Record-Route for every endpoint (listeners, then
    /// outbound endpoints), written once instead of per forwarded request.
    ep_texts: Vec<EndpointText>,
}

/// What our Via and Record-Route write for one endpoint, but for the branch and cookie.
#[derive(Debug)]
struct EndpointText {
    /// `SIP/2.0/<transport> host:port;branch=`
    via_prefix: Vec<u8>,
    /// `<sip:host:port[;transport=t];lr;lbd=`
    rr_prefix: Vec<u8>,
}

fn hash_bytes(b: &[u8]) -> u64 {
    FieldHash::default().field(b).finish()
}

fn ip_matches_host(host: &Host<'_>, ep: &LocalEndpoint) -> bool {
    match (host, &ep.advertise) {
        (Host::Domain(d), Some(a)) => d.eq_ignore_ascii_case(a.as_bytes()),
        (Host::Domain(_), None) => false,
        (h, adv) => {
            let ip = h.ip();
            ip == Some(ep.addr.ip())
                || adv.as_deref().is_some_and(|a| {
                    a.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .ok()
                        == ip
                })
        }
    }
}

fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    inner.as_ptr() as usize - outer.as_ptr() as usize
}

/// A small stack buffer for header values we write (no heap for typical sizes).
type Scratch = SmallVec<[u8; 192]>;

impl Proxy {
    /// A proxy over `dispatcher`'s destinations, sharing the call table `calls` with the
    /// other workers.
    pub fn new(cfg: ProxyConfig, dispatcher: Arc<Dispatcher>, calls: Arc<CallTable>) -> Self {
        let cookie_key = CookieKey::new(&cfg.cookie_key);
        let parse_options = ParseOptions {
            limits: cfg.limits,
            framing: Framing::Datagram,
        };
        let mut p = Proxy {
            cookie_key,
            cookie_tags: std::cell::RefCell::new(TagCache::default()),
            parse_options,
            incoming: None,
            servers: Slab::default(),
            server_index: PassThroughMap::default(),
            clients: Slab::with_seed(cfg.instance),
            timers: TimerWheel::default(),
            due: Vec::new(),
            recent: RecentHops::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            selection: Selection::default(),
            scratch: Vec::new(),
            index_snapshot: None,
            by_addr: HashMap::default(),
            next_probe: None,
            next_sweep: None,
            queue: VecDeque::new(),
            next_queue_check: None,
            probe_seq: 0,
            stats: ProxyStats::default(),
            host_texts: cfg
                .listeners
                .iter()
                .chain(cfg.outbound.iter())
                .map(|e| (e.addr, e.host_text()))
                .collect(),
            sent_by_texts: cfg
                .listeners
                .iter()
                .chain(cfg.outbound.iter())
                .map(|e| format!("{}:{}", e.host_text(), e.port()).into_bytes())
                .filter(|t| !t.contains(&b';'))
                .collect(),
            rr_prefixes: Vec::new(),
            ep_texts: Vec::new(),
            dispatcher,
            calls,
            cfg,
        };
        p.rr_prefixes = p.our_route_prefixes();
        p.ep_texts = p.endpoint_texts();
        p
    }

    /// [`EndpointText`] of every endpoint, in the order of `Self::endpoint`.
    fn endpoint_texts(&self) -> Vec<EndpointText> {
        let eps = self.cfg.listeners.iter().chain(self.cfg.outbound.iter());
        eps.map(|ep| {
            let host = self.host_of(ep);
            let mut via = b"SIP/2.0/".to_vec();
            via.extend_from_slice(ep.transport.via_token().as_bytes());
            via.push(b' ');
            via.extend_from_slice(host.as_bytes());
            via.push(b':');
            via.extend_from_slice(itoa::Buffer::new().format(ep.port()).as_bytes());
            via.extend_from_slice(b";branch=");
            let mut rr: Scratch = SmallVec::new();
            write_rr(&mut rr, ep, host, b"");
            rr.pop(); // the closing `>`, written after the cookie
            EndpointText {
                via_prefix: via,
                rr_prefix: rr.to_vec(),
            }
        })
        .collect()
    }

    /// Endpoint `i` of the listeners followed by the outbound endpoints.
    fn endpoint(&self, i: usize) -> &LocalEndpoint {
        let l = &self.cfg.listeners;
        l.get(i).unwrap_or_else(|| &self.cfg.outbound[i - l.len()])
    }

    /// The Record-Route text of every endpoint up to its cookie. A prefix is kept only
    /// when the general reading of a Route (`Self::our_routes_general`) takes that Route,
    /// with a cookie of hex digits, as ours with that cookie: the verbatim comparison then
    /// never decides otherwise than the general reading would.
    fn our_route_prefixes(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        for ep in self.cfg.listeners.iter().chain(self.cfg.outbound.iter()) {
            let mut rr: Scratch = SmallVec::new();
            write_rr(&mut rr, ep, self.host_of(ep), b"");
            // `<` + prefix + `>`: the prefix is what lies between.
            let Some(prefix) = rr.get(1..rr.len() - 1) else {
                continue;
            };
            let sample = [b"<", prefix, b"0a>"].concat();
            let Ok(na) = NameAddr::parse(&sample) else {
                continue;
            };
            let agrees = na.uri().is_ok_and(|u| {
                self.uri_is_us(&u) && u.param(COOKIE_PARAM) == Some(Some(&b"0a"[..]))
            });
            if agrees && !out.iter().any(|p| p.as_slice() == prefix) {
                out.push(prefix.to_vec());
            }
        }
        out
    }

    /// The configuration.
    pub fn config(&self) -> &ProxyConfig {
        &self.cfg
    }

    /// The dispatcher this proxy balances with.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// Counters of this proxy.
    pub fn stats(&self) -> ProxyStats {
        let mut s = self.stats.clone();
        s.server_transactions = self.servers.len() as u64;
        s.client_transactions = self.clients.len() as u64;
        s.queue_len = self.queue.len() as u64;
        s.timers_pending = self.timers.len() as u64;
        s
    }

    /// Number of live server and client transactions.
    pub fn transaction_count(&self) -> (usize, usize) {
        (self.servers.len(), self.clients.len())
    }

    // ---- the poll interface ------------------------------------------------------------

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.timers.next_deadline();
        for c in [self.next_probe, self.next_sweep, self.next_queue_check]
            .into_iter()
            .flatten()
        {
            t = Some(t.map_or(c, |t: Instant| t.min(c)));
        }
        t
    }

    /// Starts periodic work (probes, dialog sweeping). Call once with the current time.
    pub fn start(&mut self, now: Instant) {
        if self.cfg.probing.is_some() {
            self.next_probe = Some(now);
        }
        self.next_sweep = Some(now + Duration::from_secs(1));
    }

    // ---- input -------------------------------------------------------------------------

    /// Handles a received message (a datagram, or one framed stream message).
    pub fn handle_datagram(&mut self, now: Instant, origin: Origin, data: Bytes) {
        let mut msg = self.incoming.take().unwrap_or_default();
        match msg.parse_in_place_or_return(data, &self.parse_options) {
            Ok(()) => self.handle_parsed(now, origin, &msg),
            Err((data, e)) => self.handle_unparsable(origin, &data, &e),
        }
        // Nothing keeps the datagram's buffer past its handling.
        msg.clear();
        self.incoming = Some(msg);
    }

    /// Handles a message the runtime already parsed.
    pub fn handle_message(&mut self, now: Instant, origin: Origin, msg: Message) {
        self.handle_parsed(now, origin, &msg);
    }

    fn handle_parsed(&mut self, now: Instant, origin: Origin, msg: &Message) {
        if msg.is_request() {
            self.handle_request(now, origin, msg);
        } else {
            self.handle_response(now, origin, msg);
        }
    }

    fn handle_unparsable(&mut self, origin: Origin, data: &[u8], err: &ParseError) {
        let tag = self.tag_for(data);
        match reply_to_unparsable(data, err, tag.as_bytes()) {
            Some(reply) => {
                self.stats.rejected += 1;
                self.count_local_reply(err.status_code());
                self.events.push_back(Event::Rejected {
                    code: err.status_code(),
                    reason: err.reason_phrase(),
                    source: origin.source,
                });
                self.send_to_origin(&origin, reply);
            }
            None => self.drop_message(origin.source, DropReason::Malformed),
        }
    }

    fn tag_for(&self, seed: &[u8]) -> crate::branch::Branch {
        // A deterministic To tag: a retransmitted request gets the same one.
        OurBranch {
            worker: self.cfg.worker,
            kind: BranchKind::Stateless(hash_bytes(&seed[..seed.len().min(512)])),
            loop_hash: 0,
        }
        .encode()
    }

    fn drop_message(&mut self, source: SocketAddr, reason: DropReason) {
        self.stats.dropped += 1;
        self.events.push_back(Event::Dropped { reason, source });
    }

    fn count_local_reply(&mut self, code: u16) {
        let c = (code / 100).min(6) as usize;
        self.stats.local_replies_by_class[c] += 1;
    }

    fn send_to_origin(&mut self, origin: &Origin, bytes: Bytes) {
        self.transmits.push_back(Transmit {
            destination: origin.source,
            transport: origin.transport,
            local: Some(origin.local),
            connection: origin.connection,
            bytes,
        });
    }

    /// Answers `req` ourselves (statelessly).
    fn reply(&mut self, origin: &Origin, req: &Message, code: u16, reason: &'static str) {
        self.reply_with(origin, req, code, reason, None, &[]);
    }

    fn reply_with(
        &mut self,
        origin: &Origin,
        req: &Message,
        code: u16,
        reason: &'static str,
        retry_after: Option<u32>,
        extra: &[(&[u8], &[u8])],
    ) {
        if req.method() == Some(Method::Ack) {
            return;
        }
        let bytes = self.build_reply(req, origin.source, code, reason, retry_after, extra);
        if code >= 300 {
            self.stats.rejected += 1;
            self.events.push_back(Event::Rejected {
                code,
                reason,
                source: origin.source,
            });
        }
        self.count_local_reply(code);
        self.send_to_origin(origin, bytes);
    }

    fn build_reply(
        &self,
        req: &Message,
        source: SocketAddr,
        code: u16,
        reason: &str,
        retry_after: Option<u32>,
        extra: &[(&[u8], &[u8])],
    ) -> Bytes {
        // A To tag of our own, the same for a retransmission; a 100 Trying and a request
        // that has one already get none, so the hash is not computed for them (every
        // INVITE gets a 100).
        let tag = (code > 100 && req.to_tag().is_none()).then(|| {
            let seed = FieldHash::default()
                .field(req.call_id().unwrap_or_default())
                .field(req.from_tag().unwrap_or_default())
                .field(req.top_via_branch().unwrap_or_default())
                .finish();
            OurBranch {
                worker: self.cfg.worker,
                kind: BranchKind::Stateless(seed),
                loop_hash: 0,
            }
            .encode()
        });
        let mut b = ResponseBuilder::new(req, code, reason)
            .source(source)
            .header(b"Server", self.cfg.user_agent.as_bytes());
        if let Some(t) = &tag {
            b = b.to_tag(&t.as_bytes()[crate::branch::PREFIX.len()..]);
        }
        for (n, v) in extra {
            b = b.header(n, v);
        }
        if let Some(s) = retry_after {
            b = b.retry_after(s);
        }
        b.build()
    }

    // ---- requests ----------------------------------------------------------------------

    fn handle_request(&mut self, now: Instant, origin: Origin, msg: &Message) {
        let method = msg.method().unwrap_or(Method::Extension);
        self.stats.requests_by_method[method_index(method)] += 1;
        if let Err(r) = check_request(msg, &self.cfg.supported) {
            return self.refuse_request(&origin, msg, method, r);
        }
        if self.is_loop(msg) {
            self.reply(&origin, msg, 482, "Loop Detected");
            return;
        }
        // Only an OPTIONS asks whether the Request-URI names us (a keep-alive to the
        // balancer itself): the view is not built for other requests.
        let to_us = method == Method::Options
            && msg
                .request_uri_parsed()
                .is_some_and(|uri| self.uri_is_us(&uri));
        self.route_request(now, origin, msg, method, to_us)
    }

    /// The answer to a request that fails the sanity checks (none to an ACK).
    fn refuse_request(&mut self, origin: &Origin, msg: &Message, method: Method, r: Refusal) {
        if method == Method::Ack {
            self.drop_message(origin.source, DropReason::Malformed);
        } else if r.code == 420 {
            let mut tags: Scratch = SmallVec::new();
            for t in unsupported_tags(msg, &self.cfg.supported) {
                if !tags.is_empty() {
                    tags.extend_from_slice(b", ");
                }
                tags.extend_from_slice(t);
            }
            self.reply_with(
                origin,
                msg,
                r.code,
                r.reason,
                None,
                &[(b"Unsupported", &tags)],
            );
        } else {
            self.reply(origin, msg, r.code, r.reason);
        }
    }

    /// A request that passed the sanity checks and is no loop: `to_us` when its
    /// Request-URI names this proxy.
    fn route_request(
        &mut self,
        now: Instant,
        origin: Origin,
        msg: &Message,
        method: Method,
        to_us: bool,
    ) {
        let in_dialog = msg.to_tag().is_some();
        if method == Method::Options && to_us && !in_dialog && self.only_our_routes(msg) {
            self.reply_with(
                &origin,
                msg,
                200,
                "OK",
                None,
                &[(
                    b"Allow",
                    b"INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, PRACK, SUBSCRIBE, NOTIFY, PUBLISH, INFO, REFER, MESSAGE, UPDATE",
                )],
            );
            return;
        }
        if msg.max_forwards() == Some(0) {
            if method == Method::Ack {
                self.drop_message(origin.source, DropReason::Malformed);
            } else {
                self.reply(&origin, msg, 483, "Too Many Hops");
            }
            return;
        }
        match self.cfg.mode {
            Mode::Stateful => self.stateful_request(now, origin, msg, method, in_dialog),
            Mode::Stateless => self.stateless_request(now, origin, msg, method, in_dialog),
        }
    }

    /// True when a Via of ours in the request carries the loop hash this request would get
    /// (§16.3 step 4): the request came back unchanged.
    fn is_loop(&self, msg: &Message) -> bool {
        if msg.via_count() < 2 {
            return false;
        }
        let lh = self.loop_hash(msg);
        msg.vias().skip(1).flatten().any(|v| {
            v.branch()
                .and_then(OurBranch::decode)
                .is_some_and(|b| b.loop_hash == lh)
                && self.sent_by_is_us(&v)
        })
    }

    fn loop_hash(&self, msg: &Message) -> u32 {
        FieldHash::default()
            .field(msg.request_uri().unwrap_or_default())
            .field(msg.call_id().unwrap_or_default())
            .field(msg.from_tag().unwrap_or_default())
            .field(msg.to_tag().unwrap_or_default())
            .field(&msg.cseq().map_or(0, |c| c.0).to_be_bytes())
            .finish() as u32
    }

    /// True when the top Via's sent-by is, byte for byte, what our Via writes for one of
    /// our endpoints (then [`Self::sent_by_is_us`] holds too, without parsing the Via
    /// again); false says nothing.
    fn top_sent_by_is_ours_verbatim(&self, msg: &Message) -> bool {
        let Some((_, span)) = msg.top_via_span() else {
            return false;
        };
        let Some(rest) = msg.slice(span).strip_prefix(b"SIP/2.0/") else {
            return false;
        };
        let Some(sp) = rest.iter().position(|&c| c == b' ') else {
            return false;
        };
        // The sent-by ends at the first `;` (or the end): a text of ours (none holds a `;`)
        // followed by either is the whole sent-by, without searching for the `;`.
        let rest = &rest[sp + 1..];
        self.sent_by_texts
            .iter()
            .any(|t| rest.starts_with(t) && matches!(rest.get(t.len()), None | Some(b';')))
    }

    fn sent_by_is_us(&self, v: &sip_core::via::Via<'_>) -> bool {
        let host = v.host();
        let t = v.transport().unwrap_or(Transport::Udp);
        let port = v.port().unwrap_or(t.default_port());
        self.cfg
            .listeners
            .iter()
            .chain(self.cfg.outbound.iter())
            .any(|ep| ep.port() == port && ip_matches_host(&host, ep))
    }

    fn uri_is_us(&self, uri: &Uri<'_>) -> bool {
        let Some(host) = uri.host() else {
            return false;
        };
        let port = uri.port_or_default();
        let by_alias = match host {
            Host::Domain(d) => self
                .cfg
                .aliases
                .iter()
                .any(|a| a.as_bytes().eq_ignore_ascii_case(d)),
            _ => false,
        };
        by_alias
            || self
                .cfg
                .listeners
                .iter()
                .chain(self.cfg.outbound.iter())
                .any(|ep| ep.port() == port && ip_matches_host(&host, ep))
    }

    fn only_our_routes(&self, msg: &Message) -> bool {
        msg.routes()
            .all(|r| matches!(r.map(|na| na.uri()), Ok(Ok(u)) if self.uri_is_us(&u)))
    }

    /// Our Route values at the top of the request (at most 2, RFC 5658 double
    /// Record-Route), the cookie they carry, and the Route value after them, if any (one
    /// pass over the Route values).
    #[allow(clippy::type_complexity)]
    fn our_routes<'m>(
        &self,
        msg: &'m Message,
    ) -> Result<(u8, Option<RouteCookie>, Option<NameAddr<'m>>), Refusal> {
        // The usual in-dialog request carries one Route, the Record-Route we wrote, byte
        // for byte: then only its cookie needs reading (no name-addr, no URI parse). A
        // cookie that decodes is all hex digits, so the general reading would take the
        // same Route with the same cookie; any other text is left to the general reading
        // (which refuses a bad cookie).
        if msg.route_count() == 1
            && let Some(text) = self.our_route_verbatim(msg)
            && let Ok(c) = RouteCookie::decode_cached(
                text,
                &self.cookie_key,
                &mut self.cookie_tags.borrow_mut(),
            )
        {
            return Ok((1, Some(c), None));
        }
        self.our_routes_general(msg)
    }

    /// The text between one of `rr_prefixes` and the closing `>` of the request's top
    /// Route (`<`, prefix, text, `>`): when the text is hex digits, the Route is byte for
    /// byte what our Record-Route writes, and the text its cookie (the caller checks the
    /// digits by decoding them); `None` says nothing (the general reading decides).
    fn our_route_verbatim<'m>(&self, msg: &'m Message) -> Option<&'m [u8]> {
        let (_, span) = msg.top_route_span()?;
        let inner = msg.slice(span).strip_prefix(b"<")?.strip_suffix(b">")?;
        let text = self
            .rr_prefixes
            .iter()
            .find_map(|p| inner.strip_prefix(p.as_slice()))?;
        (!text.is_empty()).then_some(text)
    }

    /// [`Self::our_routes`] by parsing each Route value: any spelling of our address,
    /// several Routes, parameters in any order.
    #[allow(clippy::type_complexity)]
    fn our_routes_general<'m>(
        &self,
        msg: &'m Message,
    ) -> Result<(u8, Option<RouteCookie>, Option<NameAddr<'m>>), Refusal> {
        let mut n = 0u8;
        let mut cookie = None;
        if msg.route_count() == 0 {
            return Ok((0, None, None));
        }
        // The usual in-dialog request carries one Route, ours: the parse pass located (and
        // checked) it, so it is read from there without walking the header lines again.
        let only = msg.route_count() == 1;
        let top = only.then(|| msg.top_route()).flatten().map(Ok);
        let rest = (!only).then(|| msg.routes()).into_iter().flatten();
        for r in top.into_iter().chain(rest) {
            let Ok(na) = r else { break };
            let Ok(uri) = na.uri() else {
                return Ok((n, cookie, Some(na)));
            };
            if !self.uri_is_us(&uri) || n == 2 {
                return Ok((n, cookie, Some(na)));
            }
            n += 1;
            if cookie.is_none()
                && let Some(Some(text)) = uri.param(COOKIE_PARAM)
            {
                let decoded = RouteCookie::decode_cached(
                    text,
                    &self.cookie_key,
                    &mut self.cookie_tags.borrow_mut(),
                );
                match decoded {
                    Ok(c) => cookie = Some(c),
                    Err(_) => {
                        return Err(Refusal {
                            code: 403,
                            reason: "Invalid Route Cookie",
                        });
                    }
                }
            }
        }
        Ok((n, cookie, None))
    }

    /// The next hop of an in-dialog request (loose routing, §16.4 and §16.12).
    fn in_dialog_hop(&mut self, msg: &Message, origin: &Origin) -> Result<(u8, NextHop), Refusal> {
        let (ours, cookie, next) = self.our_routes(msg)?;
        if ours == 0 {
            return Err(Refusal {
                code: 404,
                reason: "Not Here",
            });
        }
        // A Route after ours: follow it.
        if let Some(na) = next {
            let hop = na.uri().ok().and_then(|u| self.uri_hop(&u));
            return hop.map(|h| (ours, h)).ok_or(Refusal {
                code: 404,
                reason: "Unresolvable Route",
            });
        }
        if let Some(c) = cookie
            && c.addr != origin.source
        {
            let destination = self.destination_by_addr(c.addr);
            return Ok((
                ours,
                NextHop {
                    addr: c.addr,
                    transport: c.transport,
                    destination,
                },
            ));
        }
        let hop = match msg.request_uri_parsed() {
            Some(u) if !self.uri_is_us(&u) => self.uri_hop(&u),
            _ => None,
        };
        hop.map(|h| (ours, h)).ok_or(Refusal {
            code: 404,
            reason: "Unresolvable Request-URI",
        })
    }

    fn uri_hop(&mut self, uri: &Uri<'_>) -> Option<NextHop> {
        let ip = uri.host()?.ip()?;
        if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
            return None;
        }
        let addr = SocketAddr::new(ip, uri.port_or_default());
        let transport = uri.effective_transport();
        let destination = self.destination_by_addr(addr);
        Some(NextHop {
            addr,
            transport,
            destination,
        })
    }

    fn destination_by_addr(&mut self, addr: SocketAddr) -> Option<Arc<Destination>> {
        // The index is rebuilt after a reload only: while the snapshot it was built from
        // is current, no reference count shared with the other workers is touched.
        let current = self.dispatcher.snapshot_id();
        let fresh = self
            .index_snapshot
            .as_ref()
            .is_some_and(|s| s.id() == current);
        if !fresh {
            let snap = self.dispatcher.snapshot();
            self.by_addr.clear();
            for set in snap.sets() {
                for d in set.destinations() {
                    if let Some(a) = d.target().socket_addr {
                        self.by_addr.entry(a).or_insert_with(|| d.clone());
                    }
                }
            }
            self.index_snapshot = Some(snap);
        }
        self.by_addr.get(&addr).cloned()
    }

    fn select(&mut self, msg: &Message, now: Instant, limit: usize) -> SelectOutcome {
        // Only the headers the algorithm reads are parsed.
        let needs = self.cfg.algorithm.key_fields();
        let from = needs.from_uri.then(|| msg.from()).flatten();
        let to = needs.to_uri.then(|| msg.to()).flatten();
        let auth = needs
            .auth_username
            .then(|| {
                msg.header(HeaderName::Authorization)
                    .or_else(|| msg.header(HeaderName::ProxyAuthorization))
            })
            .flatten()
            .and_then(|v| Credentials::parse(v).ok())
            .and_then(|c| c.username());
        let to_uri = to.as_ref().map_or(&[][..], |t| t.uri_raw());
        let key = SelectKey {
            call_id: msg.call_id().unwrap_or_default(),
            from_uri: from.as_ref().map_or(&[][..], |f| f.uri_raw()),
            to_uri,
            request_uri: msg.request_uri().unwrap_or_default(),
            auth_username: auth,
            custom: None,
            aor: (msg.method() == Some(Method::Register)).then_some(to_uri),
        };
        self.selection.clear();
        self.dispatcher.select(
            self.cfg.set,
            self.cfg.algorithm,
            &key,
            now,
            limit,
            &mut self.selection,
        )
    }

    fn bye_and_touch(&mut self, msg: &Message, method: Method, now: Instant) {
        let Some(cid) = msg.call_id() else { return };
        if method == Method::Bye {
            if let Some(d) = self.calls.end(cid) {
                self.events.push_back(Event::CallEnded {
                    destination: d,
                    timed_out: false,
                });
            }
        } else {
            self.calls.touch(cid, now, self.cfg.timers.dialog);
        }
    }

    // ---- forwarding (shared by both modes) -------------------------------------------------

    fn listener_for(
        &self,
        transport: Transport,
        local: Option<SocketAddr>,
    ) -> Option<&LocalEndpoint> {
        self.listener_index(transport, local)
            .map(|i| &self.cfg.listeners[i])
    }

    /// [`Self::listener_for`] as an index of [`Self::endpoint`].
    fn listener_index(&self, transport: Transport, local: Option<SocketAddr>) -> Option<usize> {
        let l = &self.cfg.listeners;
        local
            .and_then(|a| {
                l.iter()
                    .position(|e| e.addr == a && e.transport == transport)
            })
            .or_else(|| l.iter().position(|e| e.transport == transport))
    }

    fn host_of(&self, ep: &LocalEndpoint) -> &str {
        self.host_texts
            .iter()
            .find(|(a, _)| *a == ep.addr)
            .map_or("127.0.0.1", |(_, h)| h.as_str())
    }

    fn outbound_for(&self, transport: Transport) -> Option<&LocalEndpoint> {
        self.outbound_index(transport).map(|i| self.endpoint(i))
    }

    /// [`Self::outbound_for`] as an index of [`Self::endpoint`].
    fn outbound_index(&self, transport: Transport) -> Option<usize> {
        let l = &self.cfg.listeners;
        self.cfg
            .outbound
            .iter()
            .position(|e| e.transport == transport)
            .map(|j| l.len() + j)
            .or_else(|| l.iter().position(|e| e.transport == transport))
    }

    /// Writes the request as forwarded to `hop`: our Via on top (with `branch`), the
    /// received/rport of the previous hop filled in, Max-Forwards, our Routes removed,
    /// Record-Route added when asked. Returns the bytes and the local address to send from.
    #[allow(clippy::too_many_arguments)]
    fn forward_request_bytes(
        &self,
        req: &Message,
        origin: &Origin,
        hop: &NextHop,
        branch: &[u8],
        pop_routes: u8,
        max_forwards: u8,
        record_route: bool,
    ) -> Option<(Bytes, Option<SocketAddr>)> {
        let out = self.outbound_index(hop.transport)?;
        let mut ed = Editor::new(req);
        // received / rport on the previous hop's Via (§18.2.1, RFC 3581 §4).
        let via_fix = self.fix_top_via(req, origin, &mut ed);
        via_fix.ok()?;
        // Our Via (`outbound_index` found an endpoint of the hop's transport).
        let rport: &[u8] = if hop.transport == Transport::Udp {
            b";rport"
        } else {
            b""
        };
        ed.insert_header_top(b"Via", &[&self.ep_texts[out].via_prefix, branch, rport]);
        ed.set_max_forwards(max_forwards).ok()?;
        remove_route_values(req, &mut ed, pop_routes).ok()?;
        if record_route {
            let cookie = RouteCookie {
                addr: hop.addr,
                transport: hop.transport,
            }
            .encode_cached(&self.cookie_key, &mut self.cookie_tags.borrow_mut());
            let inbound = self.listener_index(origin.transport, Some(origin.local));
            let outbound = self.listener_index(hop.transport, None);
            let cookie = cookie.as_bytes();
            if let Some(i) = inbound {
                ed.prepend_record_route(&[&self.ep_texts[i].rr_prefix, cookie, b">"]);
            }
            let transport = |i: usize| self.cfg.listeners[i].transport;
            if let Some(o) = outbound
                && inbound.is_none_or(|i| transport(i) != transport(o))
            {
                ed.prepend_record_route(&[&self.ep_texts[o].rr_prefix, cookie, b">"]);
            }
        }
        if hop.transport.is_reliable() && req.content_length().is_none() {
            ed.fix_content_length().ok()?;
        }
        let bytes = ed.finish_in_place().ok()?;
        Some((bytes, Some(self.endpoint(out).addr)))
    }

    fn fix_top_via(
        &self,
        req: &Message,
        origin: &Origin,
        ed: &mut Editor<'_>,
    ) -> Result<(), sip_core::editor::EditError> {
        let Some((_, span)) = req.top_via_span() else {
            return Ok(());
        };
        let Some(via) = req.top_via_nat() else {
            return Ok(());
        };
        let src_ip = origin.source.ip();
        let rport = via.rport;
        let need_received = via.host_ip != Some(src_ip) || rport.is_some();
        let all = req.as_bytes();
        if let Some(None) = rport {
            // `rport` without a value: the source port after the name, as written.
            if let Some(name) = via.rport_name {
                let end = offset_in(all, name) + name.len();
                let mut b = itoa::Buffer::new();
                ed.insert(end, &[b"=", b.format(origin.source.port()).as_bytes()])?;
            }
        }
        if need_received && via.received_ip() != Some(src_ip) {
            let mut raw = [0u8; 48];
            let n = write_ip(src_ip, &mut raw);
            let ipbuf = &raw[..n];
            let at = span.end as usize;
            if let Some(v) = via.received {
                // Replace an existing (wrong) received value.
                let s = offset_in(all, v);
                ed.replace(Span::new(s, s + v.len()), &[ipbuf])?;
            } else {
                ed.insert(at, &[b";received=", ipbuf])?;
            }
        }
        Ok(())
    }

    // ---- stateless mode ----------------------------------------------------------------

    /// A hash identifying the request's transaction from the previous hop's point of view:
    /// its branch and sent-by (RFC 3261 §17.2.3), else (RFC 2543 peers) the fields §16.11
    /// suggests. Equal for a retransmission, its CANCEL and its non-2xx ACK.
    fn stateless_hash(msg: &Message) -> u64 {
        Self::transaction_hash(msg, FieldHash::default())
    }

    /// [`Self::stateless_hash`]'s fields mixed into `h`.
    fn transaction_hash(msg: &Message, h: FieldHash) -> u64 {
        let branch = msg.top_via_branch().unwrap_or_default();
        let top = msg.top_via_span().map_or(&[][..], |(_, s)| msg.slice(s));
        if branch.len() > sip_core::via::MAGIC_COOKIE.len()
            && branch.starts_with(sip_core::via::MAGIC_COOKIE)
        {
            let sent_by = &top[..sip_core::scan::find_any(top, [b';']).unwrap_or(top.len())];
            h.field(branch).field(sent_by).finish()
        } else {
            h.field(msg.call_id().unwrap_or_default())
                .field(msg.from_tag().unwrap_or_default())
                .field(msg.request_uri().unwrap_or_default())
                .field(&msg.cseq().map_or(0, |c| c.0).to_be_bytes())
                .field(top)
                .finish()
        }
    }

    fn stateless_request(
        &mut self,
        now: Instant,
        origin: Origin,
        msg: &Message,
        method: Method,
        in_dialog: bool,
    ) {
        let h = Self::stateless_hash(msg);
        let (pop, hop) = if in_dialog {
            match self.in_dialog_hop(msg, &origin) {
                Ok(x) => {
                    self.bye_and_touch(msg, method, now);
                    x
                }
                Err(r) => return self.refuse(&origin, msg, method, r),
            }
        } else {
            let pop = match self.our_routes(msg) {
                Ok((n, ..)) => n,
                Err(r) => return self.refuse(&origin, msg, method, r),
            };
            let remembered = self
                .recent
                .get(h, now)
                .and_then(|d| NextHop::to_destination(&d));
            let hop = match remembered {
                Some(hop) => hop,
                None if method == Method::Ack => {
                    self.drop_message(origin.source, DropReason::StrayAck);
                    return;
                }
                None => match self.select(msg, now, 8) {
                    SelectOutcome::Selected => {
                        let Some(hop) = self.first_sendable() else {
                            return self.no_destination(&origin, msg);
                        };
                        if let Some(d) = &hop.destination {
                            let expires = now + 64 * self.cfg.timers.t1;
                            self.recent.insert(h, d.clone(), expires, now);
                        }
                        hop
                    }
                    _ => return self.no_destination(&origin, msg),
                },
            };
            (pop, hop)
        };
        let branch = OurBranch {
            worker: self.cfg.worker,
            kind: BranchKind::Stateless(h),
            loop_hash: self.loop_hash(msg),
        }
        .encode();
        let mf = msg.max_forwards().map_or(70, |m| m - 1);
        let rr = !in_dialog && method.creates_dialog();
        match self.forward_request_bytes(msg, &origin, &hop, branch.as_bytes(), pop, mf, rr) {
            Some((bytes, local)) => {
                if let Some(d) = &hop.destination {
                    d.request_sent(now, bytes.len());
                    // Stateless: nothing to wait for, the transaction is not tracked.
                    d.transaction_cancelled();
                }
                self.stats.requests_forwarded += 1;
                self.transmits.push_back(Transmit {
                    destination: hop.addr,
                    transport: hop.transport,
                    local,
                    connection: None,
                    bytes,
                });
            }
            None => self.reply(&origin, msg, 500, "Cannot Forward"),
        }
    }

    fn first_sendable(&self) -> Option<NextHop> {
        self.selection.iter().find_map(NextHop::to_destination)
    }

    fn refuse(&mut self, origin: &Origin, msg: &Message, method: Method, r: Refusal) {
        if method == Method::Ack {
            self.drop_message(origin.source, DropReason::StrayAck);
        } else {
            self.reply(origin, msg, r.code, r.reason);
        }
    }

    fn no_destination(&mut self, origin: &Origin, msg: &Message) {
        let ra = self.cfg.failover.retry_after;
        if msg.method() == Some(Method::Ack) {
            self.drop_message(origin.source, DropReason::StrayAck);
            return;
        }
        self.reply_with(origin, msg, 503, "Service Unavailable", Some(ra), &[]);
    }

    /// Forwards a response statelessly: our Via removed, sent to the next Via (§16.11).
    fn stateless_response(&mut self, now: Instant, origin: Origin, msg: &Message) {
        // The second Via value (the top one, ours, was checked by the caller).
        let Some(next) = msg.second_via() else {
            return self.drop_message(origin.source, DropReason::Unroutable);
        };
        let Ok(next) = sip_core::via::Via::parse(next) else {
            return self.drop_message(origin.source, DropReason::Malformed);
        };
        let Some((ip, port)) = next.response_target() else {
            return self.drop_message(origin.source, DropReason::Unroutable);
        };
        if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
            return self.drop_message(origin.source, DropReason::Unroutable);
        }
        let transport = next.transport().unwrap_or(Transport::Udp);
        if msg.cseq().map(|c| c.1) == Some(Method::Invite)
            && msg.status_code().is_some_and(|c| (200..300).contains(&c))
            && let Some(d) = self.destination_by_addr(origin.source)
            && let Some(cid) = msg.call_id()
            && self.calls.start(cid, &d, now, self.cfg.timers.dialog)
        {
            self.events.push_back(Event::CallStarted { destination: d });
        }
        let Ok(bytes) = without_top_via(msg) else {
            return self.drop_message(origin.source, DropReason::Malformed);
        };
        self.stats.responses_forwarded += 1;
        let local = self.listener_for(transport, None).map(|e| e.addr);
        self.transmits.push_back(Transmit {
            destination: SocketAddr::new(ip, port),
            transport,
            local,
            connection: None,
            bytes,
        });
    }

    // ---- stateful mode -----------------------------------------------------------------

    fn server_key(msg: &Message, method: Method) -> u64 {
        let class: &[u8] = match method {
            Method::Invite | Method::Ack => b"INVITE",
            Method::Cancel => b"CANCEL",
            _ => msg.cseq_method_bytes().unwrap_or_default(),
        };
        Self::transaction_hash(msg, FieldHash::default().field(class))
    }

    fn arm(&mut self, now: Instant, at: Instant, r: TimerRef) {
        self.timers.arm(now, at, r);
    }

    /// [`Self::arm`] for `now + after`.
    fn arm_in(&mut self, now: Instant, after: Duration, r: TimerRef) {
        self.timers.arm_in(now, after, r);
    }

    fn stateful_request(
        &mut self,
        now: Instant,
        origin: Origin,
        msg: &Message,
        method: Method,
        in_dialog: bool,
    ) {
        let key = Self::server_key(msg, method);
        if let Some(&(i, g)) = self.server_index.get(&key) {
            self.stats.retransmissions_absorbed += 1;
            let Some(st) = self.servers.get_mut(i, g) else {
                self.server_index.remove(&key);
                return;
            };
            if method == Method::Ack {
                if st.invite && st.state == ServerState::Completed {
                    // Timer I.
                    st.state = ServerState::Confirmed;
                    st.retransmit_at = None;
                    let wait = if origin.transport.is_reliable() {
                        Duration::ZERO
                    } else {
                        self.cfg.timers.t4
                    };
                    st.expire_at = Some(now + wait);
                    self.arm_in(now, wait, TimerRef::Server(i, g));
                }
                return;
            }
            let o = st.origin;
            if let Some(r) = st.last_response.clone() {
                self.send_to_origin(&o, r);
            } else if st.invite && st.state == ServerState::Proceeding {
                // Our 100 Trying is the last response, and it is not kept: it is what
                // the same request gives again (RFC 3261 §17.2.1 resends the most
                // recent provisional response).
                let trying = self.build_reply(msg, o.source, 100, "Trying", None, &[]);
                self.send_to_origin(&o, trying);
            }
            return;
        }
        if method == Method::Cancel {
            self.handle_cancel(now, origin, msg);
            return;
        }
        if method == Method::Ack {
            // ACK for a 2xx: its own transaction-less hop, routed by Route.
            if !in_dialog {
                return self.drop_message(origin.source, DropReason::StrayAck);
            }
            match self.in_dialog_hop(msg, &origin) {
                Ok((pop, hop)) => {
                    self.bye_and_touch(msg, method, now);
                    let branch = OurBranch {
                        worker: self.cfg.worker,
                        kind: BranchKind::Stateless(Self::stateless_hash(msg)),
                        loop_hash: self.loop_hash(msg),
                    }
                    .encode();
                    let mf = msg.max_forwards().map_or(70, |m| m - 1);
                    if let Some((bytes, local)) = self.forward_request_bytes(
                        msg,
                        &origin,
                        &hop,
                        branch.as_bytes(),
                        pop,
                        mf,
                        false,
                    ) {
                        self.stats.requests_forwarded += 1;
                        self.transmits.push_back(Transmit {
                            destination: hop.addr,
                            transport: hop.transport,
                            local,
                            connection: None,
                            bytes,
                        });
                    }
                }
                Err(_) => self.drop_message(origin.source, DropReason::StrayAck),
            }
            return;
        }
        // Routing decision before any state is created.
        let (pop, fixed) = if in_dialog {
            match self.in_dialog_hop(msg, &origin) {
                Ok((pop, hop)) => {
                    self.bye_and_touch(msg, method, now);
                    (pop, Some(hop))
                }
                Err(r) => return self.reply(&origin, msg, r.code, r.reason),
            }
        } else {
            match self.our_routes(msg) {
                Ok((n, ..)) => (n, None),
                Err(r) => return self.reply(&origin, msg, r.code, r.reason),
            }
        };
        let invite = method == Method::Invite;
        let st = ServerTx {
            key,
            origin,
            invite,
            state: ServerState::Proceeding,
            last_response: None,
            retransmit_at: None,
            interval: self.cfg.timers.t1,
            expire_at: None,
            pop_routes: pop,
            max_forwards: msg.max_forwards().map_or(70, |m| m - 1),
            record_route: !in_dialog && method.creates_dialog(),
            fixed,
            alternates: SmallVec::new(),
            next_alternate: 0,
            attempts: 0,
            client: None,
            best: None,
            cancelled: false,
            queued: false,
            initial_invite: invite && !in_dialog,
            // A copy, not the received buffer: that is usually a slice of a receive
            // chunk shared with a hundred other datagrams, which this transaction (alive
            // until its final response and the wait after it: seconds, minutes for an
            // unanswered INVITE) would otherwise keep allocated.
            request: Bytes::copy_from_slice(msg.as_bytes()),
        };
        let (i, g) = self.servers.insert(st);
        self.server_index.insert(key, (i, g));
        if invite {
            // Not kept as `last_response`: a retransmission is answered with a 100 built
            // from it (the same bytes), so the transaction holds no reference to it (one
            // clone and its release less per call; the buffer is still an allocation).
            let trying = self.build_reply(msg, origin.source, 100, "Trying", None, &[]);
            self.count_local_reply(100);
            self.send_to_origin(&origin, trying);
        }
        if !in_dialog {
            let limit = self.cfg.failover.max_attempts.max(1);
            match self.select(msg, now, limit) {
                SelectOutcome::Selected => {
                    let alts: SmallVec<[Arc<Destination>; 4]> =
                        self.selection.iter().cloned().collect();
                    self.servers.get_mut(i, g).expect("live").alternates = alts;
                }
                SelectOutcome::Queue if invite => {
                    self.enqueue(now, (i, g));
                    return;
                }
                _ => {}
            }
        }
        self.attempt(now, (i, g), msg);
    }

    /// The request of a server transaction, parsed again from its bytes.
    fn server_request(&self, id: (u32, u32)) -> Option<Message> {
        let st = self.servers.get(id.0, id.1)?;
        Message::parse_with(st.request.clone(), &self.parse_options).ok()
    }

    /// The next attempt of a transaction whose request is no longer at hand (failover).
    fn attempt_again(&mut self, now: Instant, id: (u32, u32)) {
        if let Some(req) = self.server_request(id) {
            self.attempt(now, id, &req);
        }
    }

    fn enqueue(&mut self, now: Instant, id: (u32, u32)) {
        if self.queue.len() >= self.cfg.queue.capacity {
            self.final_local(now, id, 503, "Service Unavailable", true);
            return;
        }
        self.stats.queued += 1;
        let deadline = now + self.cfg.queue.deadline;
        self.queue.push_back((id, deadline));
        if let Some(st) = self.servers.get_mut(id.0, id.1) {
            st.queued = true;
        }
        self.provisional_local(id, 182, "Queued");
        self.next_queue_check = Some(now + self.cfg.queue.recheck);
    }

    fn provisional_local(&mut self, id: (u32, u32), code: u16, reason: &'static str) {
        let Some(req) = self.server_request(id) else {
            return;
        };
        let origin = self.servers.get(id.0, id.1).expect("parsed from it").origin;
        let bytes = self.build_reply(&req, origin.source, code, reason, None, &[]);
        self.count_local_reply(code);
        if let Some(st) = self.servers.get_mut(id.0, id.1) {
            st.last_response = Some(bytes.clone());
        }
        self.send_to_origin(&origin, bytes);
    }

    fn service_queue(&mut self, now: Instant) {
        while let Some(&(id, deadline)) = self.queue.front() {
            let Some(st) = self.servers.get(id.0, id.1) else {
                self.queue.pop_front();
                continue;
            };
            if st.cancelled || !st.queued {
                self.queue.pop_front();
                continue;
            }
            if deadline <= now {
                self.queue.pop_front();
                self.stats.queue_timeouts += 1;
                if let Some(st) = self.servers.get_mut(id.0, id.1) {
                    st.queued = false;
                }
                self.final_local(now, id, 503, "Queue Timeout", true);
                continue;
            }
            let Some(req) = self.server_request(id) else {
                self.queue.pop_front();
                continue;
            };
            let limit = self.cfg.failover.max_attempts.max(1);
            match self.select(&req, now, limit) {
                SelectOutcome::Selected => {
                    self.queue.pop_front();
                    let alts: SmallVec<[Arc<Destination>; 4]> =
                        self.selection.iter().cloned().collect();
                    if let Some(st) = self.servers.get_mut(id.0, id.1) {
                        st.alternates = alts;
                        st.queued = false;
                    }
                    self.attempt(now, id, &req);
                }
                SelectOutcome::Queue => break,
                SelectOutcome::Unavailable => {
                    self.queue.pop_front();
                    if let Some(st) = self.servers.get_mut(id.0, id.1) {
                        st.queued = false;
                    }
                    self.final_local(now, id, 503, "Service Unavailable", true);
                }
            }
        }
        self.next_queue_check = if self.queue.is_empty() {
            None
        } else {
            Some(now + self.cfg.queue.recheck)
        };
    }

    /// Sends the request of server transaction `id` to its next destination; when none is
    /// left, answers the best response received or 503.
    fn attempt(&mut self, now: Instant, id: (u32, u32), req: &Message) {
        loop {
            let Some(st) = self.servers.get_mut(id.0, id.1) else {
                return;
            };
            if st.cancelled {
                return;
            }
            let hop = if let Some(f) = &st.fixed {
                if st.attempts > 0 {
                    None
                } else {
                    Some(f.clone())
                }
            } else if st.attempts >= self.cfg.failover.max_attempts.max(1) {
                None
            } else {
                let mut found = None;
                while st.next_alternate < st.alternates.len() {
                    let d = st.alternates[st.next_alternate].clone();
                    st.next_alternate += 1;
                    if st.attempts > 0 && !d.is_usable(now) {
                        continue;
                    }
                    let t = d.target();
                    if let Some(addr) = t.socket_addr {
                        found = Some(NextHop {
                            addr,
                            transport: t.transport,
                            destination: Some(d.clone()),
                        });
                        break;
                    }
                }
                found
            };
            let Some(hop) = hop else {
                self.no_more_destinations(now, id);
                return;
            };
            st.attempts += 1;
            if self.send_client(now, id, hop, req) {
                return;
            }
        }
    }

    fn no_more_destinations(&mut self, now: Instant, id: (u32, u32)) {
        let Some(st) = self.servers.get_mut(id.0, id.1) else {
            return;
        };
        if let Some(best) = st.best.take() {
            self.forward_final_upstream(now, id, &best);
        } else if st.fixed.is_some() {
            self.final_local(now, id, 408, "Request Timeout", false);
        } else {
            self.final_local(now, id, 503, "Service Unavailable", true);
        }
    }

    /// Creates a client transaction towards `hop` and sends the request. False when the
    /// request could not be written for that hop.
    fn send_client(&mut self, now: Instant, id: (u32, u32), hop: NextHop, req: &Message) -> bool {
        let (cidx, cgen) = self.clients.insert(ClientTx {
            server: Some(id),
            destination: hop.destination.clone(),
            hop: hop.addr,
            transport: hop.transport,
            local: None,
            invite: false,
            state: ClientState::Calling,
            request: Bytes::new(),
            sent_at: now,
            retransmit_at: None,
            interval: self.cfg.timers.t1,
            timeout_at: None,
            expire_at: None,
            accounted: false,
            cancel: None,
            cancel_sent: false,
            cancel_pending: false,
            ack: None,
            probe: false,
        });
        let st = self.servers.get(id.0, id.1).expect("caller checked");
        let branch = OurBranch {
            worker: self.cfg.worker,
            kind: BranchKind::Transaction {
                index: cidx,
                generation: cgen,
            },
            loop_hash: self.loop_hash(req),
        }
        .encode();
        let built = self.forward_request_bytes(
            req,
            &st.origin,
            &hop,
            branch.as_bytes(),
            st.pop_routes,
            st.max_forwards,
            st.record_route,
        );
        let invite = st.invite;
        let Some((bytes, local)) = built else {
            self.clients.remove(cidx, cgen);
            return false;
        };
        let t = self.cfg.timers;
        let reliable = hop.transport.is_reliable();
        let timeout = if invite {
            t.no_response
        } else {
            t.no_response.min(64 * t.t1)
        };
        let c = self.clients.get_mut(cidx, cgen).expect("just inserted");
        c.invite = invite;
        c.request = bytes.clone();
        c.local = local;
        c.retransmit_at = (!reliable).then_some(now + t.t1);
        c.timeout_at = Some(now + timeout);
        if let Some(d) = &hop.destination {
            d.request_sent(now, bytes.len());
            c.accounted = true;
        }
        if let Some(st) = self.servers.get_mut(id.0, id.1) {
            st.client = Some((cidx, cgen));
        }
        // One timer: the first retransmission (which arms the next one, or the timeout
        // when that comes first), or the timeout where nothing is retransmitted. A
        // transaction answered before its first retransmission then leaves one stale
        // timer behind, not two: most requests are answered within T1, and the timeout's
        // timer would wait out its 5 seconds (timer C: 3 minutes) in the wheel.
        let first = if reliable { timeout } else { t.t1.min(timeout) };
        self.arm_in(now, first, TimerRef::Client(cidx, cgen));
        self.stats.requests_forwarded += 1;
        self.transmits.push_back(Transmit {
            destination: hop.addr,
            transport: hop.transport,
            local,
            connection: None,
            bytes,
        });
        true
    }

    fn handle_cancel(&mut self, now: Instant, origin: Origin, cancel: &Message) {
        let inv_key = Self::server_key(cancel, Method::Invite);
        let Some(&(i, g)) = self.server_index.get(&inv_key) else {
            self.reply(&origin, cancel, 481, "Call/Transaction Does Not Exist");
            return;
        };
        // 200 for the CANCEL itself (§16.10).
        self.reply(&origin, cancel, 200, "OK");
        let Some(st) = self.servers.get_mut(i, g) else {
            return;
        };
        if st.state != ServerState::Proceeding || st.cancelled {
            return;
        }
        st.cancelled = true;
        let client = st.client;
        if st.queued {
            st.queued = false;
            self.final_local(now, (i, g), 487, "Request Terminated", false);
            return;
        }
        if let Some((ci, cg)) = client {
            self.cancel_client(now, (ci, cg));
        } else {
            self.final_local(now, (i, g), 487, "Request Terminated", false);
        }
    }

    /// Sends CANCEL for an INVITE client transaction (§9.1): now if a provisional response
    /// came, else as soon as one comes.
    fn cancel_client(&mut self, now: Instant, id: (u32, u32)) {
        let t = self.cfg.timers;
        let Some(c) = self.clients.get_mut(id.0, id.1) else {
            return;
        };
        if !c.invite || c.cancel_sent {
            return;
        }
        match c.state {
            ClientState::Calling => {
                c.cancel_pending = true;
            }
            ClientState::Proceeding => {
                let Ok(sent) = Message::parse(c.request.clone()) else {
                    return;
                };
                let bytes = sip_core::builder::cancel_for(&sent);
                let reliable = c.transport.is_reliable();
                c.cancel_sent = true;
                c.cancel = Some(Box::new(CancelState {
                    bytes: bytes.clone(),
                    retransmit_at: (!reliable).then_some(now + t.t1),
                    interval: t.t1,
                    expire_at: now + 64 * t.t1,
                }));
                // Give the INVITE time for its 487 (timer C is replaced by the CANCEL's).
                c.timeout_at = Some(now + 64 * t.t1);
                let tx = Transmit {
                    destination: c.hop,
                    transport: c.transport,
                    local: c.local,
                    connection: None,
                    bytes,
                };
                if !reliable {
                    self.arm_in(now, t.t1, TimerRef::Client(id.0, id.1));
                }
                self.arm_in(now, 64 * t.t1, TimerRef::Client(id.0, id.1));
                self.transmits.push_back(tx);
            }
            _ => {}
        }
    }

    /// Answers server transaction `id` with our own final response.
    fn final_local(
        &mut self,
        now: Instant,
        id: (u32, u32),
        code: u16,
        reason: &'static str,
        retry_after: bool,
    ) {
        let Some(st) = self.servers.get(id.0, id.1) else {
            return;
        };
        if st.state != ServerState::Proceeding {
            return;
        }
        let origin = st.origin;
        let Some(req) = self.server_request(id) else {
            return;
        };
        let ra = retry_after.then_some(self.cfg.failover.retry_after);
        let bytes = self.build_reply(&req, origin.source, code, reason, ra, &[]);
        self.stats.rejected += 1;
        self.count_local_reply(code);
        self.events.push_back(Event::Rejected {
            code,
            reason,
            source: origin.source,
        });
        self.server_final_sent(now, id, &bytes, code);
        self.send_to_origin(&origin, bytes);
    }

    /// Moves a server transaction to Completed (or Accepted for a 2xx to INVITE) after its
    /// final response, arming timers G/H/J/L.
    ///
    /// The response is cloned only when kept: a 2xx to an INVITE is not, and the first
    /// clone of a freshly written buffer costs an allocation (its shared count).
    fn server_final_sent(&mut self, now: Instant, id: (u32, u32), bytes: &Bytes, code: u16) {
        let t = self.cfg.timers;
        let Some(st) = self.servers.get_mut(id.0, id.1) else {
            return;
        };
        let reliable = st.origin.transport.is_reliable();
        // A 2xx to an INVITE is not kept: in Accepted a retransmitted INVITE is absorbed,
        // not answered (RFC 6026 §7.1; the callee retransmits its 2xx until the ACK, and
        // each retransmission is forwarded). The 2xx is the largest response of a call,
        // and a busy proxy holds its completed calls for the whole wait timer.
        let accepted = st.invite && (200..300).contains(&code);
        st.last_response = (!accepted).then(|| bytes.clone());
        // What only a transaction in Proceeding uses (failover, local replies, the queue)
        // goes now rather than when the transaction ends (`wait` later): a busy proxy
        // then holds a few hundred bytes less per recent call.
        st.request = Bytes::new();
        st.alternates = SmallVec::new();
        st.best = None;
        // (retransmission, expiry) after `now`.
        let (retransmit, expire) = if accepted {
            st.state = ServerState::Accepted;
            (None, t.wait)
        } else if st.invite {
            st.state = ServerState::Completed;
            st.interval = t.t1;
            ((!reliable).then_some(t.t1), 64 * t.t1)
        } else {
            st.state = ServerState::Completed;
            (None, if reliable { Duration::ZERO } else { t.wait })
        };
        st.retransmit_at = retransmit.map(|d| now + d);
        st.expire_at = Some(now + expire);
        if let Some(d) = retransmit {
            self.arm_in(now, d, TimerRef::Server(id.0, id.1));
        }
        self.arm_in(now, expire, TimerRef::Server(id.0, id.1));
    }

    fn forward_final_upstream(&mut self, now: Instant, id: (u32, u32), resp: &Message) {
        let code = resp.status_code().unwrap_or(500);
        let Some(st) = self.servers.get(id.0, id.1) else {
            return;
        };
        // Every 2xx to an INVITE goes upstream (RFC 3261 §16.7, point 5), also after a
        // non-2xx of ours (timer C's 408): the caller can then ACK and end the call,
        // instead of the callee retransmitting its 2xx into nothing. Anything else only
        // while Proceeding.
        if st.state != ServerState::Proceeding && !(st.invite && (200..300).contains(&code)) {
            return;
        }
        let origin = st.origin;
        let Ok(bytes) = without_top_via(resp) else {
            return;
        };
        self.stats.responses_forwarded += 1;
        if st.state == ServerState::Proceeding {
            self.server_final_sent(now, id, &bytes, code);
        }
        self.send_to_origin(&origin, bytes);
    }

    // ---- responses ---------------------------------------------------------------------

    fn handle_response(&mut self, now: Instant, origin: Origin, msg: &Message) {
        let code = msg.status_code().unwrap_or(0);
        self.stats.responses_by_class[(code / 100).min(6) as usize] += 1;
        let ours = if self.top_sent_by_is_ours_verbatim(msg) {
            // The parse pass validated the top Via and located its branch.
            msg.top_via_branch().and_then(OurBranch::decode)
        } else {
            let Some(via) = msg.top_via() else {
                return self.drop_message(origin.source, DropReason::Malformed);
            };
            via.branch()
                .and_then(OurBranch::decode)
                .filter(|_| self.sent_by_is_us(&via))
        };
        let Some(ours) = ours else {
            return self.drop_message(origin.source, DropReason::NotOurVia);
        };
        if msg.call_id().is_none() || msg.cseq().is_none() {
            return self.drop_message(origin.source, DropReason::Malformed);
        }
        match ours.kind {
            BranchKind::Stateless(_) => self.stateless_response(now, origin, msg),
            BranchKind::Transaction { index, generation } => {
                if ours.worker != self.cfg.worker {
                    return self.drop_message(origin.source, DropReason::OtherWorker);
                }
                self.client_response(now, origin, msg, (index, generation), code);
            }
        }
    }

    fn client_response(
        &mut self,
        now: Instant,
        origin: Origin,
        msg: &Message,
        id: (u32, u32),
        code: u16,
    ) {
        let t = self.cfg.timers;
        let cseq_method = msg.cseq().map(|c| c.1);
        let Some(c) = self.clients.get_mut(id.0, id.1) else {
            // RFC 6026: 2xx retransmissions for an INVITE whose transaction is gone are
            // still forwarded.
            if cseq_method == Some(Method::Invite) && (200..300).contains(&code) {
                return self.stateless_response(now, origin, msg);
            }
            return self.drop_message(origin.source, DropReason::StrayResponse);
        };
        if cseq_method == Some(Method::Cancel) {
            // The answer to our CANCEL: stop retransmitting it.
            if code >= 200 {
                c.cancel = None;
            }
            return;
        }
        if c.probe {
            if code >= 200 {
                self.probe_answered(now, id, code);
            }
            return;
        }
        let server = c.server;
        match (c.state, code) {
            (ClientState::Calling | ClientState::Proceeding, 100..=199) => {
                let first = c.state == ClientState::Calling;
                c.state = ClientState::Proceeding;
                if c.invite {
                    c.retransmit_at = None;
                    if first {
                        // Timer C. A timer is armed for it only when it ends before the
                        // timeout it replaces: otherwise the timer the request's send
                        // armed (its first retransmission, or that timeout) fires first,
                        // and arms this one then if the INVITE still waits. A call
                        // answered before that leaves no 3-minute timer behind.
                        let at = now + t.no_final_invite;
                        if c.timeout_at.is_none_or(|before| at < before) {
                            self.timers.arm(now, at, TimerRef::Client(id.0, id.1));
                        }
                        c.timeout_at = Some(at);
                    }
                } else {
                    c.interval = t.t2;
                }
                let pending = c.cancel_pending;
                if pending {
                    c.cancel_pending = false;
                    self.cancel_client(now, id);
                }
                if code > 100
                    && let Some(sid) = server
                {
                    self.forward_provisional(sid, msg);
                }
            }
            (ClientState::Calling | ClientState::Proceeding, 200..=699) => {
                let rtt = now.saturating_duration_since(c.sent_at);
                if c.accounted {
                    c.accounted = false;
                    if let Some(d) = &c.destination {
                        d.response_received(code, rtt, now);
                    }
                }
                c.retransmit_at = None;
                c.timeout_at = None;
                c.cancel_pending = false;
                let reliable = c.transport.is_reliable();
                let dest = c.destination.clone();
                let expire = if c.invite && code < 300 {
                    c.state = ClientState::Accepted;
                    t.wait
                } else if c.invite {
                    c.state = ClientState::Completed;
                    let ack = Message::parse(c.request.clone())
                        .ok()
                        .map(|sent| sip_core::builder::ack_for(&sent, msg));
                    if let Some(a) = &ack {
                        self.transmits.push_back(Transmit {
                            destination: c.hop,
                            transport: c.transport,
                            local: c.local,
                            connection: None,
                            bytes: a.clone(),
                        });
                    }
                    c.ack = ack;
                    if reliable { Duration::ZERO } else { t.wait }
                } else {
                    c.state = ClientState::Completed;
                    if reliable { Duration::ZERO } else { t.t4 }
                };
                c.expire_at = Some(now + expire);
                // Nothing sends the request again after a final response (the ACK for a
                // non-2xx is built above): its bytes go now, not when the timer ends.
                c.request = Bytes::new();
                self.arm_in(now, expire, TimerRef::Client(id.0, id.1));
                if code == 503
                    && let Some(d) = &dest
                    && let Some(ra) = msg
                        .header(HeaderName::RetryAfter)
                        .and_then(|v| RetryAfter::parse(v).ok())
                {
                    d.mark_down_until(now + Duration::from_secs(u64::from(ra.seconds)));
                }
                if let Some(sid) = server {
                    self.final_from_downstream(now, sid, dest, msg, code);
                }
            }
            (ClientState::Accepted, 200..=299) => {
                // A 2xx retransmission (RFC 6026 §7.2): forward it.
                if let Some(sid) = server
                    && self.servers.get(sid.0, sid.1).is_some()
                {
                    self.forward_final_upstream(now, sid, msg);
                } else {
                    self.stateless_response(now, origin, msg);
                }
            }
            (ClientState::Completed, 300..=699) => {
                self.stats.retransmissions_absorbed += 1;
                if let Some(a) = c.ack.clone() {
                    self.transmits.push_back(Transmit {
                        destination: c.hop,
                        transport: c.transport,
                        local: c.local,
                        connection: None,
                        bytes: a,
                    });
                }
            }
            _ => {
                self.stats.retransmissions_absorbed += 1;
            }
        }
    }

    fn forward_provisional(&mut self, sid: (u32, u32), msg: &Message) {
        let Some(st) = self.servers.get(sid.0, sid.1) else {
            return;
        };
        if st.state != ServerState::Proceeding {
            return;
        }
        let origin = st.origin;
        let Ok(bytes) = without_top_via(msg) else {
            return;
        };
        if let Some(st) = self.servers.get_mut(sid.0, sid.1) {
            st.last_response = Some(bytes.clone());
        }
        self.stats.responses_forwarded += 1;
        self.send_to_origin(&origin, bytes);
    }

    fn final_from_downstream(
        &mut self,
        now: Instant,
        sid: (u32, u32),
        dest: Option<Arc<Destination>>,
        msg: &Message,
        code: u16,
    ) {
        let Some(st) = self.servers.get_mut(sid.0, sid.1) else {
            return;
        };
        st.client = None;
        if (200..300).contains(&code) {
            if st.initial_invite
                && let Some(d) = &dest
                && let Some(cid) = msg.call_id()
                && self.calls.start(cid, d, now, self.cfg.timers.dialog)
            {
                self.events.push_back(Event::CallStarted {
                    destination: d.clone(),
                });
            }
            self.forward_final_upstream(now, sid, msg);
            return;
        }
        if st.state != ServerState::Proceeding {
            // A late final response for a request already answered upstream (our 408 after
            // timer C, say): its client transaction acknowledges it, and nothing goes
            // upstream or to another destination.
            return;
        }
        let fails_over = !st.cancelled && st.fixed.is_none() && self.cfg.failover.fails_over(code);
        if better(msg, st.best.as_deref()) {
            // A copy: the response may sit here for the whole failover (seconds), and its
            // bytes are a slice of a receive buffer shared with many other datagrams.
            st.best = Some(Box::new(msg.copied()));
        }
        if fails_over {
            if let Some(d) = dest {
                self.stats.failovers += 1;
                self.events.push_back(Event::Failover {
                    destination: d,
                    cause: FailoverCause::Response(code),
                });
            }
            self.attempt_again(now, sid);
        } else {
            let best = st.best.take().expect("just stored");
            self.forward_final_upstream(now, sid, &best);
        }
    }

    // ---- timers ------------------------------------------------------------------------

    /// Processes every timer due at `now`: retransmissions, timeouts and failover, probes,
    /// the queue, expired dialogs.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        loop {
            due.clear();
            while due.len() < DUE_BATCH
                && let Some(r) = self.timers.pop_due(now)
            {
                due.push(r);
            }
            if due.is_empty() {
                break;
            }
            self.touch_due(now, &due);
            for &r in &due {
                match r {
                    TimerRef::Server(i, g) => self.server_timer(now, (i, g)),
                    TimerRef::Client(i, g) => self.client_timer(now, (i, g)),
                }
            }
        }
        self.due = due;
        if self.next_queue_check.is_some_and(|t| t <= now) {
            self.service_queue(now);
        }
        if self.next_probe.is_some_and(|t| t <= now) {
            self.send_probes(now);
        }
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.scratch.clear();
            let mut ended = std::mem::take(&mut self.scratch);
            self.calls.sweep(now, &mut ended);
            for d in ended.drain(..) {
                self.events.push_back(Event::CallEnded {
                    destination: d,
                    timed_out: true,
                });
            }
            self.scratch = ended;
            // Stateless selections past their time go even when no request comes to
            // push them out (and the room of a burst is given back).
            self.recent.expire(now);
            self.next_sweep = Some(now + Duration::from_secs(1));
        }
    }

    /// Reads what the timers of a batch will read first (each transaction, and the index
    /// entry of each server transaction that ends), before the work on any of them. A
    /// timer fires seconds after its transaction last ran, so these reads miss the cache;
    /// issued together, in a loop of independent loads, the misses overlap instead of
    /// coming one after another between the work on each timer.
    fn touch_due(&self, now: Instant, due: &[TimerRef]) {
        // Two passes of short, independent loads: the transactions first (noting the key
        // of each server transaction that ends), then those keys' index entries, which
        // only the first pass's loads tell where to find.
        let mut keys = [0u64; DUE_BATCH];
        let mut ending = 0;
        let mut seen = 0u64;
        for &r in due {
            match r {
                TimerRef::Server(i, g) => {
                    if let Some(st) = self.servers.get(i, g)
                        && st.expire_at.is_some_and(|e| e <= now)
                        && ending < DUE_BATCH
                    {
                        keys[ending] = st.key;
                        ending += 1;
                    }
                }
                TimerRef::Client(i, g) => {
                    seen ^= self
                        .clients
                        .get(i, g)
                        .map_or(0, |c| u64::from(c.expire_at.is_some_and(|e| e <= now)));
                }
            }
        }
        for key in &keys[..ending] {
            seen ^= self.server_index.get(key).map_or(0, |v| u64::from(v.0));
        }
        std::hint::black_box(seen);
    }

    fn server_timer(&mut self, now: Instant, id: (u32, u32)) {
        let t2 = self.cfg.timers.t2;
        let Some(st) = self.servers.get_mut(id.0, id.1) else {
            return;
        };
        if st.expire_at.is_some_and(|e| e <= now) {
            let key = self.servers.remove_with(id.0, id.1, |st| st.key);
            // One probe of the index: the entry is ours but for a later transaction with
            // the same key (put back then).
            if let Some(key) = key
                && let Some(other) = self.server_index.remove(&key)
                && other != id
            {
                self.server_index.insert(key, other);
            }
            return;
        }
        if st.state == ServerState::Completed
            && let Some(at) = st.retransmit_at
            && at <= now
        {
            // Timer G.
            st.interval = (st.interval * 2).min(t2);
            let next = now + st.interval;
            st.retransmit_at = Some(next);
            let bytes = st.last_response.clone();
            let origin = st.origin;
            self.arm(now, next, TimerRef::Server(id.0, id.1));
            if let Some(b) = bytes {
                self.stats.retransmissions_sent += 1;
                self.send_to_origin(&origin, b);
            }
        }
    }

    fn client_timer(&mut self, now: Instant, id: (u32, u32)) {
        let t = self.cfg.timers;
        let Some(c) = self.clients.get_mut(id.0, id.1) else {
            return;
        };
        if c.expire_at.is_some_and(|e| e <= now) {
            self.remove_client(id);
            return;
        }
        // CANCEL retransmission and give-up.
        if let Some(cs) = &mut c.cancel {
            if cs.expire_at <= now {
                c.cancel = None;
            } else if let Some(at) = cs.retransmit_at
                && at <= now
            {
                cs.interval = (cs.interval * 2).min(t.t2);
                let next = now + cs.interval;
                cs.retransmit_at = Some(next);
                let tx = Transmit {
                    destination: c.hop,
                    transport: c.transport,
                    local: c.local,
                    connection: None,
                    bytes: cs.bytes.clone(),
                };
                self.transmits.push_back(tx);
                self.stats.retransmissions_sent += 1;
                self.arm(now, next, TimerRef::Client(id.0, id.1));
            }
        }
        let Some(c) = self.clients.get_mut(id.0, id.1) else {
            return;
        };
        if c.timeout_at.is_some_and(|e| e <= now) {
            self.client_timed_out(now, id);
            return;
        }
        if matches!(c.state, ClientState::Calling | ClientState::Proceeding)
            && let Some(at) = c.retransmit_at
            && at <= now
        {
            // Timer A (INVITE, doubling) or E (non-INVITE, capped at T2).
            c.interval = if c.invite {
                c.interval * 2
            } else {
                (c.interval * 2).min(t.t2)
            };
            let next = now + c.interval;
            c.retransmit_at = Some(next);
            let tx = Transmit {
                destination: c.hop,
                transport: c.transport,
                local: c.local,
                connection: None,
                bytes: c.request.clone(),
            };
            self.transmits.push_back(tx);
            self.stats.retransmissions_sent += 1;
            // One timer for both: the timeout, when it comes before the next send.
            let at = c.timeout_at.map_or(next, |to| to.min(next));
            self.arm(now, at, TimerRef::Client(id.0, id.1));
        } else if matches!(c.state, ClientState::Calling | ClientState::Proceeding)
            && c.retransmit_at.is_none()
            && let Some(to) = c.timeout_at
        {
            // Nothing more to send: what remains is the timeout (timer B, F or C), which
            // no timer was armed for while the sends came first.
            self.arm(now, to, TimerRef::Client(id.0, id.1));
        }
    }

    fn remove_client(&mut self, id: (u32, u32)) {
        let taken = self.clients.remove_with(id.0, id.1, |c| {
            if c.accounted
                && let Some(d) = &c.destination
            {
                d.transaction_cancelled();
            }
            c.server
        });
        if let Some(Some(sid)) = taken
            && let Some(st) = self.servers.get_mut(sid.0, sid.1)
            && st.client == Some(id)
        {
            st.client = None;
        }
    }

    fn client_timed_out(&mut self, now: Instant, id: (u32, u32)) {
        let Some(c) = self.clients.get_mut(id.0, id.1) else {
            return;
        };
        if c.probe {
            self.probe_failed(now, id);
            return;
        }
        let state = c.state;
        let server = c.server;
        let dest = c.destination.clone();
        let had_cancel = c.cancel_sent;
        if c.accounted {
            c.accounted = false;
            if let Some(d) = &dest {
                d.transaction_timed_out(now);
            }
        }
        if !matches!(state, ClientState::Calling | ClientState::Proceeding) {
            self.remove_client(id);
            return;
        }
        self.stats.timeouts += 1;
        if c.invite && state == ClientState::Proceeding && !had_cancel {
            // Timer C: the callee rings too long. Cancel it and answer 408.
            c.timeout_at = None;
            self.cancel_client(now, id);
            if let Some(sid) = server {
                if let Some(st) = self.servers.get_mut(sid.0, sid.1) {
                    st.client = None;
                }
                self.final_local(now, sid, 408, "Request Timeout", false);
            }
            return;
        }
        self.remove_client(id);
        let Some(sid) = server else { return };
        if self
            .servers
            .get(sid.0, sid.1)
            .is_some_and(|st| st.state != ServerState::Proceeding)
        {
            // Answered upstream already (timer C's 408): nothing to fail over.
            return;
        }
        let cancelled = self.servers.get(sid.0, sid.1).is_none_or(|st| st.cancelled);
        if cancelled {
            self.final_local(now, sid, 487, "Request Terminated", false);
            return;
        }
        if let Some(d) = dest {
            self.stats.failovers += 1;
            self.events.push_back(Event::Failover {
                destination: d,
                cause: FailoverCause::Timeout,
            });
        }
        self.attempt_again(now, sid);
    }

    // ---- probes ------------------------------------------------------------------------

    fn send_probes(&mut self, now: Instant) {
        let Some(pc) = self.cfg.probing.clone() else {
            self.next_probe = None;
            return;
        };
        self.next_probe = Some(now + pc.interval);
        self.scratch.clear();
        let mut targets = std::mem::take(&mut self.scratch);
        self.dispatcher.probe_candidates(pc.mode, now, &mut targets);
        for d in targets.drain(..) {
            self.send_probe(now, &pc, d);
        }
        self.scratch = targets;
    }

    fn send_probe(&mut self, now: Instant, pc: &crate::config::ProbeConfig, d: Arc<Destination>) {
        let target = d.target();
        let Some(addr) = target.socket_addr else {
            return;
        };
        let transport = target.transport;
        let Some(out_ep) = self.outbound_for(transport).cloned() else {
            return;
        };
        let (ci, cg) = self.clients.insert(ClientTx {
            server: None,
            destination: Some(d.clone()),
            hop: addr,
            transport,
            local: Some(out_ep.addr),
            invite: false,
            state: ClientState::Calling,
            request: Bytes::new(),
            sent_at: now,
            retransmit_at: None,
            interval: self.cfg.timers.t1,
            timeout_at: Some(now + pc.timeout),
            expire_at: None,
            accounted: false,
            cancel: None,
            cancel_sent: false,
            cancel_pending: false,
            ack: None,
            probe: true,
        });
        self.probe_seq = self.probe_seq.wrapping_add(1);
        let branch = OurBranch {
            worker: self.cfg.worker,
            kind: BranchKind::Transaction {
                index: ci,
                generation: cg,
            },
            loop_hash: 0,
        }
        .encode();
        let host = self.host_of(&out_ep).to_owned();
        let call_id = &branch.as_bytes()[crate::branch::PREFIX.len()..];
        let mut tag = itoa::Buffer::new();
        let probe = OptionsProbe {
            target: d.uri().as_bytes(),
            from: pc.from.as_bytes(),
            from_tag: tag.format(self.probe_seq).as_bytes(),
            call_id,
            cseq: self.probe_seq,
            via: ViaParts {
                transport,
                host: host.as_bytes(),
                port: out_ep.port(),
                branch: branch.as_bytes(),
                rport: transport == Transport::Udp,
            },
            user_agent: Some(self.cfg.user_agent.as_bytes()),
        };
        let mut buf = BytesMut::new();
        probe.write_into(&mut buf);
        let bytes = buf.freeze();
        let reliable = transport.is_reliable();
        let c = self.clients.get_mut(ci, cg).expect("just inserted");
        c.request = bytes.clone();
        c.retransmit_at = (!reliable).then_some(now + self.cfg.timers.t1);
        if !reliable {
            self.arm_in(now, self.cfg.timers.t1, TimerRef::Client(ci, cg));
        }
        self.arm_in(now, pc.timeout, TimerRef::Client(ci, cg));
        self.stats.probes_sent += 1;
        self.transmits.push_back(Transmit {
            destination: addr,
            transport,
            local: Some(out_ep.addr),
            connection: None,
            bytes,
        });
    }

    fn probe_answered(&mut self, now: Instant, id: (u32, u32), code: u16) {
        let Some(pc) = self.cfg.probing.clone() else {
            return;
        };
        let Some(c) = self.clients.remove(id.0, id.1) else {
            return;
        };
        let alive = pc.is_alive_code(code);
        if alive {
            self.stats.probes_alive += 1;
        } else {
            self.stats.probes_failed += 1;
        }
        if let Some(d) = c.destination {
            let rtt = now.saturating_duration_since(c.sent_at);
            if let Some(change) = d.probe_result(alive, Some(rtt), now, &pc.health) {
                self.events.push_back(Event::DestinationState {
                    destination: d,
                    change,
                });
            }
        }
    }

    fn probe_failed(&mut self, now: Instant, id: (u32, u32)) {
        let Some(pc) = self.cfg.probing.clone() else {
            self.clients.remove(id.0, id.1);
            return;
        };
        let Some(c) = self.clients.remove(id.0, id.1) else {
            return;
        };
        self.stats.probes_failed += 1;
        if let Some(d) = c.destination
            && let Some(change) = d.probe_result(false, None, now, &pc.health)
        {
            self.events.push_back(Event::DestinationState {
                destination: d,
                change,
            });
        }
    }

    /// Ends every transaction at once (shutdown past its deadline): client transactions
    /// release their load counts, and nothing more is sent for them.
    pub fn abandon_all(&mut self) {
        let clients: Vec<_> = self.clients.keys().collect();
        for id in clients {
            self.remove_client(id);
        }
        let servers: Vec<_> = self.servers.keys().collect();
        for id in servers {
            self.servers.remove(id.0, id.1);
        }
        self.server_index.clear();
        self.queue.clear();
        self.timers.clear();
    }
}

/// §16.7 step 6, simplified: a 6xx beats everything; otherwise the lowest class wins and
/// the first response of a class stays.
fn better(new: &Message, old: Option<&Message>) -> bool {
    let Some(old) = old else { return true };
    let n = new.status_code().unwrap_or(500) / 100;
    let o = old.status_code().unwrap_or(500) / 100;
    if o == 6 {
        return false;
    }
    n == 6 || n < o
}

fn write_rr(out: &mut Scratch, ep: &LocalEndpoint, host: &str, cookie: &[u8]) {
    out.extend_from_slice(b"<sip:");
    out.extend_from_slice(host.as_bytes());
    out.push(b':');
    out.extend_from_slice(itoa::Buffer::new().format(ep.port()).as_bytes());
    if ep.transport != Transport::Udp {
        out.extend_from_slice(b";transport=");
        out.extend_from_slice(ep.transport.uri_param().as_bytes());
    }
    out.extend_from_slice(b";lr;");
    out.extend_from_slice(COOKIE_PARAM.as_bytes());
    out.push(b'=');
    out.extend_from_slice(cookie);
    out.push(b'>');
}

/// Removes the first `n` Route values of the request (across header lines).
fn remove_route_values(
    req: &Message,
    ed: &mut Editor<'_>,
    mut n: u8,
) -> Result<(), sip_core::editor::EditError> {
    if n == 0 {
        return Ok(());
    }
    let top = req.top_route_span();
    for h in req.headers_named(HeaderName::Route) {
        if n == 1
            && let Some((index, _)) = top
            && index == h.index
        {
            // The top Route value alone: the parse pass located it, so the line is not
            // split again (the editor removes it the same way, line or value and comma).
            return ed.remove_top_route();
        }
        let values: SmallVec<[usize; 4]> = CommaSplit::new(h.value).map(|(off, _)| off).collect();
        let k = values.len().min(n as usize);
        if k == values.len() {
            ed.remove(h.line)?;
        } else {
            let start = h.value_span.start as usize;
            ed.remove(Span::new(start, start + values[k]))?;
        }
        n -= k as u8;
        if n == 0 {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_dispatch::DestinationList;

    fn proxy_with(listeners: Vec<LocalEndpoint>) -> Proxy {
        let list = DestinationList::parse_kamailio("1 sip:127.0.0.1:5080\n").unwrap();
        let cfg = ProxyConfig {
            listeners,
            cookie_key: b"test".to_vec(),
            ..ProxyConfig::default()
        };
        Proxy::new(
            cfg,
            Arc::new(Dispatcher::new(list)),
            Arc::new(CallTable::new()),
        )
    }

    /// A BYE whose Route header is `route` (which may itself hold more values or a
    /// further `Route:` line), `None` when the parser refuses it.
    fn bye_with_route(route: &[u8]) -> Option<Message> {
        let mut text = b"BYE sip:bob@127.0.0.1:5080 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\nRoute: "
            .to_vec();
        text.extend_from_slice(route);
        text.extend_from_slice(b"\r\n");
        text.extend_from_slice(
            b"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\n\
              Call-ID: c1@127.0.0.1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        );
        Message::parse(Bytes::from(text)).ok()
    }

    #[test]
    fn our_sent_by_is_recognised_as_the_search_for_its_end_recognised_it() {
        let p = proxy_with(vec![
            LocalEndpoint::new(Transport::Udp, "127.0.0.1:5060".parse().unwrap()),
            LocalEndpoint::new(Transport::Tcp, "[::1]:5062".parse().unwrap()),
        ]);
        // What `top_sent_by_is_ours_verbatim` did before: cut the sent-by at its `;`.
        let by_search = |msg: &Message| {
            let (_, span) = msg.top_via_span().unwrap();
            let rest = msg.slice(span).strip_prefix(b"SIP/2.0/").unwrap();
            let rest = &rest[rest.iter().position(|&c| c == b' ').unwrap() + 1..];
            let sent_by = &rest[..rest.iter().position(|&c| c == b';').unwrap_or(rest.len())];
            p.sent_by_texts.iter().any(|t| t.as_slice() == sent_by)
        };
        let mut ours = 0;
        for via in [
            &b"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsLf00"[..],
            b"SIP/2.0/UDP 127.0.0.1:5060",
            b"SIP/2.0/UDP 127.0.0.1:50600;branch=z9hG4bK1",
            b"SIP/2.0/UDP 127.0.0.1:506;branch=z9hG4bK1",
            b"SIP/2.0/UDP 127.0.0.1:5060 ;branch=z9hG4bK1",
            b"SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1",
            b"SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bK1",
            b"SIP/2.0/TCP [::1]:5062;branch=z9hG4bK1;received=::2",
            b"SIP/2.0/TCP [::1]:5062",
            b"SIP/2.0/TCP [::1]:50621;branch=z9hG4bK1",
            b"SIP/2.0/UDP 127.0.0.1:5060, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK2",
        ] {
            let mut text = b"SIP/2.0 200 OK\r\nVia: ".to_vec();
            text.extend_from_slice(via);
            text.extend_from_slice(
                b"\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\n\
                  CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            );
            let Ok(msg) = Message::parse(Bytes::from(text)) else {
                continue;
            };
            let want = by_search(&msg);
            ours += usize::from(want);
            assert_eq!(
                p.top_sent_by_is_ours_verbatim(&msg),
                want,
                "{}",
                String::from_utf8_lossy(via)
            );
        }
        assert!(ours >= 4, "{ours}");
    }

    #[test]
    fn removing_the_top_route_value_removes_what_splitting_the_line_removes() {
        // What `remove_route_values` did for one value before it took the parse pass's
        // top Route: split the first Route line.
        fn by_splitting(req: &Message) -> Bytes {
            let mut ed = Editor::new(req);
            let mut n = 1usize;
            for h in req.headers_named(HeaderName::Route) {
                let values: Vec<usize> = CommaSplit::new(h.value).map(|(off, _)| off).collect();
                let k = values.len().min(n);
                if k == values.len() {
                    ed.remove(h.line).unwrap();
                } else {
                    let start = h.value_span.start as usize;
                    ed.remove(Span::new(start, start + values[k])).unwrap();
                }
                n -= k;
                if n == 0 {
                    break;
                }
            }
            ed.finish().unwrap()
        }
        let mut seen = 0;
        for route in [
            &b"<sip:127.0.0.1:5060;lr>"[..],
            b"<sip:127.0.0.1:5060;lr>,<sip:10.0.0.1;lr>",
            b"<sip:127.0.0.1:5060;lr> , <sip:10.0.0.1;lr>",
            b"<sip:127.0.0.1:5060;lr>,\r\n <sip:10.0.0.1;lr>",
            b"<sip:127.0.0.1:5060;lr>,",
            b", <sip:127.0.0.1:5060;lr>",
            b"<sip:127.0.0.1:5060;lr>\r\nRoute: <sip:10.0.0.1;lr>",
            b"\r\nRoute: <sip:127.0.0.1:5060;lr>, <sip:10.0.0.1;lr>",
        ] {
            let Some(req) = bye_with_route(route) else {
                continue;
            };
            seen += 1;
            let mut ed = Editor::new(&req);
            remove_route_values(&req, &mut ed, 1).unwrap();
            assert_eq!(
                ed.finish().unwrap(),
                by_splitting(&req),
                "{}",
                String::from_utf8_lossy(route)
            );
        }
        assert!(seen >= 6, "{seen} of the messages parsed");
    }

    #[test]
    fn stateless_selections_go_when_their_time_is_up_with_no_traffic() {
        let list = DestinationList::parse_kamailio("1 sip:127.0.0.1:5080\n").unwrap();
        let lb: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let cfg = ProxyConfig {
            mode: Mode::Stateless,
            listeners: vec![LocalEndpoint::new(Transport::Udp, lb)],
            cookie_key: b"test".to_vec(),
            ..ProxyConfig::default()
        };
        let mut p = Proxy::new(
            cfg,
            Arc::new(Dispatcher::new(list)),
            Arc::new(CallTable::new()),
        );
        let mut now = Instant::now();
        p.start(now);
        let caller = Origin::udp("127.0.0.1:5070".parse().unwrap(), lb);
        for i in 0..100 {
            let invite = format!(
                "INVITE sip:svc@127.0.0.1:5060 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{i}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag={i}\r\n\
                 To: <sip:svc@127.0.0.1>\r\nCall-ID: {i}@127.0.0.1\r\n\
                 CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            );
            p.handle_datagram(now, caller, Bytes::from(invite));
            while p.poll_transmit().is_some() {}
        }
        assert_eq!(p.recent.len(), 100);
        // 64·T1 later, with nothing received, the timer alone clears them.
        for _ in 0..40 {
            now += Duration::from_secs(1);
            p.handle_timeout(now);
        }
        assert_eq!(p.recent.len(), 0);
    }

    #[test]
    fn destination_addresses_hash_apart() {
        // Addresses as destination lists have them: neighbours in a subnet, a few ports,
        // IPv6 too. A hasher that lost a field would put many on one value.
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<AddrHasher>::default();
        let mut seen = std::collections::HashSet::new();
        let mut n = 0;
        for host in 0..256u32 {
            for port in [5060u16, 5061, 5080, 15060] {
                let v4 = SocketAddr::from(([10, 0, (host >> 4) as u8, host as u8], port));
                let v6 = SocketAddr::new(
                    IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, host as u16]),
                    port,
                );
                for a in [v4, v6] {
                    seen.insert(build.hash_one(a));
                    n += 1;
                }
            }
        }
        assert_eq!(seen.len(), n, "every address hashes to a value of its own");
    }

    #[test]
    fn our_route_read_verbatim_gives_what_the_general_reading_gives() {
        let mut tcp = LocalEndpoint::new(Transport::Tcp, "127.0.0.1:5060".parse().unwrap());
        tcp.advertise = Some("LB.Example.com".into());
        let p = proxy_with(vec![
            LocalEndpoint::new(Transport::Udp, "127.0.0.1:5060".parse().unwrap()),
            tcp,
            LocalEndpoint::new(Transport::Udp, "[::1]:5062".parse().unwrap()),
        ]);
        assert_eq!(
            p.rr_prefixes.len(),
            3,
            "every endpoint's Record-Route is recognised"
        );
        let cookie = RouteCookie {
            addr: "127.0.0.1:5080".parse().unwrap(),
            transport: Transport::Udp,
        }
        .encode_cached(&p.cookie_key, &mut p.cookie_tags.borrow_mut());
        let mut routes: Vec<Vec<u8>> = Vec::new();
        let mut written: Vec<Vec<u8>> = Vec::new();
        for ep in p.cfg.listeners.iter() {
            let mut rr: Scratch = SmallVec::new();
            write_rr(&mut rr, ep, p.host_of(ep), cookie.as_bytes());
            let rr = rr.to_vec();
            written.push(rr.clone());
            // The Record-Route as written, then every way of changing it by one byte (a
            // forged cookie, another host or port, a broken bracket), and a few spellings
            // the general reading also takes.
            routes.push(rr.clone());
            for at in 0..rr.len() {
                for c in [b'0', b'f', b'A', b'.', b';', b'>', b' ', b'x'] {
                    let mut m = rr.clone();
                    m[at] = c;
                    routes.push(m);
                }
                let mut cut = rr.clone();
                cut.remove(at);
                routes.push(cut);
            }
            let text = String::from_utf8(rr.clone()).unwrap();
            routes.push(text.to_uppercase().into_bytes());
            routes.push(text.replace(";lr;", ";lr;foo=1;").into_bytes());
            routes.push(format!("{text};x=1").into_bytes());
            routes.push(text.replace('>', ";y>").into_bytes());
            routes.push(text.replace("<sip:", "\"LB\" <sip:").into_bytes());
        }
        for r in &routes {
            // A change the parser refuses never reaches the proxy's routing.
            let Some(msg) = bye_with_route(r) else {
                continue;
            };
            assert_eq!(
                p.our_routes(&msg),
                p.our_routes_general(&msg),
                "{}",
                String::from_utf8_lossy(r)
            );
        }
        // Every Record-Route as we write it takes the verbatim path, cookie and all.
        for rr in &written {
            let msg = bye_with_route(rr).unwrap();
            let text = p.our_route_verbatim(&msg).expect("read verbatim");
            assert!(
                RouteCookie::decode_cached(text, &p.cookie_key, &mut p.cookie_tags.borrow_mut())
                    .is_ok(),
                "{}",
                String::from_utf8_lossy(rr)
            );
        }
        let ok = bye_with_route(&routes[0]).unwrap();
        assert_eq!(
            p.our_routes(&ok),
            Ok((
                1,
                Some(RouteCookie {
                    addr: "127.0.0.1:5080".parse().unwrap(),
                    transport: Transport::Udp,
                }),
                None
            ))
        );
    }
}
