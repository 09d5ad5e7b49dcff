//! The selection algorithms, by Kamailio number and by name.

use std::fmt;
use std::str::FromStr;

/// A selection algorithm. `FromStr` accepts the Kamailio number (`"4"`) or the name
/// (`"round-robin"`); [`Algorithm::number`] and [`Algorithm::name`] give them back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// 0: rendezvous hash of the Call-ID.
    CallIdHash,
    /// 1: rendezvous hash of the From URI.
    FromUriHash,
    /// 2: rendezvous hash of the To URI.
    ToUriHash,
    /// 3: rendezvous hash of the Request-URI.
    RequestUriHash,
    /// 4: round robin.
    RoundRobin,
    /// 5: rendezvous hash of the authentication username (round robin without one).
    AuthUsernameHash,
    /// 6: random.
    Random,
    /// 7: rendezvous hash of a key the caller supplies.
    KeyHash,
    /// 8: priority order (serial failover).
    Priority,
    /// 9: smooth weighted round robin.
    Weight,
    /// 10: call load (fewest active calls, honouring `maxload` and `duid`).
    CallLoad,
    /// 11: relative weight (`rweight` scaled by availability, `cc` congestion control).
    RelativeWeight,
    /// 12: parallel (every destination).
    Parallel,
    /// 13: latency (lowest smoothed response time); also "least response time".
    Latency,
    /// 14: round robin when every destination has the same priority above 0, else
    /// priority order.
    PriorityRoundRobin,
    /// 15: SRV-style: lowest priority value first, weighted within a priority.
    Srv,
    /// 64: round robin with RFC 7339 overload control.
    OverloadRoundRobin,
    /// Least connections (fewest active calls).
    LeastConnections,
    /// Weighted least connections (active calls ÷ weight).
    WeightedLeastConnections,
    /// Observed: least connections corrected by each destination's failure history.
    Observed,
    /// Predictive: observed, favouring destinations whose response time improves.
    Predictive,
    /// Even-size task queue: fewest outstanding transactions.
    EvenTaskQueue,
    /// Autonomous queue: least loaded below `maxload`; "queue" when all are full.
    AutonomousQueue,
    /// Least bandwidth: fewest bytes forwarded in the last 10 s.
    LeastBandwidth,
    /// Sticky session: affinity by Call-ID or registration AOR, falling back to hashing.
    Sticky,
}

const TABLE: &[(Algorithm, Option<u32>, &str)] = &[
    (Algorithm::CallIdHash, Some(0), "call-id-hash"),
    (Algorithm::FromUriHash, Some(1), "from-uri-hash"),
    (Algorithm::ToUriHash, Some(2), "to-uri-hash"),
    (Algorithm::RequestUriHash, Some(3), "request-uri-hash"),
    (Algorithm::RoundRobin, Some(4), "round-robin"),
    (Algorithm::AuthUsernameHash, Some(5), "auth-username-hash"),
    (Algorithm::Random, Some(6), "random"),
    (Algorithm::KeyHash, Some(7), "key-hash"),
    (Algorithm::Priority, Some(8), "priority"),
    (Algorithm::Weight, Some(9), "weight"),
    (Algorithm::CallLoad, Some(10), "call-load"),
    (Algorithm::RelativeWeight, Some(11), "relative-weight"),
    (Algorithm::Parallel, Some(12), "parallel"),
    (Algorithm::Latency, Some(13), "latency"),
    (
        Algorithm::PriorityRoundRobin,
        Some(14),
        "priority-round-robin",
    ),
    (Algorithm::Srv, Some(15), "srv"),
    (
        Algorithm::OverloadRoundRobin,
        Some(64),
        "overload-round-robin",
    ),
    (Algorithm::LeastConnections, None, "least-connections"),
    (
        Algorithm::WeightedLeastConnections,
        None,
        "weighted-least-connections",
    ),
    (Algorithm::Observed, None, "observed"),
    (Algorithm::Predictive, None, "predictive"),
    (Algorithm::EvenTaskQueue, None, "even-task-queue"),
    (Algorithm::AutonomousQueue, None, "autonomous-queue"),
    (Algorithm::LeastBandwidth, None, "least-bandwidth"),
    (Algorithm::Sticky, None, "sticky"),
];

/// Other accepted spellings.
const ALIASES: &[(&str, Algorithm)] = &[
    ("least-response-time", Algorithm::Latency),
    ("rr", Algorithm::RoundRobin),
    ("hash", Algorithm::CallIdHash),
    ("weighted-round-robin", Algorithm::Weight),
    ("least-conn", Algorithm::LeastConnections),
    ("sticky-session", Algorithm::Sticky),
    ("least-time", Algorithm::Latency),
];

/// The fields of a [`SelectKey`](crate::SelectKey) beyond the Call-ID, the Request-URI
/// and the custom key that an algorithm reads: a caller may leave the others empty and
/// skip parsing the headers they come from (the selection is the same).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyFields {
    /// `from_uri` (the From header's URI).
    pub from_uri: bool,
    /// `to_uri`, and `aor` (a REGISTER's To URI).
    pub to_uri: bool,
    /// `auth_username` (from Authorization or Proxy-Authorization).
    pub auth_username: bool,
}

impl Algorithm {
    /// What this algorithm reads of a [`SelectKey`](crate::SelectKey).
    pub fn key_fields(self) -> KeyFields {
        KeyFields {
            from_uri: self == Algorithm::FromUriHash,
            to_uri: matches!(self, Algorithm::ToUriHash | Algorithm::Sticky),
            auth_username: self == Algorithm::AuthUsernameHash,
        }
    }

    /// Every algorithm.
    pub fn all() -> impl Iterator<Item = Algorithm> {
        TABLE.iter().map(|(a, _, _)| *a)
    }

    /// Kamailio's `ds_select_dst` number, where it has one.
    pub fn number(self) -> Option<u32> {
        TABLE
            .iter()
            .find(|(a, _, _)| *a == self)
            .and_then(|(_, n, _)| *n)
    }

    /// The name.
    pub fn name(self) -> &'static str {
        TABLE
            .iter()
            .find(|(a, _, _)| *a == self)
            .map_or("unknown", |(_, _, n)| n)
    }

    /// True for the hash-based algorithms (stable per key across restarts and instances).
    pub fn is_hash(self) -> bool {
        matches!(
            self,
            Algorithm::CallIdHash
                | Algorithm::FromUriHash
                | Algorithm::ToUriHash
                | Algorithm::RequestUriHash
                | Algorithm::AuthUsernameHash
                | Algorithm::KeyHash
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An algorithm name or number that does not exist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm `{0}` (a Kamailio number 0-15 or 64, or a name such as round-robin)")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Algorithm, UnknownAlgorithm> {
        let t = s.trim().to_ascii_lowercase().replace('_', "-");
        if let Ok(n) = t.parse::<u32>() {
            return TABLE
                .iter()
                .find(|(_, num, _)| *num == Some(n))
                .map(|(a, _, _)| *a)
                .ok_or_else(|| UnknownAlgorithm(s.to_string()));
        }
        TABLE
            .iter()
            .find(|(_, _, name)| *name == t)
            .map(|(a, _, _)| *a)
            .or_else(|| ALIASES.iter().find(|(n, _)| *n == t).map(|(_, a)| *a))
            .ok_or_else(|| UnknownAlgorithm(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_by_number_and_name() {
        for a in Algorithm::all() {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
            if let Some(n) = a.number() {
                assert_eq!(n.to_string().parse::<Algorithm>(), Ok(a));
            }
        }
        assert_eq!("4".parse::<Algorithm>(), Ok(Algorithm::RoundRobin));
        assert_eq!(
            "Round_Robin".parse::<Algorithm>(),
            Ok(Algorithm::RoundRobin)
        );
        assert_eq!(
            "least-response-time".parse::<Algorithm>(),
            Ok(Algorithm::Latency)
        );
        assert!("16".parse::<Algorithm>().is_err());
        assert!("-1".parse::<Algorithm>().is_err());
        assert!("fastest".parse::<Algorithm>().is_err());
        let numbered: Vec<u32> = Algorithm::all().filter_map(Algorithm::number).collect();
        assert_eq!(
            numbered,
            vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 64]
        );
    }
}
