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
//! Only whole events count: an event cut short by a broken connection is
//! dropped, and its id is not remembered.
//!
//! Why a stream is down is reported with a [`DownKind`]: a publisher that is
//! gone or does not serve the ticket now is ordinary in a geo cluster, but a
//! refused TLS handshake (certificate not trusted, expired, wrong name) or a
//! refused certificate (`401`/`403`) needs an administrator — it is retried
//! all the same, in case the other side is being fixed. When a request fails
//! after the connection was made without saying why (TLS 1.3 servers refuse
//! a client certificate after the client's handshake is done; the HTTP
//! client often reports only a closed connection), the follower asks a
//! [`Prober`] for the server's verdict.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use cib_net::protocol::{stream_path, EVENT_SCOPE, HEADER_SITE, MAX_DOCUMENT_BYTES};
use cib_net::sse;
use cib_net::tls::{Prober, TlsFailure};

use crate::fetch::{diagnose, error_chain, refusal};

/// First pause before reconnecting.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest silence on an open stream before it is taken as dead (three
/// keep-alive intervals).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Longest wait for the response head of a stream request.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a [`Prober`] waits for a publisher's verdict.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

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
        /// Whether the peer is unavailable or the two ends refuse each other.
        kind: DownKind,
    },
}

/// Why a stream is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownKind {
    /// The stream ended or broke, or the peer cannot be reached or does not
    /// serve the ticket now (`503`, another status, a timeout): expected
    /// while the ticket is held elsewhere or a publisher restarts.
    Unavailable,
    /// The TLS handshake failed (a certificate not trusted, expired, or not
    /// naming the host), or the publisher refused this site's certificate
    /// (`401`, `403`): one side's configuration needs fixing.
    Refused,
}

/// Why one connection ended, as reported to the coordinator.
#[derive(Debug)]
struct Failure {
    error: String,
    kind: DownKind,
}

impl Failure {
    fn unavailable(error: String) -> Failure {
        Failure {
            error,
            kind: DownKind::Unavailable,
        }
    }

    /// A request or body error: refused when it was a TLS failure.
    fn from_reqwest(url: &Url, what: &str, e: &reqwest::Error) -> Failure {
        let detail = error_chain(e);
        match TlsFailure::find(e) {
            Some(tls) => Failure::tls(url, &tls, &detail),
            None => Failure::unavailable(format!("{url}: {what}{detail}")),
        }
    }

    fn tls(url: &Url, tls: &TlsFailure, detail: &str) -> Failure {
        Failure {
            error: format!("{url}: TLS handshake failed: {tls} ({detail})"),
            kind: DownKind::Refused,
        }
    }
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
    prober: Prober,
    tx: mpsc::Sender<PeerMsg>,
    mut backoff: Backoff,
    shutdown: CancellationToken,
) {
    let mut last_id: Option<String> = None;
    loop {
        let mut delivered = false;
        let result = stream_once(&peer, &client, &prober, &mut last_id, &tx, &shutdown, &mut delivered).await;
        if shutdown.is_cancelled() || tx.is_closed() {
            return;
        }
        let Failure { error, kind } = match result {
            Ok(()) => Failure::unavailable("the stream ended".to_owned()),
            Err(f) => f,
        };
        if tx.send(PeerMsg::Down { peer: peer.index, error, kind }).await.is_err() {
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
/// otherwise. An event is forwarded only once complete: what a broken
/// connection cut short is dropped with the parser.
async fn stream_once(
    peer: &Peer,
    client: &reqwest::Client,
    prober: &Prober,
    last_id: &mut Option<String>,
    tx: &mpsc::Sender<PeerMsg>,
    shutdown: &CancellationToken,
    delivered: &mut bool,
) -> Result<(), Failure> {
    let url = &peer.stream_url;
    let mut request = client.get(url.clone()).header(ACCEPT, "text/event-stream");
    if let Some(id) = last_id.as_deref() {
        request = request.header("last-event-id", id);
    }
    let mut response = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        r = tokio::time::timeout(RESPONSE_TIMEOUT, request.send()) => match r {
            Err(_) => return Err(Failure::unavailable(format!("{url}: no response within {} s", RESPONSE_TIMEOUT.as_secs()))),
            Ok(Err(e)) => {
                let e = e.without_url();
                let failure = Failure::from_reqwest(url, "", &e);
                let connected = !e.is_connect() && !e.is_timeout();
                if failure.kind == DownKind::Unavailable && connected {
                    let diagnosis = tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        d = diagnose(url, prober) => d,
                    };
                    if let Some(tls) = diagnosis {
                        return Err(Failure::tls(url, &tls, &error_chain(&e)));
                    }
                }
                return Err(failure);
            }
            Ok(Ok(r)) => r,
        },
    };
    let status = response.status();
    if status != StatusCode::OK {
        let error = format!("{:#}", refusal(url, &mut response).await);
        let kind = if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            DownKind::Refused
        } else {
            DownKind::Unavailable
        };
        return Err(Failure { error, kind });
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("text/event-stream") {
        return Err(Failure::unavailable(format!(
            "{url}: expected an event stream, got content type `{content_type}`"
        )));
    }
    let site = response
        .headers()
        .get(HEADER_SITE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    send(tx, shutdown, PeerMsg::Streaming { peer: peer.index, site: site.clone() })
        .await
        .map_err(Failure::unavailable)?;
    // Framing adds `data: ` to every line of the document.
    let mut parser = sse::Parser::new(MAX_DOCUMENT_BYTES + MAX_DOCUMENT_BYTES / 4);
    loop {
        let chunk = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = tokio::time::timeout(IDLE_TIMEOUT, response.chunk()) => match r {
                Err(_) => return Err(Failure::unavailable(format!("{url}: nothing received for {} s", IDLE_TIMEOUT.as_secs()))),
                Ok(Err(e)) => return Err(Failure::from_reqwest(url, "the stream broke: ", &e.without_url())),
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(chunk))) => chunk,
            },
        };
        let events = parser.push(&chunk).map_err(|e| Failure::unavailable(format!("{url}: {e}")))?;
        for event in events {
            if event.event != EVENT_SCOPE {
                tracing::debug!(peer = %url, event = %event.event, "ignoring an event of another type");
                continue;
            }
            tracing::debug!(peer = %url, id = ?event.id, bytes = event.data.len(), "document received");
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
            .await
            .map_err(Failure::unavailable)?;
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
