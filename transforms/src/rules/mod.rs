//! Per-site declarative transform rules.
//!
//! A subscriber site rewrites the replicated `<configuration>` (its
//! `<resources>`, `<constraints>` and `<tags>`) to fit the site before applying
//! it: other addresses, other paths, other parameter values, resources the
//! site does not run. The rewrites are written as rules in a TOML file, as an
//! array of tables `[[rule]]`, each with a `type`. Rules apply in the order
//! written, each to the result of the previous one; [`RuleSet::extend`]
//! concatenates the rules of several files.
//!
//! ```toml
//! # Addresses: every IPv4/IPv6 address inside `from` found in an attribute
//! # value gets the same host part in `to` (same family, same prefix length).
//! # A bare address is a /32 (/128) network.
//! [[rule]]
//! type = "ip"
//! from = "192.168.1.0/24"
//! to   = "10.2.1.0/24"
//! # resource = "vip"          # optional: only inside this element's subtree
//!
//! # Paths: a path token equal to `from` or starting with `from/` is rewritten
//! # (`/srv/site-abc` is not under `/srv/site-a`). Both must be absolute.
//! [[rule]]
//! type = "path"
//! from = "/srv/site-a"
//! to   = "/srv/site-b"
//! # resource = "web"          # optional
//!
//! # One nvpair of one resource (primitive, group, clone, master, bundle or
//! # template), in its own instance_attributes (default), meta_attributes or
//! # utilization: changed where it exists, else added (creating the set
//! # `{resource}-instance_attributes` if the resource has none).
//! [[rule]]
//! type = "set"
//! resource = "db"
//! name = "ip"
//! value = "10.0.0.5"
//! kind = "instance"           # or "meta", "utilization"
//!
//! # Regular expression (regex crate syntax) over attribute values; `$1` or
//! # `${1}` in `replace` insert groups.
//! [[rule]]
//! type = "regex"
//! pattern = 'site-a\.example\.com'
//! replace = "site-b.example.com"
//! attributes = ["value"]      # optional: only these attribute names
//! resource = "web"            # optional
//!
//! # Remove an element (and its subtree) by id. Constraints or tags that
//! # reference a dropped resource are not touched: drop them too.
//! [[rule]]
//! type = "drop"
//! id = "backup-job"
//! missing_ok = true           # optional: no error if there is no such element
//! ```
//!
//! Unknown keys and unknown types are refused, with TOML's message naming
//! the line and column of what is wrong. Each rule is named in messages as
//! `rule #N (TYPE) FILE:LINE`, LINE being that of its `[[rule]]` table;
//! [`RuleSet::apply_counted`] says how many values each rule changed, so
//! that a rule that changed nothing can be reported. The value-rewriting rules
//! (`ip`, `path`, `regex`) never rewrite ids nor the attributes that hold ids
//! or names ([`REFERENCE_ATTRS`]), so they cannot break references. Ids in
//! `<obj_ref>` and `<resource_ref>` are references, not element ids: `drop`,
//! `set` and `resource = ...` never select those elements.
//!
//! Addresses are recognized only as complete tokens: `1192.168.1.10`,
//! `192.168.1.10.5` or `x192.168.1.10` contain no address, and
//! `192.168.1.100` is not `192.168.1.10`. A suffix such as `/24`, `:80` or
//! `%eth0` is kept. Rewritten IPv6 addresses are written in canonical
//! compressed form; IPv6 addresses embedding an IPv4 one (`::ffff:1.2.3.4`)
//! are IPv6 addresses, left alone by IPv4 rules.

mod structure;
#[cfg(test)]
mod tests;
mod values;

use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::error::Error;
use crate::xml::Element;
use structure::{drop_element, set_nvpair};
use values::{rewrite_values, Rewrite};

pub use values::REFERENCE_ATTRS;

/// An ordered list of parsed and validated transform rules.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

/// One validated rule and where it came from.
#[derive(Debug, Clone)]
struct Rule {
    /// File (or other label) the rule was read from.
    origin: String,
    /// 1-based position in that file.
    number: usize,
    /// 1-based line of its `[[rule]]` table in that file.
    line: usize,
    /// What the rule does.
    action: Action,
}

/// The validated form of each rule type.
#[derive(Debug, Clone)]
enum Action {
    Ip {
        from: IpNet,
        to: IpNet,
        scope: Option<String>,
    },
    Path {
        from: String,
        to: String,
        scope: Option<String>,
    },
    Set {
        resource: String,
        name: String,
        value: String,
        kind: NvKind,
    },
    Regex {
        re: Regex,
        replace: String,
        attributes: Option<Vec<String>>,
        scope: Option<String>,
    },
    Drop {
        id: String,
        missing_ok: bool,
    },
}

/// One `[[rule]]` table as written, by `type`; each kind refuses the keys
/// of the others.
#[derive(Debug)]
enum RawRule {
    Ip(RawIp),
    Path(RawPath),
    Set(RawSet),
    Regex(RawRegex),
    Drop(RawDrop),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIp {
    from: String,
    to: String,
    resource: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    from: String,
    to: String,
    resource: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    resource: String,
    name: String,
    value: String,
    #[serde(default)]
    kind: NvKind,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegex {
    pattern: String,
    replace: String,
    attributes: Option<Vec<String>>,
    resource: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrop {
    id: String,
    #[serde(default)]
    missing_ok: bool,
}

/// The rule types, as `type` names them.
const TYPES: &str = "`ip`, `path`, `set`, `regex` or `drop`";

/// The `[[rule]]` tables of a file, each with the line of its header.
///
/// Each table is read on its own, by its `type`, so that toml's errors keep
/// their position: an unknown key, a missing one or a value of the wrong
/// type is reported at its line (serde's internally tagged enums would
/// report every one of them at the table's header). Errors are toml's
/// message ("TOML parse error at line L, column C", the line quoted), or
/// one written the same way.
fn parse_file(src: &str) -> Result<Vec<(usize, RawRule)>, String> {
    let doc = DeTable::parse(src).map_err(|e| e.to_string())?;
    let mut rules = Vec::new();
    for (key, value) in doc.get_ref() {
        if key.get_ref().as_ref() != "rule" {
            return Err(error_at(
                src,
                key.span(),
                &format!("unknown key `{}`: a rule file holds only [[rule]] tables", key.get_ref()),
            ));
        }
        let DeValue::Array(items) = value.get_ref() else {
            return Err(error_at(src, key.span(), "`rule` must be an array of tables: write each rule as [[rule]]"));
        };
        for item in items.iter() {
            let DeValue::Table(table) = item.get_ref() else {
                return Err(error_at(src, item.span(), "a rule must be a table: write each rule as [[rule]]"));
            };
            rules.push((line_of(src, item.span().start), parse_rule(src, item.span(), table)?));
        }
    }
    Ok(rules)
}

/// One `[[rule]]` table (at `span` of `src`), by its `type`.
fn parse_rule(src: &str, span: std::ops::Range<usize>, table: &DeTable<'_>) -> Result<RawRule, String> {
    let mut rest = table.clone();
    let Some(kind) = rest.remove("type") else {
        return Err(error_at(src, span, &format!("missing field `type`: give one of {TYPES}")));
    };
    let Some(name) = kind.get_ref().as_str() else {
        return Err(error_at(src, kind.span(), &format!("`type` must be a string: one of {TYPES}")));
    };
    let de = || toml::de::Deserializer::from(toml::Spanned::new(span.clone(), rest.clone()));
    let located = |mut e: toml::de::Error| {
        e.set_input(Some(src));
        e.to_string().trim_end().to_string()
    };
    Ok(match name {
        "ip" => RawRule::Ip(RawIp::deserialize(de()).map_err(located)?),
        "path" => RawRule::Path(RawPath::deserialize(de()).map_err(located)?),
        "set" => RawRule::Set(RawSet::deserialize(de()).map_err(located)?),
        "regex" => RawRule::Regex(RawRegex::deserialize(de()).map_err(located)?),
        "drop" => RawRule::Drop(RawDrop::deserialize(de()).map_err(located)?),
        other => {
            return Err(error_at(src, kind.span(), &format!("unknown rule type `{other}`, expected one of {TYPES}")));
        }
    })
}

/// A message about `span` of `src`, shaped like toml's own ("TOML parse
/// error at line L, column C", the line quoted).
fn error_at(src: &str, span: std::ops::Range<usize>, message: &str) -> String {
    let line = line_of(src, span.start);
    let line_start = src[..span.start.min(src.len())].rfind('\n').map_or(0, |p| p + 1);
    let column = src[line_start..span.start.min(src.len())].chars().count() + 1;
    let text = src[line_start..].lines().next().unwrap_or_default();
    format!("TOML parse error at line {line}, column {column}\n  |\n{line} | {text}\n  |\n{message}")
}

/// Which attribute set of a resource a `set` rule targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum NvKind {
    #[default]
    Instance,
    Meta,
    Utilization,
}

impl NvKind {
    /// Element name of the set (also the suffix of generated set ids).
    fn element(self) -> &'static str {
        match self {
            NvKind::Instance => "instance_attributes",
            NvKind::Meta => "meta_attributes",
            NvKind::Utilization => "utilization",
        }
    }
}

impl RuleSet {
    /// Parses and validates the rules of one TOML file. `origin` labels the
    /// file in error and change messages, e.g. its path.
    ///
    /// # Errors
    ///
    /// TOML errors (syntax, unknown key or type, missing field) are reported
    /// as [`Error::Rule`] with `rule` = `origin`; an invalid rule (bad
    /// network, relative path, invalid regex...) as [`Error::Rule`] with
    /// `rule` = "`origin` rule #N (type)".
    pub fn from_toml(src: &str, origin: &str) -> Result<RuleSet, Error> {
        // The message starts "TOML parse error at line L, column C" and
        // quotes the line: it goes to the user whole.
        let file = parse_file(src).map_err(|message| Error::Rule {
            rule: origin.to_string(),
            message,
        })?;
        let rules = file
            .into_iter()
            .enumerate()
            .map(|(i, (line, raw))| {
                let kind = raw.kind();
                let action = Action::validate(raw).map_err(|message| Error::Rule {
                    rule: label(origin, line, i + 1, kind),
                    message,
                })?;
                Ok(Rule {
                    origin: origin.to_string(),
                    number: i + 1,
                    line,
                    action,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(RuleSet { rules })
    }

    /// True when there are no rules.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Number of rules.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Appends the rules of `other` after these (rules of several files, in
    /// order). Each rule keeps its origin and number for messages.
    pub fn extend(&mut self, other: RuleSet) {
        self.rules.extend(other.rules);
    }

    /// Applies every rule in order, each to the result of the previous one.
    ///
    /// Returns one human-readable line per change made, e.g.
    /// "rule #1 (ip) rules.toml: primitive `vip` nvpair `vip-ip`:
    /// 192.168.1.10 -> 10.2.1.10". [`RuleSet::apply_counted`] also says
    /// how many values each rule changed.
    ///
    /// # Errors
    ///
    /// [`Error::Rule`] naming the first rule that cannot apply (unknown
    /// `resource` or `drop` id, generated id already used...). `config` is
    /// then left unchanged.
    pub fn apply(&self, config: &mut Element) -> Result<Vec<String>, Error> {
        Ok(self.apply_counted(config)?.changes)
    }

    /// [`RuleSet::apply`], also counting the values each rule changed, so
    /// that a rule that matched nothing (a typo, a value the publisher no
    /// longer has) can be reported ([`Applied::idle`]).
    ///
    /// # Errors
    ///
    /// As [`RuleSet::apply`].
    pub fn apply_counted(&self, config: &mut Element) -> Result<Applied, Error> {
        let mut applied = Applied::default();
        if self.rules.is_empty() {
            return Ok(applied);
        }
        if self.rules.iter().all(|r| r.action.infallible()) {
            // Nothing can fail half-way: rewrite in place, no copy.
            for rule in &self.rules {
                applied.add(rule, rule.apply(config)?);
            }
            return Ok(applied);
        }
        let mut work = config.clone();
        for rule in &self.rules {
            applied.add(rule, rule.apply(&mut work)?);
        }
        *config = work;
        Ok(applied)
    }
}

/// What [`RuleSet::apply_counted`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// One line per change, as [`RuleSet::apply`] returns them.
    pub changes: Vec<String>,
    /// One entry per rule, in the order they ran.
    pub counts: Vec<RuleCount>,
}

impl Applied {
    fn add(&mut self, rule: &Rule, changes: Vec<String>) {
        self.counts.push(RuleCount {
            rule: rule.located(),
            changed: changes.len(),
        });
        self.changes.extend(changes);
    }

    /// The rules that changed nothing.
    pub fn idle(&self) -> impl Iterator<Item = &RuleCount> {
        self.counts.iter().filter(|c| c.changed == 0)
    }

    /// Values changed by all the rules together.
    #[must_use]
    pub fn changed(&self) -> usize {
        self.counts.iter().map(|c| c.changed).sum()
    }
}

/// How many values one rule changed (for `drop`: elements removed; for
/// `set`: 0 when the value was already the one asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCount {
    /// The rule and where it is written: "rule #2 (ip) site.toml:7" (the
    /// line of its `[[rule]]` table).
    pub rule: String,
    /// Values it changed.
    pub changed: usize,
}

impl std::fmt::Display for RuleCount {
    /// "rule #2 (ip) site.toml:7 matched nothing", or "… changed 3 values".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.changed {
            0 => write!(f, "{} matched nothing", self.rule),
            1 => write!(f, "{} changed 1 value", self.rule),
            n => write!(f, "{} changed {n} values", self.rule),
        }
    }
}

/// The 1-based line of byte `offset` of `src`.
fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// "rules.toml:7 rule #2 (ip)": how errors name a rule (with the line of
/// its `[[rule]]` table).
fn label(origin: &str, line: usize, number: usize, kind: &str) -> String {
    format!("{origin}:{line} rule #{number} ({kind})")
}

impl RawRule {
    /// The `type` as written.
    fn kind(&self) -> &'static str {
        match self {
            RawRule::Ip(_) => "ip",
            RawRule::Path(_) => "path",
            RawRule::Set(_) => "set",
            RawRule::Regex(_) => "regex",
            RawRule::Drop(_) => "drop",
        }
    }
}

impl Rule {
    /// Applies this rule, prefixing each change line with the rule.
    fn apply(&self, config: &mut Element) -> Result<Vec<String>, Error> {
        let changes = self.action.apply(config).map_err(|message| Error::Rule {
            rule: label(&self.origin, self.line, self.number, self.action.kind()),
            message,
        })?;
        Ok(self.prefixed(changes))
    }

    /// Change lines prefixed with the rule: "rule #2 (ip) site.toml: ...".
    fn prefixed(&self, changes: Vec<String>) -> Vec<String> {
        let prefix = self.prefix();
        changes.into_iter().map(|c| format!("{prefix}: {c}")).collect()
    }

    /// "rule #2 (ip) site.toml", what change lines start with.
    fn prefix(&self) -> String {
        format!("rule #{} ({}) {}", self.number, self.action.kind(), self.origin)
    }

    /// "rule #2 (ip) site.toml:7": the rule and the line of its table.
    fn located(&self) -> String {
        format!("{}:{}", self.prefix(), self.line)
    }
}

impl Action {
    /// The rule type name.
    fn kind(&self) -> &'static str {
        match self {
            Action::Ip { .. } => "ip",
            Action::Path { .. } => "path",
            Action::Set { .. } => "set",
            Action::Regex { .. } => "regex",
            Action::Drop { .. } => "drop",
        }
    }

    /// Whether applying this action can never fail (value rewrites over the
    /// whole tree): such rules are applied in place, without a copy.
    fn infallible(&self) -> bool {
        match self {
            Action::Ip { scope, .. } | Action::Path { scope, .. } | Action::Regex { scope, .. } => scope.is_none(),
            Action::Set { .. } | Action::Drop { .. } => false,
        }
    }

    /// Checks a rule as written and builds its validated form.
    fn validate(raw: RawRule) -> Result<Action, String> {
        match raw {
            RawRule::Ip(RawIp { from, to, resource }) => {
                let from_net = parse_net("from", &from)?;
                let to_net = parse_net("to", &to)?;
                check_same_shape(&from_net, &to_net)?;
                Ok(Action::Ip {
                    from: from_net,
                    to: to_net,
                    scope: non_empty_opt("resource", resource)?,
                })
            }
            RawRule::Path(RawPath { from, to, resource }) => Ok(Action::Path {
                from: normalize_from_path(&from)?,
                to: normalize_to_path(&to)?,
                scope: non_empty_opt("resource", resource)?,
            }),
            RawRule::Set(RawSet {
                resource,
                name,
                value,
                kind,
            }) => Ok(Action::Set {
                resource: non_empty("resource", resource)?,
                name: non_empty("name", name)?,
                value,
                kind,
            }),
            RawRule::Regex(RawRegex {
                pattern,
                replace,
                attributes,
                resource,
            }) => Ok(Action::Regex {
                re: Regex::new(&pattern)
                    .map_err(|e| format!("invalid pattern `{pattern}`: {e}"))?,
                replace,
                attributes: check_attributes(attributes)?,
                scope: non_empty_opt("resource", resource)?,
            }),
            RawRule::Drop(RawDrop { id, missing_ok }) => Ok(Action::Drop {
                id: non_empty("id", id)?,
                missing_ok,
            }),
        }
    }

    /// Applies the action; changes are described without the rule prefix,
    /// errors are bare messages.
    fn apply(&self, config: &mut Element) -> Result<Vec<String>, String> {
        if let Some((rewrite, scope)) = self.rewrite_spec() {
            return rewrite_values(config, scope, &rewrite);
        }
        match self {
            Action::Set {
                resource,
                name,
                value,
                kind,
            } => set_nvpair(config, resource, name, value, *kind),
            Action::Drop { id, missing_ok } => drop_element(config, id, *missing_ok),
            Action::Ip { .. } | Action::Path { .. } | Action::Regex { .. } => unreachable!("value rewrites are handled above"),
        }
    }

    /// A value-rewriting action (`ip`, `path`, `regex`) ready to run, with
    /// the id of the element it is restricted to; `None` for the others.
    fn rewrite_spec(&self) -> Option<(Rewrite<'_>, Option<&str>)> {
        Some(match self {
            Action::Ip { from, to, scope } => (Rewrite::Ip { from, to }, scope.as_deref()),
            Action::Path { from, to, scope } => (Rewrite::Path { from, to }, scope.as_deref()),
            Action::Regex {
                re,
                replace,
                attributes,
                scope,
            } => (
                Rewrite::Regex {
                    re,
                    replace,
                    attributes: attributes.as_deref(),
                },
                scope.as_deref(),
            ),
            Action::Set { .. } | Action::Drop { .. } => return None,
        })
    }
}

// ---------------------------------------------------------------------------
// Validation helpers

/// Refuses an empty required string field.
fn non_empty(field: &str, value: String) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    Ok(value)
}

/// Refuses an empty optional string field.
fn non_empty_opt(field: &str, value: Option<String>) -> Result<Option<String>, String> {
    value.map(|v| non_empty(field, v)).transpose()
}

/// Parses `from`/`to` of an `ip` rule: a network with no host bits set, or a
/// single address (a /32 or /128 network).
fn parse_net(field: &str, text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        let trunc = net.trunc();
        if trunc != net {
            return Err(format!(
                "`{field}` = \"{text}\" has host bits set; the network is {trunc}"
            ));
        }
        return Ok(net);
    }
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    Err(format!(
        "`{field}` = \"{text}\" is not an IP network such as 192.168.1.0/24 or fd00:1::/64"
    ))
}

/// `from` and `to` of an `ip` rule must have the same family and prefix.
fn check_same_shape(from: &IpNet, to: &IpNet) -> Result<(), String> {
    let same_family = matches!(
        (from, to),
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
    );
    if !same_family {
        return Err(format!(
            "`from` {from} and `to` {to} are not of the same address family"
        ));
    }
    if from.prefix_len() != to.prefix_len() {
        return Err(format!(
            "`from` {from} and `to` {to} have different prefix lengths (/{} and /{}): host parts cannot be kept",
            from.prefix_len(),
            to.prefix_len()
        ));
    }
    Ok(())
}

/// `from` of a `path` rule: absolute, not `/`, trailing slashes dropped.
fn normalize_from_path(from: &str) -> Result<String, String> {
    if !from.starts_with('/') {
        return Err(format!("`from` = \"{from}\" is not an absolute path"));
    }
    let trimmed = from.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err("`from` = \"/\" would rewrite every absolute path".into());
    }
    Ok(trimmed.to_string())
}

/// `to` of a `path` rule: absolute, trailing slashes dropped (except `/`).
fn normalize_to_path(to: &str) -> Result<String, String> {
    if !to.starts_with('/') {
        return Err(format!("`to` = \"{to}\" is not an absolute path"));
    }
    let trimmed = to.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_string())
}

/// `attributes` of a `regex` rule: non-empty, no reference attribute.
fn check_attributes(attributes: Option<Vec<String>>) -> Result<Option<Vec<String>>, String> {
    let Some(list) = attributes else {
        return Ok(None);
    };
    if list.is_empty() {
        return Err("`attributes` is empty: the rule would change nothing".into());
    }
    if let Some(bad) = list.iter().find(|a| REFERENCE_ATTRS.contains(&a.as_str())) {
        return Err(format!(
            "`attributes` names `{bad}`, which holds an id or a name and is never rewritten"
        ));
    }
    Ok(Some(list))
}
