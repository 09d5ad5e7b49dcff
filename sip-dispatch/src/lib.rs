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
//! Each [`Algorithm`] has a name and, where Kamailio's `ds_select_dst` has one, its number.
//! A selection lists only usable destinations (active or trying, not marked down by a 503
//! with Retry-After), best first, each once; the tail is the failover order.
//!
//! - **0 `call-id-hash`, 1 `from-uri-hash`, 2 `to-uri-hash`, 3 `request-uri-hash`,
//!   5 `auth-username-hash`, 7 `key-hash`**: rendezvous (highest-random-weight) hashing with
//!   xxh3 and the fixed seed [`HASH_SEED`], weighted by `weight` (logarithmic method). The
//!   same key reaches the same destination across restarts and instances, and losing a
//!   destination moves only its own keys. Kamailio hashes modulo the set size, which moves
//!   most keys when a destination fails; 5 falls back to round robin without credentials,
//!   as Kamailio does; 7 hashes [`SelectKey::custom`] (Kamailio: a pseudo-variable).
//! - **4 `round-robin`**: rotation over the set, skipping unusable destinations; the
//!   counter is an atomic per set.
//! - **6 `random`**: a uniformly random first choice, the others in random order.
//! - **8 `priority`**: highest `priority` first, list order among equals (serial failover).
//! - **9 `weight`**: smooth weighted round robin: over each cycle of Σweight picks every
//!   destination appears exactly `weight` times, interleaved; Kamailio fills a 100-slot
//!   table from percentages instead.
//! - **10 `call-load`**: fewest active calls (a call counts from its 2xx to its BYE);
//!   destinations at `maxload` are skipped; destinations sharing a `duid` share their load.
//!   The counters are exact (every increment has its decrement), which Kamailio's
//!   dialog-based counting does not guarantee.
//! - **11 `relative-weight`**: weighted random by `rweight` (else `weight`), halved while
//!   trying, and with `cc=1` divided by how far latency rose above its long-term average.
//! - **12 `parallel`**: every usable destination (the proxy tries them in order).
//! - **13 `latency`** (also `least-response-time`): lowest smoothed response time first.
//! - **15 `srv`**: RFC 2782 style: lowest `priority` value first, weighted random within
//!   a priority.
//! - **64 `overload-round-robin`**: round robin that withholds from a destination the
//!   share of requests its RFC 7339 overload control asks for (loss percentage, or the
//!   excess over its advertised rate), moving it to the end of the failover list.
//! - **`least-connections`**: fewest active calls. **`weighted-least-connections`**: fewest
//!   active calls per unit of weight. **`observed`**: least connections scaled by each
//!   destination's failure history. **`predictive`**: observed, scaled by the trend of its
//!   response time (short-term over long-term average). **`even-task-queue`**: fewest
//!   outstanding transactions. **`autonomous-queue`**: least loaded below `maxload`; when
//!   every destination is full the answer is [`SelectOutcome::Queue`] and the caller holds
//!   the request in a [`WaitQueue`]. **`least-bandwidth`**: fewest bytes forwarded in the
//!   last 10 s. **`sticky`**: an affinity table (32 shards, expiry) from the registration
//!   AOR or Call-ID to a destination, falling back to rendezvous hashing so stickiness
//!   survives a restart.
//!
//! ## Health
//!
//! States as in Kamailio ([`State`]): active, trying, inactive, disabled, plus the probing
//! flag. A failure (probe failure, transaction timeout, 408, 5xx other than 503) makes an
//! active destination trying; [`HealthConfig::inactive_threshold`] consecutive failures
//! make it inactive; [`HealthConfig::active_threshold`] successful probes bring it back. A
//! 503 with Retry-After takes a destination out of selection for that time
//! ([`Destination::mark_down_until`]).

#![warn(missing_docs)]

mod algorithm;
mod destination;
mod dispatcher;
mod list;
mod queue;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use destination::{
    Destination, DestinationStats, HealthConfig, OverloadControl, PassiveHealth, State,
    StateChange, Target, UnknownState,
};
pub use dispatcher::{
    DestinationSet, Dispatcher, DispatcherOptions, HASH_SEED, ProbeMode, ReloadReport, SelectKey,
    SelectOutcome, Selection, Snapshot,
};
pub use list::{Attrs, DestinationList, DestinationSpec, Flags, ListError, check_uri};
pub use queue::{QueueFull, WaitQueue};
