//! The dispatcher: an immutable snapshot of the sets (swapped atomically on reload) and
//! selection by every algorithm into a caller-provided buffer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use smallvec::SmallVec;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::algorithm::Algorithm;
use crate::destination::{Destination, State};
use crate::list::{DestinationList, Flags};

/// Seed of every hash of the crate (xxh3). Fixed and documented so that two instances, or
/// one after a restart, map the same key to the same destination.
pub const HASH_SEED: u64 = 0x7369_702d_6c62_0001;

/// What a hash-based algorithm hashes; filled by the proxy from the request.
#[derive(Clone, Copy, Debug, Default)]
pub struct SelectKey<'a> {
    /// Call-ID (algorithm 0, sticky).
    pub call_id: &'a [u8],
    /// From URI (1).
    pub from_uri: &'a [u8],
    /// To URI (2).
    pub to_uri: &'a [u8],
    /// Request-URI (3).
    pub request_uri: &'a [u8],
    /// Username of Authorization / Proxy-Authorization (5).
    pub auth_username: Option<&'a [u8]>,
    /// Any key the caller chooses (7): a header value, a source address.
    pub custom: Option<&'a [u8]>,
    /// Address-of-record of a REGISTER (sticky registrations).
    pub aor: Option<&'a [u8]>,
}

/// The answer of [`Dispatcher::select`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectOutcome {
    /// The selection holds at least one destination.
    Selected,
    /// Every destination is at capacity (autonomous queue): hold the request.
    Queue,
    /// Unknown set, or no usable destination.
    Unavailable,
}

/// Which destinations to probe (Kamailio `ds_probing_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeMode {
    /// Only destinations with the probing flag (8) (mode 0).
    Flagged,
    /// Every destination (mode 1).
    #[default]
    All,
    /// Only inactive and trying destinations (mode 2).
    OnlyInactive,
}

/// The output buffer of a selection: first choice, then the failover alternates.
/// Reuse it across calls: once it has grown, selecting does not allocate.
#[derive(Debug, Default)]
pub struct Selection {
    list: Vec<Arc<Destination>>,
}

impl Selection {
    /// An empty selection with room for `n` destinations.
    pub fn with_capacity(n: usize) -> Self {
        Selection {
            list: Vec::with_capacity(n),
        }
    }
    /// Empties it.
    pub fn clear(&mut self) {
        self.list.clear();
    }
    /// Number of destinations.
    pub fn len(&self) -> usize {
        self.list.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// The destinations in order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Destination>> {
        self.list.iter()
    }
    /// The i-th.
    pub fn get(&self, i: usize) -> Option<&Arc<Destination>> {
        self.list.get(i)
    }
    /// The first choice.
    pub fn first(&self) -> Option<&Arc<Destination>> {
        self.list.first()
    }
}

/// One destination set of a snapshot.
#[derive(Debug)]
pub struct DestinationSet {
    id: u32,
    destinations: Vec<Arc<Destination>>,
    /// Smooth weighted round-robin sequence (indices), one full cycle.
    weighted: Vec<u16>,
    counter: AtomicU64,
}

impl DestinationSet {
    /// The set id.
    pub fn id(&self) -> u32 {
        self.id
    }
    /// Its destinations in list order.
    pub fn destinations(&self) -> &[Arc<Destination>] {
        &self.destinations
    }
}

/// An immutable view of every set; replaced as a whole on reload.
#[derive(Debug)]
pub struct Snapshot {
    sets: Vec<DestinationSet>,
}

impl Snapshot {
    /// Every set.
    pub fn sets(&self) -> &[DestinationSet] {
        &self.sets
    }
    /// One set.
    pub fn set(&self, id: u32) -> Option<&DestinationSet> {
        self.sets.iter().find(|s| s.id == id)
    }
}

/// What a reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// (set, URI) added.
    pub added: Vec<(u32, String)>,
    /// (set, URI) removed.
    pub removed: Vec<(u32, String)>,
    /// (set, URI) whose flags, priority or attributes changed (state kept).
    pub changed: Vec<(u32, String)>,
    /// Destinations kept unchanged (state and counters kept).
    pub kept: usize,
}

const STICKY_SHARDS: usize = 32;

#[derive(Debug)]
struct Affinity {
    destination: Arc<Destination>,
    expires: Instant,
}

/// Destination sets, selection and health, shared by every worker as `Arc<Dispatcher>`.
#[derive(Debug)]
pub struct Dispatcher {
    snapshot: ArcSwap<Snapshot>,
    base: Instant,
    sticky: Vec<Mutex<HashMap<u64, Affinity>>>,
    sticky_ttl: Duration,
}

/// Smooth weighted round robin (the nginx sequence): over one cycle of `sum(w)` picks
/// each destination appears exactly `w` times, interleaved as evenly as possible.
fn smooth_weighted(weights: &[u32]) -> Vec<u16> {
    let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x.max(1))).collect();
    // Keep one cycle at a bounded length.
    let mut total: u64 = w.iter().sum();
    while total > 10_000 {
        for x in &mut w {
            *x = (*x / 2).max(1);
        }
        total = w.iter().sum();
    }
    let mut current = vec![0i64; w.len()];
    let mut seq = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, x) in current.iter_mut().zip(&w) {
            *c += *x as i64;
        }
        let best = (0..w.len())
            .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
            .unwrap_or(0);
        current[best] -= total as i64;
        seq.push(best as u16);
    }
    seq
}

fn build(
    list: &DestinationList,
    base: Instant,
    old: Option<&Snapshot>,
) -> (Snapshot, ReloadReport) {
    let mut report = ReloadReport::default();
    let mut sets: Vec<DestinationSet> = Vec::new();
    for spec in list.entries() {
        let existing = old
            .and_then(|o| o.set(spec.set))
            .and_then(|s| s.destinations.iter().find(|d| d.uri() == spec.uri));
        let dest = match existing {
            Some(d) => {
                if d.reconfigure(spec) {
                    report.changed.push((spec.set, spec.uri.clone()));
                } else {
                    report.kept += 1;
                }
                d.clone()
            }
            None => {
                report.added.push((spec.set, spec.uri.clone()));
                Arc::new(Destination::new(spec, base))
            }
        };
        match sets.iter_mut().find(|s| s.id == spec.set) {
            Some(s) => {
                if !s.destinations.iter().any(|d| d.uri() == spec.uri) {
                    s.destinations.push(dest);
                }
            }
            None => sets.push(DestinationSet {
                id: spec.set,
                destinations: vec![dest],
                weighted: Vec::new(),
                counter: AtomicU64::new(0),
            }),
        }
    }
    for s in &mut sets {
        let w: Vec<u32> = s.destinations.iter().map(|d| d.weight()).collect();
        s.weighted = smooth_weighted(&w);
    }
    if let Some(o) = old {
        for s in &o.sets {
            for d in &s.destinations {
                let still = sets
                    .iter()
                    .any(|n| n.id == s.id && n.destinations.iter().any(|x| x.uri() == d.uri()));
                if !still {
                    report.removed.push((s.id, d.uri().to_string()));
                }
            }
        }
    }
    (Snapshot { sets }, report)
}

/// Rendezvous (highest random weight) score of `dest` for `key_hash`, weighted with the
/// logarithmic method: `-w / ln(u)` with `u` uniform in (0,1) from xxh3(key, uri).
fn hrw_score(key_hash: u64, d: &Destination) -> f64 {
    let h = xxh3_64_with_seed(d.uri().as_bytes(), HASH_SEED ^ key_hash);
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let w = f64::from(d.weight());
    -w / u.ln()
}

fn mix(n: u64) -> u64 {
    xxh3_64_with_seed(&n.to_le_bytes(), HASH_SEED)
}

type Scored = SmallVec<[(f64, usize); 64]>;

impl Dispatcher {
    /// A dispatcher over `list`.
    pub fn new(list: DestinationList) -> Dispatcher {
        let base = Instant::now();
        let (snap, _) = build(&list, base, None);
        Dispatcher {
            snapshot: ArcSwap::from_pointee(snap),
            base,
            sticky: (0..STICKY_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            sticky_ttl: Duration::from_secs(3600),
        }
    }

    /// Sets how long a sticky affinity lasts without use (default 1 hour).
    pub fn with_sticky_ttl(mut self, ttl: Duration) -> Self {
        self.sticky_ttl = ttl;
        self
    }

    /// Replaces the sets. Destinations that remain (same set and URI) keep their `Arc`,
    /// state and counters; readers never block.
    pub fn reload(&self, list: DestinationList) -> ReloadReport {
        let old = self.snapshot.load_full();
        let (snap, report) = build(&list, self.base, Some(&old));
        self.snapshot.store(Arc::new(snap));
        report
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Fills `out` with destinations of `set` for this request, best first, at most
    /// `limit` (0 = no limit). Only usable destinations are listed, each once.
    pub fn select(
        &self,
        set: u32,
        algorithm: Algorithm,
        key: &SelectKey<'_>,
        now: Instant,
        limit: usize,
        out: &mut Selection,
    ) -> SelectOutcome {
        out.clear();
        let snap = self.snapshot.load();
        let Some(s) = snap.set(set) else {
            return SelectOutcome::Unavailable;
        };
        let limit = if limit == 0 { usize::MAX } else { limit };
        let ds = &s.destinations;
        let usable = |d: &Destination| d.is_usable(now);
        let mut scored: Scored = SmallVec::new();
        let push_order = |scored: &mut Scored, out: &mut Selection| {
            for &(_, i) in scored.iter() {
                if out.list.len() >= limit {
                    break;
                }
                out.list.push(ds[i].clone());
            }
        };
        match algorithm {
            Algorithm::CallIdHash
            | Algorithm::FromUriHash
            | Algorithm::ToUriHash
            | Algorithm::RequestUriHash
            | Algorithm::KeyHash
            | Algorithm::AuthUsernameHash => {
                let k: Option<&[u8]> = match algorithm {
                    Algorithm::CallIdHash => Some(key.call_id),
                    Algorithm::FromUriHash => Some(key.from_uri),
                    Algorithm::ToUriHash => Some(key.to_uri),
                    Algorithm::RequestUriHash => Some(key.request_uri),
                    Algorithm::KeyHash => Some(key.custom.unwrap_or(key.call_id)),
                    _ => key.auth_username,
                };
                match k {
                    Some(k) => self.rendezvous(ds, k, now, &mut scored),
                    None => self.rotate(s, now, &mut scored),
                }
                sort_desc(&mut scored);
                push_order(&mut scored, out);
            }
            Algorithm::RoundRobin | Algorithm::Parallel => {
                self.rotate(s, now, &mut scored);
                push_order(&mut scored, out);
            }
            Algorithm::OverloadRoundRobin => {
                self.rotate(s, now, &mut scored);
                // Withhold the advertised share of requests from overloaded destinations:
                // they move to the end of the list (still there for failover).
                let n = s.counter.load(Relaxed);
                for (score, i) in scored.iter_mut() {
                    let pct = ds[*i].overload_percent(now);
                    if pct > 0 && (mix(n ^ (*i as u64)) % 100) < u64::from(pct) {
                        *score -= 1e12;
                    }
                }
                sort_desc(&mut scored);
                push_order(&mut scored, out);
            }
            Algorithm::Random => {
                let r =
                    mix(s.counter.fetch_add(1, Relaxed) ^ self.base.elapsed().as_nanos() as u64);
                for (i, d) in ds.iter().enumerate() {
                    if usable(d) {
                        scored.push((mix(r ^ i as u64) as f64, i));
                    }
                }
                sort_desc(&mut scored);
                push_order(&mut scored, out);
            }
            Algorithm::Priority => {
                for (i, d) in ds.iter().enumerate() {
                    if usable(d) {
                        scored.push((f64::from(d.priority()), i));
                    }
                }
                // Stable: equal priorities keep list order.
                scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                push_order(&mut scored, out);
            }
            Algorithm::Weight => {
                let n = s.counter.fetch_add(1, Relaxed);
                let len = s.weighted.len().max(1) as u64;
                // Walk the cycle from the current position: the first usable destination
                // is the choice; the others follow in cycle order for failover.
                for step in 0..len {
                    let i = s.weighted[((n + step) % len) as usize] as usize;
                    if usable(&ds[i]) && !scored.iter().any(|&(_, j)| j == i) {
                        scored.push((0.0, i));
                    }
                }
                push_order(&mut scored, out);
            }
            Algorithm::CallLoad | Algorithm::LeastConnections | Algorithm::AutonomousQueue => {
                let mut full = 0;
                for (i, d) in ds.iter().enumerate() {
                    if !usable(d) {
                        continue;
                    }
                    let load = duid_load(ds, d);
                    let max = d.attrs().maxload.map(i64::from);
                    if max.is_some_and(|m| load >= m) {
                        full += 1;
                        continue;
                    }
                    scored.push((-(load as f64), i));
                }
                if scored.is_empty() && full > 0 && algorithm == Algorithm::AutonomousQueue {
                    return SelectOutcome::Queue;
                }
                self.tie_break(s, &mut scored);
                push_order(&mut scored, out);
            }
            Algorithm::WeightedLeastConnections => {
                for (i, d) in ds.iter().enumerate() {
                    if usable(d) {
                        scored.push((-(d.active_calls() as f64 / f64::from(d.weight())), i));
                    }
                }
                self.tie_break(s, &mut scored);
                push_order(&mut scored, out);
            }
            Algorithm::Observed | Algorithm::Predictive => {
                for (i, d) in ds.iter().enumerate() {
                    if usable(d) {
                        let mut score =
                            (d.active_calls().max(0) as f64 + 1.0) * (1.0 + d.failure_ratio());
                        if algorithm == Algorithm::Predictive {
                            score *= d.latency_trend();
                        }
                        scored.push((-score, i));
                    }
                }
                self.tie_break(s, &mut scored);
                push_order(&mut scored, out);
            }
            Algorithm::EvenTaskQueue => {
                for (i, d) in ds.iter().enumerate() {
                    if usable(d) {
                        scored.push((-(d.outstanding() as f64), i));
                    }
                }
                self.tie_break(s, &mut scored);
                push_order(&mut scored, out);
            }
            Algorithm::LeastBandwidth => {
                for (i, d) in ds.iter().enumerate() {
                    if usable(d) {
                        scored.push((-(d.bytes_recent(now) as f64), i));
                    }
                }
                self.tie_break(s, &mut scored);
                push_order(&mut scored, out);
            }
            Algorithm::Latency => {
                for (i, d) in ds.iter().enumerate() {
                    if usable(d) {
                        scored.push((-(d.latency_us() as f64), i));
                    }
                }
                self.tie_break(s, &mut scored);
                push_order(&mut scored, out);
            }
            Algorithm::RelativeWeight => {
                let r = mix(s.counter.fetch_add(1, Relaxed));
                for (i, d) in ds.iter().enumerate() {
                    if !usable(d) {
                        continue;
                    }
                    let a = d.attrs();
                    let mut w = f64::from(a.rweight.or(a.weight).unwrap_or(1).max(1));
                    if a.cc == Some(1) {
                        // Congestion control: scale by how far latency rose above its
                        // long-term average.
                        w /= d.latency_trend().max(1.0);
                    }
                    if d.state() == State::Trying {
                        w /= 2.0;
                    }
                    let u = ((mix(r ^ i as u64) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                    scored.push((-w / u.ln(), i));
                }
                sort_desc(&mut scored);
                push_order(&mut scored, out);
            }
            Algorithm::Srv => {
                let r = mix(s.counter.fetch_add(1, Relaxed));
                for (i, d) in ds.iter().enumerate() {
                    if usable(d) {
                        let u = ((mix(r ^ i as u64) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                        let wscore = -f64::from(d.weight()) / u.ln();
                        // Lower priority value first (RFC 2782), weighted within.
                        scored.push((-(f64::from(d.priority())) * 1e9 + wscore.min(1e8), i));
                    }
                }
                sort_desc(&mut scored);
                push_order(&mut scored, out);
            }
            Algorithm::Sticky => {
                let k = key.aor.unwrap_or(key.call_id);
                let kh = xxh3_64_with_seed(k, HASH_SEED);
                let shard = &self.sticky[(kh as usize) % STICKY_SHARDS];
                let pinned = {
                    let mut m = shard.lock().unwrap_or_else(|e| e.into_inner());
                    match m.get_mut(&kh) {
                        Some(a) if a.expires > now && a.destination.is_usable(now) => {
                            a.expires = now + self.sticky_ttl;
                            Some(a.destination.clone())
                        }
                        _ => None,
                    }
                };
                self.rendezvous(ds, k, now, &mut scored);
                sort_desc(&mut scored);
                if let Some(p) = &pinned {
                    out.list.push(p.clone());
                }
                for &(_, i) in scored.iter() {
                    if out.list.len() >= limit {
                        break;
                    }
                    if pinned.as_ref().is_some_and(|p| Arc::ptr_eq(p, &ds[i])) {
                        continue;
                    }
                    out.list.push(ds[i].clone());
                }
                if pinned.is_none()
                    && let Some(first) = out.list.first()
                {
                    let mut m = shard.lock().unwrap_or_else(|e| e.into_inner());
                    if m.len() > 100_000 {
                        m.retain(|_, a| a.expires > now);
                    }
                    m.insert(
                        kh,
                        Affinity {
                            destination: first.clone(),
                            expires: now + self.sticky_ttl,
                        },
                    );
                }
            }
        }
        if out.list.is_empty() {
            SelectOutcome::Unavailable
        } else {
            SelectOutcome::Selected
        }
    }

    fn rendezvous(&self, ds: &[Arc<Destination>], key: &[u8], now: Instant, scored: &mut Scored) {
        let kh = xxh3_64_with_seed(key, HASH_SEED);
        for (i, d) in ds.iter().enumerate() {
            if d.is_usable(now) {
                scored.push((hrw_score(kh, d), i));
            }
        }
    }

    /// Round-robin order: usable destinations starting after the last one chosen.
    fn rotate(&self, s: &DestinationSet, now: Instant, scored: &mut Scored) {
        let n = s.destinations.len();
        if n == 0 {
            return;
        }
        let start = (s.counter.fetch_add(1, Relaxed) % n as u64) as usize;
        for k in 0..n {
            let i = (start + k) % n;
            if s.destinations[i].is_usable(now) {
                scored.push(((n - k) as f64, i));
            }
        }
    }

    /// Sorts by score, best first; equal scores are rotated so ties spread evenly.
    fn tie_break(&self, s: &DestinationSet, scored: &mut Scored) {
        let n = s.destinations.len().max(1);
        let start = (s.counter.fetch_add(1, Relaxed) % n as u64) as usize;
        scored.sort_unstable_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(((a.1 + n - start) % n).cmp(&((b.1 + n - start) % n)))
        });
    }

    /// Appends to `out` the destinations to probe now, per `mode`; never those with the
    /// never-probe flag (32) or disabled.
    pub fn probe_candidates(
        &self,
        mode: ProbeMode,
        _now: Instant,
        out: &mut Vec<Arc<Destination>>,
    ) {
        let snap = self.snapshot.load();
        for s in &snap.sets {
            for d in &s.destinations {
                let f = d.flags();
                if f.has(Flags::NO_PROBE) || d.state() == State::Disabled {
                    continue;
                }
                let want = match mode {
                    ProbeMode::All => true,
                    ProbeMode::Flagged => f.has(Flags::PROBING),
                    ProbeMode::OnlyInactive => matches!(d.state(), State::Inactive | State::Trying),
                };
                if want && !out.iter().any(|x| Arc::ptr_eq(x, d)) {
                    out.push(d.clone());
                }
            }
        }
    }

    /// The destination of `set` with this URI.
    pub fn find(&self, set: u32, uri: &str) -> Option<Arc<Destination>> {
        self.snapshot
            .load()
            .set(set)?
            .destinations
            .iter()
            .find(|d| d.uri() == uri)
            .cloned()
    }
}

fn sort_desc(scored: &mut Scored) {
    scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
}

/// Active calls of `d`, summed over every destination sharing its `duid`.
fn duid_load(ds: &[Arc<Destination>], d: &Destination) -> i64 {
    let a = d.attrs();
    match &a.duid {
        Some(u) => ds
            .iter()
            .filter(|x| x.attrs().duid.as_deref() == Some(u.as_str()))
            .map(|x| x.active_calls())
            .sum(),
        None => d.active_calls(),
    }
}
