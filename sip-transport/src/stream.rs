//! Stream transports on tokio: TCP, TLS, WebSocket (WS) and secure WebSocket (WSS).
//!
//! A [`StreamTransport`] owns listeners and a table of connections, inbound and outbound.
//! Every message received is delivered as an [`Incoming`] into a bounded channel supplied
//! by the caller ([`IncomingSink`]; one per worker, chosen by connection id, if wanted),
//! so a slow consumer slows the readers (TCP flow control) instead of growing memory.
//! A cloneable [`StreamSender`] sends an [`Outgoing`]: on its connection if that is still
//! open, else on a pooled connection to `(destination, transport)` (inbound connections are
//! in the pool too, under the peer's address: RFC 5923-style reuse), else on a new
//! outbound connection opened in the background. Sending never blocks: each connection has
//! a bounded write queue, and a full queue is an error ([`Error::QueueFull`]).
//!
//! Limits ([`StreamLimits`], safe defaults): inbound connections in total and per source
//! IP (refused at accept, existing connections unaffected), outbound connections, idle
//! timeout, a read deadline per message (a slow sender is cut off), maximum message size
//! (an oversized message closes only its own connection), write-queue length and write
//! timeout, connect and handshake timeouts.
//!
//! TCP and TLS streams are framed by [`sip_core::framer::Framer`] (Content-Length
//! mandatory); an RFC 5626 double-CRLF ping is answered with a CRLF pong. On WebSocket
//! (RFC 7118, subprotocol `sip`) each WebSocket message is one SIP message.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use sip_core::Transport;
use sip_core::framer::{Frame, Framer, FramerError, PONG};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage, protocol::WebSocketConfig};

use crate::{ConnectionId, Error, Incoming, Outgoing};

/// Bounds on stream connections. The defaults suit a public-facing proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Inbound connections open at once, over all listeners (default 10 000). Further
    /// connections are accepted and closed at once.
    pub max_connections: usize,
    /// Inbound connections open at once from one IP address (default 64).
    pub max_connections_per_ip: usize,
    /// Outbound connections open at once (default 10 000).
    pub max_outbound_connections: usize,
    /// A connection with no traffic either way for this long is closed (default 300 s;
    /// RFC 5626 clients ping every 95–120 s).
    pub idle_timeout: Duration,
    /// Once the first byte of a message arrives, the whole message must arrive within this
    /// time or the connection is closed (default 10 s): a slow sender is cut off.
    pub message_read_timeout: Duration,
    /// Largest message in bytes (default 65 535); a larger one closes its connection.
    pub max_message_size: u32,
    /// Messages queued for writing on one connection (default 256).
    pub write_queue: usize,
    /// A write that makes no progress for this long closes the connection (default 10 s).
    pub write_timeout: Duration,
    /// Time allowed to open an outbound TCP connection (default 5 s).
    pub connect_timeout: Duration,
    /// Time allowed for a TLS and/or WebSocket handshake (default 10 s).
    pub handshake_timeout: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_connections: 10_000,
            max_connections_per_ip: 64,
            max_outbound_connections: 10_000,
            idle_timeout: Duration::from_secs(300),
            message_read_timeout: Duration::from_secs(10),
            max_message_size: 65_535,
            write_queue: 256,
            write_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Chooses the TLS server name to verify for an outbound connection to an address.
pub type ServerNameFn = Arc<dyn Fn(SocketAddr) -> ServerName<'static> + Send + Sync>;

/// Configuration of a [`StreamTransport`].
#[derive(Clone, Default)]
pub struct StreamConfig {
    /// Limits (see [`StreamLimits`]).
    pub limits: StreamLimits,
    /// Certificate and key for TLS and WSS listeners (see [`crate::tls`]).
    pub tls_server: Option<Arc<rustls::ServerConfig>>,
    /// Configuration for outbound TLS and WSS connections, for example one that trusts a
    /// configured CA ([`crate::tls::client_config_from_ca_pem`]). Without it, outbound TLS
    /// fails with [`Error::NoTlsClientConfig`].
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    /// The name to verify in an outbound peer's certificate; by default its IP address.
    pub tls_server_name: Option<ServerNameFn>,
    /// Where to report connection events; events are dropped when the channel is full.
    pub events: Option<mpsc::Sender<ConnectionEvent>>,
}

impl std::fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConfig")
            .field("limits", &self.limits)
            .field("tls_server", &self.tls_server.is_some())
            .field("tls_client", &self.tls_client.is_some())
            .field("tls_server_name", &self.tls_server_name.is_some())
            .field("events", &self.events.is_some())
            .finish()
    }
}

/// Where received messages go.
#[derive(Clone, Debug)]
pub enum IncomingSink {
    /// One channel for every connection.
    One(mpsc::Sender<Incoming>),
    /// One channel per worker; a connection always delivers to the same one
    /// (`connection id % workers`), so its messages stay in order.
    PerWorker(Vec<mpsc::Sender<Incoming>>),
}

impl IncomingSink {
    fn pick(&self, id: ConnectionId) -> &mpsc::Sender<Incoming> {
        match self {
            IncomingSink::One(s) => s,
            IncomingSink::PerWorker(v) => &v[(id.0 % v.len() as u64) as usize],
        }
    }
}

impl From<mpsc::Sender<Incoming>> for IncomingSink {
    fn from(s: mpsc::Sender<Incoming>) -> Self {
        IncomingSink::One(s)
    }
}

/// Why a connection was refused at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefuseReason {
    /// [`StreamLimits::max_connections`] reached.
    TotalLimit,
    /// [`StreamLimits::max_connections_per_ip`] reached for this IP.
    PerIpLimit,
}

/// Why a connection was closed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed it.
    PeerClosed,
    /// No traffic for [`StreamLimits::idle_timeout`].
    IdleTimeout,
    /// A message did not arrive whole within [`StreamLimits::message_read_timeout`].
    ReadTimeout,
    /// The byte stream could not be framed (missing or bad Content-Length, too large).
    Framing(FramerError),
    /// A WebSocket message was larger than the limit, or the WebSocket protocol failed.
    WebSocket(String),
    /// A write made no progress within [`StreamLimits::write_timeout`].
    WriteTimeout,
    /// A socket error.
    Io(io::ErrorKind),
    /// The TLS or WebSocket handshake failed or timed out.
    Handshake(String),
    /// Closed on request ([`StreamSender::close`]), or the transport shut down, or the
    /// incoming channel was closed.
    Local,
}

/// Something that happened to a connection (see [`StreamConfig::events`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A connection is ready (after its TLS/WebSocket handshake).
    Opened {
        /// Its id.
        id: ConnectionId,
        /// Its transport.
        transport: Transport,
        /// The peer.
        remote: SocketAddr,
        /// Our end.
        local: SocketAddr,
        /// True if the peer connected to us.
        inbound: bool,
    },
    /// A connection closed.
    Closed {
        /// Its id.
        id: ConnectionId,
        /// Its transport.
        transport: Transport,
        /// The peer.
        remote: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
    /// An inbound connection was refused by a limit.
    Refused {
        /// The peer.
        remote: SocketAddr,
        /// The listener's transport.
        transport: Transport,
        /// Which limit.
        reason: RefuseReason,
    },
    /// An outbound connection could not be opened; its queued messages are dropped.
    ConnectFailed {
        /// The id it would have had.
        id: ConnectionId,
        /// Where to.
        destination: SocketAddr,
        /// Over which transport.
        transport: Transport,
        /// What went wrong.
        error: String,
    },
}

/// Per-connection state shared by its reader, its writer and the table.
#[derive(Debug)]
struct ConnState {
    close: watch::Sender<bool>,
    reason: Mutex<Option<CloseReason>>,
    /// Milliseconds since `Shared::epoch` of the last completed write.
    last_write_ms: AtomicU64,
}

impl ConnState {
    fn close_with(&self, reason: CloseReason) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
        drop(r);
        self.close.send_replace(true);
    }
}

#[derive(Debug, Clone)]
struct ConnHandle {
    tx: mpsc::Sender<Bytes>,
    state: Arc<ConnState>,
    transport: Transport,
}

struct Shared {
    limits: StreamLimits,
    tls_server: Option<Arc<rustls::ServerConfig>>,
    tls_client: Option<Arc<rustls::ClientConfig>>,
    tls_server_name: Option<ServerNameFn>,
    events: Option<mpsc::Sender<ConnectionEvent>>,
    sink: IncomingSink,
    runtime: tokio::runtime::Handle,
    conns: RwLock<HashMap<ConnectionId, ConnHandle>>,
    pool: RwLock<HashMap<(SocketAddr, Transport), ConnectionId>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    inbound: AtomicUsize,
    outbound: AtomicUsize,
    next_id: AtomicU64,
    epoch: Instant,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn event(&self, e: ConnectionEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.try_send(e);
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn new_id(&self) -> ConnectionId {
        ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Puts a connection in the table and the pool; the returned guard takes it out.
    fn register(
        self: &Arc<Self>,
        id: ConnectionId,
        key: (SocketAddr, Transport),
        outbound: bool,
    ) -> (Registration, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(self.limits.write_queue.max(1));
        let (close, _) = watch::channel(false);
        let state = Arc::new(ConnState {
            close,
            reason: Mutex::new(None),
            last_write_ms: AtomicU64::new(self.now_ms()),
        });
        let handle = ConnHandle {
            tx,
            state,
            transport: key.1,
        };
        write(&self.conns).insert(id, handle.clone());
        write(&self.pool).insert(key, id);
        (
            Registration {
                shared: self.clone(),
                id,
                key,
                outbound,
                handle,
            },
            rx,
        )
    }
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

/// A connection's entry in the table; dropping it removes the entry, releases the
/// outbound slot and reports the close.
struct Registration {
    shared: Arc<Shared>,
    id: ConnectionId,
    key: (SocketAddr, Transport),
    outbound: bool,
    handle: ConnHandle,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let reason = {
            let r = self
                .handle
                .state
                .reason
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            r.clone().unwrap_or(CloseReason::Local)
        };
        self.handle.state.close.send_replace(true);
        write(&self.shared.conns).remove(&self.id);
        {
            let mut pool = write(&self.shared.pool);
            if pool.get(&self.key) == Some(&self.id) {
                pool.remove(&self.key);
            }
        }
        if self.outbound {
            self.shared.outbound.fetch_sub(1, Ordering::Relaxed);
        }
        self.shared.event(ConnectionEvent::Closed {
            id: self.id,
            transport: self.key.1,
            remote: self.key.0,
            reason,
        });
    }
}

/// An accepted connection's claim on the inbound limits, released on drop.
struct InboundPermit {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl InboundPermit {
    fn acquire(shared: &Arc<Shared>, ip: IpAddr) -> Result<InboundPermit, RefuseReason> {
        let mut per_ip = shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if shared.inbound.load(Ordering::Relaxed) >= shared.limits.max_connections {
            return Err(RefuseReason::TotalLimit);
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= shared.limits.max_connections_per_ip {
            return Err(RefuseReason::PerIpLimit);
        }
        *n += 1;
        shared.inbound.fetch_add(1, Ordering::Relaxed);
        Ok(InboundPermit {
            shared: shared.clone(),
            ip,
        })
    }
}

impl Drop for InboundPermit {
    fn drop(&mut self) {
        let mut per_ip = self.shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.shared.inbound.fetch_sub(1, Ordering::Relaxed);
    }
}

/// TCP, TLS, WS and WSS listeners and connections on a tokio runtime; see the
/// [module documentation](self). Dropping it (or [`StreamTransport::shutdown`]) stops the
/// listeners and closes every connection.
pub struct StreamTransport {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StreamTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTransport")
            .field("inbound", &self.shared.inbound.load(Ordering::Relaxed))
            .field("outbound", &self.shared.outbound.load(Ordering::Relaxed))
            .finish()
    }
}

impl StreamTransport {
    /// A transport delivering received messages to `sink`, running its tasks on the
    /// current tokio runtime (panics outside one; see [`StreamTransport::with_runtime`]).
    pub fn new(config: StreamConfig, sink: impl Into<IncomingSink>) -> StreamTransport {
        StreamTransport::with_runtime(config, sink, tokio::runtime::Handle::current())
    }

    /// A transport running its tasks on `runtime`.
    pub fn with_runtime(
        config: StreamConfig,
        sink: impl Into<IncomingSink>,
        runtime: tokio::runtime::Handle,
    ) -> StreamTransport {
        let mut sink = sink.into();
        if let IncomingSink::PerWorker(v) = &sink
            && v.is_empty()
        {
            // No worker: deliver nowhere (a closed channel) rather than divide by zero.
            let (tx, _) = mpsc::channel(1);
            sink = IncomingSink::One(tx);
        }
        let (shutdown, _) = watch::channel(false);
        StreamTransport {
            shared: Arc::new(Shared {
                limits: config.limits,
                tls_server: config.tls_server,
                tls_client: config.tls_client,
                tls_server_name: config.tls_server_name,
                events: config.events,
                sink,
                runtime,
                conns: RwLock::new(HashMap::new()),
                pool: RwLock::new(HashMap::new()),
                per_ip: Mutex::new(HashMap::new()),
                inbound: AtomicUsize::new(0),
                outbound: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                epoch: Instant::now(),
                shutdown,
            }),
        }
    }

    /// Listens on `addr` for `transport` (TCP, TLS, WS or WSS; TLS and WSS need
    /// [`StreamConfig::tls_server`]). Returns the bound address (useful with port 0).
    pub async fn listen(
        &self,
        addr: SocketAddr,
        transport: Transport,
    ) -> Result<SocketAddr, Error> {
        match transport {
            Transport::Tcp | Transport::Ws => {}
            Transport::Tls | Transport::Wss if self.shared.tls_server.is_some() => {}
            t => return Err(Error::UnsupportedTransport(t)),
        }
        let sock = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        sock.set_reuseaddr(true)?;
        sock.bind(addr)?;
        let listener = sock.listen(1024)?;
        let local = listener.local_addr()?;
        let shared = self.shared.clone();
        self.shared
            .runtime
            .spawn(accept_loop(shared, listener, local, transport));
        Ok(local)
    }

    /// A handle to send messages, for any thread.
    pub fn sender(&self) -> StreamSender {
        StreamSender {
            shared: self.shared.clone(),
        }
    }

    /// Inbound connections open now (including those still in their handshake).
    pub fn inbound_connections(&self) -> usize {
        self.shared.inbound.load(Ordering::Relaxed)
    }

    /// Outbound connections open or opening now.
    pub fn outbound_connections(&self) -> usize {
        self.shared.outbound.load(Ordering::Relaxed)
    }

    /// Stops the listeners and closes every connection.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        for h in read(&self.shared.conns).values() {
            h.state.close_with(CloseReason::Local);
        }
    }
}

impl Drop for StreamTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sends messages over stream connections; cheap to clone, usable from any thread
/// (sending never blocks and needs no runtime context).
#[derive(Clone)]
pub struct StreamSender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StreamSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamSender")
    }
}

enum TryQueue {
    Queued,
    Full,
    Gone(Bytes),
}

fn try_queue(h: &ConnHandle, bytes: Bytes) -> TryQueue {
    if *h.state.close.borrow() {
        return TryQueue::Gone(bytes);
    }
    match h.tx.try_send(bytes) {
        Ok(()) => TryQueue::Queued,
        Err(mpsc::error::TrySendError::Full(_)) => TryQueue::Full,
        Err(mpsc::error::TrySendError::Closed(b)) => TryQueue::Gone(b),
    }
}

impl StreamSender {
    /// Queues `out` for sending: on `out.connection` if it is open, else on a pooled
    /// connection to `(out.destination, out.transport)`, else on a new outbound connection
    /// (opened in the background; failure is reported as
    /// [`ConnectionEvent::ConnectFailed`]). Returns the connection used.
    pub fn send(&self, out: Outgoing) -> Result<ConnectionId, Error> {
        let shared = &self.shared;
        if *shared.shutdown.borrow() {
            return Err(Error::Shutdown);
        }
        let mut bytes = out.bytes;
        let full = Error::QueueFull {
            destination: out.destination,
        };
        if let Some(id) = out.connection {
            let h = read(&shared.conns).get(&id).cloned();
            if let Some(h) = h {
                match try_queue(&h, bytes) {
                    TryQueue::Queued => return Ok(id),
                    TryQueue::Full => return Err(full),
                    TryQueue::Gone(b) => bytes = b,
                }
            }
        }
        let key = (out.destination, out.transport);
        let pooled = read(&shared.pool).get(&key).copied();
        if let Some(id) = pooled {
            let h = read(&shared.conns).get(&id).cloned();
            if let Some(h) = h {
                match try_queue(&h, bytes) {
                    TryQueue::Queued => return Ok(id),
                    TryQueue::Full => return Err(full),
                    TryQueue::Gone(b) => bytes = b,
                }
            }
        }
        match out.transport {
            Transport::Tcp | Transport::Ws => {}
            Transport::Tls | Transport::Wss => {
                if shared.tls_client.is_none() {
                    return Err(Error::NoTlsClientConfig(out.transport));
                }
            }
            t => return Err(Error::UnsupportedTransport(t)),
        }
        let limit = shared.limits.max_outbound_connections;
        if shared
            .outbound
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Error::ConnectionLimit { limit });
        }
        let id = shared.new_id();
        let (reg, rx) = shared.register(id, key, true);
        // Cannot fail: the queue is new and holds at least one message.
        let _ = reg.handle.tx.try_send(bytes);
        shared.runtime.spawn(outbound(reg, rx));
        Ok(id)
    }

    /// True while connection `id` is open (or opening).
    pub fn is_open(&self, id: ConnectionId) -> bool {
        read(&self.shared.conns)
            .get(&id)
            .is_some_and(|h| !*h.state.close.borrow())
    }

    /// The pooled connection to `(destination, transport)`, if any.
    pub fn pooled(&self, destination: SocketAddr, transport: Transport) -> Option<ConnectionId> {
        read(&self.shared.pool)
            .get(&(destination, transport))
            .copied()
    }

    /// The transport of connection `id`, while it is open.
    pub fn transport_of(&self, id: ConnectionId) -> Option<Transport> {
        read(&self.shared.conns).get(&id).map(|h| h.transport)
    }

    /// Closes connection `id` (messages still queued are dropped).
    pub fn close(&self, id: ConnectionId) {
        if let Some(h) = read(&self.shared.conns).get(&id) {
            h.state.close_with(CloseReason::Local);
        }
    }
}

fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        a => a,
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    local: SocketAddr,
    transport: Transport,
) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (tcp, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and the like: back off a little instead of spinning.
                tracing::warn!(%local, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let remote = unmap(remote);
        let permit = match InboundPermit::acquire(&shared, remote.ip()) {
            Ok(p) => p,
            Err(reason) => {
                drop(tcp);
                tracing::debug!(%remote, ?reason, "connection refused");
                shared.event(ConnectionEvent::Refused {
                    remote,
                    transport,
                    reason,
                });
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        shared.runtime.spawn(inbound(
            shared.clone(),
            permit,
            tcp,
            remote,
            local,
            transport,
        ));
    }
}

fn ws_config(limits: &StreamLimits) -> WebSocketConfig {
    let max = limits.max_message_size as usize;
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// The handshake callback of WS/WSS listeners: requires and selects subprotocol `sip`.
#[allow(clippy::result_large_err)]
fn ws_accept_sip(
    req: &tungstenite::handshake::server::Request,
    mut resp: tungstenite::handshake::server::Response,
) -> Result<tungstenite::handshake::server::Response, tungstenite::handshake::server::ErrorResponse>
{
    let offers_sip = req
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"));
    if !offers_sip {
        let mut e = tungstenite::handshake::server::ErrorResponse::new(Some(
            "WebSocket subprotocol 'sip' required (RFC 7118)".to_owned(),
        ));
        *e.status_mut() = tungstenite::http::StatusCode::BAD_REQUEST;
        return Err(e);
    }
    resp.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tungstenite::http::HeaderValue::from_static("sip"),
    );
    Ok(resp)
}

async fn inbound(
    shared: Arc<Shared>,
    permit: InboundPermit,
    tcp: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    transport: Transport,
) {
    let hs = shared.limits.handshake_timeout;
    let fail = |what: String| {
        tracing::debug!(%remote, %transport, error = %what, "inbound handshake failed");
    };
    match transport {
        Transport::Tcp => run_inbound_stream(shared, permit, tcp, remote, local, transport).await,
        Transport::Tls => {
            let Some(cfg) = shared.tls_server.clone() else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
            match tokio::time::timeout(hs, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    run_inbound_stream(shared, permit, tls, remote, local, transport).await
                }
                Ok(Err(e)) => fail(e.to_string()),
                Err(_) => fail("TLS handshake timed out".into()),
            }
        }
        Transport::Ws => {
            let cfg = Some(ws_config(&shared.limits));
            match tokio::time::timeout(
                hs,
                tokio_tungstenite::accept_hdr_async_with_config(tcp, ws_accept_sip, cfg),
            )
            .await
            {
                Ok(Ok(ws)) => run_inbound_ws(shared, permit, ws, remote, local, transport).await,
                Ok(Err(e)) => fail(e.to_string()),
                Err(_) => fail("WebSocket handshake timed out".into()),
            }
        }
        Transport::Wss => {
            let Some(cfg) = shared.tls_server.clone() else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
            let wscfg = Some(ws_config(&shared.limits));
            let r = tokio::time::timeout(hs, async {
                let tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
                tokio_tungstenite::accept_hdr_async_with_config(tls, ws_accept_sip, wscfg)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            match r {
                Ok(Ok(ws)) => run_inbound_ws(shared, permit, ws, remote, local, transport).await,
                Ok(Err(e)) => fail(e),
                Err(_) => fail("WSS handshake timed out".into()),
            }
        }
        _ => {}
    }
}

async fn run_inbound_stream<S>(
    shared: Arc<Shared>,
    permit: InboundPermit,
    io: S,
    remote: SocketAddr,
    local: SocketAddr,
    transport: Transport,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let id = shared.new_id();
    let (reg, rx) = shared.register(id, (remote, transport), false);
    shared.event(ConnectionEvent::Opened {
        id,
        transport,
        remote,
        local,
        inbound: true,
    });
    run_stream(&reg, io, rx, local).await;
    drop(reg);
    drop(permit);
}

async fn run_inbound_ws<S>(
    shared: Arc<Shared>,
    permit: InboundPermit,
    ws: WebSocketStream<S>,
    remote: SocketAddr,
    local: SocketAddr,
    transport: Transport,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let id = shared.new_id();
    let (reg, rx) = shared.register(id, (remote, transport), false);
    shared.event(ConnectionEvent::Opened {
        id,
        transport,
        remote,
        local,
        inbound: true,
    });
    run_ws(&reg, ws, rx, local).await;
    drop(reg);
    drop(permit);
}

/// Opens an outbound connection and runs it; on failure drops the queued messages.
async fn outbound(reg: Registration, rx: mpsc::Receiver<Bytes>) {
    let shared = reg.shared.clone();
    let (destination, transport) = reg.key;
    let mut close = reg.handle.state.close.subscribe();
    let connect = async {
        let tcp = tokio::time::timeout(
            shared.limits.connect_timeout,
            TcpStream::connect(destination),
        )
        .await
        .map_err(|_| Error::Timeout)??;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr()?;
        Ok::<_, Error>((tcp, local))
    };
    let (tcp, local) = tokio::select! {
        r = connect => match r {
            Ok(x) => x,
            Err(e) => return connect_failed(&reg, e),
        },
        _ = close.wait_for(|c| *c) => return,
    };
    let hs = shared.limits.handshake_timeout;
    let server_name = || match &shared.tls_server_name {
        Some(f) => f(destination),
        None => ServerName::IpAddress(destination.ip().into()),
    };
    let ws_request = |scheme: &str| {
        use tungstenite::client::IntoClientRequest;
        let mut req = format!("{scheme}://{destination}/").into_client_request()?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            tungstenite::http::HeaderValue::from_static("sip"),
        );
        Ok::<_, Error>(req)
    };
    let opened = || {
        shared.event(ConnectionEvent::Opened {
            id: reg.id,
            transport,
            remote: destination,
            local,
            inbound: false,
        })
    };
    match transport {
        Transport::Tcp => {
            opened();
            run_stream(&reg, tcp, rx, local).await;
        }
        Transport::Tls => {
            let Some(cfg) = shared.tls_client.clone() else {
                return connect_failed(&reg, Error::NoTlsClientConfig(transport));
            };
            let connector = tokio_rustls::TlsConnector::from(cfg);
            match tokio::time::timeout(hs, connector.connect(server_name(), tcp)).await {
                Ok(Ok(tls)) => {
                    opened();
                    run_stream(&reg, tls, rx, local).await;
                }
                Ok(Err(e)) => connect_failed(&reg, e.into()),
                Err(_) => connect_failed(&reg, Error::Timeout),
            }
        }
        Transport::Ws => {
            let req = match ws_request("ws") {
                Ok(r) => r,
                Err(e) => return connect_failed(&reg, e),
            };
            let cfg = Some(ws_config(&shared.limits));
            match tokio::time::timeout(
                hs,
                tokio_tungstenite::client_async_with_config(req, tcp, cfg),
            )
            .await
            {
                Ok(Ok((ws, _))) => {
                    opened();
                    run_ws(&reg, ws, rx, local).await;
                }
                Ok(Err(e)) => connect_failed(&reg, e.into()),
                Err(_) => connect_failed(&reg, Error::Timeout),
            }
        }
        Transport::Wss => {
            let Some(cfg) = shared.tls_client.clone() else {
                return connect_failed(&reg, Error::NoTlsClientConfig(transport));
            };
            let req = match ws_request("wss") {
                Ok(r) => r,
                Err(e) => return connect_failed(&reg, e),
            };
            let connector = tokio_rustls::TlsConnector::from(cfg);
            let wscfg = Some(ws_config(&shared.limits));
            let r = tokio::time::timeout(hs, async {
                let tls = connector.connect(server_name(), tcp).await?;
                let (ws, _) = tokio_tungstenite::client_async_with_config(req, tls, wscfg).await?;
                Ok::<_, Error>(ws)
            })
            .await;
            match r {
                Ok(Ok(ws)) => {
                    opened();
                    run_ws(&reg, ws, rx, local).await;
                }
                Ok(Err(e)) => connect_failed(&reg, e),
                Err(_) => connect_failed(&reg, Error::Timeout),
            }
        }
        t => connect_failed(&reg, Error::UnsupportedTransport(t)),
    }
}

fn connect_failed(reg: &Registration, e: Error) {
    tracing::debug!(destination = %reg.key.0, transport = %reg.key.1, error = %e, "connect failed");
    reg.handle
        .state
        .close_with(CloseReason::Handshake(e.to_string()));
    reg.shared.event(ConnectionEvent::ConnectFailed {
        id: reg.id,
        destination: reg.key.0,
        transport: reg.key.1,
        error: e.to_string(),
    });
}

/// Writes queued messages until the queue closes, the connection closes, or a write fails.
async fn write_loop<W: AsyncWrite + Unpin>(
    shared: &Shared,
    state: &ConnState,
    mut wr: W,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let mut close = state.close.subscribe();
    let mut gather = BytesMut::new();
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => break },
            _ = close.wait_for(|c| *c) => break,
        };
        // Coalesce what else is queued into one write (bounded).
        let buf: Bytes = match rx.try_recv() {
            Ok(second) => {
                gather.clear();
                gather.extend_from_slice(&first);
                gather.extend_from_slice(&second);
                while gather.len() < 64 * 1024 {
                    match rx.try_recv() {
                        Ok(m) => gather.extend_from_slice(&m),
                        Err(_) => break,
                    }
                }
                gather.split().freeze()
            }
            Err(_) => first,
        };
        let write = async {
            wr.write_all(&buf).await?;
            wr.flush().await
        };
        let r = tokio::select! {
            r = tokio::time::timeout(shared.limits.write_timeout, write) => r,
            _ = close.wait_for(|c| *c) => break,
        };
        match r {
            Ok(Ok(())) => state
                .last_write_ms
                .store(shared.now_ms(), Ordering::Relaxed),
            Ok(Err(e)) => return state.close_with(CloseReason::Io(e.kind())),
            Err(_) => return state.close_with(CloseReason::WriteTimeout),
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}

/// Runs a framed byte-stream connection (TCP or TLS) until it closes.
async fn run_stream<S>(reg: &Registration, io: S, rx: mpsc::Receiver<Bytes>, local: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let shared = reg.shared.clone();
    let state = reg.handle.state.clone();
    let (mut rd, wr) = tokio::io::split(io);
    let writer = {
        let shared = shared.clone();
        let state = state.clone();
        tokio::spawn(async move { write_loop(&shared, &state, wr, rx).await })
    };
    let reason = read_loop(reg, &mut rd, local).await;
    state.close_with(reason);
    let _ = writer.await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    reg: &Registration,
    rd: &mut R,
    local: SocketAddr,
) -> CloseReason {
    let shared = &reg.shared;
    let limits = &shared.limits;
    let state = &reg.handle.state;
    let (remote, transport) = reg.key;
    let sink = shared.sink.pick(reg.id);
    let mut close = state.close.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    let mut framer = Framer::with_max_message_size(limits.max_message_size);
    let mut last_read = Instant::now();
    let mut message_deadline: Option<Instant> = None;
    loop {
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(bytes))) => {
                    let inc = Incoming {
                        bytes,
                        source: remote,
                        local,
                        transport,
                        connection: Some(reg.id),
                    };
                    // Backpressure: wait for the consumer (the peer's TCP window fills).
                    let sent = tokio::select! {
                        r = sink.send(inc) => r.is_ok(),
                        _ = close.wait_for(|c| *c) => return CloseReason::Local,
                    };
                    if !sent {
                        return CloseReason::Local;
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    let _ = reg.handle.tx.try_send(Bytes::from_static(PONG));
                }
                Ok(Some(Frame::Pong)) => {}
                Ok(None) => break,
                Err(e) => return CloseReason::Framing(e),
            }
        }
        let now = Instant::now();
        if framer.in_message() {
            message_deadline.get_or_insert(now + limits.message_read_timeout);
        } else {
            message_deadline = None;
        }
        let last_write =
            shared.epoch + Duration::from_millis(state.last_write_ms.load(Ordering::Relaxed));
        let idle_deadline = last_read.max(last_write) + limits.idle_timeout;
        let deadline = match message_deadline {
            Some(d) => d.min(idle_deadline),
            None => idle_deadline,
        };
        let buf = framer.buffer_mut();
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        tokio::select! {
            r = rd.read_buf(buf) => match r {
                Ok(0) => return CloseReason::PeerClosed,
                Ok(_) => last_read = Instant::now(),
                Err(e) => return CloseReason::Io(e.kind()),
            },
            _ = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                if message_deadline.is_some_and(|d| d <= now) {
                    return CloseReason::ReadTimeout;
                }
                let last_write = shared.epoch + Duration::from_millis(state.last_write_ms.load(Ordering::Relaxed));
                if last_read.max(last_write) + limits.idle_timeout <= now {
                    return CloseReason::IdleTimeout;
                }
            }
            _ = close.wait_for(|c| *c) => return CloseReason::Local,
            _ = shutdown.wait_for(|s| *s) => return CloseReason::Local,
        }
    }
}

/// Runs a WebSocket connection (WS or WSS) until it closes: one SIP message per
/// WebSocket message.
async fn run_ws<S>(
    reg: &Registration,
    ws: WebSocketStream<S>,
    mut rx: mpsc::Receiver<Bytes>,
    local: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let shared = reg.shared.clone();
    let state = reg.handle.state.clone();
    let (mut sink_ws, mut stream_ws) = ws.split();
    let writer = {
        let shared = shared.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let mut close = state.close.subscribe();
            loop {
                let m = tokio::select! {
                    m = rx.recv() => match m { Some(m) => m, None => break },
                    _ = close.wait_for(|c| *c) => break,
                };
                // SIP is text; a message with a non-UTF-8 body goes as a binary frame.
                let msg = match tungstenite::Utf8Bytes::try_from(m.clone()) {
                    Ok(t) => WsMessage::Text(t),
                    Err(_) => WsMessage::Binary(m),
                };
                match tokio::time::timeout(shared.limits.write_timeout, sink_ws.send(msg)).await {
                    Ok(Ok(())) => state
                        .last_write_ms
                        .store(shared.now_ms(), Ordering::Relaxed),
                    Ok(Err(e)) => return state.close_with(CloseReason::WebSocket(e.to_string())),
                    Err(_) => return state.close_with(CloseReason::WriteTimeout),
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), sink_ws.close()).await;
        })
    };
    let reason = async {
        let limits = &shared.limits;
        let (remote, transport) = reg.key;
        let sink = shared.sink.pick(reg.id);
        let mut close = state.close.subscribe();
        let mut shutdown = shared.shutdown.subscribe();
        let mut last_read = Instant::now();
        loop {
            let last_write = shared.epoch + Duration::from_millis(state.last_write_ms.load(Ordering::Relaxed));
            let deadline = last_read.max(last_write) + limits.idle_timeout;
            let m = tokio::select! {
                m = stream_ws.next() => m,
                _ = tokio::time::sleep_until(deadline) => {
                    let last_write = shared.epoch + Duration::from_millis(state.last_write_ms.load(Ordering::Relaxed));
                    if last_read.max(last_write) + limits.idle_timeout <= Instant::now() {
                        return CloseReason::IdleTimeout;
                    }
                    continue;
                }
                _ = close.wait_for(|c| *c) => return CloseReason::Local,
                _ = shutdown.wait_for(|s| *s) => return CloseReason::Local,
            };
            last_read = Instant::now();
            let bytes: Bytes = match m {
                None | Some(Ok(WsMessage::Close(_))) => return CloseReason::PeerClosed,
                Some(Err(e)) => return CloseReason::WebSocket(e.to_string()),
                Some(Ok(WsMessage::Text(t))) => t.into(),
                Some(Ok(WsMessage::Binary(b))) => b,
                Some(Ok(_)) => continue, // ping/pong: answered by tungstenite
            };
            if bytes.iter().all(|&b| b == b'\r' || b == b'\n') {
                continue; // keep-alive
            }
            let inc = Incoming {
                bytes,
                source: remote,
                local,
                transport,
                connection: Some(reg.id),
            };
            let sent = tokio::select! {
                r = sink.send(inc) => r.is_ok(),
                _ = close.wait_for(|c| *c) => return CloseReason::Local,
            };
            if !sent {
                return CloseReason::Local;
            }
        }
    }
    .await;
    state.close_with(reason);
    let _ = writer.await;
}
