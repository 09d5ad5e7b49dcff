//! Selection performs no heap allocation once the output buffer is warm.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use sip_dispatch::*;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn selection_does_not_allocate() {
    let text: String = (0..16)
        .map(|i| format!("1 sip:10.0.0.{}:5060 0 0 weight={}\n", i + 1, i + 1))
        .collect();
    let d = Dispatcher::new(DestinationList::parse_kamailio(&text).unwrap());
    let now = Instant::now();
    let mut s = Selection::with_capacity(16);
    let key = SelectKey {
        call_id: b"a84b4c76e66710@pc33.atlanta.com",
        ..SelectKey::default()
    };
    for a in [
        Algorithm::RoundRobin,
        Algorithm::CallIdHash,
        Algorithm::Weight,
        Algorithm::CallLoad,
        Algorithm::Priority,
        Algorithm::Latency,
        Algorithm::Random,
    ] {
        d.select(1, a, &key, now, 0, &mut s);
        let before = ALLOCS.load(Relaxed);
        for _ in 0..100 {
            assert_eq!(
                d.select(1, a, &key, now, 0, &mut s),
                SelectOutcome::Selected
            );
        }
        assert_eq!(ALLOCS.load(Relaxed) - before, 0, "{a} allocated");
    }
}
