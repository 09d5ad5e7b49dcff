//! Memory per in-flight INVITE transaction: many INVITEs held open in one proxy core (each
//! forwarded to a destination that answered 180 and nothing more), the heap counted by a
//! global allocator. Prints the bytes per transaction beyond the message bytes: the
//! received INVITE (the server transaction keeps a copy), the forwarded one (the client
//! transaction keeps it for retransmission and CANCEL) and the last response sent
//! upstream (kept to answer a retransmitted INVITE).
//!
//! Then the memory a completed call still holds while its transactions wait out their
//! `wait` timer (5 s): the calls of the proxy bench, one every 200 µs, so that every one of
//! them is still in its timers when the count is taken. And the same calls in stateless
//! mode, which keeps no transaction but remembers for 64·T1 where each INVITE went.
//!
//! `cargo bench -p sip-lb-benches --bench memory`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use sip_core::Message;
use sip_core::builder::ResponseBuilder;
use sip_lb_benches::call::{LB, a, calls, invite, proxy};
use sip_proxy::{Mode, Origin};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter of
// live bytes is kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` was allocated by `System` with layout `l` (in `alloc` above).
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let n: u64 = 50_000;
    let lb = a(LB);
    let mut p = proxy(Mode::Stateful);
    let dispatcher = p.dispatcher().clone();
    let mut now = Instant::now();
    p.start(now);
    let caller = Origin::udp(a("127.0.0.1:5070"), lb);
    // Warm up: the tables reach their working size once.
    let mut rounds = Vec::new();
    for round in 0..2u64 {
        let before = LIVE.load(Ordering::Relaxed);
        let mut message_bytes = 0usize;
        for i in 0..n {
            let k = round * n + i;
            // Arrivals at 1000 per second, as in the load benchmark, so that the timers
            // spread over the timer wheel as they do in service.
            now += Duration::from_millis(1);
            let inv = invite(k);
            message_bytes += inv.len();
            p.handle_datagram(now, caller, inv);
            while let Some(t) = p.poll_transmit() {
                if let Ok(m) = Message::parse(t.bytes.clone())
                    && m.is_request()
                {
                    message_bytes += t.bytes.len();
                    let ringing = ResponseBuilder::new(&m, 180, "Ringing")
                        .to_tag(b"b1")
                        .build();
                    p.handle_datagram(now, Origin::udp(t.destination, lb), ringing);
                    while let Some(up) = p.poll_transmit() {
                        message_bytes += up.bytes.len();
                    }
                }
            }
            while p.poll_event().is_some() {}
        }
        let held = LIVE.load(Ordering::Relaxed) - before;
        let (s, c) = p.transaction_count();
        rounds.push((held, message_bytes, s, c));
        // Let them all time out (timer C and the lingering timers), so the second round
        // starts from empty tables that have their capacity; the timeouts marked the
        // destinations down, so bring them back.
        for _ in 0..400 {
            now += Duration::from_secs(1);
            p.handle_timeout(now);
            while p.poll_transmit().is_some() {}
            while p.poll_event().is_some() {}
        }
        for set in dispatcher.snapshot().sets() {
            for d in set.destinations() {
                d.set_state(sip_dispatch::State::Active);
            }
        }
    }
    for (label, (held, message_bytes, s, c)) in [
        (
            "from a fresh proxy (the tables grow, with their spare capacity)",
            rounds[0],
        ),
        (
            "again, the tables already at that size (what a busy proxy adds per transaction)",
            rounds[1],
        ),
    ] {
        let per = (held as f64 - message_bytes as f64) / n as f64;
        println!("{label}:");
        println!(
            "  {n} INVITE transactions in flight ({s} server, {c} client): {:.1} MB held, of which {:.1} MB message bytes",
            held as f64 / 1e6,
            message_bytes as f64 / 1e6
        );
        println!(
            "  beyond the message bytes: {per:.0} bytes per in-flight INVITE (server + client transaction)"
        );
    }

    // Completed calls (INVITE, 100, 180, 200, ACK, BYE, 200) whose transactions linger;
    // in stateless mode, what lingers is the memory of where each INVITE went (64·T1).
    for mode in [Mode::Stateful, Mode::Stateless] {
        let m: u64 = 20_000;
        let mut p = proxy(mode);
        let mut now = Instant::now();
        p.start(now);
        let mut k = 0u64;
        let mut held = 0isize;
        let mut lingering = (0, 0);
        for _round in 0..2 {
            let before = LIVE.load(Ordering::Relaxed);
            calls(&mut p, &mut k, &mut now, m);
            held = LIVE.load(Ordering::Relaxed) - before;
            lingering = p.transaction_count();
            // Past every timer, so that the second round starts from tables at their size.
            for _ in 0..40 {
                now += Duration::from_secs(1);
                p.handle_timeout(now);
                while p.poll_transmit().is_some() {}
                while p.poll_event().is_some() {}
            }
        }
        let (s, c) = lingering;
        if mode == Mode::Stateful {
            println!("completed calls still in their timers (the tables already at their size):");
            println!(
                "  {m} calls in the last {:.1} s ({s} server, {c} client transactions waiting): {:.0} bytes per call",
                m as f64 * 200e-6,
                held as f64 / m as f64
            );
        } else {
            println!(
                "stateless: where the calls' INVITEs went, remembered for 64·T1 (the map regrows after a quiet spell):"
            );
            println!(
                "  {m} calls in the last {:.1} s: {:.0} bytes per call",
                m as f64 * 200e-6,
                held as f64 / m as f64
            );
        }
    }
}
