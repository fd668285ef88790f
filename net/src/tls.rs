//! Mutual-TLS configurations from PEM files.
//!
//! Both sides of a link use one certificate per site, issued by the
//! multi-site CA: the publisher presents it as a server certificate, the
//! subscriber as a client certificate. Site certificates therefore carry both
//! extended key usages, `serverAuth` and `clientAuth`
//! (`examples/make-certs.sh` makes such certificates).
//!
//! - [`server_config`] requires a client certificate that chains to the CA
//!   (rustls `WebPkiClientVerifier`: signature, validity period, key usage);
//!   there is no anonymous access and no plaintext listener.
//! - [`client_config`] presents the site certificate and trusts only the CA
//!   file: the system's trust store is never consulted, so a certificate from
//!   a public CA cannot impersonate a publisher.
//! - [`TlsFailure`] says, in words for the log, why a handshake failed:
//!   both daemons report refused handshakes with it.
//! - [`Prober`] learns whether a server accepts this end's certificate. In
//!   TLS 1.3 a server judges the client's certificate after the client has
//!   finished its handshake; the alert it sends then often reaches an HTTP
//!   client only as "connection closed". The prober waits for the server's
//!   verdict itself: an alert, or the session tickets a server sends once
//!   it has accepted the client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// ALPN protocols offered by both sides, HTTP/2 preferred.
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The PEM files of one site: its certificate chain, its private key and
/// the multi-site CA. This is the `[tls]` table of both daemons'
/// configuration files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    /// The site's certificate, followed by any intermediate CA certificates.
    pub cert: PathBuf,
    /// The site's private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// The CA certificate(s) peers' certificates must chain to.
    pub ca: PathBuf,
}

impl TlsPaths {
    /// Resolves relative paths against `base` (the directory of the
    /// configuration file that named them).
    #[must_use]
    pub fn relative_to(&self, base: &Path) -> TlsPaths {
        let join = |p: &PathBuf| if p.is_relative() { base.join(p) } else { p.clone() };
        TlsPaths {
            cert: join(&self.cert),
            key: join(&self.key),
            ca: join(&self.ca),
        }
    }
}

/// The crypto provider of every configuration built here: aws-lc-rs.
#[must_use]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server configuration that requires and verifies client certificates
/// issued by the CA in `paths.ca`, presenting `paths.cert`/`paths.key`,
/// offering [`ALPN`].
///
/// # Errors
///
/// [`Error::Read`] / [`Error::Pem`] for unreadable or empty files,
/// [`Error::Verifier`] when no CA certificate is usable, [`Error::Tls`]
/// when the key does not match the certificate.
pub fn server_config(paths: &TlsPaths) -> Result<Arc<ServerConfig>> {
    let roots = Arc::new(load_roots(&paths.ca)?);
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&paths.cert, "certificate")?, load_key(&paths.key)?)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration that presents `paths.cert`/`paths.key`, trusts
/// only the CA in `paths.ca`, and offers [`ALPN`].
///
/// # Errors
///
/// As [`server_config`].
pub fn client_config(paths: &TlsPaths) -> Result<ClientConfig> {
    let roots = load_roots(&paths.ca)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)?
        .with_root_certificates(roots)
        .with_client_auth_cert(load_certs(&paths.cert, "certificate")?, load_key(&paths.key)?)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Reads every certificate of a PEM file (at least one).
///
/// # Errors
///
/// [`Error::Read`], or [`Error::Pem`] for a malformed file or one without
/// certificates.
pub fn load_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(e, what, path))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e, what, path))?;
    if certs.is_empty() {
        return Err(Error::Pem {
            what,
            path: path.to_owned(),
            message: "no CERTIFICATE section".into(),
        });
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file.
///
/// # Errors
///
/// [`Error::Read`], or [`Error::Pem`] for a malformed file or one without a
/// private key.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(e, "private key", path))
}

/// Why a TLS handshake failed, as far as this end can tell. Found in the
/// source chain of an I/O or client error by [`TlsFailure::find`]; the
/// messages name the cause, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The peer presented no certificate.
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// The peer's certificate does not chain to the configured CA.
    #[error("the peer's certificate is not issued by the configured CA")]
    UnknownIssuer,
    /// The peer's certificate names the configured CA as its issuer but its
    /// signature does not verify: issued by another CA of the same name, or
    /// altered.
    #[error("the peer's certificate is not signed by the configured CA (another CA of the same name?)")]
    BadSignature,
    /// The peer's certificate is past its validity period.
    #[error("the peer's certificate has expired")]
    Expired,
    /// The peer's certificate is not valid yet.
    #[error("the peer's certificate is not valid yet")]
    NotValidYet,
    /// The peer's certificate does not name the host connected to.
    #[error("the peer's certificate does not name the host connected to ({0})")]
    WrongName(String),
    /// The peer's certificate is refused for another reason.
    #[error("the peer's certificate is refused: {0}")]
    BadCertificate(String),
    /// The peer ended the handshake with a TLS alert: it refused this end's
    /// certificate (or, for other alerts, what this end offered).
    #[error("the peer refused the handshake: {meaning} (TLS alert {alert:?})", meaning = alert_meaning(*.0), alert = .0)]
    RefusedByPeer(AlertDescription),
    /// Any other TLS error.
    #[error("TLS error: {0}")]
    Other(String),
}

impl TlsFailure {
    /// The first TLS error in `error`'s source chain, looking inside I/O
    /// errors (which hide their inner error from `source()`); `None` when
    /// the failure was not a TLS one (refused connection, timeout, EOF).
    #[must_use]
    pub fn find(error: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return Some(TlsFailure::from(tls));
            }
            // An I/O error hides the error it holds from `source()` (it
            // returns that error's source).
            if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
                if let Some(found) = TlsFailure::find(inner) {
                    return Some(found);
                }
            }
            next = e.source();
        }
        None
    }
}

impl From<&rustls::Error> for TlsFailure {
    fn from(e: &rustls::Error) -> TlsFailure {
        match e {
            rustls::Error::NoCertificatesPresented => TlsFailure::NoCertificate,
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
                CertificateError::BadSignature => TlsFailure::BadSignature,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsFailure::Expired,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => TlsFailure::NotValidYet,
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    TlsFailure::WrongName(c.to_string())
                }
                other => TlsFailure::BadCertificate(other.to_string()),
            },
            rustls::Error::AlertReceived(alert) => TlsFailure::RefusedByPeer(*alert),
            other => TlsFailure::Other(other.to_string()),
        }
    }
}

/// What [`Prober::probe`] learnt about a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The handshake completed and the server accepted this end's
    /// certificate.
    Accepted,
    /// The handshake failed, or the server refused this end's certificate.
    Refused(TlsFailure),
    /// No verdict: the server could not be reached, closed the connection,
    /// or said nothing in time (the reason).
    Inconclusive(String),
}

/// Opens a TLS connection the way a client built by [`client_config`] does,
/// only to learn the server's verdict (see the module documentation).
#[derive(Debug, Clone)]
pub struct Prober {
    config: Arc<ClientConfig>,
    timeout: Duration,
}

impl Prober {
    /// A prober presenting `paths.cert` and trusting `paths.ca`, giving up
    /// after `timeout` (connection, handshake and verdict together).
    ///
    /// # Errors
    ///
    /// As [`client_config`].
    pub fn new(paths: &TlsPaths, timeout: Duration) -> Result<Prober> {
        Ok(Prober {
            config: Arc::new(client_config(paths)?),
            timeout,
        })
    }

    /// Connects to `host:port` (a DNS name or an IP address, without
    /// brackets), completes a handshake checking the server's certificate
    /// against `host`, then waits for the server's verdict on this end's
    /// certificate. Nothing but the handshake (and a closing alert) is
    /// sent.
    pub async fn probe(&self, host: &str, port: u16) -> Probe {
        let name = match ServerName::try_from(host.to_owned()) {
            Ok(name) => name,
            Err(e) => return Probe::Inconclusive(format!("{host}: {e}")),
        };
        let conn = match ClientConnection::new(Arc::clone(&self.config), name) {
            Ok(conn) => conn,
            Err(e) => return Probe::Inconclusive(e.to_string()),
        };
        match tokio::time::timeout(self.timeout, verdict(host, port, conn)).await {
            Ok(probe) => probe,
            Err(_) => Probe::Inconclusive(format!("no verdict within {} s", self.timeout.as_secs())),
        }
    }
}

/// Drives `conn` over a new connection to `host:port` until the server has
/// given its verdict.
async fn verdict(host: &str, port: u16, mut conn: ClientConnection) -> Probe {
    let tcp = match TcpStream::connect((host, port)).await {
        Ok(tcp) => tcp,
        Err(e) => return Probe::Inconclusive(e.to_string()),
    };
    let mut io = NonBlocking(&tcp);
    loop {
        while conn.wants_write() {
            match conn.write_tls(&mut io) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(e) = tcp.writable().await {
                        return Probe::Inconclusive(e.to_string());
                    }
                }
                Err(e) => return Probe::Inconclusive(e.to_string()),
            }
        }
        // TLS 1.2 verifies the client's certificate within the handshake; a
        // TLS 1.3 server sends session tickets once it has accepted it.
        let decided = !conn.is_handshaking()
            && (conn.protocol_version() != Some(ProtocolVersion::TLSv1_3) || conn.tls13_tickets_received() > 0);
        if decided {
            conn.send_close_notify();
            let _ = conn.write_tls(&mut io);
            return Probe::Accepted;
        }
        if let Err(e) = tcp.readable().await {
            return Probe::Inconclusive(e.to_string());
        }
        match conn.read_tls(&mut io) {
            Ok(0) => return Probe::Inconclusive("the server closed the connection without a verdict".into()),
            Ok(_) => {
                if let Err(e) = conn.process_new_packets() {
                    // A last try at sending the alert that says why.
                    let _ = conn.write_tls(&mut io);
                    return Probe::Refused(TlsFailure::from(&e));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Probe::Inconclusive(e.to_string()),
        }
    }
}

/// `Read`/`Write` on a tokio socket without waiting (`WouldBlock` when it
/// is not ready), for rustls' `read_tls`/`write_tls`.
struct NonBlocking<'a>(&'a TcpStream);

impl std::io::Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl std::io::Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What an alert received during the handshake says about this end.
fn alert_meaning(alert: AlertDescription) -> &'static str {
    match alert {
        AlertDescription::UnknownCA => "it does not trust the CA of this end's certificate",
        AlertDescription::DecryptError => "a signature did not verify (this end's certificate is not signed by a CA it trusts?)",
        // TLS has no alert for "not valid yet": rustls sends this one for
        // both, so a peer whose clock lags says "expired" of a new
        // certificate.
        AlertDescription::CertificateExpired => {
            "this end's certificate has expired, or is not valid yet by the peer's clock (check its dates and both sites' clocks)"
        }
        AlertDescription::CertificateRequired => "it requires a certificate and none was presented",
        AlertDescription::BadCertificate | AlertDescription::UnsupportedCertificate | AlertDescription::CertificateUnknown => {
            "it does not accept this end's certificate"
        }
        AlertDescription::CertificateRevoked => "this end's certificate is revoked",
        AlertDescription::AccessDenied => "access denied",
        _ => "it aborted the handshake",
    }
}

/// Reads the CA file into a root store.
pub(crate) fn load_roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "CA certificate")? {
        roots.add(cert)?;
    }
    Ok(roots)
}

fn pem_error(e: pem::Error, what: &'static str, path: &Path) -> Error {
    match e {
        pem::Error::Io(source) => Error::Read {
            what,
            path: path.to_owned(),
            source,
        },
        pem::Error::NoItemsFound => Error::Pem {
            what,
            path: path.to_owned(),
            message: format!("no {what} in PEM format found"),
        },
        other => Error::Pem {
            what,
            path: path.to_owned(),
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::Pki;

    #[test]
    fn builds_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        let paths = pki.write_site(dir.path(), "site-a.example");
        let server = server_config(&paths).unwrap();
        assert_eq!(server.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        client_config(&paths).unwrap();
    }

    #[test]
    fn missing_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        let mut paths = pki.write_site(dir.path(), "site-a.example");
        paths.key = dir.path().join("nope.key");
        let err = server_config(&paths).unwrap_err();
        assert!(matches!(err, Error::Read { what: "private key", .. }), "{err}");
        assert!(err.to_string().contains("nope.key"), "{err}");
    }

    #[test]
    fn certificate_file_without_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        let mut paths = pki.write_site(dir.path(), "site-a.example");
        paths.cert = paths.key.clone();
        let err = client_config(&paths).unwrap_err();
        assert!(matches!(err, Error::Pem { what: "certificate", .. }), "{err}");
    }

    #[test]
    fn key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        let a = pki.write_site(dir.path(), "site-a.example");
        let b = pki.write_site(dir.path(), "site-b.example");
        let mixed = TlsPaths {
            key: b.key,
            ..a
        };
        let err = server_config(&mixed).unwrap_err();
        assert!(matches!(err, Error::Tls(_)), "{err}");
    }

    #[test]
    fn tls_failures_are_found_inside_io_errors() {
        let wrapped = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert_eq!(TlsFailure::find(&wrapped), Some(TlsFailure::UnknownIssuer));
        let alert = std::io::Error::other(rustls::Error::AlertReceived(AlertDescription::CertificateExpired));
        let found = TlsFailure::find(&alert).unwrap();
        assert_eq!(found, TlsFailure::RefusedByPeer(AlertDescription::CertificateExpired));
        assert!(found.to_string().contains("this end's certificate has expired"), "{found}");
        assert!(found.to_string().contains("not valid yet by the peer's clock"), "{found}");
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(TlsFailure::find(&plain), None);
        assert_eq!(
            TlsFailure::from(&rustls::Error::InvalidCertificate(CertificateError::Expired)).to_string(),
            "the peer's certificate has expired"
        );
    }

    /// A server with `server_paths` on `ip`, on a thread, for one
    /// connection.
    fn one_connection_server(server_paths: &TlsPaths, ip: &str) -> std::net::SocketAddr {
        let config = server_config(server_paths).unwrap();
        let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut conn = rustls::ServerConnection::new(config).unwrap();
            while conn.is_handshaking() {
                if conn.complete_io(&mut tcp).is_err() {
                    // The alert, as a refusing server sends it.
                    let _ = conn.write_tls(&mut tcp);
                    return;
                }
            }
            // The tickets, then wait for the client to leave.
            let _ = conn.complete_io(&mut tcp);
            let _ = std::io::Read::read(&mut tcp, &mut [0u8; 64]);
        });
        addr
    }

    #[tokio::test]
    async fn the_prober_learns_the_servers_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        let server = pki.write_site(dir.path(), "site-a.example");
        let timeout = Duration::from_secs(5);
        let good = Prober::new(&pki.write_site(dir.path(), "site-b.example"), timeout).unwrap();
        let addr = one_connection_server(&server, "127.0.0.1");
        assert_eq!(good.probe("127.0.0.1", addr.port()).await, Probe::Accepted);
        let expired = Prober::new(&pki.write_expired_site(dir.path(), "site-b.example"), timeout).unwrap();
        let addr = one_connection_server(&server, "127.0.0.1");
        assert_eq!(
            expired.probe("127.0.0.1", addr.port()).await,
            Probe::Refused(TlsFailure::RefusedByPeer(AlertDescription::CertificateExpired))
        );
        // The server's certificate does not name 127.0.0.2.
        let addr = one_connection_server(&server, "127.0.0.2");
        assert!(matches!(good.probe("127.0.0.2", addr.port()).await, Probe::Refused(TlsFailure::WrongName(_))));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(matches!(good.probe("127.0.0.1", closed.port()).await, Probe::Inconclusive(_)));
    }

    #[test]
    fn relative_paths_resolve_against_base() {
        let p = TlsPaths {
            cert: "a.pem".into(),
            key: "/abs/a.key".into(),
            ca: "ca/ca.pem".into(),
        };
        let r = p.relative_to(Path::new("/etc/cib"));
        assert_eq!(r.cert, Path::new("/etc/cib/a.pem"));
        assert_eq!(r.key, Path::new("/abs/a.key"));
        assert_eq!(r.ca, Path::new("/etc/cib/ca/ca.pem"));
    }
}
