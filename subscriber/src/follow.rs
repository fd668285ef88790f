//! Following one peer's event stream, with reconnects.
//!
//! [`follow_peer`] keeps one `GET /v1/tickets/T/stream` open to one
//! publisher and forwards every `scope` event, unparsed, to the ticket's
//! coordinator ([`crate::daemon`]) as a [`PeerMsg`]; it also reports when
//! the stream opens and why it is down. It never decides anything about the
//! documents: one coordinator per ticket sees the events of every peer and
//! chooses (grant terms, digests), so two peers cannot race each other into
//! the CIB.
//!
//! When the stream ends or cannot be opened — the publisher stopped
//! serving the ticket (end of stream, then `503`), was killed, or cannot be
//! reached — the follower waits and tries again: pauses start at
//! [`INITIAL_BACKOFF`] and double up to the configured maximum, each drawn
//! at random between half and all of that ("equal jitter"), so subscribers
//! of a restarted publisher do not come back in lockstep. A stream that
//! delivered an event resets the pause. A stream silent for longer than
//! [`IDLE_TIMEOUT`] (the publisher sends a keep-alive comment every 15 s) is
//! taken as dead and reopened.
//!
//! On reconnect the follower sends `Last-Event-ID` with the id of the last
//! event it got from *this* peer, so an unchanged version is not sent again.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use cib_net::protocol::{stream_path, EVENT_SCOPE, HEADER_SITE, MAX_DOCUMENT_BYTES};
use cib_net::sse;

use crate::fetch::{error_chain, refusal};

/// First pause before reconnecting.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest silence on an open stream before it is taken as dead (three
/// keep-alive intervals).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Longest wait for the response head of a stream request.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a follower tells its ticket's coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMsg {
    /// The stream to peer `peer` is open.
    Streaming {
        /// Index of the peer in the ticket's `peers`.
        peer: usize,
        /// The site name the publisher announced (`X-Site`).
        site: Option<String>,
    },
    /// A `scope` event arrived.
    Event {
        /// Index of the peer in the ticket's `peers`.
        peer: usize,
        /// The site name the publisher announced (`X-Site`).
        site: Option<String>,
        /// The event (`id` = entity tag, `data` = the document).
        event: sse::Event,
    },
    /// The stream is not open: it ended, or could not be opened.
    Down {
        /// Index of the peer in the ticket's `peers`.
        peer: usize,
        /// Why.
        error: String,
    },
}

/// Exponential backoff with equal jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// Pauses from `initial` doubling up to `max` (at least `initial`).
    #[must_use]
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
            rng: h.finish() | 1,
        }
    }

    /// The next pause: the current step drawn between half and all of it;
    /// then the step doubles (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .initial
            .saturating_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1).min(31);
        // xorshift64: uniform enough for spreading reconnects.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = step / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(if nanos == 0 { 0 } else { self.rng % (nanos + 1) })
    }

    /// Back to the first step (after a connection that worked).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// One peer of one ticket.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Index in the ticket's `peers`.
    pub index: usize,
    /// The stream URL: base URL + [`stream_path`].
    pub stream_url: Url,
}

impl Peer {
    /// The peer at `base` (a validated `https://HOST:PORT`) for `ticket`.
    #[must_use]
    pub fn new(index: usize, base: &Url, ticket: &str) -> Peer {
        let mut stream_url = base.clone();
        stream_url.set_path(&stream_path(ticket));
        Peer { index, stream_url }
    }
}

/// Follows `peer` until `shutdown` is cancelled or the coordinator is gone.
pub async fn follow_peer(
    peer: Peer,
    client: reqwest::Client,
    tx: mpsc::Sender<PeerMsg>,
    mut backoff: Backoff,
    shutdown: CancellationToken,
) {
    let mut last_id: Option<String> = None;
    loop {
        let mut delivered = false;
        let result = stream_once(&peer, &client, &mut last_id, &tx, &shutdown, &mut delivered).await;
        if shutdown.is_cancelled() || tx.is_closed() {
            return;
        }
        let error = match result {
            Ok(()) => "the stream ended".to_owned(),
            Err(e) => e,
        };
        if tx.send(PeerMsg::Down { peer: peer.index, error }).await.is_err() {
            return;
        }
        if delivered {
            backoff.reset();
        }
        let pause = backoff.next_delay();
        tracing::debug!(peer = %peer.stream_url, pause_ms = pause.as_millis(), "reconnecting after a pause");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One connection: open the stream, forward its events until it ends.
/// `Ok(())` when it ended cleanly (or on shutdown), `Err` with the reason
/// otherwise.
async fn stream_once(
    peer: &Peer,
    client: &reqwest::Client,
    last_id: &mut Option<String>,
    tx: &mpsc::Sender<PeerMsg>,
    shutdown: &CancellationToken,
    delivered: &mut bool,
) -> Result<(), String> {
    let url = &peer.stream_url;
    let mut request = client.get(url.clone()).header(ACCEPT, "text/event-stream");
    if let Some(id) = last_id.as_deref() {
        request = request.header("last-event-id", id);
    }
    let mut response = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        r = tokio::time::timeout(RESPONSE_TIMEOUT, request.send()) => match r {
            Err(_) => return Err(format!("{url}: no response within {} s", RESPONSE_TIMEOUT.as_secs())),
            Ok(Err(e)) => return Err(format!("{url}: {}", error_chain(&e.without_url()))),
            Ok(Ok(r)) => r,
        },
    };
    if response.status() != StatusCode::OK {
        return Err(format!("{:#}", refusal(url, &mut response).await));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("text/event-stream") {
        return Err(format!("{url}: expected an event stream, got content type `{content_type}`"));
    }
    let site = response
        .headers()
        .get(HEADER_SITE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    send(tx, shutdown, PeerMsg::Streaming { peer: peer.index, site: site.clone() }).await?;
    // Framing adds `data: ` to every line of the document.
    let mut parser = sse::Parser::new(MAX_DOCUMENT_BYTES + MAX_DOCUMENT_BYTES / 4);
    loop {
        let chunk = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = tokio::time::timeout(IDLE_TIMEOUT, response.chunk()) => match r {
                Err(_) => return Err(format!("{url}: nothing received for {} s", IDLE_TIMEOUT.as_secs())),
                Ok(Err(e)) => return Err(format!("{url}: the stream broke: {}", error_chain(&e.without_url()))),
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(chunk))) => chunk,
            },
        };
        let events = parser.push(&chunk).map_err(|e| format!("{url}: {e}"))?;
        for event in events {
            if event.event != EVENT_SCOPE {
                tracing::debug!(peer = %url, event = %event.event, "ignoring an event of another type");
                continue;
            }
            last_id.clone_from(&event.id);
            *delivered = true;
            send(
                tx,
                shutdown,
                PeerMsg::Event {
                    peer: peer.index,
                    site: site.clone(),
                    event,
                },
            )
            .await?;
        }
    }
}

/// Sends to the coordinator, giving up on shutdown.
async fn send(tx: &mpsc::Sender<PeerMsg>, shutdown: &CancellationToken, msg: PeerMsg) -> Result<(), String> {
    tokio::select! {
        () = shutdown.cancelled() => Err("shutting down".into()),
        r = tx.send(msg) => r.map_err(|_| "the coordinator is gone".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_maximum() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let steps = [500, 1000, 2000, 4000, 4000, 4000];
        for step in steps {
            let d = b.next_delay();
            let step = Duration::from_millis(step);
            assert!(d >= step / 2 && d <= step, "{d:?} not within [{:?}, {step:?}]", step / 2);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(500));
    }

    #[test]
    fn backoff_draws_differ() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let draws: std::collections::BTreeSet<_> = (0..20).map(|_| b.next_delay()).collect();
        assert!(draws.len() > 10, "{draws:?}");
    }

    #[test]
    fn a_maximum_below_the_first_step_is_the_first_step() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_millis(1));
        for _ in 0..5 {
            assert!(b.next_delay() <= Duration::from_millis(500));
        }
    }

    #[test]
    fn stream_urls() {
        let p = Peer::new(1, &Url::parse("https://site-a.example:9443").unwrap(), "geo");
        assert_eq!(p.stream_url.as_str(), "https://site-a.example:9443/v1/tickets/geo/stream");
    }
}
