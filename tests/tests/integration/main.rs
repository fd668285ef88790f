//! Integration tests of cib-replicator with the real Pacemaker tools in
//! `CIB_file` mode (`cibadmin`, `crm_verify`, `crm_simulate`, `crm_ticket`,
//! `crm_diff`) and `xsltproc`.
//!
//! Run `cargo build --workspace --bins` first: the tests run the built
//! `cib-publisher` and `cib-subscriber`.
//!
//! # Layout
//!
//! - [`support`]: the harness — binaries, tools, temporary sites, fixtures.
//! - [`replicate`]: the two-site flow: scope, diff, replicate-now, updates,
//!   drift, idempotence, and what `crm_simulate` would start.
//! - [`refusals`]: everything `replicate-now` refuses, each leaving the CIB
//!   file byte-for-byte unchanged.
//! - [`hostile`]: hostile documents refused in bounded time and memory.
//! - [`xmllint`]: the XML parser against libxml2 on 20,000 mutated documents.
//! - [`security`]: what the subscriber enforces whatever a publisher sends.
//! - [`transform`]: XSLT output equals `xsltproc`'s; steps run in
//!   command-line order.
//! - [`publisher`]: `cib-publisher scope` on the example and its errors.
//! - [`corpus`]: every ticket of the Pacemaker scheduler corpus, end to end.
//! - [`gate`]: `cib-subscriber gate`, booth's before-acquire-handler.
//! - [`lazy`]: lazy mode: a copy kept out of the CIB, written by the gate.
//! - [`status`]: `cib-subscriber status`: exit codes and `--output json`.
//! - [`ocf`]: the OCF agents' actions and `ocf-tester` against the real daemons.
//! - [`ticket_names`]: `--ticket` values checked before use; grant terms
//!   that are not numbers refused by `cib-publisher scope`.
//! - [`patch`]: the native format-2 patch applied by the real
//!   `cibadmin --patch`, and the guarded modify by the real
//!   `cibadmin --modify`: corpus sample, random edits, stale versions.

mod corpus;
mod gate;
mod lazy;
mod hostile;
mod ocf;
mod patch;
mod publisher;
mod refusals;
mod replicate;
mod security;
mod ticket_names;
mod status;
mod support;
mod transform;
mod xmllint;
