//! `sip-lb demo`: the balancer on loopback with four built-in backends (small SIP user
//! agents that answer calls and probes) and a built-in caller placing calls at a modest
//! rate; one backend is stopped midway to show failover. Ends by itself.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use sip_core::builder::ResponseBuilder;
use sip_core::{HeaderName, Message, Method};

use crate::config::{AlgorithmSetting, Config, Listen};
use crate::{Started, StopHandle};

/// One demo backend: a UDP user agent answering INVITE (180, 200), BYE, CANCEL, OPTIONS.
struct Backend {
    addr: SocketAddr,
    answered: Arc<AtomicU64>,
    alive: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Backend {
    fn start(n: usize) -> std::io::Result<Backend> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = sock.local_addr()?;
        let answered = Arc::new(AtomicU64::new(0));
        let alive = Arc::new(AtomicBool::new(true));
        let (a2, l2) = (answered.clone(), alive.clone());
        let handle = std::thread::Builder::new()
            .name(format!("demo-backend-{n}"))
            .spawn(move || backend_loop(sock, n, a2, l2))?;
        Ok(Backend {
            addr,
            answered,
            alive,
            handle: Some(handle),
        })
    }

    fn stop(&mut self) {
        self.alive.store(false, Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn backend_loop(sock: UdpSocket, n: usize, answered: Arc<AtomicU64>, alive: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65536];
    let tag = format!("demo{n}");
    let contact = format!(
        "<sip:demo{n}@{}>",
        sock.local_addr()
            .map_or_else(|_| "127.0.0.1".into(), |a| a.to_string())
    );
    while alive.load(Relaxed) {
        let Ok((len, src)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Ok(req) = Message::parse(Bytes::copy_from_slice(&buf[..len])) else {
            continue;
        };
        if !req.is_request() {
            continue;
        }
        let rr: Vec<&[u8]> = req
            .headers_named(HeaderName::RecordRoute)
            .map(|h| h.value)
            .collect();
        let respond = |code: u16, reason: &str| {
            let mut b = ResponseBuilder::new(&req, code, reason).to_tag(tag.as_bytes());
            if req.method() == Some(Method::Invite) && code > 100 {
                for v in &rr {
                    b = b.header(b"Record-Route", v);
                }
                b = b.header(b"Contact", contact.as_bytes());
            }
            let _ = sock.send_to(&b.build(), src);
        };
        match req.method() {
            Some(Method::Invite) => {
                respond(180, "Ringing");
                respond(200, "OK");
                answered.fetch_add(1, Relaxed);
            }
            Some(Method::Ack) => {}
            Some(Method::Cancel) => respond(200, "OK"),
            _ => respond(200, "OK"),
        }
    }
}

struct CallState {
    started: Instant,
    done: bool,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// `--algorithm` names no algorithm.
    #[error("--algorithm: {0}")]
    Algorithm(#[from] sip_dispatch::UnknownAlgorithm),
    /// A socket or thread of the demo could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What (`the demo backends`, `the caller's socket`).
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The balancer did not report that it started within 10 s.
    #[error("the balancer did not start within 10 s")]
    NotStarted,
    /// The balancer failed.
    #[error(transparent)]
    Serve(#[from] crate::ServeError),
    /// The balancer's thread panicked.
    #[error("the balancer thread panicked")]
    Panicked,
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> DemoError {
    move |source| DemoError::Io { what, source }
}

/// Runs the demo.
pub fn run(duration: u64, rate: u32, algorithm: &str) -> Result<(), DemoError> {
    let algorithm: sip_dispatch::Algorithm = algorithm.parse()?;
    let rate = rate.clamp(1, 2000);
    let duration = duration.clamp(3, 3600);
    let mut backends: Vec<Backend> = (0..4)
        .map(Backend::start)
        .collect::<std::io::Result<_>>()
        .map_err(io("cannot start demo backends"))?;
    // The balancer on a free loopback port.
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(io("no free port for the balancer"))?
        .port();
    let mut cfg = Config::default();
    cfg.proxy.listen = vec![Listen {
        transport: sip_core::Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }];
    cfg.proxy.workers = 2;
    cfg.proxy.cookie_key = Some("sip-lb demo".into());
    cfg.dispatcher.algorithm = AlgorithmSetting(algorithm);
    cfg.dispatcher.destinations = backends
        .iter()
        .map(|b| sip_dispatch::DestinationSpec {
            set: 1,
            uri: format!("sip:{}", b.addr),
            flags: sip_dispatch::Flags(0),
            priority: 0,
            attrs: Default::default(),
        })
        .collect();
    cfg.probing.interval_s = 1.0;
    cfg.probing.timeout_s = 0.5;
    cfg.probing.inactive_threshold = 2;
    cfg.timers.no_response_ms = 1500;
    cfg.admin.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.log.level = "warn".into();
    let lb = cfg.proxy.listen[0].addr;
    let stop = StopHandle::default();
    let (tx, rx) = std::sync::mpsc::channel::<Started>();
    let stop2 = stop.clone();
    let server = std::thread::spawn(move || crate::serve(cfg, Some((stop2, tx))));
    let started = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| DemoError::NotStarted)?;
    println!(
        "sip-lb demo: balancer on udp:{lb}, algorithm {}",
        algorithm.name()
    );
    if let Some(a) = started.admin {
        println!(
            "  status page: http://{a}/   metrics: http://{a}/metrics   API: http://{a}/api/destinations"
        );
    }
    for (i, b) in backends.iter().enumerate() {
        println!("  backend {i}: sip:{}", b.addr);
    }

    // The caller.
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(io("the caller's socket"))?;
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .map_err(io("the caller's socket"))?;
    let me = sock.local_addr().map_err(io("the caller's socket"))?;
    let total = u64::from(rate) * duration;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} calls  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut calls: HashMap<String, CallState> = HashMap::new();
    let (mut ok, mut failed, mut placed) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut killed = false;
    let mut buf = vec![0u8; 65536];
    let end = start + Duration::from_secs(duration) + Duration::from_secs(8);
    while Instant::now() < end && (placed < total || calls.values().any(|c| !c.done)) {
        let due = (start.elapsed().as_secs_f64() * f64::from(rate)) as u64;
        while placed < total.min(due) {
            placed += 1;
            let cid = format!("demo-{placed}-{}", me.port());
            let inv = format!(
                "INVITE sip:service@{lb} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKdemo{placed};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:caller@{me}>;tag=c{placed}\r\nTo: <sip:service@{lb}>\r\n\
                 Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{me}>\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = sock.send_to(inv.as_bytes(), lb);
            calls.insert(
                cid,
                CallState {
                    started: Instant::now(),
                    done: false,
                },
            );
        }
        if !killed && start.elapsed() >= Duration::from_secs(duration / 2) {
            killed = true;
            backends[3].stop();
            bar.println(format!(
                "  backend 3 stopped at {:.0} s: watch its calls fail over and the probes mark it inactive",
                start.elapsed().as_secs_f64()
            ));
        }
        if let Ok((len, _)) = sock.recv_from(&mut buf)
            && let Ok(m) = Message::parse(Bytes::copy_from_slice(&buf[..len]))
        {
            handle_caller_response(&sock, lb, &m, &mut calls, &mut ok, &mut failed, &bar);
        }
        for c in calls.values_mut() {
            if !c.done && c.started.elapsed() > Duration::from_secs(6) {
                c.done = true;
                failed += 1;
                bar.inc(1);
            }
        }
        bar.set_message(format!("{ok} ok, {failed} failed"));
    }
    bar.finish();
    // Show how calls spread, and the balancer's view.
    println!("\ncalls answered per backend:");
    for (i, b) in backends.iter().enumerate() {
        let st = started
            .shared
            .dispatcher
            .snapshot()
            .set(1)
            .and_then(|s| s.destinations().get(i).map(|d| d.state().as_str()))
            .unwrap_or("?");
        println!(
            "  backend {i} ({}): {:5} calls, state now {st}",
            b.addr,
            b.answered.load(Relaxed)
        );
    }
    println!("placed {placed}, completed {ok}, failed {failed}");
    stop.stop();
    for b in &mut backends {
        b.stop();
    }
    match server.join() {
        Ok(r) => Ok(r?),
        Err(_) => Err(DemoError::Panicked),
    }
}

fn handle_caller_response(
    sock: &UdpSocket,
    lb: SocketAddr,
    m: &Message,
    calls: &mut HashMap<String, CallState>,
    ok: &mut u64,
    failed: &mut u64,
    bar: &ProgressBar,
) {
    let Some(code) = m.status_code() else { return };
    let Some(cid) = m.call_id().map(|c| String::from_utf8_lossy(c).into_owned()) else {
        return;
    };
    let Some((_, method)) = m.cseq() else { return };
    let Some(call) = calls.get_mut(&cid) else {
        return;
    };
    if method == Method::Invite && code >= 200 && !call.done {
        call.done = true;
        bar.inc(1);
        if code >= 300 {
            *failed += 1;
            return;
        }
        *ok += 1;
        // ACK and BYE along the Record-Route (route set = RR reversed; one proxy here).
        let me = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let routes: String = m
            .headers_named(HeaderName::RecordRoute)
            .map(|h| format!("Route: {}\r\n", String::from_utf8_lossy(h.value)))
            .collect();
        let to = String::from_utf8_lossy(m.header(HeaderName::To).unwrap_or_default()).into_owned();
        let from =
            String::from_utf8_lossy(m.header(HeaderName::From).unwrap_or_default()).into_owned();
        let contact = m
            .header(HeaderName::Contact)
            .map(|c| {
                String::from_utf8_lossy(c)
                    .trim_matches(|x| x == '<' || x == '>')
                    .to_string()
            })
            .unwrap_or_else(|| format!("sip:service@{lb}"));
        for (meth, n) in [("ACK", 1), ("BYE", 2)] {
            let msg = format!(
                "{meth} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{meth}{cid};rport\r\n{routes}\
                 Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {n} {meth}\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            let _ = sock.send_to(msg.as_bytes(), lb);
        }
    }
}
