//! Acknowledgements: when a stream opens, and after each document applied,
//! staged or refused, the daemon tells the publisher what this site now
//! holds
//! (`POST /v1/tickets/{ticket}/ack`, a [`cib_net::ack::Ack`];
//! `docs/protocol.md`, "Acknowledgements").
//!
//! The request goes over the same client as the stream (this site's
//! certificate, the multi-site CA), in a task of its own bounded by
//! [`ACK_TIMEOUT`]: acknowledging never delays or affects applying, and a
//! failure is logged at debug level only. A publisher that answers `404`
//! predates acknowledgements (or does not serve the ticket): this site
//! stops acknowledging it, saying so once at debug level, until its stream
//! opens again (a restarted, perhaps upgraded, publisher).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{StatusCode, Url};

use cib_net::ack::{Ack, MAX_DRIFT};
use cib_net::protocol::ack_path;

use crate::fetch::error_chain;
use crate::state::{Timestamp, TicketStatus};

/// Longest one acknowledgement may take.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a peer is still acknowledged: off after it answered `404`.
#[derive(Debug, Clone, Default)]
pub struct AckSwitch(Arc<AtomicBool>);

impl AckSwitch {
    /// Acknowledge the peer again (its stream opened).
    pub fn on(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    fn is_off(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Turns it off; true if it was on.
    fn turn_off(&self) -> bool {
        !self.0.swap(true, Ordering::Relaxed)
    }
}

/// The acknowledgement of what `status` records as applied and staged,
/// with `drift` elements edited locally and not put back and `error` (the last
/// document's, `None` when it was applied, staged or up to date).
#[must_use]
pub fn ack_of(status: &TicketStatus, drift: usize, error: Option<&str>) -> Ack {
    // A site keeping the ticket lazily holds its verified copy outside the
    // CIB (the gate writes it on a grant): that is what it reports.
    let applied = status.lazy.as_ref().or(status.applied.as_ref());
    Ack {
        digest: applied.map(|a| a.digest.clone()),
        version: applied.and_then(|a| a.version.clone()),
        term: applied.and_then(|a| a.term),
        at: Timestamp::now().0,
        drift: u32::try_from(drift).unwrap_or(MAX_DRIFT).min(MAX_DRIFT),
        pending: u8::from(status.pending.is_some()),
        error: None,
    }
    .with_error(error)
}

/// Sends `ack` of `ticket` to the publisher at `base` in a task of its
/// own, unless `switch` is off.
pub fn send(client: &reqwest::Client, base: &Url, ticket: &str, ack: &Ack, switch: &AckSwitch) {
    if switch.is_off() {
        return;
    }
    let mut url = base.clone();
    url.set_path(&ack_path(ticket));
    let request = client
        .post(url.clone())
        .header(CONTENT_TYPE, "application/json")
        .timeout(ACK_TIMEOUT)
        .body(ack.to_json());
    let (ticket, switch) = (ticket.to_owned(), switch.clone());
    tokio::spawn(async move {
        match request.send().await {
            Ok(r) if r.status().is_success() => tracing::trace!(%ticket, peer = %url, "acknowledged"),
            Ok(r) if r.status() == StatusCode::NOT_FOUND => {
                if switch.turn_off() {
                    tracing::debug!(%ticket, peer = %url, "the publisher takes no acknowledgements (an older version): not sending more until its stream opens again");
                }
            }
            Ok(r) => tracing::debug!(%ticket, peer = %url, status = %r.status(), "acknowledgement refused"),
            Err(e) => tracing::debug!(%ticket, peer = %url, error = %error_chain(&e.without_url()), "acknowledgement not sent"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::VersionSeen;

    #[test]
    fn ack_from_the_state() {
        let mut s = TicketStatus::default();
        let a = ack_of(&s, 0, None);
        assert_eq!((a.digest, a.pending, a.error), (None, 0, None));
        s.applied = Some(VersionSeen {
            digest: "sha256:ab".into(),
            version: Some("0.2.1".into()),
            term: Some(7),
            at: Timestamp(1),
        });
        s.pending = s.applied.clone();
        let a = ack_of(&s, 3, Some("refused"));
        assert_eq!(a.etag().as_deref(), Some("sha256:ab@7"));
        assert_eq!((a.version.as_deref(), a.drift, a.pending, a.error.as_deref()), (Some("0.2.1"), 3, 1, Some("refused")));
        a.check().unwrap();
    }

    #[test]
    fn the_switch_turns_off_once() {
        let s = AckSwitch::default();
        assert!(!s.is_off());
        assert!(s.turn_off());
        assert!(!s.turn_off());
        s.on();
        assert!(!s.is_off());
    }
}
