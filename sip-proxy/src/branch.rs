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

fn put_hex(out: &mut [u8], mut v: u64) {
    for slot in out.iter_mut().rev() {
        *slot = HEX[(v & 15) as usize];
        v >>= 4;
    }
}

fn get_hex(s: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
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
        put_hex(&mut buf[p + 1..p + 3], u64::from(self.worker));
        put_hex(&mut buf[p + 3..p + 19], payload);
        buf[p + 19] = b'.';
        put_hex(&mut buf[p + 20..], u64::from(self.loop_hash));
        Branch { buf }
    }

    /// Decodes a branch when it is one of ours.
    pub fn decode(branch: &[u8]) -> Option<OurBranch> {
        if branch.len() != LEN || !branch.starts_with(PREFIX) {
            return None;
        }
        let p = PREFIX.len();
        let worker = get_hex(&branch[p + 1..p + 3])? as u8;
        let payload = get_hex(&branch[p + 3..p + 19])?;
        if branch[p + 19] != b'.' {
            return None;
        }
        let loop_hash = get_hex(&branch[p + 20..])? as u32;
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

    #[test]
    fn field_hash_separates_fields() {
        let a = FieldHash::default().field(b"ab").field(b"c").finish();
        let b = FieldHash::default().field(b"a").field(b"bc").finish();
        assert_ne!(a, b);
        assert_eq!(a, FieldHash::default().field(b"ab").field(b"c").finish());
    }
}
