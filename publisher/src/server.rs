//! The HTTPS server: the router ([`app`]) and the mutual-TLS accept loop
//! with graceful shutdown ([`run`]).
//!
//! [`run_with_limits`] (or [`run`], with the default [`Limits`]) takes a
//! bound listener, a rustls configuration that requires client
//! certificates, the router, the limits and a [`CancellationToken`]. Each
//! connection is a task in a [`JoinSet`]: TLS handshake (bounded by
//! `limits.handshake_timeout_seconds`; failures are logged with the peer
//! address and the reason, and counted), client identity read from the
//! verified certificate and attached to every request with the peer
//! address, then hyper (HTTP/1.1 or HTTP/2 by ALPN) with bounded request
//! heads. On cancellation the loop stops accepting, every connection is
//! asked to shut down gracefully (open event streams end by themselves,
//! they watch the same token), and whatever is still open after the grace
//! period is aborted.
//!
//! Under a flood ([`Limits`]):
//!
//! - A connection is closed as soon as it is accepted when the server holds
//!   `max_connections`, or its peer address (IPv6: its /64) holds
//!   `max_connections_per_peer` (counted in
//!   `cib_publisher_connections_refused_total`; one WARN per 10 s at most).
//!   Connections still in their handshake count too: the handshake timeout
//!   is what frees those a client leaves half-open.
//! - An authenticated connection without a request in flight and without
//!   an open stream for `idle_timeout_seconds` is closed (gracefully: an
//!   HTTP/2 client gets a GOAWAY). A request or a response body in progress
//!   — a stream is one — keeps it open.
//! - A client certificate may hold `max_streams_per_client` streams of a
//!   ticket at once; one more is answered `429`.
//!
//! The routes (`docs/protocol.md`):
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/tickets/{ticket}/scope` | 200 document + `ETag`, `X-Cib-Version`, `X-Cib-Digest`, `X-Ticket-Term`, `X-Site`; 304 on a matching `If-None-Match` |
//! | `GET /v1/tickets/{ticket}/stream` | `text/event-stream`: one `scope` event per new version, `id` = entity tag; ends when the ticket is no longer granted here |
//! | `GET /healthz` | 200 `ok` |
//! | `GET /metrics` | OpenMetrics text |
//! | `POST /v1/tickets/{ticket}/ack` | 204: a subscriber's acknowledgement ([`cib_net::ack::Ack`], at most 4 KiB of JSON), recorded for the fleet view |
//!
//! The fleet view ([`status_router`]: `/status.json`, `/status`) is served
//! on the plain-HTTP metrics listener only, never on this port.
//!
//! A stream's body is pulled only when its connection can take more
//! (HTTP/1.1: hyper's write buffer has room; HTTP/2: the client's window
//! has), and each pull reads the newest view from the ticket's `watch`
//! channel. A client that stops reading therefore holds at most the frames
//! already handed to its connection, delays no other stream, and when it
//! reads again gets the newest version: the versions it missed are
//! skipped, never queued for it.
//!
//! Errors: 404 ticket not configured, 403 client not in the ticket's
//! allow-list (logged with the identity and the peer address), 503 ticket
//! not granted here (or standby, or its scope cannot be computed, or the
//! CIB is unreadable), 413 for any request that carries a body (but an
//! acknowledgement, up to 4 KiB), 429 for a stream over the client's cap;
//! for an acknowledgement also 400 (malformed), 408 (body too slow) and
//! 415 (not JSON).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, TRANSFER_ENCODING};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use cib_net::ack::{Ack, MAX_ACK_BYTES};
use cib_net::protocol::{
    ACK_ROUTE, HEADER_DIGEST, HEADER_SITE, HEADER_TERM, HEADER_VERSION, HEALTHZ_PATH, KEEP_ALIVE, MAX_HEADER_BYTES,
    METRICS_PATH, SCOPE_CONTENT_TYPE, SCOPE_ROUTE, STATUS_JSON_PATH, STATUS_PAGE_PATH, STREAM_ROUTE,
};
use cib_net::sse::KEEP_ALIVE_COMMENT;
use cib_net::tls::TlsFailure;
use cib_net::ClientIdentity;

use crate::config::{Limits, DEFAULT_MAX_STREAMS_PER_CLIENT};
use crate::error::Error;
use crate::fleet::{self, FleetReport, Records, StreamSeen, TicketInput};
use crate::metrics::{self, GaugeGuard, Metrics};
use crate::publication::{Channels, Published, TicketView};
use crate::status_page;
use crate::slots::{Full, Slot, Slots};

/// Longest a client may take to send a request head (HTTP/1.1).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest an idle connection asked to close is waited for (an HTTP/2
/// client answering the GOAWAY's ping) before it is dropped.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(5);
/// An HTTP/2 client silent this long is pinged, and its connection closed
/// when the ping is not answered within as long again: a stream whose
/// client vanished without a word (a network partition) gives its slot
/// under `max_streams_per_client` back within 40 s, before the subscriber,
/// which gives up on a stream silent for 45 s, connects again.
const H2_PING_AFTER: Duration = Duration::from_secs(20);
/// Longest a client may take to send an acknowledgement's body.
pub const ACK_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Refused connections are logged at most once per this interval (they
/// are all counted).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One served ticket: who may read it, and where its views come from.
#[derive(Debug, Clone)]
pub struct TicketAccess {
    /// Client certificate names allowed to read the ticket.
    pub allow: Vec<String>,
    /// The ticket's current view, kept current by the watcher.
    pub views: watch::Receiver<TicketView>,
}

/// The shared state of every request.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    site: String,
    site_header: HeaderValue,
    tickets: BTreeMap<String, TicketAccess>,
    /// Allow-lists set by a reload ([`AppState::set_allow`]), over those
    /// of `tickets`.
    reloaded_allow: std::sync::RwLock<BTreeMap<String, Vec<String>>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    keep_alive: Duration,
    /// Open streams per (client identity, ticket).
    streams: Slots<(String, String)>,
    max_streams: usize,
    /// What each site did and acknowledged, per ticket (the fleet view).
    records: Arc<Records>,
    /// Where the versions published are remembered (the fleet view's
    /// "behind"); `None`: only "in step or not" is known.
    history: Option<Arc<Channels>>,
}

impl AppState {
    /// State for site `site` serving `tickets`. Streams end when `shutdown`
    /// is cancelled.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if `site` cannot be sent as a header value.
    pub fn new(
        site: &str,
        tickets: BTreeMap<String, TicketAccess>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<AppState, Error> {
        let site_header = HeaderValue::from_str(site).map_err(|_| Error::Invalid(format!("site name {site:?} cannot be sent in a header")))?;
        Ok(AppState {
            inner: Arc::new(Inner {
                site: site.to_owned(),
                site_header,
                tickets,
                reloaded_allow: std::sync::RwLock::default(),
                metrics,
                shutdown,
                keep_alive: KEEP_ALIVE,
                streams: Slots::new(usize::MAX, DEFAULT_MAX_STREAMS_PER_CLIENT),
                max_streams: DEFAULT_MAX_STREAMS_PER_CLIENT,
                records: Arc::default(),
                history: None,
            }),
        })
    }

    /// The same state with another cap on the streams one client
    /// certificate may hold open per ticket (`limits.max_streams_per_client`;
    /// default [`DEFAULT_MAX_STREAMS_PER_CLIENT`]).
    ///
    /// # Panics
    ///
    /// If called after the state was cloned.
    #[must_use]
    pub fn with_max_streams_per_client(mut self, max: usize) -> AppState {
        // Only called while building: the Arc is still unique.
        let inner = Arc::get_mut(&mut self.inner).expect("with_max_streams_per_client before cloning");
        inner.streams = Slots::new(usize::MAX, max);
        inner.max_streams = max;
        self
    }

    /// The same state reading the versions published from `channels` (the
    /// ones the views come from), so that the fleet view can tell how far
    /// behind a site is.
    ///
    /// # Panics
    ///
    /// If called after the state was cloned.
    #[must_use]
    pub fn with_history(mut self, channels: Arc<Channels>) -> AppState {
        // Only called while building: the Arc is still unique.
        Arc::get_mut(&mut self.inner).expect("with_history before cloning").history = Some(channels);
        self
    }

    /// The same state with another keep-alive interval for streams (tests).
    ///
    /// # Panics
    ///
    /// If called after the state was cloned.
    #[must_use]
    pub fn with_keep_alive(mut self, every: Duration) -> AppState {
        // Only called while building: the Arc is still unique.
        Arc::get_mut(&mut self.inner).expect("with_keep_alive before cloning").keep_alive = every;
        self
    }

    /// The metrics the server records into.
    #[must_use]
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Replaces the allow-list of a served ticket (a reloaded
    /// configuration): requests from then on are judged by it; streams
    /// open stay. Returns false for a ticket not served (a new ticket
    /// takes a restart).
    pub fn set_allow(&self, ticket: &str, allow: Vec<String>) -> bool {
        if !self.inner.tickets.contains_key(ticket) {
            return false;
        }
        self.inner
            .reloaded_allow
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(ticket.to_owned(), allow);
        true
    }

    /// The fleet view now: every ticket's allowed sites, what they
    /// acknowledged and when they were seen.
    #[must_use]
    pub fn fleet_report(&self) -> FleetReport {
        let inputs = self
            .inner
            .tickets
            .iter()
            .map(|(ticket, access)| TicketInput {
                ticket: ticket.clone(),
                allow: self.allow_list(ticket, access),
                published: match &*access.views.borrow() {
                    TicketView::Granted(p) => Some(Arc::clone(p)),
                    _ => None,
                },
                history: self.inner.history.as_ref().map(|c| c.history(ticket)).unwrap_or_default(),
                records: self.inner.records.of(ticket),
            })
            .collect();
        fleet::report(&self.inner.site, SystemTime::now(), inputs)
    }

    /// The metrics in the OpenMetrics text format, the per-site gauges
    /// computed now from [`AppState::fleet_report`].
    #[must_use]
    pub fn encode_metrics(&self) -> String {
        self.inner.metrics.set_sites(&self.fleet_report());
        self.inner.metrics.encode()
    }

    /// The allow-list of `ticket` now (a reload's, else the configured one).
    fn allow_list(&self, ticket: &str, access: &TicketAccess) -> Vec<String> {
        let reloaded = self.inner.reloaded_allow.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        reloaded.get(ticket).unwrap_or(&access.allow).clone()
    }

    /// The ticket, if configured and readable by `client` (connected from
    /// `peer`, when known: it is logged with a refusal), and the name its
    /// allow-list knows the client by (the site in the fleet view).
    fn authorize(&self, ticket: &str, client: &ClientIdentity, peer: Option<SocketAddr>) -> Result<(&TicketAccess, String), ApiError> {
        let access = self.inner.tickets.get(ticket).ok_or_else(|| ApiError::UnknownTicket(ticket.to_owned()))?;
        let allowed = client.allowed_by(&self.allow_list(ticket, access)).map(str::to_owned);
        let Some(site) = allowed else {
            self.inner.metrics.error("forbidden");
            let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
            tracing::warn!(ticket, client = %client, %peer, "client certificate not allowed for this ticket");
            return Err(ApiError::Forbidden {
                ticket: ticket.to_owned(),
                client: client.to_string(),
            });
        };
        Ok((access, site))
    }

    /// The publication, if the ticket is granted here.
    fn served(&self, ticket: &str, view: &TicketView) -> Result<Arc<Published>, ApiError> {
        let site = self.inner.site.clone();
        let ticket = ticket.to_owned();
        match view {
            TicketView::Granted(p) => Ok(Arc::clone(p)),
            TicketView::NotGranted { standby } => Err(ApiError::NotGranted {
                ticket,
                site,
                standby: *standby,
            }),
            TicketView::Failed(_) => Err(ApiError::Failed { ticket, site }),
            TicketView::Unavailable(_) => Err(ApiError::Unavailable { site }),
        }
    }
}

/// The router. Every route expects the caller's [`ClientIdentity`] in the
/// request extensions ([`run`] puts it there); without one, ticket routes
/// answer 403. Only the acknowledgement route reads a body.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(SCOPE_ROUTE, get(get_scope))
        .route(STREAM_ROUTE, get(get_stream))
        .route(HEALTHZ_PATH, get(healthz))
        .route(METRICS_PATH, get(get_metrics))
        .layer(middleware::from_fn(refuse_bodies))
        .route(ACK_ROUTE, post(post_ack))
        .with_state(state)
}

/// The fleet view for the plain-HTTP metrics listener
/// ([`cib_net::metrics::serve_with`]): `GET /status.json` (the
/// [`FleetReport`] as JSON), `GET /status` (the HTML page) and its
/// `/status.css` and `/status.js`. Never served on the mTLS port: it names
/// every site and its errors.
pub fn status_router(state: AppState) -> Router {
    let text = |content_type: &'static str, body: &'static str| {
        move || async move { ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")], body).into_response() }
    };
    Router::new()
        .route(STATUS_JSON_PATH, get(get_status_json))
        .route(STATUS_PAGE_PATH, get(get_status_page))
        .route("/status.css", get(text("text/css; charset=utf-8", status_page::CSS)))
        .route("/status.js", get(text("text/javascript; charset=utf-8", status_page::SCRIPT)))
        .with_state(state)
}

async fn get_status_json(State(state): State<AppState>) -> Response {
    let body = serde_json::to_string_pretty(&state.fleet_report()).unwrap_or_default();
    ([(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-store")], body + "\n").into_response()
}

async fn get_status_page(State(state): State<AppState>) -> Response {
    let page = status_page::render(&state.fleet_report());
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
            (HeaderName::from_static("content-security-policy"), status_page::CSP),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
        ],
        page,
    )
        .into_response()
}

/// The caller, as read from its verified certificate, and its address
/// ([`ConnectInfo`], put there by [`run`]; absent in router-only tests).
#[derive(Debug, Clone)]
struct Client(ClientIdentity, Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        parts
            .extensions
            .get::<ClientIdentity>()
            .cloned()
            .map(|identity| Client(identity, peer))
            .ok_or(ApiError::NoIdentity)
    }
}

/// Errors answered to clients. Internal details stay in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ApiError {
    UnknownTicket(String),
    Forbidden { ticket: String, client: String },
    NoIdentity,
    NotGranted { ticket: String, site: String, standby: bool },
    Failed { ticket: String, site: String },
    Unavailable { site: String },
    BodyNotAllowed,
    TooManyStreams { ticket: String, client: String, max: usize },
    AckTooLarge,
    AckTooSlow,
    AckNotJson,
    BadAck(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::UnknownTicket(t) => (StatusCode::NOT_FOUND, format!("ticket `{t}` is not published here")),
            ApiError::Forbidden { ticket, client } => (
                StatusCode::FORBIDDEN,
                format!("the client certificate ({client}) is not allowed to read ticket `{ticket}`"),
            ),
            ApiError::NoIdentity => (StatusCode::FORBIDDEN, "no client identity".to_owned()),
            ApiError::NotGranted { ticket, site, standby: false } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("ticket `{ticket}` is not granted at site {site}: its configuration is published by the site that holds it"),
            ),
            ApiError::NotGranted { ticket, site, standby: true } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("ticket `{ticket}` is in standby at site {site}: its configuration is not published while standby"),
            ),
            ApiError::Failed { ticket, site } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("ticket `{ticket}` is granted at site {site} but its configuration cannot be published (see the publisher's log)"),
            ),
            ApiError::Unavailable { site } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the CIB of site {site} cannot be read at the moment"),
            ),
            ApiError::BodyNotAllowed => (StatusCode::PAYLOAD_TOO_LARGE, "requests to this server carry no body".to_owned()),
            ApiError::AckTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, format!("an acknowledgement is at most {MAX_ACK_BYTES} bytes")),
            ApiError::AckTooSlow => (StatusCode::REQUEST_TIMEOUT, "the acknowledgement's body did not arrive in time".to_owned()),
            ApiError::AckNotJson => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "an acknowledgement is application/json".to_owned()),
            ApiError::BadAck(why) => (StatusCode::BAD_REQUEST, why),
            ApiError::TooManyStreams { ticket, client, max } => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("the client certificate ({client}) already has {max} streams of ticket `{ticket}` open, the most allowed: close one first"),
            ),
        };
        (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{body}\n")).into_response()
    }
}

/// Refuses any request that announces or carries a body.
async fn refuse_bodies(req: Request, next: Next) -> Response {
    let h = req.headers();
    let announced = h.contains_key(TRANSFER_ENCODING) || h.get(CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0");
    if announced || !req.body().is_end_stream() {
        return ApiError::BodyNotAllowed.into_response();
    }
    next.run(req).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn get_metrics(State(state): State<AppState>) -> Response {
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], state.encode_metrics()).into_response()
}

/// `POST /v1/tickets/{ticket}/ack`: 404, 403 as for the ticket's other
/// resources (whether or not it is granted here), then the body: 413 over
/// [`MAX_ACK_BYTES`], 415 when not JSON, 408 when slower than
/// [`ACK_READ_TIMEOUT`], 400 when malformed ([`Ack::parse`]); 204 once
/// recorded. The site is the name the allow-list matched in the client's
/// certificate.
async fn post_ack(
    State(state): State<AppState>,
    Path(ticket): Path<String>,
    Client(client, peer): Client,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let (_, site) = state.authorize(&ticket, &client, peer)?;
    let refused = |e: ApiError| {
        state.inner.metrics.error("ack");
        let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        tracing::warn!(ticket, client = %client, %peer, error = ?e, "acknowledgement refused");
        e
    };
    let announced = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_ACK_BYTES as u64) {
        return Err(refused(ApiError::AckTooLarge));
    }
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return Err(refused(ApiError::AckNotJson));
    }
    let bytes = match tokio::time::timeout(ACK_READ_TIMEOUT, axum::body::to_bytes(body, MAX_ACK_BYTES)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return Err(refused(ApiError::AckTooLarge)),
        Err(_) => return Err(refused(ApiError::AckTooSlow)),
    };
    let ack = Ack::parse(&bytes).map_err(|e| refused(ApiError::BadAck(e.to_string())))?;
    tracing::debug!(ticket, site, digest = ?ack.digest, version = ?ack.version, pending = ack.pending, drift = ack.drift, error = ?ack.error, "acknowledged");
    state.inner.records.acked(&ticket, &site, ack);
    Ok(StatusCode::NO_CONTENT)
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison,
/// as RFC 9110 prescribes for `If-None-Match`).
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers.get_all(IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').map(str::trim).any(|tag| {
            tag == "*" || {
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(etag)
            }
        })
    })
}

fn version_headers(state: &AppState, p: &Published) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = vec![
        (HeaderName::from_static(HEADER_SITE), state.inner.site_header.clone()),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    // The version, digest and tag are built from digits, letters, `.`, `:`
    // and `@`: always valid header values; skipped rather than panicking.
    for (name, value) in [
        (ETAG, Some(format!("\"{}\"", p.etag))),
        (HeaderName::from_static(HEADER_VERSION), Some(p.version.clone())),
        (HeaderName::from_static(HEADER_DIGEST), Some(p.digest.clone())),
        (HeaderName::from_static(HEADER_TERM), p.term.map(|t| t.to_string())),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            out.push((name, v));
        }
    }
    out
}

async fn get_scope(
    State(state): State<AppState>,
    Path(ticket): Path<String>,
    Client(client, peer): Client,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (access, site) = state.authorize(&ticket, &client, peer)?;
    state.inner.records.seen(&ticket, &site);
    let view = access.views.borrow().clone();
    let p = state.served(&ticket, &view)?;
    let mut response = if none_match(&headers, &p.etag) {
        tracing::debug!(ticket, client = %client, etag = %p.etag, "not modified");
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        tracing::debug!(ticket, client = %client, version = %p.version, "serving scope");
        let mut r = Body::from(p.document.clone()).into_response();
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(SCOPE_CONTENT_TYPE));
        r
    };
    response.headers_mut().extend(version_headers(&state, &p));
    Ok(response)
}

async fn get_stream(
    State(state): State<AppState>,
    Path(ticket): Path<String>,
    Client(client, peer): Client,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (access, site) = state.authorize(&ticket, &client, peer)?;
    state.inner.records.seen(&ticket, &site);
    let mut views = access.views.clone();
    let first = views.borrow_and_update().clone();
    state.served(&ticket, &first)?;
    let Ok(slot) = state.inner.streams.take((client.to_string(), ticket.clone())) else {
        state.inner.metrics.error("too_many_streams");
        let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        tracing::warn!(ticket, client = %client, %peer, max = state.inner.max_streams, "stream refused: the client has the most streams allowed open");
        return Err(ApiError::TooManyStreams {
            ticket,
            client: client.to_string(),
            max: state.inner.max_streams,
        });
    };
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    tracing::info!(ticket, client = %client, resume_from = ?last, "stream opened");
    let every = state.inner.keep_alive;
    let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = StreamState {
        _guard: state.inner.metrics.stream_opened(&ticket),
        _seen: state.inner.records.stream_opened(&ticket, &site),
        _slot: slot,
        ticket,
        client: client.to_string(),
        views,
        last,
        shutdown: state.inner.shutdown.clone(),
        keep_alive,
    };
    let body = Body::from_stream(futures_util::stream::unfold(stream, next_frame));
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(HeaderName::from_static(HEADER_SITE), state.inner.site_header.clone());
    h.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    Ok(response)
}

/// One open event stream.
struct StreamState {
    ticket: String,
    client: String,
    views: watch::Receiver<TicketView>,
    /// Entity tag of the last version sent (or announced by `Last-Event-ID`).
    last: Option<String>,
    shutdown: CancellationToken,
    keep_alive: tokio::time::Interval,
    /// Counts the stream in `open_streams` while it lives.
    _guard: GaugeGuard,
    /// Holds one of the client's stream slots while it lives.
    _slot: Slot<(String, String)>,
    /// Counts the site as connected in the fleet view while it lives.
    _seen: StreamSeen,
}

/// The next frame of a stream: a new version, a keep-alive comment, or the
/// end (ticket no longer served here, or shutdown).
async fn next_frame(mut st: StreamState) -> Option<(Result<Bytes, Infallible>, StreamState)> {
    loop {
        let view = st.views.borrow_and_update().clone();
        match view {
            TicketView::Granted(p) => {
                if st.last.as_deref() != Some(p.etag.as_str()) {
                    st.last = Some(p.etag.clone());
                    tracing::debug!(ticket = %st.ticket, client = %st.client, version = %p.version, "stream: sending version");
                    return Some((Ok(p.frame.clone()), st));
                }
            }
            TicketView::NotGranted { .. } | TicketView::Failed(_) | TicketView::Unavailable(_) => {
                tracing::info!(ticket = %st.ticket, client = %st.client, "stream ended: the ticket is no longer served here");
                return None;
            }
        }
        tokio::select! {
            () = st.shutdown.cancelled() => {
                tracing::debug!(ticket = %st.ticket, client = %st.client, "stream ended: shutting down");
                return None;
            }
            changed = st.views.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            _ = st.keep_alive.tick() => {
                return Some((Ok(Bytes::from_static(KEEP_ALIVE_COMMENT)), st));
            }
        }
    }
}

/// [`run_with_limits`] with the default [`Limits`].
///
/// # Errors
///
/// As [`run_with_limits`].
pub async fn run(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    grace: Duration,
) -> Result<(), Error> {
    run_with_limits(listener, tls, app, metrics, Limits::default(), shutdown, grace).await
}

/// Serves `app` on `listener` with mutual TLS until `shutdown` is
/// cancelled, then gives open connections `grace` to finish. `limits`
/// caps the connections and bounds the handshake and idle times (the
/// stream cap is the router's: [`AppState::with_max_streams_per_client`]).
///
/// # Errors
///
/// None today (accept errors are logged and retried); the `Result` keeps
/// room for fatal listener errors.
pub async fn run_with_limits(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    metrics: Arc<Metrics>,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) -> Result<(), Error> {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Slots::new(limits.max_connections, limits.max_connections_per_peer);
    let mut refusals = RefusalLog::default();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => match slots.take(peer_key(peer.ip())) {
                    Ok(slot) => {
                        let held = Held {
                            _slot: slot,
                            _gauge: metrics.connection_opened(),
                        };
                        conns.spawn(serve_connection(tcp, peer, held, acceptor.clone(), app.clone(), Arc::clone(&metrics), limits, shutdown.clone()));
                    }
                    Err(full) => {
                        // Closed at once: no task, no handshake, no buffer.
                        drop(tcp);
                        refusals.refused(full, peer, &limits, &metrics);
                    }
                },
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(done) = conns.join_next(), if !conns.is_empty() => log_join(done),
        }
    }
    drop(listener);
    tracing::info!(open = conns.len(), grace_ms = grace.as_millis(), "shutting down: no longer accepting");
    let drained = tokio::time::timeout(grace, async {
        while let Some(done) = conns.join_next().await {
            log_join(done);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(open = conns.len(), "grace period over: closing the remaining connections");
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    Ok(())
}

/// The key a peer's connections are counted under for
/// `max_connections_per_peer`: its IPv4 address (an IPv4-mapped IPv6
/// address counts as the IPv4 one), or the /64 prefix of its IPv6 address
/// (one host commonly holds a whole /64).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// What an accepted connection holds while it lives: its slot under the
/// connection caps and its count in `open_connections`.
struct Held {
    _slot: Slot<IpAddr>,
    _gauge: GaugeGuard,
}

/// Counts refused connections and logs them at most once per
/// [`REFUSAL_LOG_INTERVAL`]: a flood must not flood the log as well.
#[derive(Default)]
struct RefusalLog {
    last_logged: Option<Instant>,
    since_logged: u64,
}

impl RefusalLog {
    fn refused(&mut self, full: Full, peer: SocketAddr, limits: &Limits, metrics: &Metrics) {
        let (reason, cap) = match full {
            Full::Total => ("max_connections", limits.max_connections),
            Full::Key => ("max_connections_per_peer", limits.max_connections_per_peer),
        };
        metrics.connection_refused(reason);
        self.since_logged += 1;
        if self.last_logged.is_some_and(|t| t.elapsed() < REFUSAL_LOG_INTERVAL) {
            tracing::debug!(%peer, reason, "connection refused");
            return;
        }
        tracing::warn!(
            %peer,
            reason,
            cap,
            refused = self.since_logged,
            "connection refused: too many connections (refusals are counted in cib_publisher_connections_refused_total, logged at most every 10 s)"
        );
        self.last_logged = Some(Instant::now());
        self.since_logged = 0;
    }
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "a connection task panicked");
        }
    }
}

#[allow(clippy::too_many_arguments)] // one call site, in `run_with_limits`
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    _held: Held,
    acceptor: TlsAcceptor,
    app: Router,
    metrics: Arc<Metrics>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let tls = tokio::select! {
        () = shutdown.cancelled() => return,
        r = tokio::time::timeout(limits.handshake_timeout(), acceptor.accept(tcp)) => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                metrics.error("tls_handshake");
                match TlsFailure::find(&e) {
                    Some(reason) => tracing::warn!(%peer, %reason, error = %e, "TLS handshake refused"),
                    // Closed or reset before TLS said anything (a port
                    // probe, a TCP health check, a flooder letting go):
                    // nothing for the operator to fix, and anyone can make
                    // as many as they like.
                    None => tracing::debug!(%peer, error = %e, "connection closed during the TLS handshake"),
                }
                return;
            }
            Err(_) => {
                // Counted, logged at debug only: a flood of half-open
                // connections must not flood the log.
                metrics.connection_timed_out("handshake");
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
    };
    let identity = match ClientIdentity::from_peer_certificates(tls.get_ref().1.peer_certificates()) {
        Ok(id) => id,
        Err(e) => {
            metrics.error("client_identity");
            tracing::warn!(%peer, error = %e, "client certificate accepted by TLS but carries no usable name");
            return;
        }
    };
    tracing::debug!(%peer, client = %identity, "connection");
    let (activity, mut busy) = Activity::new();
    let client = identity.to_string();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let working = activity.begin();
        req.extensions_mut().insert(identity.clone());
        req.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let response = app.oneshot(req.map(Body::new)).await?;
            Ok::<_, Infallible>(response.map(|body| Tracked { body, _working: working }))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_AFTER)
        .keep_alive_timeout(H2_PING_AFTER)
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX));
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let idle_timeout = limits.idle_timeout();
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        () = idle_for(&mut busy, idle_timeout) => {
            metrics.connection_timed_out("idle");
            tracing::debug!(%peer, client, idle_s = idle_timeout.as_secs(), "closing an idle connection");
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(IDLE_CLOSE_GRACE, conn).await {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// The requests in flight and response bodies not yet finished of one
/// connection: a count in a `watch` channel, so the connection's task
/// learns when it drops to zero.
struct Activity(Arc<watch::Sender<usize>>);

impl Activity {
    fn new() -> (Activity, watch::Receiver<usize>) {
        let (tx, rx) = watch::channel(0);
        (Activity(Arc::new(tx)), rx)
    }

    /// Counts one request from now until its response body is finished or
    /// dropped (the returned guard travels with the body).
    fn begin(&self) -> Working {
        self.0.send_modify(|n| *n += 1);
        Working(Arc::clone(&self.0))
    }
}

/// One request or response of an [`Activity`], counted until dropped.
struct Working(Arc<watch::Sender<usize>>);

impl Drop for Working {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Returns once the count has stayed at zero for `timeout`; every change
/// of the count starts the wait again.
async fn idle_for(busy: &mut watch::Receiver<usize>, timeout: Duration) {
    loop {
        let idle = *busy.borrow_and_update() == 0;
        let changed = async {
            if busy.changed().await.is_err() {
                // The connection is gone; its task returns through `conn`.
                std::future::pending::<()>().await;
            }
        };
        if idle {
            tokio::select! {
                () = tokio::time::sleep(timeout) => return,
                () = changed => {}
            }
        } else {
            changed.await;
        }
    }
}

/// A response body that keeps its request counted in the connection's
/// [`Activity`] until it is finished or dropped.
struct Tracked {
    body: Body,
    _working: Working,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request as HttpRequest;

    use super::*;
    use crate::publication::Channels;

    fn state(channels: &Channels) -> AppState {
        let mut tickets = BTreeMap::new();
        tickets.insert(
            "geo".to_owned(),
            TicketAccess {
                allow: vec!["site-b.example".into()],
                views: channels.subscribe("geo").unwrap(),
            },
        );
        AppState::new("site-a", tickets, Arc::new(Metrics::new()), CancellationToken::new()).unwrap()
    }

    fn granted(channels: &Channels, metrics: &Metrics) -> Arc<Published> {
        let p = Arc::new(
            Published::new("geo", "<configuration/>\n".into(), "sha256:aa".into(), "0.3.1".into(), Some(9)).unwrap(),
        );
        channels.publish("geo", TicketView::Granted(Arc::clone(&p)), metrics);
        p
    }

    async fn call(app: Router, req: HttpRequest<Body>) -> (StatusCode, HeaderMap, String) {
        let r = app.oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn get(path: &str, who: Option<&str>) -> HttpRequest<Body> {
        let mut req = HttpRequest::get(path).body(Body::empty()).unwrap();
        if let Some(who) = who {
            req.extensions_mut().insert(ClientIdentity::from_names([who]));
        }
        req
    }

    #[test]
    fn peers_are_counted_by_ipv4_address_or_ipv6_slash_64() {
        let key = |s: &str| peer_key(s.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::1"), "::");
    }

    #[tokio::test]
    async fn statuses_in_order_404_403_503_200() {
        let ch = Channels::new(["geo"]);
        let st = state(&ch);
        let m = Arc::clone(st.metrics());
        let app = app(st);
        assert_eq!(call(app.clone(), get("/v1/tickets/nope/scope", Some("site-b.example"))).await.0, StatusCode::NOT_FOUND);
        assert_eq!(call(app.clone(), get("/v1/tickets/geo/scope", Some("site-c.example"))).await.0, StatusCode::FORBIDDEN);
        assert_eq!(call(app.clone(), get("/v1/tickets/geo/scope", None)).await.0, StatusCode::FORBIDDEN);
        let (s, _, body) = call(app.clone(), get("/v1/tickets/geo/scope", Some("site-b.example"))).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        ch.publish("geo", TicketView::NotGranted { standby: false }, &m);
        let (s, _, body) = call(app.clone(), get("/v1/tickets/geo/scope", Some("SITE-B.example"))).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("not granted at site site-a"), "{body}");
        let p = granted(&ch, &m);
        let (s, h, body) = call(app.clone(), get("/v1/tickets/geo/scope", Some("site-b.example"))).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body, "<configuration/>\n");
        assert_eq!(h[ETAG], format!("\"{}\"", p.etag).as_str());
        assert_eq!(h[HEADER_TERM], "9");
        assert_eq!(h[HEADER_SITE], "site-a");
        assert!(m.encode().contains(r#"errors_total{kind="forbidden"} 1"#));
    }

    #[tokio::test]
    async fn a_reloaded_allow_list_judges_the_next_requests() {
        let ch = Channels::new(["geo"]);
        let st = state(&ch);
        granted(&ch, st.metrics());
        let app = app(st.clone());
        let status = |who: &'static str| {
            let app = app.clone();
            async move { call(app, get("/v1/tickets/geo/scope", Some(who))).await.0 }
        };
        assert_eq!(status("site-c.example").await, StatusCode::FORBIDDEN);
        assert!(st.set_allow("geo", vec!["site-c.example".into()]));
        assert_eq!(status("site-c.example").await, StatusCode::OK);
        assert_eq!(status("site-b.example").await, StatusCode::FORBIDDEN);
        assert!(!st.set_allow("other", vec!["site-b.example".into()]));
    }

    #[tokio::test]
    async fn conditional_get() {
        let ch = Channels::new(["geo"]);
        let st = state(&ch);
        let p = granted(&ch, st.metrics());
        let app = app(st);
        for (inm, expect) in [
            (format!("\"{}\"", p.etag), StatusCode::NOT_MODIFIED),
            (format!("W/\"{}\", \"x\"", p.etag), StatusCode::NOT_MODIFIED),
            ("*".to_owned(), StatusCode::NOT_MODIFIED),
            ("\"sha256:aa\"".to_owned(), StatusCode::OK),
            (p.etag.clone(), StatusCode::OK),
        ] {
            let mut req = get("/v1/tickets/geo/scope", Some("site-b.example"));
            req.headers_mut().insert(IF_NONE_MATCH, HeaderValue::from_str(&inm).unwrap());
            let (s, h, body) = call(app.clone(), req).await;
            assert_eq!(s, expect, "If-None-Match: {inm}");
            assert_eq!(h[ETAG], format!("\"{}\"", p.etag).as_str());
            if s == StatusCode::NOT_MODIFIED {
                assert!(body.is_empty());
            }
        }
    }

    #[tokio::test]
    async fn bodies_are_refused() {
        let ch = Channels::new(["geo"]);
        let st = state(&ch);
        granted(&ch, st.metrics());
        let app = app(st);
        let mut req = HttpRequest::get("/v1/tickets/geo/scope").body(Body::from("hello")).unwrap();
        req.extensions_mut().insert(ClientIdentity::from_names(["site-b.example"]));
        assert_eq!(call(app.clone(), req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
        let mut req = HttpRequest::get("/healthz").header(CONTENT_LENGTH, "5").body(Body::empty()).unwrap();
        req.extensions_mut().insert(ClientIdentity::from_names(["x"]));
        assert_eq!(call(app.clone(), req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
        let post = HttpRequest::post("/v1/tickets/geo/scope").body(Body::empty()).unwrap();
        assert_eq!(call(app.clone(), post).await.0, StatusCode::METHOD_NOT_ALLOWED);
        let (s, _, body) = call(app, get("/healthz", Some("x"))).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "ok\n"));
    }

    fn ack(ticket: &str, who: &str, body: Vec<u8>) -> HttpRequest<Body> {
        // No Content-Length: the limit is found while reading.
        let mut req = HttpRequest::post(format!("/v1/tickets/{ticket}/ack"))
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        req.extensions_mut().insert(ClientIdentity::from_names([who]));
        req
    }

    #[tokio::test]
    async fn acknowledgements_are_bounded_checked_and_recorded() {
        let ch = Channels::new(["geo"]);
        let st = state(&ch);
        let p = granted(&ch, st.metrics());
        let app = app(st.clone());
        let good = Ack {
            digest: Some(p.digest.clone()),
            version: Some(p.version.clone()),
            term: p.term,
            ..Ack::default()
        }
        .to_json()
        .into_bytes();
        assert_eq!(call(app.clone(), ack("nope", "site-b.example", good.clone())).await.0, StatusCode::NOT_FOUND);
        assert_eq!(call(app.clone(), ack("geo", "site-c.example", good.clone())).await.0, StatusCode::FORBIDDEN);
        let (s, _, body) = call(app.clone(), ack("geo", "site-b.example", vec![b' '; MAX_ACK_BYTES + 1])).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        let (s, _, body) = call(app.clone(), ack("geo", "site-b.example", b"{\"digest\":1}".to_vec())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        let report = st.fleet_report();
        assert!(report.tickets[0].sites.iter().all(|s| s.acked_at.is_none()), "{report:?}");
        assert_eq!(call(app.clone(), ack("geo", "SITE-B.example", good)).await.0, StatusCode::NO_CONTENT);
        let report = st.fleet_report();
        let b = &report.tickets[0].sites[0];
        assert_eq!((b.site.as_str(), b.in_step), ("site-b.example", true), "{report:?}");
        assert_eq!(report.tickets[0].sites.len(), 1, "site C was refused: {report:?}");
        let text = st.encode_metrics();
        assert!(text.contains(r#"cib_publisher_site_in_step{ticket="geo",site="site-b.example"} 1"#), "{text}");
        assert!(text.contains(r#"cib_publisher_errors_total{kind="ack"} 2"#), "{text}");
    }

    #[tokio::test]
    async fn stream_skips_the_announced_version_and_ends_on_revoke() {
        let ch = Channels::new(["geo"]);
        let st = state(&ch).with_keep_alive(Duration::from_millis(50));
        let m = Arc::clone(st.metrics());
        let p = granted(&ch, &m);
        let app = app(st);
        let mut req = get("/v1/tickets/geo/stream", Some("site-b.example"));
        req.headers_mut().insert("last-event-id", HeaderValue::from_str(&p.etag).unwrap());
        let r = app.oneshot(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/event-stream");
        let mut body = r.into_body().into_data_stream();
        use futures_util::StreamExt as _;
        // Already has p: first comes a keep-alive, not p again.
        let first = body.next().await.unwrap().unwrap();
        assert_eq!(&first[..], KEEP_ALIVE_COMMENT);
        assert!(m.encode().contains(r#"open_streams{ticket="geo"} 1"#));
        let q = Arc::new(Published::new("geo", "<configuration>\n</configuration>\n".into(), "sha256:bb".into(), "0.4.0".into(), Some(9)).unwrap());
        ch.publish("geo", TicketView::Granted(Arc::clone(&q)), &m);
        let mut got = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            if &chunk[..] == KEEP_ALIVE_COMMENT {
                if !got.is_empty() {
                    ch.publish("geo", TicketView::NotGranted { standby: false }, &m);
                }
                continue;
            }
            got.push(chunk);
        }
        assert_eq!(got, vec![q.frame.clone()]);
        assert!(m.encode().contains(r#"open_streams{ticket="geo"} 0"#));
    }
}
