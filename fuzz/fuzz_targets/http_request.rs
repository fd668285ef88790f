//! The publisher's request handling: the router of `cib-publisher serve`
//! (`server::app`) on arbitrary requests, without TLS or sockets (hyper's
//! parsing of the wire is not ours; what reaches the router is).
//!
//! Input: one byte choosing the client identity (allowed, not allowed,
//! none), then `METHOD URI` on the first line, `name: value` headers one
//! per line, an empty line and a body. Two tickets are served: `geo`
//! (granted, with a publication) and `standby` (not granted). The router
//! never answers 500 and never panics; a ticket route answers 200 or 304
//! only to the allowed client.

#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use axum::Router;
use futures_util::StreamExt as _;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use cib_net::identity::ClientIdentity;
use cib_publisher::metrics::Metrics;
use cib_publisher::publication::{Published, TicketView};
use cib_publisher::server::{app, AppState, TicketAccess};

const ALLOWED: &str = "site-b.example";
const DOCUMENT: &str = "<configuration replicator-ticket=\"geo\" replicator-version=\"0.1.1\" replicator-term=\"7\" replicator-digest=\"sha256:00\">\n  <resources/>\n</configuration>\n";

struct Fixture {
    runtime: Runtime,
    router: Router,
    /// Keep the views' senders alive, so that streams stay open.
    _senders: Vec<watch::Sender<TicketView>>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Paused time: a stream waiting for its keep-alive gets it at once.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let published = Published::new("geo", DOCUMENT.to_owned(), "sha256:00".to_owned(), "0.1.1".to_owned(), Some(7)).expect("a publication");
        let (geo_tx, geo_rx) = watch::channel(TicketView::Granted(Arc::new(published)));
        let (standby_tx, standby_rx) = watch::channel(TicketView::NotGranted { standby: true });
        let mut tickets = BTreeMap::new();
        tickets.insert("geo".to_owned(), TicketAccess { allow: vec![ALLOWED.to_owned()], views: geo_rx });
        tickets.insert("standby".to_owned(), TicketAccess { allow: vec![ALLOWED.to_owned()], views: standby_rx });
        let state = AppState::new("site-a", tickets, Arc::new(Metrics::new()), CancellationToken::new()).expect("a state");
        Fixture {
            runtime,
            router: app(state),
            _senders: vec![geo_tx, standby_tx],
        }
    })
}

fn split_line(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    }
}

fuzz_target!(|data: &[u8]| {
    let [who, rest @ ..] = data else { return };
    let (request_line, mut rest) = split_line(rest);
    let Some(space) = request_line.iter().position(|&b| b == b' ') else { return };
    let Ok(method) = Method::from_bytes(&request_line[..space]) else { return };
    let Ok(uri) = Uri::try_from(&request_line[space + 1..]) else { return };
    let mut builder = Request::builder().method(method).uri(uri);
    let mut body: &[u8] = &[];
    while let Some(r) = rest {
        let (line, next) = split_line(r);
        rest = next;
        if line.is_empty() {
            body = next.unwrap_or(&[]);
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii())) else {
            continue;
        };
        builder = builder.header(name, value);
    }
    let identity = match who % 3 {
        0 => Some(ClientIdentity::from_names([ALLOWED])),
        1 => Some(ClientIdentity::from_names(["other.example"])),
        _ => None,
    };
    if let Some(id) = &identity {
        builder = builder.extension(id.clone());
    }
    let Ok(request) = builder.body(Body::from(body.to_vec())) else { return };
    let path = request.uri().path().to_owned();
    let fx = fixture();
    fx.runtime.block_on(async {
        let response = fx.router.clone().oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "500 for {path}");
        if path.starts_with("/v1/tickets/") && matches!(status, StatusCode::OK | StatusCode::NOT_MODIFIED) {
            assert!(identity.as_ref().is_some_and(|i| i.names() == [ALLOWED]), "{status} for {path} to {identity:?}");
        }
        // The first frame only: a stream goes on with keep-alives.
        let mut frames = response.into_body().into_data_stream();
        let _ = frames.next().await;
    });
});
