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

/// Longest log filter read from a `--log-level-file`.
const MAX_LEVEL_FILE_BYTES: u64 = 4096;

/// The daemon's log filter, which a SIGHUP may change: the OCF agents write
/// their `log_level` parameter into a file (`--log-level-file`) and send
/// SIGHUP on `reload-agent`, so a new level needs no restart.
#[derive(Debug, Clone)]
pub struct LogLevel {
    handle: tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
    file: Option<std::path::PathBuf>,
}

impl LogLevel {
    /// Reads the level file again (when there is one) and applies its
    /// filter; an unreadable file or a filter that does not parse is logged
    /// and the current filter kept.
    pub fn reload(&self) {
        let Some(file) = &self.file else { return };
        match read_filter(file) {
            Ok(filter) => {
                let text = filter.to_string();
                match self.handle.reload(filter) {
                    Ok(()) => {
                        tracing::info!(filter = %text, file = %file.display(), "log filter set");
                        tracing::debug!("debug logging is on");
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot change the log filter"),
                }
            }
            Err(e) => tracing::warn!(file = %file.display(), error = %e, "log filter not changed"),
        }
    }
}

/// The filter in `file`: one line such as `debug` or `info,cib_subscriber=debug`.
fn read_filter(file: &std::path::Path) -> Result<tracing_subscriber::EnvFilter, String> {
    use std::io::Read as _;

    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_LEVEL_FILE_BYTES).read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Err("the file is empty".into());
    }
    tracing_subscriber::EnvFilter::try_new(text).map_err(|e| format!("`{}`: {e}", text.escape_debug()))
}

/// Starts logging. The filter is the one in `level_file` when given and
/// readable, else `RUST_LOG`'s, else `info`; [`LogLevel::reload`] reads
/// `level_file` again.
///
/// - [`LogTarget::Stderr`]: text lines, colours only on a terminal.
/// - [`LogTarget::Journal`]: one journal entry per event, its message the
///   same line as on stderr (level, target, message and fields: what
///   `journalctl`, `crm_report` and sosreport show), `PRIORITY` from the
///   level, `SYSLOG_IDENTIFIER` = `identifier` (`journalctl -t
///   cib-subscriber`) and, when the daemon runs under an OCF agent,
///   `OCF_RESOURCE` = the resource's name (`$OCF_RESOURCE_INSTANCE`:
///   `journalctl OCF_RESOURCE=NAME`). Without a journal socket (no
///   systemd), stderr, said once on stderr.
pub fn init_logging(target: LogTarget, identifier: &str, level_file: Option<&std::path::Path>) -> LogLevel {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let from_file = level_file.map(|f| (f, read_filter(f)));
    let filter = match from_file {
        Some((_, Ok(filter))) => filter,
        Some((f, Err(e))) => {
            eprintln!("{identifier}: {}: {e}: using RUST_LOG", f.display());
            default_filter()
        }
        None => default_filter(),
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let level = LogLevel {
        handle,
        file: level_file.map(std::path::Path::to_owned),
    };
    let registry = tracing_subscriber::registry().with(filter);
    if target == LogTarget::Journal {
        if std::path::Path::new(libsystemd::logging::SD_JOURNAL_SOCK_PATH).exists() {
            let mut fields = vec![("SYSLOG_IDENTIFIER".to_owned(), identifier.to_owned())];
            if let Ok(resource) = std::env::var("OCF_RESOURCE_INSTANCE") {
                fields.push(("OCF_RESOURCE".to_owned(), resource));
            }
            let journal = Journal {
                fields: std::sync::Arc::new(fields),
            };
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(journal)
                        .with_ansi(false)
                        .without_time(),
                )
                .init();
            return level;
        }
        eprintln!(
            "{identifier}: no systemd journal ({} is missing): logging to stderr",
            libsystemd::logging::SD_JOURNAL_SOCK_PATH
        );
    }
    registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    level
}

/// Writes each formatted log event as one journal entry (see
/// [`init_logging`]).
#[derive(Debug, Clone)]
struct Journal {
    fields: std::sync::Arc<Vec<(String, String)>>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Journal {
    type Writer = JournalEntry;

    fn make_writer(&'a self) -> JournalEntry {
        self.entry(libsystemd::logging::Priority::Notice)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> JournalEntry {
        use libsystemd::logging::Priority;
        // The mapping tracing-journald and systemd's own tools use.
        let priority = match *meta.level() {
            tracing::Level::ERROR => Priority::Error,
            tracing::Level::WARN => Priority::Warning,
            tracing::Level::INFO => Priority::Notice,
            tracing::Level::DEBUG => Priority::Info,
            tracing::Level::TRACE => Priority::Debug,
        };
        self.entry(priority)
    }
}

impl Journal {
    fn entry(&self, priority: libsystemd::logging::Priority) -> JournalEntry {
        JournalEntry {
            text: Vec::new(),
            priority,
            fields: std::sync::Arc::clone(&self.fields),
        }
    }
}

/// One event's text, sent to the journal when the formatter is done with
/// it (dropped). An entry the journal does not take goes to stderr.
struct JournalEntry {
    text: Vec<u8>,
    priority: libsystemd::logging::Priority,
    fields: std::sync::Arc<Vec<(String, String)>>,
}

impl std::io::Write for JournalEntry {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for JournalEntry {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.text);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let fields = self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        if libsystemd::logging::journal_send(self.priority, text, fields).is_err() {
            eprintln!("{text}");
        }
    }
}

fn default_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

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
