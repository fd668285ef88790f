//! Acknowledgements: what a subscriber tells the publisher it follows after
//! each document it applied, staged or refused (`docs/protocol.md`,
//! "Acknowledgements").
//!
//! The body of `POST /v1/tickets/{ticket}/ack` is one small JSON object,
//! [`Ack`]. Both ends read and write it through this module, so they agree
//! on its bounds: at most [`MAX_ACK_BYTES`] bytes, no unknown fields, every
//! string bounded and of a known shape (the error text may hold anything
//! printable and is escaped wherever it is shown). The site that
//! acknowledges is never named in the body: the publisher knows it from the
//! client certificate.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest acknowledgement body the publisher reads (bytes).
pub const MAX_ACK_BYTES: usize = 4096;
/// Longest error text an acknowledgement carries (characters); the
/// subscriber shortens a longer one ([`Ack::with_error`]).
pub const MAX_ERROR_CHARS: usize = 1024;
/// Longest digest (`sha256:` and 64 hex digits fit well).
const MAX_DIGEST_CHARS: usize = 128;
/// Longest CIB version (`admin_epoch.epoch.num_updates`).
const MAX_VERSION_CHARS: usize = 64;
/// Most drifted elements an acknowledgement reports.
pub const MAX_DRIFT: u32 = 1_000_000;

/// What a subscriber holds of a ticket after its last apply or refusal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Publisher digest (`sha256:<hex>`) of the version applied at the
    /// site; `null` when none was.
    pub digest: Option<String>,
    /// Origin CIB version (`admin_epoch.epoch.num_updates`) of the version
    /// applied; `null` when none was, or unknown.
    pub version: Option<String>,
    /// Grant term of the version applied; `null` when none.
    pub term: Option<u64>,
    /// When the subscriber wrote the acknowledgement, Unix seconds (its
    /// clock; the publisher records its own time of receipt as well).
    pub at: u64,
    /// Replicated elements edited locally and not put back: an apply puts
    /// them back (0), a staged version's plan counts them (manual mode).
    pub drift: u32,
    /// 1 when a version is staged and not applied (manual mode), else 0.
    pub pending: u8,
    /// Why the last document was refused or not applied; `null` when it
    /// was applied, staged or found up to date.
    pub error: Option<String>,
}

impl Ack {
    /// The same acknowledgement with `error`, shortened to
    /// [`MAX_ERROR_CHARS`] characters (`…` marks a cut).
    #[must_use]
    pub fn with_error(mut self, error: Option<&str>) -> Ack {
        self.error = error.map(|e| {
            if e.chars().count() <= MAX_ERROR_CHARS {
                e.to_owned()
            } else {
                let mut cut: String = e.chars().take(MAX_ERROR_CHARS - 1).collect();
                cut.push('…');
                cut
            }
        });
        self
    }

    /// Parses and checks a body: at most [`MAX_ACK_BYTES`], JSON, no
    /// unknown or missing fields, values within bounds ([`Ack::check`]).
    ///
    /// # Errors
    ///
    /// [`Error::Ack`] saying what is wrong (quoting nothing of the body but
    /// field names, escaped).
    pub fn parse(body: &[u8]) -> Result<Ack> {
        if body.len() > MAX_ACK_BYTES {
            return Err(Error::Ack(format!("the body is larger than {MAX_ACK_BYTES} bytes")));
        }
        let ack: Ack = serde_json::from_slice(body).map_err(|e| Error::Ack(format!("not an acknowledgement: {}", e.to_string().escape_debug())))?;
        ack.check()?;
        Ok(ack)
    }

    /// Checks the bounds and shapes of the values.
    ///
    /// # Errors
    ///
    /// [`Error::Ack`] naming the first value out of bounds.
    pub fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Ack(m.to_owned()));
        if let Some(d) = &self.digest {
            let hex = d.strip_prefix("sha256:").unwrap_or("");
            if d.len() > MAX_DIGEST_CHARS || hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad("`digest` is not sha256:<hex>");
            }
        }
        if let Some(v) = &self.version {
            if v.is_empty() || v.len() > MAX_VERSION_CHARS || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return bad("`version` is not a CIB version (digits and dots)");
            }
        }
        if self.drift > MAX_DRIFT {
            return bad("`drift` is out of range");
        }
        if self.pending > 1 {
            return bad("`pending` is neither 0 nor 1");
        }
        if self.error.as_ref().is_some_and(|e| e.chars().count() > MAX_ERROR_CHARS) {
            return bad("`error` is longer than 1024 characters");
        }
        Ok(())
    }

    /// The entity tag of the version applied (`digest@term`), as the
    /// publisher names its versions; `None` when none was applied.
    #[must_use]
    pub fn etag(&self) -> Option<String> {
        self.digest.as_deref().map(|d| crate::protocol::entity_tag(d, self.term))
    }

    /// The body to send.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Ack {
        Ack {
            digest: Some("sha256:ab12".into()),
            version: Some("0.12.1".into()),
            term: Some(5),
            at: 1_700_000_000,
            drift: 0,
            pending: 0,
            error: None,
        }
    }

    #[test]
    fn round_trip() {
        let a = good();
        assert_eq!(Ack::parse(a.to_json().as_bytes()).unwrap(), a);
        assert_eq!(a.etag().as_deref(), Some("sha256:ab12@5"));
        let none = Ack::default();
        assert_eq!(Ack::parse(none.to_json().as_bytes()).unwrap(), none);
        assert_eq!(none.etag(), None);
    }

    #[test]
    fn refused_bodies() {
        let json = good().to_json();
        let cases = [
            json.replace("\"drift\"", "\"site\":\"x\",\"drift\""),
            json.replace(",\"drift\":0", ""),
            "[]".to_owned(),
            "{".to_owned(),
            json.replace("sha256:ab12", "md5:ab12"),
            json.replace("sha256:ab12", "sha256:<b>"),
            json.replace("0.12.1", "0.12.1<script>"),
            json.replace("\"pending\":0", "\"pending\":2"),
            json.replace("\"pending\":0", "\"pending\":-1"),
            json.replace("\"term\":5", "\"term\":\"5\""),
            json.replace("\"error\":null", &format!("\"error\":\"{}\"", "x".repeat(1025))),
            format!("{json}{}", " ".repeat(MAX_ACK_BYTES)),
        ];
        for body in cases {
            assert!(Ack::parse(body.as_bytes()).is_err(), "accepted: {body}");
        }
    }

    #[test]
    fn long_errors_are_shortened() {
        let a = good().with_error(Some(&"é".repeat(5000)));
        assert_eq!(a.error.as_ref().unwrap().chars().count(), MAX_ERROR_CHARS);
        assert!(a.to_json().len() < MAX_ACK_BYTES);
        Ack::parse(a.to_json().as_bytes()).unwrap();
    }
}
