//! sip-transport throughput and CPU per message on loopback.
//!
//! UDP: the same ~550-byte SIP datagrams pushed from one thread to another through
//! (1) a minimal blocking `std::net::UdpSocket` loop (`send_to`/`recv_from`, the reference),
//! (2) sip-transport with batch size 1 (one datagram per system call), and
//! (3) sip-transport with batches of 32 (`sendmmsg`/`recvmmsg`), and (4) batches of 32
//! with receive coalescing as the `sip-lb` runtime does it with `--linger-us`: after a
//! receive that came back short, the receiver waits before the next one.
//! Each thread's own user and system CPU time is read with `getrusage(RUSAGE_THREAD)`, so
//! the figures are per message for the sender and for the receiver, independent of other
//! load on the machine (wall-clock rates are not).
//!
//! TCP and TLS: messages per second through a `StreamTransport` pair (reference figures).
//!
//! Run: `cargo bench -p sip-lb-benches --bench transport` (`-- --quick` for a short run;
//! `-- --variant KEY` runs only the UDP variant `std`, `batch1`, `batch32`, `linger50` or
//! `linger200`, for a profiler attached to it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_transport::udp::{RecvBatch, UdpConfig, UdpSocket};
use sip_transport::{Outgoing, StreamConfig, StreamTransport, Transport, tls};

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 142\r\n\r\n\
v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n\
s=-\r\nc=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// (user, system) CPU time of the calling thread.
fn thread_cpu() -> (Duration, Duration) {
    // SAFETY: getrusage writes one rusage value into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage value; RUSAGE_THREAD is Linux-specific.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

#[derive(Clone, Copy, Debug, Default)]
struct Side {
    msgs: u64,
    user: Duration,
    sys: Duration,
}

impl Side {
    fn ns_per_msg(&self) -> (f64, f64) {
        let n = self.msgs.max(1) as f64;
        (
            self.user.as_nanos() as f64 / n,
            self.sys.as_nanos() as f64 / n,
        )
    }
}

#[derive(Clone, Copy, Debug)]
struct UdpResult {
    name: &'static str,
    sender: Side,
    receiver: Side,
    wall: Duration,
}

#[derive(Clone, Copy)]
enum Mode {
    Std,
    /// Batches of this size; after a batch that came back short (the queue was empty),
    /// the receiver waits this long before the next receive (0: not at all).
    Batch(usize, Duration),
}

fn run_udp(name: &'static str, mode: Mode, total: u64) -> UdpResult {
    let cfg = UdpConfig {
        read_timeout: Some(Duration::from_millis(200)),
        ..UdpConfig::default()
    };
    let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let rx = UdpSocket::bind(lo, &cfg).unwrap();
    let tx = UdpSocket::bind(lo, &cfg).unwrap();
    let dest = rx.local_addr();
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let receiver = {
        let done = done.clone();
        std::thread::spawn(move || {
            let c0 = thread_cpu();
            let mut got = 0u64;
            let mut last = Instant::now();
            match mode {
                Mode::Std => {
                    let s = rx.as_std();
                    let mut buf = vec![0u8; 65_535];
                    while got < total {
                        match s.recv_from(&mut buf) {
                            Ok(_) => {
                                got += 1;
                                last = Instant::now();
                            }
                            Err(_) if done.load(Ordering::Relaxed) => break,
                            Err(_) => {}
                        }
                    }
                }
                Mode::Batch(n, linger) => {
                    let mut batch = RecvBatch::new(n, 65_535);
                    while got < total {
                        let k = rx.recv_batch(&mut batch).unwrap();
                        if k == 0 && done.load(Ordering::Relaxed) {
                            break;
                        }
                        if k > 0 {
                            last = Instant::now();
                        }
                        got += k as u64;
                        // Hand the messages on (dropped here): the buffers are reused.
                        batch.drain().for_each(drop);
                        // As the runtime does: no linger after a full receive.
                        if !batch.was_full() && !linger.is_zero() {
                            std::thread::sleep(linger);
                        }
                    }
                }
            }
            let c1 = thread_cpu();
            (
                Side {
                    msgs: got,
                    user: c1.0 - c0.0,
                    sys: c1.1 - c0.1,
                },
                last,
            )
        })
    };
    let sender = std::thread::spawn(move || {
        let c0 = thread_cpu();
        let payload = Bytes::from_static(INVITE);
        let mut sent = 0u64;
        match mode {
            Mode::Std => {
                let s = tx.as_std();
                while sent < total {
                    s.send_to(INVITE, dest).unwrap();
                    sent += 1;
                }
            }
            Mode::Batch(n, _) => {
                let out: Vec<Outgoing> = (0..n)
                    .map(|_| Outgoing::udp(dest, payload.clone()))
                    .collect();
                while sent < total {
                    let k = ((total - sent) as usize).min(n);
                    sent += tx.send_batch(&out[..k]).unwrap() as u64;
                }
            }
        }
        let c1 = thread_cpu();
        Side {
            msgs: sent,
            user: c1.0 - c0.0,
            sys: c1.1 - c0.1,
        }
    });
    let s = sender.join().unwrap();
    done.store(true, Ordering::Relaxed);
    let (r, last) = receiver.join().unwrap();
    UdpResult {
        name,
        sender: s,
        receiver: r,
        wall: last.duration_since(start),
    }
}

fn run_stream(transport: Transport, total: u64) -> (u64, Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (server_cfg, client_cfg) = if transport == Transport::Tls {
            let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
            let cert = ck.cert.pem().into_bytes();
            let key = ck.signing_key.serialize_pem().into_bytes();
            (
                StreamConfig {
                    tls_server: Some(tls::server_config_from_pem(&cert, &key).unwrap()),
                    ..StreamConfig::default()
                },
                StreamConfig {
                    tls_client: Some(tls::client_config_from_ca_pem(&cert).unwrap()),
                    ..StreamConfig::default()
                },
            )
        } else {
            (StreamConfig::default(), StreamConfig::default())
        };
        let (itx, mut irx) = tokio::sync::mpsc::channel(1024);
        let a = StreamTransport::new(server_cfg, itx);
        let addr = a
            .listen("127.0.0.1:0".parse().unwrap(), transport)
            .await
            .unwrap();
        let (btx, _brx) = tokio::sync::mpsc::channel(16);
        let b = StreamTransport::new(client_cfg, btx);
        let s = b.sender();
        let payload = Bytes::from_static(INVITE);
        let start = Instant::now();
        let send = tokio::spawn(async move {
            let mut sent = 0;
            while sent < total {
                match s.send(Outgoing::new(addr, transport, payload.clone())) {
                    Ok(_) => sent += 1,
                    Err(sip_transport::Error::QueueFull { .. }) => tokio::task::yield_now().await,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let mut got = 0;
        while got < total {
            match tokio::time::timeout(Duration::from_secs(5), irx.recv()).await {
                Ok(Some(_)) => got += 1,
                _ => break,
            }
        }
        let wall = start.elapsed();
        send.await.unwrap();
        drop((a, b));
        (got, wall)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--variant")
        .and_then(|i| args.get(i + 1).cloned());
    let n: u64 = if quick { 50_000 } else { 400_000 };
    println!(
        "sip-transport loopback bench: {n} datagrams of {} bytes per variant",
        INVITE.len()
    );
    println!(
        "{:<28} {:>12} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "variant", "recv msg/s", "tx usr ns", "tx sys ns", "rx usr ns", "rx sys ns", "loss %"
    );
    let mut results = Vec::new();
    let variants = [
        ("std", "std UdpSocket (reference)", Mode::Std),
        (
            "batch1",
            "sip-transport batch=1",
            Mode::Batch(1, Duration::ZERO),
        ),
        (
            "batch32",
            "sip-transport batch=32",
            Mode::Batch(32, Duration::ZERO),
        ),
        (
            "linger50",
            "batch=32, linger 50 us",
            Mode::Batch(32, Duration::from_micros(50)),
        ),
        (
            "linger200",
            "batch=32, linger 200 us",
            Mode::Batch(32, Duration::from_micros(200)),
        ),
    ];
    if let Some(key) = only {
        let Some(&(_, name, mode)) = variants.iter().find(|v| v.0 == key) else {
            eprintln!(
                "transport bench: no variant {key:?} (std, batch1, batch32, linger50, linger200)"
            );
            std::process::exit(2);
        };
        let r = run_udp(name, mode, n);
        let (tu, ts) = r.sender.ns_per_msg();
        let (ru, rs) = r.receiver.ns_per_msg();
        println!("{name}: tx usr {tu:.0} sys {ts:.0} ns/msg, rx usr {ru:.0} sys {rs:.0} ns/msg");
        return;
    }
    for (_, name, mode) in variants {
        let r = run_udp(name, mode, n);
        let (tu, ts) = r.sender.ns_per_msg();
        let (ru, rs) = r.receiver.ns_per_msg();
        let rate = r.receiver.msgs as f64 / r.wall.as_secs_f64();
        let loss = 100.0 * (1.0 - r.receiver.msgs as f64 / r.sender.msgs.max(1) as f64);
        println!(
            "{:<28} {:>12.0} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>8.2}",
            r.name, rate, tu, ts, ru, rs, loss
        );
        results.push(r);
    }
    let sys = |r: &UdpResult| r.sender.ns_per_msg().1 + r.receiver.ns_per_msg().1;
    let cpu = |r: &UdpResult| {
        let (a, b) = r.sender.ns_per_msg();
        let (c, d) = r.receiver.ns_per_msg();
        a + b + c + d
    };
    let (std_r, one, batch) = (&results[0], &results[1], &results[2]);
    println!(
        "system CPU per message (send + receive): std {:.0} ns, batch=1 {:.0} ns, batch=32 {:.0} ns",
        sys(std_r),
        sys(one),
        sys(batch)
    );
    println!(
        "ratio batch=32 / std: system CPU {:.2}x, total CPU {:.2}x; batch=32 / batch=1: system CPU {:.2}x",
        sys(batch) / sys(std_r),
        cpu(batch) / cpu(std_r),
        sys(batch) / sys(one)
    );
    for r in &results[3..] {
        println!(
            "ratio {} / std: system CPU {:.2}x, total CPU {:.2}x",
            r.name,
            sys(r) / sys(std_r),
            cpu(r) / cpu(std_r)
        );
    }
    let m: u64 = if quick { 20_000 } else { 200_000 };
    for t in [Transport::Tcp, Transport::Tls] {
        let (got, wall) = run_stream(t, m);
        println!(
            "{t} StreamTransport -> StreamTransport: {got} messages in {:.3} s = {:.0} msg/s",
            wall.as_secs_f64(),
            got as f64 / wall.as_secs_f64()
        );
    }
}
