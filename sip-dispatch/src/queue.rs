//! The bounded FIFO of the autonomous-queue algorithm.

use std::collections::VecDeque;
use std::time::Instant;

/// [`WaitQueue::push`] refused the item: the queue is full. The item is given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("wait queue full")]
pub struct QueueFull<T>(pub T);

/// A bounded first-in first-out queue whose items carry a deadline. The proxy keeps one
/// per worker for requests the dispatcher answered [`crate::SelectOutcome::Queue`]:
/// when a destination slot frees it takes the oldest waiting item with
/// [`WaitQueue::pop_ready`]; at each timer tick it answers the items
/// [`WaitQueue::expire`] returns (e.g. with a 503). Single-owner (`&mut self`), so no
/// lock; bounded, so a flood of requests cannot grow it.
#[derive(Debug)]
pub struct WaitQueue<T> {
    items: VecDeque<(T, Instant)>,
    capacity: usize,
}

impl<T> WaitQueue<T> {
    /// An empty queue holding at most `capacity` items (memory is reserved up front).
    pub fn new(capacity: usize) -> Self {
        WaitQueue {
            items: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
        }
    }

    /// The most items it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds an item that must leave the queue by `deadline`; gives it back when the
    /// queue is full.
    pub fn push(&mut self, item: T, deadline: Instant) -> Result<(), QueueFull<T>> {
        if self.items.len() >= self.capacity {
            return Err(QueueFull(item));
        }
        self.items.push_back((item, deadline));
        Ok(())
    }

    /// Takes the oldest item whose deadline is still ahead of `now` (a slot freed).
    /// Expired items before it stay queued for [`WaitQueue::expire`], so none is lost.
    pub fn pop_ready(&mut self, now: Instant) -> Option<T> {
        let i = self.items.iter().position(|(_, d)| *d > now)?;
        self.items.remove(i).map(|(t, _)| t)
    }

    /// Takes the oldest item, whatever its deadline.
    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front().map(|(t, _)| t)
    }

    /// Removes every item whose deadline is at or before `now` and appends them to
    /// `out`, oldest first; the others keep their order.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        if !self.items.iter().any(|(_, d)| *d <= now) {
            return;
        }
        let n = self.items.len();
        for _ in 0..n {
            if let Some((t, d)) = self.items.pop_front() {
                if d <= now {
                    out.push(t);
                } else {
                    self.items.push_back((t, d));
                }
            }
        }
    }

    /// The earliest deadline (arm a timer for it).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.items.iter().map(|(_, d)| *d).min()
    }

    /// Number of waiting items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounded_fifo_with_deadlines() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut q = WaitQueue::new(3);
        q.push(1, t0 + s).unwrap();
        q.push(2, t0 + 3 * s).unwrap();
        q.push(3, t0 + 2 * s).unwrap();
        assert_eq!(q.push(4, t0), Err(QueueFull(4)));
        assert_eq!(q.next_deadline(), Some(t0 + s));
        // A slot frees after the first deadline: the oldest live item goes, the expired
        // one stays for `expire`.
        assert_eq!(q.pop_ready(t0 + s + s / 2), Some(2));
        let mut out = Vec::new();
        q.expire(t0 + s + s / 2, &mut out);
        assert_eq!(out, vec![1]);
        assert_eq!(q.len(), 1);
        q.expire(t0 + 2 * s, &mut out);
        assert_eq!(out, vec![1, 3]);
        assert!(q.is_empty());
        assert_eq!(q.pop_ready(t0), None);
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn expire_keeps_order_of_the_living() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut q = WaitQueue::new(10);
        for (i, d) in [5u32, 1, 7, 2, 9].iter().enumerate() {
            q.push(i, t0 + *d * ms).unwrap();
        }
        let mut out = Vec::new();
        q.expire(t0 + 5 * ms, &mut out);
        assert_eq!(out, vec![0, 1, 3]);
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(4));
    }
}
