//! Stream framing of SIP messages over TCP, TLS and WebSocket (being written).
