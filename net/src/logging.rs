//! Where the daemons log, and at which level.
//!
//! Under Pacemaker (`--log journal`, what the OCF agents choose without a
//! `logfile`), each event becomes one entry of the system log: the
//! journal when its socket exists, else syslog (`/dev/log`), else
//! standard error. The entry's text is the whole line as on standard error
//! — level, target, message and fields (`ticket=geo peer=… error=…`) —
//! because `journalctl`, `crm_report`, `crm report` and sosreport all show
//! the text, not separate fields. Journal entries also carry `PRIORITY`
//! (from the level), `SYSLOG_IDENTIFIER` and, under an OCF agent,
//! `OCF_RESOURCE`; syslog lines the identifier as their tag and the
//! priority. The formatting is tracing-subscriber's, the journal protocol
//! libsystemd's, syslog's the `syslog` crate's.
//!
//! The level is a filter as in `RUST_LOG`; with `--log-level-file` it is
//! read from that file at start and again at each SIGHUP
//! ([`LogLevel::reload`]), which is how the agents' `log_level` parameter
//! is reloadable.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libsystemd::logging::Priority;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// Longest log filter read from a `--log-level-file`.
const MAX_LEVEL_FILE_BYTES: u64 = 4096;

/// Where a daemon logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error (a terminal, or the file the OCF agent appends it to).
    Stderr,
    /// The system log: the systemd journal, else syslog (what the OCF
    /// agents choose when no `logfile` is set).
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

/// The daemons' logging options (`--log`, `--log-level-file`), shared by
/// `cib-publisher serve` and `cib-subscriber run`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Where the log goes: stderr, or the system log — the systemd journal
    /// (identifier the daemon's name, field OCF_RESOURCE from
    /// $OCF_RESOURCE_INSTANCE), else syslog (/dev/log), else stderr. The
    /// level is RUST_LOG's (default info) unless --log-level-file is given.
    #[arg(long, value_name = "TARGET", value_parser = ["stderr", "journal"], default_value = "stderr")]
    pub log: String,
    /// Read the log filter from FILE (one line, as RUST_LOG: `debug`,
    /// `info,cib_subscriber=debug`) at start and again at each SIGHUP;
    /// RUST_LOG applies when FILE cannot be read. The OCF agents write their
    /// `log_level` parameter there, which makes that parameter reloadable.
    #[arg(long, value_name = "FILE")]
    pub log_level_file: Option<PathBuf>,
}

impl LogArgs {
    /// Starts logging as these options say ([`init_logging`]).
    pub fn init(&self, identifier: &str) -> LogLevel {
        init_logging(LogTarget::from_name(&self.log), identifier, self.log_level_file.as_deref())
    }
}

/// The daemon's log filter, which a SIGHUP may change: the OCF agents write
/// their `log_level` parameter into a file (`--log-level-file`) and send
/// SIGHUP on `reload-agent`, so a new level needs no restart.
#[derive(Debug, Clone)]
pub struct LogLevel {
    handle: tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
    file: Option<PathBuf>,
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
fn read_filter(file: &Path) -> Result<EnvFilter, String> {
    use std::io::Read as _;

    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_LEVEL_FILE_BYTES).read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Err("the file is empty".into());
    }
    EnvFilter::try_new(text).map_err(|e| format!("`{}`: {e}", text.escape_debug()))
}

fn default_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Starts logging to `target` (see the module documentation). The filter
/// is the one in `level_file` when given and readable, else `RUST_LOG`'s,
/// else `info`; [`LogLevel::reload`] reads `level_file` again.
pub fn init_logging(target: LogTarget, identifier: &str, level_file: Option<&Path>) -> LogLevel {
    let filter = match level_file.map(|f| (f, read_filter(f))) {
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
        file: level_file.map(Path::to_owned),
    };
    let registry = tracing_subscriber::registry().with(filter);
    if target == LogTarget::Journal {
        match SystemLog::open(identifier) {
            Ok(log) => {
                registry
                    .with(
                        tracing_subscriber::fmt::layer()
                            .with_writer(log)
                            .with_ansi(false)
                            .without_time(),
                    )
                    .init();
                return level;
            }
            Err(e) => eprintln!("{identifier}: {e}: logging to stderr"),
        }
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

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

/// The system log the entries go to.
#[derive(Clone)]
enum SystemLog {
    /// The journal, with these fields on every entry.
    Journal(Arc<Vec<(String, String)>>),
    /// Syslog over `/dev/log`.
    Syslog(Arc<Mutex<Syslog>>),
}

impl SystemLog {
    /// The journal when its socket exists, else syslog, else why neither.
    fn open(identifier: &str) -> Result<SystemLog, String> {
        if Path::new(libsystemd::logging::SD_JOURNAL_SOCK_PATH).exists() {
            let mut fields = vec![("SYSLOG_IDENTIFIER".to_owned(), identifier.to_owned())];
            if let Ok(resource) = std::env::var("OCF_RESOURCE_INSTANCE") {
                fields.push(("OCF_RESOURCE".to_owned(), resource));
            }
            return Ok(SystemLog::Journal(Arc::new(fields)));
        }
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: identifier.to_owned(),
            pid: std::process::id(),
        };
        syslog::unix(formatter)
            .map(|logger| SystemLog::Syslog(Arc::new(Mutex::new(logger))))
            .map_err(|e| format!("no systemd journal and no syslog ({e})"))
    }

    /// Sends one entry; false when the log did not take it.
    fn send(&self, priority: Priority, text: &str) -> bool {
        match self {
            SystemLog::Journal(fields) => {
                let fields = fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                libsystemd::logging::journal_send(priority, text, fields).is_ok()
            }
            SystemLog::Syslog(logger) => {
                let mut logger = logger.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match priority {
                    Priority::Emergency | Priority::Alert | Priority::Critical | Priority::Error => logger.err(text),
                    Priority::Warning => logger.warning(text),
                    Priority::Notice => logger.notice(text),
                    Priority::Info => logger.info(text),
                    Priority::Debug => logger.debug(text),
                }
                .is_ok()
            }
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SystemLog {
    type Writer = Entry;

    fn make_writer(&'a self) -> Entry {
        self.entry(Priority::Notice)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Entry {
        // The mapping of tracing-journald and of systemd's own tools.
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

impl SystemLog {
    fn entry(&self, priority: Priority) -> Entry {
        Entry {
            text: Vec::new(),
            priority,
            log: self.clone(),
        }
    }
}

/// One event's text, sent to the system log when the formatter is done
/// with it (dropped). An entry the log does not take goes to stderr.
struct Entry {
    text: Vec<u8>,
    priority: Priority,
    log: SystemLog,
}

impl std::io::Write for Entry {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.text);
        let text = text.trim();
        if !text.is_empty() && !self.log.send(self.priority, text) {
            let _ = writeln!(std::io::stderr(), "{text}");
        }
    }
}
