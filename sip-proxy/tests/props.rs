//! Property tests: any sequence of messages and timeouts never panics, and once the timers
//! have run out, no transaction is left and every load counter is back to zero.

mod support;

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use sip_core::Message;
use sip_proxy::Mode;
use support::*;

#[derive(Clone, Debug)]
enum Step {
    Invite(u8),
    Cancel(u8),
    Bye(u8),
    Options(u8),
    /// A response with this code from the destination of the n-th last forwarded request.
    Respond(u8, u16),
    /// Replay a message sent earlier by the proxy back at it (from a backend).
    Echo(u8),
    Garbage(Vec<u8>),
    Mutated(u8, usize, u8),
    Advance(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4).prop_map(Step::Invite),
        (0u8..4).prop_map(Step::Cancel),
        (0u8..4).prop_map(Step::Bye),
        (0u8..4).prop_map(Step::Options),
        (
            0u8..8,
            prop::sample::select(vec![
                100u16, 180, 183, 200, 302, 404, 408, 486, 500, 503, 603
            ])
        )
            .prop_map(|(i, c)| Step::Respond(i, c)),
        (0u8..8).prop_map(Step::Echo),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Step::Garbage),
        (0u8..4, 0usize..400, any::<u8>()).prop_map(|(i, p, b)| Step::Mutated(i, p, b)),
        (0u16..40_000).prop_map(Step::Advance),
    ]
}

fn run(mode: Mode, steps: Vec<Step>) {
    let mut net = Net::with_backends(mode, 3);
    let mut sent: Vec<sip_proxy::Transmit> = Vec::new();
    for s in steps {
        match s {
            Step::Invite(i) => net.send(
                addr(CALLER),
                invite(&format!("p{i}"), &format!("z9hG4bKp{i}")),
            ),
            Step::Cancel(i) => net.send(
                addr(CALLER),
                request("CANCEL", &format!("p{i}"), &format!("z9hG4bKp{i}"), 1),
            ),
            Step::Bye(i) => net.send(
                addr(CALLER),
                request("BYE", &format!("p{i}"), &format!("z9hG4bKb{i}"), 2).replace(
                    "To: <sip:service@127.0.0.1:5060>",
                    "To: <sip:service@127.0.0.1:5060>;tag=b1",
                ),
            ),
            Step::Options(i) => net.send(
                addr(CALLER),
                request("OPTIONS", &format!("o{i}"), &format!("z9hG4bKo{i}"), 1)
                    .replace("sip:service@127.0.0.1:5060 SIP", "sip:x@127.0.0.1:5099 SIP"),
            ),
            Step::Respond(i, code) => {
                let reqs: Vec<_> = sent
                    .iter()
                    .rev()
                    .filter_map(|t| {
                        Message::parse(t.bytes.clone())
                            .ok()
                            .map(|m| (t.destination, m))
                    })
                    .filter(|(_, m)| m.is_request())
                    .collect();
                if let Some((to, m)) = reqs.get(i as usize) {
                    net.send(*to, respond(m, code, "Whatever"));
                }
            }
            Step::Echo(i) => {
                if let Some(t) = sent.iter().rev().nth(i as usize) {
                    let b = t.bytes.clone();
                    net.send(backend(0), b);
                }
            }
            Step::Garbage(g) => net.send(addr(CALLER), Bytes::from(g)),
            Step::Mutated(i, p, b) => {
                let mut m = invite(&format!("p{i}"), &format!("z9hG4bKp{i}")).into_bytes();
                let p = p % m.len();
                m[p] = b;
                net.send(addr(CALLER), Bytes::from(m));
            }
            Step::Advance(ms) => {
                let out = net.advance_collect(Duration::from_millis(u64::from(ms)));
                sent.extend(out);
            }
        }
        sent.extend(net.out());
        if sent.len() > 400 {
            sent.drain(..200);
        }
    }
    // Dialogs left open by the random walk end by BYE or by timeout; the transaction
    // layer must drain on its own.
    net.drain_and_check();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn stateful_never_panics_and_drains(steps in prop::collection::vec(step(), 1..60)) {
        run(Mode::Stateful, steps);
    }

    #[test]
    fn stateless_never_panics_and_drains(steps in prop::collection::vec(step(), 1..60)) {
        run(Mode::Stateless, steps);
    }
}

#[test]
fn regression_echoed_requests_and_provisional() {
    run(
        Mode::Stateful,
        vec![
            Step::Options(1),
            Step::Mutated(1, 99, 0),
            Step::Echo(2),
            Step::Invite(0),
            Step::Invite(0),
            Step::Echo(4),
            Step::Respond(1, 100),
        ],
    );
}
