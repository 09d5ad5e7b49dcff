//! Selection performs no heap allocation once the output buffer is warm.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use sip_dispatch::*;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only the measuring thread counts (the test harness allocates on its own threads).
    static MEASURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if MEASURING.with(|m| m.get()) {
            ALLOCS.fetch_add(1, Relaxed);
        }
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
fn selection_does_not_allocate_for_any_algorithm() {
    let text: String = (0..16)
        .map(|i| format!("1 sip:10.0.0.{}:5060 0 0 weight={}\n", i + 1, i + 1))
        .collect();
    let d = Dispatcher::new(DestinationList::parse_kamailio(&text).unwrap());
    let now = Instant::now();
    let mut s = Selection::with_capacity(16);
    let key = SelectKey {
        call_id: b"a84b4c76e66710@pc33.atlanta.com",
        from_uri: b"sip:alice@atlanta.com;transport=tcp",
        to_uri: b"<sip:bob@biloxi.com:5070>",
        request_uri: b"sip:bob@192.0.2.4",
        ..SelectKey::default()
    };
    for a in Algorithm::all() {
        // Warm-up: the sticky table learns the key; the buffer reaches its size (the
        // sticky algorithm briefly holds one more than the set).
        d.select(1, a, &key, now, 0, &mut s);
        d.select(1, a, &key, now, 0, &mut s);
        MEASURING.with(|m| m.set(true));
        let before = ALLOCS.load(Relaxed);
        for _ in 0..100 {
            assert_eq!(
                d.select(1, a, &key, now, 0, &mut s),
                SelectOutcome::Selected
            );
        }
        let allocated = ALLOCS.load(Relaxed) - before;
        MEASURING.with(|m| m.set(false));
        assert_eq!(allocated, 0, "{a} allocated");
    }
}
