//! What both daemons do the same way around their main loop: logging,
//! turning SIGTERM/SIGINT into a cancellation and SIGHUP into a reload.

use tokio_util::sync::CancellationToken;

/// Where a daemon logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error (a terminal, or the file the OCF agent appends it to).
    Stderr,
    /// The systemd journal (what the OCF agents choose when no `logfile`
    /// is set).
    Journal,
}

impl LogTarget {
    /// `journal` is [`LogTarget::Journal`]; anything else stderr.
    #[must_use]
    pub fn from_name(name: &str) -> LogTarget {
        if name == "journal" {
            LogTarget::Journal
        } else {
            LogTarget::Stderr
        }
    }
}

/// Starts logging at the level of `RUST_LOG` (default `info`).
///
/// - [`LogTarget::Stderr`]: text lines, colours only on a terminal.
/// - [`LogTarget::Journal`]: journal entries with `SYSLOG_IDENTIFIER` =
///   `identifier` (`journalctl -t cib-subscriber`) and, when the daemon
///   runs under an OCF agent, `OCF_RESOURCE` = the resource's name
///   (`$OCF_RESOURCE_INSTANCE`: `journalctl OCF_RESOURCE=NAME`). Without
///   a journal socket (no systemd), stderr, said once on stderr.
pub fn init_logging(target: LogTarget, identifier: &str) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if target == LogTarget::Journal {
        match tracing_journald::layer() {
            Ok(layer) => {
                let mut fields = Vec::new();
                if let Ok(resource) = std::env::var("OCF_RESOURCE_INSTANCE") {
                    fields.push(("OCF_RESOURCE".to_owned(), resource.into_bytes()));
                }
                let layer = layer
                    .with_syslog_identifier(identifier.to_owned())
                    .with_custom_fields(fields);
                tracing_subscriber::registry().with(filter).with(layer).init();
                return;
            }
            Err(e) => eprintln!("{identifier}: no systemd journal ({e}): logging to stderr"),
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Notifies `reload` at each SIGHUP, until `token` is cancelled.
pub async fn notify_on_hangup(reload: std::sync::Arc<tokio::sync::Notify>, token: CancellationToken) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGHUP: no reload");
            return;
        }
    };
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            r = hup.recv() => match r {
                Some(()) => {
                    tracing::info!("SIGHUP received");
                    reload.notify_one();
                }
                None => return,
            },
        }
    }
}

/// Cancels `token` on SIGTERM or SIGINT (or returns when it is cancelled
/// otherwise).
pub async fn cancel_on_signal(token: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot handle SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM received"),
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => tracing::info!("SIGINT received"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot handle SIGINT");
                std::future::pending::<()>().await;
            }
        },
        () = token.cancelled() => {}
    }
    token.cancel();
}
