//! The one error enum of the publisher's library.

use std::path::PathBuf;

/// What can stop the publisher from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration parsed but makes no sense (message says why).
    #[error("configuration: {0}")]
    Invalid(String),
    /// The configuration file could not be read or parsed, or TLS files
    /// could not be loaded.
    #[error(transparent)]
    Net(#[from] cib_net::Error),
    /// The file watcher could not be set up.
    #[error("watching {}: {source}", path.display())]
    Watch {
        /// The directory that was to be watched.
        path: PathBuf,
        /// notify's error.
        source: notify::Error,
    },
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}
