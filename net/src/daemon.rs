//! What both daemons do the same way around their main loop: logging,
//! turning SIGTERM/SIGINT into a cancellation and SIGHUP into a reload.

use tokio_util::sync::CancellationToken;

/// Logs to stderr (the OCF agents redirect it to the log file), level from
/// `RUST_LOG` (default `info`), colours only on a terminal.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
