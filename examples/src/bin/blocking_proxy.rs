//! Embedding the sans-IO proxy core in a runtime of your own: a single blocking thread,
//! one `std::net::UdpSocket`, no async runtime. Everything the proxy does is driven by
//! three calls: `handle_datagram` for what arrives, `handle_timeout` when the deadline
//! from `poll_timeout` passes, and `poll_transmit` for what to send.
//!
//! ```text
//! cargo run -p sip-lb-examples --bin blocking_proxy -- 127.0.0.1:5060 dispatcher.list [seconds]
//! ```
//! The list is a Kamailio `dispatcher.list`; set 1 is balanced round robin. The program
//! stops by itself after `seconds` (default 60).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_core::Transport;
use sip_dispatch::{DestinationList, Dispatcher};
use sip_proxy::{CallTable, LocalEndpoint, Origin, Proxy, ProxyConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args.next().unwrap_or("127.0.0.1:5060".into()).parse()?;
    let list_path = args
        .next()
        .ok_or("usage: blocking_proxy ADDR LIST [SECONDS]")?;
    let seconds: u64 = args.next().map_or(Ok(60), |s| s.parse())?;

    let list = DestinationList::parse_kamailio(&std::fs::read_to_string(&list_path)?)?;
    let dispatcher = Arc::new(Dispatcher::new(list));
    let cfg = ProxyConfig {
        listeners: vec![LocalEndpoint::new(Transport::Udp, listen)],
        cookie_key: b"example key: use a random secret".to_vec(),
        ..ProxyConfig::default()
    };
    let mut proxy = Proxy::new(cfg, dispatcher, Arc::new(CallTable::new()));
    let socket = UdpSocket::bind(listen)?;
    let mut buf = vec![0u8; 65536];
    let end = Instant::now() + Duration::from_secs(seconds);
    proxy.start(Instant::now());
    eprintln!("blocking_proxy: balancing on {listen} for {seconds} s");
    while Instant::now() < end {
        // Sleep in recv until the next timer (at most 100 ms).
        let now = Instant::now();
        let wait = proxy
            .poll_timeout()
            .map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        socket.set_read_timeout(Some(wait))?;
        if let Ok((n, source)) = socket.recv_from(&mut buf) {
            let origin = Origin::udp(source, listen);
            proxy.handle_datagram(Instant::now(), origin, Bytes::copy_from_slice(&buf[..n]));
        }
        proxy.handle_timeout(Instant::now());
        while let Some(t) = proxy.poll_transmit() {
            // A UDP-only runtime: anything for another transport is skipped.
            if t.transport == Transport::Udp {
                let _ = socket.send_to(&t.bytes, t.destination);
            }
        }
        while let Some(event) = proxy.poll_event() {
            eprintln!("event: {event:?}");
        }
    }
    let stats = proxy.stats();
    eprintln!(
        "blocking_proxy: done; {} requests forwarded, {} responses forwarded",
        stats.requests_forwarded, stats.responses_forwarded
    );
    Ok(())
}
