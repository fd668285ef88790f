//! The publisher's configuration file (TOML), parsed into typed structs and
//! validated before any port is bound.
//!
//! ```toml
//! site = "site-a"                 # sent to subscribers as X-Site
//! listen = "0.0.0.0:9443"         # default
//! recheck_seconds = 1             # periodic re-check (default 1)
//! # cib_file = "/path/cib.xml"    # default: $CIB_file, else the live CIB
//! metrics_listen = "127.0.0.1:9464"  # plain-HTTP /metrics, /status.json, /status (default); "off": none
//!
//! [tls]
//! cert = "site-a.pem"             # relative paths: to this file's directory
//! key  = "site-a.key"
//! ca   = "ca.pem"
//!
//! [[ticket]]
//! name  = "geo"
//! allow = ["site-b.example", "site-c.example"]
//!
//! [limits]                        # every key optional; these are the defaults
//! max_connections = 256           # TCP connections held at once, whole server
//! max_connections_per_peer = 16   # ... from one IP address
//! handshake_timeout_seconds = 10  # to finish the TLS handshake
//! idle_timeout_seconds = 60       # without a request in flight or a stream
//! max_streams_per_client = 4      # event streams per certificate and ticket
//! ```
//!
//! Unknown keys are errors (a misspelt key must not silently fall back to a
//! default). Command-line flags override the file through [`Overrides`].

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use cib_net::protocol::is_valid_ticket;
use cib_net::tls::TlsPaths;

use crate::error::Error;

/// Default listening address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9443";
/// Default address of the plain-HTTP metrics listener (the mTLS port
/// serves `/metrics` too).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
/// Default interval of the periodic safety re-check, in seconds.
pub const DEFAULT_RECHECK_SECONDS: u64 = 1;
/// Default time open connections get to finish after SIGTERM, in seconds.
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: u64 = 5;
/// Default cap on TCP connections held at once by the whole server.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default cap on TCP connections held at once from one IP address.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 16;
/// Default time a connection has to finish its TLS handshake, in seconds.
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECONDS: u64 = 10;
/// Default time an authenticated connection may stay without a request in
/// flight and without an open stream, in seconds.
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 60;
/// Default cap on event streams open at once per client certificate and
/// ticket.
pub const DEFAULT_MAX_STREAMS_PER_CLIENT: usize = 4;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of this site, sent as `X-Site` (letters, digits, `.`, `_`, `-`).
    pub site: String,
    /// Address to listen on (HTTPS with mutual TLS only).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// This site's certificate, key, and the multi-site CA.
    pub tls: TlsPaths,
    /// The tickets served, each with the client names allowed to read it.
    #[serde(rename = "ticket", default)]
    pub tickets: Vec<TicketConfig>,
    /// A CIB file to serve from instead of the live CIB (like `CIB_file`).
    #[serde(default)]
    pub cib_file: Option<PathBuf>,
    /// Interval of the periodic safety re-check, in seconds (1 to 86400).
    #[serde(default = "default_recheck")]
    pub recheck_seconds: u64,
    /// Time open connections get to finish on shutdown, in seconds.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// Caps and timeouts that keep a flood of connections from starving
    /// the subscribers (`[limits]`).
    #[serde(default)]
    pub limits: Limits,
    /// Where `/metrics` is also served over plain HTTP, without client
    /// certificates (keep it on loopback), with the fleet view
    /// (`/status.json`, `/status`); `off`: metrics only on `listen`, no
    /// fleet view.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
}

/// The `[limits]` table: what one client, or many, may hold of the server.
///
/// A connection over either connection cap is closed as soon as it is
/// accepted. Connections that have not finished the TLS handshake count
/// against both caps until the handshake timeout frees them; the per-peer
/// cap is what keeps one address from filling the whole server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// TCP connections held at once by the whole server.
    pub max_connections: usize,
    /// TCP connections held at once from one IP address (IPv6: from one
    /// /64 prefix).
    pub max_connections_per_peer: usize,
    /// Seconds a connection has to finish its TLS handshake.
    pub handshake_timeout_seconds: u64,
    /// Seconds an authenticated connection may stay without a request in
    /// flight and without an open event stream before it is closed.
    pub idle_timeout_seconds: u64,
    /// Event streams open at once per client certificate and ticket; one
    /// more is answered `429`.
    pub max_streams_per_client: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            handshake_timeout_seconds: DEFAULT_HANDSHAKE_TIMEOUT_SECONDS,
            idle_timeout_seconds: DEFAULT_IDLE_TIMEOUT_SECONDS,
            max_streams_per_client: DEFAULT_MAX_STREAMS_PER_CLIENT,
        }
    }
}

impl Limits {
    /// The TLS handshake timeout.
    #[must_use]
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_seconds)
    }

    /// The idle timeout of authenticated connections.
    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_seconds)
    }

    /// Checks the ranges; the message names the key.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the first value out of range.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Invalid(m));
        if !(1..=1_000_000).contains(&self.max_connections) {
            return bad(format!("limits.max_connections = {}: use 1 to 1000000", self.max_connections));
        }
        if !(1..=self.max_connections).contains(&self.max_connections_per_peer) {
            return bad(format!(
                "limits.max_connections_per_peer = {}: use 1 to max_connections ({})",
                self.max_connections_per_peer, self.max_connections
            ));
        }
        for (key, value) in [
            ("handshake_timeout_seconds", self.handshake_timeout_seconds),
            ("idle_timeout_seconds", self.idle_timeout_seconds),
        ] {
            if !(1..=3600).contains(&value) {
                return bad(format!("limits.{key} = {value}: use 1 to 3600"));
            }
        }
        if !(1..=1_000_000).contains(&self.max_streams_per_client) {
            return bad(format!("limits.max_streams_per_client = {}: use 1 to 1000000", self.max_streams_per_client));
        }
        Ok(())
    }
}

/// One `[[ticket]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketConfig {
    /// The ticket, as named in `rsc_ticket` and `crm_ticket`.
    pub name: String,
    /// Client certificate names (SAN DNS names, or the CN of a certificate
    /// without DNS names) allowed to read this ticket; case-insensitive.
    pub allow: Vec<String>,
}

/// Values given on the command line, which win over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--site`
    pub site: Option<String>,
    /// `--cib-file`
    pub cib_file: Option<PathBuf>,
    /// `--recheck-seconds`
    pub recheck_seconds: Option<u64>,
}

fn default_listen() -> SocketAddr {
    // A constant that parses: covered by `defaults_apply`.
    DEFAULT_LISTEN.parse().expect("DEFAULT_LISTEN is a socket address")
}

fn default_recheck() -> u64 {
    DEFAULT_RECHECK_SECONDS
}

fn default_grace() -> u64 {
    DEFAULT_SHUTDOWN_GRACE_SECONDS
}

fn default_metrics_listen() -> String {
    DEFAULT_METRICS_LISTEN.to_owned()
}

impl FromStr for Config {
    type Err = Error;

    /// Parses the TOML text; paths stay as written. Does not validate.
    fn from_str(text: &str) -> Result<Config, Error> {
        Ok(cib_net::config::parse_toml(text)?)
    }
}

/// Reads and parses a configuration file; relative paths in it (`[tls]`,
/// `cib_file`) are resolved against the file's directory. Does not validate
/// (apply the [`Overrides`] first, then call [`Config::validate`]).
///
/// # Errors
///
/// [`Error::Net`] with [`cib_net::Error::ReadConfig`] or
/// [`cib_net::Error::Toml`].
pub fn read_config(path: &Path) -> Result<Config, Error> {
    let mut config: Config = cib_net::config::read_toml(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    config.tls = config.tls.relative_to(base);
    if let Some(f) = &config.cib_file {
        if f.is_relative() {
            config.cib_file = Some(base.join(f));
        }
    }
    Ok(config)
}

impl Config {
    /// The address of the plain-HTTP metrics listener; `None` when
    /// `metrics_listen` is `off`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when it is neither `off` nor `IP:PORT`.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, Error> {
        cib_net::metrics::parse_listen(&self.metrics_listen)
            .map_err(|e| Error::Invalid(format!("metrics_listen = \"{}\": {e}", self.metrics_listen.escape_debug())))
    }

    /// Applies command-line values over the file's.
    pub fn apply(&mut self, o: &Overrides) {
        if let Some(l) = o.listen {
            self.listen = l;
        }
        if let Some(s) = &o.site {
            self.site.clone_from(s);
        }
        if let Some(f) = &o.cib_file {
            self.cib_file = Some(f.clone());
        }
        if let Some(r) = o.recheck_seconds {
            self.recheck_seconds = r;
        }
    }

    /// Checks everything that can be checked without binding a port: names,
    /// tickets and allow-lists, and that the files named exist.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the first problem.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Invalid(m));
        if !cib_net::protocol::is_valid_site(&self.site) {
            return bad(format!(
                "site = \"{}\": use 1 to 253 letters, digits, `.`, `_` or `-`",
                self.site.escape_debug()
            ));
        }
        if self.tickets.is_empty() {
            return bad("no [[ticket]] configured: nothing to publish".into());
        }
        let mut seen = BTreeSet::new();
        for t in &self.tickets {
            if !is_valid_ticket(&t.name) {
                return bad(format!(
                    "ticket name \"{}\": use letters, digits, `.`, `_` or `-`, starting with a letter or `_`",
                    t.name.escape_debug()
                ));
            }
            if !seen.insert(t.name.as_str()) {
                return bad(format!("ticket `{}` is configured twice", t.name));
            }
            if t.allow.is_empty() {
                return bad(format!(
                    "ticket `{}`: `allow` is empty, no site could read it; list the certificate names of the subscribing sites",
                    t.name
                ));
            }
            if let Some(a) = t.allow.iter().find(|a| a.trim().is_empty()) {
                return bad(format!("ticket `{}`: empty name \"{a}\" in `allow`", t.name));
            }
        }
        for (what, p) in [("tls.cert", &self.tls.cert), ("tls.key", &self.tls.key), ("tls.ca", &self.tls.ca)] {
            if !p.is_file() {
                return bad(format!("{what} = {}: no such file", p.display()));
            }
        }
        self.metrics_addr()?;
        if let Some(f) = &self.cib_file {
            if !f.is_file() {
                return bad(format!("cib_file = {}: no such file", f.display()));
            }
        }
        if !(1..=86_400).contains(&self.recheck_seconds) {
            return bad(format!("recheck_seconds = {}: use 1 to 86400", self.recheck_seconds));
        }
        if self.shutdown_grace_seconds > 3600 {
            return bad(format!("shutdown_grace_seconds = {}: use 0 to 3600", self.shutdown_grace_seconds));
        }
        self.limits.validate()
    }

    /// The periodic re-check interval.
    #[must_use]
    pub fn recheck(&self) -> Duration {
        Duration::from_secs(self.recheck_seconds)
    }

    /// The shutdown grace period.
    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// The configured ticket names, in file order.
    #[must_use]
    pub fn ticket_names(&self) -> Vec<String> {
        self.tickets.iter().map(|t| t.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        site = "site-a"
        [tls]
        cert = "a.pem"
        key = "a.key"
        ca = "ca.pem"
        [[ticket]]
        name = "geo"
        allow = ["site-b.example"]
    "#;

    fn with_files(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.pem", "a.key", "ca.pem", "cib.xml"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let path = dir.path().join("publisher.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_apply() {
        let c: Config = MINIMAL.parse().unwrap();
        assert_eq!(c.listen, "0.0.0.0:9443".parse().unwrap());
        assert_eq!(c.metrics_addr().unwrap(), Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(c.recheck_seconds, 1);
        assert_eq!(c.shutdown_grace_seconds, 5);
        assert_eq!(c.cib_file, None);
        assert_eq!(c.ticket_names(), ["geo"]);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(
            (c.limits.max_connections, c.limits.max_connections_per_peer, c.limits.max_streams_per_client),
            (256, 16, 4)
        );
        assert_eq!(c.limits.handshake_timeout(), Duration::from_secs(10));
        assert_eq!(c.limits.idle_timeout(), Duration::from_secs(60));
    }

    #[test]
    fn limits_are_read_and_partial_tables_keep_the_other_defaults() {
        let c: Config = format!("{MINIMAL}\n[limits]\nmax_connections_per_peer = 2\nidle_timeout_seconds = 5\n").parse().unwrap();
        assert_eq!(c.limits.max_connections_per_peer, 2);
        assert_eq!(c.limits.idle_timeout(), Duration::from_secs(5));
        assert_eq!(c.limits.max_connections, DEFAULT_MAX_CONNECTIONS);
        let err = format!("{MINIMAL}\n[limits]\nmax_conections = 2\n").parse::<Config>().unwrap_err();
        assert!(err.to_string().contains("max_conections"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = format!("recheck_secs = 5\n{MINIMAL}").parse::<Config>().unwrap_err();
        assert!(err.to_string().contains("recheck_secs"), "{err}");
        let err = MINIMAL.replace("allow =", "alow =").parse::<Config>().unwrap_err();
        assert!(err.to_string().contains("alow"), "{err}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_file_and_validate() {
        let (dir, path) = with_files(&format!("cib_file = \"cib.xml\"\n{MINIMAL}"));
        let c = read_config(&path).unwrap();
        assert_eq!(c.tls.cert, dir.path().join("a.pem"));
        assert_eq!(c.cib_file, Some(dir.path().join("cib.xml")));
        c.validate().unwrap();
    }

    #[test]
    fn missing_files_are_named() {
        let (dir, path) = with_files(MINIMAL);
        std::fs::remove_file(dir.path().join("a.key")).unwrap();
        let err = read_config(&path).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains("tls.key"), "{err}");
    }

    #[test]
    fn flags_override_the_file() {
        let mut c: Config = MINIMAL.parse().unwrap();
        c.apply(&Overrides {
            listen: Some("127.0.0.1:1".parse().unwrap()),
            site: Some("site-z".into()),
            cib_file: Some("/x.xml".into()),
            recheck_seconds: Some(2),
        });
        assert_eq!(c.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(c.site, "site-z");
        assert_eq!(c.cib_file.as_deref(), Some(Path::new("/x.xml")));
        assert_eq!(c.recheck_seconds, 2);
    }

    #[test]
    fn invalid_values_are_refused() {
        let (_dir, path) = with_files(MINIMAL);
        let good = read_config(&path).unwrap();
        good.validate().unwrap();
        type Change = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|c| c.site = "site a".into()), "site"),
            (Box::new(|c| c.tickets.clear()), "no [[ticket]]"),
            (Box::new(|c| c.tickets[0].allow.clear()), "`allow` is empty"),
            (Box::new(|c| c.tickets[0].allow.push(" ".into())), "empty name"),
            (Box::new(|c| c.tickets[0].name = "a/b".into()), "ticket name"),
            (Box::new(|c| c.tickets.push(c.tickets[0].clone())), "configured twice"),
            (Box::new(|c| c.recheck_seconds = 0), "recheck_seconds"),
            (Box::new(|c| c.cib_file = Some("/nonexistent/cib.xml".into())), "cib_file"),
            (Box::new(|c| c.limits.max_connections = 0), "limits.max_connections"),
            (Box::new(|c| c.limits.max_connections_per_peer = 0), "limits.max_connections_per_peer"),
            (Box::new(|c| c.limits.max_connections_per_peer = 257), "limits.max_connections_per_peer"),
            (Box::new(|c| c.limits.handshake_timeout_seconds = 0), "limits.handshake_timeout_seconds"),
            (Box::new(|c| c.limits.idle_timeout_seconds = 3601), "limits.idle_timeout_seconds"),
            (Box::new(|c| c.limits.max_streams_per_client = 0), "limits.max_streams_per_client"),
        ];
        for (change, expect) in cases {
            let mut c = good.clone();
            change(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(expect), "expected `{expect}` in: {err}");
        }
    }
}
