//! The Record-Route cookie: the destination a dialog was balanced to, written into our
//! Record-Route URI and protected by an HMAC, so that any instance holding the key can
//! route the dialog's later requests without remembered state.
//!
//! Wire form (URI parameter `lbd`, lowercase hex): one byte of format and transport, the
//! IPv4 (4 bytes) or IPv6 (16 bytes) address, the port (2 bytes), then the first 8 bytes of
//! HMAC-SHA256 over everything before it. A cookie that does not verify is refused (403).
//!
//! ```
//! use sip_proxy::cookie::{CookieKey, RouteCookie};
//! use sip_core::Transport;
//! let key = CookieKey::new(b"shared secret");
//! let c = RouteCookie { addr: "127.0.0.1:5080".parse().unwrap(), transport: Transport::Udp };
//! let text = c.encode(&key);
//! assert_eq!(RouteCookie::decode(text.as_bytes(), &key), Ok(c));
//! let mut forged = text.as_bytes().to_vec();
//! forged[5] ^= 1;
//! assert!(RouteCookie::decode(&forged, &key).is_err());
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sip_core::Transport;

/// Name of the Record-Route URI parameter carrying the cookie.
pub const COOKIE_PARAM: &str = "lbd";

const MAC_LEN: usize = 8;
const MAX_RAW: usize = 1 + 16 + 2 + MAC_LEN;

/// The HMAC key of the cookie.
#[derive(Clone)]
pub struct CookieKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

impl CookieKey {
    /// A key from secret bytes (any length).
    pub fn new(secret: &[u8]) -> Self {
        CookieKey {
            mac: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length"),
        }
    }

    fn tag(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.mac.clone();
        m.update(data);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }
}

/// Tags computed before, so that the HMAC runs once per destination and not once per
/// dialog-creating request and again for each in-dialog request: a direct-mapped table
/// indexed by a hash of the signed bytes. A hit compares the signed bytes exactly, so
/// the result is always the one HMAC would give. Each proxy worker owns one.
#[derive(Clone)]
pub struct TagCache {
    slots: Box<[Option<CachedTag>]>,
}

#[derive(Clone, Copy)]
struct CachedTag {
    body: [u8; MAX_BODY],
    len: u8,
    tag: [u8; MAC_LEN],
}

const MAX_BODY: usize = 1 + 16 + 2;
const CACHE_SLOTS: usize = 256;

impl Default for TagCache {
    fn default() -> Self {
        TagCache {
            slots: vec![None; CACHE_SLOTS].into_boxed_slice(),
        }
    }
}

impl std::fmt::Debug for TagCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self.slots.iter().filter(|s| s.is_some()).count();
        write!(f, "TagCache({used}/{CACHE_SLOTS})")
    }
}

impl TagCache {
    fn tag(&mut self, key: &CookieKey, body: &[u8]) -> [u8; MAC_LEN] {
        // FNV-1a over the few signed bytes: any spread will do, a hit is checked exactly.
        let h = body.iter().fold(0x811c_9dc5u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let slot = &mut self.slots[(h as usize ^ (h as usize >> 8)) % CACHE_SLOTS];
        if let Some(c) = slot
            && &c.body[..c.len as usize] == body
        {
            return c.tag;
        }
        let tag = key.tag(body);
        let mut b = [0u8; MAX_BODY];
        b[..body.len()].copy_from_slice(body);
        *slot = Some(CachedTag {
            body: b,
            len: body.len() as u8,
            tag,
        });
        tag
    }
}

/// Why a cookie was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// Not hex, wrong length or unknown format byte.
    #[error("malformed Record-Route cookie")]
    Malformed,
    /// The HMAC does not match: forged or altered.
    #[error("Record-Route cookie fails its integrity check")]
    BadMac,
}

/// The destination of a dialog, as carried in the cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteCookie {
    /// Where the dialog's requests from the caller side go.
    pub addr: SocketAddr,
    /// With which transport.
    pub transport: Transport,
}

/// A cookie in text form, held inline (no allocation).
#[derive(Clone, Copy, Debug)]
pub struct CookieText {
    buf: [u8; 2 * MAX_RAW],
    len: usize,
}

impl CookieText {
    /// The hex text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn transport_code(t: Transport) -> u8 {
    match t {
        Transport::Udp => 0,
        Transport::Tcp => 1,
        Transport::Tls => 2,
        Transport::Sctp => 3,
        Transport::Ws => 4,
        Transport::Wss => 5,
    }
}

fn transport_from(c: u8) -> Option<Transport> {
    Some(match c {
        0 => Transport::Udp,
        1 => Transport::Tcp,
        2 => Transport::Tls,
        3 => Transport::Sctp,
        4 => Transport::Ws,
        5 => Transport::Wss,
        _ => return None,
    })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The value of every hex digit (either case), [`NOT_HEX`] for any other byte: one load
/// per digit instead of a range match (an in-dialog request's cookie has 30 of them).
const UNHEX: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};
/// [`UNHEX`]'s mark of a byte that is no hex digit (any value with a high nibble would do).
const NOT_HEX: u8 = 0xff;

impl RouteCookie {
    /// Encodes and signs the cookie.
    pub fn encode(&self, key: &CookieKey) -> CookieText {
        self.encode_with(&mut |body| key.tag(body))
    }

    /// Encodes and signs the cookie, taking the tag from `cache` when it was computed
    /// before (the same result as [`RouteCookie::encode`]).
    pub fn encode_cached(&self, key: &CookieKey, cache: &mut TagCache) -> CookieText {
        self.encode_with(&mut |body| cache.tag(key, body))
    }

    /// Decodes and verifies a cookie like [`RouteCookie::decode`], taking the expected
    /// tag from `cache` when it was computed before.
    pub fn decode_cached(
        text: &[u8],
        key: &CookieKey,
        cache: &mut TagCache,
    ) -> Result<RouteCookie, CookieError> {
        Self::decode_with(text, &mut |body| cache.tag(key, body))
    }

    fn encode_with(&self, tag_of: &mut dyn FnMut(&[u8]) -> [u8; MAC_LEN]) -> CookieText {
        let mut raw = [0u8; MAX_RAW];
        let mut n = 0;
        let v6 = matches!(self.addr.ip(), IpAddr::V6(_));
        raw[0] = (u8::from(v6) << 7) | transport_code(self.transport);
        n += 1;
        match self.addr.ip() {
            IpAddr::V4(a) => {
                raw[n..n + 4].copy_from_slice(&a.octets());
                n += 4;
            }
            IpAddr::V6(a) => {
                raw[n..n + 16].copy_from_slice(&a.octets());
                n += 16;
            }
        }
        raw[n..n + 2].copy_from_slice(&self.addr.port().to_be_bytes());
        n += 2;
        let tag = tag_of(&raw[..n]);
        raw[n..n + MAC_LEN].copy_from_slice(&tag);
        n += MAC_LEN;
        let mut text = CookieText {
            buf: [0; 2 * MAX_RAW],
            len: 2 * n,
        };
        for (i, b) in raw[..n].iter().enumerate() {
            text.buf[2 * i] = HEX[(b >> 4) as usize];
            text.buf[2 * i + 1] = HEX[(b & 15) as usize];
        }
        text
    }

    /// Decodes and verifies a cookie (constant-time MAC comparison).
    pub fn decode(text: &[u8], key: &CookieKey) -> Result<RouteCookie, CookieError> {
        Self::decode_with(text, &mut |body| key.tag(body))
    }

    fn decode_with(
        text: &[u8],
        tag_of: &mut dyn FnMut(&[u8]) -> [u8; MAC_LEN],
    ) -> Result<RouteCookie, CookieError> {
        if !text.len().is_multiple_of(2) || text.len() > 2 * MAX_RAW {
            return Err(CookieError::Malformed);
        }
        let mut raw = [0u8; MAX_RAW];
        let n = text.len() / 2;
        for (r, pair) in raw.iter_mut().zip(text.chunks_exact(2)) {
            let (h, l) = (UNHEX[usize::from(pair[0])], UNHEX[usize::from(pair[1])]);
            if (h | l) > 0x0f {
                return Err(CookieError::Malformed);
            }
            *r = (h << 4) | l;
        }
        let v6 = raw[0] & 0x80 != 0;
        let transport = transport_from(raw[0] & 0x7f).ok_or(CookieError::Malformed)?;
        let ip_len = if v6 { 16 } else { 4 };
        if n != 1 + ip_len + 2 + MAC_LEN {
            return Err(CookieError::Malformed);
        }
        let body = 1 + ip_len + 2;
        let expect = tag_of(&raw[..body]);
        let mut diff = 0u8;
        for (a, b) in expect.iter().zip(&raw[body..body + MAC_LEN]) {
            diff |= a ^ b;
        }
        if diff != 0 {
            return Err(CookieError::BadMac);
        }
        let ip = if v6 {
            let mut o = [0u8; 16];
            o.copy_from_slice(&raw[1..17]);
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            IpAddr::V4(Ipv4Addr::new(raw[1], raw[2], raw[3], raw[4]))
        };
        let port = u16::from_be_bytes([raw[1 + ip_len], raw[2 + ip_len]]);
        Ok(RouteCookie {
            addr: SocketAddr::new(ip, port),
            transport,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hex_table_holds_every_digit_of_either_case_and_nothing_else() {
        for c in 0..=255u8 {
            let want = (c as char).to_digit(16).map_or(NOT_HEX, |d| d as u8);
            assert_eq!(UNHEX[usize::from(c)], want, "byte {c}");
        }
    }

    #[test]
    fn round_trip_v4_v6_and_every_transport() {
        let key = CookieKey::new(b"k");
        for addr in ["10.1.2.3:5060", "[2001:db8::7]:5070", "[::1]:1"] {
            for t in [
                Transport::Udp,
                Transport::Tcp,
                Transport::Tls,
                Transport::Ws,
                Transport::Wss,
            ] {
                let c = RouteCookie {
                    addr: addr.parse().unwrap(),
                    transport: t,
                };
                let e = c.encode(&key);
                assert_eq!(RouteCookie::decode(e.as_bytes(), &key), Ok(c));
            }
        }
    }

    #[test]
    fn any_altered_byte_or_other_key_is_refused() {
        let key = CookieKey::new(b"k");
        let c = RouteCookie {
            addr: "10.1.2.3:5060".parse().unwrap(),
            transport: Transport::Udp,
        };
        let e = c.encode(&key);
        for i in 0..e.as_bytes().len() {
            let mut t = e.as_bytes().to_vec();
            t[i] = if t[i] == b'0' { b'1' } else { b'0' };
            assert!(RouteCookie::decode(&t, &key).is_err(), "byte {i}");
        }
        assert_eq!(
            RouteCookie::decode(e.as_bytes(), &CookieKey::new(b"other")),
            Err(CookieError::BadMac)
        );
        assert_eq!(
            RouteCookie::decode(b"zz", &key),
            Err(CookieError::Malformed)
        );
        assert_eq!(RouteCookie::decode(b"", &key), Err(CookieError::Malformed));
    }

    #[test]
    fn the_cache_gives_what_the_hmac_gives() {
        let key = CookieKey::new(b"k");
        let other = CookieKey::new(b"other");
        let mut cache = TagCache::default();
        // Enough destinations to collide in the table and evict each other.
        let cookies: Vec<RouteCookie> = (0..600u32)
            .map(|i| RouteCookie {
                addr: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 7)),
                    5060 + (i % 3) as u16,
                ),
                transport: if i % 2 == 0 {
                    Transport::Udp
                } else {
                    Transport::Tcp
                },
            })
            .collect();
        for round in 0..3 {
            for c in &cookies {
                let cached = c.encode_cached(&key, &mut cache);
                assert_eq!(
                    cached.as_bytes(),
                    c.encode(&key).as_bytes(),
                    "round {round}"
                );
                assert_eq!(
                    RouteCookie::decode_cached(cached.as_bytes(), &key, &mut cache),
                    Ok(*c)
                );
                // A forged or altered cookie stays refused after its genuine twin is cached.
                let mut forged = cached.as_bytes().to_vec();
                let last = forged.len() - 1;
                forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
                assert_eq!(
                    RouteCookie::decode_cached(&forged, &key, &mut cache),
                    Err(CookieError::BadMac)
                );
                let mut moved = cached.as_bytes().to_vec();
                moved[4] = if moved[4] == b'0' { b'1' } else { b'0' };
                assert!(RouteCookie::decode_cached(&moved, &key, &mut cache).is_err());
                // Another key's cookie is refused, although this key's tag is cached.
                let theirs = c.encode(&other);
                assert_eq!(
                    RouteCookie::decode_cached(theirs.as_bytes(), &key, &mut cache),
                    Err(CookieError::BadMac)
                );
            }
        }
    }
}
