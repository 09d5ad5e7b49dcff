//! Fuzz the Kamailio dispatcher.list parser and build a dispatcher from what parses;
//! select with every algorithm. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_dispatch::{Algorithm, DestinationList, Dispatcher, SelectKey, Selection};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(list) = DestinationList::parse_kamailio(text) else { return };
    if list.entries().len() > 64 {
        return;
    }
    let sets: Vec<u32> = list.entries().iter().map(|e| e.set).collect();
    let d = Dispatcher::new(list);
    let now = std::time::Instant::now();
    let mut s = Selection::default();
    for set in sets.iter().take(2) {
        for a in Algorithm::all() {
            d.select(*set, a, &SelectKey { call_id: data, ..SelectKey::default() }, now, 0, &mut s);
        }
    }
});
