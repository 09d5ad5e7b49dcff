//! # sip-dispatch
//!
//! The balancing brain of sip-lb, as a pure crate: destination sets, every selection
//! algorithm of Kamailio's `dispatcher` module plus the classic load-balancing methods,
//! health states and load counters. No I/O, no clock (time is passed in as `Instant`), no
//! async runtime; shared by every worker thread as `Arc<Dispatcher>` (`&self` + atomics,
//! the sets in an atomically swapped snapshot — no global lock).
//!
//! ```
//! use std::time::Instant;
//! use sip_dispatch::{Algorithm, DestinationList, Dispatcher, SelectKey, SelectOutcome, Selection};
//!
//! let list = DestinationList::parse_kamailio(
//!     "1 sip:10.0.0.1:5060\n1 sip:10.0.0.2:5060\n1 sip:10.0.0.3:5060\n",
//! ).unwrap();
//! let d = Dispatcher::new(list);
//! let mut sel = Selection::default();
//! let key = SelectKey { call_id: b"a84b4c76e66710", ..SelectKey::default() };
//! let now = Instant::now();
//! // Call-ID hashing: the same call always lands on the same destination...
//! assert_eq!(d.select(1, Algorithm::CallIdHash, &key, now, 0, &mut sel), SelectOutcome::Selected);
//! let first = sel.first().unwrap().uri().to_string();
//! d.select(1, "0".parse().unwrap(), &key, now, 0, &mut sel);
//! assert_eq!(sel.first().unwrap().uri(), first);
//! // ...and the rest of the list is the failover order.
//! assert_eq!(sel.len(), 3);
//! ```
//!
//! ## The algorithms
//!
//! Each [`Algorithm`] has a name and, where Kamailio's `ds_select_dst` has one, its
//! number; `"4".parse()` and `"round-robin".parse()` give the same algorithm. A selection
//! lists only usable destinations (active or trying, not marked down by a 503 with
//! Retry-After), best first, each once, at most `limit`; the tail is the failover order.
//! Unlike Kamailio, which keeps the set in priority order for every algorithm, the sets
//! keep their list order; only the algorithms that use priority look at it.
//!
//! **0 `call-id-hash`, 1 `from-uri-hash`, 2 `to-uri-hash`, 3 `request-uri-hash`,
//! 5 `auth-username-hash`, 7 `key-hash`.** Rendezvous (highest random weight) hashing:
//! the key is hashed with xxh3-64 and the fixed seed [`HASH_SEED`]; each destination
//! scores `xxh3_64(key_hash as 8 little-endian bytes, seed = xxh3_64(uri, HASH_SEED))`,
//! and the highest score wins, the others follow in score order. With unequal `weight`s
//! the score is `-weight / ln(u)` (`u` = the score's top 52 bits as a number in (0, 1),
//! `ln` computed by the crate itself from IEEE 754 arithmetic alone, so that every
//! platform ranks alike), so a destination's share is proportional to its weight. The same key reaches the same
//! destination across restarts and instances, and a destination that fails or is removed
//! moves only its own keys. Kamailio takes the hash modulo the set size instead, which
//! moves most keys when the set changes. By default
//! ([`DispatcherOptions::hash_slots`]) the key's hash picks one of [`HASH_SLOTS`] slots
//! and the set's table, built with the snapshot, holds each slot's rendezvous order, so a
//! selection costs the same for 4 or 64 destinations; shares then follow the weights
//! within about 1/√(slots per destination). For 1-3 the key is, as in Kamailio, the URI's
//! user, host, and port when it is not the default (only the user with
//! [`DispatcherOptions::hash_user_only`], Kamailio `ds_flags` 1); 5 falls back to round
//! robin without credentials, as Kamailio does; 7 hashes [`SelectKey::custom`] (Kamailio:
//! the `hash_pvar` string), or the Call-ID when there is none.
//!
//! **4 `round-robin`.** Rotation over the set by an atomic counter per set; an unusable
//! destination's turn passes to the next one, as in Kamailio. Exactly even over each
//! cycle when every destination is usable.
//!
//! **6 `random`.** A uniformly random usable destination first (a per-thread splitmix64
//! generator, no lock), the others in rotation order after it.
//!
//! **8 `priority`.** Highest `priority` first, list order among equals: serial failover,
//! as Kamailio.
//!
//! **9 `weight`.** Smooth weighted round robin: over each cycle of Σweight/gcd picks,
//! every destination is first exactly weight/gcd times, interleaved (weights 5,1,1 give
//! a a b a c a a, not a a a a a b c). Kamailio fills a 100-slot table from percentages
//! and accepts weights 1-100; here any positive weight works (a cycle longer than 65 536
//! picks is scaled down). Alternates are the other destinations, heaviest first.
//!
//! **10 `call-load`.** Fewest active calls first ([`Destination::call_started`] to
//! [`Destination::call_ended`]); destinations sharing a `duid` share their load;
//! destinations at `maxload` are left out. Ties rotate, so equal destinations share the
//! calls. Kamailio lists the rest in set order and counts calls through its own Call-ID
//! table; here the proxy reports starts and ends, and the counters are exact atomics
//! (tested under concurrency; no drift).
//!
//! **11 `relative-weight`.** A weighted random pick by `rweight` (else `weight`) among the
//! usable destinations only, so the shares are recomputed when a destination fails
//! (1/2/1 gives 25/50/25 %; without the third, 33/67 %). With `cc=1` the weight is
//! lowered by 1 per millisecond of congestion (short-term latency average minus the
//! long-term one), and when every destination is congested to 0, the pick is by the
//! inverse of congestion, as in Kamailio. Kamailio uses a 100-slot table; this is exact.
//!
//! **12 `parallel`.** Every usable destination (the proxy forks to all).
//!
//! **13 `latency`** (also `least-response-time`). Lowest smoothed response time first
//! (EWMA of request → final response, else of probe round trips; unknown counts as
//! fastest so new destinations are tried); ties rotate. Kamailio lowers priorities by
//! the probe latency and round-robins the best; here transaction latency is used too.
//!
//! **14 `priority-round-robin`.** Round robin when every destination has the same
//! priority above 0, else priority order (8), as Kamailio.
//!
//! **15 `srv`.** RFC 2782 style: among the usable destinations with the lowest priority
//! value, a weighted random pick by `weight`; the alternates follow by priority value,
//! then weight. As Kamailio's 15.
//!
//! **64 `overload-round-robin`.** Round robin that honours RFC 7339 overload control
//! advertised by each destination ([`Destination::overload_advertised`]): under
//! `oc-algo=loss` exactly `oc` of every 100 turns of the destination are withheld (spread
//! evenly); under `oc-algo=rate` no more than the rate is sent per second; until
//! `oc-validity` ends. Withheld destinations move to the end of the failover list.
//! Kamailio skips by a random draw against the `ocrate` set by its RPC.
//!
//! **`least-connections`.** Fewest active calls; `maxload` not applied.
//!
//! **`weighted-least-connections`.** Fewest active calls per unit of `weight`.
//!
//! **`observed`.** Least connections corrected by recent history: `(calls + 1) × (1 + 4 ×
//! recent failure rate)`, the rate an EWMA over about the last 8 outcomes (timeouts and
//! counted 5xx against answers).
//!
//! **`predictive`.** Observed, multiplied by the latency trend (short-term over long-term
//! average): destinations whose response time improves are favoured.
//!
//! **`even-task-queue`.** Fewest outstanding transactions (sent, not yet answered: the
//! requests queued at the destination).
//!
//! **`autonomous-queue`.** Call load below `maxload`; when every usable destination is at
//! `maxload` the answer is [`SelectOutcome::Queue`]: the proxy holds the request in a
//! [`WaitQueue`] (bounded, with deadlines) and selects again when a call ends.
//!
//! **`least-bandwidth`.** Fewest bytes forwarded in the last 10 s (per-second buckets).
//!
//! **`sticky`.** An affinity table from the registration AOR ([`SelectKey::aor`]) or the
//! Call-ID to a destination, with expiry ([`DispatcherOptions::sticky_ttl`], refreshed
//! on use, bounded by [`DispatcherOptions::sticky_capacity`]). The table is sharded: 32
//! `Mutex<HashMap>` chosen by the key's hash, each locked only for one lookup or insert,
//! so workers rarely meet and no process-wide lock exists. A key without an entry, or
//! whose destination is unusable or was removed by a reload, falls back to rendezvous
//! hashing, so stickiness mostly survives a restart too.
//!
//! ## Backup destination
//!
//! With [`DispatcherOptions::use_default`] (Kamailio `ds_use_default`), the last
//! destination of each set is a backup: never chosen by the algorithm, appended to every
//! failover list, and first only when no other destination is usable.
//!
//! ## Health
//!
//! States as in Kamailio ([`State`]): active, trying, inactive, disabled, plus the probing
//! flag ([`Destination::is_probing`]), set by flag 8 in the list and by any failure.
//! Probes ([`Destination::probe_result`], thresholds in [`HealthConfig`]): a failure makes
//! an active destination trying, [`HealthConfig::inactive_threshold`] consecutive ones
//! make it inactive; a success makes a trying destination active, and
//! [`HealthConfig::active_threshold`] consecutive ones an inactive one. Traffic
//! ([`PassiveHealth`]): timeouts and, when enabled, 408 and 5xx other than 503 count the
//! same way toward `failure_threshold`; a 503 with Retry-After takes a destination out of
//! selection for that time ([`Destination::mark_down_until`]) without changing its state.
//! [`Dispatcher::probe_candidates`] lists what to probe per [`ProbeMode`] (Kamailio
//! `ds_probing_mode` 0-3); disabled destinations and flag 32 are never probed; the
//! admin sets states by hand with [`Destination::set_state`].
//!
//! ## Time, threads, allocation
//!
//! No function reads the clock: every time is an `Instant` passed in. All feedback
//! methods take `&self` and update atomics; [`Dispatcher::reload`] builds a new
//! snapshot and swaps it in (`arc-swap`), so readers never block. A [`Selection`] keeps
//! the snapshot it selected from and lists destinations as positions in it: while no
//! reload happens, selecting checks one atomic number and touches no reference count.
//! Selection into a warm [`Selection`] performs no heap allocation for sets of up to 64
//! destinations (the sticky algorithm's table grows when it learns a key).

#![warn(missing_docs)]

mod algorithm;
mod destination;
mod dispatcher;
mod list;
mod queue;

pub use algorithm::{Algorithm, KeyFields, UnknownAlgorithm};
pub use destination::{
    Destination, DestinationStats, HealthConfig, OverloadControl, PassiveHealth, State,
    StateChange, Target, UnknownState,
};
pub use dispatcher::{
    DestinationSet, Dispatcher, DispatcherOptions, HASH_SEED, HASH_SLOTS, ProbeMode, ReloadReport,
    SelectKey, SelectOutcome, Selection, Snapshot,
};
pub use list::{
    Attrs, BadSpec, BadUri, DestinationList, DestinationSpec, Flags, ListError, check_uri,
};
pub use queue::{QueueFull, WaitQueue};
