//! UDP: `SO_REUSEPORT` sockets (one per worker), batched receive and send with
//! `recvmmsg`/`sendmmsg` on Linux, zero-copy receive into reused buffers, usable from a
//! plain blocking thread ([`UdpSocket`]) or from tokio ([`AsyncUdpSocket`]).
//!
//! ICMP errors reported by the kernel (`ECONNREFUSED` from a dead peer, unreachable hosts
//! or networks) never fail the socket: a receive skips them, a send drops only the datagram
//! to the unreachable destination.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
#[cfg(unix)]
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use bytes::BytesMut;
use sip_core::Transport;
use socket2::{Domain, Protocol, Socket, Type};

use crate::{Incoming, Outgoing};

/// Most datagrams received or sent by one system call.
pub const MAX_BATCH: usize = 64;

/// Options for UDP sockets. The defaults suit a busy proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpConfig {
    /// `SO_RCVBUF` in bytes (default 4 MiB; the kernel caps it at `net.core.rmem_max`).
    pub recv_buffer_size: usize,
    /// `SO_SNDBUF` in bytes (default 4 MiB; capped at `net.core.wmem_max`).
    pub send_buffer_size: usize,
    /// How long a blocking [`UdpSocket::recv_batch`] waits before returning `Ok(0)`, so a
    /// worker loop can service its timers (default 50 ms; `None` waits for ever).
    pub read_timeout: Option<Duration>,
    /// For an IPv6 address: accept only IPv6 (`IPV6_V6ONLY`). `None` keeps the system
    /// default (dual-stack on Linux); IPv4 peers then appear as plain IPv4 addresses.
    pub only_v6: Option<bool>,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            recv_buffer_size: 4 << 20,
            send_buffer_size: 4 << 20,
            read_timeout: Some(Duration::from_millis(50)),
            only_v6: None,
        }
    }
}

/// Reusable receive state for [`UdpSocket::recv_batch`]: one buffer per slot, each
/// received datagram frozen into a [`bytes::Bytes`] that shares the slot's allocation
/// (no copy). A slot's allocation is reused once every datagram cut from it is dropped.
///
/// Memory: each slot holds a chunk of `2 × max_datagram` bytes (at least 64 KiB), and
/// datagrams are cut from it one after the other; a datagram kept alive keeps its chunk
/// alive, so many small held datagrams share one chunk.
#[derive(Debug)]
pub struct RecvBatch {
    slots: Vec<BytesMut>,
    /// Source addresses, one per slot, written by `recvmmsg`. Kept here, zeroed once,
    /// rather than zeroed on the stack for every system call (4 KiB at 32 slots).
    #[cfg(target_os = "linux")]
    addrs: Vec<libc::sockaddr_storage>,
    max_datagram: usize,
    chunk: usize,
    incoming: Vec<Incoming>,
    truncated: u64,
    /// Entries the next receive offers the kernel (1..=slots.len()).
    offer: usize,
    /// The last receive filled every entry it offered.
    full: bool,
}

/// The fewest entries a receive offers (unless the batch is smaller).
const MIN_OFFER: usize = 4;

impl RecvBatch {
    /// Room for `batch_size` datagrams (clamped to 1..=[`MAX_BATCH`]) of at most
    /// `max_datagram` bytes each (longer ones are dropped and counted in
    /// [`RecvBatch::truncated`]). `batch_size` 1 receives one datagram per system call.
    pub fn new(batch_size: usize, max_datagram: usize) -> RecvBatch {
        let n = batch_size.clamp(1, MAX_BATCH);
        let max_datagram = max_datagram.clamp(1, 65_535);
        RecvBatch {
            slots: (0..n).map(|_| BytesMut::new()).collect(),
            // SAFETY: all-zero bytes are a valid sockaddr_storage (a plain C struct).
            #[cfg(target_os = "linux")]
            addrs: (0..n).map(|_| unsafe { std::mem::zeroed() }).collect(),
            max_datagram,
            chunk: (2 * max_datagram).max(64 << 10),
            incoming: Vec::with_capacity(n),
            truncated: 0,
            offer: n,
            full: false,
        }
    }

    /// Most datagrams per system call.
    ///
    /// A receive offers the kernel room for twice as many datagrams as the previous one
    /// took (at least 4, at most this), and twice as many as it offered after a receive
    /// that came back full (a receive that found nothing leaves the offer as it was):
    /// setting up an entry costs about 30 instructions, and at moderate rates most
    /// receives take one or two datagrams.
    pub fn batch_size(&self) -> usize {
        self.slots.len()
    }

    /// True when the last receive took as many datagrams as it offered room for: more
    /// may be waiting, and the next receive offers more room.
    pub fn was_full(&self) -> bool {
        self.full
    }

    /// The datagrams of the last receive.
    pub fn incoming(&self) -> &[Incoming] {
        &self.incoming
    }

    /// Takes the datagrams of the last receive.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Incoming> {
        self.incoming.drain(..)
    }

    /// Datagrams dropped so far because they were longer than `max_datagram`.
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    /// Clears the last receive's datagrams and gives the entries about to be offered
    /// room; returns how many to offer.
    fn prepare(&mut self) -> usize {
        self.incoming.clear();
        self.full = false;
        let n = self.offer.clamp(1, self.slots.len());
        for s in &mut self.slots[..n] {
            if s.capacity() < self.max_datagram {
                // Reuses the old allocation when every datagram cut from it is gone.
                s.reserve(self.chunk);
            }
        }
        n
    }

    /// Records that the kernel filled `received` of the `offered` entries and sizes the
    /// next offer.
    fn received(&mut self, offered: usize, received: usize) {
        self.full = received >= offered;
        let next = if self.full { offered * 2 } else { received * 2 };
        self.offer = next.clamp(MIN_OFFER.min(self.slots.len()), self.slots.len());
    }
}

impl Default for RecvBatch {
    /// 32 datagrams of up to 65 535 bytes.
    fn default() -> Self {
        RecvBatch::new(32, 65_535)
    }
}

/// A UDP socket for a blocking worker thread: batched receive with a read timeout and
/// batched send. Convert it with [`UdpSocket::into_async`] to use it from tokio.
#[derive(Debug)]
pub struct UdpSocket {
    sock: std::net::UdpSocket,
    local: SocketAddr,
}

fn new_socket(addr: SocketAddr, cfg: &UdpConfig, reuse_port: bool) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let (true, Some(v6)) = (addr.is_ipv6(), cfg.only_v6) {
        sock.set_only_v6(v6)?;
    }
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    #[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
    if reuse_port {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SO_REUSEPORT is not available on this system",
        ));
    }
    // Buffer sizes are best effort: the kernel caps them.
    let _ = sock.set_recv_buffer_size(cfg.recv_buffer_size);
    let _ = sock.set_send_buffer_size(cfg.send_buffer_size);
    sock.set_read_timeout(cfg.read_timeout)?;
    sock.bind(&addr.into())?;
    Ok(sock)
}

impl UdpSocket {
    /// Binds one socket (without `SO_REUSEPORT`).
    pub fn bind(addr: SocketAddr, cfg: &UdpConfig) -> io::Result<UdpSocket> {
        UdpSocket::from_socket2(new_socket(addr, cfg, false)?)
    }

    /// Binds `n` sockets on the same address with `SO_REUSEPORT`, one per worker thread;
    /// the kernel spreads incoming datagrams over them by source address and port. With
    /// port 0 the first socket picks a free port and the others join it.
    pub fn bind_reuseport(
        addr: SocketAddr,
        n: usize,
        cfg: &UdpConfig,
    ) -> io::Result<Vec<UdpSocket>> {
        let mut out = Vec::with_capacity(n);
        let mut addr = addr;
        for _ in 0..n {
            let s = UdpSocket::from_socket2(new_socket(addr, cfg, true)?)?;
            addr = s.local;
            out.push(s);
        }
        Ok(out)
    }

    /// Binds a private socket on an ephemeral port of `ip` (for a worker's own outbound
    /// traffic, such as health probes).
    pub fn bind_ephemeral(ip: IpAddr, cfg: &UdpConfig) -> io::Result<UdpSocket> {
        UdpSocket::bind(SocketAddr::new(ip, 0), cfg)
    }

    /// Wraps a configured `socket2` socket (it must be a bound UDP socket).
    pub fn from_socket2(sock: Socket) -> io::Result<UdpSocket> {
        let sock: std::net::UdpSocket = sock.into();
        let local = sock.local_addr()?;
        Ok(UdpSocket { sock, local })
    }

    /// The bound address (with an unspecified IP if bound to `0.0.0.0` or `::`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The underlying standard socket.
    pub fn as_std(&self) -> &std::net::UdpSocket {
        &self.sock
    }

    /// Changes how long a blocking receive waits (`None`: for ever).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }

    /// Another handle to the same socket (for example one thread receiving, one sending).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            sock: self.sock.try_clone()?,
            local: self.local,
        })
    }

    /// Waits (up to the read timeout) for datagrams and receives as many as are queued, up
    /// to the batch size, in one system call. Returns how many are in
    /// [`RecvBatch::incoming`]; `Ok(0)` when the timeout passed (or a signal interrupted the
    /// wait). Datagrams still in the batch from the previous call are discarded.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        match self.recv_inner(batch, false) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            r => r,
        }
    }

    /// Receives the datagrams already queued, up to the batch size, in one system call,
    /// without waiting (for a thread that learnt from [`crate::poll::Poller`] that the
    /// socket is readable). `Ok(0)` when none is queued.
    #[cfg(unix)]
    pub fn try_recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        match self.recv_inner(batch, true) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            r => r,
        }
    }

    /// Sends the datagrams (their `transport` and `connection` fields are ignored), as many
    /// per system call as possible. A datagram the kernel refuses for its destination alone
    /// (unreachable, refused, wrong address family, too large) is dropped and the others
    /// are still sent. Returns how many were sent.
    pub fn send_batch(&self, out: &[Outgoing]) -> io::Result<usize> {
        let mut sent = 0;
        let mut rest = out;
        while !rest.is_empty() {
            match self.send_inner(rest, false) {
                Ok((consumed, ok)) => {
                    sent += ok;
                    rest = &rest[consumed..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// Sends one datagram.
    pub fn send_to(&self, bytes: &[u8], destination: SocketAddr) -> io::Result<usize> {
        self.sock.send_to(bytes, self.map_destination(destination))
    }

    /// Registers the socket with the current tokio runtime (must be called from within one).
    pub fn into_async(self) -> io::Result<AsyncUdpSocket> {
        AsyncUdpSocket::new(self)
    }

    fn map_destination(&self, d: SocketAddr) -> SocketAddr {
        match (self.local, d) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
                SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
            }
            _ => d,
        }
    }

    fn make_incoming(&self, bytes: bytes::Bytes, source: SocketAddr) -> Incoming {
        Incoming {
            bytes,
            source: unmap(source),
            local: self.local,
            transport: Transport::Udp,
            connection: None,
        }
    }
}

/// An IPv4-mapped IPv6 address (from a dual-stack socket) as plain IPv4.
fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
            None => a,
        },
        a => a,
    }
}

/// Errors that concern one peer (ICMP feedback, a bad destination), not the socket.
fn is_peer_error(e: &io::Error) -> bool {
    #[cfg(unix)]
    if let Some(code) = e.raw_os_error() {
        return matches!(
            code,
            libc::ECONNREFUSED
                | libc::ECONNRESET
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENETDOWN
                | libc::EPROTO
                | libc::EMSGSIZE
                | libc::EINVAL
                | libc::EAFNOSUPPORT
                | libc::EADDRNOTAVAIL
                | libc::EACCES
                | libc::EPERM
        );
    }
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::PermissionDenied
    )
}

/// Most ICMP errors skipped by one receive call before it returns.
const MAX_SKIPPED_ERRORS: usize = 64;

#[cfg(target_os = "linux")]
mod sys {
    use super::*;

    /// Writes `addr` into `storage`, returning the length to pass to the kernel.
    pub(super) fn to_sockaddr(
        addr: SocketAddr,
        storage: &mut libc::sockaddr_storage,
    ) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned for
                // sockaddr_in (that is its purpose); we write one whole value.
                unsafe { std::ptr::write(storage as *mut _ as *mut libc::sockaddr_in, sin) };
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe { std::ptr::write(storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    /// An `mmsghdr` for one datagram: address `addr` of `len` bytes, one iovec.
    pub(super) fn msg_header(
        addr: *mut libc::sockaddr_storage,
        len: usize,
        iov: *mut libc::iovec,
    ) -> libc::mmsghdr {
        // SAFETY: all-zero bytes are a valid mmsghdr (a plain C struct: null pointers,
        // zero lengths and flags).
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        h.msg_hdr.msg_name = addr.cast();
        h.msg_hdr.msg_namelen = len as libc::socklen_t;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        h
    }

    /// Reads the address the kernel wrote into `storage`.
    pub(super) fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match storage.ss_family as libc::c_int {
            libc::AF_INET => {
                // SAFETY: the family says the kernel wrote a sockaddr_in; storage is large
                // enough and aligned for it.
                let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn last_error() -> io::Error {
        io::Error::last_os_error()
    }

    impl UdpSocket {
        pub(super) fn recv_inner(
            &self,
            batch: &mut RecvBatch,
            nonblocking: bool,
        ) -> io::Result<usize> {
            let n = batch.prepare();
            let fd: RawFd = self.sock.as_raw_fd();
            // Only the first `n` entries are written (zeroing all MAX_BATCH of the three
            // arrays was 13 KiB of memset per system call, 1.4 % of the worker's CPU).
            // The source addresses live in the batch (always initialised: zeroed once, then
            // whatever the kernel last wrote).
            let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; MAX_BATCH];
            let mut hdrs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; MAX_BATCH];
            let addrs = batch.addrs.as_mut_ptr();
            for i in 0..n {
                let spare: &mut [MaybeUninit<u8>] = batch.slots[i].spare_capacity_mut();
                let iov: *mut libc::iovec = iovs[i].write(libc::iovec {
                    iov_base: spare.as_mut_ptr().cast(),
                    // Ask for one byte more than allowed so that a longer datagram is
                    // seen as truncated (MSG_TRUNC) rather than silently cut.
                    iov_len: (batch.max_datagram + 1).min(spare.len()),
                });
                // SAFETY: `addrs` has one entry per slot and `i < n <= slots.len()`.
                let addr: *mut libc::sockaddr_storage = unsafe { addrs.add(i) };
                hdrs[i].write(msg_header(
                    addr,
                    std::mem::size_of::<libc::sockaddr_storage>(),
                    iov,
                ));
            }
            let flags = if nonblocking {
                libc::MSG_DONTWAIT
            } else {
                libc::MSG_WAITFORONE
            };
            let mut skipped = 0;
            let r = loop {
                // SAFETY: `hdrs[..n]` are initialised mmsghdr values whose msg_name points to
                // `batch.addrs[i]` and msg_iov to `iovs[i]`, which point into the spare capacity
                // of `batch.slots[i]` (at least `iov_len` bytes); all of these outlive the
                // call and nothing else accesses them meanwhile. The kernel writes at most
                // `iov_len` bytes and `msg_namelen` address bytes.
                let r = unsafe {
                    libc::recvmmsg(
                        fd,
                        hdrs.as_mut_ptr().cast::<libc::mmsghdr>(),
                        n as libc::c_uint,
                        flags,
                        std::ptr::null_mut(),
                    )
                };
                if r >= 0 {
                    break r as usize;
                }
                let e = last_error();
                if is_peer_error(&e) && skipped < MAX_SKIPPED_ERRORS {
                    // ICMP feedback about an earlier send: consumed, the socket lives on.
                    skipped += 1;
                    continue;
                }
                return Err(e);
            };
            batch.received(n, r);
            for (i, hdr) in hdrs[..r.min(n)].iter().enumerate() {
                // SAFETY: entries below `n` were written before the call.
                let hdr = unsafe { hdr.assume_init_ref() };
                let addr = &batch.addrs[i];
                let len = hdr.msg_len as usize;
                if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > batch.max_datagram {
                    batch.truncated += 1;
                    continue;
                }
                let Some(source) = from_sockaddr(addr) else {
                    continue;
                };
                let slot = &mut batch.slots[i];
                // SAFETY: the kernel initialised the first `len` bytes of the spare capacity
                // (msg_len), and `len` <= iov_len <= spare capacity.
                unsafe { slot.set_len(len) };
                let bytes = slot.split().freeze();
                let inc = self.make_incoming(bytes, source);
                batch.incoming.push(inc);
            }
            Ok(batch.incoming.len())
        }

        /// Sends a prefix of `out`; returns (datagrams consumed, datagrams sent).
        pub(super) fn send_inner(
            &self,
            out: &[Outgoing],
            nonblocking: bool,
        ) -> io::Result<(usize, usize)> {
            let n = out.len().min(MAX_BATCH);
            let fd: RawFd = self.sock.as_raw_fd();
            // Only the first `n` entries are written (see recv_inner).
            let mut addrs = [const { MaybeUninit::<libc::sockaddr_storage>::uninit() }; MAX_BATCH];
            let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; MAX_BATCH];
            let mut hdrs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; MAX_BATCH];
            for i in 0..n {
                // SAFETY: all-zero bytes are a valid sockaddr_storage (a plain C struct).
                let addr = addrs[i].write(unsafe { std::mem::zeroed() });
                let len = to_sockaddr(self.map_destination(out[i].destination), addr);
                let addr: *mut libc::sockaddr_storage = addr;
                let iov: *mut libc::iovec = iovs[i].write(libc::iovec {
                    iov_base: out[i].bytes.as_ptr() as *mut libc::c_void,
                    iov_len: out[i].bytes.len(),
                });
                hdrs[i].write(msg_header(addr, len as usize, iov));
            }
            let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
            // SAFETY: `hdrs[..n]` are initialised; each points to its address in `addrs`
            // and its iovec in `iovs`, which points to the bytes of `out[i]` (read only by
            // the kernel despite the `*mut` type). All outlive the call.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs.as_mut_ptr().cast::<libc::mmsghdr>(),
                    n as libc::c_uint,
                    flags,
                )
            };
            if r > 0 {
                return Ok((r as usize, r as usize));
            }
            let e = if r == 0 {
                io::Error::new(io::ErrorKind::WriteZero, "sendmmsg sent nothing")
            } else {
                last_error()
            };
            if is_peer_error(&e) {
                // The first datagram is refused for its destination: drop it alone.
                tracing::debug!(destination = %out[0].destination, error = %e, "UDP datagram dropped");
                return Ok((1, 0));
            }
            Err(e)
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use super::*;

    impl UdpSocket {
        pub(super) fn recv_inner(
            &self,
            batch: &mut RecvBatch,
            nonblocking: bool,
        ) -> io::Result<usize> {
            let n = batch.prepare();
            let sock = socket2::SockRef::from(&self.sock);
            let mut got = 0;
            for i in 0..n {
                if nonblocking || i > 0 {
                    self.sock.set_nonblocking(true)?;
                }
                let max = batch.max_datagram;
                let slot = &mut batch.slots[i];
                let spare = slot.spare_capacity_mut();
                let len = (max + 1).min(spare.len());
                let r = sock.recv_from(&mut spare[..len]);
                if nonblocking || i > 0 {
                    self.sock.set_nonblocking(false)?;
                }
                match r {
                    Ok((len, addr)) => {
                        got += 1;
                        if len > max {
                            batch.truncated += 1;
                            continue;
                        }
                        // SAFETY: recv_from initialised `len` bytes of the spare capacity.
                        unsafe { slot.set_len(len) };
                        let bytes = slot.split().freeze();
                        if let Some(source) = addr.as_socket() {
                            let inc = self.make_incoming(bytes, source);
                            batch.incoming.push(inc);
                        }
                    }
                    Err(e) if i > 0 && e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if is_peer_error(&e) => continue,
                    Err(e) if batch.incoming.is_empty() => return Err(e),
                    Err(_) => break,
                }
            }
            // As on Linux: a receive that found nothing leaves the offer as it was.
            if got > 0 {
                batch.received(n, got);
            }
            Ok(batch.incoming.len())
        }

        pub(super) fn send_inner(
            &self,
            out: &[Outgoing],
            nonblocking: bool,
        ) -> io::Result<(usize, usize)> {
            self.sock.set_nonblocking(nonblocking)?;
            let r = self
                .sock
                .send_to(&out[0].bytes, self.map_destination(out[0].destination));
            self.sock.set_nonblocking(false)?;
            match r {
                Ok(_) => Ok((1, 1)),
                Err(e) if is_peer_error(&e) => Ok((1, 0)),
                Err(e) => Err(e),
            }
        }
    }
}

#[cfg(unix)]
impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// A [`UdpSocket`] registered with tokio: the same batched receive and send, awaiting
/// readiness instead of blocking.
#[derive(Debug)]
pub struct AsyncUdpSocket {
    fd: tokio::io::unix::AsyncFd<UdpSocket>,
}

impl AsyncUdpSocket {
    /// Registers `sock` with the current tokio runtime (call from within one).
    pub fn new(sock: UdpSocket) -> io::Result<AsyncUdpSocket> {
        // SAFETY: the AsyncFd owns `sock`, which owns its file descriptor: the descriptor
        // stays open and the same for the AsyncFd's whole life (`UdpSocket::as_raw_fd`
        // always returns the fd of its never-replaced `sock` field).
        let fd = unsafe { tokio::io::unix::AsyncFd::register(sock) }?;
        Ok(AsyncUdpSocket { fd })
    }

    /// The socket.
    pub fn get_ref(&self) -> &UdpSocket {
        self.fd.get_ref()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.fd.get_ref().local
    }

    /// Waits for datagrams and receives as many as are queued, up to the batch size.
    /// Returns how many are in [`RecvBatch::incoming`] (at least one).
    pub async fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| s.get_ref().recv_inner(batch, true)) {
                Ok(Ok(0)) => continue, // only truncated or skipped datagrams
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends the datagrams like [`UdpSocket::send_batch`], waiting while the socket's send
    /// buffer is full. Returns how many were sent.
    pub async fn send_batch(&self, out: &[Outgoing]) -> io::Result<usize> {
        let mut sent = 0;
        let mut rest = out;
        while !rest.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|s| s.get_ref().send_inner(rest, true)) {
                Ok(Ok((consumed, ok))) => {
                    sent += ok;
                    rest = &rest[consumed..];
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(sent)
    }

    /// Sends one datagram.
    pub async fn send_to(&self, bytes: &[u8], destination: SocketAddr) -> io::Result<usize> {
        let o = [Outgoing {
            destination,
            transport: Transport::Udp,
            bytes: bytes::Bytes::copy_from_slice(bytes),
            connection: None,
        }];
        self.send_batch(&o).await
    }
}
