//! Waiting for sockets without an async runtime: for a thread that owns its sockets and
//! drives a sans-IO core in a loop (one `poll(2)` per wake-up, then a batched receive on
//! each socket that is readable, nothing on the others), and a [`Waker`] another thread
//! uses to interrupt that wait.
//!
//! ```
//! use std::time::Duration;
//! use sip_transport::poll::{Poller, Waker};
//! let waker = Waker::new().unwrap();
//! let mut poller = Poller::new();
//! let w = poller.add(&waker);
//! assert_eq!(poller.wait(Some(Duration::from_millis(10))).unwrap(), 0);
//! waker.wake();
//! assert_eq!(poller.wait(Some(Duration::from_secs(5))).unwrap(), 1);
//! assert!(poller.is_readable(w));
//! waker.reset();
//! ```

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// The set of descriptors one thread waits on, each for readability.
#[derive(Debug, Default)]
pub struct Poller {
    fds: Vec<libc::pollfd>,
    /// The descriptors as added (an entry waits on nothing while disabled).
    added: Vec<RawFd>,
}

impl Poller {
    /// An empty set.
    pub fn new() -> Poller {
        Poller::default()
    }

    /// Adds a descriptor (a socket, a [`Waker`]); returns its index for
    /// [`Poller::is_readable`] and [`Poller::set_enabled`].
    pub fn add(&mut self, fd: &impl AsRawFd) -> usize {
        self.fds.push(libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        self.added.push(fd.as_raw_fd());
        self.fds.len() - 1
    }

    /// Stops or resumes waiting on descriptor `index` (a listener while draining).
    pub fn set_enabled(&mut self, index: usize, enabled: bool) {
        if let (Some(p), Some(&fd)) = (self.fds.get_mut(index), self.added.get(index)) {
            // poll(2) ignores entries with a negative descriptor.
            p.fd = if enabled { fd } else { -1 };
        }
    }

    /// Waits until a descriptor is readable or `timeout` passes (`None`: no limit);
    /// returns how many are readable (0 on timeout or when a signal interrupted the wait).
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        for p in &mut self.fds {
            p.revents = 0;
        }
        // Round up, so that a deadline is never woken for early.
        let ms: libc::c_int = match timeout {
            None => -1,
            Some(t) => t.as_micros().div_ceil(1000).min(libc::c_int::MAX as u128) as libc::c_int,
        };
        // SAFETY: `self.fds` is a live, initialised array of `len` pollfd values, which
        // poll(2) reads and whose `revents` it writes, nothing more; it is not accessed
        // by anything else during the call.
        let r = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(r as usize)
    }

    /// True when descriptor `index` was readable (or in error: a receive then tells why)
    /// after the last [`Poller::wait`].
    pub fn is_readable(&self, index: usize) -> bool {
        self.fds
            .get(index)
            .is_some_and(|p| p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0)
    }
}

/// Wakes a thread waiting in [`Poller::wait`] from another thread: a datagram on a local
/// socket pair makes the waiting side readable. Waking twice before the reset is one wake.
#[derive(Debug)]
pub struct Waker {
    rx: UnixDatagram,
    tx: UnixDatagram,
}

impl Waker {
    /// A new waker.
    pub fn new() -> io::Result<Waker> {
        let (rx, tx) = UnixDatagram::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Waker { rx, tx })
    }

    /// Makes the waiting side readable (never blocks; a full queue is already a wake).
    pub fn wake(&self) {
        let _ = self.tx.send(&[1]);
    }

    /// Consumes the pending wakes (call before looking at what the wakers announced).
    pub fn reset(&self) {
        let mut b = [0u8; 16];
        while self.rx.recv(&mut b).is_ok() {}
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }
}
