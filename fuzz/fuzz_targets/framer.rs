//! Fuzz the stream framer: arbitrary bytes, split into reads at fuzzer-chosen points.
//! Checks: no panic; the frames are the same however the input is split; every message
//! is within the size limit and parses with `Framing::Stream` framing or fails with a
//! typed error (never a panic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::framer::{Frame, Framer, FramerError};
use sip_core::{Framing, Limits, Message, ParseOptions};

const MAX: u32 = 4096;

fn run(chunks: &[&[u8]]) -> (Vec<Frame>, Option<FramerError>) {
    let mut f = Framer::with_max_message_size(MAX);
    let mut out = Vec::new();
    for c in chunks {
        f.extend_from_slice(c);
        loop {
            match f.next_frame() {
                Ok(Some(fr)) => out.push(fr),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
        assert!(f.buffered() <= MAX as usize);
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    // First byte: the split stride (1..=64); the rest is the stream.
    let Some((&stride, stream)) = data.split_first() else {
        return;
    };
    let stride = usize::from(stride % 64) + 1;
    let chunks: Vec<&[u8]> = stream.chunks(stride).collect();
    let (split, err_split) = run(&chunks);
    let (whole, err_whole) = run(&[stream]);
    assert_eq!(split, whole);
    assert_eq!(err_split, err_whole);
    let opts = ParseOptions {
        limits: Limits { max_message_size: MAX, ..Limits::default() },
        framing: Framing::Stream,
    };
    for fr in whole {
        if let Frame::Message(m) = fr {
            assert!(m.len() <= MAX as usize);
            let _ = Message::parse_with(m, &opts);
        }
    }
});
