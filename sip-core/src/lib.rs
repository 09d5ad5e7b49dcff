//! sip-core: zero-copy SIP parser (being written).
