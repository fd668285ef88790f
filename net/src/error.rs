//! The one error enum of `cib-net`.

use std::path::PathBuf;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading a daemon's configuration, building
/// TLS configurations or reading certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A daemon's configuration file could not be read.
    #[error("reading configuration {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A daemon's configuration is not valid TOML or has unknown or missing
    /// keys.
    #[error("configuration: {0}")]
    Toml(#[from] toml::de::Error),
    /// A PEM file could not be read.
    #[error("reading {what} {}: {source}", path.display())]
    Read {
        /// What the file should hold ("certificate", "private key", "CA certificate").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file was read but holds nothing usable.
    #[error("{what} {}: {message}", path.display())]
    Pem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the configuration (e.g. the key does not match the
    /// certificate, or a CA certificate cannot be used as a trust anchor).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (e.g. no usable
    /// CA certificate).
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A peer certificate could not be parsed for its names.
    #[error("peer certificate: {0}")]
    Certificate(String),
    /// No client certificate was presented (cannot happen behind
    /// [`crate::tls::server_config`], which requires one).
    #[error("no client certificate")]
    NoClientCertificate,
    /// The certificate names neither a SAN DNS name nor a subject CN.
    #[error("the client certificate names no DNS name and no common name")]
    Anonymous,
    /// An acknowledgement body is malformed or out of bounds
    /// ([`crate::ack::Ack::parse`]).
    #[error("acknowledgement: {0}")]
    Ack(String),
}
