//! `cib-transforms` — the I/O-free core of cib-replicator.
//!
//! Every function here is pure: it takes parsed values and returns values.
//! Running `cibadmin`, reading files and talking to the network happen at the
//! edges (`cib-tools`, `cib-publisher`, `cib-subscriber`).
//!
//! # Layout
//!
//! - [`xml`]: the element tree, its hardened parser (quick-xml behind
//!   bounds and well-formedness checks) and its writer.
//! - [`cib`]: schema knowledge — resource kinds, constraint references,
//!   versions, ticket state, a name index.
//! - [`canonical`]: canonical form and SHA-256 digests.
//! - [`scope`]: the configuration of a ticket, and its published document.
//! - [`diff`]: unified diff of two configurations for the dry run.
//! - [`merge`]: ownership, conflicts, drift and pruning at a subscriber.
//! - [`patch`]: Pacemaker's versioned format-2 patch between two CIBs
//!   (what `crm_diff` computes for `cibadmin --patch`), natively.
//! - [`modify`]: the guarded `cibadmin --modify` document between two CIBs,
//!   the cheaper write where a modify can express the change.
//! - [`printable`]: text from documents made safe for a terminal.
//! - [`validate`]: unique ids and closed references in a fragment.
//! - [`error`]: the crate's error enum.

pub mod canonical;
pub mod cib;
pub mod diff;
pub mod error;
pub mod merge;
pub mod modify;
pub mod patch;
pub mod printable;
pub mod rules;
pub mod scope;
#[cfg(test)]
mod testgen;
pub mod validate;
pub mod xml;

pub use error::Error;
pub use scope::Scope;
pub use xml::Element;

/// The hash map of this crate's lookup tables (ids to elements): the
/// standard one, whose hasher is seeded per process, so that another site
/// cannot prepare ids that collide.
pub type IdMap<K, V> = std::collections::HashMap<K, V>;
