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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

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

/// Reads the CA file into a root store.
fn load_roots(path: &Path) -> Result<RootCertStore> {
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
