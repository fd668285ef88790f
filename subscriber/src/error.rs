//! The error enum of the subscriber's configuration, state files and daemon
//! start-up.
//!
//! What happens to one document (verify, transform, plan, apply) keeps the
//! `anyhow` chains of [`crate::pipeline`] and [`crate::apply`]: those errors
//! are logged and recorded as text, never matched on, except for the two
//! `cib_transforms::Error` variants the daemon treats specially
//! (`TicketGrantedLocally`, `StaleTerm`), which survive `anyhow`'s
//! `downcast_ref`.

use std::path::PathBuf;

/// What can stop the subscriber from starting, or from reading and writing
/// its state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration parsed but makes no sense (the message says why).
    #[error("configuration: {0}")]
    Invalid(String),
    /// The configuration file could not be read or parsed, or TLS files
    /// could not be loaded.
    #[error(transparent)]
    Net(#[from] cib_net::Error),
    /// The HTTPS client could not be built.
    #[error("building the HTTPS client: {0}")]
    Client(String),
    /// A state file or directory could not be read or written.
    #[error("{what} {}: {cause}", path.display())]
    State {
        /// What was being done ("writing state", "creating state directory" …).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error (part of the message, not a separate source, so
        /// that it is printed once).
        cause: std::io::Error,
    },
    /// A state file exists but cannot be understood.
    #[error("state file {}: {message}", path.display())]
    StateFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}
