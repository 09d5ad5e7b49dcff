//! Metrics: lock-free counters for what the proxy reports as events, and the Prometheus
//! text exposition (format 0.0.4) of everything the admin interface serves at `/metrics`.
//!
//! Counters that the proxy keeps itself ([`ProxyStats`], per worker, summed by the runtime)
//! and the per-destination load of `sip-dispatch` ([`Destination::stats`]) are read when a
//! scrape comes; counters derived from [`Event`]s live in [`EventMetrics`], one atomic per
//! label value of a fixed label set, so counting takes no lock.
//!
//! [`Destination::stats`]: sip_dispatch::Destination::stats

use std::fmt::{Display, Write as _};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use sip_dispatch::{Dispatcher, State};
use sip_proxy::output::METHOD_NAMES;
use sip_proxy::{DropReason, Event, FailoverCause, ProxyStats};

/// A counter family over a fixed set of `N` label values: one atomic each.
#[derive(Debug)]
pub struct CounterVec<const N: usize> {
    values: [AtomicU64; N],
}

impl<const N: usize> CounterVec<N> {
    /// All zero.
    pub const fn new() -> Self {
        CounterVec {
            values: [const { AtomicU64::new(0) }; N],
        }
    }

    /// Adds one to label value `i` (ignored when out of range).
    pub fn inc(&self, i: usize) {
        if let Some(v) = self.values.get(i) {
            v.fetch_add(1, Relaxed);
        }
    }

    /// The value of label value `i` (0 when out of range).
    pub fn get(&self, i: usize) -> u64 {
        self.values.get(i).map_or(0, |v| v.load(Relaxed))
    }
}

impl<const N: usize> Default for CounterVec<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Status codes the proxy answers itself that get a label of their own in
/// `siplb_rejected_by_code_total`; others count under `code="other"`.
pub const REJECT_CODES: [u16; 16] = [
    400, 403, 404, 408, 416, 420, 480, 481, 482, 483, 484, 487, 500, 503, 505, 513,
];

/// Labels of `siplb_dropped_by_reason_total`, in the order of [`drop_index`].
pub const DROP_REASONS: [&str; 7] = [
    "malformed",
    "not_our_via",
    "stray_response",
    "unroutable",
    "stray_ack",
    "other_worker",
    "other",
];

/// Labels of `siplb_failovers_by_cause_total`.
pub const FAILOVER_CAUSES: [&str; 5] = ["timeout", "3xx", "4xx", "5xx", "6xx"];

fn drop_index(r: DropReason) -> usize {
    match r {
        DropReason::Malformed => 0,
        DropReason::NotOurVia => 1,
        DropReason::StrayResponse => 2,
        DropReason::Unroutable => 3,
        DropReason::StrayAck => 4,
        DropReason::OtherWorker => 5,
        _ => 6,
    }
}

/// Counters derived from the proxy's [`Event`]s, fed by the runtime with
/// [`EventMetrics::observe`] as it polls events. Lock-free; share it by reference.
#[derive(Debug, Default)]
pub struct EventMetrics {
    /// Requests the proxy rejected, by the code it sent ([`REJECT_CODES`] + other).
    pub rejected_by_code: CounterVec<{ REJECT_CODES.len() + 1 }>,
    /// Messages dropped, by reason ([`DROP_REASONS`]).
    pub dropped_by_reason: CounterVec<{ DROP_REASONS.len() }>,
    /// Failovers, by cause ([`FAILOVER_CAUSES`]).
    pub failovers_by_cause: CounterVec<{ FAILOVER_CAUSES.len() }>,
    /// Destination state changes.
    pub state_changes: AtomicU64,
    /// Calls answered.
    pub calls_started: AtomicU64,
    /// Calls ended by BYE.
    pub calls_ended: AtomicU64,
    /// Calls ended by the dialog timeout.
    pub calls_timed_out: AtomicU64,
}

impl EventMetrics {
    /// All zero (usable in a `static`).
    pub const fn new() -> Self {
        EventMetrics {
            rejected_by_code: CounterVec::new(),
            dropped_by_reason: CounterVec::new(),
            failovers_by_cause: CounterVec::new(),
            state_changes: AtomicU64::new(0),
            calls_started: AtomicU64::new(0),
            calls_ended: AtomicU64::new(0),
            calls_timed_out: AtomicU64::new(0),
        }
    }

    /// Counts one event.
    // Until the runtime's event loop calls it, only the tests do.
    #[allow(dead_code)]
    pub fn observe(&self, e: &Event) {
        match e {
            Event::Rejected { code, .. } => {
                let i = REJECT_CODES
                    .iter()
                    .position(|c| c == code)
                    .unwrap_or(REJECT_CODES.len());
                self.rejected_by_code.inc(i);
            }
            Event::Dropped { reason, .. } => self.dropped_by_reason.inc(drop_index(*reason)),
            Event::Failover { cause, .. } => self.failovers_by_cause.inc(match cause {
                FailoverCause::Timeout => 0,
                FailoverCause::Response(c) => usize::from((c / 100).clamp(3, 6) - 2),
            }),
            Event::DestinationState { .. } => {
                self.state_changes.fetch_add(1, Relaxed);
            }
            Event::CallStarted { .. } => {
                self.calls_started.fetch_add(1, Relaxed);
            }
            Event::CallEnded { timed_out, .. } => {
                let c = if *timed_out {
                    &self.calls_timed_out
                } else {
                    &self.calls_ended
                };
                c.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }
}

/// The counters of the process, for runtimes that prefer a global to passing a reference.
pub static EVENTS: EventMetrics = EventMetrics::new();

/// The kind of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A writer of the Prometheus text exposition format 0.0.4: `# HELP` and `# TYPE` once
/// per family, then its samples, label values escaped.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// The `Content-Type` of [`Exposition`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    /// Starts an empty exposition.
    pub fn new() -> Self {
        Exposition {
            out: String::with_capacity(8192),
        }
    }

    /// Writes the `# HELP` and `# TYPE` lines of a family.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Self {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// Writes one sample.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Display,
    ) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, value: impl Display) -> &mut Self {
        self.family(name, help, kind).sample(name, &[], value)
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Counts of call and state events, wherever the runtime keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventTotals {
    /// Destination state changes.
    pub state_changes: u64,
    /// Calls answered.
    pub calls_started: u64,
    /// Calls ended by BYE.
    pub calls_ended: u64,
    /// Calls ended by the dialog timeout.
    pub calls_timed_out: u64,
}

impl EventMetrics {
    /// The unlabelled event counts.
    // For a runtime that keeps its call counts here rather than in its own counters.
    #[allow(dead_code)]
    pub fn totals(&self) -> EventTotals {
        EventTotals {
            state_changes: self.state_changes.load(Relaxed),
            calls_started: self.calls_started.load(Relaxed),
            calls_ended: self.calls_ended.load(Relaxed),
            calls_timed_out: self.calls_timed_out.load(Relaxed),
        }
    }
}

/// Everything one scrape renders.
#[derive(Debug)]
pub struct Input<'a> {
    /// The proxy counters summed over workers.
    pub totals: &'a ProxyStats,
    /// Call and state-change counts.
    pub event_totals: EventTotals,
    /// The labelled event counters (rejected by code, dropped by reason, failovers by
    /// cause).
    pub events: &'a EventMetrics,
    /// Calls answered and not ended.
    pub active_calls: u64,
    /// The destinations.
    pub dispatcher: &'a Dispatcher,
}

/// Renders every `siplb_*` family (names and labels as documented in README.md).
pub fn render(i: &Input<'_>) -> String {
    use Kind::{Counter, Gauge};
    let t = i.totals;
    let ev = i.events;
    let et = i.event_totals;
    let mut x = Exposition::new();
    let name = "siplb_requests_received_total";
    x.family(name, "SIP requests received, by method.", Counter);
    for (k, m) in METHOD_NAMES.iter().enumerate() {
        x.sample(
            name,
            &[("method", m)],
            t.requests_by_method.get(k).copied().unwrap_or(0),
        );
    }
    for (name, help, by_class) in [
        (
            "siplb_responses_received_total",
            "SIP responses received from destinations, by class.",
            &t.responses_by_class,
        ),
        (
            "siplb_local_replies_total",
            "Responses sip-lb generated itself, by class.",
            &t.local_replies_by_class,
        ),
    ] {
        x.family(name, help, Counter);
        for c in 1..=6 {
            x.sample(
                name,
                &[("class", &format!("{c}xx"))],
                by_class.get(c).copied().unwrap_or(0),
            );
        }
    }
    for (name, help, v) in [
        (
            "siplb_requests_forwarded_total",
            "Requests forwarded (every attempt).",
            t.requests_forwarded,
        ),
        (
            "siplb_responses_forwarded_total",
            "Responses forwarded upstream.",
            t.responses_forwarded,
        ),
        (
            "siplb_rejected_total",
            "Requests rejected by sip-lb (4xx/5xx it sent).",
            t.rejected,
        ),
        (
            "siplb_dropped_total",
            "Messages dropped (malformed responses, stray ACKs, ...).",
            t.dropped,
        ),
        (
            "siplb_failovers_total",
            "Requests moved to another destination.",
            t.failovers,
        ),
        (
            "siplb_timeouts_total",
            "Client transactions that timed out.",
            t.timeouts,
        ),
        (
            "siplb_retransmissions_absorbed_total",
            "Retransmissions absorbed.",
            t.retransmissions_absorbed,
        ),
        (
            "siplb_retransmissions_sent_total",
            "Retransmissions sent by sip-lb's timers.",
            t.retransmissions_sent,
        ),
        (
            "siplb_probes_sent_total",
            "Health probes sent.",
            t.probes_sent,
        ),
        (
            "siplb_probes_alive_total",
            "Probes answered alive.",
            t.probes_alive,
        ),
        (
            "siplb_probes_failed_total",
            "Probes failed (timeout or a code that is not alive).",
            t.probes_failed,
        ),
        (
            "siplb_queued_total",
            "INVITEs queued by the autonomous queue.",
            t.queued,
        ),
        (
            "siplb_queue_timeouts_total",
            "Queued INVITEs answered 503 at their deadline.",
            t.queue_timeouts,
        ),
        (
            "siplb_destination_state_changes_total",
            "Destination state changes.",
            et.state_changes,
        ),
        (
            "siplb_calls_started_total",
            "Calls answered.",
            et.calls_started,
        ),
        (
            "siplb_calls_ended_total",
            "Calls ended by BYE.",
            et.calls_ended,
        ),
        (
            "siplb_calls_timed_out_total",
            "Calls ended by the dialog timeout.",
            et.calls_timed_out,
        ),
    ] {
        x.single(name, help, Counter, v);
    }
    let name = "siplb_rejected_by_code_total";
    x.family(
        name,
        "Requests rejected by sip-lb, by the code it sent.",
        Counter,
    );
    for (k, c) in REJECT_CODES.iter().enumerate() {
        x.sample(
            name,
            &[("code", &c.to_string())],
            ev.rejected_by_code.get(k),
        );
    }
    x.sample(
        name,
        &[("code", "other")],
        ev.rejected_by_code.get(REJECT_CODES.len()),
    );
    let name = "siplb_dropped_by_reason_total";
    x.family(name, "Messages dropped, by reason.", Counter);
    for (k, r) in DROP_REASONS.iter().enumerate() {
        x.sample(name, &[("reason", r)], ev.dropped_by_reason.get(k));
    }
    let name = "siplb_failovers_by_cause_total";
    x.family(
        name,
        "Failovers, by cause (timeout or the class of the reply).",
        Counter,
    );
    for (k, c) in FAILOVER_CAUSES.iter().enumerate() {
        x.sample(name, &[("cause", c)], ev.failovers_by_cause.get(k));
    }
    for (name, help, v) in [
        (
            "siplb_server_transactions",
            "Server transactions open.",
            t.server_transactions,
        ),
        (
            "siplb_client_transactions",
            "Client transactions open.",
            t.client_transactions,
        ),
        (
            "siplb_queue_length",
            "INVITEs waiting in the queue.",
            t.queue_len,
        ),
        (
            "siplb_timers_pending",
            "Transaction timers armed and not yet come round.",
            t.timers_pending,
        ),
        (
            "siplb_active_calls",
            "Calls answered and not ended.",
            i.active_calls,
        ),
    ] {
        x.single(name, help, Gauge, v);
    }
    let snap = i.dispatcher.snapshot();
    let rows: Vec<(String, String, sip_dispatch::DestinationStats)> = snap
        .sets()
        .iter()
        .flat_map(|s| {
            s.destinations()
                .iter()
                .map(move |d| (s.id().to_string(), d.uri().to_string(), d.stats()))
        })
        .collect();
    type Pick = fn(&sip_dispatch::DestinationStats) -> i64;
    let per_destination: [(&str, &str, Kind, Pick); 4] = [
        (
            "siplb_destination_active_calls",
            "Active calls per destination.",
            Gauge,
            |s| s.active_calls,
        ),
        (
            "siplb_destination_outstanding",
            "Outstanding transactions per destination.",
            Gauge,
            |s| s.outstanding,
        ),
        (
            "siplb_destination_requests_total",
            "Requests sent per destination.",
            Counter,
            |s| i64::try_from(s.requests).unwrap_or(i64::MAX),
        ),
        (
            "siplb_destination_up",
            "1 when the destination is usable (active or trying).",
            Gauge,
            |s| i64::from(matches!(s.state, State::Active | State::Trying)),
        ),
    ];
    for (name, help, kind, pick) in per_destination {
        x.family(name, help, kind);
        for (set, uri, st) in &rows {
            x.sample(name, &[("set", set), ("uri", uri)], pick(st));
        }
    }
    x.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Instant;

    use sip_dispatch::DestinationList;

    /// Parses an exposition strictly enough to catch format mistakes: returns
    /// `name{labels}` → value, and checks HELP/TYPE come once, before the samples.
    fn parse(text: &str) -> HashMap<String, f64> {
        let mut typed: HashMap<String, String> = HashMap::new();
        let mut helped = std::collections::HashSet::new();
        let mut out = HashMap::new();
        for line in text.lines() {
            if let Some(r) = line.strip_prefix("# HELP ") {
                let name = r.split(' ').next().unwrap();
                assert!(helped.insert(name.to_string()), "HELP twice for {name}");
            } else if let Some(r) = line.strip_prefix("# TYPE ") {
                let (name, kind) = r.split_once(' ').unwrap();
                assert!(helped.contains(name), "TYPE before HELP for {name}");
                assert!(matches!(kind, "counter" | "gauge"), "{line}");
                assert!(
                    typed.insert(name.into(), kind.into()).is_none(),
                    "TYPE twice: {name}"
                );
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let name = series.split('{').next().unwrap();
                assert!(
                    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                    "bad name {name}"
                );
                assert!(typed.contains_key(name), "sample before TYPE: {line}");
                if typed[name] == "counter" {
                    assert!(name.ends_with("_total"), "counter without _total: {name}");
                }
                if let Some(l) = series.strip_prefix(name) {
                    assert!(
                        l.is_empty() || (l.starts_with('{') && l.ends_with('}')),
                        "{line}"
                    );
                }
                let v: f64 = value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value: {line}"));
                assert!(
                    out.insert(series.to_string(), v).is_none(),
                    "duplicate {series}"
                );
            }
        }
        out
    }

    #[test]
    fn labels_are_escaped() {
        let mut x = Exposition::new();
        x.family("a_total", "help with \\ and\nnewline", Kind::Counter)
            .sample("a_total", &[("uri", "sip:\"x\"\\y\n"), ("set", "1")], 3);
        assert_eq!(
            x.finish(),
            "# HELP a_total help with \\\\ and\\nnewline\n# TYPE a_total counter\n\
             a_total{uri=\"sip:\\\"x\\\"\\\\y\\n\",set=\"1\"} 3\n"
        );
    }

    #[test]
    fn events_are_counted_under_fixed_labels() {
        let ev = EventMetrics::new();
        let src = "127.0.0.1:5060".parse().unwrap();
        let list = DestinationList::parse_kamailio("1 sip:127.0.0.1:5081\n").unwrap();
        let d = Dispatcher::new(list);
        let dest = d.snapshot().sets()[0].destinations()[0].clone();
        for e in [
            Event::Rejected {
                code: 483,
                reason: "Too Many Hops",
                source: src,
            },
            Event::Rejected {
                code: 483,
                reason: "Too Many Hops",
                source: src,
            },
            Event::Rejected {
                code: 499,
                reason: "odd",
                source: src,
            },
            Event::Dropped {
                reason: DropReason::StrayAck,
                source: src,
            },
            Event::Failover {
                destination: dest.clone(),
                cause: FailoverCause::Timeout,
            },
            Event::Failover {
                destination: dest.clone(),
                cause: FailoverCause::Response(503),
            },
            Event::CallStarted {
                destination: dest.clone(),
            },
            Event::CallEnded {
                destination: dest.clone(),
                timed_out: true,
            },
        ] {
            ev.observe(&e);
        }
        let i483 = REJECT_CODES.iter().position(|&c| c == 483).unwrap();
        assert_eq!(ev.rejected_by_code.get(i483), 2);
        assert_eq!(ev.rejected_by_code.get(REJECT_CODES.len()), 1);
        assert_eq!(ev.dropped_by_reason.get(4), 1);
        assert_eq!(
            (ev.failovers_by_cause.get(0), ev.failovers_by_cause.get(3)),
            (1, 1)
        );
        assert_eq!(ev.calls_started.load(Relaxed), 1);
        assert_eq!(
            (
                ev.calls_ended.load(Relaxed),
                ev.calls_timed_out.load(Relaxed)
            ),
            (0, 1)
        );
        // Out of range is ignored, not a panic.
        ev.dropped_by_reason.inc(99);
        assert_eq!(ev.dropped_by_reason.get(99), 0);
    }

    #[test]
    fn render_the_whole_exposition() {
        let list = DestinationList::parse_kamailio(
            "1 sip:127.0.0.1:5081\n1 sip:127.0.0.1:5082\n2 sip:[::1]:5083\n",
        )
        .unwrap();
        let d = Dispatcher::new(list);
        let snap = d.snapshot();
        let first = &snap.sets()[0].destinations()[0];
        first.call_started();
        first.call_started();
        first.request_sent(Instant::now(), 500);
        snap.sets()[0].destinations()[1].set_state(State::Inactive);
        let mut totals = ProxyStats::default();
        totals.requests_by_method[0] = 7; // INVITE
        totals.requests_by_method[4] = 3; // OPTIONS
        totals.responses_by_class[2] = 6;
        totals.local_replies_by_class[4] = 1;
        totals.probes_sent = 9;
        totals.probes_alive = 8;
        totals.probes_failed = 1;
        totals.server_transactions = 4;
        totals.queue_len = 2;
        totals.timers_pending = 12;
        let ev = EventMetrics::new();
        ev.observe(&Event::Rejected {
            code: 400,
            reason: "Bad Request",
            source: "127.0.0.1:1".parse().unwrap(),
        });
        let text = render(&Input {
            totals: &totals,
            event_totals: EventTotals {
                calls_started: 5,
                ..ev.totals()
            },
            events: &ev,
            active_calls: 2,
            dispatcher: &d,
        });
        let m = parse(&text);
        let v = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in\n{text}"));
        assert_eq!(v("siplb_requests_received_total{method=\"INVITE\"}"), 7.0);
        assert_eq!(v("siplb_requests_received_total{method=\"OPTIONS\"}"), 3.0);
        assert_eq!(v("siplb_requests_received_total{method=\"other\"}"), 0.0);
        assert_eq!(v("siplb_responses_received_total{class=\"2xx\"}"), 6.0);
        assert_eq!(v("siplb_local_replies_total{class=\"4xx\"}"), 1.0);
        assert_eq!(v("siplb_probes_sent_total"), 9.0);
        assert_eq!(v("siplb_probes_failed_total"), 1.0);
        assert_eq!(v("siplb_server_transactions"), 4.0);
        assert_eq!(v("siplb_queue_length"), 2.0);
        assert_eq!(v("siplb_timers_pending"), 12.0);
        assert_eq!(v("siplb_active_calls"), 2.0);
        assert_eq!(v("siplb_rejected_by_code_total{code=\"400\"}"), 1.0);
        assert_eq!(v("siplb_calls_started_total"), 5.0);
        assert_eq!(v("siplb_calls_ended_total"), 0.0);
        assert_eq!(v("siplb_rejected_by_code_total{code=\"other\"}"), 0.0);
        assert_eq!(
            v("siplb_dropped_by_reason_total{reason=\"malformed\"}"),
            0.0
        );
        assert_eq!(v("siplb_failovers_by_cause_total{cause=\"timeout\"}"), 0.0);
        let a = "{set=\"1\",uri=\"sip:127.0.0.1:5081\"}";
        let b = "{set=\"1\",uri=\"sip:127.0.0.1:5082\"}";
        let c = "{set=\"2\",uri=\"sip:[::1]:5083\"}";
        assert_eq!(v(&format!("siplb_destination_active_calls{a}")), 2.0);
        assert_eq!(v(&format!("siplb_destination_requests_total{a}")), 1.0);
        assert_eq!(v(&format!("siplb_destination_up{a}")), 1.0);
        assert_eq!(v(&format!("siplb_destination_up{b}")), 0.0);
        assert_eq!(v(&format!("siplb_destination_up{c}")), 1.0);
        assert_eq!(v(&format!("siplb_destination_outstanding{c}")), 0.0);
        // Every family of the README is there.
        for f in [
            "siplb_requests_forwarded_total",
            "siplb_responses_forwarded_total",
            "siplb_rejected_total",
            "siplb_dropped_total",
            "siplb_failovers_total",
            "siplb_timeouts_total",
            "siplb_retransmissions_absorbed_total",
            "siplb_retransmissions_sent_total",
            "siplb_probes_alive_total",
            "siplb_queued_total",
            "siplb_queue_timeouts_total",
            "siplb_destination_state_changes_total",
            "siplb_calls_started_total",
            "siplb_calls_ended_total",
            "siplb_calls_timed_out_total",
            "siplb_client_transactions",
        ] {
            assert!(text.contains(&format!("# TYPE {f} ")), "{f}");
        }
        let _: Arc<Dispatcher> = Arc::new(d);
    }
}
