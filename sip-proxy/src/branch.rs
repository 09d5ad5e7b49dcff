//! Branch parameters of the Via the proxy inserts (RFC 3261 §16.6 step 8, §16.11).
//!
//! Every branch we write is `z9hG4bKsL` + kind + worker (2 hex) + payload (16 hex) + `.` +
//! loop hash (8 hex):
//! - kind `f`: a client transaction of a stateful proxy; the payload is the transaction's
//!   slot and generation, so a response finds its transaction without a hash lookup, and
//!   the worker digits tell a runtime which worker owns it;
//! - kind `s`: stateless forwarding; the payload is a hash of the incoming request's branch
//!   and sent-by, so a retransmission, its CANCEL and its non-2xx ACK get the same branch;
//! - the loop hash covers what a looping request keeps (Request-URI as received, Call-ID,
//!   From tag, To tag, CSeq number): a request that reaches us again with our Via and the
//!   same loop hash is a loop (482), another one is a spiral.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The prefix of every branch the proxy writes.
pub const PREFIX: &[u8] = b"z9hG4bKsL";

/// Seed of the hashes behind stateless branches and loop detection (fixed so every
/// instance and every restart computes the same branch for the same request).
pub const SEED: u64 = 0x5349_505f_4c42_0001;

const LEN: usize = PREFIX.len() + 1 + 2 + 16 + 1 + 8;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// What a branch of ours encodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BranchKind {
    /// A stateful client transaction: slot index and generation.
    Transaction {
        /// Slot in the transaction table.
        index: u32,
        /// Generation of the slot.
        generation: u32,
    },
    /// Stateless forwarding: the request hash.
    Stateless(u64),
}

/// A decoded branch of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OurBranch {
    /// The worker that wrote it.
    pub worker: u8,
    /// What it encodes.
    pub kind: BranchKind,
    /// The loop-detection hash.
    pub loop_hash: u32,
}

/// A branch held inline.
#[derive(Clone, Copy, Debug)]
pub struct Branch {
    buf: [u8; LEN],
}

impl Branch {
    /// The branch text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The eight lowercase hex digits of `v`, most significant first, computed in one
/// machine word (a branch is written for every request forwarded).
fn hex8(v: u32) -> [u8; 8] {
    // The bytes of `v`, most significant first, then each spread over two bytes.
    let x = u64::from(v.swap_bytes());
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    // One nibble per byte: the high nibble of each byte first.
    let n = ((x >> 4) & 0x000f_000f_000f_000f) | ((x & 0x000f_000f_000f_000f) << 8);
    // `n + 0x76` reaches bit 7 exactly for the nibbles 10 to 15, which become `a`-`f`.
    let letter = ((n + LO * 0x76) >> 7) & LO;
    (n + LO * u64::from(b'0') + letter * u64::from(b'a' - b'0' - 10)).to_le_bytes()
}

/// The value of eight hex digits (`0-9a-f`, as `hex8` writes them), most significant
/// first; `None` when a byte is anything else. One machine word, no loop.
fn unhex8(s: &[u8; 8]) -> Option<u32> {
    let x = u64::from_le_bytes(*s);
    // For a byte below 0x80, adding 0x80 - c sets its bit 7 exactly when it is at least c
    // (the sum stays below 0x100: no carry into the next byte).
    let at_least = |c: u8| x.wrapping_add(LO * u64::from(0x80 - c));
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let letter = at_least(b'a') & !at_least(b'f' + 1);
    if x & HI != 0 || (digit | letter) & HI != HI {
        return None;
    }
    // `0`-`9` are 0x30-0x39 and `a`-`f` 0x61-0x66: the low nibble, plus 9 for a letter
    // (bit 6 set).
    let n = (x & (LO * 0x0f)) + ((x >> 6) & LO) * 9;
    // Pairs of nibbles into bytes, then the four bytes together, most significant first.
    let t = ((n << 4) | (n >> 8)) & 0x00ff_00ff_00ff_00ff;
    let t = (t | (t >> 8)) & 0x0000_ffff_0000_ffff;
    let t = (t | (t >> 16)) & 0xffff_ffff;
    Some((t as u32).swap_bytes())
}

/// Two hex digits.
fn hex2(v: u8) -> [u8; 2] {
    [HEX[usize::from(v >> 4)], HEX[usize::from(v & 15)]]
}

fn unhex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Eight bytes of `s` from `at` (the caller checked the length).
fn word_at(s: &[u8], at: usize) -> Option<&[u8; 8]> {
    s.get(at..)?.first_chunk::<8>()
}

impl OurBranch {
    /// Writes the branch.
    pub fn encode(&self) -> Branch {
        let mut buf = [0u8; LEN];
        let p = PREFIX.len();
        buf[..p].copy_from_slice(PREFIX);
        let (kind, payload) = match self.kind {
            BranchKind::Transaction { index, generation } => {
                (b'f', (u64::from(index) << 32) | u64::from(generation))
            }
            BranchKind::Stateless(h) => (b's', h),
        };
        buf[p] = kind;
        buf[p + 1..p + 3].copy_from_slice(&hex2(self.worker));
        buf[p + 3..p + 11].copy_from_slice(&hex8((payload >> 32) as u32));
        buf[p + 11..p + 19].copy_from_slice(&hex8(payload as u32));
        buf[p + 19] = b'.';
        buf[p + 20..].copy_from_slice(&hex8(self.loop_hash));
        Branch { buf }
    }

    /// Decodes a branch when it is one of ours.
    pub fn decode(branch: &[u8]) -> Option<OurBranch> {
        if branch.len() != LEN || !branch.starts_with(PREFIX) {
            return None;
        }
        let p = PREFIX.len();
        let worker = unhex_digit(branch[p + 1])? << 4 | unhex_digit(branch[p + 2])?;
        let high = unhex8(word_at(branch, p + 3)?)?;
        let low = unhex8(word_at(branch, p + 11)?)?;
        let payload = u64::from(high) << 32 | u64::from(low);
        if branch[p + 19] != b'.' {
            return None;
        }
        let loop_hash = unhex8(word_at(branch, p + 20)?)?;
        let kind = match branch[p] {
            b'f' => BranchKind::Transaction {
                index: (payload >> 32) as u32,
                generation: payload as u32,
            },
            b's' => BranchKind::Stateless(payload),
            _ => return None,
        };
        Some(OurBranch {
            worker,
            kind,
            loop_hash,
        })
    }
}

/// The worker a branch of ours names, for a runtime that steers responses to the worker
/// owning their transaction.
pub fn worker_of(branch: &[u8]) -> Option<u8> {
    OurBranch::decode(branch).map(|b| b.worker)
}

/// Incremental hashing of several fields with separators (no allocation).
#[derive(Clone, Copy, Debug, Default)]
pub struct FieldHash(u64);

impl FieldHash {
    /// Mixes one field in.
    pub fn field(mut self, field: &[u8]) -> Self {
        self.0 = xxh3_64_with_seed(field, SEED ^ self.0.rotate_left(17)) ^ (field.len() as u64);
        self
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for kind in [
            BranchKind::Transaction {
                index: 7,
                generation: u32::MAX,
            },
            BranchKind::Stateless(0xdead_beef_0123_4567),
        ] {
            let b = OurBranch {
                worker: 200,
                kind,
                loop_hash: 0x1234_abcd,
            };
            let e = b.encode();
            assert!(e.as_bytes().starts_with(b"z9hG4bK"));
            assert_eq!(OurBranch::decode(e.as_bytes()), Some(b));
            assert_eq!(worker_of(e.as_bytes()), Some(200));
        }
        assert_eq!(OurBranch::decode(b"z9hG4bK776asdhds"), None);
        assert_eq!(OurBranch::decode(b""), None);
    }

    /// Byte at a time, as the grammar reads: the reference for the word-at-a-time codec.
    fn reference_hex8(v: u32) -> [u8; 8] {
        let mut out = [0u8; 8];
        for (i, o) in out.iter_mut().enumerate() {
            *o = HEX[((v >> (28 - 4 * i)) & 15) as usize];
        }
        out
    }

    fn reference_unhex8(s: &[u8; 8]) -> Option<u32> {
        s.iter()
            .try_fold(0u32, |v, &c| Some(v << 4 | u32::from(unhex_digit(c)?)))
    }

    #[test]
    fn hex_words_agree_with_digit_at_a_time() {
        // Values with every nibble at every position, and a spread of others.
        let mut values = vec![0, u32::MAX, 0x0123_4567, 0x89ab_cdef, 0xfedc_ba98];
        for pos in 0..8 {
            for nib in 0..16u32 {
                values.push(nib << (4 * pos));
                values.push(!(nib << (4 * pos)));
            }
        }
        let mut x = 0x9e37_79b9u32;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            values.push(x);
        }
        for v in values {
            let text = hex8(v);
            assert_eq!(text, reference_hex8(v), "{v:#x}");
            assert_eq!(unhex8(&text), Some(v), "{v:#x}");
        }
    }

    #[test]
    fn a_hex_word_with_any_other_byte_is_refused() {
        // Every byte value at every position of a valid word: accepted exactly when the
        // byte-at-a-time reading accepts it, with the same value.
        for base in [*b"00000000", *b"ffffffff", *b"0a1b2c3d", *b"9f9f9f9f"] {
            for pos in 0..8 {
                for c in 0..=255u8 {
                    let mut w = base;
                    w[pos] = c;
                    assert_eq!(unhex8(&w), reference_unhex8(&w), "{w:?}");
                }
            }
        }
        // Upper case is not what we write, so not ours.
        assert_eq!(unhex8(b"0000000A"), None);
    }

    #[test]
    fn field_hash_separates_fields() {
        let a = FieldHash::default().field(b"ab").field(b"c").finish();
        let b = FieldHash::default().field(b"a").field(b"bc").finish();
        assert_ne!(a, b);
        assert_eq!(a, FieldHash::default().field(b"ab").field(b"c").finish());
    }
}
