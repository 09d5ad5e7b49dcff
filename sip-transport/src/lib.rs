//! sip-transport: under construction; see README.md.
