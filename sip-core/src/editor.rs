//! Editing a parsed message without re-serialising it.
//!
//! A proxy changes a few things in a message: it inserts its Via at the top, removes the
//! top Route, inserts a Record-Route, rewrites Max-Forwards or the Request-URI, removes its
//! own Via from a response, adds a header, fixes Content-Length. [`Editor`] records these as
//! splices against the original bytes (the bytes to insert go into a small inline arena),
//! then writes the result in one pass into a right-sized buffer, copying untouched regions
//! verbatim. A message with no edits is returned as the original `Bytes`, not copied.
//!
//! ```
//! use bytes::Bytes;
//! use sip_core::{Message, editor::Editor};
//! let msg = Message::parse(Bytes::from_static(
//!     b"BYE sip:bob@192.0.2.4 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n\
//!       Route: <sip:lb.example.com;lr>, <sip:edge.example.com;lr>\r\nMax-Forwards: 70\r\n\
//!       From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n",
//! )).unwrap();
//! let mut ed = Editor::new(&msg);
//! ed.prepend_via(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKlb1");
//! ed.remove_top_route().unwrap();
//! ed.set_max_forwards(69).unwrap();
//! let out = Message::parse(ed.finish().unwrap()).unwrap();
//! assert_eq!(out.via_count(), 2);
//! assert_eq!(out.top_via_branch(), Some(&b"z9hG4bKlb1"[..]));
//! assert_eq!(out.top_route().unwrap().uri_raw(), b"sip:edge.example.com;lr");
//! assert_eq!(out.max_forwards(), Some(69));
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

use crate::header::HeaderName;
use crate::message::Message;
use crate::scan::CommaSplit;
use crate::span::Span;

/// Why an edit could not be recorded or applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The message has no such header or value (no top Via, no Route, ...).
    #[error("the message has no {0} to edit")]
    Missing(&'static str),
    /// A span lies outside the message.
    #[error("span outside the message")]
    OutOfBounds,
    /// Two edits touch overlapping bytes.
    #[error("two edits overlap at byte {0}")]
    Overlap(u32),
    /// The edit does not apply to this kind of message (a Request-URI on a response, ...).
    #[error("the edit does not apply to this kind of message")]
    WrongKind,
}

/// Bytes the arena holds without allocating: room for what a proxy inserts into one
/// message (its Via, one or two Record-Routes, Max-Forwards, Content-Length).
const ARENA_INLINE: usize = 512;

/// The bytes the edits insert, one after the other: inline up to [`ARENA_INLINE`], all on
/// the heap once they outgrow it. Each append is one bounds check and one copy (a
/// `SmallVec` append is an insertion at the end: a capacity check, a move of the empty
/// tail and the copy).
struct Arena {
    inline: [u8; ARENA_INLINE],
    /// Everything, once the bytes outgrew `inline` (empty until then).
    heap: Vec<u8>,
    len: usize,
}

impl Arena {
    fn new() -> Self {
        Arena {
            inline: [0; ARENA_INLINE],
            heap: Vec::new(),
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Forgets every byte (keeping the heap's room).
    fn clear(&mut self) {
        self.heap.clear();
        self.len = 0;
    }

    /// Inlined always: most appends are of a constant (`": "`, `"\r\n"`), which then
    /// become a store of their bytes instead of a call and a copy call.
    #[inline(always)]
    fn extend(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if self.heap.is_empty()
            && let Some(room) = self.inline.get_mut(self.len..end)
        {
            room.copy_from_slice(bytes);
            self.len = end;
            return;
        }
        self.extend_slow(bytes);
    }

    /// [`Arena::extend`] on the heap, moving there first when the inline room is full.
    #[inline(never)]
    fn extend_slow(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if self.heap.is_empty() {
            // The first append that does not fit moves everything to the heap; the heap
            // is never empty after it, as it holds more than `ARENA_INLINE` bytes.
            self.heap.reserve(end.max(2 * ARENA_INLINE));
            self.heap.extend_from_slice(&self.inline[..self.len]);
        }
        self.heap.extend_from_slice(bytes);
        self.len = end;
    }

    fn get(&self, span: Span) -> &[u8] {
        let bytes = if self.heap.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.heap[..]
        };
        &bytes[span.range()]
    }
}

impl std::fmt::Debug for Arena {
    /// The bytes held, not the whole inline room.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.get(Span::new(0, self.len));
        f.debug_struct("Arena")
            .field("bytes", &String::from_utf8_lossy(held))
            .field("on_heap", &!self.heap.is_empty())
            .finish()
    }
}

#[derive(Clone, Copy, Debug)]
struct Splice {
    /// The replaced range of the original message (empty for an insertion).
    at: Span,
    /// The inserted bytes, as a range of the arena.
    ins: Span,
    /// Order of recording, so insertions at one position keep their order.
    seq: u16,
}

/// What [`Editor::remove_first_value`] removes of header line `index` of `msg`, whose
/// first value is `first`: the whole line when it holds one value, otherwise the value and
/// the comma after it.
fn first_value_removal(msg: &Message, index: usize, first: Span) -> Result<Span, EditError> {
    let h = msg.header_at(index).ok_or(EditError::Missing("header"))?;
    let d = msg.as_bytes();
    let (end, value_end) = (first.end as usize, h.value_span.end as usize);
    // The usual cases without splitting the value again: the first value is the whole
    // value, or a comma follows it directly and the next value right after.
    if end == value_end {
        return Ok(h.line);
    }
    if d[end] == b','
        && end + 1 < value_end
        && !matches!(d[end + 1], b' ' | b'\t' | b'\r' | b'\n' | b',')
    {
        return Ok(Span::new(h.value_span.start as usize, end + 1));
    }
    let mut it = CommaSplit::new(h.value);
    let _first = it.next();
    Ok(match it.next() {
        None => h.line,
        Some((off, _)) => {
            let start = h.value_span.start as usize;
            Span::new(start, start + off)
        }
    })
}

/// `msg` without its top Via value: what an [`Editor`] given only
/// [`Editor::remove_top_via`] writes, without building one (a proxy does this to every
/// response it forwards).
pub fn without_top_via(msg: &Message) -> Result<Bytes, EditError> {
    let (index, first) = msg.top_via_span().ok_or(EditError::Missing("Via"))?;
    let cut = first_value_removal(msg, index, first)?;
    let src = msg.as_bytes();
    if cut.start > cut.end || cut.end as usize > msg.message_len() {
        return Err(EditError::OutOfBounds);
    }
    let mut out = BytesMut::with_capacity(msg.message_len() - cut.len());
    out.put_slice(&src[..cut.start as usize]);
    out.put_slice(&src[cut.end as usize..]);
    Ok(out.freeze())
}

/// Records edits against a parsed message and writes the edited message in one pass.
///
/// Max-Forwards, Content-Length and the body hold one value each: setting one again
/// replaces what the earlier call recorded (the last call wins), so a message never gets
/// two Max-Forwards or Content-Length lines from the editor.
#[derive(Debug)]
pub struct Editor<'m> {
    msg: &'m Message,
    splices: SmallVec<[Splice; 8]>,
    arena: Arena,
    /// Index of the splice that sets Max-Forwards, once recorded.
    max_forwards: Option<usize>,
    /// Index of the splice that sets Content-Length, once recorded.
    content_length: Option<usize>,
    /// Index of the splice that replaces the body, and the new body's length.
    body: Option<(usize, usize)>,
}

impl<'m> Editor<'m> {
    /// Starts editing `msg`.
    pub fn new(msg: &'m Message) -> Self {
        Editor {
            msg,
            splices: SmallVec::new(),
            arena: Arena::new(),
            max_forwards: None,
            content_length: None,
            body: None,
        }
    }

    /// The message being edited.
    pub fn message(&self) -> &'m Message {
        self.msg
    }

    /// True when no edit has been recorded.
    pub fn is_unchanged(&self) -> bool {
        self.splices.is_empty()
    }

    fn push(&mut self, at: Span, parts: &[&[u8]]) -> Result<(), EditError> {
        if at.start > at.end || at.end as usize > self.msg.message_len() {
            return Err(EditError::OutOfBounds);
        }
        let s = self.arena.len();
        for p in parts {
            self.arena.extend(p);
        }
        let seq = self.splices.len() as u16;
        self.splices.push(Splice {
            at,
            ins: Span::new(s, self.arena.len()),
            seq,
        });
        Ok(())
    }

    /// Records the splice of a single-valued setting: a new splice the first time, then
    /// the same splice with new bytes (`at` must be the same for every call of a slot).
    fn set_slot(
        &mut self,
        slot: Option<usize>,
        at: Span,
        parts: &[&[u8]],
    ) -> Result<usize, EditError> {
        match slot {
            Some(k) => {
                let s = self.arena.len();
                for p in parts {
                    self.arena.extend(p);
                }
                self.splices[k].ins = Span::new(s, self.arena.len());
                Ok(k)
            }
            None => {
                self.push(at, parts)?;
                Ok(self.splices.len() - 1)
            }
        }
    }

    // ---- low-level -------------------------------------------------------------------

    /// Replaces the bytes of `span` with the concatenation of `parts`.
    pub fn replace(&mut self, span: Span, parts: &[&[u8]]) -> Result<(), EditError> {
        self.push(span, parts)
    }

    /// Inserts the concatenation of `parts` before byte `at`.
    pub fn insert(&mut self, at: usize, parts: &[&[u8]]) -> Result<(), EditError> {
        self.push(Span::new(at, at), parts)
    }

    /// Removes the bytes of `span`.
    pub fn remove(&mut self, span: Span) -> Result<(), EditError> {
        self.push(span, &[])
    }

    // ---- headers ---------------------------------------------------------------------

    /// Inserts a header line `Name: value` at the top of the header section (before every
    /// other header). Lines inserted at the top keep the order they were inserted in.
    pub fn insert_header_top(&mut self, name: &[u8], value_parts: &[&[u8]]) {
        let at = self.msg.headers_start();
        self.insert_line(at, name, value_parts);
    }

    /// Appends a header line `Name: value` at the end of the header section.
    pub fn append_header(&mut self, name: &[u8], value_parts: &[&[u8]]) {
        let at = self.msg.headers_end();
        self.insert_line(at, name, value_parts);
    }

    fn insert_line(&mut self, at: usize, name: &[u8], value_parts: &[&[u8]]) {
        let s = self.arena.len();
        self.arena.extend(name);
        self.arena.extend(b": ");
        for p in value_parts {
            self.arena.extend(p);
        }
        self.arena.extend(b"\r\n");
        let seq = self.splices.len() as u16;
        self.splices.push(Splice {
            at: Span::new(at, at),
            ins: Span::new(s, self.arena.len()),
            seq,
        });
    }

    /// Removes the header line at `index` (with its line end and folded continuations).
    pub fn remove_header(&mut self, index: usize) -> Result<(), EditError> {
        let line = self
            .msg
            .header_at(index)
            .ok_or(EditError::Missing("header"))?
            .line;
        self.remove(line)
    }

    /// Replaces the value of the header line at `index`.
    pub fn replace_header_value(
        &mut self,
        index: usize,
        value_parts: &[&[u8]],
    ) -> Result<(), EditError> {
        let span = self
            .msg
            .header_at(index)
            .ok_or(EditError::Missing("header"))?
            .value_span;
        self.replace(span, value_parts)
    }

    /// Removes every header line with this name.
    pub fn remove_headers_named(&mut self, name: HeaderName) -> Result<(), EditError> {
        let lines: SmallVec<[Span; 4]> = self.msg.headers_named(name).map(|h| h.line).collect();
        for l in lines {
            self.remove(l)?;
        }
        Ok(())
    }

    /// Removes the first comma-separated value of header line `index`: the whole line when
    /// it holds one value, otherwise the value and the comma after it.
    fn remove_first_value(&mut self, index: usize, first: Span) -> Result<(), EditError> {
        let span = first_value_removal(self.msg, index, first)?;
        self.remove(span)
    }

    // ---- what a proxy does -------------------------------------------------------------

    /// Inserts `Via: <value>` above every other header (RFC 3261 §16.6 step 8).
    pub fn prepend_via(&mut self, value: &[u8]) {
        self.insert_header_top(b"Via", &[value]);
    }

    /// Inserts `Record-Route: <value>` above every other header, so it becomes the first
    /// Record-Route value (RFC 3261 §16.6 step 4).
    pub fn prepend_record_route(&mut self, value_parts: &[&[u8]]) {
        self.insert_header_top(b"Record-Route", value_parts);
    }

    /// Removes the top Via value (a proxy removing itself from a response, §16.7 step 3).
    pub fn remove_top_via(&mut self) -> Result<(), EditError> {
        let (index, first) = self.msg.top_via_span().ok_or(EditError::Missing("Via"))?;
        self.remove_first_value(index, first)
    }

    /// Removes the top Route value (loose routing, §16.4).
    pub fn remove_top_route(&mut self) -> Result<(), EditError> {
        let (index, first) = self
            .msg
            .top_route_span()
            .ok_or(EditError::Missing("Route"))?;
        self.remove_first_value(index, first)
    }

    /// Sets Max-Forwards to `value`, rewriting the header or adding it when absent. Called
    /// again, the last value wins.
    pub fn set_max_forwards(&mut self, value: u8) -> Result<(), EditError> {
        let mut b = itoa::Buffer::new();
        let digits = b.format(value).as_bytes();
        let k = match self.msg.max_forwards_index() {
            Some(i) => {
                let span = self.msg.header_at(i).ok_or(EditError::Missing("header"))?;
                self.set_slot(self.max_forwards, span.value_span, &[digits])?
            }
            None => {
                let at = self.msg.headers_start();
                self.set_slot(
                    self.max_forwards,
                    Span::new(at, at),
                    &[b"Max-Forwards: ", digits, b"\r\n"],
                )?
            }
        };
        self.max_forwards = Some(k);
        Ok(())
    }

    /// Replaces the Request-URI.
    pub fn set_request_uri(&mut self, uri: &[u8]) -> Result<(), EditError> {
        let span = self.msg.request_uri_span().ok_or(EditError::WrongKind)?;
        self.replace(span, &[uri])
    }

    /// Makes Content-Length state the length of the body that will be written (the
    /// replaced body, if [`Editor::replace_body`] was called): rewrites it when it differs,
    /// adds it when absent (required before sending over a stream).
    pub fn fix_content_length(&mut self) -> Result<(), EditError> {
        let len = match self.body {
            Some((_, len)) => len,
            None => self.msg.body().len(),
        };
        self.set_content_length(len)
    }

    fn set_content_length(&mut self, len: usize) -> Result<(), EditError> {
        let mut b = itoa::Buffer::new();
        let digits = b.format(len).as_bytes();
        let existing = self
            .msg
            .headers_named(HeaderName::ContentLength)
            .next()
            .map(|h| h.value_span);
        let k = match existing {
            Some(_)
                if self.content_length.is_none()
                    && self.msg.content_length() == Some(len as u32) =>
            {
                return Ok(());
            }
            Some(span) => self.set_slot(self.content_length, span, &[digits])?,
            None => {
                let at = self.msg.headers_end();
                self.set_slot(
                    self.content_length,
                    Span::new(at, at),
                    &[b"Content-Length: ", digits, b"\r\n"],
                )?
            }
        };
        self.content_length = Some(k);
        Ok(())
    }

    /// Replaces the body and sets Content-Length to its length. Called again, the last
    /// body wins.
    pub fn replace_body(&mut self, body: &[u8]) -> Result<(), EditError> {
        let span = self.msg.body_span();
        let k = self.set_slot(self.body.map(|(k, _)| k), span, &[body])?;
        self.body = Some((k, body.len()));
        self.set_content_length(body.len())
    }

    // ---- output ----------------------------------------------------------------------

    fn sorted(&self) -> Result<(SmallVec<[Splice; 8]>, usize), EditError> {
        let mut sp = self.splices.clone();
        let len = Self::sort(self.msg, &mut sp)?;
        Ok((sp, len))
    }

    /// Sorts `sp` (splices against `msg`) into writing order and checks that no two
    /// overlap; returns the length of the edited message.
    fn sort(msg: &Message, sp: &mut [Splice]) -> Result<usize, EditError> {
        sp.sort_unstable_by_key(|s| (s.at.start, s.at.end != s.at.start, s.seq));
        let mut len = msg.message_len();
        let mut prev_end = 0u32;
        for s in sp.iter() {
            if s.at.start < prev_end {
                return Err(EditError::Overlap(s.at.start));
            }
            prev_end = s.at.end;
            len = len + s.ins.len() - s.at.len();
        }
        Ok(len)
    }

    /// Length of the edited message in bytes.
    pub fn output_len(&self) -> Result<usize, EditError> {
        Ok(self.sorted()?.1)
    }

    /// Writes the edited message at the end of `out` (reserving exactly what it needs).
    pub fn write_into(&self, out: &mut BytesMut) -> Result<(), EditError> {
        let (sp, len) = self.sorted()?;
        out.reserve(len);
        self.write_sorted(out, &sp);
        Ok(())
    }

    fn write_sorted(&self, out: &mut BytesMut, sp: &[Splice]) {
        let src = self.msg.as_bytes();
        let mut pos = 0usize;
        for s in sp {
            out.put_slice(&src[pos..s.at.start as usize]);
            out.put_slice(self.arena.get(s.ins));
            pos = s.at.end as usize;
        }
        out.put_slice(&src[pos..]);
    }

    /// The edited message. Without edits this is the original buffer (trimmed to the
    /// message), shared rather than copied.
    pub fn finish(mut self) -> Result<Bytes, EditError> {
        self.finish_in_place()
    }

    /// The edited message, like [`Editor::finish`], by reference: a caller holding the
    /// editor saves moving it (over 700 bytes, most of them its inline arena) into the
    /// call. The splices are sorted where they are, not in a copy. The edits are used up:
    /// afterwards the editor has none, as if new.
    pub fn finish_in_place(&mut self) -> Result<Bytes, EditError> {
        if self.splices.is_empty() {
            return Ok(self.msg.buffer().slice(..self.msg.message_len()));
        }
        let written = Self::sort(self.msg, &mut self.splices).map(|len| {
            let mut out = BytesMut::with_capacity(len);
            self.write_sorted(&mut out, &self.splices);
            out.freeze()
        });
        self.splices.clear();
        self.arena.clear();
        self.max_forwards = None;
        self.content_length = None;
        self.body = None;
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK111;rport, SIP/2.0/TCP 192.0.2.9;branch=z9hG4bK000\r\n\
Route: <sip:lb.example.com;lr>\r\n\
Route: <sip:next.example.com;lr>\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: call-1@192.0.2.1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 4\r\n\
\r\n\
abcdEXTRA";

    fn parse(b: &[u8]) -> Message {
        Message::parse(Bytes::copy_from_slice(b)).unwrap()
    }

    #[test]
    fn inserted_bytes_past_the_inline_arena_move_to_the_heap_intact() {
        let m = parse(INVITE);
        let mut ed = Editor::new(&m);
        let mut want_lines = Vec::new();
        // 40 lines of 5 to 44 bytes of value: the arena spills part way, at a line that
        // does not fit, and goes on on the heap.
        for i in 0..40u8 {
            let value = vec![b'a' + i % 26; 5 + i as usize];
            ed.append_header(b"X-Filler", &[&value, b";n=", &[b'0' + i % 10]]);
            let mut line = b"X-Filler: ".to_vec();
            line.extend_from_slice(&value);
            line.extend_from_slice(b";n=");
            line.push(b'0' + i % 10);
            line.extend_from_slice(b"\r\n");
            want_lines.push(line);
        }
        assert!(ed.arena.len() > 2 * ARENA_INLINE);
        ed.prepend_via(b"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlb");
        let out = ed.finish().unwrap();
        let head_end = INVITE.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
        let mut want =
            b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlb\r\n"
                .to_vec();
        let first_line_end = INVITE.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        want.extend_from_slice(&INVITE[first_line_end..head_end]);
        want_lines.iter().for_each(|l| want.extend_from_slice(l));
        want.extend_from_slice(b"\r\nabcd");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want)
        );
    }

    #[test]
    fn finishing_in_place_writes_what_finish_writes_and_leaves_no_edits() {
        let m = parse(INVITE);
        let edit = |ed: &mut Editor<'_>| {
            ed.prepend_via(b"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlb");
            ed.remove_top_route().unwrap();
            ed.set_max_forwards(69).unwrap();
            ed.fix_content_length().unwrap();
        };
        let mut ed = Editor::new(&m);
        edit(&mut ed);
        let in_place = ed.finish_in_place().unwrap();
        assert!(ed.is_unchanged());
        assert_eq!(ed.finish_in_place().unwrap(), &INVITE[..INVITE.len() - 5]);
        edit(&mut ed);
        assert_eq!(ed.finish_in_place().unwrap(), in_place);
        let mut ed = Editor::new(&m);
        edit(&mut ed);
        assert_eq!(ed.finish().unwrap(), in_place);
    }

    #[test]
    fn without_top_via_writes_what_an_editor_removing_it_writes() {
        let one = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlb\r\n\
            Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n\
            To: <sip:b@y>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let spaced = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlb , \
            SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n\
            To: <sip:b@y>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 2\r\n\r\nab";
        for text in [INVITE, &one[..], &spaced[..]] {
            let m = parse(text);
            let mut ed = Editor::new(&m);
            ed.remove_top_via().unwrap();
            assert_eq!(without_top_via(&m).unwrap(), ed.finish().unwrap());
        }
        // The bytes a user's peer receives, written out: the top Via's line goes, and a
        // line holding more values keeps the rest.
        let want_one = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
            From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
            Content-Length: 0\r\n\r\n";
        assert_eq!(without_top_via(&parse(one)).unwrap(), &want_one[..]);
        let want_spaced = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
            From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
            Content-Length: 2\r\n\r\nab";
        assert_eq!(without_top_via(&parse(spaced)).unwrap(), &want_spaced[..]);
        let no_via = parse(b"SIP/2.0 200 OK\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(without_top_via(&no_via), Err(EditError::Missing("Via")));
    }

    #[test]
    fn unchanged_message_is_shared_not_copied() {
        let m = parse(INVITE);
        let out = Editor::new(&m).finish().unwrap();
        assert_eq!(&out[..], &INVITE[..INVITE.len() - 5]);
        assert_eq!(out.as_ptr(), m.buffer().as_ptr());
    }

    #[test]
    fn proxy_edits_on_a_request() {
        let m = parse(INVITE);
        let mut ed = Editor::new(&m);
        ed.prepend_via(b"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlb");
        ed.prepend_record_route(&[b"<sip:10.0.0.1;lr>"]);
        ed.remove_top_route().unwrap();
        ed.set_max_forwards(69).unwrap();
        ed.set_request_uri(b"sip:bob@10.0.0.5:5070").unwrap();
        let out = parse(&ed.finish().unwrap());
        assert_eq!(out.via_count(), 3);
        assert_eq!(out.top_via_branch(), Some(&b"z9hG4bKlb"[..]));
        assert_eq!(out.header_at(0).unwrap().name, HeaderName::Via);
        assert_eq!(out.header_at(1).unwrap().name, HeaderName::RecordRoute);
        assert_eq!(out.route_count(), 1);
        assert_eq!(
            out.top_route().unwrap().uri_raw(),
            b"sip:next.example.com;lr"
        );
        assert_eq!(out.max_forwards(), Some(69));
        assert_eq!(out.request_uri(), Some(&b"sip:bob@10.0.0.5:5070"[..]));
        assert_eq!(out.body(), b"abcd");
        assert_eq!(out.call_id(), m.call_id());
    }

    #[test]
    fn removing_the_first_of_several_values_keeps_the_rest() {
        let m = parse(INVITE);
        let mut ed = Editor::new(&m);
        ed.remove_top_via().unwrap();
        let out = parse(&ed.finish().unwrap());
        assert_eq!(out.via_count(), 1);
        assert_eq!(out.top_via_branch(), Some(&b"z9hG4bK000"[..]));
        assert!(
            out.as_bytes()
                .starts_with(b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP")
        );
    }

    #[test]
    fn max_forwards_added_when_missing_and_content_length_fixed() {
        let m = parse(b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\n\r\nhello");
        let mut ed = Editor::new(&m);
        ed.set_max_forwards(70).unwrap();
        ed.fix_content_length().unwrap();
        let out = parse(&ed.finish().unwrap());
        assert_eq!(out.max_forwards(), Some(70));
        assert_eq!(out.content_length(), Some(5));
        assert_eq!(out.body(), b"hello");
    }

    #[test]
    fn replace_body_and_headers() {
        let m = parse(INVITE);
        let mut ed = Editor::new(&m);
        ed.replace_body(b"v=0\r\n").unwrap();
        ed.append_header(b"X-Tenant", &[b"blue"]);
        ed.remove_headers_named(HeaderName::Route).unwrap();
        let out = parse(&ed.finish().unwrap());
        assert_eq!(out.body(), b"v=0\r\n");
        assert_eq!(out.content_length(), Some(5));
        assert_eq!(out.header_by_name("x-tenant"), Some(&b"blue"[..]));
        assert_eq!(out.route_count(), 0);
    }

    /// Regression (found by the `editor` fuzz target): setting Content-Length or
    /// Max-Forwards twice on a message without the header appended two header lines, and
    /// `fix_content_length` after `replace_body` stated the old body's length: the output
    /// was rejected for a duplicate Content-Length. The last setting now wins.
    #[test]
    fn single_valued_settings_repeated_keep_one_line() {
        const NO_CL: &[u8] = b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\n\r\n";
        for base in [NO_CL, INVITE] {
            let m = parse(base);
            let mut ed = Editor::new(&m);
            ed.set_max_forwards(255).unwrap();
            ed.replace_body(b"10.0.0.1").unwrap();
            ed.fix_content_length().unwrap();
            ed.set_max_forwards(7).unwrap();
            ed.replace_body(b"xyz").unwrap();
            let out = parse(&ed.finish().unwrap());
            assert_eq!(out.headers_named(HeaderName::MaxForwards).count(), 1);
            assert_eq!(out.headers_named(HeaderName::ContentLength).count(), 1);
            assert_eq!(out.max_forwards(), Some(7));
            assert_eq!(out.content_length(), Some(3));
            assert_eq!(out.body(), b"xyz");
        }
        // Back to the original length: the header states it again.
        let m = parse(INVITE);
        let mut ed = Editor::new(&m);
        ed.replace_body(b"abcdef").unwrap();
        ed.replace_body(b"wxyz").unwrap();
        let out = parse(&ed.finish().unwrap());
        assert_eq!((out.content_length(), out.body()), (Some(4), &b"wxyz"[..]));
    }

    #[test]
    fn overlapping_edits_are_refused() {
        let m = parse(INVITE);
        let mut ed = Editor::new(&m);
        let mf = m.max_forwards_index().unwrap();
        ed.remove_header(mf).unwrap();
        ed.set_max_forwards(1).unwrap();
        assert!(matches!(ed.finish(), Err(EditError::Overlap(_))));
        let mut ed = Editor::new(&m);
        assert_eq!(
            ed.remove(Span::new(0, 100_000)),
            Err(EditError::OutOfBounds)
        );
    }

    #[test]
    fn responses_have_no_request_uri() {
        let m = parse(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>;tag=2\r\nContent-Length: 0\r\n\r\n");
        let mut ed = Editor::new(&m);
        assert_eq!(ed.set_request_uri(b"sip:z"), Err(EditError::WrongKind));
        assert_eq!(ed.remove_top_route(), Err(EditError::Missing("Route")));
        ed.remove_top_via().unwrap();
        let out = parse(&ed.finish().unwrap());
        assert_eq!(out.via_count(), 0);
    }

    #[test]
    fn removing_the_top_via_or_route_however_the_list_is_written() {
        let a = "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKa";
        let b = "SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKb";
        let (ra, rb) = ("<sip:127.0.0.1;lr>", "<sip:127.0.0.2;lr>");
        let rest = "From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
        for sep in [",", ", ", " ,", " , ", ",\r\n ", ",,"] {
            let text = format!(
                "BYE sip:x@127.0.0.3 SIP/2.0\r\nVia: {a}{sep}{b}\r\nRoute: {ra}{sep}{rb}\r\n{rest}"
            );
            let m = parse(text.as_bytes());
            let mut ed = Editor::new(&m);
            ed.remove_top_via().unwrap();
            ed.remove_top_route().unwrap();
            let out = ed.finish().unwrap();
            let out = std::str::from_utf8(&out).unwrap();
            // What is left of each line is what follows the first value's separator.
            let after = sep.trim_start_matches([' ', '\t']);
            let after = after.strip_prefix(',').unwrap();
            let kept = if after == "," { after } else { "" };
            assert!(
                out.contains(&format!("\r\nVia: {kept}{b}\r\n")),
                "separator {sep:?}:\n{out}"
            );
            assert!(
                out.contains(&format!("\r\nRoute: {kept}{rb}\r\n")),
                "separator {sep:?}:\n{out}"
            );
        }
    }
}
