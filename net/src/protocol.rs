//! The wire protocol between publisher and subscriber (`docs/protocol.md`).
//!
//! HTTPS with mutual TLS only. For each ticket `T` the publisher serves
//! [`scope_path`] (one document, conditional GET) and [`stream_path`]
//! (server-sent events, one [`EVENT_SCOPE`] event per new version).

use std::time::Duration;

/// Route of the current scope document of a ticket (axum path syntax).
pub const SCOPE_ROUTE: &str = "/v1/tickets/{ticket}/scope";
/// Route of the event stream of a ticket (axum path syntax).
pub const STREAM_ROUTE: &str = "/v1/tickets/{ticket}/stream";
/// Route of a subscriber's acknowledgements of a ticket (`POST`, a JSON
/// [`crate::ack::Ack`]).
pub const ACK_ROUTE: &str = "/v1/tickets/{ticket}/ack";
/// The fleet view as JSON, on the plain-HTTP metrics listener only.
pub const STATUS_JSON_PATH: &str = "/status.json";
/// The fleet view as an HTML page, on the plain-HTTP metrics listener only.
pub const STATUS_PAGE_PATH: &str = "/status";
/// Liveness check; answers `ok` to any authenticated client.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Prometheus / OpenMetrics text exposition.
pub const METRICS_PATH: &str = "/metrics";

/// Response header: CIB version (`admin_epoch.epoch.num_updates`) the scope
/// was cut from.
pub const HEADER_VERSION: &str = "x-cib-version";
/// Response header: `sha256:<hex>` digest of the canonical scope content.
pub const HEADER_DIGEST: &str = "x-cib-digest";
/// Response header: grant term of the ticket at the publishing site (booth's
/// `term`, else `last-granted`); absent when the CIB records none.
pub const HEADER_TERM: &str = "x-ticket-term";
/// Response header: name of the publishing site (from its configuration).
pub const HEADER_SITE: &str = "x-site";

/// Content type of a scope document.
pub const SCOPE_CONTENT_TYPE: &str = "application/xml";
/// SSE event name carrying a scope document.
pub const EVENT_SCOPE: &str = "scope";
/// Interval of the SSE keep-alive comments.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Largest scope document a subscriber accepts (bytes), the same bound as
/// the XML parser's default.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;
/// Largest request head (request line + headers) the publisher reads, and
/// largest HTTP/2 header list it accepts (bytes).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Path of the scope document of `ticket`.
#[must_use]
pub fn scope_path(ticket: &str) -> String {
    format!("/v1/tickets/{ticket}/scope")
}

/// Path of the event stream of `ticket`.
#[must_use]
pub fn stream_path(ticket: &str) -> String {
    format!("/v1/tickets/{ticket}/stream")
}

/// Path of the acknowledgements of `ticket`.
#[must_use]
pub fn ack_path(ticket: &str) -> String {
    format!("/v1/tickets/{ticket}/ack")
}

/// The entity tag (unquoted) of a published version: the digest, plus the
/// grant term when there is one, as `sha256:<hex>@<term>`.
///
/// The term is part of the tag because it is part of the document: a ticket
/// re-granted with a newer term but unchanged content is a new version a
/// subscriber must see. The same string is the SSE event id. Clients treat
/// it as opaque; the digest alone is in [`HEADER_DIGEST`].
#[must_use]
pub fn entity_tag(digest: &str, term: Option<u64>) -> String {
    match term {
        Some(t) => format!("{digest}@{t}"),
        None => digest.to_owned(),
    }
}

/// Whether `site` is usable as a site name (it is sent in a header and
/// names the site in logs): 1 to 253 characters from
/// `A-Z a-z 0-9 . _ -`.
#[must_use]
pub fn is_valid_site(site: &str) -> bool {
    !site.is_empty()
        && site.len() <= 253
        && site
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `name` can be used as a ticket in a URL path without escaping:
/// 1 to 256 characters from `A-Z a-z 0-9 . _ -`, starting with a letter or
/// `_` (Pacemaker ticket ids are XML ids, which cannot start with a digit,
/// `.` or `-`; this also keeps `.` and `..` out of paths).
#[must_use]
pub fn is_valid_ticket(name: &str) -> bool {
    let bytes = name.as_bytes();
    matches!(bytes.first(), Some(b) if b.is_ascii_alphabetic() || *b == b'_')
        && bytes.len() <= 256
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A ticket name from the command line, checked like the ticket names of
/// the configuration files ([`is_valid_ticket`]) before it names a
/// directory or a URL path: the `value_parser` of every `--ticket` flag.
///
/// # Errors
///
/// A message that quotes the name and says what a ticket name is.
pub fn parse_ticket(name: &str) -> Result<String, String> {
    if is_valid_ticket(name) {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "\"{}\" is not a ticket name: use 1 to 256 letters, digits, `.`, `_` or `-`, starting with a letter or `_`",
            name.escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_routes() {
        assert_eq!(scope_path("geo"), SCOPE_ROUTE.replace("{ticket}", "geo"));
        assert_eq!(stream_path("geo"), STREAM_ROUTE.replace("{ticket}", "geo"));
        assert_eq!(ack_path("geo"), ACK_ROUTE.replace("{ticket}", "geo"));
    }

    #[test]
    fn entity_tag_carries_term() {
        assert_eq!(entity_tag("sha256:ab", None), "sha256:ab");
        assert_eq!(entity_tag("sha256:ab", Some(7)), "sha256:ab@7");
    }

    #[test]
    fn ticket_names() {
        assert!(is_valid_ticket("geo"));
        assert!(is_valid_ticket("ticket-A_1.x"));
        assert!(!is_valid_ticket(""));
        assert!(!is_valid_ticket("a/b"));
        assert!(!is_valid_ticket("a b"));
        assert!(!is_valid_ticket("..%2f"));
        assert!(!is_valid_ticket(".."));
        assert!(!is_valid_ticket("-x"));
        assert!(!is_valid_ticket("1x"));
        assert!(!is_valid_ticket(&"a".repeat(257)));
        assert_eq!(parse_ticket("geo").as_deref(), Ok("geo"));
        let err = parse_ticket("../x").unwrap_err();
        assert!(err.contains("\"../x\" is not a ticket name"), "{err}");
        assert!(parse_ticket("a\nb").unwrap_err().contains(r#""a\nb""#));
    }
}
