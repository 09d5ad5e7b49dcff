//! One destination: where to send, its health state and its load counters, all updated
//! through `&self` with atomics so every worker thread can report at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;
use sip_core::Transport;

use crate::list::{Attrs, DestinationSpec, Flags};

/// Health state (Kamailio's destination states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// In use.
    Active,
    /// Failing, still in use until the inactive threshold is reached.
    Trying,
    /// Not used until probes find it alive.
    Inactive,
    /// Administratively out of use; probes do not change it.
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
}

impl std::str::FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "active" | "a" => State::Active,
            "trying" | "t" => State::Trying,
            "inactive" | "i" => State::Inactive,
            "disabled" | "d" => State::Disabled,
            _ => {
                return Err(format!(
                    "unknown state `{s}` (active, trying, inactive, disabled)"
                ));
            }
        })
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

/// Thresholds of the health state machine (Kamailio `ds_probing_threshold`,
/// `ds_inactive_threshold`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HealthConfig {
    /// Consecutive failures (probes, timeouts, 5xx) before a destination is inactive.
    pub inactive_threshold: u32,
    /// Consecutive successful probes before an inactive destination is active again.
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

/// RFC 7339 overload control advertised by a destination in a response Via.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverloadControl {
    /// `oc-algo=loss`: drop this percentage of new requests (0-100).
    Loss {
        /// Percentage.
        percent: u8,
        /// `oc-validity`.
        validity: Duration,
    },
    /// `oc-algo=rate`: at most this many requests per second.
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
    /// Host as written in the URI.
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
    /// Probing flag.
    pub probing: bool,
    /// Active (answered, not yet ended) calls.
    pub active_calls: i64,
    /// Client transactions sent and not yet finished.
    pub outstanding: i64,
    /// Requests sent, ever.
    pub requests: u64,
    /// Bytes forwarded in the last 10 s.
    pub bytes_recent: u64,
    /// Smoothed time from request to final response (µs), 0 when unknown.
    pub latency_us: u64,
    /// Smoothed probe round trip (µs), 0 when unknown.
    pub probe_rtt_us: u64,
    /// Result of the last probe (`None` before any).
    pub last_probe_ok: Option<bool>,
    /// Consecutive failures.
    pub failures: u32,
    /// Failures (timeouts, 5xx) ever.
    pub failures_total: u64,
    /// Weight.
    pub weight: u32,
    /// Flags.
    pub flags: u32,
    /// Priority.
    pub priority: i32,
}

const WINDOW: usize = 10;

/// One destination of a set. Created by the dispatcher; shared as `Arc<Destination>` and
/// kept across reloads when its set and URI remain, so its state and counters survive.
#[derive(Debug)]
pub struct Destination {
    set: u32,
    uri: String,
    target: Target,
    base: Instant,
    flags: AtomicU32,
    priority: AtomicI32,
    attrs: ArcSwap<Attrs>,
    state: AtomicU8,
    failures: AtomicU32,
    successes: AtomicU32,
    failures_total: AtomicU64,
    down_until_us: AtomicU64,
    active_calls: AtomicI64,
    outstanding: AtomicI64,
    requests: AtomicU64,
    latency_us: AtomicU64,
    latency_slow_us: AtomicU64,
    probe_rtt_us: AtomicU64,
    last_probe: AtomicU8,
    bytes: [AtomicU64; WINDOW],
    bytes_sec: [AtomicU64; WINDOW],
    overload_pct: AtomicU8,
    overload_until_us: AtomicU64,
    overload_rate: AtomicU32,
}

fn target_of(uri: &str) -> Target {
    let u = sip_core::uri::Uri::parse(uri.as_bytes()).expect("checked when the list was built");
    let port = u.port_or_default();
    let host = String::from_utf8_lossy(u.host_raw()).into_owned();
    Target {
        socket_addr: u
            .host()
            .and_then(|h| h.ip())
            .map(|ip| SocketAddr::new(ip, port)),
        host,
        port,
        transport: u.effective_transport(),
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

impl Destination {
    pub(crate) fn new(spec: &DestinationSpec, base: Instant) -> Destination {
        let f = spec.flags;
        let state = if f.has(Flags::DISABLED) {
            State::Disabled
        } else if f.has(Flags::INACTIVE) {
            State::Inactive
        } else if f.has(Flags::TRYING) {
            State::Trying
        } else {
            State::Active
        };
        Destination {
            set: spec.set,
            uri: spec.uri.clone(),
            target: target_of(&spec.uri),
            base,
            flags: AtomicU32::new(f.0),
            priority: AtomicI32::new(spec.priority),
            attrs: ArcSwap::from_pointee(spec.attrs.clone()),
            state: AtomicU8::new(state.code()),
            failures: AtomicU32::new(0),
            successes: AtomicU32::new(0),
            failures_total: AtomicU64::new(0),
            down_until_us: AtomicU64::new(0),
            active_calls: AtomicI64::new(0),
            outstanding: AtomicI64::new(0),
            requests: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
            latency_slow_us: AtomicU64::new(0),
            probe_rtt_us: AtomicU64::new(0),
            last_probe: AtomicU8::new(0),
            bytes: Default::default(),
            bytes_sec: Default::default(),
            overload_pct: AtomicU8::new(0),
            overload_until_us: AtomicU64::new(0),
            overload_rate: AtomicU32::new(0),
        }
    }

    /// Applies a changed configuration line (same set and URI) without touching state
    /// or counters, except that a newly set or cleared disabled flag changes the state.
    pub(crate) fn reconfigure(&self, spec: &DestinationSpec) -> bool {
        let old = self.flags.swap(spec.flags.0, Relaxed);
        let old_prio = self.priority.swap(spec.priority, Relaxed);
        let old_attrs = self.attrs.swap(std::sync::Arc::new(spec.attrs.clone()));
        let changed = old != spec.flags.0 || old_prio != spec.priority || *old_attrs != spec.attrs;
        let was_disabled = Flags(old).has(Flags::DISABLED);
        let now_disabled = spec.flags.has(Flags::DISABLED);
        if now_disabled && !was_disabled {
            self.state.store(State::Disabled.code(), Relaxed);
        } else if was_disabled && !now_disabled {
            self.state.store(State::Active.code(), Relaxed);
        }
        changed
    }

    fn us(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_micros() as u64
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

    /// Flags.
    pub fn flags(&self) -> Flags {
        Flags(self.flags.load(Relaxed))
    }

    /// Priority.
    pub fn priority(&self) -> i32 {
        self.priority.load(Relaxed)
    }

    /// Attributes.
    pub fn attrs(&self) -> arc_swap::Guard<std::sync::Arc<Attrs>> {
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

    /// True when the destination may be selected now: active or trying, and not marked
    /// down by a 503 with Retry-After.
    pub fn is_usable(&self, now: Instant) -> bool {
        matches!(self.state(), State::Active | State::Trying)
            && self.down_until_us.load(Relaxed) <= self.us(now)
    }

    fn store_state(&self, to: State) -> Option<StateChange> {
        let from = State::from_code(self.state.swap(to.code(), Relaxed));
        (from != to).then_some(StateChange { from, to })
    }

    fn failure(&self, cfg_threshold: u32) -> Option<StateChange> {
        self.successes.store(0, Relaxed);
        self.failures_total.fetch_add(1, Relaxed);
        let n = self.failures.fetch_add(1, Relaxed) + 1;
        match self.state() {
            State::Disabled | State::Inactive => None,
            _ if n >= cfg_threshold.max(1) => self.store_state(State::Inactive),
            State::Active => self.store_state(State::Trying),
            State::Trying => None,
        }
    }

    fn success(&self) -> Option<StateChange> {
        self.failures.store(0, Relaxed);
        if self.state() == State::Trying {
            return self.store_state(State::Active);
        }
        None
    }

    /// A request was sent to the destination: one more outstanding transaction.
    pub fn request_sent(&self, now: Instant, bytes: usize) {
        self.outstanding.fetch_add(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        let sec = self.us(now) / 1_000_000;
        let slot = (sec as usize) % WINDOW;
        if self.bytes_sec[slot].swap(sec, Relaxed) != sec {
            self.bytes[slot].store(0, Relaxed);
        }
        self.bytes[slot].fetch_add(bytes as u64, Relaxed);
    }

    /// The first final response of a client transaction arrived after `rtt`. 408 and 5xx
    /// (but 503, see [`Destination::mark_down_until`]) count as failures.
    pub fn response_received(
        &self,
        code: u16,
        rtt: Duration,
        _now: Instant,
    ) -> Option<StateChange> {
        self.outstanding.fetch_sub(1, Relaxed);
        let us = rtt.as_micros() as u64;
        ewma(&self.latency_us, us, 2);
        ewma(&self.latency_slow_us, us, 5);
        if code == 408 || (code >= 500 && code != 503 && code < 600) {
            self.failure(HealthConfig::default().inactive_threshold)
        } else {
            self.success()
        }
    }

    /// A client transaction timed out: a passive failure.
    pub fn transaction_timed_out(&self, _now: Instant) -> Option<StateChange> {
        self.outstanding.fetch_sub(1, Relaxed);
        self.failure(HealthConfig::default().inactive_threshold)
    }

    /// A client transaction ended without a response or timeout (cancelled, abandoned).
    pub fn transaction_cancelled(&self) {
        self.outstanding.fetch_sub(1, Relaxed);
    }

    /// A call to this destination was answered.
    pub fn call_started(&self) {
        self.active_calls.fetch_add(1, Relaxed);
    }

    /// A call to this destination ended.
    pub fn call_ended(&self) {
        self.active_calls.fetch_sub(1, Relaxed);
    }

    /// Not used until `until` (503 with Retry-After).
    pub fn mark_down_until(&self, until: Instant) {
        self.down_until_us.fetch_max(self.us(until), Relaxed);
    }

    /// The result of an OPTIONS probe.
    pub fn probe_result(
        &self,
        alive: bool,
        rtt: Option<Duration>,
        _now: Instant,
        cfg: &HealthConfig,
    ) -> Option<StateChange> {
        self.last_probe.store(if alive { 1 } else { 2 }, Relaxed);
        if let Some(r) = rtt {
            ewma(&self.probe_rtt_us, r.as_micros() as u64, 2);
        }
        if self.state() == State::Disabled {
            return None;
        }
        if alive {
            self.failures.store(0, Relaxed);
            let ok = self.successes.fetch_add(1, Relaxed) + 1;
            match self.state() {
                State::Inactive if ok >= cfg.active_threshold.max(1) => {
                    self.store_state(State::Active)
                }
                State::Trying => self.store_state(State::Active),
                _ => None,
            }
        } else {
            self.failure(cfg.inactive_threshold)
        }
    }

    /// Sets the state by hand (like `kamcmd dispatcher.set_state`).
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
                self.overload_pct.store(percent.min(100), Relaxed);
                self.overload_rate.store(0, Relaxed);
                self.overload_until_us
                    .store(self.us(now + validity), Relaxed);
            }
            OverloadControl::Rate {
                per_second,
                validity,
            } => {
                self.overload_rate.store(per_second.max(1), Relaxed);
                self.overload_pct.store(0, Relaxed);
                self.overload_until_us
                    .store(self.us(now + validity), Relaxed);
            }
            OverloadControl::None => self.overload_until_us.store(0, Relaxed),
        }
    }

    /// The share of new requests to withhold now under advertised overload (0-100).
    pub(crate) fn overload_percent(&self, now: Instant) -> u8 {
        if self.overload_until_us.load(Relaxed) <= self.us(now) {
            return 0;
        }
        let rate = self.overload_rate.load(Relaxed);
        if rate > 0 {
            // Rate: withhold the share above the advertised rate, estimated from the
            // requests of the last seconds.
            let recent = self.requests_recent(now);
            if recent <= u64::from(rate) {
                return 0;
            }
            return (100 - (u64::from(rate) * 100 / recent)).min(100) as u8;
        }
        self.overload_pct.load(Relaxed)
    }

    fn requests_recent(&self, _now: Instant) -> u64 {
        // Requests per second estimated from bytes would be wrong; use outstanding plus
        // the window's request count approximation: total requests in flight.
        self.outstanding.load(Relaxed).max(0) as u64 + 1
    }

    pub(crate) fn active_calls(&self) -> i64 {
        self.active_calls.load(Relaxed)
    }

    pub(crate) fn outstanding(&self) -> i64 {
        self.outstanding.load(Relaxed)
    }

    pub(crate) fn latency_us(&self) -> u64 {
        self.latency_us.load(Relaxed)
    }

    pub(crate) fn latency_trend(&self) -> f64 {
        let fast = self.latency_us.load(Relaxed);
        let slow = self.latency_slow_us.load(Relaxed);
        if fast == 0 || slow == 0 {
            1.0
        } else {
            fast as f64 / slow as f64
        }
    }

    pub(crate) fn failure_ratio(&self) -> f64 {
        let req = self.requests.load(Relaxed).max(1) as f64;
        (self.failures_total.load(Relaxed) as f64 / req).min(1.0)
    }

    pub(crate) fn bytes_recent(&self, now: Instant) -> u64 {
        let sec = self.us(now) / 1_000_000;
        (0..WINDOW)
            .filter(|&i| sec.saturating_sub(self.bytes_sec[i].load(Relaxed)) < WINDOW as u64)
            .map(|i| self.bytes[i].load(Relaxed))
            .sum()
    }

    /// A snapshot of state and counters.
    pub fn stats(&self) -> DestinationStats {
        let now = Instant::now().max(self.base);
        DestinationStats {
            state: self.state(),
            probing: self.flags().has(Flags::PROBING),
            active_calls: self.active_calls(),
            outstanding: self.outstanding(),
            requests: self.requests.load(Relaxed),
            bytes_recent: self.bytes_recent(now),
            latency_us: self.latency_us(),
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
        }
    }
}
