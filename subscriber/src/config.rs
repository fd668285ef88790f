//! The daemon's configuration file (TOML), parsed into typed structs and
//! validated before any connection is made.
//!
//! ```toml
//! site = "site-b"                          # this site, for the logs
//! state_dir = "/var/lib/cib-replicator"    # default
//! # cib_file = "/path/cib.xml"             # default: $CIB_file, else the live CIB
//! reconnect_max_seconds = 10               # longest pause between reconnects (default 10)
//! strict_rules = false                     # a rule that matches nothing refuses the document
//!                                          # (default false: a warning); per ticket too
//! metrics_listen = "127.0.0.1:9465"        # plain-HTTP /metrics (default); "off": none
//!
//! [tls]
//! cert = "site-b.pem"                      # relative paths: to this file's directory
//! key  = "site-b.key"
//! ca   = "ca.pem"
//!
//! [[ticket]]
//! name  = "geo"
//! mode  = "auto"                           # or "manual", or "lazy"
//! peers = ["https://site-a.example:9443", "https://site-c.example:9443"]
//! rules = ["site-b-rules.toml"]            # run first, in this order
//! xslt  = ["site-b.xsl"]                   # then these, in this order
//! # strict_rules = true                    # overrides the global one for this ticket
//! # stale_after_seconds = 20               # no publisher heard for this long: stale
//! # or, to interleave: steps = [{ xslt = "a.xsl" }, { rules = "b.toml" }]
//! ```
//!
//! Unknown keys are errors (a misspelt key must not silently fall back to a
//! default). Command-line flags override the file through [`Overrides`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use cib_net::protocol::is_valid_ticket;
use cib_net::tls::TlsPaths;

use crate::error::Error;
use crate::fetch::Source;
use crate::pipeline::{load_steps, Step, StepArg};

/// Default directory of the per-ticket state (`<state_dir>/<ticket>/`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cib-replicator";

/// Where `cib-subscriber gate` looks for the configuration when it is given
/// neither `--config` nor `--state-dir` (booth limits its handler line to 64
/// characters, too short for options).
pub const DEFAULT_CONFIG: &str = "/etc/cib-replicator/subscriber.toml";
/// Default longest pause between two attempts to reach a publisher, seconds.
pub const DEFAULT_RECONNECT_MAX_SECONDS: u64 = 10;
/// Default address of the plain-HTTP metrics listener.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9465";
/// Default time given to a document being applied when the daemon is asked
/// to stop, seconds.
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: u64 = 30;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of this site (letters, digits, `.`, `_`, `-`), used in logs.
    pub site: String,
    /// This site's certificate (presented to publishers), key, and the
    /// multi-site CA (the only trust anchor for publishers).
    pub tls: TlsPaths,
    /// Where per-ticket state is kept: `<state_dir>/<ticket>/state.toml`
    /// and, in manual mode, the staged `pending.xml`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// A CIB file to apply to instead of the live CIB (like `CIB_file`).
    #[serde(default)]
    pub cib_file: Option<PathBuf>,
    /// Longest pause between two attempts to reach a publisher, in seconds
    /// (1 to 3600). Pauses start at half a second and double, with jitter.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_seconds: u64,
    /// Time a document being applied gets to finish on shutdown, in seconds.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// Whether a rule that matches nothing refuses the document (the
    /// default: it is logged as a warning and counted). Tickets may
    /// override it.
    #[serde(default)]
    pub strict_rules: bool,
    /// Where `/metrics` is served over plain HTTP, without client
    /// certificates (keep it on loopback); `off`: nowhere.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    /// The tickets followed.
    #[serde(rename = "ticket", default)]
    pub tickets: Vec<TicketConfig>,
}

/// One `[[ticket]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketConfig {
    /// The ticket, as named in `rsc_ticket` and `crm_ticket`.
    pub name: String,
    /// Apply each accepted version (`auto`), stage it for an admin
    /// (`manual`), or keep it verified outside the CIB until the ticket is
    /// acquired here (`lazy`).
    pub mode: Mode,
    /// Base URLs of the publishers of every other site that may hold the
    /// ticket (`https://HOST:PORT`).
    pub peers: Vec<String>,
    /// Declarative rule files, run first, in the order listed.
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// XSLT 1.0 stylesheets, run after the rules, in the order listed.
    #[serde(default)]
    pub xslt: Vec<PathBuf>,
    /// Rules and stylesheets interleaved, in the order listed (instead of
    /// `rules` and `xslt`).
    #[serde(default)]
    pub steps: Vec<StepConfig>,
    /// booth site attribute kept at `current` or `stale` for booth's
    /// `attr-prereq` (see [`crate::booth`]); unset: none.
    #[serde(default)]
    pub booth_attribute: Option<String>,
    /// `strict_rules` for this ticket (unset: the global one).
    #[serde(default)]
    pub strict_rules: Option<bool>,
    /// The booth attribute turns `stale` once no publisher of the ticket has
    /// had an open stream to this site for this many seconds (1 to 86400):
    /// a site cut off cannot know which changes it missed. Unset: silence
    /// alone never makes the copy stale. It must exceed the time booth
    /// takes to move the ticket (`expire` + `acquire-after`) plus a
    /// publisher's start, or the sites that should take over a lost
    /// holder's ticket would count themselves stale first.
    #[serde(default)]
    pub stale_after_seconds: Option<u64>,
}

/// What the daemon does with an accepted version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Apply it to the local CIB at once (as `replicate-now` would).
    Auto,
    /// Stage it in `<state_dir>/<ticket>/pending.xml`; `cib-subscriber
    /// diff --ticket T` shows it and `replicate-now --ticket T` applies it.
    Manual,
    /// Verify it as `auto` would (merge, conflicts, `crm_verify` of the
    /// merged CIB) and keep it in `<state_dir>/<ticket>/lazy.xml`, out of
    /// the CIB; `cib-subscriber gate` (booth's before-acquire-handler)
    /// writes it to the CIB when the ticket is acquired here
    /// ([`crate::lazy`]).
    Lazy,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Auto => "auto",
            Mode::Manual => "manual",
            Mode::Lazy => "lazy",
        })
    }
}

/// One entry of `steps`: exactly one of `rules` and `xslt`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// A declarative rule file.
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// An XSLT 1.0 stylesheet.
    #[serde(default)]
    pub xslt: Option<PathBuf>,
}

/// Values given on the command line, which win over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--site`
    pub site: Option<String>,
    /// `--state-dir`
    pub state_dir: Option<PathBuf>,
    /// `--cib-file`
    pub cib_file: Option<PathBuf>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}

fn default_reconnect_max() -> u64 {
    DEFAULT_RECONNECT_MAX_SECONDS
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
/// `state_dir`, `cib_file`, rules, stylesheets) are resolved against the
/// file's directory. Does not validate (apply the [`Overrides`] first, then
/// call [`Config::validate`]).
///
/// # Errors
///
/// [`Error::Net`] with [`cib_net::Error::ReadConfig`] or
/// [`cib_net::Error::Toml`].
pub fn read_config(path: &Path) -> Result<Config, Error> {
    let mut config: Config = cib_net::config::read_toml(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let join = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    config.tls = config.tls.relative_to(base);
    join(&mut config.state_dir);
    if let Some(f) = &mut config.cib_file {
        join(f);
    }
    for t in &mut config.tickets {
        t.rules.iter_mut().for_each(join);
        t.xslt.iter_mut().for_each(join);
        for s in &mut t.steps {
            if let Some(p) = &mut s.rules {
                join(p);
            }
            if let Some(p) = &mut s.xslt {
                join(p);
            }
        }
    }
    Ok(config)
}

impl Config {
    /// Applies command-line values over the file's.
    pub fn apply(&mut self, o: &Overrides) {
        if let Some(s) = &o.site {
            self.site.clone_from(s);
        }
        if let Some(d) = &o.state_dir {
            self.state_dir.clone_from(d);
        }
        if let Some(f) = &o.cib_file {
            self.cib_file = Some(f.clone());
        }
    }

    /// Checks everything that can be checked without connecting: names,
    /// tickets, peers, that the files named exist, and that every rule file
    /// parses.
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
            return bad("no [[ticket]] configured: nothing to follow".into());
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
            t.peer_urls()?;
            t.steps()?;
            if let Some(s) = t.stale_after_seconds {
                if !(1..=86_400).contains(&s) {
                    return bad(format!("ticket `{}`: stale_after_seconds = {s}: use 1 to 86400", t.name));
                }
            }
            if let Some(a) = &t.booth_attribute {
                if !crate::booth::is_valid_attribute(a) {
                    return bad(format!(
                        "ticket `{}`: booth_attribute \"{}\": use 1 to 64 letters, digits, `_` or `-`",
                        t.name,
                        a.escape_debug()
                    ));
                }
            }
        }
        for (what, p) in [("tls.cert", &self.tls.cert), ("tls.key", &self.tls.key), ("tls.ca", &self.tls.ca)] {
            if !p.is_file() {
                return bad(format!("{what} = {}: no such file", p.display()));
            }
        }
        if let Some(f) = &self.cib_file {
            if !f.is_file() {
                return bad(format!("cib_file = {}: no such file", f.display()));
            }
        }
        if self.state_dir.as_os_str().is_empty() {
            return bad("state_dir is empty".into());
        }
        if !(1..=3600).contains(&self.reconnect_max_seconds) {
            return bad(format!("reconnect_max_seconds = {}: use 1 to 3600", self.reconnect_max_seconds));
        }
        if self.shutdown_grace_seconds > 3600 {
            return bad(format!("shutdown_grace_seconds = {}: use 0 to 3600", self.shutdown_grace_seconds));
        }
        self.metrics_addr()?;
        Ok(())
    }

    /// The address of the metrics listener; `None` when `metrics_listen`
    /// is `off`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when it is neither `off` nor `IP:PORT`.
    pub fn metrics_addr(&self) -> Result<Option<std::net::SocketAddr>, Error> {
        cib_net::metrics::parse_listen(&self.metrics_listen)
            .map_err(|e| Error::Invalid(format!("metrics_listen = \"{}\": {e}", self.metrics_listen.escape_debug())))
    }

    /// The longest pause between reconnects.
    #[must_use]
    pub fn reconnect_max(&self) -> Duration {
        Duration::from_secs(self.reconnect_max_seconds)
    }

    /// The shutdown grace period.
    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// The CIB the daemon reads and patches: `cib_file` if set, else the
    /// one the environment selects (`CIB_file`, or the live cluster).
    #[must_use]
    pub fn cib(&self) -> cib_tools::cib::Cib {
        match &self.cib_file {
            Some(f) => cib_tools::cib::Cib::file(f),
            None => cib_tools::cib::Cib::from_env(),
        }
    }
}

impl TicketConfig {
    /// [`TicketConfig::stale_after_seconds`] as a duration.
    #[must_use]
    pub fn stale_after(&self) -> Option<Duration> {
        self.stale_after_seconds.map(Duration::from_secs)
    }

    /// Whether a rule that matches nothing refuses this ticket's documents:
    /// the ticket's `strict_rules`, else `global`.
    #[must_use]
    pub fn strict_rules(&self, global: bool) -> bool {
        self.strict_rules.unwrap_or(global)
    }

    /// The peers as URLs: `https://`, a host, no credentials, no path (the
    /// protocol's paths are appended), no duplicates.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the ticket and the peer.
    pub fn peer_urls(&self) -> Result<Vec<Url>, Error> {
        let bad = |m: String| Error::Invalid(format!("ticket `{}`: {m}", self.name));
        if self.peers.is_empty() {
            return Err(bad("`peers` is empty: list the publishers of the other sites (https://HOST:PORT)".into()));
        }
        let mut out: Vec<Url> = Vec::new();
        for p in &self.peers {
            let url = match p.parse::<Source>() {
                Ok(Source::Url(u)) => u,
                Ok(Source::File(_)) => return Err(bad(format!("peer \"{p}\" is not an https:// URL"))),
                Err(e) => return Err(bad(format!("peer \"{p}\": {e}"))),
            };
            if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
                return Err(bad(format!(
                    "peer \"{p}\": give the publisher's base URL (https://HOST:PORT), the paths are the protocol's"
                )));
            }
            if out.contains(&url) {
                return Err(bad(format!("peer \"{p}\" is listed twice")));
            }
            out.push(url);
        }
        Ok(out)
    }

    /// The transform steps in the order they run, loaded (rule files
    /// parsed, stylesheets checked to exist).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `steps` is combined with `rules`/`xslt`, an
    /// entry of `steps` names not exactly one file, or a file is missing or
    /// not valid.
    pub fn steps(&self) -> Result<Vec<Step>, Error> {
        let bad = |m: String| Error::Invalid(format!("ticket `{}`: {m}", self.name));
        let args: Vec<StepArg> = if self.steps.is_empty() {
            self.rules
                .iter()
                .map(|p| StepArg::Rules(p.clone()))
                .chain(self.xslt.iter().map(|p| StepArg::Xslt(p.clone())))
                .collect()
        } else {
            if !self.rules.is_empty() || !self.xslt.is_empty() {
                return Err(bad("use either `steps` or `rules`/`xslt`, not both".into()));
            }
            let mut out = Vec::new();
            for (i, s) in self.steps.iter().enumerate() {
                match (&s.rules, &s.xslt) {
                    (Some(r), None) => out.push(StepArg::Rules(r.clone())),
                    (None, Some(x)) => out.push(StepArg::Xslt(x.clone())),
                    _ => return Err(bad(format!("steps entry #{}: give exactly one of `rules` and `xslt`", i + 1))),
                }
            }
            out
        };
        load_steps(args.into_iter().enumerate().collect()).map_err(|e| bad(format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        site = "site-b"
        [tls]
        cert = "b.pem"
        key = "b.key"
        ca = "ca.pem"
        [[ticket]]
        name = "geo"
        mode = "auto"
        peers = ["https://site-a.example:9443"]
    "#;

    fn with_files(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.pem", "b.key", "ca.pem", "cib.xml", "x.xsl"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        std::fs::write(dir.path().join("r.toml"), "[[rule]]\ntype = \"path\"\nfrom = \"/a\"\nto = \"/b\"\n").unwrap();
        let path = dir.path().join("subscriber.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_apply() {
        let c: Config = MINIMAL.parse().unwrap();
        assert_eq!(c.state_dir, Path::new("/var/lib/cib-replicator"));
        assert_eq!(c.reconnect_max_seconds, 10);
        assert_eq!(c.shutdown_grace_seconds, 30);
        assert_eq!(c.cib_file, None);
        assert!(!c.strict_rules);
        assert_eq!(c.metrics_addr().unwrap(), Some("127.0.0.1:9465".parse().unwrap()));
        assert!(!c.tickets[0].strict_rules(c.strict_rules));
        assert_eq!(c.tickets[0].mode, Mode::Auto);
        assert!(c.tickets[0].steps().unwrap().is_empty());
    }

    #[test]
    fn unknown_keys_and_modes_are_refused() {
        let err = format!("state_directory = \"/x\"\n{MINIMAL}").parse::<Config>().unwrap_err();
        assert!(err.to_string().contains("state_directory"), "{err}");
        let err = MINIMAL.replace("peers =", "peer =").parse::<Config>().unwrap_err();
        assert!(err.to_string().contains("peer"), "{err}");
        let err = MINIMAL.replace("\"auto\"", "\"automatic\"").parse::<Config>().unwrap_err();
        assert!(err.to_string().contains("automatic"), "{err}");
        let lazy: Config = MINIMAL.replace("\"auto\"", "\"lazy\"").parse().unwrap();
        assert_eq!((lazy.tickets[0].mode, lazy.tickets[0].mode.to_string().as_str()), (Mode::Lazy, "lazy"));
        let err = MINIMAL.replace("mode = \"auto\"", "").parse::<Config>().unwrap_err();
        assert!(err.to_string().contains("mode"), "{err}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_file_and_validate() {
        let text = format!(
            "cib_file = \"cib.xml\"\nstate_dir = \"state\"\n{MINIMAL}\nrules = [\"r.toml\"]\nxslt = [\"x.xsl\"]\n"
        );
        let (dir, path) = with_files(&text);
        let c = read_config(&path).unwrap();
        assert_eq!(c.tls.cert, dir.path().join("b.pem"));
        assert_eq!(c.cib_file, Some(dir.path().join("cib.xml")));
        assert_eq!(c.state_dir, dir.path().join("state"));
        assert_eq!(c.tickets[0].rules, [dir.path().join("r.toml")]);
        c.validate().unwrap();
        let steps = c.tickets[0].steps().unwrap();
        assert!(matches!(&steps[..], [Step::Rules(..), Step::Xslt(..)]), "{steps:?}");
    }

    #[test]
    fn steps_interleave_in_order() {
        let text = format!("{MINIMAL}\nsteps = [{{ xslt = \"x.xsl\" }}, {{ rules = \"r.toml\" }}, {{ xslt = \"x.xsl\" }}]\n");
        let (_dir, path) = with_files(&text);
        let c = read_config(&path).unwrap();
        c.validate().unwrap();
        let steps = c.tickets[0].steps().unwrap();
        assert!(matches!(&steps[..], [Step::Xslt(..), Step::Rules(..), Step::Xslt(..)]), "{steps:?}");
    }

    #[test]
    fn the_commented_example_parses_and_its_steps_load() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/subscriber.toml");
        let c = read_config(&path).unwrap();
        assert_eq!(c.site, "site-b");
        assert_eq!(c.tickets.len(), 1);
        assert_eq!(c.tickets[0].peer_urls().unwrap().len(), 2);
        assert_eq!(c.tickets[0].steps().unwrap().len(), 1);
    }

    #[test]
    fn strict_rules_per_ticket_over_global() {
        let c: Config = format!("strict_rules = true\nmetrics_listen = \"off\"\n{MINIMAL}").parse().unwrap();
        assert!(c.tickets[0].strict_rules(c.strict_rules));
        assert_eq!(c.metrics_addr().unwrap(), None);
        let c: Config = format!("strict_rules = true\n{MINIMAL}strict_rules = false\n").parse().unwrap();
        assert!(!c.tickets[0].strict_rules(c.strict_rules));
    }

    #[test]
    fn flags_override_the_file() {
        let mut c: Config = MINIMAL.parse().unwrap();
        c.apply(&Overrides {
            site: Some("site-z".into()),
            state_dir: Some("/tmp/s".into()),
            cib_file: Some("/x.xml".into()),
        });
        assert_eq!(c.site, "site-z");
        assert_eq!(c.state_dir, Path::new("/tmp/s"));
        assert_eq!(c.cib_file.as_deref(), Some(Path::new("/x.xml")));
    }

    #[test]
    fn invalid_values_are_refused() {
        let (dir, path) = with_files(MINIMAL);
        let good = read_config(&path).unwrap();
        good.validate().unwrap();
        let r = dir.path().join("r.toml");
        let x = dir.path().join("x.xsl");
        type Change = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|c| c.site = "site b".into()), "site"),
            (Box::new(|c| c.tickets.clear()), "no [[ticket]]"),
            (Box::new(|c| c.tickets[0].name = "a/b".into()), "ticket name"),
            (Box::new(|c| c.tickets.push(c.tickets[0].clone())), "configured twice"),
            (Box::new(|c| c.tickets[0].peers.clear()), "`peers` is empty"),
            (Box::new(|c| c.tickets[0].peers = vec!["http://a:1".into()]), "plaintext"),
            (Box::new(|c| c.tickets[0].peers = vec!["site-a:9443".into()]), "not an https:// URL"),
            (Box::new(|c| c.tickets[0].peers = vec!["https://a:1/v1/tickets/geo/stream".into()]), "base URL"),
            (Box::new(|c| c.tickets[0].peers = vec!["https://a:1".into(), "https://a:1/".into()]), "listed twice"),
            (Box::new(|c| c.tickets[0].rules = vec!["/nonexistent.toml".into()]), "nonexistent.toml"),
            (Box::new(|c| c.tickets[0].xslt = vec!["/nonexistent.xsl".into()]), "nonexistent.xsl"),
            (
                Box::new(move |c| {
                    c.tickets[0].rules = vec![r.clone()];
                    c.tickets[0].steps = vec![StepConfig { rules: None, xslt: Some(x.clone()) }];
                }),
                "not both",
            ),
            (Box::new(|c| c.tickets[0].steps = vec![StepConfig { rules: None, xslt: None }]), "exactly one"),
            (Box::new(|c| c.tls.ca = "/nonexistent/ca.pem".into()), "tls.ca"),
            (Box::new(|c| c.cib_file = Some("/nonexistent/cib.xml".into())), "cib_file"),
            (Box::new(|c| c.reconnect_max_seconds = 0), "reconnect_max_seconds"),
            (Box::new(|c| c.tickets[0].stale_after_seconds = Some(0)), "stale_after_seconds"),
            (Box::new(|c| c.metrics_listen = "localhost".into()), "metrics_listen"),
        ];
        for (change, expect) in cases {
            let mut c = good.clone();
            change(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(expect), "expected `{expect}` in: {err}");
        }
    }
}
