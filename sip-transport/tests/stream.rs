//! TCP, TLS, WS and WSS on loopback: framing, reuse, limits, slow senders, oversized
//! messages, IPv6. Every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use sip_transport::stream::{CloseReason, ConnectionEvent, RefuseReason};
use sip_transport::{
    Incoming, Outgoing, StreamConfig, StreamLimits, StreamTransport, Transport, tls,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

const T: Duration = Duration::from_secs(5);

fn sip(n: usize) -> Vec<u8> {
    let body = format!("body-{n}");
    format!(
        "MESSAGE sip:lb@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@x>;tag=1\r\nTo: <sip:lb@x>\r\nCall-ID: c-{n}\r\n\
         CSeq: 1 MESSAGE\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn lo() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct Node {
    t: StreamTransport,
    rx: mpsc::Receiver<Incoming>,
    events: mpsc::Receiver<ConnectionEvent>,
}

fn node(mut cfg: StreamConfig) -> Node {
    let (tx, rx) = mpsc::channel(64);
    let (etx, events) = mpsc::channel(256);
    cfg.events = Some(etx);
    Node {
        t: StreamTransport::new(cfg, tx),
        rx,
        events,
    }
}

async fn next(rx: &mut mpsc::Receiver<Incoming>) -> Incoming {
    timeout(T, rx.recv())
        .await
        .expect("message in time")
        .expect("channel open")
}

/// Reads until the peer closes; panics if it does not within `T`.
async fn closed_by_peer(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    timeout(T, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("connection closed by the server");
}

async fn read_exact_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    timeout(T, s.read_exact(&mut buf)).await.unwrap().unwrap();
    buf
}

async fn wait_event(
    ev: &mut mpsc::Receiver<ConnectionEvent>,
    f: impl Fn(&ConnectionEvent) -> bool,
) -> ConnectionEvent {
    timeout(T, async {
        loop {
            let e = ev.recv().await.expect("events open");
            if f(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event in time")
}

#[tokio::test]
async fn tcp_split_writes_coalesced_writes_ping_and_reply() {
    let mut a = node(StreamConfig::default());
    let addr = a.t.listen(lo(), Transport::Tcp).await.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    // One message in three writes.
    let m0 = sip(0);
    for part in [&m0[..10], &m0[10..100], &m0[100..]] {
        c.write_all(part).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let inc = next(&mut a.rx).await;
    assert_eq!(&inc.bytes[..], &m0[..]);
    assert_eq!(inc.transport, Transport::Tcp);
    assert_eq!(inc.source, c.local_addr().unwrap());
    assert_eq!(inc.local, addr);
    let id = inc.connection.expect("connection id");
    // Three messages in one write, then a keep-alive ping.
    let mut all = Vec::new();
    for i in 1..4 {
        all.extend(sip(i));
    }
    all.extend_from_slice(b"\r\n\r\n");
    c.write_all(&all).await.unwrap();
    for i in 1..4 {
        let inc = next(&mut a.rx).await;
        assert_eq!(&inc.bytes[..], &sip(i)[..]);
        assert_eq!(inc.connection, Some(id), "same connection");
        sip_core::Message::parse_with(
            inc.bytes,
            &sip_core::ParseOptions {
                framing: sip_core::Framing::Stream,
                ..Default::default()
            },
        )
        .unwrap();
    }
    assert_eq!(read_exact_n(&mut c, 2).await, b"\r\n", "pong");
    // A response goes back on the connection the request came in on.
    let reply = Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    let sender = a.t.sender();
    let used = sender
        .send(Outgoing::reply_to(
            &inc_like(id, c.local_addr().unwrap()),
            reply.clone(),
        ))
        .unwrap();
    assert_eq!(used, id);
    assert_eq!(read_exact_n(&mut c, reply.len()).await, reply);
    // The same connection is found by address in the pool (RFC 5923 alias).
    assert_eq!(
        sender.pooled(c.local_addr().unwrap(), Transport::Tcp),
        Some(id)
    );
    drop(c);
    let e = wait_event(&mut a.events, |e| {
        matches!(e, ConnectionEvent::Closed { .. })
    })
    .await;
    assert!(
        matches!(
            e,
            ConnectionEvent::Closed {
                reason: CloseReason::PeerClosed,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!sender.is_open(id));
}

fn inc_like(id: sip_transport::ConnectionId, source: SocketAddr) -> Incoming {
    Incoming {
        bytes: Bytes::new(),
        source,
        local: source,
        transport: Transport::Tcp,
        connection: Some(id),
    }
}

#[tokio::test]
async fn outbound_tcp_pool_reuses_one_connection() {
    let mut a = node(StreamConfig::default());
    let addr = a.t.listen(lo(), Transport::Tcp).await.unwrap();
    let b = node(StreamConfig::default());
    let s = b.t.sender();
    let id1 = s
        .send(Outgoing::new(addr, Transport::Tcp, sip(1).into()))
        .unwrap();
    let id2 = s
        .send(Outgoing::new(addr, Transport::Tcp, sip(2).into()))
        .unwrap();
    assert_eq!(
        id1, id2,
        "the second message waits on the connection being opened"
    );
    let i1 = next(&mut a.rx).await;
    let i2 = next(&mut a.rx).await;
    assert_eq!((&i1.bytes[..], &i2.bytes[..]), (&sip(1)[..], &sip(2)[..]));
    assert_eq!(i1.connection, i2.connection);
    assert_eq!(b.t.outbound_connections(), 1);
    assert_eq!(a.t.inbound_connections(), 1);
    // A connection refused: reported, and the next send tries again.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut bb = b;
    let id =
        bb.t.sender()
            .send(Outgoing::new(dead, Transport::Tcp, sip(3).into()))
            .unwrap();
    let e = wait_event(&mut bb.events, |e| {
        matches!(e, ConnectionEvent::ConnectFailed { .. })
    })
    .await;
    assert!(matches!(e, ConnectionEvent::ConnectFailed { id: i, .. } if i == id));
    timeout(T, async {
        while bb.t.outbound_connections() != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn connection_limits_refuse_new_and_keep_existing() {
    let mut a = node(StreamConfig {
        limits: StreamLimits {
            max_connections_per_ip: 2,
            ..StreamLimits::default()
        },
        ..StreamConfig::default()
    });
    let addr = a.t.listen(lo(), Transport::Tcp).await.unwrap();
    let mut c1 = TcpStream::connect(addr).await.unwrap();
    let mut c2 = TcpStream::connect(addr).await.unwrap();
    c1.write_all(&sip(1)).await.unwrap();
    c2.write_all(&sip(2)).await.unwrap();
    next(&mut a.rx).await;
    next(&mut a.rx).await;
    let mut c3 = TcpStream::connect(addr).await.unwrap();
    let _ = c3.write_all(&sip(3)).await;
    closed_by_peer(&mut c3).await;
    let e = wait_event(&mut a.events, |e| {
        matches!(e, ConnectionEvent::Refused { .. })
    })
    .await;
    assert!(matches!(
        e,
        ConnectionEvent::Refused {
            reason: RefuseReason::PerIpLimit,
            ..
        }
    ));
    // Existing connections unaffected.
    c1.write_all(&sip(4)).await.unwrap();
    assert_eq!(&next(&mut a.rx).await.bytes[..], &sip(4)[..]);
    assert_eq!(a.t.inbound_connections(), 2);
    // After one closes, a new one is accepted.
    drop(c2);
    timeout(T, async {
        while a.t.inbound_connections() != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let mut c5 = TcpStream::connect(addr).await.unwrap();
    c5.write_all(&sip(5)).await.unwrap();
    assert_eq!(&next(&mut a.rx).await.bytes[..], &sip(5)[..]);
}

#[tokio::test]
async fn total_connection_limit() {
    let mut a = node(StreamConfig {
        limits: StreamLimits {
            max_connections: 1,
            ..StreamLimits::default()
        },
        ..StreamConfig::default()
    });
    let addr = a.t.listen(lo(), Transport::Tcp).await.unwrap();
    let mut c1 = TcpStream::connect(addr).await.unwrap();
    c1.write_all(&sip(1)).await.unwrap();
    next(&mut a.rx).await;
    let mut c2 = TcpStream::connect(addr).await.unwrap();
    closed_by_peer(&mut c2).await;
    let e = wait_event(&mut a.events, |e| {
        matches!(e, ConnectionEvent::Refused { .. })
    })
    .await;
    assert!(matches!(
        e,
        ConnectionEvent::Refused {
            reason: RefuseReason::TotalLimit,
            ..
        }
    ));
    c1.write_all(&sip(2)).await.unwrap();
    assert_eq!(&next(&mut a.rx).await.bytes[..], &sip(2)[..]);
}

#[tokio::test]
async fn slow_sender_is_cut_off_idle_connection_is_not() {
    let mut a = node(StreamConfig {
        limits: StreamLimits {
            message_read_timeout: Duration::from_millis(300),
            ..StreamLimits::default()
        },
        ..StreamConfig::default()
    });
    let addr = a.t.listen(lo(), Transport::Tcp).await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let m = sip(1);
    slow.write_all(&m[..20]).await.unwrap();
    let started = tokio::time::Instant::now();
    // Trickle a byte every 100 ms: each read is on time, the message never is.
    let trickle = async {
        for b in &m[20..] {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
        }
    };
    let _ = timeout(Duration::from_secs(2), trickle).await;
    closed_by_peer(&mut slow).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let e = wait_event(&mut a.events, |e| {
        matches!(e, ConnectionEvent::Closed { .. })
    })
    .await;
    assert!(
        matches!(
            e,
            ConnectionEvent::Closed {
                reason: CloseReason::ReadTimeout,
                ..
            }
        ),
        "{e:?}"
    );
    // The idle connection (no partial message) outlived the message deadline.
    idle.write_all(&sip(2)).await.unwrap();
    assert_eq!(&next(&mut a.rx).await.bytes[..], &sip(2)[..]);
}

#[tokio::test]
async fn idle_timeout_closes() {
    let mut a = node(StreamConfig {
        limits: StreamLimits {
            idle_timeout: Duration::from_millis(200),
            ..StreamLimits::default()
        },
        ..StreamConfig::default()
    });
    let addr = a.t.listen(lo(), Transport::Tcp).await.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    closed_by_peer(&mut c).await;
    let e = wait_event(&mut a.events, |e| {
        matches!(e, ConnectionEvent::Closed { .. })
    })
    .await;
    assert!(matches!(
        e,
        ConnectionEvent::Closed {
            reason: CloseReason::IdleTimeout,
            ..
        }
    ));
}

#[tokio::test]
async fn oversized_or_unframed_message_closes_only_its_connection() {
    let mut a = node(StreamConfig {
        limits: StreamLimits {
            max_message_size: 1000,
            ..StreamLimits::default()
        },
        ..StreamConfig::default()
    });
    let addr = a.t.listen(lo(), Transport::Tcp).await.unwrap();
    let mut good = TcpStream::connect(addr).await.unwrap();
    let mut big = TcpStream::connect(addr).await.unwrap();
    big.write_all(b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 5000\r\n\r\n")
        .await
        .unwrap();
    closed_by_peer(&mut big).await;
    let mut nocl = TcpStream::connect(addr).await.unwrap();
    nocl.write_all(b"MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n")
        .await
        .unwrap();
    closed_by_peer(&mut nocl).await;
    let mut reasons = Vec::new();
    for _ in 0..2 {
        if let ConnectionEvent::Closed { reason, .. } = wait_event(&mut a.events, |e| {
            matches!(e, ConnectionEvent::Closed { .. })
        })
        .await
        {
            reasons.push(reason);
        }
    }
    assert!(reasons.iter().any(|r| matches!(
        r,
        CloseReason::Framing(sip_core::FramerError::TooLarge { limit: 1000 })
    )));
    assert!(reasons.iter().any(|r| matches!(
        r,
        CloseReason::Framing(sip_core::FramerError::MissingContentLength { .. })
    )));
    good.write_all(&sip(7)).await.unwrap();
    assert_eq!(&next(&mut a.rx).await.bytes[..], &sip(7)[..]);
}

#[tokio::test]
async fn peer_closing_mid_message_loses_only_that_message() {
    let mut a = node(StreamConfig::default());
    let addr = a.t.listen(lo(), Transport::Tcp).await.unwrap();
    let mut other = TcpStream::connect(addr).await.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut bytes = sip(1);
    bytes.extend_from_slice(&sip(2)[..50]);
    c.write_all(&bytes).await.unwrap();
    assert_eq!(&next(&mut a.rx).await.bytes[..], &sip(1)[..]);
    drop(c);
    other.write_all(&sip(3)).await.unwrap();
    assert_eq!(&next(&mut a.rx).await.bytes[..], &sip(3)[..]);
}

#[tokio::test]
async fn ipv6_tcp() {
    let mut a = node(StreamConfig::default());
    let Ok(addr) = a.t.listen("[::1]:0".parse().unwrap(), Transport::Tcp).await else {
        eprintln!("no IPv6 loopback; skipped");
        return;
    };
    let b = node(StreamConfig::default());
    b.t.sender()
        .send(Outgoing::new(addr, Transport::Tcp, sip(6).into()))
        .unwrap();
    let inc = next(&mut a.rx).await;
    assert_eq!(&inc.bytes[..], &sip(6)[..]);
    assert!(inc.source.is_ipv6());
}

fn cert() -> (Vec<u8>, Vec<u8>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    (
        ck.cert.pem().into_bytes(),
        ck.signing_key.serialize_pem().into_bytes(),
    )
}

fn tls_pair() -> (StreamConfig, StreamConfig) {
    let (cert_pem, key_pem) = cert();
    let server = StreamConfig {
        tls_server: Some(tls::server_config_from_pem(&cert_pem, &key_pem).unwrap()),
        ..StreamConfig::default()
    };
    let client = StreamConfig {
        tls_client: Some(tls::client_config_from_ca_pem(&cert_pem).unwrap()),
        ..StreamConfig::default()
    };
    (server, client)
}

#[tokio::test]
async fn tls_both_ways_with_generated_certificate() {
    let (scfg, ccfg) = tls_pair();
    let mut a = node(scfg);
    let addr = a.t.listen(lo(), Transport::Tls).await.unwrap();
    let mut b = node(ccfg);
    b.t.sender()
        .send(Outgoing::new(addr, Transport::Tls, sip(1).into()))
        .unwrap();
    let inc = next(&mut a.rx).await;
    assert_eq!(&inc.bytes[..], &sip(1)[..]);
    assert_eq!(inc.transport, Transport::Tls);
    // Reply over the same TLS connection.
    let reply = Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    a.t.sender()
        .send(Outgoing::reply_to(&inc, reply.clone()))
        .unwrap();
    let back = next(&mut b.rx).await;
    assert_eq!(back.bytes, reply);
    assert_eq!(back.transport, Transport::Tls);
    // A client that does not trust the certificate fails the handshake: nothing delivered.
    let (_, other_ccfg) = tls_pair();
    let mut c = node(other_ccfg);
    c.t.sender()
        .send(Outgoing::new(addr, Transport::Tls, sip(2).into()))
        .unwrap();
    let e = wait_event(&mut c.events, |e| {
        matches!(e, ConnectionEvent::ConnectFailed { .. })
    })
    .await;
    assert!(matches!(e, ConnectionEvent::ConnectFailed { .. }));
    assert!(
        timeout(Duration::from_millis(200), a.rx.recv())
            .await
            .is_err()
    );
    // Without a client configuration, TLS is refused up front.
    let d = node(StreamConfig::default());
    assert!(matches!(
        d.t.sender()
            .send(Outgoing::new(addr, Transport::Tls, sip(3).into())),
        Err(sip_transport::Error::NoTlsClientConfig(Transport::Tls))
    ));
}

#[tokio::test]
async fn websocket_client_with_sip_subprotocol() {
    let mut a = node(StreamConfig::default());
    let addr = a.t.listen(lo(), Transport::Ws).await.unwrap();
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, resp) = timeout(T, tokio_tungstenite::client_async(req, tcp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.headers().get("Sec-WebSocket-Protocol").unwrap(), "sip");
    let m = String::from_utf8(sip(1)).unwrap();
    ws.send(tungstenite::Message::Text(m.clone().into()))
        .await
        .unwrap();
    let inc = next(&mut a.rx).await;
    assert_eq!(&inc.bytes[..], m.as_bytes());
    assert_eq!(inc.transport, Transport::Ws);
    let reply = Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    a.t.sender()
        .send(Outgoing::reply_to(&inc, reply.clone()))
        .unwrap();
    let got = timeout(T, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(
        got,
        tungstenite::Message::Text("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".into())
    );
    // Without the subprotocol the handshake is refused.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let r = timeout(
        T,
        tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp),
    )
    .await
    .unwrap();
    assert!(r.is_err());
}

#[tokio::test]
async fn outbound_ws_and_wss() {
    let (scfg, ccfg) = tls_pair();
    let mut a = node(scfg);
    let ws_addr = a.t.listen(lo(), Transport::Ws).await.unwrap();
    let wss_addr = a.t.listen(lo(), Transport::Wss).await.unwrap();
    let mut b = node(ccfg);
    let s = b.t.sender();
    s.send(Outgoing::new(ws_addr, Transport::Ws, sip(1).into()))
        .unwrap();
    let inc = next(&mut a.rx).await;
    assert_eq!(
        (&inc.bytes[..], inc.transport),
        (&sip(1)[..], Transport::Ws)
    );
    s.send(Outgoing::new(wss_addr, Transport::Wss, sip(2).into()))
        .unwrap();
    let inc = next(&mut a.rx).await;
    assert_eq!(
        (&inc.bytes[..], inc.transport),
        (&sip(2)[..], Transport::Wss)
    );
    a.t.sender()
        .send(Outgoing::reply_to(&inc, sip(3).into()))
        .unwrap();
    let back = next(&mut b.rx).await;
    assert_eq!(
        (&back.bytes[..], back.transport),
        (&sip(3)[..], Transport::Wss)
    );
}

#[tokio::test]
async fn write_queue_is_bounded() {
    // A peer that never reads: the queue fills and sending fails instead of growing.
    let listener = tokio::net::TcpListener::bind(lo()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(s);
    });
    let b = node(StreamConfig {
        limits: StreamLimits {
            write_queue: 4,
            ..StreamLimits::default()
        },
        ..StreamConfig::default()
    });
    let s = b.t.sender();
    let big = Bytes::from(vec![b'x'; 60_000]);
    let mut full = false;
    for _ in 0..2000 {
        match s.send(Outgoing::new(addr, Transport::Tcp, big.clone())) {
            Ok(_) => tokio::task::yield_now().await,
            Err(sip_transport::Error::QueueFull { destination }) => {
                assert_eq!(destination, addr);
                full = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full, "queue full reported");
}
