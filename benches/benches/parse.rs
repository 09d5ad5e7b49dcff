//! Parsing the same bytes with sip-core and with other Rust SIP parsers, in the same run.
//!
//! ```text
//! cargo bench -p sip-lb-benches --bench parse                    # sip-core and httparse only
//! cargo bench -p sip-lb-benches --bench parse --features peers   # + rsipstack, sipx-sip, rsip
//! ```
//! sip-core's figure includes locating the proxy essentials (top Via branch, Call-ID, CSeq,
//! tags, Max-Forwards, Content-Length, top Route) — it does that in its one pass anyway.
//! httparse parses only the header block (name/value splitting) and is the floor.
//! "sip-core in place" parses into a `Message` kept between calls (`parse_in_place`, as
//! the proxy does and as httparse fills caller-provided headers), without moving a new
//! ~1 KiB `Message` out of every parse.
//! After criterion's groups, the bench prints "sip-core vs X: N.Nx" for each message.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sip_core::Message;
use sip_lb_benches::messages::{self, parse_essentials, parse_essentials_in_place};

fn httparse_headers(b: &[u8]) -> usize {
    let start = b.iter().position(|&c| c == b'\n').map_or(0, |p| p + 1);
    let mut h = [httparse::EMPTY_HEADER; 32];
    match httparse::parse_headers(&b[start..], &mut h) {
        Ok(httparse::Status::Complete((n, hs))) => n + hs.len(),
        _ => 0,
    }
}

type Parser = (&'static str, messages::Parse);

fn parsers() -> Vec<Parser> {
    #[allow(unused_mut)]
    let mut v: Vec<Parser> = vec![
        ("sip-core", parse_essentials),
        ("sip-core in place", parse_essentials_in_place),
        ("httparse (headers only)", |b| httparse_headers(b)),
    ];
    #[cfg(feature = "peers")]
    for (name, parse) in sip_lb_benches::messages::peers() {
        v.push((name, parse));
    }
    v
}

/// Whether the parser accepts the message: a peer that rejects one is not timed on it
/// (failing fast is not parsing).
fn accepts(p: &str, f: messages::Parse, b: &Bytes) -> bool {
    match p {
        "sip-core" | "sip-core in place" => Message::parse(b.clone()).is_ok(),
        "httparse (headers only)" => httparse_headers(b) > 0,
        _ => f(b) == 1,
    }
}

/// Median time per call over 9 batches of 20 000 calls.
fn time(f: messages::Parse, msg: &Bytes) -> f64 {
    let mut v: Vec<f64> = (0..9)
        .map(|_| {
            let n = 20_000u32;
            let t = Instant::now();
            for _ in 0..n {
                black_box(f(black_box(msg)));
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[4]
}

fn bench(c: &mut Criterion) {
    for (name, msg) in messages::all() {
        let mut g = c.benchmark_group(format!("parse/{name}"));
        g.throughput(Throughput::Bytes(msg.len() as u64));
        for (p, f) in parsers() {
            if accepts(p, f, &msg) {
                g.bench_function(p, |b| b.iter(|| black_box(f(black_box(&msg)))));
            }
        }
        g.finish();
    }
    // Ratios, timed here on the same bytes in the same run (median of 9 batches).
    println!(
        "\nsip-core vs each parser (their time / sip-core's time; higher = sip-core faster;\n\
         by value: Message::parse returns a new Message; in place: Message::parse_in_place\n\
         into storage kept between datagrams, as the proxy parses):"
    );
    for (name, msg) in messages::all() {
        let ours = time(parse_essentials, &msg);
        let in_place = time(parse_essentials_in_place, &msg);
        println!(
            "  {name} ({} bytes): sip-core {ours:.0} ns by value, {in_place:.0} ns in place",
            msg.len()
        );
        let mut fastest: Option<(&str, f64)> = None;
        for (p, f) in parsers()
            .into_iter()
            .filter(|(p, _)| !p.starts_with("sip-core"))
        {
            if !accepts(p, f, &msg) {
                println!("    {p:24} rejects this message: not compared");
                continue;
            }
            let t = time(f, &msg);
            println!(
                "    sip-core vs {p:24} {t:>7.0} ns: {:.1}x by value, {:.1}x in place",
                t / ours,
                t / in_place
            );
            if !p.starts_with("httparse") && fastest.is_none_or(|(_, ft)| t < ft) {
                fastest = Some((p, t));
            }
        }
        if let Some((p, t)) = fastest {
            println!(
                "    fastest full parser: {p}, sip-core {:.1}x faster by value, {:.1}x in place",
                t / ours,
                t / in_place
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
