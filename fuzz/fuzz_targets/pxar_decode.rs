#![no_main]
//! pxar decoding: any input decodes to events or an error, never a panic; inline payloads are
//! read through, and payload references are resolved against the input itself.
use libfuzzer_sys::fuzz_target;
use stowage_archive::{payload_slice, Decoder, EntryKind, Event, Payload};

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(data);
    let mut buf = [0u8; 512];
    while let Ok(Some(event)) = decoder.next_event() {
        if let Event::Entry(entry) = event {
            match entry.kind {
                EntryKind::File {
                    payload: Payload::Inline,
                    ..
                } => {
                    while let Ok(n) = decoder.read_payload(&mut buf) {
                        if n == 0 {
                            break;
                        }
                    }
                }
                EntryKind::File {
                    payload: Payload::Ref(r),
                    ..
                } => {
                    let _ = payload_slice(data, r);
                }
                _ => {}
            }
        }
    }
});
