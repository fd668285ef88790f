//! The subscriber's incremental server-sent-events parser on an arbitrary
//! stream cut into arbitrary chunks. The first byte chooses the chunk
//! length, the second the event size limit. No event may exceed the limit,
//! and when the stream is accepted both ways, the events and the last
//! event id do not depend on where the chunks were cut.

#![no_main]

use cib_net::sse::{Event, Parser};
use libfuzzer_sys::fuzz_target;

/// The events of `stream` fed in pieces of `chunk` bytes, with the last
/// event id, or `None` if the parser refused the stream.
fn feed(stream: &[u8], chunk: usize, limit: usize) -> Option<(Vec<Event>, Option<String>)> {
    let mut parser = Parser::new(limit);
    let mut all = Vec::new();
    for piece in stream.chunks(chunk) {
        all.extend(parser.push(piece).ok()?);
    }
    Some((all, parser.last_event_id().map(str::to_owned)))
}

fuzz_target!(|data: &[u8]| {
    let [chunk, limit, stream @ ..] = data else { return };
    let chunk = usize::from(*chunk).max(1);
    let limit = usize::from(*limit) * 64;
    let chunked = feed(stream, chunk, limit);
    if let Some((events, _)) = &chunked {
        for e in events {
            assert!(e.data.len() <= limit, "an event of {} bytes passed a limit of {limit}", e.data.len());
        }
    }
    let whole = feed(stream, stream.len().max(1), limit);
    if let (Some(a), Some(b)) = (chunked, whole) {
        assert_eq!(a, b, "the events depend on the chunking");
    }
});
