//! Limits that bound the work and memory an attacker can cause with one message.

/// Bounds checked while parsing. The defaults suit a public-facing proxy: they accept every
/// message of the RFC 4475 and RFC 5118 torture tests and real-world traffic, and refuse
/// messages built to exhaust a parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message in bytes (default 65 535, the largest UDP payload).
    pub max_message_size: u32,
    /// Most header fields (lines, after unfolding) in one message (default 128).
    pub max_headers: u32,
    /// Longest logical header line in bytes, folded continuations included (default 8 192).
    pub max_line_length: u32,
    /// Longest Request-URI in bytes (default 4 096).
    pub max_uri_length: u32,
    /// Most Via values over all Via headers (default 64; RFC 3261 loops end at 70 hops).
    pub max_via: u32,
    /// Most Route values over all Route headers (default 64).
    pub max_route: u32,
}

impl Limits {
    /// The defaults described on each field.
    pub const DEFAULT: Limits = Limits {
        max_message_size: 65_535,
        max_headers: 128,
        max_line_length: 8_192,
        max_uri_length: 4_096,
        max_via: 64,
        max_route: 64,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
