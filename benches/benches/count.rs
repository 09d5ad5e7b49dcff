//! Fixed amounts of work for counting instructions with callgrind (the counts do not move
//! with the host's speed, unlike times). Run by `benches/count-instructions.sh`, which runs
//! each operation at two iteration counts and prints the difference per operation.
//!
//! ```text
//! cargo bench -p sip-lb-benches --bench count -- parse invite 20000
//! cargo bench -p sip-lb-benches --bench count -- parse-in-place invite 20000
//! cargo bench -p sip-lb-benches --bench count --features peers -- parse-peer rsipstack invite 20000
//! cargo bench -p sip-lb-benches --bench count -- httparse-invite 20000
//! cargo bench -p sip-lb-benches --bench count -- select call-id-hash 16 10000
//! cargo bench -p sip-lb-benches --bench count -- call stateful 1000
//! ```

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use sip_dispatch::{Algorithm, Selection};
use sip_lb_benches::{call, messages, select};
use sip_proxy::Mode;

fn usage() -> ! {
    eprintln!(
        "usage: count parse MESSAGE N | parse-in-place MESSAGE N | parse-peer rsipstack|sipx-sip|rsip MESSAGE N (feature peers) | httparse-invite N | select ALGORITHM DESTINATIONS N | call stateful|stateless N\n\
         MESSAGE: invite|200-record-route|ack|bye|register|deep-via"
    );
    std::process::exit(2)
}

/// The message a `parse` operation names.
fn message(name: Option<&String>) -> Bytes {
    messages::all()
        .into_iter()
        .find(|(n, _)| Some(*n) == name.map(String::as_str))
        .map_or_else(|| usage(), |(_, b)| b)
}

fn main() {
    // cargo bench passes `--bench` first.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| usage())
    };
    match args.first().map(String::as_str) {
        Some("parse") => {
            let b = message(args.get(1));
            for _ in 0..num(2) {
                black_box(messages::parse_essentials(black_box(&b)));
            }
        }
        Some("parse-in-place") => {
            let b = message(args.get(1));
            for _ in 0..num(2) {
                black_box(messages::parse_essentials_in_place(black_box(&b)));
            }
        }
        #[cfg(feature = "peers")]
        Some("parse-peer") => {
            // The same bytes through a peer parser (callgrind's counts do not move with the
            // host, so the ratio to sip-core's count is free of the host's noise).
            let peer = args.get(1).cloned().unwrap_or_default();
            let b = message(args.get(2));
            let Some((_, parse)) = messages::peers().into_iter().find(|(n, _)| *n == peer) else {
                usage()
            };
            // A peer that rejects the message is not counted (failing fast is not parsing).
            if parse(&b) != 1 {
                eprintln!("count: {peer} rejects this message");
                std::process::exit(3);
            }
            for _ in 0..num(3) {
                black_box(parse(black_box(&b)));
            }
        }
        Some("httparse-invite") => {
            // The floor of a header scan: httparse on the INVITE's header block.
            let m = messages::INVITE;
            let start = m.iter().position(|&c| c == b'\n').map_or(0, |p| p + 1);
            for _ in 0..num(1) {
                let mut h = [httparse::EMPTY_HEADER; 32];
                black_box(httparse::parse_headers(black_box(&m[start..]), &mut h).is_ok());
            }
        }
        Some("select") => {
            let alg: Algorithm = args
                .get(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| usage());
            let now = Instant::now();
            let n = num(2) as usize;
            let d = select::dispatcher(n, now);
            let mut sel = Selection::with_capacity(n + 1);
            for i in 0..num(3) {
                let cid = i.to_le_bytes();
                black_box(d.select(1, alg, &select::key(&cid), now, 2, &mut sel));
            }
        }
        Some("call") => {
            let mode = match args.get(1).map(String::as_str) {
                Some("stateful") => Mode::Stateful,
                Some("stateless") => Mode::Stateless,
                _ => usage(),
            };
            let mut p = call::proxy(mode);
            let (mut k, mut now) = (0u64, Instant::now());
            p.start(now);
            black_box(call::calls(&mut p, &mut k, &mut now, num(2)));
            // Every call's timers until they have all fired (Timers L, M and J run 64*T1
            // = 32 s past the call): their expiry is part of a call's cost, and the calls
            // run for a fraction of a second of the proxy's time.
            for _ in 0..400 {
                now += std::time::Duration::from_millis(100);
                p.handle_timeout(now);
                while let Some(t) = p.poll_transmit() {
                    black_box(t);
                }
                while p.poll_event().is_some() {}
            }
        }
        _ => usage(),
    }
}
