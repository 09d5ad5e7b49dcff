//! Where the stateless proxy sent recent requests, so that a retransmitted INVITE, its
//! CANCEL and the ACK for a non-2xx response follow the INVITE to the same destination.
//!
//! A request is remembered for 64·T1 (timer B: the longest its retransmissions, CANCEL
//! and ACK can come), under the hash of its branch and sent-by. A direct-mapped table
//! of a few thousand slots forgets too early: at 4000 calls/s a slot is overwritten
//! within about two seconds, and a request whose entry is gone is balanced again, to
//! another destination. Here entries live their whole time: a hash map with the entries
//! in a queue in the order they expire (all live the same time, so insertion order is
//! expiry order), expired ones dropped from its front, by the requests that come and by
//! the proxy's once-a-second sweep. Memory follows the load (93 bytes per request of the
//! last 64·T1, spare room included, by the memory bench) up to a bound, past which the
//! oldest go first.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Instant;

use sip_dispatch::Destination;

use crate::proxy::PassThrough;

/// At most this many requests are remembered (8 000 calls/s for 32 s); past it, the
/// oldest entries go before their time.
pub(crate) const MAX_ENTRIES: usize = 1 << 18;

/// The destinations recent requests went to, by request hash.
#[derive(Debug)]
pub(crate) struct RecentHops {
    by_hash: HashMap<u64, (Arc<Destination>, Instant), BuildHasherDefault<PassThrough>>,
    /// `(hash, expiry)` in the order the entries were made, which is expiry order.
    order: VecDeque<(u64, Instant)>,
    max: usize,
}

impl Default for RecentHops {
    fn default() -> Self {
        RecentHops::with_max(MAX_ENTRIES)
    }
}

impl RecentHops {
    /// An empty memory holding at most `max` entries.
    pub(crate) fn with_max(max: usize) -> Self {
        RecentHops {
            by_hash: HashMap::default(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    /// Where the request with this hash went, if that was less than its lifetime ago.
    pub(crate) fn get(&mut self, hash: u64, now: Instant) -> Option<Arc<Destination>> {
        self.expire(now);
        self.by_hash
            .get(&hash)
            .filter(|(_, expires)| *expires > now)
            .map(|(d, _)| d.clone())
    }

    /// Remembers that the request with this hash went to `destination`, until `expires`
    /// (which is never earlier than that of the entries made before).
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        destination: Arc<Destination>,
        expires: Instant,
        now: Instant,
    ) {
        self.expire(now);
        while self.by_hash.len() >= self.max {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.forget(oldest);
        }
        self.by_hash.insert(hash, (destination, expires));
        self.order.push_back((hash, expires));
    }

    /// Number of requests remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Drops the entries whose time is up.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(&front) = self.order.front()
            && front.1 <= now
        {
            self.order.pop_front();
            self.forget(front);
        }
        // After a burst, give the room back (the map and queue keep their capacity).
        let cap = self.by_hash.capacity();
        if cap > 4096 && self.by_hash.len() * 4 < cap {
            self.by_hash.shrink_to(self.by_hash.len() * 2);
            self.order.shrink_to(self.order.len() * 2);
        }
    }

    /// Drops the entry a queue element stands for, unless the hash was remembered again
    /// since (then the map holds a later expiry and a later queue element).
    fn forget(&mut self, (hash, expires): (u64, Instant)) {
        if self.by_hash.get(&hash).is_some_and(|(_, e)| *e == expires) {
            self.by_hash.remove(&hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_dispatch::DestinationList;
    use std::time::Duration;

    fn destinations() -> Vec<Arc<Destination>> {
        let list = DestinationList::parse_kamailio("1 sip:127.0.0.1:5080\n1 sip:127.0.0.1:5081\n")
            .unwrap();
        let d = sip_dispatch::Dispatcher::new(list);
        d.snapshot().sets()[0].destinations().to_vec()
    }

    #[test]
    fn an_entry_lives_its_whole_time_however_many_come_after_it() {
        let ds = destinations();
        let t0 = Instant::now();
        let life = Duration::from_secs(32);
        let mut r = RecentHops::default();
        // 4000 a second for 30 s: every one is still there at the end.
        let n = 120_000u64;
        for i in 0..n {
            let now = t0 + Duration::from_micros(i * 250);
            r.insert(i, ds[(i % 2) as usize].clone(), now + life, now);
        }
        let end = t0 + Duration::from_secs(30);
        for i in (0..n).step_by(997) {
            let d = r.get(i, end).expect("remembered");
            assert!(Arc::ptr_eq(&d, &ds[(i % 2) as usize]), "{i}");
        }
        // Past its lifetime an entry is gone, and the memory is given back.
        assert!(r.get(0, t0 + life).is_none());
        assert!(r.get(n - 1, end + life).is_none());
        assert_eq!(r.len(), 0);
        assert!(r.by_hash.capacity() <= 4096 * 2, "{}", r.by_hash.capacity());
    }

    #[test]
    fn remembered_again_it_lives_from_then_and_the_bound_drops_the_oldest() {
        let ds = destinations();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut r = RecentHops::with_max(3);
        r.insert(1, ds[0].clone(), t0 + s(10), t0);
        r.insert(1, ds[1].clone(), t0 + s(15), t0 + s(5));
        // The first element of the queue expires at 10 s but the entry was made again.
        let d = r.get(1, t0 + s(12)).expect("the later entry");
        assert!(Arc::ptr_eq(&d, &ds[1]));
        r.insert(2, ds[0].clone(), t0 + s(16), t0 + s(12));
        r.insert(3, ds[0].clone(), t0 + s(17), t0 + s(12));
        r.insert(4, ds[0].clone(), t0 + s(18), t0 + s(12));
        assert_eq!(r.len(), 3);
        assert!(
            r.get(1, t0 + s(12)).is_none(),
            "the oldest went for the bound"
        );
        assert!(r.get(4, t0 + s(12)).is_some());
    }
}
