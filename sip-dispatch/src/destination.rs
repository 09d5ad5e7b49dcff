//! One destination: where to send, its health state and its load counters, all updated
//! through `&self` with atomics so every worker thread can report at once.

use std::net::SocketAddr;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed,
};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;
use sip_core::Transport;

use crate::list::{Attrs, DestinationSpec, Flags};

/// Health state (Kamailio's destination states; Kamailio's "probing" is a separate flag
/// here, see [`Destination::is_probing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// In use.
    Active,
    /// Failing, still in use until the inactive threshold is reached.
    Trying,
    /// Not used until probes find it alive.
    Inactive,
    /// Administratively out of use; probes and failures do not change it.
    Disabled,
}

impl State {
    fn code(self) -> u8 {
        match self {
            State::Active => 0,
            State::Trying => 1,
            State::Inactive => 2,
            State::Disabled => 3,
        }
    }

    fn from_code(c: u8) -> State {
        match c {
            0 => State::Active,
            1 => State::Trying,
            2 => State::Inactive,
            _ => State::Disabled,
        }
    }

    /// The name (`active`, `trying`, `inactive`, `disabled`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Trying => "trying",
            State::Inactive => "inactive",
            State::Disabled => "disabled",
        }
    }

    /// True for the states selection may use (active, trying), as Kamailio's
    /// `ds_skip_dst` skips only inactive and disabled destinations.
    pub fn is_selectable(self) -> bool {
        matches!(self, State::Active | State::Trying)
    }
}

/// A state name that does not exist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown state `{0}` (active, trying, inactive, disabled)")]
pub struct UnknownState(pub String);

impl std::str::FromStr for State {
    type Err = UnknownState;
    /// Accepts the names and Kamailio's letters of `dispatcher.set_state` (`a`, `t`,
    /// `i`, `d`; a trailing `p` for probing is ignored here, see
    /// [`Destination::set_probing`]).
    fn from_str(s: &str) -> Result<State, UnknownState> {
        let l = s.trim().to_ascii_lowercase();
        let t = match l.as_str() {
            "ap" | "tp" | "ip" | "dp" => &l[..1],
            other => other,
        };
        Ok(match t {
            "active" | "a" => State::Active,
            "trying" | "t" => State::Trying,
            "inactive" | "i" => State::Inactive,
            "disabled" | "d" => State::Disabled,
            _ => return Err(UnknownState(s.to_string())),
        })
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of state, for logs and events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StateChange {
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
}

/// Thresholds of the probe state machine (Kamailio `ds_probing_threshold` and
/// `ds_inactive_threshold`). Passive failures have their own threshold,
/// [`PassiveHealth`], set on the dispatcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HealthConfig {
    /// Consecutive failed probes before a destination is inactive (Kamailio
    /// `ds_probing_threshold`; the first failure makes an active destination trying).
    pub inactive_threshold: u32,
    /// Consecutive successful probes before an inactive destination is active again
    /// (Kamailio `ds_inactive_threshold`).
    pub active_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            inactive_threshold: 3,
            active_threshold: 1,
        }
    }
}

/// How traffic itself (not probes) changes a destination's health: what counts as a
/// passive failure and how many consecutive ones make a destination inactive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassiveHealth {
    /// Consecutive passive failures (timeouts, and 408/5xx when counted) before a
    /// destination is inactive; the first one makes it trying. 0: traffic never changes
    /// the state (only probes and the admin do).
    pub failure_threshold: u32,
    /// Count 408 and 5xx final responses (but 503, see
    /// [`Destination::mark_down_until`]) as failures, not only timeouts.
    pub server_errors: bool,
    /// A successful final response (anything but a counted failure) brings a trying
    /// destination back to active.
    pub success_recovers: bool,
}

impl Default for PassiveHealth {
    fn default() -> Self {
        PassiveHealth {
            failure_threshold: 3,
            server_errors: true,
            success_recovers: true,
        }
    }
}

/// Settings shared by the dispatcher and all its destinations (atomics, so they can be
/// changed at run time without a lock).
#[derive(Debug)]
pub(crate) struct Policy {
    pub(crate) passive_threshold: AtomicU32,
    pub(crate) passive_server_errors: AtomicBool,
    pub(crate) passive_success_recovers: AtomicBool,
    /// The probe mode last asked for in `probe_candidates` (see `ProbeMode::code`).
    pub(crate) probe_mode: AtomicU8,
}

impl Policy {
    pub(crate) fn new(p: PassiveHealth) -> Policy {
        let policy = Policy {
            passive_threshold: AtomicU32::new(0),
            passive_server_errors: AtomicBool::new(false),
            passive_success_recovers: AtomicBool::new(false),
            probe_mode: AtomicU8::new(1),
        };
        policy.set(p);
        policy
    }

    pub(crate) fn set(&self, p: PassiveHealth) {
        self.passive_threshold.store(p.failure_threshold, Relaxed);
        self.passive_server_errors.store(p.server_errors, Relaxed);
        self.passive_success_recovers
            .store(p.success_recovers, Relaxed);
    }

    pub(crate) fn get(&self) -> PassiveHealth {
        PassiveHealth {
            failure_threshold: self.passive_threshold.load(Relaxed),
            server_errors: self.passive_server_errors.load(Relaxed),
            success_recovers: self.passive_success_recovers.load(Relaxed),
        }
    }
}

/// RFC 7339 overload control advertised by a destination in a response Via
/// (`oc`, `oc-algo`, `oc-validity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverloadControl {
    /// `oc-algo=loss`: withhold this percentage of new requests (0-100).
    Loss {
        /// Percentage.
        percent: u8,
        /// `oc-validity`.
        validity: Duration,
    },
    /// `oc-algo=rate`: send at most this many requests per second.
    Rate {
        /// Requests per second.
        per_second: u32,
        /// `oc-validity`.
        validity: Duration,
    },
    /// `oc-validity=0`: overload ended.
    None,
}

/// Where to send requests for a destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Host as written in the URI (IPv6 references keep their brackets).
    pub host: String,
    /// Port (the transport's default when the URI has none).
    pub port: u16,
    /// Transport (`;transport=`, `sips` → TLS).
    #[serde(serialize_with = "ser_transport")]
    pub transport: Transport,
    /// The address when the host is an IP literal (else the runtime must resolve it).
    pub socket_addr: Option<SocketAddr>,
}

fn ser_transport<S: serde::Serializer>(t: &Transport, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.uri_param())
}

/// Counters and state of a destination at one moment (admin API, metrics).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DestinationStats {
    /// Health state.
    pub state: State,
    /// Probing flag (Kamailio's `P`).
    pub probing: bool,
    /// Active (started, not yet ended) calls.
    pub active_calls: i64,
    /// Client transactions sent and not yet finished.
    pub outstanding: i64,
    /// Requests sent, ever.
    pub requests: u64,
    /// Bytes forwarded in the last 10 s (relative to the latest time reported to it).
    pub bytes_recent: u64,
    /// Smoothed time from request to final response (µs), 0 when unknown.
    pub latency_us: u64,
    /// Smoothed probe round trip (µs), 0 when unknown.
    pub probe_rtt_us: u64,
    /// Result of the last probe (`None` before any).
    pub last_probe_ok: Option<bool>,
    /// Consecutive failures.
    pub failures: u32,
    /// Failures (timeouts, counted 5xx, failed probes) ever.
    pub failures_total: u64,
    /// Weight.
    pub weight: u32,
    /// Flags as configured.
    pub flags: u32,
    /// Priority.
    pub priority: i32,
    /// True while a 503 Retry-After keeps it out of selection.
    pub marked_down: bool,
}

/// Length of the sliding window (seconds) of bytes and request rates.
pub(crate) const WINDOW: usize = 10;

const OC_LOSS: u8 = 1;
const OC_RATE: u8 = 2;

/// Fixed-point scale of the failure-rate EWMA (1.0 = 65536).
const FAIL_ONE: u64 = 1 << 16;

/// One destination of a set. Created by the dispatcher; shared as `Arc<Destination>` and
/// kept across reloads when its set and URI remain, so its state and counters survive.
///
/// Time is kept as microseconds since the first `Instant` the destination was given
/// (no clock is read).
#[derive(Debug)]
pub struct Destination {
    set: u32,
    uri: String,
    target: Target,
    base: OnceLock<Instant>,
    policy: Arc<Policy>,
    flags: AtomicU32,
    priority: AtomicI32,
    attrs: ArcSwap<Attrs>,
    state: AtomicU8,
    probing: AtomicBool,
    failures: AtomicU32,
    successes: AtomicU32,
    failures_total: AtomicU64,
    fail_rate: AtomicU64,
    down_until_us: AtomicU64,
    active_calls: AtomicI64,
    outstanding: AtomicI64,
    requests: AtomicU64,
    latency_us: AtomicU64,
    latency_slow_us: AtomicU64,
    probe_rtt_us: AtomicU64,
    last_probe: AtomicU8,
    last_seen_us: AtomicU64,
    slot_sec: [AtomicU64; WINDOW],
    bytes: [AtomicU64; WINDOW],
    reqs: [AtomicU64; WINDOW],
    overload_mode: AtomicU8,
    overload_pct: AtomicU8,
    overload_rate: AtomicU32,
    overload_until_us: AtomicU64,
    overload_seq: AtomicU64,
}

pub(crate) fn target_of(uri: &str) -> Target {
    match sip_core::uri::Uri::parse(uri.as_bytes()) {
        Ok(u) => {
            let port = u.port_or_default();
            Target {
                socket_addr: u
                    .host()
                    .and_then(|h| h.ip())
                    .map(|ip| SocketAddr::new(ip, port)),
                host: String::from_utf8_lossy(u.host_raw()).into_owned(),
                port,
                transport: u.effective_transport(),
            }
        }
        // Unreachable for lists built by this crate (every URI is checked); kept total.
        Err(_) => Target {
            host: uri.to_string(),
            port: 5060,
            transport: Transport::Udp,
            socket_addr: None,
        },
    }
}

fn ewma(cell: &AtomicU64, sample: u64, shift: u32) {
    let _ = cell.fetch_update(Relaxed, Relaxed, |old| {
        Some(if old == 0 {
            sample.max(1)
        } else {
            let o = old as i64;
            (o + ((sample as i64 - o) >> shift)).max(1) as u64
        })
    });
}

fn initial_state(f: Flags) -> State {
    if f.has(Flags::DISABLED) {
        State::Disabled
    } else if f.has(Flags::INACTIVE) {
        State::Inactive
    } else if f.has(Flags::TRYING) {
        State::Trying
    } else {
        State::Active
    }
}

impl Destination {
    pub(crate) fn new(spec: &DestinationSpec, policy: Arc<Policy>) -> Destination {
        let f = spec.flags;
        Destination {
            set: spec.set,
            uri: spec.uri.clone(),
            target: target_of(&spec.uri),
            base: OnceLock::new(),
            policy,
            flags: AtomicU32::new(f.0),
            priority: AtomicI32::new(spec.priority),
            attrs: ArcSwap::from_pointee(spec.attrs.clone()),
            state: AtomicU8::new(initial_state(f).code()),
            probing: AtomicBool::new(f.has(Flags::PROBING)),
            failures: AtomicU32::new(0),
            successes: AtomicU32::new(0),
            failures_total: AtomicU64::new(0),
            fail_rate: AtomicU64::new(0),
            down_until_us: AtomicU64::new(0),
            active_calls: AtomicI64::new(0),
            outstanding: AtomicI64::new(0),
            requests: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
            latency_slow_us: AtomicU64::new(0),
            probe_rtt_us: AtomicU64::new(0),
            last_probe: AtomicU8::new(0),
            last_seen_us: AtomicU64::new(0),
            slot_sec: Default::default(),
            bytes: Default::default(),
            reqs: Default::default(),
            overload_mode: AtomicU8::new(0),
            overload_pct: AtomicU8::new(0),
            overload_rate: AtomicU32::new(0),
            overload_until_us: AtomicU64::new(0),
            overload_seq: AtomicU64::new(0),
        }
    }

    /// Applies a changed configuration line (same set and URI) without touching state
    /// or counters, except that a newly set or cleared disabled flag changes the state.
    /// Returns true when something changed.
    pub(crate) fn reconfigure(&self, spec: &DestinationSpec) -> bool {
        let old = self.flags.swap(spec.flags.0, Relaxed);
        let old_prio = self.priority.swap(spec.priority, Relaxed);
        let attrs_changed = **self.attrs.load() != spec.attrs;
        if attrs_changed {
            self.attrs.store(Arc::new(spec.attrs.clone()));
        }
        let was_disabled = Flags(old).has(Flags::DISABLED);
        let now_disabled = spec.flags.has(Flags::DISABLED);
        if now_disabled && !was_disabled {
            self.state.store(State::Disabled.code(), Relaxed);
        } else if was_disabled && !now_disabled {
            self.state.store(initial_state(spec.flags).code(), Relaxed);
        }
        if Flags(old).has(Flags::PROBING) != spec.flags.has(Flags::PROBING) {
            self.probing.store(spec.flags.has(Flags::PROBING), Relaxed);
        }
        old != spec.flags.0 || old_prio != spec.priority || attrs_changed
    }

    /// Microseconds of `t` on this destination's time line (starting at the first
    /// instant it was given).
    fn us(&self, t: Instant) -> u64 {
        // The time line starts well before the first instant seen, so that earlier
        // instants given later (another thread's `now`) still order correctly.
        let base = *self.base.get_or_init(|| {
            [86_400 * 365, 86_400, 3_600, 60, 1]
                .iter()
                .find_map(|&s| t.checked_sub(Duration::from_secs(s)))
                .unwrap_or(t)
        });
        t.saturating_duration_since(base).as_micros() as u64
    }

    fn seen(&self, t: Instant) -> u64 {
        let us = self.us(t);
        // To the millisecond: a busy destination is reported to by every worker many
        // times a millisecond, and each read-modify-write takes the cache line from the
        // others (the latest instant only anchors the byte window of `stats`).
        if us >= self.last_seen_us.load(Relaxed).saturating_add(1_000) {
            self.last_seen_us.fetch_max(us, Relaxed);
        }
        us
    }

    /// The set.
    pub fn set_id(&self) -> u32 {
        self.set
    }

    /// The URI as configured.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Where to send.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Flags as configured (the live state is [`Destination::state`] and
    /// [`Destination::is_probing`]).
    pub fn flags(&self) -> Flags {
        Flags(self.flags.load(Relaxed))
    }

    /// Priority.
    pub fn priority(&self) -> i32 {
        self.priority.load(Relaxed)
    }

    /// Attributes. A guard that dereferences to [`Attrs`] (a reload may replace them
    /// while the destination keeps its state).
    pub fn attrs(&self) -> arc_swap::Guard<Arc<Attrs>> {
        self.attrs.load()
    }

    /// Weight (attribute `weight`, default 1).
    pub fn weight(&self) -> u32 {
        self.attrs.load().weight.unwrap_or(1).max(1)
    }

    /// Health state.
    pub fn state(&self) -> State {
        State::from_code(self.state.load(Relaxed))
    }

    /// True while the probing flag is set: after a failure, or when configured with
    /// flag 8 (Kamailio's `P`).
    pub fn is_probing(&self) -> bool {
        self.probing.load(Relaxed)
    }

    /// Sets or clears the probing flag (Kamailio `dispatcher.set_state ap|ip`).
    pub fn set_probing(&self, on: bool) {
        self.probing.store(on, Relaxed);
    }

    /// True when the destination may be selected now: active or trying, and not marked
    /// down by a 503 with Retry-After.
    #[inline]
    pub fn is_usable(&self, now: Instant) -> bool {
        if !self.state().is_selectable() {
            return false;
        }
        let down = self.down_until_us.load(Relaxed);
        down == 0 || down <= self.us(now)
    }

    fn store_state(&self, to: State) -> Option<StateChange> {
        let from = State::from_code(self.state.swap(to.code(), Relaxed));
        (from != to).then_some(StateChange { from, to })
    }

    /// Moves the state from `from` to `to` only if it still is `from` (a concurrent
    /// admin change wins).
    fn transition(&self, from: State, to: State) -> Option<StateChange> {
        // Read first: the usual call finds the state already elsewhere (a success on an
        // active destination), and a failed exchange still takes the cache line.
        if self.state.load(Relaxed) != from.code() {
            return None;
        }
        self.state
            .compare_exchange(from.code(), to.code(), Relaxed, Relaxed)
            .ok()
            .filter(|_| from != to)
            .map(|_| StateChange { from, to })
    }

    fn record_outcome(&self, failed: bool) {
        let sample = if failed { FAIL_ONE } else { 0 };
        // No write when the average stays where it is (0 on a destination that does not
        // fail).
        let _ = self.fail_rate.fetch_update(Relaxed, Relaxed, |old| {
            let new = ((old as i64) + ((sample as i64 - old as i64) >> 3)) as u64;
            (new != old).then_some(new)
        });
    }

    fn failure(&self, threshold: u32) -> Option<StateChange> {
        self.successes.store(0, Relaxed);
        self.failures_total.fetch_add(1, Relaxed);
        self.record_outcome(true);
        self.probing.store(true, Relaxed);
        let n = self.failures.fetch_add(1, Relaxed).saturating_add(1);
        if threshold == 0 {
            return None;
        }
        match self.state() {
            s @ (State::Active | State::Trying) if n >= threshold => {
                self.transition(s, State::Inactive)
            }
            State::Active => self.transition(State::Active, State::Trying),
            _ => None,
        }
    }

    /// A request was sent to the destination: one more outstanding transaction, and
    /// `bytes` more in the sliding window.
    pub fn request_sent(&self, now: Instant, bytes: usize) {
        self.outstanding.fetch_add(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        let sec = self.seen(now) / 1_000_000;
        let slot = (sec as usize) % WINDOW;
        // The first report of a new second resets its slot. Reports racing across a
        // second boundary may land in the previous second: the window is an estimate.
        let old = self.slot_sec[slot].load(Relaxed);
        if old != sec
            && self.slot_sec[slot]
                .compare_exchange(old, sec, Relaxed, Relaxed)
                .is_ok()
        {
            self.bytes[slot].store(0, Relaxed);
            self.reqs[slot].store(0, Relaxed);
        }
        self.bytes[slot].fetch_add(bytes as u64, Relaxed);
        self.reqs[slot].fetch_add(1, Relaxed);
    }

    /// The first final response of a client transaction arrived after `rtt`: one
    /// outstanding transaction less, the latency average updated and, per the
    /// dispatcher's [`PassiveHealth`], 408 and 5xx other than 503 counted as failures.
    /// Returns the state change it caused.
    pub fn response_received(&self, code: u16, rtt: Duration, now: Instant) -> Option<StateChange> {
        self.outstanding.fetch_sub(1, Relaxed);
        self.seen(now);
        let us = rtt.as_micros() as u64;
        ewma(&self.latency_us, us, 2);
        ewma(&self.latency_slow_us, us, 7);
        let p = &self.policy;
        let server_error = code == 408 || ((500..600).contains(&code) && code != 503);
        if server_error && p.passive_server_errors.load(Relaxed) {
            self.failure(p.passive_threshold.load(Relaxed))
        } else {
            self.record_outcome(false);
            if self.failures.load(Relaxed) != 0 {
                self.failures.store(0, Relaxed);
            }
            if p.passive_success_recovers.load(Relaxed) && p.passive_threshold.load(Relaxed) > 0 {
                self.transition(State::Trying, State::Active)
            } else {
                None
            }
        }
    }

    /// A client transaction timed out: one outstanding transaction less, and a passive
    /// failure. Returns the state change it caused.
    pub fn transaction_timed_out(&self, now: Instant) -> Option<StateChange> {
        self.outstanding.fetch_sub(1, Relaxed);
        self.seen(now);
        self.failure(self.policy.passive_threshold.load(Relaxed))
    }

    /// A client transaction ended without a response or timeout (cancelled, abandoned,
    /// failed over before an answer): one outstanding transaction less, no health effect.
    pub fn transaction_cancelled(&self) {
        self.outstanding.fetch_sub(1, Relaxed);
    }

    /// A call to this destination started (counts for call load until
    /// [`Destination::call_ended`]).
    pub fn call_started(&self) {
        self.active_calls.fetch_add(1, Relaxed);
    }

    /// A call to this destination ended.
    pub fn call_ended(&self) {
        self.active_calls.fetch_sub(1, Relaxed);
    }

    /// Not selectable until `until` (a 503 with Retry-After). A later mark extends it;
    /// an earlier one does not shorten it.
    pub fn mark_down_until(&self, until: Instant) {
        let us = self.us(until).max(1);
        self.down_until_us.fetch_max(us, Relaxed);
    }

    /// The result of an OPTIONS probe. A success clears the failure count, brings a
    /// trying destination back at once and an inactive one after
    /// [`HealthConfig::active_threshold`] successes; a failure counts toward
    /// [`HealthConfig::inactive_threshold`]. Disabled destinations do not change.
    pub fn probe_result(
        &self,
        alive: bool,
        rtt: Option<Duration>,
        now: Instant,
        cfg: &HealthConfig,
    ) -> Option<StateChange> {
        self.seen(now);
        self.last_probe.store(if alive { 1 } else { 2 }, Relaxed);
        if let Some(r) = rtt {
            ewma(&self.probe_rtt_us, r.as_micros() as u64, 2);
        }
        if self.state() == State::Disabled {
            return None;
        }
        if alive {
            self.failures.store(0, Relaxed);
            let ok = self.successes.fetch_add(1, Relaxed).saturating_add(1);
            // Kamailio ds_probing_mode 0 clears the probing flag after a successful
            // probe; the other modes keep it.
            if self.policy.probe_mode.load(Relaxed) == 0 {
                self.probing.store(false, Relaxed);
            }
            match self.state() {
                State::Inactive if ok >= cfg.active_threshold.max(1) => {
                    self.transition(State::Inactive, State::Active)
                }
                State::Trying => self.transition(State::Trying, State::Active),
                _ => None,
            }
        } else {
            self.failure(cfg.inactive_threshold.max(1))
        }
    }

    /// Sets the state by hand (like `kamcmd dispatcher.set_state`); clears the failure
    /// counts and any Retry-After mark.
    pub fn set_state(&self, state: State) -> Option<StateChange> {
        self.failures.store(0, Relaxed);
        self.successes.store(0, Relaxed);
        self.down_until_us.store(0, Relaxed);
        self.store_state(state)
    }

    /// Records RFC 7339 overload control advertised by the destination.
    pub fn overload_advertised(&self, oc: OverloadControl, now: Instant) {
        match oc {
            OverloadControl::Loss { percent, validity } => {
                self.seen(now);
                self.overload_pct.store(percent.min(100), Relaxed);
                self.overload_mode.store(OC_LOSS, Relaxed);
                self.overload_until_us
                    .store(self.us(now + validity).max(1), Relaxed);
            }
            OverloadControl::Rate {
                per_second,
                validity,
            } => {
                self.seen(now);
                self.overload_rate.store(per_second, Relaxed);
                self.overload_mode.store(OC_RATE, Relaxed);
                self.overload_until_us
                    .store(self.us(now + validity).max(1), Relaxed);
            }
            OverloadControl::None => self.overload_until_us.store(0, Relaxed),
        }
    }

    /// True when RFC 7339 overload control asks to withhold the next request from this
    /// destination: under `loss`, exactly `percent` of every 100 consecutive decisions
    /// (spread evenly); under `rate`, once the requests sent in the current second reach
    /// the rate.
    pub(crate) fn overload_withhold(&self, now: Instant) -> bool {
        let until = self.overload_until_us.load(Relaxed);
        if until == 0 {
            return false;
        }
        let t = self.us(now);
        if until <= t {
            return false;
        }
        if self.overload_mode.load(Relaxed) == OC_RATE {
            let rate = self.overload_rate.load(Relaxed);
            let sec = t / 1_000_000;
            let slot = (sec as usize) % WINDOW;
            let sent = if self.slot_sec[slot].load(Relaxed) == sec {
                self.reqs[slot].load(Relaxed)
            } else {
                0
            };
            return sent >= u64::from(rate);
        }
        let pct = u64::from(self.overload_pct.load(Relaxed));
        let n = self.overload_seq.fetch_add(1, Relaxed);
        // Bresenham: the n-th decision withholds when floor((n+1)p/100) > floor(np/100).
        ((n % 100) + 1) * pct / 100 > (n % 100) * pct / 100
    }

    pub(crate) fn active_calls(&self) -> i64 {
        self.active_calls.load(Relaxed)
    }

    pub(crate) fn outstanding(&self) -> i64 {
        self.outstanding.load(Relaxed)
    }

    /// Smoothed latency (µs): of transactions, else of probes; 0 when unknown.
    pub(crate) fn latency_us(&self) -> u64 {
        match self.latency_us.load(Relaxed) {
            0 => self.probe_rtt_us.load(Relaxed),
            l => l,
        }
    }

    /// Congestion in µs: how far the short-term latency average is above the long-term
    /// one (Kamailio's `cc=1` estimate − average).
    pub(crate) fn congestion_us(&self) -> u64 {
        let fast = self.latency_us.load(Relaxed);
        let slow = self.latency_slow_us.load(Relaxed);
        fast.saturating_sub(slow)
    }

    /// Short-term over long-term latency (1.0 when unknown); below 1 when improving.
    pub(crate) fn latency_trend(&self) -> f64 {
        let fast = self.latency_us.load(Relaxed);
        let slow = self.latency_slow_us.load(Relaxed);
        if fast == 0 || slow == 0 {
            1.0
        } else {
            fast as f64 / slow as f64
        }
    }

    /// Recent failure rate, 0.0-1.0 (EWMA over the last ~8 outcomes).
    pub(crate) fn failure_rate(&self) -> f64 {
        self.fail_rate.load(Relaxed) as f64 / FAIL_ONE as f64
    }

    pub(crate) fn bytes_recent(&self, now_us: u64) -> u64 {
        let sec = now_us / 1_000_000;
        (0..WINDOW)
            .filter(|&i| {
                let s = self.slot_sec[i].load(Relaxed);
                s <= sec && sec - s < WINDOW as u64 && self.bytes[i].load(Relaxed) > 0
            })
            .map(|i| self.bytes[i].load(Relaxed))
            .sum()
    }

    /// Bytes forwarded in the 10 s before `now`.
    pub fn bytes_in_window(&self, now: Instant) -> u64 {
        let t = self.us(now);
        self.bytes_recent(t)
    }

    /// A snapshot of state and counters. Without a clock, the byte window is taken
    /// relative to the latest instant any report gave this destination.
    pub fn stats(&self) -> DestinationStats {
        let seen = self.last_seen_us.load(Relaxed);
        let down = self.down_until_us.load(Relaxed);
        DestinationStats {
            state: self.state(),
            probing: self.is_probing(),
            active_calls: self.active_calls(),
            outstanding: self.outstanding(),
            requests: self.requests.load(Relaxed),
            bytes_recent: self.bytes_recent(seen),
            latency_us: self.latency_us.load(Relaxed),
            probe_rtt_us: self.probe_rtt_us.load(Relaxed),
            last_probe_ok: match self.last_probe.load(Relaxed) {
                1 => Some(true),
                2 => Some(false),
                _ => None,
            },
            failures: self.failures.load(Relaxed),
            failures_total: self.failures_total.load(Relaxed),
            weight: self.weight(),
            flags: self.flags().0,
            priority: self.priority(),
            marked_down: down != 0 && down > seen,
        }
    }
}
