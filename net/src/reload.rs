//! A server TLS configuration whose certificate, key and CA can be read
//! again while it is in use ([`ReloadableServer`]): the publisher's answer
//! to SIGHUP. Connections open keep the session they have (streams stay
//! up); new handshakes use the new files. A reload whose files do not
//! load (unreadable, key not matching the certificate, no usable CA) keeps
//! what was there and says why.
//!
//! rustls asks two objects for what changes: a [`ResolvesServerCert`]
//! (the certificate presented) and a [`ClientCertVerifier`] (the CA that
//! client certificates must chain to). Both read from an `RwLock` here.

use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use crate::error::{Error, Result};
use crate::tls::{load_certs, load_key, load_roots, provider, TlsPaths, ALPN};

/// A server configuration (client certificates required, as
/// [`crate::tls::server_config`]) that [`ReloadableServer::reload`] points
/// at new files without rebuilding it.
#[derive(Debug, Clone)]
pub struct ReloadableServer {
    config: Arc<ServerConfig>,
    cert: Arc<CurrentCert>,
    verifier: Arc<CurrentVerifier>,
}

impl ReloadableServer {
    /// Loads the files of `paths`.
    ///
    /// # Errors
    ///
    /// As [`crate::tls::server_config`].
    pub fn new(paths: &TlsPaths) -> Result<ReloadableServer> {
        let cert = Arc::new(CurrentCert(RwLock::new(certified_key(paths)?)));
        let verifier = Arc::new(CurrentVerifier(RwLock::new(client_verifier(paths)?)));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)?
            .with_client_cert_verifier(Arc::clone(&verifier) as Arc<dyn ClientCertVerifier>)
            .with_cert_resolver(Arc::clone(&cert) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(ReloadableServer {
            config: Arc::new(config),
            cert,
            verifier,
        })
    }

    /// The configuration to serve with (the same one after every reload).
    #[must_use]
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// Reads the files of `paths` again; new handshakes use them. Both or
    /// neither: on error nothing changes.
    ///
    /// # Errors
    ///
    /// As [`crate::tls::server_config`]: the previous files stay in use.
    pub fn reload(&self, paths: &TlsPaths) -> Result<()> {
        let key = certified_key(paths)?;
        let verifier = client_verifier(paths)?;
        *self.cert.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = key;
        *self.verifier.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = verifier;
        Ok(())
    }
}

/// The certificate chain and key of `paths`, checked to match.
fn certified_key(paths: &TlsPaths) -> Result<Arc<CertifiedKey>> {
    let certs = load_certs(&paths.cert, "certificate")?;
    let key = load_key(&paths.key)?;
    let signing = provider().key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

/// rustls' verifier of client certificates issued by the CA of `paths`.
fn client_verifier(paths: &TlsPaths) -> Result<Arc<dyn ClientCertVerifier>> {
    let roots = Arc::new(load_roots(&paths.ca)?);
    WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(Error::from)
}

/// The certificate presented, whatever the client asks for.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner)))
    }
}

/// The verifier in use, by delegation.
#[derive(Debug)]
struct CurrentVerifier(RwLock<Arc<dyn ClientCertVerifier>>);

impl CurrentVerifier {
    fn get(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::clone(&self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl ClientCertVerifier for CurrentVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No hints: they would borrow from a verifier a reload may replace.
    /// Clients with one certificate (ours) present it without them.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        self.get().verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.get().supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::Pki;

    #[test]
    fn a_bad_reload_keeps_the_files_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        let a = pki.write_site(dir.path(), "a.example");
        let server = ReloadableServer::new(&a).unwrap();
        let before = server.cert.0.read().unwrap().cert.clone();
        // The key of another certificate: refused, nothing changes.
        std::fs::create_dir(dir.path().join("x")).unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        let other = Pki::new().write_site(&dir.path().join("x"), "x.example");
        let mismatched = TlsPaths { key: other.key.clone(), ..a.clone() };
        assert!(server.reload(&mismatched).is_err());
        assert_eq!(server.cert.0.read().unwrap().cert, before);
        // A new certificate of the same CA: taken.
        let b = pki.write_site(&dir.path().join("b"), "a.example");
        server.reload(&b).unwrap();
        assert_ne!(server.cert.0.read().unwrap().cert, before);
    }
}
