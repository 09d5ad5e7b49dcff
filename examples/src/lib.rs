//! Small programs that embed the sip-lb crates; each is a binary under `src/bin/`:
//!
//! - `blocking_proxy`: the sans-IO `sip-proxy` core driven by a single blocking thread and
//!   one `std::net::UdpSocket` — the smallest custom runtime.
