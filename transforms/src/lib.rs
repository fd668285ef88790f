//! `cib-transforms` — the I/O-free core of cib-replicator.
//!
//! Every function here is pure: it takes parsed values and returns values.
//! Running `cibadmin`, reading files and talking to the network happen in the
//! `cib-publisher` and `cib-subscriber` binaries.
//!
//! # Layout
//!
//! - [`xml`]: hardened parser and writer for a small owned element tree.
//! - [`error`]: the crate's error enum.

pub mod error;
pub mod xml;

pub use error::Error;
pub use xml::Element;
