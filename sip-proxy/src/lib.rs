//! sip-proxy: under construction; see README.md.
