//! What both daemons do the same way around their main loop: turning
//! SIGTERM/SIGINT into a cancellation and SIGHUP into a reload (their logs
//! are [`crate::logging`]'s).

use tokio_util::sync::CancellationToken;

use crate::logging::LogLevel;

/// At each SIGHUP, until `token` is cancelled: applies the log level file
/// again ([`LogLevel::reload`]), then notifies `reload`.
pub async fn notify_on_hangup(reload: std::sync::Arc<tokio::sync::Notify>, log: LogLevel, token: CancellationToken) {
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
                    log.reload();
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
