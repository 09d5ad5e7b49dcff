//! Fuzz the Kamailio dispatcher.list parser: nothing may panic; what parses must
//! round-trip through `to_kamailio` (when the attributes hold no blank or quote and do
//! not start with `#`), build a
//! dispatcher, reload, and select with every algorithm into a bounded list of usable,
//! distinct destinations.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_dispatch::{
    Algorithm, DestinationList, Dispatcher, DispatcherOptions, SelectKey, SelectOutcome,
    Selection,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let list = match DestinationList::parse_kamailio(text) {
        Ok(l) => l,
        Err(e) => {
            assert!(e.line >= 1 && e.line <= text.lines().count().max(1));
            return;
        }
    };
    if list.entries().len() > 64 {
        return;
    }
    let printable = list.entries().iter().all(|e| {
        let a = e.attrs.to_kamailio();
        !a.contains(char::is_whitespace) && !a.contains('"') && !a.starts_with('#')
    });
    if printable {
        let again = DestinationList::parse_kamailio(&list.to_kamailio())
            .expect("a printed list parses");
        assert_eq!(again, list);
    }
    let sets: Vec<u32> = list.entries().iter().map(|e| e.set).take(2).collect();
    let use_default = data.len() % 2 == 0;
    let d = Dispatcher::with_options(
        list.clone(),
        DispatcherOptions {
            use_default,
            ..DispatcherOptions::default()
        },
    );
    d.reload(list);
    let now = std::time::Instant::now();
    let mut s = Selection::default();
    let key = SelectKey {
        call_id: data,
        from_uri: data,
        to_uri: data,
        request_uri: data,
        auth_username: Some(data),
        custom: Some(data),
        aor: Some(data),
    };
    for set in sets {
        for a in Algorithm::all() {
            let limit = data.len() % 4;
            let out = d.select(set, a, &key, now, limit, &mut s);
            assert_eq!(out == SelectOutcome::Selected, !s.is_empty());
            if limit > 0 {
                assert!(s.len() <= limit);
            }
            for (i, x) in s.iter().enumerate() {
                assert!(x.is_usable(now));
                assert!(s.iter().skip(i + 1).all(|y| !std::sync::Arc::ptr_eq(x, y)));
            }
        }
    }
});
