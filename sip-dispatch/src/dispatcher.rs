//! The dispatcher: an immutable snapshot of the sets (swapped atomically on reload) and
//! selection by every algorithm into a caller-provided buffer.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::algorithm::Algorithm;
use crate::destination::{Destination, PassiveHealth, Policy, State};
use crate::list::{DestinationList, DestinationSpec};

/// Seed of every hash of the crate (xxh3-64). Fixed and documented so that two
/// instances, or one after a restart, map the same key to the same destination.
pub const HASH_SEED: u64 = 0x7369_702d_6c62_0001;

/// Number of hash slots of a set's rendezvous table ([`DispatcherOptions::hash_slots`]):
/// a key falls in slot `key_hash >> 48`. Fixed, so that adding or removing a destination
/// never changes which slot a key falls in.
pub const HASH_SLOTS: usize = 1 << 16;
const SLOT_SHIFT: u32 = 64 - HASH_SLOTS.trailing_zeros();
/// How much of each slot's rendezvous order the table keeps (the proxy asks for the
/// first choice and up to 3 alternates; a longer list is computed).
const SLOT_WIDTH: usize = 8;

/// What the hash-based and sticky algorithms hash; filled by the proxy from the request.
#[derive(Clone, Copy, Debug, Default)]
pub struct SelectKey<'a> {
    /// Call-ID (algorithm 0; sticky without an AOR).
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
    /// Every usable destination is at capacity (autonomous queue): hold the request in
    /// a [`crate::WaitQueue`] and select again when a slot frees.
    Queue,
    /// Unknown set, or no usable destination (the backup included).
    Unavailable,
}

/// Which destinations to probe (Kamailio `ds_probing_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeMode {
    /// Mode 0: only destinations with the probing flag (configured with flag 8, or set
    /// by a failure); a successful probe clears the flag.
    Flagged,
    /// Mode 1: every destination.
    #[default]
    All,
    /// Mode 2: only inactive and trying destinations (Kamailio: inactive with the
    /// probing flag).
    OnlyInactive,
    /// Mode 3: destinations with the probing flag, continually (the flag stays).
    FlaggedContinuous,
}

impl ProbeMode {
    /// Kamailio's `ds_probing_mode` number.
    pub fn code(self) -> u8 {
        match self {
            ProbeMode::Flagged => 0,
            ProbeMode::All => 1,
            ProbeMode::OnlyInactive => 2,
            ProbeMode::FlaggedContinuous => 3,
        }
    }

    /// The mode of a Kamailio `ds_probing_mode` number.
    pub fn from_code(n: u8) -> Option<ProbeMode> {
        Some(match n {
            0 => ProbeMode::Flagged,
            1 => ProbeMode::All,
            2 => ProbeMode::OnlyInactive,
            3 => ProbeMode::FlaggedContinuous,
            _ => return None,
        })
    }
}

/// Settings of a [`Dispatcher`] beyond its list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatcherOptions {
    /// Kamailio `ds_use_default`: the last destination of each set is a backup, left
    /// out of normal selection, appended to every failover list and chosen first only
    /// when no other destination is usable.
    pub use_default: bool,
    /// Kamailio `ds_flags` bit 1: algorithms 1-3 hash only the user part of the URI
    /// (else user, host, and port unless default).
    pub hash_user_only: bool,
    /// How long a sticky affinity lives without use.
    pub sticky_ttl: Duration,
    /// Most affinities kept by the sticky algorithm (beyond, new keys are not pinned
    /// and fall back to rendezvous hashing).
    pub sticky_capacity: usize,
    /// Passive health: what traffic failures do to a destination.
    pub passive: PassiveHealth,
    /// Hash a key to one of [`HASH_SLOTS`] slots and read that slot's rendezvous order
    /// from a table built once per set and reload (at most 512 KiB per set; 0.01 s to
    /// build for 4 weighted destinations, 0.18 s for 64, on the thread that builds or
    /// reloads the dispatcher), instead of
    /// scoring every destination for every key: selection costs the same whatever the
    /// set size. A destination's share of slots is proportional to its weight within
    /// about 1/√(slots per destination) (0.4 % at 4 destinations, 3 % at 64); `false`
    /// scores per key (exact shares in the limit, cost linear in the set size). Both
    /// keep every other property: deterministic across instances and restarts, and a
    /// destination that fails or is removed moves only its own keys. Sets of more than
    /// 255 destinations always score per key.
    pub hash_slots: bool,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        DispatcherOptions {
            use_default: false,
            hash_user_only: false,
            sticky_ttl: Duration::from_secs(3600),
            sticky_capacity: 1 << 20,
            passive: PassiveHealth::default(),
            hash_slots: true,
        }
    }
}

/// The output buffer of a selection: first choice, then the failover alternates.
/// Reuse it across calls: once it has grown to the set size, selecting does not allocate.
///
/// It lists destinations as positions in the [`Snapshot`] it was filled from, and keeps
/// that snapshot: a selection touches no reference count while the dispatcher's
/// snapshot stays the same (it checks one number), and the destinations it lists stay
/// valid whatever a reload does meanwhile. A selection that is not used again keeps its
/// last snapshot alive; [`Selection::release`] lets it go.
#[derive(Debug, Default)]
pub struct Selection {
    snapshot: Option<Arc<Snapshot>>,
    /// Position of the selected set among the snapshot's sets.
    set: usize,
    list: Vec<u32>,
}

impl Selection {
    /// An empty selection with room for `n` destinations.
    pub fn with_capacity(n: usize) -> Self {
        Selection {
            snapshot: None,
            set: 0,
            list: Vec::with_capacity(n),
        }
    }
    /// Empties it (it keeps its snapshot for the next selection).
    pub fn clear(&mut self) {
        self.list.clear();
    }
    /// Empties it and lets go of the snapshot it holds.
    pub fn release(&mut self) {
        self.list.clear();
        self.snapshot = None;
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
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Arc<Destination>> + '_ {
        let ds = self.destinations();
        self.list.iter().map(move |&i| &ds[i as usize])
    }
    /// The i-th.
    pub fn get(&self, i: usize) -> Option<&Arc<Destination>> {
        let &p = self.list.get(i)?;
        Some(&self.destinations()[p as usize])
    }
    /// The first choice.
    pub fn first(&self) -> Option<&Arc<Destination>> {
        self.get(0)
    }
    /// The snapshot the destinations were selected from (none before the first
    /// selection and after [`Selection::release`]).
    pub fn snapshot(&self) -> Option<&Arc<Snapshot>> {
        self.snapshot.as_ref()
    }
    fn destinations(&self) -> &[Arc<Destination>] {
        match &self.snapshot {
            Some(s) if !self.list.is_empty() => &s.sets[self.set].destinations,
            _ => &[],
        }
    }
}

const NO_GROUP: u16 = u16::MAX;

/// Per-destination configuration copied into the snapshot, so selection reads plain
/// fields instead of the destination's swappable attributes.
#[derive(Debug, Clone, Copy)]
struct Meta {
    weight: u32,
    rweight: u32,
    maxload: u32,
    group: u16,
    cc: bool,
    priority: i32,
    uri_hash: u64,
}

/// One destination set of a snapshot.
#[derive(Debug)]
pub struct DestinationSet {
    id: u32,
    destinations: Vec<Arc<Destination>>,
    meta: Vec<Meta>,
    /// Destinations of normal selection: all, or all but the last (the backup).
    main: usize,
    /// Smooth weighted round-robin sequence (indices), one full cycle.
    weighted: Vec<u16>,
    /// Number of `duid` groups.
    groups: usize,
    /// Every weight equal (hashing can skip the logarithm).
    uniform_weight: bool,
    /// Kamailio's `rrserial`: every priority equal and above 0 (algorithm 14).
    all_same_priority: bool,
    counter: AtomicU64,
    /// The rendezvous table of the hash algorithms ([`DispatcherOptions::hash_slots`]),
    /// built by the thread that builds the snapshot, so selection never waits for it;
    /// shared with the previous snapshot's set when a reload left its main destinations
    /// and weights as they were.
    slots: Option<Arc<SlotTable>>,
}

/// For each of [`HASH_SLOTS`] slots, the first `width` destinations (indices into the
/// main destinations) of the rendezvous order of the key hash `slot`, best first,
/// regardless of health (selection skips the unusable ones).
#[derive(Debug)]
struct SlotTable {
    width: usize,
    order: Box<[u8]>,
}

impl DestinationSet {
    /// The rendezvous score of main destination `i` for key hash `kh` (higher wins).
    #[inline]
    fn hrw_score(&self, i: usize, kh: u64) -> f64 {
        let m = &self.meta[i];
        let bits = hrw_bits(kh, m.uri_hash);
        if self.uniform_weight {
            bits as f64
        } else {
            f64::from(m.weight) / neg_ln_unit(bits)
        }
    }

    /// Builds the slot table (`None` for an empty set or one of more than 255).
    fn build_slot_table(&self) -> Option<SlotTable> {
        let n = self.main;
        if n == 0 || n > usize::from(u8::MAX) {
            return None;
        }
        let width = n.min(SLOT_WIDTH);
        let mut order = vec![0u8; HASH_SLOTS * width].into_boxed_slice();
        // The best `width` of each slot in one pass, on integer keys: scores are
        // positive, so their IEEE bits order like them; the low byte (255 - index) puts
        // the lower index first among equal scores, as `order_desc` does.
        let mut top = [0u128; SLOT_WIDTH];
        for (slot, row) in order.chunks_exact_mut(width).enumerate() {
            let mut have = 0;
            for i in 0..n {
                let score = self.hrw_score(i, slot as u64);
                let key = (u128::from(score.to_bits()) << 8) | u128::from(255 - i as u8);
                if have == width && key <= top[width - 1] {
                    continue;
                }
                let mut j = have.min(width - 1);
                while j > 0 && top[j - 1] < key {
                    top[j] = top[j - 1];
                    j -= 1;
                }
                top[j] = key;
                have = (have + 1).min(width);
            }
            for (o, k) in row.iter_mut().zip(&top) {
                *o = 255 - (*k & 0xff) as u8;
            }
        }
        Some(SlotTable { width, order })
    }
}

impl DestinationSet {
    /// The set id.
    pub fn id(&self) -> u32 {
        self.id
    }
    /// Its destinations in list order (the backup, when there is one, last).
    pub fn destinations(&self) -> &[Arc<Destination>] {
        &self.destinations
    }
    /// The backup destination ([`DispatcherOptions::use_default`]).
    pub fn backup(&self) -> Option<&Arc<Destination>> {
        (self.main < self.destinations.len())
            .then(|| self.destinations.last())
            .flatten()
    }
}

/// An immutable view of every set; replaced as a whole on reload.
#[derive(Debug)]
pub struct Snapshot {
    /// Unique in the process (see [`Dispatcher::select`]).
    id: u64,
    sets: Vec<DestinationSet>,
}

/// Source of [`Snapshot`] ids: a selection recognises the dispatcher's current snapshot
/// by its id, whichever dispatcher the selection was used with before.
static SNAPSHOT_IDS: AtomicU64 = AtomicU64::new(1);

impl Snapshot {
    /// Every set, in the order they first appear in the list.
    pub fn sets(&self) -> &[DestinationSet] {
        &self.sets
    }
    /// One set.
    pub fn set(&self, id: u32) -> Option<&DestinationSet> {
        self.sets.iter().find(|s| s.id == id)
    }
    /// Unique in the process: two snapshots with one id are one snapshot. Compare it with
    /// [`Dispatcher::snapshot_id`] to learn whether a snapshot kept from earlier is still
    /// the current one.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// What a reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
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
///
/// Selection reads the current [`Snapshot`] through `arc-swap` and the destinations'
/// atomics; it takes no lock, except the sticky algorithm, which locks one of 32 shards
/// of its affinity table (chosen by the key's hash) for a lookup or insert.
#[derive(Debug)]
pub struct Dispatcher {
    snapshot: ArcSwap<Snapshot>,
    /// The id of the snapshot in `snapshot`, written after it.
    current: AtomicU64,
    policy: Arc<Policy>,
    options: DispatcherOptions,
    sticky: Box<[Mutex<HashMap<u64, Affinity>>]>,
    reload_lock: Mutex<()>,
}

/// Smooth weighted round robin (the nginx sequence): over one cycle of `sum(w)` picks
/// each destination appears exactly `w` times, interleaved as evenly as possible.
/// Weights are first divided by their greatest common divisor; a cycle longer than
/// 65 536 picks is scaled down (only then is the spread approximate).
fn smooth_weighted(weights: &[u32]) -> Vec<u16> {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x.max(1))).collect();
    let g = w.iter().copied().fold(0, gcd).max(1);
    w.iter_mut().for_each(|x| *x /= g);
    let mut total: u64 = w.iter().sum();
    while total > 65_536 {
        w.iter_mut().for_each(|x| *x = (*x / 2).max(1));
        total = w.iter().sum();
    }
    let mut current = vec![0i64; w.len()];
    let mut seq = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, x) in current.iter_mut().zip(&w) {
            *c += *x as i64;
        }
        let mut best = 0;
        for i in 1..w.len() {
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total as i64;
        seq.push(best as u16);
    }
    seq
}

fn make_set(id: u32, destinations: Vec<Arc<Destination>>, use_default: bool) -> DestinationSet {
    let mut duids: Vec<String> = Vec::new();
    let meta: Vec<Meta> = destinations
        .iter()
        .map(|d| {
            let a = d.attrs();
            let group = match &a.duid {
                Some(u) => match duids.iter().position(|x| x == u) {
                    Some(p) => p as u16,
                    None => {
                        duids.push(u.clone());
                        (duids.len() - 1) as u16
                    }
                },
                None => NO_GROUP,
            };
            Meta {
                weight: a.weight.unwrap_or(1).max(1),
                rweight: a.rweight.or(a.weight).unwrap_or(1).max(1),
                maxload: a.maxload.unwrap_or(0),
                group,
                cc: a.cc == Some(1),
                priority: d.priority(),
                uri_hash: xxh3_64_with_seed(d.uri().as_bytes(), HASH_SEED),
            }
        })
        .collect();
    let n = destinations.len();
    let main = if use_default && n > 1 { n - 1 } else { n };
    let weights: Vec<u32> = meta[..main].iter().map(|m| m.weight).collect();
    DestinationSet {
        id,
        uniform_weight: weights.windows(2).all(|w| w[0] == w[1]),
        all_same_priority: meta[..main]
            .iter()
            .all(|m| m.priority == meta[0].priority && m.priority > 0),
        weighted: smooth_weighted(&weights),
        slots: None,
        groups: duids.len(),
        destinations,
        meta,
        main,
        counter: AtomicU64::new(0),
    }
}

/// Whether two sets rank destinations alike for every key (same main destinations, in
/// the same order, with the same weights), so the slot table of one serves the other.
fn same_rendezvous(a: &DestinationSet, b: &DestinationSet) -> bool {
    a.main == b.main
        && a.uniform_weight == b.uniform_weight
        && a.meta[..a.main]
            .iter()
            .zip(&b.meta[..b.main])
            .all(|(x, y)| x.uri_hash == y.uri_hash && x.weight == y.weight)
}

fn build(
    list: &DestinationList,
    policy: &Arc<Policy>,
    use_default: bool,
    hash_slots: bool,
    old: Option<&Snapshot>,
) -> (Snapshot, ReloadReport) {
    let mut report = ReloadReport::default();
    let mut grouped: Vec<(u32, Vec<Arc<Destination>>)> = Vec::new();
    let mut seen: HashMap<(u32, &str), ()> = HashMap::new();
    for spec in list.entries() {
        // A repeated (set, URI) is one destination: the first line wins.
        if seen.insert((spec.set, spec.uri.as_str()), ()).is_some() {
            continue;
        }
        let dest = reuse_or_create(spec, policy, old, &mut report);
        match grouped.iter_mut().find(|(id, _)| *id == spec.set) {
            Some((_, v)) => v.push(dest),
            None => grouped.push((spec.set, vec![dest])),
        }
    }
    if let Some(o) = old {
        for s in &o.sets {
            for d in &s.destinations {
                if !seen.contains_key(&(s.id, d.uri())) {
                    report.removed.push((s.id, d.uri().to_string()));
                }
            }
        }
    }
    let sets = grouped
        .into_iter()
        .map(|(id, ds)| {
            let mut set = make_set(id, ds, use_default);
            if hash_slots {
                set.slots = match old.and_then(|o| o.set(id)) {
                    Some(prev) if prev.slots.is_some() && same_rendezvous(prev, &set) => {
                        prev.slots.clone()
                    }
                    _ => set.build_slot_table().map(Arc::new),
                };
            }
            set
        })
        .collect();
    (
        Snapshot {
            id: SNAPSHOT_IDS.fetch_add(1, Relaxed),
            sets,
        },
        report,
    )
}

fn reuse_or_create(
    spec: &DestinationSpec,
    policy: &Arc<Policy>,
    old: Option<&Snapshot>,
    report: &mut ReloadReport,
) -> Arc<Destination> {
    let existing = old
        .and_then(|o| o.set(spec.set))
        .and_then(|s| s.destinations.iter().find(|d| d.uri() == spec.uri));
    match existing {
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
            Arc::new(Destination::new(spec, policy.clone()))
        }
    }
}

/// The hash of a key (xxh3-64 with [`HASH_SEED`]).
fn key_hash(key: &[u8]) -> u64 {
    xxh3_64_with_seed(key, HASH_SEED)
}

/// Kamailio's URI hash key: the user, then the host, then the port when it is not the
/// scheme's default (`user_only`: the user alone). Other schemes are hashed as they are.
///
/// The parts are found by a scan, not a parse: the user ends at the first `@` (its
/// password at a `:`), the host at a `:`, `;` or `?` (or after `]`), the port at `;` or
/// `?`. For every URI the parser accepts this gives the parser's user, host and port
/// (tested against it); an invalid URI is still hashed by what looks like its parts.
fn uri_key_hash(uri: &[u8], user_only: bool) -> u64 {
    let uri = addr_spec(uri);
    let Some((scheme, default)) = sip_scheme(uri) else {
        return key_hash(uri);
    };
    let rest = &uri[scheme..];
    // Eight bytes per step, not memchr: these strings are a few dozen bytes, shorter
    // than what pays for memchr's vector set-up (half the instructions of the selection
    // with it).
    let (user, hostport) = match sip_core::scan::find_any(rest, [b'@']) {
        Some(at) => {
            let userinfo = &rest[..at];
            let user =
                sip_core::scan::find_any(userinfo, [b':']).map_or(userinfo, |c| &userinfo[..c]);
            (user, &rest[at + 1..])
        }
        None => (&[][..], rest),
    };
    let mut h = key_hash(user);
    if user_only {
        return h;
    }
    let host_end = if hostport.first() == Some(&b'[') {
        hostport
            .iter()
            .position(|&c| c == b']')
            .map_or(hostport.len(), |e| e + 1)
    } else {
        sip_core::scan::find_any(hostport, [b':', b';', b'?']).unwrap_or(hostport.len())
    };
    let host = &hostport[..host_end];
    h = xxh3_64_with_seed(host, h);
    if hostport.get(host_end) == Some(&b':') {
        let digits = &hostport[host_end + 1..];
        let end = digits.iter().position(|&c| matches!(c, b';' | b'?'));
        let digits = &digits[..end.unwrap_or(digits.len())];
        if let Some(p) = sip_core::uri::port_number(digits).filter(|&p| p != default) {
            h = xxh3_64_with_seed(&p.to_be_bytes(), h);
        }
    }
    h
}

/// The length of a `sip:` or `sips:` scheme at the start of `b` (any case) followed by
/// at least one byte, and the scheme's default port.
#[inline]
fn sip_scheme(b: &[u8]) -> Option<(usize, u16)> {
    // Lower case by setting bit 5 of the three letters (only 'S'/'s' give 's', and so
    // on); the colon is compared as it is.
    const SIP: u32 = u32::from_le_bytes(*b"sip:");
    const SIPS: u32 = u32::from_le_bytes(*b"sips");
    let w = u32::from_le_bytes(b.get(..4)?.try_into().expect("4 bytes"));
    if b.len() > 4 && w | 0x0020_2020 == SIP {
        Some((4, 5060))
    } else if b.len() > 5 && w | 0x2020_2020 == SIPS && b[4] == b':' {
        Some((5, 5061))
    } else {
        None
    }
}

/// [`uri_key_hash`] through the URI parser, for the tests that hold the scan to it.
#[cfg(test)]
fn uri_key_hash_parsed(uri: &[u8], user_only: bool) -> Option<u64> {
    let u = sip_core::uri::Uri::parse(addr_spec(uri)).ok()?;
    if !u.scheme().is_sip() {
        return None;
    }
    let mut h = key_hash(u.user().unwrap_or_default());
    if !user_only {
        h = xxh3_64_with_seed(u.host_raw(), h);
        let default = if u.scheme() == sip_core::uri::Scheme::Sips {
            5061
        } else {
            5060
        };
        if let Some(p) = u.port().filter(|&p| p != default) {
            h = xxh3_64_with_seed(&p.to_be_bytes(), h);
        }
    }
    Some(h)
}

/// The URI of a header value: the value itself when it starts with `sip:` or `sips:` (an
/// addr-spec; a name-addr's display name cannot start so), else the part in angle
/// brackets when there is one.
fn addr_spec(b: &[u8]) -> &[u8] {
    let b = b.trim_ascii();
    if sip_scheme(b).is_some() {
        return b;
    }
    match (memchr::memchr(b'<', b), memchr::memrchr(b'>', b)) {
        (Some(s), Some(e)) if s < e => &b[s + 1..e],
        _ => b,
    }
}

/// Rendezvous score bits of a destination for a key:
/// `xxh3_64(le_bytes(key_hash), seed = xxh3_64(uri, HASH_SEED))`.
#[inline]
fn hrw_bits(key_hash: u64, uri_hash: u64) -> u64 {
    xxh3_64_with_seed(&key_hash.to_le_bytes(), uri_hash)
}

/// A uniform number in (0, 1) from the top 52 bits of `x` (the midpoint of one of 2^52
/// equal steps, exactly representable, so never 0 nor 1).
#[inline]
fn unit(x: u64) -> f64 {
    ((x >> 12) as f64 + 0.5) / (1u64 << 52) as f64
}

/// `-ln(unit(bits))`, the denominator of a weighted rendezvous score, computed from IEEE
/// 754 additions, multiplications and one division only (no libm), so that every
/// platform gives the same bits and two instances rank destinations alike:
/// `u = m·2^e` with `m` in [√½, √2), `ln u = e·ln 2 + 2·atanh(t)`, `t = (m − 1)/(m + 1)`,
/// the series to `t¹¹` (relative error below 1e-10). Always positive for `u` in (0, 1).
#[inline]
fn neg_ln_unit(bits: u64) -> f64 {
    const MANTISSA: u64 = (1u64 << 52) - 1;
    let b = unit(bits).to_bits();
    let mut e = ((b >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((b & MANTISSA) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let atanh2 = t
        * (2.0
            + t2 * (2.0 / 3.0
                + t2 * (2.0 / 5.0 + t2 * (2.0 / 7.0 + t2 * (2.0 / 9.0 + t2 * (2.0 / 11.0))))));
    -(e as f64 * std::f64::consts::LN_2 + atanh2)
}

/// A fast per-thread pseudo-random number (splitmix64, seeded from the standard
/// library's per-process random keys); no lock, no allocation.
fn rand_u64() -> u64 {
    use std::hash::BuildHasher;
    thread_local! {
        static STATE: Cell<u64> =
            Cell::new(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64));
    }
    STATE.with(|s| {
        let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

type Scored = SmallVec<[(f64, usize); 64]>;

/// Up to this many best destinations are found by one pass instead of a partial sort.
const TOP_K: usize = 4;

/// Sorts best first (higher score; ties by index), only as far as `limit` needs.
fn order_desc(scored: &mut Scored, limit: usize) {
    let cmp = |a: &(f64, usize), b: &(f64, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if limit < scored.len() {
        if limit == 0 {
            return;
        }
        if limit <= TOP_K {
            // The few best in one pass (the proxy asks for a first choice and one or two
            // alternates): no sort of the whole set.
            let mut top = [(f64::NEG_INFINITY, usize::MAX); TOP_K];
            let mut n = 0;
            for &x in scored.iter() {
                if n == limit && cmp(&x, &top[n - 1]) != std::cmp::Ordering::Less {
                    continue;
                }
                let mut j = if n < limit { n } else { limit - 1 };
                while j > 0 && cmp(&x, &top[j - 1]) == std::cmp::Ordering::Less {
                    top[j] = top[j - 1];
                    j -= 1;
                }
                top[j] = x;
                n = (n + 1).min(limit);
            }
            scored[..limit].copy_from_slice(&top[..limit]);
            return;
        }
        scored.select_nth_unstable_by(limit - 1, cmp);
        scored[..limit].sort_unstable_by(cmp);
    } else {
        scored.sort_unstable_by(cmp);
    }
}

/// `i mod n` for `i < 2n` (a rotation position plus an offset), without a division.
#[inline]
fn wrap(i: usize, n: usize) -> usize {
    if i >= n { i - n } else { i }
}

struct Ctx<'a> {
    s: &'a DestinationSet,
    now: Instant,
    limit: usize,
}

impl Ctx<'_> {
    #[inline]
    fn usable(&self, i: usize) -> bool {
        self.s.destinations[i].is_usable(self.now)
    }

    fn push(&self, out: &mut Selection, i: usize) {
        if out.list.len() < self.limit {
            out.list.push(i as u32);
        }
    }

    fn push_scored(&self, out: &mut Selection, scored: &Scored) {
        for &(_, i) in scored.iter().take(self.limit) {
            self.push(out, i);
        }
    }

    /// Usable destinations among the `count` in rotation order from `start`, until
    /// `limit`.
    fn rotate_from(&self, out: &mut Selection, start: usize, count: usize) {
        let n = self.s.main;
        for k in 0..count.min(n) {
            if out.list.len() >= self.limit {
                break;
            }
            let i = wrap(start + k, n);
            if self.usable(i) {
                self.push(out, i);
            }
        }
    }

    fn next_counter(&self) -> u64 {
        self.s.counter.fetch_add(1, Relaxed)
    }

    /// Round robin: the usable destinations from the next position on.
    fn round_robin(&self, out: &mut Selection) {
        let n = self.s.main as u64;
        let start = (self.next_counter() % n) as usize;
        self.rotate_from(out, start, n as usize);
    }

    /// Scores every usable destination with `f` (higher is better) and orders them;
    /// ties are rotated by the set's counter, so equal destinations share the load.
    fn best_by(&self, out: &mut Selection, mut f: impl FnMut(usize) -> f64) {
        let n = self.s.main;
        let start = (self.next_counter() % n as u64) as usize;
        let mut scored = Scored::new();
        for k in 0..n {
            let i = wrap(start + k, n);
            if self.usable(i) {
                // The rotation position breaks ties (lower position first); a score of
                // -inf means "not eligible".
                let score = f(i);
                if score > f64::NEG_INFINITY {
                    scored.push((score, k));
                }
            }
        }
        order_desc(&mut scored, self.limit);
        for &(_, k) in scored.iter().take(self.limit) {
            self.push(out, wrap(start + k, n));
        }
    }

    /// Rendezvous hashing of `kh` over the usable destinations, weighted by `weight`:
    /// through the set's slot table, or scored per key.
    fn rendezvous(&self, out: &mut Selection, kh: u64) {
        let Some(t) = self.s.slots.as_deref() else {
            return self.rendezvous_scored(out, kh);
        };
        let slot = (kh >> SLOT_SHIFT) as usize;
        let start = out.list.len();
        for &i in &t.order[slot * t.width..][..t.width] {
            if out.list.len() >= self.limit {
                return;
            }
            if self.usable(usize::from(i)) {
                self.push(out, usize::from(i));
            }
        }
        if t.width < self.s.main && out.list.len() < self.limit {
            // More are wanted than the table's part of the order gave: the whole order
            // of the slot, the same one the table was built from.
            out.list.truncate(start);
            self.rendezvous_scored(out, slot as u64);
        }
    }

    /// Rendezvous hashing by scoring every usable destination for `kh`.
    fn rendezvous_scored(&self, out: &mut Selection, kh: u64) {
        let mut scored = Scored::new();
        for i in 0..self.s.main {
            if self.usable(i) {
                scored.push((self.s.hrw_score(i, kh), i));
            }
        }
        order_desc(&mut scored, self.limit);
        self.push_scored(out, &scored);
    }

    /// One weighted random pick among the usable destinations accepted by `filter`.
    fn weighted_pick(
        &self,
        weight: impl Fn(usize) -> f64,
        filter: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = self.s.main;
        let total: f64 = (0..n)
            .filter(|&i| filter(i) && self.usable(i))
            .map(&weight)
            .sum();
        if total <= 0.0 {
            return None;
        }
        let mut r = unit(rand_u64()) * total;
        let mut last = None;
        for i in 0..n {
            if filter(i) && self.usable(i) {
                let w = weight(i);
                if w > 0.0 {
                    last = Some(i);
                    if r < w {
                        return Some(i);
                    }
                    r -= w;
                }
            }
        }
        last
    }
}

impl Dispatcher {
    /// A dispatcher over `list` with default options.
    pub fn new(list: DestinationList) -> Dispatcher {
        Dispatcher::with_options(list, DispatcherOptions::default())
    }

    /// A dispatcher over `list` with `options`.
    pub fn with_options(list: DestinationList, options: DispatcherOptions) -> Dispatcher {
        let policy = Arc::new(Policy::new(options.passive));
        let (snap, _) = build(
            &list,
            &policy,
            options.use_default,
            options.hash_slots,
            None,
        );
        Dispatcher {
            current: AtomicU64::new(snap.id),
            snapshot: ArcSwap::from_pointee(snap),
            policy,
            options,
            sticky: (0..STICKY_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            reload_lock: Mutex::new(()),
        }
    }

    /// Sets how long a sticky affinity lasts without use (default 1 hour).
    pub fn with_sticky_ttl(mut self, ttl: Duration) -> Self {
        self.options.sticky_ttl = ttl;
        self
    }

    /// The options (passive health as currently set).
    pub fn options(&self) -> DispatcherOptions {
        DispatcherOptions {
            passive: self.policy.get(),
            ..self.options
        }
    }

    /// Changes the passive-health settings of every destination at once.
    pub fn set_passive_health(&self, passive: PassiveHealth) {
        self.policy.set(passive);
    }

    /// Replaces the sets. Destinations that remain (same set and URI) keep their `Arc`,
    /// state and counters; readers never block (they keep the snapshot they loaded).
    pub fn reload(&self, list: DestinationList) -> ReloadReport {
        let _writer = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.snapshot.load_full();
        let (snap, report) = build(
            &list,
            &self.policy,
            self.options.use_default,
            self.options.hash_slots,
            Some(&old),
        );
        let id = snap.id;
        self.snapshot.store(Arc::new(snap));
        self.current.store(id, Release);
        report
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The [`Snapshot::id`] of the current snapshot: one atomic load, where
    /// [`snapshot`](Self::snapshot) increments a reference count that every thread shares.
    /// A thread that keeps a snapshot (or something built from one) checks it with this
    /// and loads the snapshot again only after a reload. (During a reload it may still
    /// see the previous id for a moment: the new snapshot is stored before its id.)
    pub fn snapshot_id(&self) -> u64 {
        self.current.load(Acquire)
    }

    /// Fills `out` with destinations of `set` for this request, best first, at most
    /// `limit` (0 = no limit): the first choice, then the failover alternates. Only
    /// usable destinations are listed, each once; the backup (see
    /// [`DispatcherOptions::use_default`]) comes last. No heap allocation once `out` has
    /// room for the set (sets of up to 64 destinations; the sticky algorithm may grow
    /// its table).
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
        // The selection's snapshot is current when its id is the dispatcher's: then no
        // reference count is touched. A reload stores the snapshot before its id, so a
        // selection that sees the new id loads the new snapshot (or a newer one).
        let current = self.current.load(Acquire);
        let snap = match out.snapshot.take() {
            Some(s) if s.id == current => s,
            _ => self.snapshot.load_full(),
        };
        let outcome = 'select: {
            let Some(pos) = snap.sets.iter().position(|s| s.id == set) else {
                break 'select SelectOutcome::Unavailable;
            };
            let s = &snap.sets[pos];
            out.set = pos;
            if s.destinations.is_empty() {
                break 'select SelectOutcome::Unavailable;
            }
            let cx = Ctx {
                s,
                now,
                limit: if limit == 0 { usize::MAX } else { limit },
            };
            if self.select_main(&cx, algorithm, key, out) == SelectOutcome::Queue {
                break 'select SelectOutcome::Queue;
            }
            if s.main < s.destinations.len() {
                let b = s.destinations.len() - 1;
                if cx.usable(b) {
                    cx.push(out, b);
                }
            }
            if out.list.is_empty() {
                SelectOutcome::Unavailable
            } else {
                SelectOutcome::Selected
            }
        };
        out.snapshot = Some(snap);
        outcome
    }

    fn select_main(
        &self,
        cx: &Ctx<'_>,
        algorithm: Algorithm,
        key: &SelectKey<'_>,
        out: &mut Selection,
    ) -> SelectOutcome {
        let s = cx.s;
        let ds = &s.destinations;
        let user_only = self.options.hash_user_only;
        match algorithm {
            Algorithm::CallIdHash => cx.rendezvous(out, key_hash(key.call_id)),
            Algorithm::FromUriHash => cx.rendezvous(out, uri_key_hash(key.from_uri, user_only)),
            Algorithm::ToUriHash => cx.rendezvous(out, uri_key_hash(key.to_uri, user_only)),
            Algorithm::RequestUriHash => {
                cx.rendezvous(out, uri_key_hash(key.request_uri, user_only))
            }
            Algorithm::KeyHash => cx.rendezvous(out, key_hash(key.custom.unwrap_or(key.call_id))),
            Algorithm::AuthUsernameHash => match key.auth_username {
                Some(u) => cx.rendezvous(out, key_hash(u)),
                None => cx.round_robin(out),
            },
            Algorithm::RoundRobin | Algorithm::Parallel => cx.round_robin(out),
            Algorithm::PriorityRoundRobin if s.all_same_priority => cx.round_robin(out),
            Algorithm::Priority | Algorithm::PriorityRoundRobin => {
                let mut scored = Scored::new();
                for i in 0..s.main {
                    if cx.usable(i) {
                        scored.push((f64::from(s.meta[i].priority), i));
                    }
                }
                order_desc(&mut scored, cx.limit);
                cx.push_scored(out, &scored);
            }
            Algorithm::Random => {
                let mut usable: SmallVec<[usize; 64]> = SmallVec::new();
                usable.extend((0..s.main).filter(|&i| cx.usable(i)));
                if !usable.is_empty() {
                    let first = (rand_u64() % usable.len() as u64) as usize;
                    for k in 0..usable.len() {
                        cx.push(out, usable[(first + k) % usable.len()]);
                    }
                }
            }
            Algorithm::Weight => {
                let len = s.weighted.len() as u64;
                let pos = cx.next_counter() % len;
                // The first usable destination from the cycle position is the choice;
                // an unusable destination's turn goes to the next one in the cycle.
                let first = (0..len)
                    .map(|k| s.weighted[((pos + k) % len) as usize] as usize)
                    .find(|&i| cx.usable(i));
                if let Some(f) = first {
                    cx.push(out, f);
                    // Failover: the others, heaviest first.
                    let mut scored = Scored::new();
                    for i in 0..s.main {
                        if i != f && cx.usable(i) {
                            scored.push((f64::from(s.meta[i].weight), i));
                        }
                    }
                    order_desc(&mut scored, cx.limit.saturating_sub(1));
                    cx.push_scored(out, &scored);
                }
            }
            Algorithm::CallLoad | Algorithm::AutonomousQueue | Algorithm::LeastConnections => {
                let mut group_load: SmallVec<[i64; 16]> = SmallVec::new();
                if s.groups > 0 {
                    group_load.resize(s.groups, 0);
                    for (d, m) in ds.iter().zip(&s.meta) {
                        if m.group != NO_GROUP {
                            group_load[m.group as usize] += d.active_calls();
                        }
                    }
                }
                let load = |i: usize| match s.meta[i].group {
                    NO_GROUP => ds[i].active_calls(),
                    g => group_load[g as usize],
                };
                let honour_max = algorithm != Algorithm::LeastConnections;
                let mut full = 0usize;
                let mut open = 0usize;
                for i in 0..s.main {
                    if cx.usable(i) {
                        let m = s.meta[i].maxload;
                        if honour_max && m > 0 && load(i) >= i64::from(m) {
                            full += 1;
                        } else {
                            open += 1;
                        }
                    }
                }
                if open == 0 && full > 0 && algorithm == Algorithm::AutonomousQueue {
                    return SelectOutcome::Queue;
                }
                cx.best_by(out, |i| {
                    let m = s.meta[i].maxload;
                    let l = load(i);
                    if honour_max && m > 0 && l >= i64::from(m) {
                        f64::NEG_INFINITY
                    } else {
                        -(l as f64)
                    }
                });
            }
            Algorithm::WeightedLeastConnections => cx.best_by(out, |i| {
                -(ds[i].active_calls() as f64 / f64::from(s.meta[i].weight))
            }),
            Algorithm::Observed | Algorithm::Predictive => cx.best_by(out, |i| {
                let d = &ds[i];
                let mut score =
                    (d.active_calls().max(0) as f64 + 1.0) * (1.0 + 4.0 * d.failure_rate());
                if algorithm == Algorithm::Predictive {
                    score *= d.latency_trend();
                }
                -score
            }),
            Algorithm::EvenTaskQueue => cx.best_by(out, |i| -(ds[i].outstanding() as f64)),
            Algorithm::LeastBandwidth => {
                cx.best_by(out, |i| -(ds[i].bytes_in_window(cx.now) as f64))
            }
            Algorithm::Latency => cx.best_by(out, |i| -(ds[i].latency_us() as f64)),
            Algorithm::RelativeWeight => {
                // Kamailio: rweight, lowered by 1 per ms of congestion with cc=1; when
                // every destination is congested below 0, by the inverse of congestion.
                let eff = |i: usize| {
                    let m = &s.meta[i];
                    let w = f64::from(m.rweight);
                    if m.cc {
                        (w - ds[i].congestion_us() as f64 / 1000.0).max(0.0)
                    } else {
                        w
                    }
                };
                let first = cx.weighted_pick(eff, |_| true).or_else(|| {
                    cx.weighted_pick(|i| 1.0 / (1.0 + ds[i].congestion_us() as f64), |_| true)
                });
                if let Some(f) = first {
                    cx.push(out, f);
                    cx.rotate_from(out, f + 1, s.main - 1);
                }
            }
            Algorithm::Srv => {
                let best = (0..s.main)
                    .filter(|&i| cx.usable(i))
                    .map(|i| s.meta[i].priority)
                    .min();
                if let Some(p) = best {
                    let first = cx.weighted_pick(
                        |i| f64::from(s.meta[i].weight),
                        |i| s.meta[i].priority == p,
                    );
                    if let Some(f) = first {
                        cx.push(out, f);
                        let mut scored = Scored::new();
                        for i in 0..s.main {
                            if i != f && cx.usable(i) {
                                let m = &s.meta[i];
                                // Lower priority value first, heavier first within one.
                                scored.push((
                                    -f64::from(m.priority) * 4_294_967_296.0 + f64::from(m.weight),
                                    i,
                                ));
                            }
                        }
                        order_desc(&mut scored, cx.limit.saturating_sub(1));
                        cx.push_scored(out, &scored);
                    }
                }
            }
            Algorithm::OverloadRoundRobin => {
                let n = s.main;
                let start = (cx.next_counter() % n as u64) as usize;
                let mut withheld: SmallVec<[usize; 64]> = SmallVec::new();
                let mut chosen = None;
                for k in 0..n {
                    let i = wrap(start + k, n);
                    if !cx.usable(i) {
                        continue;
                    }
                    if chosen.is_none() && ds[i].overload_withhold(cx.now) {
                        withheld.push(i);
                        continue;
                    }
                    if chosen.is_none() {
                        chosen = Some(i);
                    }
                    cx.push(out, i);
                }
                // Destinations whose overload control withheld this request stay at the
                // end of the failover list.
                for i in withheld {
                    cx.push(out, i);
                }
            }
            Algorithm::Sticky => self.sticky(cx, key, out),
        }
        SelectOutcome::Selected
    }

    fn sticky(&self, cx: &Ctx<'_>, key: &SelectKey<'_>, out: &mut Selection) {
        let s = cx.s;
        let k = key.aor.unwrap_or(key.call_id);
        let kh = key_hash(k);
        let slot = xxh3_64_with_seed(&u64::from(s.id).to_le_bytes(), kh);
        let shard = &self.sticky[(slot as usize) % STICKY_SHARDS];
        let ttl = self.options.sticky_ttl;
        let pinned = {
            let mut m = shard.lock().unwrap_or_else(|e| e.into_inner());
            match m.get_mut(&slot) {
                // Only a destination still in this set (not removed by a reload) and
                // usable keeps its affinity.
                Some(a) if a.expires > cx.now && a.destination.is_usable(cx.now) => {
                    let pos = s.destinations[..s.main]
                        .iter()
                        .position(|d| Arc::ptr_eq(d, &a.destination));
                    if pos.is_some() {
                        a.expires = cx.now + ttl;
                    }
                    pos
                }
                _ => None,
            }
        };
        match pinned {
            Some(p) => {
                let p = p as u32;
                out.list.push(p);
                // The rendezvous order for the alternates, without the pinned one: one
                // more than the limit, then the duplicate is dropped.
                let wide = Ctx {
                    s,
                    now: cx.now,
                    limit: cx.limit.saturating_add(1),
                };
                wide.rendezvous(out, kh);
                if let Some(pos) = out.list[1..].iter().position(|&d| d == p) {
                    out.list.remove(pos + 1);
                }
                out.list.truncate(cx.limit);
            }
            None => {
                cx.rendezvous(out, kh);
                if let Some(&first) = out.list.first() {
                    let cap = (self.options.sticky_capacity / STICKY_SHARDS).max(1);
                    let mut m = shard.lock().unwrap_or_else(|e| e.into_inner());
                    if m.len() >= cap {
                        m.retain(|_, a| a.expires > cx.now);
                    }
                    if m.len() < cap || m.contains_key(&slot) {
                        m.insert(
                            slot,
                            Affinity {
                                destination: s.destinations[first as usize].clone(),
                                expires: cx.now + ttl,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Removes expired sticky affinities; returns how many remain.
    pub fn expire_sticky(&self, now: Instant) -> usize {
        self.sticky
            .iter()
            .map(|shard| {
                let mut m = shard.lock().unwrap_or_else(|e| e.into_inner());
                m.retain(|_, a| a.expires > now);
                m.len()
            })
            .sum()
    }

    /// Appends to `out` the destinations to probe now, per `mode` (Kamailio
    /// `ds_probing_mode`); never those with the never-probe flag (32) nor disabled ones.
    /// The mode is remembered: under [`ProbeMode::Flagged`] a successful probe clears
    /// the probing flag.
    pub fn probe_candidates(
        &self,
        mode: ProbeMode,
        _now: Instant,
        out: &mut Vec<Arc<Destination>>,
    ) {
        self.policy.probe_mode.store(mode.code(), Relaxed);
        let snap = self.snapshot.load();
        for s in &snap.sets {
            for d in &s.destinations {
                if d.flags().has(crate::list::Flags::NO_PROBE) || d.state() == State::Disabled {
                    continue;
                }
                let want = match mode {
                    ProbeMode::All => true,
                    ProbeMode::Flagged | ProbeMode::FlaggedContinuous => d.is_probing(),
                    ProbeMode::OnlyInactive => matches!(d.state(), State::Inactive | State::Trying),
                };
                if want {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set_of(weights: &[u32]) -> DestinationSet {
        let text: String = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                format!(
                    "1 sip:10.0.{}.{}:5060 0 0 weight={w}\n",
                    i / 200,
                    i % 200 + 1
                )
            })
            .collect();
        let d = Dispatcher::new(DestinationList::parse_kamailio(&text).unwrap());
        let snap = d.snapshot();
        let s = snap.set(1).unwrap();
        DestinationSet {
            id: 1,
            destinations: s.destinations.clone(),
            meta: s.meta.clone(),
            main: s.main,
            weighted: Vec::new(),
            groups: s.groups,
            uniform_weight: s.uniform_weight,
            all_same_priority: s.all_same_priority,
            counter: AtomicU64::new(0),
            slots: s.slots.clone(),
        }
    }

    fn assert_scan_matches_parser(uri: &str) -> Result<(), TestCaseError> {
        for user_only in [false, true] {
            if let Some(h) = uri_key_hash_parsed(uri.as_bytes(), user_only) {
                prop_assert_eq!(uri_key_hash(uri.as_bytes(), user_only), h, "{}", uri);
            }
        }
        Ok(())
    }

    #[test]
    fn the_sip_scheme_is_recognised_in_any_case_and_nothing_else_is() {
        for (b, want) in [
            (&b"sip:a"[..], Some((4, 5060))),
            (b"SiP:a", Some((4, 5060))),
            (b"sips:a", Some((5, 5061))),
            (b"SIPS:a", Some((5, 5061))),
            (b"sip:", None),
            (b"sips:", None),
            (b"sip\x1aa", None),
            (b"Sip\x1aa", None),
            (b"sips\x1aa", None),
            (b"sipz:a", None),
            (b"tel:+1", None),
            (b"si", None),
            (b"\x13\x09\x10:a", None),
        ] {
            assert_eq!(sip_scheme(b), want, "{:?}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn the_uri_key_scan_matches_the_parser_on_typical_uris() {
        let mut parsed = 0;
        for u in [
            "sip:alice@atlanta.example.com",
            "<sip:alice@atlanta.example.com:5060;transport=tcp>",
            "\"Bob\" <sips:bob:secret@biloxi.example.com:5061;lr?subject=x>",
            "sip:bob@192.0.2.4:5070",
            "sip:[2001:db8::10]:5070;maddr=x",
            "sip:user@[::1]",
            "SIP:Alice@Example.COM:5080",
            "sip:example.com",
            "sip:example.com:5062;lr",
            "sip:%61lice@example.com",
            "sip:a;b=c@example.com",
            "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        ] {
            if uri_key_hash_parsed(u.as_bytes(), false).is_some() {
                parsed += 1;
            }
            assert_scan_matches_parser(u).unwrap();
        }
        assert!(parsed >= 11, "the examples parse ({parsed})");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Wherever the parser accepts a SIP URI, the scan finds the same user, host and
        /// port.
        #[test]
        fn the_uri_key_scan_matches_the_parser(
            scheme in "(sip|sips|SIP|Sips):",
            user in prop::option::of("[a-zA-Z0-9%+;?&=$,/_.!~*'()-]{0,12}(:[a-z0-9%]{0,6})?@"),
            host in "([a-zA-Z0-9-]{1,10}(\\.[a-zA-Z0-9-]{1,8}){0,3}|[0-9]{1,3}(\\.[0-9]{1,3}){3}|\\[[0-9a-f:.]{2,20}\\])",
            port in prop::option::of(":[0-9]{0,6}"),
            tail in "(;[a-z=@:%0-9-]{0,8}){0,3}(\\?[a-z=@&%0-9]{0,10})?",
            angle in any::<bool>(),
        ) {
            let uri = format!("{scheme}{}{host}{}{tail}", user.unwrap_or_default(), port.unwrap_or_default());
            let uri = if angle { format!("\"x\" <{uri}>;tag=1") } else { uri };
            assert_scan_matches_parser(&uri)?;
        }

        /// Arbitrary bytes after the scheme: the scan never panics, and agrees with the
        /// parser whenever the parser accepts.
        #[test]
        fn the_uri_key_scan_agrees_on_arbitrary_text(rest in "[ -~]{0,40}") {
            for scheme in ["sip:", "sips:"] {
                let uri = format!("{scheme}{rest}");
                let _ = uri_key_hash(uri.as_bytes(), false);
                assert_scan_matches_parser(&uri)?;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The slot table is a cache of the slot's scored rendezvous order: through the
        /// table or scored, every key gets the same list, whatever the health of the
        /// destinations and the limit (also past the table's width).
        #[test]
        fn the_slot_table_gives_the_scored_order_of_the_slot(
            weights in prop::collection::vec(1u32..4, 1..20),
            down in prop::collection::vec(any::<bool>(), 20),
            keys in prop::collection::vec(any::<u64>(), 1..50),
            limit in 0usize..22,
        ) {
            let s = set_of(&weights);
            prop_assert!(s.slots.is_some());
            let now = Instant::now();
            for (d, &x) in s.destinations.iter().zip(&down) {
                if x {
                    d.set_state(State::Inactive);
                }
            }
            let cx = Ctx { s: &s, now, limit: if limit == 0 { usize::MAX } else { limit } };
            let (mut a, mut b) = (Selection::default(), Selection::default());
            for kh in keys {
                a.clear();
                b.clear();
                cx.rendezvous(&mut a, kh);
                cx.rendezvous_scored(&mut b, kh >> SLOT_SHIFT);
                // Positions in the set's destinations.
                prop_assert_eq!(&a.list, &b.list);
            }
        }
    }

    #[test]
    fn a_reload_that_keeps_the_ranking_keeps_the_table() {
        let list = |w: u32| {
            DestinationList::parse_kamailio(&format!(
                "1 sip:a 0 0 weight=1\n1 sip:b 0 0 weight={w}\n2 sip:c\n"
            ))
            .unwrap()
        };
        let d = Dispatcher::new(list(2));
        let t = |d: &Dispatcher, set| d.snapshot().set(set).unwrap().slots.clone().unwrap();
        let (one, two) = (t(&d, 1), t(&d, 2));
        d.reload(list(2));
        assert!(Arc::ptr_eq(&one, &t(&d, 1)) && Arc::ptr_eq(&two, &t(&d, 2)));
        d.reload(list(3));
        assert!(!Arc::ptr_eq(&one, &t(&d, 1)), "a new weight, a new table");
        assert!(Arc::ptr_eq(&two, &t(&d, 2)));
        let exact = Dispatcher::with_options(
            list(2),
            DispatcherOptions {
                hash_slots: false,
                ..DispatcherOptions::default()
            },
        );
        assert!(exact.snapshot().set(1).unwrap().slots.is_none());
    }

    #[test]
    fn the_rendezvous_logarithm_matches_libm_and_stays_positive() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut worst = 0f64;
        let extremes = [
            0u64,
            1,
            1 << 11,
            u64::MAX,
            u64::MAX - (1 << 11),
            1 << 63,
            (1 << 63) - 1,
        ];
        for i in 0..200_000u64 {
            let bits = if (i as usize) < extremes.len() {
                extremes[i as usize]
            } else {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Every binade: shift the top bits away now and then.
                x >> (i % 60)
            };
            let ours = neg_ln_unit(bits);
            let libm = -unit(bits).ln();
            assert!(ours > 0.0, "bits {bits:#x}");
            worst = worst.max(((ours - libm) / libm).abs());
        }
        assert!(worst < 1e-10, "worst relative error {worst}");
    }

    #[test]
    fn the_rendezvous_logarithm_is_pinned() {
        // The same bits on every platform: these values decide which destination a key
        // goes to, across instances and restarts.
        for (bits, want) in [
            (0u64, 0x40425e4f7b2737fau64),
            (u64::MAX, 0x3ca0000000000000),
            (1 << 63, 0x3fe62e42fefa39ed),
            (0x0123_4567_89ab_cdef, 0x4015aa16394d4834),
        ] {
            let got = neg_ln_unit(bits);
            assert_eq!(
                got.to_bits(),
                want,
                "bits {bits:#x}: {got} = {:#x}",
                got.to_bits()
            );
        }
    }
}
