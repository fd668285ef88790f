//! Who a verified client is: the names its certificate asserts.
//!
//! The publisher authorizes subscribers per ticket by name. The names of a
//! certificate are its subjectAltName DNS names; only a certificate without
//! any DNS name is known by its subject common name (the RFC 6125 rule, so
//! an admin who writes the DNS name in the allow-list never depends on what
//! the CN says). Names compare case-insensitively, as DNS names do.
//!
//! Only call this on certificates the TLS layer has already verified: it
//! reads names, it does not check signatures.

use std::fmt;

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, Result};

/// The names of a verified client certificate, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    names: Vec<String>,
}

impl ClientIdentity {
    /// The identity of the end-entity certificate (the first one) of a
    /// verified peer chain, as returned by rustls' `peer_certificates()`.
    ///
    /// # Errors
    ///
    /// [`Error::NoClientCertificate`] for `None` or an empty chain, and the
    /// errors of [`ClientIdentity::from_der`].
    pub fn from_peer_certificates(chain: Option<&[CertificateDer<'_>]>) -> Result<ClientIdentity> {
        match chain.and_then(<[_]>::first) {
            Some(cert) => ClientIdentity::from_der(cert),
            None => Err(Error::NoClientCertificate),
        }
    }

    /// The identity of one DER-encoded certificate.
    ///
    /// # Errors
    ///
    /// [`Error::Certificate`] when it cannot be parsed, [`Error::Anonymous`]
    /// when it has neither a DNS name nor a common name.
    pub fn from_der(der: &[u8]) -> Result<ClientIdentity> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| Error::Certificate(e.to_string()))?;
        let mut names: Vec<String> = Vec::new();
        let san = cert
            .subject_alternative_name()
            .map_err(|e| Error::Certificate(format!("subjectAltName: {e}")))?;
        if let Some(san) = san {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(dns) = name {
                    push_unique(&mut names, dns);
                }
            }
        }
        if names.is_empty() {
            for cn in cert.subject().iter_common_name() {
                if let Ok(cn) = cn.as_str() {
                    push_unique(&mut names, cn);
                }
            }
        }
        if names.is_empty() {
            return Err(Error::Anonymous);
        }
        Ok(ClientIdentity { names })
    }

    /// An identity with the given names (tests, and callers that learned the
    /// names some other way).
    #[must_use]
    pub fn from_names<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> ClientIdentity {
        let mut out = Vec::new();
        for n in names {
            push_unique(&mut out, n.as_ref());
        }
        ClientIdentity { names: out }
    }

    /// The names, lower-cased, in certificate order.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The first name of this identity that `allow` lists (case-insensitive),
    /// or `None` when the client is not allowed.
    #[must_use]
    pub fn allowed_by<S: AsRef<str>>(&self, allow: &[S]) -> Option<&str> {
        self.names
            .iter()
            .find(|n| allow.iter().any(|a| a.as_ref().eq_ignore_ascii_case(n)))
            .map(String::as_str)
    }
}

impl fmt::Display for ClientIdentity {
    /// The names joined by `, ` (for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names.join(", "))
    }
}

fn push_unique(names: &mut Vec<String>, name: &str) {
    let name = name.trim().to_ascii_lowercase();
    if !name.is_empty() && !names.contains(&name) {
        names.push(name);
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    use super::*;

    fn cert(sans: &[&str], cn: Option<&str>) -> Vec<u8> {
        let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let mut dn = DistinguishedName::new();
        if let Some(cn) = cn {
            dn.push(DnType::CommonName, cn);
        }
        dn.push(DnType::OrganizationName, "cib-replicator tests");
        params.distinguished_name = dn;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn dns_names_win_over_cn() {
        let id = ClientIdentity::from_der(&cert(&["Site-B.example", "b.example", "10.0.0.1"], Some("site b"))).unwrap();
        assert_eq!(id.names(), ["site-b.example", "b.example"]);
        assert_eq!(id.to_string(), "site-b.example, b.example");
    }

    #[test]
    fn cn_when_no_dns_name() {
        let id = ClientIdentity::from_der(&cert(&["10.0.0.1"], Some("site-c"))).unwrap();
        assert_eq!(id.names(), ["site-c"]);
    }

    #[test]
    fn no_name_is_an_error() {
        let err = ClientIdentity::from_der(&cert(&[], None)).unwrap_err();
        assert!(matches!(err, Error::Anonymous), "{err}");
    }

    #[test]
    fn garbage_is_an_error() {
        let err = ClientIdentity::from_der(b"not a certificate").unwrap_err();
        assert!(matches!(err, Error::Certificate(_)), "{err}");
        let err = ClientIdentity::from_peer_certificates(None).unwrap_err();
        assert!(matches!(err, Error::NoClientCertificate), "{err}");
    }

    #[test]
    fn allow_list_is_case_insensitive_and_exact() {
        let id = ClientIdentity::from_names(["site-b.example"]);
        assert_eq!(id.allowed_by(&["SITE-B.example"]), Some("site-b.example"));
        assert_eq!(id.allowed_by(&["site-b"]), None);
        assert_eq!(id.allowed_by(&["b.example"]), None);
        assert_eq!(id.allowed_by::<&str>(&[]), None);
    }
}
