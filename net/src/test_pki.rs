//! Test certificates generated at run time (feature `test-pki`, for tests
//! only — the keys are throw-away and the code panics on failure).
//!
//! A [`Pki`] is a fresh CA. It issues site certificates the way
//! `examples/make-certs.sh` does: subjectAltName DNS names (the site name
//! and `localhost`) and the IP address `127.0.0.1`, subject CN = the site
//! name, extended key usages `serverAuth` and `clientAuth`. It can also
//! issue an expired one. Two `Pki`s are two unrelated CAs.

use std::path::Path;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::tls::TlsPaths;

/// A certificate and its key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct SiteCert {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// A throw-away certificate authority.
#[derive(Debug)]
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Pki {
    /// A new CA with a fresh key.
    ///
    /// # Panics
    ///
    /// If rcgen cannot generate a key or sign (tests only).
    #[must_use]
    pub fn new() -> Pki {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "cib-replicator test CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("generating the CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("self-signing the CA");
        Pki { ca }
    }

    /// The CA certificate.
    #[must_use]
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A site certificate for `name`, valid from 1975 to 4096.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid DNS name or signing fails (tests only).
    #[must_use]
    pub fn site(&self, name: &str) -> SiteCert {
        self.issue(name, false)
    }

    /// A site certificate for `name` that expired on 2001-01-01.
    ///
    /// # Panics
    ///
    /// As [`Pki::site`].
    #[must_use]
    pub fn expired_site(&self, name: &str) -> SiteCert {
        self.issue(name, true)
    }

    /// Writes `NAME.pem`, `NAME.key` and `ca.pem` into `dir`; returns the
    /// paths.
    ///
    /// # Panics
    ///
    /// On any I/O error (tests only).
    pub fn write_site(&self, dir: &Path, name: &str) -> TlsPaths {
        self.write(dir, name, &self.site(name))
    }

    /// As [`Pki::write_site`], with an expired certificate written as
    /// `NAME-expired.pem` / `NAME-expired.key`.
    ///
    /// # Panics
    ///
    /// On any I/O error (tests only).
    pub fn write_expired_site(&self, dir: &Path, name: &str) -> TlsPaths {
        self.write(dir, &format!("{name}-expired"), &self.expired_site(name))
    }

    /// As [`Pki::write_site`], with a certificate naming only `name` (not
    /// `localhost` or `127.0.0.1`), written as `NAME-only.pem` /
    /// `NAME-only.key`: a server reached by address does not match it.
    ///
    /// # Panics
    ///
    /// On any I/O error (tests only).
    pub fn write_site_named_only(&self, dir: &Path, name: &str) -> TlsPaths {
        let site = self.issue_for(vec![name.to_owned()], name, false);
        self.write(dir, &format!("{name}-only"), &site)
    }

    fn write(&self, dir: &Path, file_stem: &str, site: &SiteCert) -> TlsPaths {
        let paths = TlsPaths {
            cert: dir.join(format!("{file_stem}.pem")),
            key: dir.join(format!("{file_stem}.key")),
            ca: dir.join("ca.pem"),
        };
        std::fs::write(&paths.cert, &site.cert_pem).expect("writing the certificate");
        std::fs::write(&paths.key, &site.key_pem).expect("writing the key");
        std::fs::write(&paths.ca, self.ca_pem()).expect("writing the CA certificate");
        paths
    }

    fn issue(&self, name: &str, expired: bool) -> SiteCert {
        self.issue_for(vec![name.to_owned(), "localhost".to_owned(), "127.0.0.1".to_owned()], name, expired)
    }

    fn issue_for(&self, names: Vec<String>, name: &str, expired: bool) -> SiteCert {
        let mut params = CertificateParams::new(names).expect("site certificate names");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().expect("generating a site key");
        let cert = params.signed_by(&key, &self.ca).expect("signing a site certificate");
        SiteCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}
