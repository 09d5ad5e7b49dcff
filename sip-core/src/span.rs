//! Byte ranges into a message buffer.

use core::ops::Range;

/// A range of bytes in a message buffer, `start..end`, stored as two `u32`s so that a
/// parsed message keeps positions, not copies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from `start` to `end` (`start <= end`).
    #[inline]
    pub const fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The span as a `Range<usize>` for slicing.
    #[inline]
    pub const fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// Length in bytes.
    #[inline]
    pub const fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// True when empty.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.end == self.start
    }

    /// A sub-span at `offset..offset + len` relative to this span's start.
    #[inline]
    pub const fn sub(self, offset: usize, len: usize) -> Span {
        Span::new(
            self.start as usize + offset,
            self.start as usize + offset + len,
        )
    }

    /// Where `sub`, which must be a slice of `base`, lies in it (debug builds check; every
    /// part of a parsed view is a slice of the text it was parsed from).
    #[inline]
    pub(crate) fn within(base: &[u8], sub: &[u8]) -> Span {
        let s = (sub.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        debug_assert!(
            s <= base.len() && sub.len() <= base.len() - s,
            "a slice outside the message"
        );
        Span::new(s, s.wrapping_add(sub.len()))
    }

    /// The bytes of `buf` this span covers (empty when out of bounds, never a panic).
    #[inline]
    pub fn of(self, buf: &[u8]) -> &[u8] {
        buf.get(self.range()).unwrap_or(&[])
    }
}
