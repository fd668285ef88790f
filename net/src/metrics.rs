//! What both daemons' metrics share: the plain-HTTP listener (`/metrics`
//! on `metrics_listen`, loopback by default, no client certificate) and
//! the gauge of the days left to the site's certificate and the CA.
//!
//! The listener answers `GET /metrics`, plus the routes a daemon adds
//! ([`serve_with`]); anything else is a 404. It
//! serves what `encode` returns at each scrape, so values computed from
//! files (state, certificates) are as fresh as the scrape.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::header::CONTENT_TYPE as CONTENT_TYPE_HEADER;
use axum::response::IntoResponse as _;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::tls::{load_certs, TlsPaths};

/// Content type of the exposition (OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Parses a `metrics_listen` value: `IP:PORT`, or `off` (`None`).
///
/// # Errors
///
/// A message saying what is expected.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text == "off" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| "use IP:PORT (e.g. 127.0.0.1:9465), or \"off\"".to_string())
}

/// Binds `addr` for [`serve`]. A daemon that cannot bind it logs why and
/// runs on without metrics (replication matters more than its metrics):
/// `None` then.
pub async fn bind(addr: SocketAddr) -> Option<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "cannot listen for metrics (metrics_listen): running without");
            None
        }
    }
}

/// Serves `GET /metrics` (plain HTTP/1.1, `encode()` at each request) on
/// `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, encode: Arc<dyn Fn() -> String + Send + Sync>, shutdown: CancellationToken) {
    serve_with(listener, encode, Router::new(), shutdown).await;
}

/// As [`serve`], also serving the routes of `extra` (the publisher's fleet
/// view: `/status`, `/status.json`), under the same access rules: plain
/// HTTP, no client certificate, wherever `metrics_listen` is bound.
pub async fn serve_with(
    listener: TcpListener,
    encode: Arc<dyn Fn() -> String + Send + Sync>,
    extra: Router,
    shutdown: CancellationToken,
) {
    let at = listener.local_addr().map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let app = extra.route(
        "/metrics",
        get(move || {
            let encode = Arc::clone(&encode);
            async move {
                // Scraping reads files (state, certificates): off the runtime.
                let body = tokio::task::spawn_blocking(move || encode()).await.unwrap_or_default();
                ([(CONTENT_TYPE_HEADER, CONTENT_TYPE)], body).into_response()
            }
        }),
    );
    tracing::info!(metrics_at = %at, "serving metrics at /metrics (plain HTTP)");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::warn!(error = %e, "the metrics listener stopped");
    }
}

/// Label `{certificate}` of the expiry gauge: `local` or `ca`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabel {
    /// `local` (this site's certificate) or `ca`.
    pub certificate: &'static str,
}

/// `certificate_expiry_seconds{certificate="local"|"ca"}`: seconds until
/// the first certificate of `tls.cert` and of `tls.ca` expire (negative
/// once expired), read from the files at each [`CertificateExpiry::refresh`]
/// (so a rotated certificate shows at once). A file that cannot be read
/// has no series.
#[derive(Debug)]
pub struct CertificateExpiry {
    gauge: Family<CertificateLabel, Gauge<f64, AtomicU64>>,
    paths: RwLock<TlsPaths>,
}

impl CertificateExpiry {
    /// Registers the gauge in `registry` for the files of `paths`.
    pub fn register(registry: &mut Registry, paths: TlsPaths) -> Arc<CertificateExpiry> {
        let gauge = Family::<CertificateLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "certificate_expiry_seconds",
            "Seconds until the certificate expires: this site's (local) and the CA's (ca)",
            gauge.clone(),
        );
        Arc::new(CertificateExpiry {
            gauge,
            paths: RwLock::new(paths),
        })
    }

    /// Follows the files of a reloaded configuration.
    pub fn set_paths(&self, paths: TlsPaths) {
        *self.paths.write().unwrap_or_else(std::sync::PoisonError::into_inner) = paths;
    }

    /// Reads both files again and sets the gauge.
    pub fn refresh(&self) {
        let paths = self.paths.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for (certificate, path, what) in [("local", &paths.cert, "certificate"), ("ca", &paths.ca, "CA certificate")] {
            let label = CertificateLabel { certificate };
            match seconds_until_expiry(path, what) {
                Ok(s) => {
                    self.gauge.get_or_create(&label).set(s);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "certificate expiry unknown");
                    self.gauge.remove(&label);
                }
            }
        }
    }
}

/// Seconds from now until the first certificate of the PEM file at `path`
/// expires (negative when it has).
///
/// # Errors
///
/// The file cannot be read or parsed.
pub fn seconds_until_expiry(path: &Path, what: &'static str) -> crate::Result<f64> {
    let certs = load_certs(path, what)?;
    let (_, cert) = X509Certificate::from_der(certs[0].as_ref())
        .map_err(|e| crate::Error::Certificate(format!("{}: {e}", path.display())))?;
    let not_after = cert.validity().not_after.timestamp();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    #[allow(clippy::cast_precision_loss)] // seconds of a validity period fit f64
    Ok(not_after as f64 - now as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_values() {
        assert_eq!(parse_listen("off").unwrap(), None);
        assert_eq!(parse_listen("127.0.0.1:9465").unwrap(), Some("127.0.0.1:9465".parse().unwrap()));
        assert!(parse_listen("localhost:1").is_err());
    }

    #[test]
    fn expiry_of_test_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::test_pki::Pki::new();
        let paths = pki.write_site(dir.path(), "site-a.example");
        let s = seconds_until_expiry(&paths.cert, "certificate").unwrap();
        assert!(s > 0.0, "{s}");
        let mut registry = Registry::default();
        let expiry = CertificateExpiry::register(&mut registry, paths);
        expiry.refresh();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(out.contains("certificate_expiry_seconds{certificate=\"local\"}"), "{out}");
        assert!(out.contains("certificate_expiry_seconds{certificate=\"ca\"}"), "{out}");
    }
}
