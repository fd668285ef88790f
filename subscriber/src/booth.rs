//! This site's replica state as a booth site attribute, for booth's
//! `attr-prereq`.
//!
//! booth runs the `before-acquire-handler` (`cib-subscriber gate`) on a
//! grant by an admin and on renewals, but not before the election that
//! follows the loss of the site holding a ticket: there, only `attr-prereq
//! = auto NAME eq VALUE` is checked, against the site attributes booth keeps
//! per ticket (set with `geostore`). With `booth_attribute = "NAME"` on a
//! ticket, the daemon keeps that attribute at `current` or `stale` (see
//! [`crate::gate::replica_is_current`]), and booth.conf says:
//!
//! ```text
//! ticket = "geo"
//!     attr-prereq = auto cib-replicator eq current
//!     before-acquire-handler = /usr/sbin/cib-subscriber gate
//! ```
//!
//! so that a site whose copy is stale does not start an election for the
//! ticket, and nothing starts there with an old configuration.
//!
//! With `stale_after_seconds` on the ticket, the value is also `stale`
//! while no publisher of the ticket has had a stream open to this site for
//! that long ([`crate::gate::source_silent`]): a site cut off from the
//! others cannot know which changes it missed, and does not start an
//! election when it sees the ticket expire.
//!
//! The value is derived from the state file once a second and handed to
//! `geostore set` when it changes (after a failure: again 10 s later, or at
//! once when the value changes).

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::gate::{replica_is_current, source_silent};
use crate::state::{self, Timestamp};

/// The attribute's value while this site's copy of the ticket is current.
pub const CURRENT: &str = "current";
/// The attribute's value while a version received is not applied.
pub const STALE: &str = "stale";

/// How often the state is looked at.
const PERIOD: Duration = Duration::from_secs(1);
/// How long a failed `geostore set` of the same value waits to be tried again.
const RETRY: Duration = Duration::from_secs(10);
/// How long one `geostore` call may take.
const GEOSTORE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `name` is usable as a booth attribute name: 1 to 64 letters,
/// digits, `_` or `-` (booth's limit on a configuration value).
#[must_use]
pub fn is_valid_attribute(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Keeps booth attribute `attribute` of `ticket` at this site in step with
/// the state in `state_dir` (and, with `stale_after`, with how long no
/// publisher has been heard), until `shutdown`.
pub async fn keep_attribute(
    state_dir: PathBuf,
    ticket: String,
    attribute: String,
    stale_after: Option<Duration>,
    shutdown: CancellationToken,
) {
    let mut told: Option<&'static str> = None;
    // After a failure, the same value is tried again only after RETRY (a
    // changed value at once), so a missing booth does not flood the log.
    let mut failed: Option<(&'static str, tokio::time::Instant)> = None;
    loop {
        let value = match state::load(&state_dir, &ticket) {
            Ok(s) if replica_is_current(&s) && !stale_after.is_some_and(|after| source_silent(&s, after, Timestamp::now())) => CURRENT,
            Ok(_) => STALE,
            Err(e) => {
                tracing::warn!(%ticket, error = %e, "cannot read the state for the booth attribute");
                STALE
            }
        };
        let backing_off = failed.is_some_and(|(v, at)| v == value && at.elapsed() < RETRY);
        if told != Some(value) && !backing_off {
            match geostore_set(&ticket, &attribute, value).await {
                Ok(()) => {
                    tracing::info!(%ticket, %attribute, %value, "booth attribute set");
                    told = Some(value);
                    failed = None;
                }
                Err(e) => {
                    tracing::warn!(%ticket, %attribute, %value, error = %e, retry_in_s = RETRY.as_secs(), "geostore set failed");
                    failed = Some((value, tokio::time::Instant::now()));
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(PERIOD) => {}
        }
    }
}

/// `geostore set -t TICKET ATTRIBUTE VALUE` at this site.
async fn geostore_set(ticket: &str, attribute: &str, value: &str) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("geostore");
    cmd.args(["set", "-t", ticket, attribute, value])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(GEOSTORE_TIMEOUT, cmd.output()).await {
        Err(_) => Err(format!("no answer within {GEOSTORE_TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("running geostore: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names() {
        assert!(is_valid_attribute("cib-replicator"));
        assert!(is_valid_attribute("repl_state"));
        for bad in ["", "a b", "x=y", "é", &"a".repeat(65)] {
            assert!(!is_valid_attribute(bad), "{bad:?}");
        }
    }
}
