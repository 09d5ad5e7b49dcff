//! The call table shared by every worker: which destination each confirmed call went to,
//! so that the call-load counters of `sip-dispatch` are incremented exactly once when a
//! call is answered (2xx to the initial INVITE) and decremented exactly once when it ends
//! (BYE, or the dialog timeout when the BYE was lost), whichever worker sees which message.
//!
//! Sharded by Call-ID hash (64 shards, each its own small mutex): no process-wide lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sip_dispatch::Destination;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::branch::SEED;

const SHARDS: usize = 64;

#[derive(Debug)]
struct CallEntry {
    destination: Arc<Destination>,
    expires: Instant,
}

/// Confirmed calls by Call-ID, across workers.
#[derive(Debug)]
pub struct CallTable {
    shards: Vec<Mutex<HashMap<u64, CallEntry>>>,
}

impl Default for CallTable {
    fn default() -> Self {
        CallTable {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

fn key(call_id: &[u8]) -> u64 {
    xxh3_64_with_seed(call_id, SEED)
}

impl CallTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self, k: u64) -> std::sync::MutexGuard<'_, HashMap<u64, CallEntry>> {
        // A poisoned shard only means another worker panicked mid-update of a plain map;
        // the map itself is still consistent.
        self.shards[(k as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Records an answered call. Returns true (and counts the call on the destination)
    /// the first time a Call-ID is seen; a retransmitted 2xx changes nothing.
    pub fn start(
        &self,
        call_id: &[u8],
        destination: &Arc<Destination>,
        now: Instant,
        timeout: Duration,
    ) -> bool {
        let k = key(call_id);
        let mut s = self.shard(k);
        if let Some(e) = s.get_mut(&k) {
            e.expires = now + timeout;
            return false;
        }
        destination.call_started();
        s.insert(
            k,
            CallEntry {
                destination: destination.clone(),
                expires: now + timeout,
            },
        );
        true
    }

    /// Ends a call (BYE). Returns its destination (after counting the end) the first time.
    pub fn end(&self, call_id: &[u8]) -> Option<Arc<Destination>> {
        let k = key(call_id);
        let e = self.shard(k).remove(&k)?;
        e.destination.call_ended();
        Some(e.destination)
    }

    /// Pushes the expiry of a call forward (any in-dialog request).
    pub fn touch(&self, call_id: &[u8], now: Instant, timeout: Duration) {
        let k = key(call_id);
        if let Some(e) = self.shard(k).get_mut(&k) {
            e.expires = now + timeout;
        }
    }

    /// Ends every call whose dialog timed out, appending their destinations to `out`.
    pub fn sweep(&self, now: Instant, out: &mut Vec<Arc<Destination>>) {
        for shard in &self.shards {
            let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
            s.retain(|_, e| {
                if e.expires <= now {
                    e.destination.call_ended();
                    out.push(e.destination.clone());
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Number of confirmed calls.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// True when no call is active.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
