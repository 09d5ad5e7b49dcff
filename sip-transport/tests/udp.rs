//! UDP on loopback: SO_REUSEPORT workers, batching, ICMP errors, truncation, IPv6, tokio.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_transport::udp::{AsyncUdpSocket, RecvBatch, UdpConfig, UdpSocket};
use sip_transport::{Outgoing, Transport};

fn sip(n: usize) -> Bytes {
    Bytes::from(format!(
        "OPTIONS sip:lb@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@x>;tag=1\r\nTo: <sip:lb@x>\r\nCall-ID: c-{n}\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ))
}

fn cfg(timeout_ms: u64) -> UdpConfig {
    UdpConfig {
        read_timeout: Some(Duration::from_millis(timeout_ms)),
        ..UdpConfig::default()
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Receives on `sock` until `want` datagrams arrived or 3 s passed.
fn recv_n(sock: &UdpSocket, want: usize) -> (Vec<sip_transport::Incoming>, usize) {
    let mut batch = RecvBatch::default();
    let mut got = Vec::new();
    let mut max_batch = 0;
    let end = Instant::now() + Duration::from_secs(3);
    while got.len() < want && Instant::now() < end {
        let n = sock.recv_batch(&mut batch).unwrap();
        max_batch = max_batch.max(n);
        got.extend(batch.drain());
    }
    (got, max_batch)
}

#[test]
fn send_and_receive_batches_with_zero_copy_bytes() {
    let server = UdpSocket::bind(localhost(), &cfg(100)).unwrap();
    let client = UdpSocket::bind_ephemeral("127.0.0.1".parse().unwrap(), &cfg(100)).unwrap();
    let out: Vec<Outgoing> = (0..40)
        .map(|i| Outgoing::udp(server.local_addr(), sip(i)))
        .collect();
    assert_eq!(client.send_batch(&out).unwrap(), 40);
    let (got, max_batch) = recv_n(&server, 40);
    assert_eq!(got.len(), 40);
    assert!(max_batch > 1, "recvmmsg returned several datagrams at once");
    assert!(max_batch <= 32, "never more than the batch size");
    for (i, inc) in got.iter().enumerate() {
        assert_eq!(inc.bytes, sip(i), "order and content kept");
        assert_eq!(inc.source, client.local_addr());
        assert_eq!(inc.local, server.local_addr());
        assert_eq!(inc.transport, Transport::Udp);
        assert_eq!(inc.connection, None);
        sip_core::Message::parse(inc.bytes.clone()).unwrap();
    }
}

#[test]
fn read_timeout_returns_zero() {
    let s = UdpSocket::bind(localhost(), &cfg(30)).unwrap();
    let mut batch = RecvBatch::default();
    let t = Instant::now();
    assert_eq!(s.recv_batch(&mut batch).unwrap(), 0);
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(20) && e < Duration::from_secs(2),
        "{e:?}"
    );
}

#[test]
fn reuseport_workers_share_the_port() {
    let workers = UdpSocket::bind_reuseport(localhost(), 4, &cfg(20)).unwrap();
    let port = workers[0].local_addr().port();
    assert!(workers.iter().all(|w| w.local_addr().port() == port));
    // Many sources: the kernel spreads them by source port over the workers.
    let clients: Vec<UdpSocket> = (0..32)
        .map(|_| UdpSocket::bind(localhost(), &cfg(20)).unwrap())
        .collect();
    for (i, c) in clients.iter().enumerate() {
        c.send_batch(&[Outgoing::udp(workers[0].local_addr(), sip(i))])
            .unwrap();
    }
    let mut seen = HashSet::new();
    let mut workers_used = 0;
    let mut batch = RecvBatch::default();
    let end = Instant::now() + Duration::from_secs(3);
    while seen.len() < 32 && Instant::now() < end {
        for w in &workers {
            let n = w.recv_batch(&mut batch).unwrap();
            if n > 0 {
                workers_used += 1;
            }
            for inc in batch.drain() {
                seen.insert(inc.source);
            }
        }
    }
    assert_eq!(seen.len(), 32, "every datagram delivered to some worker");
    assert!(workers_used >= 2, "more than one worker received traffic");
}

#[test]
fn icmp_port_unreachable_does_not_kill_the_socket() {
    let s = UdpSocket::bind(localhost(), &cfg(200)).unwrap();
    // Ask the kernel to report ICMP errors on this unconnected socket too, the worst case.
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: valid fd, option value points to a c_int of the given size.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_RECVERR,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
    }
    let dead = {
        let d = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        d.local_addr().unwrap()
    }; // closed: the port now answers with ICMP port unreachable
    let live = UdpSocket::bind(localhost(), &cfg(500)).unwrap();
    for i in 0..3 {
        let sent = s
            .send_batch(&[
                Outgoing::udp(dead, sip(i)),
                Outgoing::udp(live.local_addr(), sip(i)),
            ])
            .unwrap();
        assert!(sent >= 1, "the live destination is still served");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (got, _) = recv_n(&live, 3);
    assert_eq!(got.len(), 3);
    // Receiving on the socket that got the ICMP errors still works.
    live.send_batch(&[Outgoing::udp(s.local_addr(), sip(99))])
        .unwrap();
    let (got, _) = recv_n(&s, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].bytes, sip(99));
}

#[test]
fn oversized_datagram_dropped_and_counted() {
    let s = UdpSocket::bind(localhost(), &cfg(200)).unwrap();
    let c = UdpSocket::bind(localhost(), &cfg(200)).unwrap();
    let big = Bytes::from(vec![b'x'; 300]);
    c.send_batch(&[
        Outgoing::udp(s.local_addr(), big),
        Outgoing::udp(s.local_addr(), sip(1)),
    ])
    .unwrap();
    let mut batch = RecvBatch::new(8, 256);
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(3);
    while got.is_empty() && Instant::now() < end {
        s.recv_batch(&mut batch).unwrap();
        got.extend(batch.drain());
    }
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].bytes, sip(1));
    assert_eq!(batch.truncated(), 1);
}

#[test]
fn receive_buffers_are_reused_once_released() {
    let s = UdpSocket::bind(localhost(), &cfg(200)).unwrap();
    let c = UdpSocket::bind(localhost(), &cfg(200)).unwrap();
    let mut batch = RecvBatch::new(1, 1500);
    let mut ptrs = HashSet::new();
    for i in 0..200 {
        c.send_batch(&[Outgoing::udp(s.local_addr(), sip(i))])
            .unwrap();
        let mut n = 0;
        let end = Instant::now() + Duration::from_secs(3);
        while n == 0 && Instant::now() < end {
            n = s.recv_batch(&mut batch).unwrap();
        }
        assert_eq!(n, 1);
        let inc = batch.drain().next().unwrap();
        ptrs.insert(inc.bytes.as_ptr() as usize / (64 << 10));
        drop(inc);
    }
    // 200 datagrams, each dropped before the next receive: a handful of chunks at most.
    assert!(ptrs.len() <= 8, "{} chunks used", ptrs.len());
}

#[test]
fn ipv6_loopback() {
    let Ok(s) = UdpSocket::bind("[::1]:0".parse().unwrap(), &cfg(200)) else {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    };
    let c = UdpSocket::bind("[::1]:0".parse().unwrap(), &cfg(200)).unwrap();
    c.send_batch(&[Outgoing::udp(s.local_addr(), sip(6))])
        .unwrap();
    let (got, _) = recv_n(&s, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].source, c.local_addr());
    assert!(got[0].source.is_ipv6());
}

#[test]
fn dual_stack_socket_reports_ipv4_peers_as_ipv4() {
    let Ok(s) = UdpSocket::bind(
        "[::]:0".parse().unwrap(),
        &UdpConfig {
            only_v6: Some(false),
            ..cfg(200)
        },
    ) else {
        eprintln!("no IPv6 here; skipped");
        return;
    };
    let c = UdpSocket::bind(localhost(), &cfg(200)).unwrap();
    let to = SocketAddr::new("127.0.0.1".parse().unwrap(), s.local_addr().port());
    c.send_batch(&[Outgoing::udp(to, sip(4))]).unwrap();
    let (got, _) = recv_n(&s, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].source, c.local_addr(), "IPv4, not ::ffff:127.0.0.1");
    // And an IPv4 destination works on the IPv6 socket.
    assert_eq!(
        s.send_batch(&[Outgoing::udp(c.local_addr(), sip(5))])
            .unwrap(),
        1
    );
    let (got, _) = recv_n(&c, 1);
    assert_eq!(got[0].bytes, sip(5));
}

#[tokio::test]
async fn async_batches_on_tokio() {
    let s = AsyncUdpSocket::new(UdpSocket::bind(localhost(), &cfg(200)).unwrap()).unwrap();
    let c = UdpSocket::bind(localhost(), &cfg(200))
        .unwrap()
        .into_async()
        .unwrap();
    let out: Vec<Outgoing> = (0..10)
        .map(|i| Outgoing::udp(s.local_addr(), sip(i)))
        .collect();
    assert_eq!(c.send_batch(&out).await.unwrap(), 10);
    let mut batch = RecvBatch::default();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), async {
        while got.len() < 10 {
            s.recv_batch(&mut batch).await.unwrap();
            got.extend(batch.drain());
        }
    })
    .await
    .expect("received in time");
    assert_eq!(
        got.iter().map(|i| i.bytes.clone()).collect::<Vec<_>>(),
        (0..10).map(sip).collect::<Vec<_>>()
    );
    // Reply from the async socket.
    assert_eq!(s.send_to(b"pong", got[0].source).await.unwrap(), 1);
    tokio::time::timeout(Duration::from_secs(3), c.recv_batch(&mut batch))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&batch.incoming()[0].bytes[..], b"pong");
}

#[test]
fn a_poller_reports_only_readable_sockets_and_a_waker_interrupts_it() {
    use sip_transport::poll::{Poller, Waker};
    let a = UdpSocket::bind(localhost(), &cfg(100)).unwrap();
    let b = UdpSocket::bind(localhost(), &cfg(100)).unwrap();
    let tx = std::net::UdpSocket::bind(localhost()).unwrap();
    let waker = std::sync::Arc::new(Waker::new().unwrap());
    let mut p = Poller::new();
    let (ia, ib, iw) = (p.add(&a), p.add(&b), p.add(&*waker));
    // Nothing queued: the wait times out, nothing readable.
    let t = Instant::now();
    assert_eq!(p.wait(Some(Duration::from_millis(30))).unwrap(), 0);
    assert!(t.elapsed() >= Duration::from_millis(25));
    assert!(!p.is_readable(ia) && !p.is_readable(ib) && !p.is_readable(iw));
    // Three datagrams to `b`: only `b` is readable, and one batch takes them all.
    for n in 0..3 {
        tx.send_to(&sip(n), b.local_addr()).unwrap();
    }
    assert_eq!(p.wait(Some(Duration::from_secs(3))).unwrap(), 1);
    assert!(p.is_readable(ib) && !p.is_readable(ia));
    let mut batch = RecvBatch::new(8, 65535);
    assert_eq!(b.try_recv_batch(&mut batch).unwrap(), 3);
    assert_eq!(
        b.try_recv_batch(&mut batch).unwrap(),
        0,
        "nothing left, no error"
    );
    // A disabled socket is not waited on, even with a datagram queued.
    tx.send_to(&sip(9), a.local_addr()).unwrap();
    p.set_enabled(ia, false);
    assert_eq!(p.wait(Some(Duration::from_millis(30))).unwrap(), 0);
    p.set_enabled(ia, true);
    assert_eq!(p.wait(Some(Duration::from_secs(3))).unwrap(), 1);
    assert!(p.is_readable(ia));
    assert_eq!(a.try_recv_batch(&mut batch).unwrap(), 1);
    // Another thread's wake ends an unbounded wait.
    let w = waker.clone();
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        w.wake();
        w.wake();
    });
    assert_eq!(p.wait(None).unwrap(), 1);
    assert!(p.is_readable(iw));
    h.join().unwrap();
    waker.reset();
    assert_eq!(
        p.wait(Some(Duration::from_millis(20))).unwrap(),
        0,
        "reset consumed both wakes"
    );
}

/// A receive offers room for twice what the previous one took (at least 4) and doubles
/// the room after a full one (an empty receive leaves it); `was_full` tells the caller to receive again. Nothing queued
/// is lost or reordered whatever the offer.
#[cfg(unix)]
#[test]
fn a_receive_offers_room_for_twice_what_the_last_one_took() {
    let s = UdpSocket::bind(localhost(), &cfg(200)).unwrap();
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut batch = RecvBatch::new(32, 1500);
    let mut seen = Vec::new();
    let mut step = |batch: &mut RecvBatch| {
        let n = s.try_recv_batch(batch).unwrap();
        seen.extend(batch.drain().map(|i| i.bytes));
        (n, batch.was_full())
    };
    // Datagrams queued at once (loopback queues one before its send returns), then the
    // receives that follow: (datagrams taken, the receive came back full).
    let plan: [(usize, &[(usize, bool)]); 5] = [
        // The first receive offers the whole batch; nothing queued leaves the offer.
        (40, &[(32, true), (8, false), (0, false)]),
        // After taking 8: room for 16, full, so room for 32.
        (20, &[(16, true), (4, false)]),
        // After taking 4: room for 8.
        (10, &[(8, true), (2, false), (0, false)]),
        // After taking 2: room for 4; after taking 1, still room for 4 (the least).
        (1, &[(1, false)]),
        (6, &[(4, true), (2, false)]),
    ];
    let mut sent = 0;
    for (queued, receives) in plan {
        for i in sent..sent + queued {
            c.send_to(&sip(i), s.local_addr()).unwrap();
        }
        sent += queued;
        for (k, want) in receives.iter().enumerate() {
            assert_eq!(
                step(&mut batch),
                *want,
                "receive {k} after queueing {queued}"
            );
        }
    }
    let want: Vec<Bytes> = (0..sent).map(sip).collect();
    assert_eq!(seen, want);
}
