//! Fuzz the editor: an arbitrary script of proxy edits on a parsed message (one of a few
//! typical messages, or the fuzzer's own bytes when they parse).
//!
//! Input layout: byte 0 picks the message (even: a built-in one; odd: the bytes after the
//! script), byte 1 is the script length in 2-byte ops, then the script, then the message.
//! Checks: nothing panics; when the message was fully valid (every Via and Route value
//! parses) and every edit was accepted, `finish` succeeds unless two edits overlap, and its
//! output parses again (short of a size or count limit) and shows the edits.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip_core::editor::{EditError, Editor};
use sip_core::{HeaderName, Message, ParseErrorKind};

const BASES: [&[u8]; 3] = [
    b"INVITE sip:bob@192.0.2.4 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport\r\n\
Route: <sip:lb.example.com;lr>, <sip:edge.example.com;lr>\r\n\
Route: <sip:core.example.com;lr>\r\n\
Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c\r\n\
CSeq: 1 INVITE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    b"SIP/2.0 180 Ringing\r\n\
v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlb, SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKa\r\n\
Record-Route: <sip:10.0.0.1;lr>\r\n\
f: <sip:a@x>;tag=1\r\nt: <sip:b@y>;tag=2\r\ni: c\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n",
    b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c\r\n\
CSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\n\r\n",
];

const TOKENS: [&[u8]; 4] = [b"x", b"z9hG4bKfuzz", b"10.0.0.1", b"abc;lr"];

fuzz_target!(|data: &[u8]| {
    let (sel, n) = match data {
        [a, b, ..] => (*a, *b as usize % 32),
        _ => return,
    };
    let script_end = (2 + 2 * n).min(data.len());
    let script = &data[2..script_end];
    let bytes = if sel % 2 == 0 {
        Bytes::from_static(BASES[(sel as usize / 2) % BASES.len()])
    } else {
        Bytes::copy_from_slice(&data[script_end..])
    };
    let Ok(msg) = Message::parse(bytes) else { return };
    let valid = msg.vias().all(|v| v.is_ok()) && msg.routes().all(|r| r.is_ok());

    let mut ed = Editor::new(&msg);
    let mut accepted = true;
    let mut expect_mf = msg.max_forwards();
    for op in script.chunks(2) {
        let (a, b) = (op[0], *op.get(1).unwrap_or(&0));
        let tok = TOKENS[(b % 4) as usize];
        let r: Result<(), EditError> = match a % 10 {
            0 => {
                ed.prepend_via(&[b"SIP/2.0/UDP 10.0.0.1:5060;branch=".as_slice(), tok].concat());
                Ok(())
            }
            1 => ed.remove_top_route(),
            2 => ed.set_max_forwards(b).inspect(|_| expect_mf = Some(b)),
            3 => {
                ed.prepend_record_route(&[b"<sip:", tok, b";lr>"]);
                Ok(())
            }
            4 => ed.set_request_uri(b"sip:carol@10.0.0.9"),
            5 => ed.fix_content_length(),
            6 => ed.replace_body(tok),
            7 => {
                ed.append_header(b"X-Fuzz", &[tok]);
                Ok(())
            }
            8 => ed.remove_top_via(),
            _ => ed.remove_headers_named(HeaderName::Route),
        };
        accepted &= r.is_ok();
    }
    let out = match ed.finish() {
        Ok(out) => out,
        Err(EditError::Overlap(_)) => return,
        Err(e) => panic!("finish failed without overlapping edits: {e:?}"),
    };
    if !(valid && accepted) {
        let _ = Message::parse(out);
        return;
    }
    match Message::parse(out) {
        Ok(m) => {
            assert_eq!(m.max_forwards(), expect_mf, "Max-Forwards");
            assert_eq!(m.call_id(), msg.call_id());
            assert_eq!(m.cseq(), msg.cseq());
            if let Some(cl) = m.content_length() {
                assert_eq!(m.body().len(), cl as usize);
            }
        }
        Err(e) => assert!(
            matches!(
                e.kind,
                ParseErrorKind::TooManyHeaders { .. }
                    | ParseErrorKind::TooManyVia { .. }
                    | ParseErrorKind::LineTooLong { .. }
                    | ParseErrorKind::TooLarge { .. }
            ),
            "valid edits of a valid message do not parse: {e:?}"
        ),
    }
});
