//! Parsing a typical INVITE performs no heap allocation; forwarding it unchanged through
//! the editor allocates nothing; a typical proxy edit allocates exactly once (the output).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use sip_core::Message;
use sip_core::editor::Editor;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// Size of the last allocation, to check that the editor's output buffer is right-sized.
static LAST_SIZE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        LAST_SIZE.store(l.size(), Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        LAST_SIZE.store(n, Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
Via: SIP/2.0/TCP edge.atlanta.example.com;branch=z9hG4bK1234;received=192.0.2.4\r\n\
Route: <sip:lb.example.com;lr>, <sip:core.example.com;lr>\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n\
Supported: replaces, timer\r\n\
User-Agent: example/1.0\r\n\
Subject: lunch\r\n\
Accept: application/sdp\r\n\
P-Asserted-Identity: <sip:alice@atlanta.example.com>\r\n\
Session-Expires: 1800\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 129\r\n\r\n\
v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\ns=-\r\nc=IN IP4 192.0.2.101\r\n\
t=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

#[test]
fn parse_and_essentials_allocate_nothing() {
    let buf = Bytes::from_static(INVITE);
    let _warm = Message::parse(buf.clone()).unwrap();
    let before = ALLOCS.load(Relaxed);
    let m = Message::parse(buf).unwrap();
    let _ = (
        m.top_via_branch(),
        m.call_id(),
        m.cseq(),
        m.from_tag(),
        m.to_tag(),
        m.max_forwards(),
        m.content_length(),
        m.top_route(),
        m.via_count(),
        m.route_count(),
        m.request_uri_parsed(),
        m.body(),
    );
    assert_eq!(ALLOCS.load(Relaxed) - before, 0);
    assert_eq!(m.header_count(), 18);
    assert!((500..=900).contains(&INVITE.len()), "{}", INVITE.len());
    assert_eq!(m.top_via_branch(), Some(&b"z9hG4bK776asdhds"[..]));
    assert_eq!((m.via_count(), m.route_count()), (2, 2));
    assert_eq!(m.content_length(), Some(129));

    // Unchanged through the editor: the same bytes, no copy.
    let before = ALLOCS.load(Relaxed);
    let out = Editor::new(&m).finish().unwrap();
    assert_eq!(ALLOCS.load(Relaxed) - before, 0);
    assert_eq!(out.as_ptr(), m.buffer().as_ptr());
    drop(out);

    // A proxy's edit: prepend Via, pop Route, Max-Forwards, Record-Route: one allocation,
    // the right-sized output buffer.
    let before = ALLOCS.load(Relaxed);
    let mut ed = Editor::new(&m);
    ed.prepend_via(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKlb1;rport");
    ed.remove_top_route().unwrap();
    ed.set_max_forwards(69).unwrap();
    ed.prepend_record_route(&[b"<sip:10.0.0.1:5060;lr>"]);
    let out = ed.finish().unwrap();
    let n = ALLOCS.load(Relaxed) - before;
    assert_eq!(n, 1, "{n} allocations for one edit");
    assert_eq!(
        LAST_SIZE.load(Relaxed),
        out.len(),
        "the output buffer is right-sized"
    );
    let again = Message::parse(out.clone()).unwrap();
    assert_eq!(again.max_forwards(), Some(69));
    assert_eq!(again.via_count(), 3);
    assert_eq!(again.route_count(), m.route_count() - 1);
    assert_eq!(
        again.record_routes().next().unwrap().unwrap().uri_raw(),
        b"sip:10.0.0.1:5060;lr"
    );
    assert_eq!(again.body(), m.body());

    // The same edits written into a caller's buffer with room to spare: no allocation.
    let mut reused = bytes::BytesMut::with_capacity(4096);
    let before = ALLOCS.load(Relaxed);
    let mut ed = Editor::new(&m);
    ed.prepend_via(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKlb1;rport");
    ed.remove_top_route().unwrap();
    ed.set_max_forwards(69).unwrap();
    ed.prepend_record_route(&[b"<sip:10.0.0.1:5060;lr>"]);
    ed.write_into(&mut reused).unwrap();
    assert_eq!(ALLOCS.load(Relaxed) - before, 0);
    assert_eq!(&reused[..], &out[..]);
}
