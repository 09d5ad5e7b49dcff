//! The proxy's transaction timers: a timing wheel of [`TICK`] slots.
//!
//! A binary heap of every armed timer costs a dozen cache misses per timer once it holds
//! the hundreds of thousands that a busy proxy keeps (each transaction arms timers that
//! lie 32 s ahead), and perf showed its sift-down as the proxy's hottest code under load.
//! The wheel appends a timer to the vector of its slot and expires slots in order, so
//! arming and expiring are O(1) and touch memory sequentially; a slot's vector is freed
//! when the slot has expired, so the wheel holds room only for the timers it holds. A timer fires at the
//! first [`pop_due`](TimerWheel::pop_due) at or after its slot's end, never before its
//! deadline, at most one tick late.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Width of one slot.
pub(crate) const TICK: Duration = Duration::from_millis(4);
/// [`TICK`] in nanoseconds.
const TICK_NANOS: u64 = TICK.as_nanos() as u64;
/// Most slots the wheel grows to (about 4.4 minutes ahead); a timer further out waits in
/// the last slot and is re-armed from there, so it still never fires early.
const MAX_SLOTS: u64 = 1 << 16;
/// Expired slots' vectors kept for reuse, at most this many...
const MAX_SPARE: usize = 64;
/// ...and only those with room for at most this many timers.
const MAX_SPARE_ROOM: usize = 128;

/// Timers carrying a `T` each, expired in slot order.
#[derive(Debug)]
pub(crate) struct TimerWheel<T> {
    /// Time of tick 0: the `now` of the first [`arm`](Self::arm) or
    /// [`arm_in`](Self::arm_in).
    epoch: Option<Instant>,
    /// The tick of `slots[0]`.
    base: u64,
    /// Entries `(tick, value)`; slot `i` holds ticks `base + i` (or later, when clamped).
    slots: VecDeque<Vec<(u64, T)>>,
    len: usize,
    /// The lowest tick with an entry, when there is one.
    next: Option<u64>,
    /// Empty vectors of expired slots, reused for slots that get their first timer (a
    /// slot is filled and expired a few hundred times a second; without these, each
    /// time costs an allocation, a regrowth or two and a free).
    spare: Vec<Vec<(u64, T)>>,
    /// The last `now` of [`arm_in`](Self::arm_in), when not before `epoch`, and its
    /// nanoseconds since `epoch`: a message usually arms two timers at one `now`.
    last_now: Option<(Instant, u64)>,
    /// The last `now` of [`pop_due`](Self::pop_due) and the last tick due then.
    last_due: Option<(Instant, u64)>,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        TimerWheel {
            epoch: None,
            base: 0,
            slots: VecDeque::new(),
            len: 0,
            next: None,
            spare: Vec::new(),
            last_now: None,
            last_due: None,
        }
    }
}

impl<T> TimerWheel<T> {
    /// Timers armed and not yet expired.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Drops every timer.
    pub(crate) fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = Vec::new());
        self.spare = Vec::new();
        self.len = 0;
        self.next = None;
    }

    /// Nanoseconds from `epoch` to `at` (0 before it, saturating after 584 years), in 64
    /// bits: `Duration::as_nanos` is 128 bits wide, and dividing that is a call into a
    /// software division on every arm and every expiry check.
    fn nanos_since(epoch: Instant, at: Instant) -> u64 {
        Self::nanos(at.saturating_duration_since(epoch))
    }

    /// The tick whose end is at or after `at` (ceiling), from `epoch`.
    fn tick_of(epoch: Instant, at: Instant) -> u64 {
        Self::nanos_since(epoch, at).div_ceil(TICK_NANOS)
    }

    /// Arms a timer for `at` (`now` is the caller's current time).
    pub(crate) fn arm(&mut self, now: Instant, at: Instant, value: T) {
        let epoch = *self.epoch.get_or_insert(now);
        if self.len == 0 {
            // Nothing pending: restart the wheel at the present instead of walking the
            // empty slots between the last expiry and now.
            self.base = self.base.max(Self::tick_of(epoch, now).saturating_sub(1));
            // The last expiry may have left `next` at its own slot (it is brought up to
            // date lazily); nothing is pending, so there is no next slot.
            self.next = None;
        }
        self.insert(Self::tick_of(epoch, at), value);
    }

    /// Arms a timer `after` from `now`: the same as [`arm`](Self::arm) with `now + after`,
    /// without the subtraction of `epoch` from `now + after` (the one from `now` is
    /// remembered for the next timer armed at the same `now`).
    pub(crate) fn arm_in(&mut self, now: Instant, after: Duration, value: T) {
        let epoch = *self.epoch.get_or_insert(now);
        let since = match self.last_now {
            Some((t, n)) if t == now => n,
            // Before the epoch `nanos_since` saturates at 0, and `now + after` would not
            // be `after` past that.
            _ if now < epoch => return self.arm(now, now + after, value),
            _ => {
                let n = Self::nanos_since(epoch, now);
                self.last_now = Some((now, n));
                n
            }
        };
        if self.len == 0 {
            // As in `arm`.
            self.base = self.base.max(since.div_ceil(TICK_NANOS).saturating_sub(1));
            self.next = None;
        }
        // `now + after - epoch` is `(now - epoch) + after`, exactly.
        let at = since.saturating_add(Self::nanos(after));
        self.insert(at.div_ceil(TICK_NANOS), value);
    }

    /// `d` in nanoseconds, saturating (like [`Self::nanos_since`]).
    fn nanos(d: Duration) -> u64 {
        d.as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(d.subsec_nanos()))
    }

    fn insert(&mut self, tick: u64, value: T) {
        let tick = tick.max(self.base);
        let idx = (tick - self.base).min(MAX_SLOTS - 1) as usize;
        if self.slots.len() <= idx {
            self.slots.resize_with(idx + 1, Vec::new);
        }
        let slot = &mut self.slots[idx];
        if slot.capacity() == 0
            && let Some(v) = self.spare.pop()
        {
            *slot = v;
        }
        slot.push((tick, value));
        self.len += 1;
        let at_slot = self.base + idx as u64;
        self.next = Some(self.next.map_or(at_slot, |n| n.min(at_slot)));
    }

    /// When the earliest timer is due (the end of its slot).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        // In 64-bit nanoseconds: a 32-bit count of ticks runs out after 198 days of uptime,
        // and every deadline would then be in the past (a worker waking without pause).
        let epoch = self.epoch?;
        let at = Duration::from_nanos(self.next?.saturating_mul(TICK_NANOS));
        Some(
            epoch
                .checked_add(at)
                .unwrap_or(epoch + Duration::from_secs(u64::from(u32::MAX))),
        )
    }

    /// One timer whose deadline has passed at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        let epoch = self.epoch?;
        // Slots whose end is at or before now (worked out once for the several calls
        // that one `now` makes, each of which would otherwise subtract two `Instant`s).
        let due = match self.last_due {
            Some((t, d)) if t == now => d,
            _ => {
                let d = Self::nanos_since(epoch, now) / TICK_NANOS;
                self.last_due = Some((now, d));
                d
            }
        };
        while self.next.is_some_and(|n| n <= due) {
            let front = self.slots.front_mut()?;
            if let Some((tick, value)) = front.pop() {
                self.len -= 1;
                if tick <= due {
                    return Some(value);
                }
                // A clamped timer further out than the wheel: back to its own place.
                self.insert(tick, value);
                continue;
            }
            // The front slot is done: it becomes the last one. Its vector is not kept
            // there: kept, every slot of the wheel would in time hold room for the most
            // timers it ever had (tens of megabytes at 1000 calls/s). A few small ones
            // wait in `spare` for the next slots to fill.
            if let Some(v) = self.slots.pop_front()
                && v.capacity() <= MAX_SPARE_ROOM
                && self.spare.len() < MAX_SPARE
                && v.capacity() > 0
            {
                self.spare.push(v);
            }
            self.base += 1;
            self.slots.push_back(Vec::new());
            if self.len == 0 {
                self.next = None;
                break;
            }
            if self.next.is_some_and(|n| n < self.base) {
                let i = self.slots.iter().position(|s| !s.is_empty());
                self.next = i.map(|i| self.base + i as u64);
            }
            // The slots before `next` hold no timer (`next` is at or before the first
            // one), so the wheel passes them in one rotation instead of one slot per
            // turn: a wheel whose only timer is 3 minutes ahead (Timer C) crossed 45 000
            // slots one by one on the way. (They hold no room either, but for a slot
            // left behind when an idle wheel restarted at the present: it comes round
            // to the front again and gives its room back there.)
            if let Some(n) = self.next
                && n > self.base
                && n <= due
            {
                let k = (n - self.base) as usize;
                debug_assert!(self.slots.range(..k).all(Vec::is_empty));
                self.slots.rotate_left(k);
                self.base = n;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn expired_slots_hold_no_memory() {
        let t0 = Instant::now();
        let mut w = TimerWheel::default();
        for i in 0..10_000u64 {
            w.arm(t0, t0 + Duration::from_millis(i % 2000), i);
        }
        let held = |w: &TimerWheel<u64>| w.slots.iter().map(Vec::capacity).sum::<usize>();
        let spare = |w: &TimerWheel<u64>| w.spare.iter().map(Vec::capacity).sum::<usize>();
        assert!(held(&w) >= 10_000);
        let mut fired = 0;
        while w.pop_due(t0 + Duration::from_secs(3)).is_some() {
            fired += 1;
        }
        assert_eq!((fired, w.len(), held(&w)), (10_000, 0, 0));
        // What waits for reuse is bounded whatever the wheel held.
        assert!(spare(&w) > 0);
        assert!(spare(&w) <= MAX_SPARE * MAX_SPARE_ROOM);
        // Reused: arming again takes a spare vector instead of allocating.
        let before = w.spare.len();
        w.arm(t0 + Duration::from_secs(3), t0 + Duration::from_secs(4), 1);
        assert_eq!(w.spare.len(), before - 1);
    }

    #[test]
    fn fires_in_slot_order_never_early_at_most_a_tick_late() {
        let t0 = Instant::now();
        let mut w = TimerWheel::default();
        let ms = Duration::from_millis;
        for (i, d) in [500u64, 32_000, 1, 9, 5, 2000, 0].into_iter().enumerate() {
            w.arm(t0, t0 + ms(d), (i, d));
        }
        assert_eq!(w.next_deadline(), Some(t0));
        assert_eq!(w.pop_due(t0), Some((6, 0)));
        assert_eq!(
            w.pop_due(t0 + ms(3)),
            None,
            "1 ms is due at the end of its slot"
        );
        assert_eq!(w.next_deadline(), Some(t0 + TICK));
        let mut got: Vec<(usize, u64)> = Vec::new();
        let mut now = t0;
        while now <= t0 + ms(40_000) {
            while let Some(x) = w.pop_due(now) {
                assert!(t0 + ms(x.1) <= now, "{x:?} fired early at {:?}", now - t0);
                assert!(now - (t0 + ms(x.1)) <= TICK + ms(1), "{x:?} late");
                got.push(x);
            }
            now += ms(1);
        }
        let order: Vec<u64> = got.iter().map(|x| x.1).collect();
        assert_eq!(order, [1, 5, 9, 500, 2000, 32_000]);
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn deadlines_stay_exact_across_long_runs_of_empty_slots() {
        let t0 = Instant::now();
        let mut w = TimerWheel::default();
        let ms = Duration::from_millis;
        // Timer C alone, 3 minutes ahead, and two near ones.
        w.arm(t0, t0 + ms(180_000), "c");
        w.arm(t0, t0 + ms(12), "a");
        w.arm(t0, t0 + ms(500), "e");
        assert_eq!(w.pop_due(t0 + ms(12)), Some("a"));
        // Every slot is counted once through the rotation, so the deadlines stay exact.
        assert_eq!(w.pop_due(t0 + ms(499)), None);
        assert_eq!(w.pop_due(t0 + ms(500)), Some("e"));
        assert_eq!(w.pop_due(t0 + ms(179_999)), None);
        assert_eq!(w.next_deadline(), Some(t0 + ms(180_000)));
        assert_eq!(w.pop_due(t0 + ms(180_000)), Some("c"));
        assert_eq!(
            w.base,
            180_000 / 4,
            "the wheel went to the slot of the timer"
        );
        // Armed again after the jump: slot indices still mean their ticks.
        w.arm(t0 + ms(180_000), t0 + ms(180_040), "later");
        assert_eq!(w.pop_due(t0 + ms(180_039)), None);
        assert_eq!(w.pop_due(t0 + ms(180_040)), Some("later"));
    }

    #[test]
    fn a_timer_beyond_the_wheel_waits_and_still_never_fires_early() {
        let t0 = Instant::now();
        let mut w = TimerWheel::default();
        let far = TICK * (MAX_SLOTS as u32) * 3 + Duration::from_millis(7);
        w.arm(t0, t0 + far, "far");
        w.arm(t0, t0 + Duration::from_secs(1), "near");
        assert_eq!(w.pop_due(t0 + Duration::from_secs(1)), Some("near"));
        let mut now = t0 + Duration::from_secs(1);
        let step = Duration::from_millis(500);
        while now < t0 + far {
            assert_eq!(w.pop_due(now), None, "at {:?}", now - t0);
            now += step;
        }
        assert_eq!(w.pop_due(t0 + far + TICK), Some("far"));
    }

    #[test]
    fn an_idle_wheel_restarts_at_the_present_with_exact_deadlines() {
        // An hour, and 200 days (past 2^32 ticks of 4 ms since the wheel's epoch).
        for gap in [Duration::from_secs(3600), Duration::from_secs(200 * 86_400)] {
            let t0 = Instant::now();
            let mut w = TimerWheel::default();
            w.arm(t0, t0 + Duration::from_millis(10), 1);
            assert_eq!(w.pop_due(t0 + Duration::from_millis(20)), Some(1));
            // No walk over the slots in between, and exact again.
            let t1 = t0 + gap;
            let at = t1 + Duration::from_millis(100);
            w.arm(t1, at, 2);
            let next = w.next_deadline().expect("one timer armed");
            assert!(next >= at, "deadline early after {gap:?}");
            assert!(next < at + TICK, "deadline late after {gap:?}");
            assert_eq!(w.pop_due(at - Duration::from_millis(1)), None);
            assert_eq!(w.pop_due(next), Some(2));
        }
    }

    proptest! {
        /// `arm_in(now, d)` arms what `arm(now, now + d)` arms: two wheels fed the same
        /// timers, one each way, hold the same ticks and expire the same timers at every
        /// step (times repeat, as several timers are armed at one `now`; some lie before
        /// the first `now`).
        #[test]
        fn arming_after_a_duration_is_arming_at_now_plus_it(steps in prop::collection::vec((0u64..3, 0u64..2_000_000, 0u64..10, any::<bool>()), 1..200)) {
            let t0 = Instant::now() + Duration::from_secs(1);
            let (mut a, mut b) = (TimerWheel::default(), TimerWheel::default());
            let mut now = t0;
            for (k, &(advance, delay_us, back_ms, early)) in steps.iter().enumerate() {
                let at_now = if early { now - Duration::from_millis(back_ms) } else { now };
                let d = Duration::from_micros(delay_us);
                a.arm(at_now, at_now + d, k);
                b.arm_in(at_now, d, k);
                prop_assert_eq!(a.len, b.len);
                prop_assert_eq!(a.base, b.base);
                prop_assert_eq!(a.next, b.next);
                prop_assert!(a.slots.iter().eq(b.slots.iter()));
                now += Duration::from_millis(advance * 3);
                loop {
                    let (x, y) = (a.pop_due(now), b.pop_due(now));
                    prop_assert_eq!(x, y);
                    if x.is_none() {
                        break;
                    }
                }
            }
        }

        /// Against a sorted list: every timer fires, once, not before its deadline and
        /// within a tick after it, with timers armed while others expire.
        #[test]
        fn matches_a_sorted_list(steps in prop::collection::vec((0u64..3000, 0u64..50_000, any::<bool>()), 1..200)) {
            let t0 = Instant::now();
            let mut w = TimerWheel::default();
            let mut pending: Vec<(Instant, usize)> = Vec::new();
            let mut now = t0;
            for (k, &(advance, delay, arm)) in steps.iter().enumerate() {
                if arm {
                    let at = now + Duration::from_micros(delay * 100);
                    w.arm(now, at, k);
                    pending.push((at, k));
                }
                now += Duration::from_micros(advance * 100);
                while let Some(k) = w.pop_due(now) {
                    let p = pending.iter().position(|&(_, x)| x == k).expect("armed once");
                    let (at, _) = pending.swap_remove(p);
                    prop_assert!(at <= now);
                    prop_assert!(now.duration_since(at) <= TICK + Duration::from_micros(advance * 100));
                }
                for &(at, _) in &pending {
                    prop_assert!(at + TICK > now, "a due timer stayed");
                }
                let next = w.next_deadline();
                prop_assert_eq!(next.is_some(), !pending.is_empty());
                if let (Some(n), Some(&(first, _))) = (next, pending.iter().min()) {
                    prop_assert!(n >= first && n < first + TICK + Duration::from_nanos(1));
                }
            }
        }
    }
}
