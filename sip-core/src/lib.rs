//! sip-core: zero-copy SIP (RFC 3261) message parsing, typed header views, message editing
//! and stream framing. (Being written: the module doc gains its runnable example with the
//! parser.)

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod framer;
pub mod transport;

pub use transport::Transport;
