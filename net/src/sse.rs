//! Server-sent events as the scope stream uses them: framing on the
//! publisher's side, an incremental parser on the subscriber's.
//!
//! The publisher frames each version once ([`frame`]) and hands the same
//! bytes to every open stream, so a thousand subscribers cost one
//! serialization. Framing follows the WHATWG "server-sent events" format:
//! `event:`, `id:`, then one `data:` line per line of the payload, then an
//! empty line. A carriage return cannot be carried in data (the format
//! treats it as a line end), so payloads must not contain one — scope
//! documents carry it as `&#13;`.

use std::fmt::Write as _;

/// The keep-alive comment sent on idle streams.
pub const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";

/// A framing or parsing problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// A field value contains a character the format cannot carry.
    #[error("SSE {field} cannot contain {what}")]
    Unrepresentable {
        /// `event`, `id` or `data`.
        field: &'static str,
        /// The offending character, described.
        what: &'static str,
    },
    /// An event grew beyond the parser's bound.
    #[error("an event exceeds {limit} bytes")]
    TooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
    /// The stream is not UTF-8.
    #[error("the event stream is not UTF-8")]
    NotUtf8,
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Event type (`message` when the stream named none).
    pub event: String,
    /// The last event id seen on the stream, if any.
    pub id: Option<String>,
    /// The data lines joined by `\n`.
    pub data: String,
}

/// Frames one event.
///
/// # Errors
///
/// [`SseError::Unrepresentable`] when `event` or `id` contain a line break
/// or NUL, or `data` contains a carriage return or NUL.
pub fn frame(event: &str, id: &str, data: &str) -> Result<String, SseError> {
    for (field, value) in [("event", event), ("id", id)] {
        if value.contains(['\r', '\n']) {
            return Err(SseError::Unrepresentable { field, what: "a line break" });
        }
        if value.contains('\0') {
            return Err(SseError::Unrepresentable { field, what: "NUL" });
        }
    }
    if data.contains('\r') {
        return Err(SseError::Unrepresentable {
            field: "data",
            what: "a carriage return",
        });
    }
    if data.contains('\0') {
        return Err(SseError::Unrepresentable { field: "data", what: "NUL" });
    }
    let mut out = String::with_capacity(data.len() + data.len() / 16 + event.len() + id.len() + 32);
    let _ = writeln!(out, "event: {event}");
    let _ = writeln!(out, "id: {id}");
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Ok(out)
}

/// Incremental parser: feed it bytes as they arrive, get whole events.
#[derive(Debug)]
pub struct Parser {
    limit: usize,
    buf: Vec<u8>,
    /// A `\r` ended the previous chunk: a `\n` starting the next one belongs
    /// to it.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    pending: usize,
}

impl Parser {
    /// A parser refusing events (and lines) larger than `limit` bytes.
    #[must_use]
    pub fn new(limit: usize) -> Parser {
        Parser {
            limit,
            buf: Vec::new(),
            after_cr: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            last_id: None,
            pending: 0,
        }
    }

    /// The last event id seen (to send as `Last-Event-ID` on reconnect).
    #[must_use]
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds bytes; returns the events completed by them.
    ///
    /// # Errors
    ///
    /// [`SseError::TooLarge`] when an event or line exceeds the limit,
    /// [`SseError::NotUtf8`]. The parser is unusable after an error.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<Event>, SseError> {
        let mut out = Vec::new();
        if self.after_cr {
            self.after_cr = false;
            if bytes.first() == Some(&b'\n') {
                bytes = &bytes[1..];
            }
        }
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'\n' || b == b'\r' {
                self.buf.extend_from_slice(&bytes[start..i]);
                let line = std::mem::take(&mut self.buf);
                self.line(&line, &mut out)?;
                if b == b'\r' {
                    if i + 1 < bytes.len() {
                        if bytes[i + 1] == b'\n' {
                            i += 1;
                        }
                    } else {
                        self.after_cr = true;
                    }
                }
                start = i + 1;
            }
            i += 1;
        }
        self.buf.extend_from_slice(&bytes[start..]);
        if self.buf.len() + self.pending > self.limit {
            return Err(SseError::TooLarge { limit: self.limit });
        }
        Ok(out)
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                out.push(Event {
                    event: if self.event.is_empty() { "message".into() } else { std::mem::take(&mut self.event) },
                    id: self.last_id.clone(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            self.pending = 0;
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {}
        }
        self.pending += line.len() + 1;
        if self.pending > self.limit {
            return Err(SseError::TooLarge { limit: self.limit });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_splits_data_lines() {
        let f = frame("scope", "sha256:aa@3", "<a>\n  <b/>\n</a>\n").unwrap();
        assert_eq!(f, "event: scope\nid: sha256:aa@3\ndata: <a>\ndata:   <b/>\ndata: </a>\ndata: \n\n");
    }

    #[test]
    fn frame_refuses_what_it_cannot_carry() {
        assert!(frame("scope", "a\nb", "x").is_err());
        assert!(frame("sc\rope", "a", "x").is_err());
        assert!(frame("scope", "a", "x\r\ny").is_err());
        assert!(frame("scope", "a", "x\0").is_err());
    }

    #[test]
    fn round_trip_in_every_split() {
        let docs = ["<configuration>\n  <x a=\"1\"/>\n</configuration>\n", "one line", "", "\n\n"];
        let mut wire = String::from(": hello\n\nretry: 100\n\n");
        for (i, d) in docs.iter().enumerate() {
            wire.push_str(&frame("scope", &format!("id{i}"), d).unwrap());
            wire.push_str(std::str::from_utf8(KEEP_ALIVE_COMMENT).unwrap());
        }
        let bytes = wire.as_bytes();
        for split in [1, 2, 3, 7, 64, bytes.len()] {
            let mut p = Parser::new(1 << 20);
            let mut events = Vec::new();
            for chunk in bytes.chunks(split) {
                events.extend(p.push(chunk).unwrap());
            }
            assert_eq!(events.len(), docs.len(), "split {split}");
            for (i, (e, d)) in events.iter().zip(docs).enumerate() {
                assert_eq!(e.event, "scope");
                assert_eq!(e.id.as_deref(), Some(format!("id{i}").as_str()));
                assert_eq!(e.data, d, "split {split}");
            }
            assert_eq!(p.last_event_id(), Some("id3"));
        }
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        let mut p = Parser::new(1024);
        let mut ev = p.push(b"event: scope\r\ndata: a\rdata: b\r").unwrap();
        ev.extend(p.push(b"\ndata:c\r\n\r\n").unwrap());
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data, "a\nb\nc");
        assert_eq!(ev[0].id, None);
    }

    #[test]
    fn bounded() {
        let mut p = Parser::new(64);
        let big = format!("data: {}\n", "x".repeat(40));
        assert!(p.push(big.as_bytes()).is_ok());
        assert_eq!(p.push(big.as_bytes()), Err(SseError::TooLarge { limit: 64 }));
        let mut p = Parser::new(64);
        assert_eq!(p.push(&[b'x'; 65]), Err(SseError::TooLarge { limit: 64 }));
        let mut p = Parser::new(64);
        assert_eq!(p.push(b"data: \xff\n"), Err(SseError::NotUtf8));
    }
}
