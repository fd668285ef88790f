//! `cib-tools` — the edge crate of cib-replicator: the one place that runs
//! external programs.
//!
//! The pure core (`cib-transforms`) never does I/O. The binaries
//! (`cib-publisher`, `cib-subscriber`) call this crate whenever they need
//! the cluster: reading the CIB, verifying a candidate CIB, computing and
//! applying a patch, or running a site-local XSLT stylesheet.
//!
//! All programs are run synchronously with [`std::process`], with a timeout,
//! with stdout and stderr captured concurrently (a 10 MB CIB on stdout is
//! normal), and with stderr kept in the error when they fail.
//!
//! # Environment
//!
//! Like every Pacemaker tool, the tools run here work against the live CIB,
//! or against a file when the environment variable `CIB_file` is set. Child
//! processes inherit the environment of the caller unless a
//! [`cib::Cib`] handle says otherwise ([`cib::Cib::file`] sets `CIB_file` on
//! the child only, so that tests and tools never need `std::env::set_var`).
//!
//! # Layout
//!
//! - [`process`]: [`process::run`], the child-process wrapper (timeout,
//!   concurrent capture, kill and reap), and [`process::run_checked`].
//! - [`cib`]: Pacemaker operations — [`cib::Cib::read`] (a `CIB_file`
//!   read directly), [`cib::Cib::query`],
//!   [`cib::Cib::patch`] (with stale detection), [`cib::check`],
//!   [`cib::diff`], [`cib::simulate`].
//! - [`xslt`]: [`xslt::run_xslt`] through `xsltproc`, with DOCTYPE/ENTITY
//!   refusal ([`xslt::check_untrusted_xml`]).
//! - [`error`]: the crate's one error enum, [`Error`].
//!
//! # Example
//!
//! ```no_run
//! use cib_tools::cib::{self, Cib};
//!
//! # fn main() -> Result<(), cib_tools::Error> {
//! let cib = Cib::from_env();
//! let current = cib.query()?;
//! let desired = current.clone(); // computed by cib-transforms in reality
//! if let Some(patch) = cib::diff(&current, &desired)? {
//!     match cib.patch(&patch) {
//!         Err(cib_tools::Error::Stale { .. }) => { /* re-read and retry */ }
//!         other => other?,
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod cib;
pub mod error;
pub mod files;
pub mod process;
pub mod xslt;

pub use error::{Error, Result};
