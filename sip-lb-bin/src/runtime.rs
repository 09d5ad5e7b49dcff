//! The runtime: one worker thread per core, each owning a `sip-proxy` instance, its share
//! of the UDP listeners (`SO_REUSEPORT`, batched receive and send) and a private UDP socket
//! for the requests it sends to destinations (its port goes into our Via, so responses come
//! back to the worker that owns the transaction). Stream transports (TCP, TLS, WS, WSS) run
//! on a small I/O runtime and deliver to the workers by connection; a response that reaches
//! the wrong worker is handed to the one its branch names. Timers, graceful drain on
//! shutdown, live statistics.
//!
//! A worker is a plain thread, not an async task: per wake-up one `poll(2)` over its
//! sockets and a [`Waker`], then one batched receive on each socket that is readable (and
//! none on the others), the proxy core, one batched send per socket. No receive ever
//! returns `EAGAIN` just to re-arm readiness.
//!
//! With one worker and one UDP listener there is nothing to steer, so the worker sends to
//! destinations from the listener itself and blocks in its batched receive (a 10 ms
//! receive timeout serves the timers): one system call to receive and one to send per
//! wake-up, no `poll`. Another thread wakes it with an empty datagram.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sip_core::Transport;
use sip_dispatch::Dispatcher;
use sip_proxy::{CallTable, Event, LocalEndpoint, Origin, Proxy, ProxyConfig, ProxyStats};
use sip_transport::poll::{Poller, Waker};
use sip_transport::{
    ConnectionId, Incoming, IncomingSink, Outgoing, RecvBatch, StreamConfig, StreamSender,
    StreamTransport, UdpConfig, UdpSocket,
};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use tokio::sync::mpsc;

/// Messages a worker's inbox holds (stream messages, responses handed over by another
/// worker) before senders wait.
const INBOX: usize = 4096;

/// How another thread wakes a worker.
#[derive(Debug)]
enum WakeUp {
    /// A worker waiting in `poll(2)`: its waker.
    Poll(Waker),
    /// A worker blocked in a receive on its one UDP socket: an empty datagram sent to
    /// that socket from `sock` (the worker ignores empty datagrams from there).
    Datagram {
        sock: std::net::UdpSocket,
        to: SocketAddr,
    },
}

impl WakeUp {
    fn wake(&self) {
        match self {
            WakeUp::Poll(w) => w.wake(),
            WakeUp::Datagram { sock, to } => {
                let _ = sock.send_to(&[], to);
            }
        }
    }

    /// The address wake-up datagrams come from.
    fn datagram_source(&self) -> Option<SocketAddr> {
        match self {
            WakeUp::Poll(_) => None,
            WakeUp::Datagram { sock, .. } => sock.local_addr().ok(),
        }
    }
}

/// A worker's inbox: the channel and how to wake the worker.
#[derive(Clone, Debug)]
struct Inbox {
    tx: SyncSender<Incoming>,
    waker: Arc<WakeUp>,
}

impl Inbox {
    /// Hands `i` to the worker; false when its inbox is full (the message is dropped).
    fn try_send(&self, i: Incoming) -> bool {
        let ok = !matches!(self.tx.try_send(i), Err(TrySendError::Full(_)));
        self.waker.wake();
        ok
    }
}

/// What the runtime needs to start.
#[derive(Clone, Debug)]
pub struct RuntimeSpec {
    /// Listen addresses with their transports (UDP, TCP, TLS, WS, WSS).
    pub listeners: Vec<(Transport, SocketAddr)>,
    /// Number of worker threads (≥ 1).
    pub workers: usize,
    /// The proxy configuration every worker starts from (listeners, outbound endpoints and
    /// worker number are filled in per worker).
    pub proxy: ProxyConfig,
    /// How long open transactions may take to finish at shutdown.
    pub drain: Duration,
    /// Stream transport settings (limits, TLS).
    pub stream: StreamConfig,
    /// Receive coalescing: after handling what woke it, a worker waits this long so the next
    /// batched receive takes several datagrams at once (0 disables it). Adds at most this
    /// much latency per hop; saves a wake-up per datagram at moderate rates.
    pub linger: Duration,
}

/// Shared view of the running workers, for the admin interface and metrics.
#[derive(Debug)]
pub struct Shared {
    /// The balancing state.
    pub dispatcher: Arc<Dispatcher>,
    /// Confirmed calls.
    pub calls: Arc<CallTable>,
    /// Per-worker counters, refreshed by each worker at least every 100 ms.
    pub stats: Vec<Mutex<ProxyStats>>,
    /// Event counters the runtime derives from proxy events.
    pub events: EventCounters,
}

/// Counters of events (state changes, rejects by code, drops by reason).
#[derive(Debug, Default)]
pub struct EventCounters {
    /// Destination state changes.
    pub state_changes: std::sync::atomic::AtomicU64,
    /// Calls started.
    pub calls_started: std::sync::atomic::AtomicU64,
    /// Calls ended by BYE.
    pub calls_ended: std::sync::atomic::AtomicU64,
    /// Calls ended by dialog timeout.
    pub calls_timed_out: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// The sum of every worker's counters.
    pub fn total_stats(&self) -> ProxyStats {
        let mut t = ProxyStats::default();
        for s in &self.stats {
            let s = s.lock().unwrap_or_else(|e| e.into_inner());
            add_stats(&mut t, &s);
        }
        t
    }
}

fn add_stats(t: &mut ProxyStats, s: &ProxyStats) {
    for (a, b) in t.requests_by_method.iter_mut().zip(&s.requests_by_method) {
        *a += b;
    }
    for (a, b) in t.responses_by_class.iter_mut().zip(&s.responses_by_class) {
        *a += b;
    }
    for (a, b) in t
        .local_replies_by_class
        .iter_mut()
        .zip(&s.local_replies_by_class)
    {
        *a += b;
    }
    t.requests_forwarded += s.requests_forwarded;
    t.responses_forwarded += s.responses_forwarded;
    t.rejected += s.rejected;
    t.dropped += s.dropped;
    t.retransmissions_absorbed += s.retransmissions_absorbed;
    t.retransmissions_sent += s.retransmissions_sent;
    t.failovers += s.failovers;
    t.timeouts += s.timeouts;
    t.probes_sent += s.probes_sent;
    t.probes_alive += s.probes_alive;
    t.probes_failed += s.probes_failed;
    t.queued += s.queued;
    t.queue_timeouts += s.queue_timeouts;
    t.server_transactions += s.server_transactions;
    t.client_transactions += s.client_transactions;
    t.queue_len += s.queue_len;
    t.timers_pending += s.timers_pending;
}

/// The running workers.
pub struct Runtime {
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    wake: Vec<Arc<WakeUp>>,
    /// Shared state.
    pub shared: Arc<Shared>,
    udp_addrs: Vec<SocketAddr>,
    stream_addrs: Vec<(Transport, SocketAddr)>,
    stream: Option<StreamTransport>,
    io_rt: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    /// Binds every socket (so errors surface before anything runs) and starts the workers
    /// and, when stream listeners are configured, the stream transport.
    pub fn start(spec: RuntimeSpec, dispatcher: Arc<Dispatcher>) -> io::Result<Runtime> {
        let workers = spec.workers.clamp(1, 256);
        let udp: Vec<SocketAddr> = spec
            .listeners
            .iter()
            .filter(|(t, _)| *t == Transport::Udp)
            .map(|(_, a)| *a)
            .collect();
        let Some(&main_addr) = udp.first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "at least one UDP listener is needed (destinations are reached over UDP)",
            ));
        };
        let ucfg = UdpConfig::default();
        // Per listener address, one SO_REUSEPORT socket per worker.
        let mut per_addr: Vec<Vec<UdpSocket>> = udp
            .iter()
            .map(|a| UdpSocket::bind_reuseport(*a, workers, &ucfg))
            .collect::<io::Result<_>>()?;
        let udp_bound: Vec<SocketAddr> = per_addr.iter().map(|v| v[0].local_addr()).collect();

        // Each worker's inbox, and the stream transport's channel to each (stream
        // transports run on their own small multi-threaded runtime; a forwarding task per
        // worker moves their messages to the inbox and wakes the worker).
        // One worker on one UDP listener needs no private socket and no poll (see the
        // module documentation).
        let single = workers == 1 && udp_bound.len() == 1;
        let mut inboxes = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = sync_channel::<Incoming>(INBOX);
            let waker = if single {
                // A listener on the unspecified address is reached, and its wake-ups come
                // from, loopback (else the worker would see them from another address
                // than the one it ignores).
                let mut to = udp_bound[0];
                if to.ip().is_unspecified() {
                    to.set_ip(match to.ip() {
                        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                let sock = std::net::UdpSocket::bind(SocketAddr::new(to.ip(), 0))?;
                WakeUp::Datagram { sock, to }
            } else {
                WakeUp::Poll(Waker::new()?)
            };
            inboxes.push(Inbox {
                tx,
                waker: Arc::new(waker),
            });
            receivers.push(rx);
        }
        let (senders, stream_rx): (Vec<_>, Vec<_>) = (0..workers)
            .map(|_| mpsc::channel::<Incoming>(INBOX))
            .unzip();
        let streams: Vec<(Transport, SocketAddr)> = spec
            .listeners
            .iter()
            .filter(|(t, _)| *t != Transport::Udp)
            .copied()
            .collect();
        let io_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sip-lb-io")
            .enable_all()
            .build()?;
        let stream = StreamTransport::with_runtime(
            spec.stream.clone(),
            IncomingSink::PerWorker(senders.clone()),
            io_rt.handle().clone(),
        );
        let mut stream_bound = Vec::new();
        for (t, a) in &streams {
            let bound = io_rt
                .block_on(stream.listen(*a, *t))
                .map_err(|e| io::Error::other(format!("cannot listen on {t} {a}: {e}")))?;
            stream_bound.push((*t, bound));
        }
        let sender = stream.sender();
        for (mut rx, inbox) in stream_rx.into_iter().zip(inboxes.iter().cloned()) {
            io_rt.spawn(async move {
                while let Some(i) = rx.recv().await {
                    if !inbox.try_send(i) {
                        tracing::debug!("worker inbox full: stream message dropped");
                    }
                }
            });
        }

        let calls = Arc::new(CallTable::new());
        let shared = Arc::new(Shared {
            dispatcher: dispatcher.clone(),
            calls: calls.clone(),
            stats: (0..workers)
                .map(|_| Mutex::new(ProxyStats::default()))
                .collect(),
            events: EventCounters::default(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        let wake: Vec<Arc<WakeUp>> = inboxes.iter().map(|i| i.waker.clone()).collect();
        for (w, inbox) in receivers.into_iter().enumerate() {
            let listeners: Vec<UdpSocket> = per_addr.iter_mut().map(|v| v.remove(0)).collect();
            let private = if single {
                None
            } else {
                Some(UdpSocket::bind_ephemeral(main_addr.ip(), &ucfg)?)
            };
            let outbound_addr = private.as_ref().map_or(udp_bound[0], |p| p.local_addr());
            let mut cfg = spec.proxy.clone();
            cfg.worker = w as u8;
            // Branches of this run never repeat those of an earlier one (see
            // `ProxyConfig::instance`).
            cfg.instance = rand::random();
            cfg.listeners = udp_bound
                .iter()
                .map(|a| LocalEndpoint::new(Transport::Udp, *a))
                .chain(stream_bound.iter().map(|(t, a)| LocalEndpoint::new(*t, *a)))
                .map(|mut e| {
                    if let Some(adv) = spec
                        .proxy
                        .listeners
                        .iter()
                        .find(|l| l.transport == e.transport && l.addr.ip() == e.addr.ip())
                    {
                        e.advertise = adv.advertise.clone();
                    }
                    e
                })
                .collect();
            cfg.outbound = vec![LocalEndpoint::new(Transport::Udp, outbound_addr)];
            if w != 0 {
                cfg.probing = None;
            }
            let proxy = Proxy::new(cfg, dispatcher.clone(), calls.clone());
            let ctx = WorkerCtx {
                worker: w,
                stop: stop.clone(),
                waker: inboxes[w].waker.clone(),
                shared: shared.clone(),
                drain: spec.drain,
                sender: sender.clone(),
                peers: inboxes.clone(),
                linger: spec.linger,
            };
            let h = std::thread::Builder::new()
                .name(format!("sip-lb-worker-{w}"))
                .spawn(move || match private {
                    Some(private) => worker_loop(ctx, proxy, listeners, private, inbox),
                    None => single_socket_loop(ctx, proxy, listeners, inbox),
                })?;
            handles.push(h);
        }
        Ok(Runtime {
            handles,
            stop,
            wake,
            shared,
            udp_addrs: udp_bound,
            stream_addrs: stream_bound,
            stream: Some(stream),
            io_rt: Some(io_rt),
        })
    }

    /// The UDP addresses listened on (ports resolved when 0 was asked).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The stream listeners (ports resolved).
    pub fn stream_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.stream_addrs
    }

    /// Asks every worker to stop receiving new requests and finish open transactions.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in &self.wake {
            w.wake();
        }
    }

    /// Waits for every worker to end, then closes the stream transport.
    pub fn join(mut self) {
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        if let Some(s) = self.stream.take() {
            s.shutdown();
        }
        if let Some(rt) = self.io_rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Granularity of timer wake-ups.
const TIMER_GRID_MS: u64 = 10;

struct WorkerCtx {
    worker: usize,
    stop: Arc<AtomicBool>,
    waker: Arc<WakeUp>,
    shared: Arc<Shared>,
    drain: Duration,
    sender: StreamSender,
    peers: Vec<Inbox>,
    linger: Duration,
}

fn origin_of(i: &Incoming) -> Origin {
    Origin {
        source: i.source,
        local: i.local,
        transport: i.transport,
        connection: i.connection.map(|c| c.0),
    }
}

/// A response that arrived on a shared stream connection belongs to the worker named in
/// its top Via branch; returns that worker when it is another one.
fn owner_elsewhere(bytes: &bytes::Bytes, me: usize) -> Option<usize> {
    if !bytes.starts_with(b"SIP/2.0 ") {
        return None;
    }
    let m = sip_core::Message::parse(bytes.clone()).ok()?;
    let w = sip_proxy::branch::worker_of(m.top_via_branch()?)? as usize;
    (w != me).then_some(w)
}

/// What both worker loops share: the proxy, the drain state, the send buffers.
struct WorkerState {
    proxy: Proxy,
    draining_since: Option<Instant>,
    last_publish: Instant,
    out_udp: Vec<(usize, Outgoing)>,
    send_buf: Vec<Outgoing>,
}

/// Index of the private socket in [`WorkerState::out_udp`].
const PRIVATE: usize = usize::MAX;

impl WorkerState {
    fn new(mut proxy: Proxy) -> WorkerState {
        proxy.start(Instant::now());
        WorkerState {
            proxy,
            draining_since: None,
            last_publish: Instant::now(),
            out_udp: Vec::new(),
            send_buf: Vec::new(),
        }
    }

    /// Notices the stop request; returns (draining began now, the worker is done: drained,
    /// or the drain deadline passed).
    fn check_stop(&mut self, ctx: &WorkerCtx) -> (bool, bool) {
        let mut started = false;
        if ctx.stop.load(Ordering::Relaxed) && self.draining_since.is_none() {
            self.draining_since = Some(Instant::now());
            tracing::debug!(worker = ctx.worker, "draining");
            started = true;
        }
        if let Some(since) = self.draining_since {
            let (s, c) = self.proxy.transaction_count();
            if (s == 0 && c == 0) || since.elapsed() >= ctx.drain {
                if s + c > 0 {
                    tracing::warn!(
                        worker = ctx.worker,
                        server = s,
                        client = c,
                        "drain deadline: abandoning transactions"
                    );
                    self.proxy.abandon_all();
                }
                publish(&self.proxy, &ctx.shared, ctx.worker);
                return (started, true);
            }
        }
        (started, false)
    }

    fn accepting(&self) -> bool {
        self.draining_since.is_none()
    }

    /// The next timer deadline, coalesced on a 10 ms grid: one wake-up serves every
    /// transaction timer due in that slot (SIP timers are hundreds of milliseconds;
    /// precision is not lost, wake-ups are).
    fn deadline(&self, epoch: Instant) -> Instant {
        let now = Instant::now();
        let deadline = self
            .proxy
            .poll_timeout()
            .unwrap_or(now + Duration::from_millis(100))
            .min(now + Duration::from_millis(100));
        let since = deadline.saturating_duration_since(epoch).as_millis() as u64;
        epoch + Duration::from_millis(since.div_ceil(TIMER_GRID_MS) * TIMER_GRID_MS)
    }

    /// Messages handed over by other threads (stream transports, other workers).
    fn take_inbox(&mut self, ctx: &WorkerCtx, inbox: &Receiver<Incoming>) {
        while let Ok(i) = inbox.try_recv() {
            if let Some(w) = owner_elsewhere(&i.bytes, ctx.worker) {
                if let Some(p) = ctx.peers.get(w) {
                    p.try_send(i);
                }
            } else if self.accepting() || i.bytes.starts_with(b"SIP/2.0 ") {
                self.proxy
                    .handle_datagram(Instant::now(), origin_of(&i), i.bytes);
            }
        }
    }

    /// Timers, then everything to send (batched per UDP socket: `private` for what goes
    /// out from the private socket, else the listener it names), events and statistics.
    /// `drained`: the last receive came back short (nothing more was waiting).
    fn after_wake(
        &mut self,
        ctx: &WorkerCtx,
        listeners: &[UdpSocket],
        private: Option<&UdpSocket>,
        drained: bool,
    ) {
        let worker = ctx.worker;
        self.proxy.handle_timeout(Instant::now());
        let private_addr = private.map(|p| p.local_addr());
        while let Some(t) = self.proxy.poll_transmit() {
            if t.transport == Transport::Udp {
                let idx = if private_addr.is_some() && t.local == private_addr {
                    PRIVATE
                } else {
                    listeners
                        .iter()
                        .position(|l| Some(l.local_addr()) == t.local)
                        .unwrap_or(0)
                };
                self.out_udp
                    .push((idx, Outgoing::udp(t.destination, t.bytes)));
            } else {
                let o = Outgoing {
                    destination: t.destination,
                    transport: t.transport,
                    bytes: t.bytes,
                    connection: t.connection.map(ConnectionId),
                };
                if let Err(e) = ctx.sender.send(o) {
                    tracing::debug!(worker, dest = %t.destination, error = %e, "stream send failed");
                }
            }
        }
        if !self.out_udp.is_empty() {
            for target in std::iter::once(PRIVATE).chain(0..listeners.len()) {
                let sock = match (target, private) {
                    (PRIVATE, Some(p)) => p,
                    (PRIVATE, None) => continue,
                    (i, _) => &listeners[i],
                };
                self.send_buf.clear();
                // Moved, not cloned (a clone and a drop of each message's buffer are two
                // atomic operations on its reference count).
                self.send_buf.extend(
                    self.out_udp
                        .extract_if(.., |(i, _)| *i == target)
                        .map(|(_, o)| o),
                );
                if self.send_buf.is_empty() {
                    continue;
                }
                if let Err(e) = sock.send_batch(&self.send_buf) {
                    tracing::debug!(worker, error = %e, "UDP send failed");
                }
                self.send_buf.clear();
            }
            self.out_udp.clear();
        }
        while let Some(e) = self.proxy.poll_event() {
            log_event(worker, &e, &ctx.shared);
        }
        if self.last_publish.elapsed() >= Duration::from_millis(100) {
            publish(&self.proxy, &ctx.shared, worker);
            self.last_publish = Instant::now();
        }
        // Receive coalescing: at moderate rates every datagram would cost a wake-up of its
        // own; waiting a fraction of a millisecond lets the next receive take several.
        // Not after a full batch: more is already waiting.
        if drained && !ctx.linger.is_zero() && self.accepting() {
            std::thread::sleep(ctx.linger);
        }
    }
}

/// A worker with its listener shares and a private socket, waiting in `poll(2)`.
fn worker_loop(
    ctx: WorkerCtx,
    proxy: Proxy,
    listeners: Vec<UdpSocket>,
    private: UdpSocket,
    inbox: Receiver<Incoming>,
) {
    let worker = ctx.worker;
    let WakeUp::Poll(waker) = &*ctx.waker else {
        tracing::error!(worker, "a polling worker without a poll waker");
        return;
    };
    let mut poller = Poller::new();
    let listener_ix: Vec<usize> = listeners.iter().map(|l| poller.add(l)).collect();
    let private_ix = poller.add(&private);
    let waker_ix = poller.add(waker);
    let mut batch = RecvBatch::new(32, 65535);
    let mut st = WorkerState::new(proxy);
    let epoch = Instant::now();
    loop {
        let (started, done) = st.check_stop(&ctx);
        if started {
            // Stop receiving new requests: the listeners are no longer waited on.
            for &ix in &listener_ix {
                poller.set_enabled(ix, false);
            }
        }
        if done {
            return;
        }
        let deadline = st.deadline(epoch);
        if let Err(e) = poller.wait(Some(deadline.saturating_duration_since(Instant::now()))) {
            tracing::error!(worker, error = %e, "poll failed");
            std::thread::sleep(Duration::from_millis(10));
        }
        for (k, l) in listeners.iter().enumerate() {
            if st.accepting() && poller.is_readable(listener_ix[k]) {
                receive(l, &mut batch, &mut st.proxy);
            }
        }
        if poller.is_readable(private_ix) {
            receive(&private, &mut batch, &mut st.proxy);
        }
        if poller.is_readable(waker_ix) {
            waker.reset();
            st.take_inbox(&ctx, &inbox);
        }
        // `receive` reads each readable socket until a batch comes back short.
        st.after_wake(&ctx, &listeners, Some(&private), true);
    }
}

/// The one worker on the one UDP listener: it blocks in the batched receive (requests,
/// and the responses to what it sent from the same socket), the receive timeout serving
/// the timers. Other threads wake it with an empty datagram.
fn single_socket_loop(
    ctx: WorkerCtx,
    proxy: Proxy,
    listeners: Vec<UdpSocket>,
    inbox: Receiver<Incoming>,
) {
    let worker = ctx.worker;
    let Some(sock) = listeners.first() else {
        tracing::error!(worker, "no UDP listener");
        return;
    };
    let wake_from = ctx.waker.datagram_source();
    // The timers' grid: a quiet socket returns from the receive this often, and a busy
    // one serves the timers after every batch (setting the timeout per wait would cost a
    // system call each time).
    if let Err(e) = sock.set_read_timeout(Some(Duration::from_millis(TIMER_GRID_MS))) {
        tracing::error!(worker, error = %e, "cannot set the receive timeout");
    }
    let mut batch = RecvBatch::new(32, 65535);
    let mut st = WorkerState::new(proxy);
    loop {
        let (_, done) = st.check_stop(&ctx);
        if done {
            return;
        }
        // While draining, only responses (to the transactions still open) are taken.
        let accepting = st.accepting();
        let mut drained = true;
        match sock.recv_batch(&mut batch) {
            Ok(_) => {
                drained = !batch.was_full();
                let now = Instant::now();
                for i in batch.drain() {
                    if i.bytes.is_empty() && Some(i.source) == wake_from {
                        continue;
                    }
                    if accepting || i.bytes.starts_with(b"SIP/2.0 ") {
                        st.proxy.handle_datagram(now, origin_of(&i), i.bytes);
                    }
                }
            }
            Err(e) => tracing::debug!(worker, error = %e, "UDP receive failed"),
        }
        st.take_inbox(&ctx, &inbox);
        st.after_wake(&ctx, &listeners, None, drained);
    }
}

/// What a readable socket holds: batches until one comes back short (a datagram that
/// arrives later makes the socket readable again for the next `poll`).
fn receive(sock: &UdpSocket, batch: &mut RecvBatch, proxy: &mut Proxy) {
    loop {
        if let Err(e) = sock.try_recv_batch(batch) {
            tracing::debug!(error = %e, "UDP receive failed");
            return;
        }
        let now = Instant::now();
        for i in batch.drain() {
            proxy.handle_datagram(now, origin_of(&i), i.bytes);
        }
        if !batch.was_full() {
            return;
        }
    }
}

fn publish(proxy: &Proxy, shared: &Shared, worker: usize) {
    if let Some(slot) = shared.stats.get(worker) {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = proxy.stats();
    }
}

fn log_event(worker: usize, e: &Event, shared: &Shared) {
    use std::sync::atomic::Ordering::Relaxed;
    match e {
        Event::DestinationState {
            destination,
            change,
        } => {
            shared.events.state_changes.fetch_add(1, Relaxed);
            tracing::info!(worker, destination = destination.uri(), change = ?change, "destination state changed");
        }
        Event::CallStarted { destination } => {
            shared.events.calls_started.fetch_add(1, Relaxed);
            tracing::trace!(worker, destination = destination.uri(), "call started");
        }
        Event::CallEnded {
            destination,
            timed_out,
        } => {
            if *timed_out {
                shared.events.calls_timed_out.fetch_add(1, Relaxed);
            } else {
                shared.events.calls_ended.fetch_add(1, Relaxed);
            }
            tracing::trace!(
                worker,
                destination = destination.uri(),
                timed_out,
                "call ended"
            );
        }
        Event::Rejected {
            code,
            reason,
            source,
        } => {
            tracing::debug!(worker, code, reason, %source, "request rejected");
        }
        Event::Dropped { reason, source } => {
            tracing::debug!(worker, reason = reason.as_str(), %source, "message dropped");
        }
        Event::Failover { destination, cause } => {
            tracing::info!(worker, destination = destination.uri(), cause = ?cause, "failover");
        }
        _ => {}
    }
}
