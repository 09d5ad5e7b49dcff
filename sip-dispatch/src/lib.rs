//! sip-dispatch: under construction; see README.md.
