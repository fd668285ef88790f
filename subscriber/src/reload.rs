//! Reloading the daemon's configuration (SIGHUP): [`Reload`] reads the
//! configuration file again, with the command line's overrides, and checks
//! everything a start would (keys, values, files, rules, certificates and
//! key). [`crate::daemon::run_with`] restarts the tickets' tasks with a new
//! configuration that passes, and keeps the old one otherwise.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::{read_config, Config, Overrides};

/// Where the configuration comes from, and what asks for a reload.
#[derive(Debug, Clone)]
pub struct Reload {
    path: PathBuf,
    overrides: Overrides,
    trigger: Arc<Notify>,
}

impl Reload {
    /// Reloads `path` (with `overrides` on top) each time `trigger` is
    /// notified.
    #[must_use]
    pub fn new(path: PathBuf, overrides: Overrides, trigger: Arc<Notify>) -> Reload {
        Reload { path, overrides, trigger }
    }

    /// Waits for the trigger, then reads and checks the configuration:
    /// `Some` when it is valid (even unchanged: the rules and certificates
    /// it names may have changed), `None` (logged) when it is not.
    pub async fn next(&self, current: &Config) -> Option<Config> {
        self.trigger.notified().await;
        tracing::info!(config = %self.path.display(), "reloading the configuration, rules and certificates");
        let path = self.path.clone();
        let overrides = self.overrides.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&path, &overrides)).await;
        match loaded {
            Ok(Ok(new)) => {
                if new == *current {
                    tracing::info!("reload: the configuration is unchanged; rules and certificates are read again");
                }
                Some(new)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "reload refused: going on with the previous configuration, rules and certificates");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "reload panicked: going on with the previous configuration");
                None
            }
        }
    }
}

/// Reads and checks the configuration as `run` does at start.
///
/// # Errors
///
/// The first problem found.
pub fn load(path: &std::path::Path, overrides: &Overrides) -> anyhow::Result<Config> {
    let mut cfg = read_config(path)?;
    cfg.apply(overrides);
    cfg.validate()?;
    cib_net::tls::client_config(&cfg.tls)?;
    Ok(cfg)
}
