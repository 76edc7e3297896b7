#![no_main]
//! Decoding one entry from the middle of a pxar stream (a hardlink's first name, read again
//! for a partial restore): any input gives events or an error, never a panic. The first byte
//! picks split or legacy and the stream offset the entry claims to start at.
use libfuzzer_sys::fuzz_target;
use stowage_archive::{Decoder, EntryKind, Event, Payload};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let split = first & 1 == 1;
    let offset = u64::from(first >> 1) * 4096;
    let mut decoder = Decoder::at_entry(rest, offset, split);
    let mut buf = [0u8; 512];
    for _ in 0..64 {
        let Ok(Some(event)) = decoder.next_event() else {
            break;
        };
        if let Event::Entry(entry) = event {
            if let EntryKind::File {
                payload: Payload::Inline,
                ..
            } = entry.kind
            {
                while let Ok(n) = decoder.read_payload(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }
        }
    }
});
