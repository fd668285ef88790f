//! The local CIB as last read whole, kept between documents.
//!
//! Every document the daemon processes starts from the local CIB. On a
//! live site reading it whole (`cibadmin --query`) goes through the CIB
//! manager's IPC: 0.35 to 1 s at 2,500 primitives, 1.6 to 11 s at 10,000
//! on the lab (docs/benchmarks.md), where a small query takes 0.1 s. The
//! configuration changes only together with the `<cib>` element's
//! [`CONFIGURATION_STAMPS`](cib_transforms::cib::CONFIGURATION_STAMPS)
//! (`epoch` first), so a copy read whole earlier still holds the
//! configuration while those are unchanged. [`KeptCib::read`] asks for the
//! `<cib>` element and the ticket states alone (one `cibadmin --query
//! --no-children --xpath`, a few hundred bytes whatever the CIB's size:
//! [`apply::query_stamps`]) and uses the kept copy, with those two
//! current, when the stamps match; otherwise it reads the CIB whole and keeps that. The
//! daemon's start-up read (the grant term in the ownership record), its
//! documents and its metrics scrapes share one copy.
//!
//! The copy is always one read whole, never a prediction of what a write
//! made of it: after the daemon applies a document it reads the CIB again
//! ([`KeptCib::refresh`]), once the outcome is recorded, so the next
//! document finds the copy current without that read on its path.
//!
//! What the copy leaves older than the CIB is the rest of the status
//! section (node and resource history), which nothing plans from: the
//! merge and the write concern the configuration, and `crm_verify` judges
//! the merged CIB against the copy it was merged into. The write stays
//! version-checked, so a configuration changed after the stamps were read
//! is refused and read again, as after a read whole.
//!
//! A CIB file (`CIB_file`, `cib_file`) is always read whole: that is a
//! file read, cheaper than the query (`cibadmin` parses the whole file).

use std::sync::{Mutex, PoisonError};

use anyhow::Context as _;

use cib_tools::cib::Cib;
use cib_transforms::cib::brought_up_to_date;
use cib_transforms::xml::{self, Element};

use crate::apply;

/// How [`KeptCib::read`] got the local CIB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Read whole (`cibadmin --query`, or the file).
    Whole,
    /// The kept copy, its configuration still the CIB's.
    Kept,
}

impl Read {
    /// `whole` or `kept`, for logs and metrics.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Read::Whole => "whole",
            Read::Kept => "kept",
        }
    }
}

/// The text of the local CIB as last read whole, and the CIB it was read
/// from; shared by the tickets and the metrics of one daemon.
#[derive(Debug, Default)]
pub struct KeptCib {
    kept: Mutex<Option<(Cib, String)>>,
}

impl KeptCib {
    /// No copy yet: the first read is whole.
    #[must_use]
    pub fn new() -> KeptCib {
        KeptCib::default()
    }

    /// The local CIB as it is now, text and tree: the kept copy brought up
    /// to date when its configuration is still the CIB's
    /// ([`brought_up_to_date`]), else read whole and kept. The text is the
    /// one read whole (its `<cib>` attributes and ticket states may be
    /// older than the tree's).
    ///
    /// # Errors
    ///
    /// When the CIB cannot be queried or read, or does not parse.
    pub fn read(&self, cib: &Cib) -> anyhow::Result<(String, Element, Read)> {
        if cib.backing_file().is_some() {
            let (text, local) = apply::read_local(cib)?;
            return Ok((text, local, Read::Whole));
        }
        // Held while reading whole, so that a refresh under way is waited
        // for rather than done twice.
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        // A copy of another CIB (a reload changed `cib_file`) is not used.
        if let Some((_, text)) = kept.as_ref().filter(|(of, _)| of == cib) {
            let stamps = apply::query_stamps(cib)?;
            // The kept text parsed when it was read; a copy that no longer
            // parses is read again rather than trusted.
            if let Some(local) = xml::parse(text).ok().and_then(|copy| brought_up_to_date(copy, &stamps.root, stamps.tickets_element())) {
                return Ok((text.to_owned(), local, Read::Kept));
            }
        }
        *kept = None;
        let (text, local) = apply::read_local(cib)?;
        *kept = Some((cib.clone(), text.clone()));
        Ok((text, local, Read::Whole))
    }

    /// Reads the live CIB whole and keeps it (nothing for a CIB file).
    /// Called after a write, off the path of the next document. On error
    /// the copy is dropped and the next read is whole.
    ///
    /// # Errors
    ///
    /// When the CIB cannot be read.
    pub fn refresh(&self, cib: &Cib) -> anyhow::Result<()> {
        if cib.backing_file().is_some() {
            return Ok(());
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        *kept = None;
        *kept = Some((cib.clone(), cib.read().context("reading the local CIB")?));
        Ok(())
    }
}
