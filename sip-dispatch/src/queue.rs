//! The bounded FIFO of the autonomous-queue algorithm.

use std::collections::VecDeque;
use std::time::Instant;

/// A bounded first-in first-out queue whose items carry a deadline. The proxy keeps one
/// per worker for requests the dispatcher answered [`crate::SelectOutcome::Queue`].
#[derive(Debug)]
pub struct WaitQueue<T> {
    items: VecDeque<(T, Instant)>,
    capacity: usize,
}

impl<T> WaitQueue<T> {
    /// An empty queue holding at most `capacity` items.
    pub fn new(capacity: usize) -> Self {
        WaitQueue {
            items: VecDeque::new(),
            capacity,
        }
    }

    /// Adds an item; gives it back when the queue is full.
    pub fn push(&mut self, item: T, deadline: Instant) -> Result<(), T> {
        if self.items.len() >= self.capacity {
            return Err(item);
        }
        self.items.push_back((item, deadline));
        Ok(())
    }

    /// Takes the oldest item (when a slot freed).
    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front().map(|(t, _)| t)
    }

    /// Removes and returns every item whose deadline passed, oldest first.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        while self.items.front().is_some_and(|(_, d)| *d <= now) {
            if let Some((t, _)) = self.items.pop_front() {
                out.push(t);
            }
        }
        // Deadlines are pushed in order only when every item uses the same wait; remove
        // any later expired ones too.
        let mut i = 0;
        while i < self.items.len() {
            if self.items[i].1 <= now {
                if let Some((t, _)) = self.items.remove(i) {
                    out.push(t);
                }
            } else {
                i += 1;
            }
        }
    }

    /// The earliest deadline.
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
        let mut q = WaitQueue::new(2);
        q.push(1, t0 + Duration::from_secs(1)).unwrap();
        q.push(2, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(q.push(3, t0), Err(3));
        let mut out = Vec::new();
        q.expire(t0 + Duration::from_millis(1500), &mut out);
        assert_eq!(out, vec![1]);
        assert_eq!(q.pop(), Some(2));
        assert!(q.is_empty());
    }
}
