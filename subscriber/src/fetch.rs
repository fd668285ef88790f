//! Fetching a published scope from a publisher over HTTPS with mutual TLS
//! (`--from https://…`).
//!
//! The commands of the CLI are synchronous, so [`load_scope_url`] builds a
//! small current-thread tokio runtime for the one request and drops it
//! afterwards; the request itself is the async [`fetch`], which a daemon can
//! call on its own runtime with a long-lived [`client`].
//!
//! What is refused, each with a clear error and before anything is planned
//! or applied: plaintext `http://`, redirects, a response other than 200
//! (the publisher's explanation is quoted, bounded), a content type other
//! than XML, a body over [`MAX_DOCUMENT_BYTES`], a document whose digest does
//! not match its content, or whose digest differs from the `X-Cib-Digest`
//! header (altered or truncated in transit).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use reqwest::header::CONTENT_TYPE;
use reqwest::{StatusCode, Url};

use cib_net::protocol::{scope_path, HEADER_DIGEST, HEADER_SITE, HEADER_VERSION, MAX_DOCUMENT_BYTES};
use cib_net::tls::{Probe, Prober, TlsFailure, TlsPaths};
use cib_transforms::scope::Scope;
use cib_transforms::xml;

/// Longest a connection may take to establish (TCP + TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a whole fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of an error response's body is quoted in the error.
const ERROR_BODY_LIMIT: usize = 1024;

/// Where a published scope comes from: `--from FILE` or `--from https://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file holding a document written by `cib-publisher scope`.
    File(PathBuf),
    /// A publisher: the scope URL, or the publisher's base URL (the scope
    /// path of `--ticket` is appended).
    Url(Url),
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Source, String> {
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("https://") {
            let url = Url::parse(s).map_err(|e| format!("`{s}` is not a valid URL: {e}"))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("`{s}` names no host"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err("credentials in the URL are not supported: sites authenticate with certificates".into());
            }
            return Ok(Source::Url(url));
        }
        if lower.starts_with("http://") {
            return Err("plaintext http:// is not supported: publishers serve https:// with mutual TLS only".into());
        }
        Ok(Source::File(PathBuf::from(s)))
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Url(u) => write!(f, "{u}"),
        }
    }
}

/// This site's TLS files, needed when `--from` is a URL.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// This site's certificate (PEM), presented to the publisher; needed
    /// with --from https://.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The multi-site CA certificate (PEM); the publisher's certificate must
    /// be issued by it (the system's trust store is not used).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The three files, or an error naming the missing flags.
    pub fn paths(&self) -> anyhow::Result<TlsPaths> {
        match (&self.cert, &self.key, &self.ca) {
            (Some(cert), Some(key), Some(ca)) => Ok(TlsPaths {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            }),
            _ => {
                let missing: Vec<&str> = [("--cert", &self.cert), ("--key", &self.key), ("--ca", &self.ca)]
                    .into_iter()
                    .filter(|(_, v)| v.is_none())
                    .map(|(n, _)| n)
                    .collect();
                bail!(
                    "--from https://… needs {} (this site's certificate and key, and the multi-site CA)",
                    missing.join(", ")
                )
            }
        }
    }
}

/// A document as received, with what the publisher said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The document text.
    pub document: String,
    /// `X-Site`: the publishing site.
    pub site: Option<String>,
    /// `X-Cib-Version`.
    pub version: Option<String>,
    /// `X-Cib-Digest`.
    pub digest: Option<String>,
}

/// The URL of the scope document: `url` itself when it has a path, else
/// `url` + the scope path of `ticket`.
pub fn scope_url(url: &Url, ticket: Option<&str>) -> anyhow::Result<Url> {
    if !matches!(url.path(), "" | "/") {
        return Ok(url.clone());
    }
    let Some(ticket) = ticket else {
        bail!("{url} names no document: give the scope URL (…/v1/tickets/TICKET/scope)");
    };
    if !cib_net::protocol::is_valid_ticket(ticket) {
        bail!("ticket `{ticket}` cannot be fetched by URL (letters, digits, `.`, `_`, `-` only)");
    }
    let mut out = url.clone();
    out.set_path(&scope_path(ticket));
    Ok(out)
}

/// An HTTPS client presenting this site's certificate and trusting only the
/// multi-site CA. HTTPS only, no redirects, no proxies.
pub fn client(tls: &TlsPaths) -> anyhow::Result<reqwest::Client> {
    let config = cib_net::tls::client_config(tls)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .build()
        .context("building the HTTPS client")
}

/// An HTTPS client for event streams: as [`client`], but without a bound on
/// the whole request (a stream lasts as long as the publisher serves the
/// ticket; the follower bounds the wait for each chunk instead) and with TCP
/// keep-alive.
pub fn stream_client(tls: &TlsPaths) -> anyhow::Result<reqwest::Client> {
    let config = cib_net::tls::client_config(tls)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(Duration::from_secs(30))
        .build()
        .context("building the HTTPS client")
}

/// GETs a scope document, bounded by [`MAX_DOCUMENT_BYTES`]. When the
/// request fails after the connection was made without a reason, `prober`
/// (when given) asks the publisher for its verdict on this site's
/// certificate, so that the error says which side refused and why.
pub async fn fetch(client: &reqwest::Client, prober: Option<&Prober>, url: &Url) -> anyhow::Result<Fetched> {
    fetch_limited(client, prober, url, MAX_DOCUMENT_BYTES).await
}

async fn fetch_limited(client: &reqwest::Client, prober: Option<&Prober>, url: &Url, limit: usize) -> anyhow::Result<Fetched> {
    let mut response = match client.get(url.clone()).send().await {
        Ok(response) => response,
        Err(e) => {
            let e = e.without_url();
            let mut tls = TlsFailure::find(&e);
            if let (None, Some(prober)) = (&tls, prober) {
                if !e.is_connect() && !e.is_timeout() {
                    tls = diagnose(url, prober).await;
                }
            }
            return Err(match tls {
                Some(tls) => anyhow::anyhow!("{}", tls_refusal(url, &tls)),
                None => anyhow::anyhow!("fetching {url}: {}", error_chain(&e)),
            });
        }
    };
    if response.status() != StatusCode::OK {
        return Err(refusal(url, &mut response).await);
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(CONTENT_TYPE.as_str()).unwrap_or_default();
    if !content_type.starts_with("application/xml") && !content_type.starts_with("text/xml") {
        bail!("{url}: expected an XML document, got content type `{content_type}`");
    }
    let (site, version, digest) = (header(HEADER_SITE), header(HEADER_VERSION), header(HEADER_DIGEST));
    if response.content_length().is_some_and(|n| n > limit as u64) {
        bail!("{url}: the document is larger than the limit of {limit} bytes");
    }
    let body = read_limited(&mut response, limit + 1)
        .await
        .with_context(|| format!("reading {url}"))?;
    if body.len() > limit {
        bail!("{url}: the document is larger than the limit of {limit} bytes");
    }
    let document = String::from_utf8(body).map_err(|_| anyhow::anyhow!("{url}: the document is not UTF-8"))?;
    Ok(Fetched {
        document,
        site,
        version,
        digest,
    })
}

/// The error for a response other than 200: its status and the start of the
/// publisher's explanation (bounded, control characters blanked).
pub async fn refusal(url: &Url, response: &mut reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body = read_limited(response, ERROR_BODY_LIMIT).await.unwrap_or_default();
    let text: String = String::from_utf8_lossy(&body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    anyhow::anyhow!("{url}: the publisher answered {status}: {}", text.trim())
}

/// Says which side refused a TLS handshake with the publisher at `url`, and
/// why: "this site refused the publisher's certificate: …" (not issued by
/// the configured CA, expired, not naming the host) or "the publisher
/// refused this site's certificate: …" (the alert it sent).
#[must_use]
pub fn tls_refusal(url: &Url, tls: &TlsFailure) -> String {
    let side = match tls {
        TlsFailure::RefusedByPeer(_) => "the publisher refused this site's certificate",
        TlsFailure::Other(_) => "the TLS handshake failed",
        _ => "this site refused the publisher's certificate",
    };
    format!("{url}: {side}: {tls}")
}

/// The server's verdict on this site's certificate, when a request to `url`
/// failed after connecting without a TLS reason: the refusal, if it was one.
/// (A TLS 1.3 server refuses a client certificate after the client's side
/// of the handshake is done; the HTTP client then often reports only a
/// closed connection.)
pub async fn diagnose(url: &Url, prober: &Prober) -> Option<TlsFailure> {
    let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']');
    let probe = prober.probe(host, url.port_or_known_default()?).await;
    tracing::debug!(peer = %url, ?probe, "asked the server for its verdict on this site's certificate");
    match probe {
        Probe::Refused(tls) => Some(tls),
        Probe::Accepted | Probe::Inconclusive(_) => None,
    }
}

/// Reads at most `limit` bytes of the body (stops early, no error).
async fn read_limited(response: &mut reqwest::Response, limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow::anyhow!("{}", error_chain(&e.without_url())))?
    {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// reqwest's errors keep the cause (TLS alert, refused connection) in their
/// source chain; name it.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

/// Parses and verifies a fetched document: hardened parser, ticket, digest
/// of the content, and agreement with the `X-Cib-Digest` header.
pub fn verify(fetched: &Fetched, url: &Url, ticket: Option<&str>) -> anyhow::Result<Scope> {
    let doc = xml::parse(&fetched.document).with_context(|| format!("parsing the document from {url}"))?;
    let scope = Scope::from_published(doc, ticket).with_context(|| format!("reading the scope from {url}"))?;
    if let Some(header) = &fetched.digest {
        if *header != scope.digest {
            bail!(
                "{url}: the document's digest {} differs from the {HEADER_DIGEST} header {header}: altered in transit?",
                scope.digest
            );
        }
    }
    Ok(scope)
}

/// Fetches, verifies and returns the scope at `url` (blocking: runs the
/// request on a current-thread runtime of its own).
pub fn load_scope_url(url: &Url, ticket: Option<&str>, tls: &TlsArgs) -> anyhow::Result<Scope> {
    let paths = tls.paths()?;
    let url = scope_url(url, ticket)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let fetched = runtime.block_on(async {
        let client = client(&paths)?;
        let prober = Prober::new(&paths, CONNECT_TIMEOUT)?;
        fetch(&client, Some(&prober), &url).await
    })?;
    if let Some(site) = &fetched.site {
        eprintln!(
            "cib-subscriber: fetched {url} from site {site} (CIB version {})",
            fetched.version.as_deref().unwrap_or("unknown")
        );
    }
    verify(&fetched, &url, ticket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!("geo.xml".parse::<Source>(), Ok(Source::File("geo.xml".into())));
        assert_eq!(
            "https://site-a:9443/v1/tickets/geo/scope".parse::<Source>(),
            Ok(Source::Url(Url::parse("https://site-a:9443/v1/tickets/geo/scope").unwrap()))
        );
        assert!("HTTPS://site-a:9443".parse::<Source>().is_ok());
        assert!("http://site-a:9443/".parse::<Source>().unwrap_err().contains("plaintext"));
        assert!("https://user:pw@site-a/".parse::<Source>().unwrap_err().contains("credentials"));
        assert!("https://".parse::<Source>().is_err());
    }

    #[test]
    fn scope_urls() {
        let base = Url::parse("https://site-a:9443").unwrap();
        assert_eq!(scope_url(&base, Some("geo")).unwrap().as_str(), "https://site-a:9443/v1/tickets/geo/scope");
        assert!(scope_url(&base, None).is_err());
        assert!(scope_url(&base, Some("../x")).is_err());
        let full = Url::parse("https://site-a:9443/custom/path").unwrap();
        assert_eq!(scope_url(&full, Some("geo")).unwrap(), full);
    }

    /// A publisher serving `document` for ticket `geo`; returns its base
    /// URL, the client's TLS files, and the guards.
    async fn serve(document: &str) -> (Url, TlsPaths, tempfile::TempDir, tokio_util::sync::CancellationToken) {
        use std::sync::Arc;

        use cib_publisher::metrics::Metrics;
        use cib_publisher::publication::{Channels, Published, TicketView};
        use cib_publisher::server::{app, run, AppState, TicketAccess};

        let dir = tempfile::tempdir().unwrap();
        let pki = cib_net::test_pki::Pki::new();
        let server = pki.write_site(dir.path(), "site-a.example");
        let client = pki.write_site(dir.path(), "site-b.example");
        let metrics = Arc::new(Metrics::new());
        let channels = Channels::new(["geo"]);
        let p = Published::new("geo", document.to_owned(), "sha256:00".into(), "0.1.0".into(), None).unwrap();
        channels.publish("geo", TicketView::Granted(Arc::new(p)), &metrics);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let tickets = [(
            "geo".to_owned(),
            TicketAccess {
                allow: vec!["site-b.example".into()],
                views: channels.subscribe("geo").unwrap(),
            },
        )]
        .into_iter()
        .collect();
        let state = AppState::new("site-a", tickets, Arc::clone(&metrics), shutdown.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("https://{}/v1/tickets/geo/scope", listener.local_addr().unwrap())).unwrap();
        let tls = cib_net::tls::server_config(&server).unwrap();
        tokio::spawn(run(listener, tls, app(state), metrics, shutdown.clone(), Duration::from_secs(1)));
        (url, client, dir, shutdown)
    }

    #[tokio::test]
    async fn documents_over_the_limit_are_refused() {
        let doc = format!("<configuration>{}</configuration>\n", "x".repeat(1000));
        let (url, tls, _dir, shutdown) = serve(&doc).await;
        let c = client(&tls).unwrap();
        let ok = fetch_limited(&c, None, &url, doc.len()).await.unwrap();
        assert_eq!(ok.document, doc);
        assert_eq!(ok.digest.as_deref(), Some("sha256:00"));
        assert_eq!(ok.site.as_deref(), Some("site-a"));
        let err = fetch_limited(&c, None, &url, doc.len() - 1).await.unwrap_err().to_string();
        assert!(err.contains("larger than the limit"), "{err}");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_digest_mismatch_is_reported() {
        let (url, tls, _dir, shutdown) = serve("<configuration replicator-ticket=\"geo\" replicator-digest=\"sha256:00\"/>\n").await;
        let fetched = fetch(&client(&tls).unwrap(), None, &url).await.unwrap();
        let err = format!("{:#}", verify(&fetched, &url, Some("geo")).unwrap_err());
        assert!(err.contains("digest"), "{err}");
        shutdown.cancel();
    }

    #[test]
    fn tls_flags_are_all_needed() {
        let err = TlsArgs {
            cert: Some("a.pem".into()),
            key: None,
            ca: None,
        }
        .paths()
        .unwrap_err()
        .to_string();
        assert!(err.contains("--key, --ca"), "{err}");
    }
}
