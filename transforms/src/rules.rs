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
//! Unknown keys and unknown types are refused. The value-rewriting rules
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

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use regex::Regex;
use serde::Deserialize;

use crate::canonical::for_each_canonical_child;
use crate::doc::{AttrId, Doc, DocNode};
use crate::error::Error;
use crate::node::Node;
use crate::xml::Element;

/// Attributes that the value-rewriting rules (`ip`, `path`, `regex`) never
/// rewrite, because they hold ids, references to ids, or names:
///
/// - `id`: the element's own id (in `<obj_ref>` and `<resource_ref>`, the id
///   of the referenced element);
/// - `id-ref`: reference to a shared rule, nvset or operations element;
/// - `rsc`, `with-rsc`, `first`, `then`: resources referenced by constraints;
/// - `rsc-pattern`: regular expression over resource ids (`rsc_location`);
/// - `ticket`: ticket name (`rsc_ticket`);
/// - `template`: template a primitive is built from;
/// - `node`: node name (`rsc_location`), a name even when it looks like an
///   address.
pub const REFERENCE_ATTRS: &[&str] = &[
    "id",
    "id-ref",
    "rsc",
    "with-rsc",
    "first",
    "then",
    "ticket",
    "template",
    "node",
    "rsc-pattern",
];

/// Whether `name` is one of [`REFERENCE_ATTRS`].
fn is_reference_attr(name: &str) -> bool {
    matches!(
        name,
        "id" | "id-ref" | "rsc" | "with-rsc" | "first" | "then" | "ticket" | "template" | "node" | "rsc-pattern"
    )
}

/// Elements whose `id` attribute references another element instead of
/// naming themselves.
const REF_ID_ELEMENTS: &[&str] = &["obj_ref", "resource_ref"];

/// Elements that `set` accepts as its `resource`.
const RESOURCE_ELEMENTS: &[&str] = &[
    "primitive",
    "group",
    "clone",
    "master",
    "bundle",
    "template",
];

/// Whether `name` names the owner of what changes inside it (the list
/// `OWNER_ELEMENTS` of the tests, as a `match`: called for
/// every element a value rule visits).
#[inline]
fn is_owner_name(name: &str) -> bool {
    matches!(
        name,
        "primitive"
            | "group"
            | "clone"
            | "master"
            | "bundle"
            | "template"
            | "rsc_location"
            | "rsc_colocation"
            | "rsc_order"
            | "rsc_ticket"
            | "tag"
    )
}

/// Elements named in change lines as the owner of what changed inside them
/// ([`is_owner_name`] is the same list as a `match`).
#[cfg(test)]
const OWNER_ELEMENTS: &[&str] = &[
    "primitive",
    "group",
    "clone",
    "master",
    "bundle",
    "template",
    "rsc_location",
    "rsc_colocation",
    "rsc_order",
    "rsc_ticket",
    "tag",
];

/// Characters that end a path token (besides whitespace).
const PATH_SEPARATORS: &str = ",;:='\"()[]{}<>|&";

/// Longest text form of an IP address
/// (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`).
const MAX_ADDR_LEN: usize = 45;

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

/// The TOML file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

/// One `[[rule]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawRule {
    Ip {
        from: String,
        to: String,
        resource: Option<String>,
    },
    Path {
        from: String,
        to: String,
        resource: Option<String>,
    },
    Set {
        resource: String,
        name: String,
        value: String,
        #[serde(default)]
        kind: NvKind,
    },
    Regex {
        pattern: String,
        replace: String,
        attributes: Option<Vec<String>>,
        resource: Option<String>,
    },
    Drop {
        id: String,
        #[serde(default)]
        missing_ok: bool,
    },
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
        let file: RawFile = toml::from_str(src).map_err(|e| Error::Rule {
            rule: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let rules = file
            .rule
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                let kind = raw.kind();
                let action = Action::validate(raw).map_err(|message| Error::Rule {
                    rule: label(origin, i + 1, kind),
                    message,
                })?;
                Ok(Rule {
                    origin: origin.to_string(),
                    number: i + 1,
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
    /// 192.168.1.10 -> 10.2.1.10".
    ///
    /// # Errors
    ///
    /// [`Error::Rule`] naming the first rule that cannot apply (unknown
    /// `resource` or `drop` id, generated id already used...). `config` is
    /// then left unchanged.
    pub fn apply(&self, config: &mut Element) -> Result<Vec<String>, Error> {
        if self.rules.is_empty() {
            return Ok(Vec::new());
        }
        let mut changes = Vec::new();
        if self.rules.iter().all(|r| r.action.infallible()) {
            // Nothing can fail half-way: rewrite in place, no copy.
            for rule in &self.rules {
                changes.extend(rule.apply(config)?);
            }
            return Ok(changes);
        }
        let mut work = config.clone();
        for rule in &self.rules {
            changes.extend(rule.apply(&mut work)?);
        }
        *config = work;
        Ok(changes)
    }

    /// Whether [`RuleSet::apply_doc`] runs these rules (only value
    /// rewrites over the whole content).
    pub fn runs_on_doc(&self) -> bool {
        self.rules.iter().all(|r| r.action.infallible())
    }

    /// [`RuleSet::apply`] on a compact tree: rewrites the elements `roots`
    /// of `doc` (the [`crate::scope::DocScope::elements`] of a scope) and their
    /// subtrees in place, with the same change lines in the same order.
    ///
    /// Only value rewrites over the whole content (`ip`, `path`, `regex`
    /// without `resource`) run here; `None` when a rule needs the owned
    /// tree (`set`, `drop`, a `resource` restriction), and the caller uses
    /// [`RuleSet::apply`] on an owned copy instead.
    pub fn apply_doc(&self, doc: &mut Doc<'_>, roots: &[u32]) -> Option<Result<Vec<String>, Error>> {
        if !self.runs_on_doc() {
            return None;
        }
        // Value rewrites apply to each value in turn: one walk runs them
        // all, each on the value the previous one left, and keeps each
        // rule's change lines apart so they come out rule after rule.
        let rewrites: Vec<Rewrite<'_>> = self.rules.iter().filter_map(|r| r.action.rewrite_spec().map(|(rw, _)| rw)).collect();
        // Each line is written with its rule's prefix at once.
        let prefixes: Vec<String> = self.rules.iter().map(Rule::prefix).collect();
        let wanted = Wanted::of(&rewrites);
        let walk = |roots: &[u32]| {
            let mut lines: Vec<Vec<String>> = vec![Vec::new(); rewrites.len()];
            let mut edits = Vec::new();
            for &root in roots {
                rewrite_doc(doc.node(root), Owner::None, &rewrites, &wanted, &prefixes, &mut lines, &mut edits);
            }
            (lines, edits)
        };
        // The walk only reads the tree: a large scope is walked in two
        // halves at once, whose lines and edits are then put end to end,
        // in the order of one walk.
        let (first, second) = split_in_two(doc, roots);
        let (lines, edits) = if second.is_empty() {
            walk(first)
        } else {
            std::thread::scope(|s| {
                let other = s.spawn(|| walk(second));
                let mut done = walk(first);
                // The walk cannot fail; a panic there is passed on.
                let (lines, edits) = other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                for (all, more) in done.0.iter_mut().zip(lines) {
                    all.extend(more);
                }
                done.1.extend(edits);
                done
            })
        };
        doc.reserve_values(edits.iter().map(|(_, v)| v.len()).sum());
        for (a, value) in edits {
            if let Err(e) = doc.set_value(a, &value) {
                return Some(Err(e));
            }
        }
        Some(Ok(lines.into_iter().flatten().collect()))
    }
}

/// Fewest elements worth a second thread in [`RuleSet::apply_doc`].
const PARALLEL_WALK: usize = 20_000;

/// `roots` cut in two runs holding about as many elements each, or all in
/// the first when they hold fewer than [`PARALLEL_WALK`] elements.
fn split_in_two<'r>(doc: &Doc<'_>, roots: &'r [u32]) -> (&'r [u32], &'r [u32]) {
    let size = |&r: &u32| doc.node(r).subtree_hint();
    let total: usize = roots.iter().map(size).sum();
    if total < PARALLEL_WALK {
        return (roots, &[]);
    }
    let mut seen = 0;
    let cut = roots
        .iter()
        .position(|r| {
            seen += size(r);
            2 * seen >= total
        })
        .map_or(roots.len(), |i| i + 1);
    roots.split_at(cut)
}

/// "rules.toml rule #2 (ip)": how errors name a rule.
fn label(origin: &str, number: usize, kind: &str) -> String {
    format!("{origin} rule #{number} ({kind})")
}

impl RawRule {
    /// The `type` as written.
    fn kind(&self) -> &'static str {
        match self {
            RawRule::Ip { .. } => "ip",
            RawRule::Path { .. } => "path",
            RawRule::Set { .. } => "set",
            RawRule::Regex { .. } => "regex",
            RawRule::Drop { .. } => "drop",
        }
    }
}

impl Rule {
    /// Applies this rule, prefixing each change line with the rule.
    fn apply(&self, config: &mut Element) -> Result<Vec<String>, Error> {
        let changes = self.action.apply(config).map_err(|message| Error::Rule {
            rule: label(&self.origin, self.number, self.action.kind()),
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
            RawRule::Ip { from, to, resource } => {
                let from_net = parse_net("from", &from)?;
                let to_net = parse_net("to", &to)?;
                check_same_shape(&from_net, &to_net)?;
                Ok(Action::Ip {
                    from: from_net,
                    to: to_net,
                    scope: non_empty_opt("resource", resource)?,
                })
            }
            RawRule::Path { from, to, resource } => Ok(Action::Path {
                from: normalize_from_path(&from)?,
                to: normalize_to_path(&to)?,
                scope: non_empty_opt("resource", resource)?,
            }),
            RawRule::Set {
                resource,
                name,
                value,
                kind,
            } => Ok(Action::Set {
                resource: non_empty("resource", resource)?,
                name: non_empty("name", name)?,
                value,
                kind,
            }),
            RawRule::Regex {
                pattern,
                replace,
                attributes,
                resource,
            } => Ok(Action::Regex {
                re: Regex::new(&pattern)
                    .map_err(|e| format!("invalid pattern `{pattern}`: {e}"))?,
                replace,
                attributes: check_attributes(attributes)?,
                scope: non_empty_opt("resource", resource)?,
            }),
            RawRule::Drop { id, missing_ok } => Ok(Action::Drop {
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
            Action::Ip { from, to, scope } => (
                Rewrite::Ip {
                    // An IPv4 address has dots, an IPv6 one colons: most
                    // values have neither and are skipped without looking
                    // further.
                    mark: if from.addr().is_ipv4() { b'.' } else { b':' },
                    from,
                    to,
                },
                scope.as_deref(),
            ),
            Action::Path { from, to, scope } => (
                Rewrite::Path {
                    finder: memchr::memmem::Finder::new(from.as_bytes()),
                    from,
                    to,
                },
                scope.as_deref(),
            ),
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

/// The bytes a value must hold for some rewrite of a set to change it: an
/// `ip` rewrite needs a dot (IPv4) or a colon (IPv6), a `path` one the
/// first byte of its prefix; a `regex` may change anything.
struct Wanted(Option<[bool; 256]>);

impl Wanted {
    fn of(rewrites: &[Rewrite<'_>]) -> Wanted {
        let mut bytes = [false; 256];
        for r in rewrites {
            match r {
                Rewrite::Ip { mark, .. } => bytes[usize::from(*mark)] = true,
                Rewrite::Path { from, .. } => match from.as_bytes().first() {
                    Some(&b) => bytes[usize::from(b)] = true,
                    None => return Wanted(None),
                },
                Rewrite::Regex { .. } => return Wanted(None),
            }
        }
        Wanted(Some(bytes))
    }

    /// Whether some rewrite may change `value`.
    #[inline]
    fn may_change(&self, value: &str) -> bool {
        match &self.0 {
            None => true,
            Some(bytes) => value.bytes().any(|b| bytes[usize::from(b)]),
        }
    }
}

/// One value rewrite, ready to run: which attributes it reads and what it
/// makes of a value (reference attributes are never given to it).
// A handful exist at a time (one per rule): the size of the `Path` finder
// does not matter, a box per rule would.
#[allow(clippy::large_enum_variant)]
enum Rewrite<'r> {
    Ip {
        mark: u8,
        from: &'r IpNet,
        to: &'r IpNet,
    },
    Path {
        finder: memchr::memmem::Finder<'r>,
        from: &'r str,
        to: &'r str,
    },
    Regex {
        re: &'r Regex,
        replace: &'r str,
        attributes: Option<&'r [String]>,
    },
}

impl Rewrite<'_> {
    /// Whether the rewrite reads attribute `attr` (not a reference one).
    fn accepts(&self, attr: &str) -> bool {
        match self {
            Rewrite::Regex {
                attributes: Some(only), ..
            } => only.iter().any(|n| n == attr),
            _ => true,
        }
    }

    /// The rewritten value, or `None` when the rewrite does not apply.
    fn edit(&self, v: &str) -> Option<String> {
        match self {
            Rewrite::Ip { mark, from, to } => {
                memchr::memchr(*mark, v.as_bytes())?;
                remap_ips(v, from, to)
            }
            Rewrite::Path { finder, from, to } => {
                finder.find(v.as_bytes())?;
                rewrite_paths(v, from, to)
            }
            Rewrite::Regex { re, replace, .. } => Some(re.replace_all(v, *replace).into_owned()),
        }
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

// ---------------------------------------------------------------------------
// Tree helpers

/// Whether `el` is named by `id` (its `id` attribute is its own, not a
/// reference).
fn carries_id(el: &Element, id: &str) -> bool {
    el.id() == Some(id) && !REF_ID_ELEMENTS.contains(&el.name.as_str())
}

/// Child-index path from `root` to the element named `id` (empty if `root`
/// itself), in document order.
fn find_path(root: &Element, id: &str) -> Option<Vec<usize>> {
    if carries_id(root, id) {
        return Some(Vec::new());
    }
    for (i, child) in root.children.iter().enumerate() {
        if let Some(mut path) = find_path(child, id) {
            path.insert(0, i);
            return Some(path);
        }
    }
    None
}

/// The element at a path returned by [`find_path`].
fn at_path_mut<'a>(mut el: &'a mut Element, path: &[usize]) -> &'a mut Element {
    for &i in path {
        el = &mut el.children[i];
    }
    el
}

/// Every element id in the tree (references excluded).
fn collect_ids(root: &Element) -> HashSet<String> {
    let mut ids = HashSet::new();
    root.walk(&mut |el| {
        if let Some(id) = el.id() {
            if !REF_ID_ELEMENTS.contains(&el.name.as_str()) {
                ids.insert(id.to_string());
            }
        }
    });
    ids
}

/// "primitive `vip`", or just "operations" for an element without id.
fn describe(el: &Element) -> String {
    match el.id() {
        Some(id) => format!("{} `{id}`", el.name),
        None => el.name.clone(),
    }
}

/// Whether `el` names the owner of changes inside it.
fn is_owner(el: &Element) -> bool {
    is_owner_name(&el.name)
}

/// "primitive `vip` nvpair `vip-ip`": the element prefixed by its owner.
fn location(el: &Element, owner: Option<&str>) -> String {
    match owner {
        Some(owner) if !is_owner(el) => format!("{owner} {}", describe(el)),
        _ => describe(el),
    }
}

/// The innermost owner among `root` and the elements along `path`.
fn owner_along(root: &Element, path: &[usize]) -> Option<String> {
    let mut el = root;
    let mut owner = is_owner(el).then(|| describe(el));
    for &i in path {
        el = &el.children[i];
        if is_owner(el) {
            owner = Some(describe(el));
        }
    }
    owner
}

// ---------------------------------------------------------------------------
// Value rewriting (ip, path, regex)

/// Rewrites, with `edit`, the values of every attribute accepted by
/// `attr_ok` (reference attributes never) in the subtree of the element
/// named `scope`, or in the whole tree.
fn rewrite_values(config: &mut Element, scope: Option<&str>, rewrite: &Rewrite<'_>) -> Result<Vec<String>, String> {
    let (path, owner) = match scope {
        None => (Vec::new(), None),
        Some(id) => {
            let path = find_path(config, id)
                .ok_or_else(|| format!("`resource`: no element with id `{id}`"))?;
            let owner = match path.split_last() {
                Some((_, ancestors)) => owner_along(config, ancestors),
                None => None,
            };
            (path, owner)
        }
    };
    let mut changes = Vec::new();
    let start = at_path_mut(config, &path);
    let owner = owner.as_deref().map_or(Owner::None, Owner::Text);
    rewrite_element(start, owner, rewrite, &mut changes);
    Ok(changes)
}

/// Who owns the changes inside an element, rendered only when a change is
/// reported.
#[derive(Clone, Copy)]
enum Owner<'a> {
    /// No owner element above.
    None,
    /// Already rendered ("primitive `vip`").
    Text(&'a str),
    /// An owner element, by name and id.
    Element { name: &'a str, id: Option<&'a str> },
}

/// Appends how a change line names an element to `out`: "primitive
/// `vip`", or only its name when it has no id.
fn push_described(out: &mut String, name: &str, id: Option<&str>) {
    out.push_str(name);
    if let Some(id) = id {
        out.push_str(" `");
        out.push_str(id);
        out.push('`');
    }
}

/// [`rewrite_values`] on one element and its descendants. Location strings
/// are built only for the values that change.
fn rewrite_element(el: &mut Element, owner: Owner<'_>, rewrite: &Rewrite<'_>, changes: &mut Vec<String>) {
    let Element {
        name: el_name,
        attrs,
        children,
        ..
    } = el;
    let here = Here::new(el_name, owner);
    for i in 0..attrs.len() {
        let (name, value) = &attrs[i];
        if is_reference_attr(name) || !rewrite.accepts(name) {
            continue;
        }
        let Some(new) = rewrite.edit(value).filter(|new| new != value) else {
            continue;
        };
        let id = attrs.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str());
        changes.push(here.line("", id, name, value, &new));
        attrs[i].1 = new;
    }
    let child_owner = if here.is_owner() {
        let id = attrs.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str());
        Owner::Element { name: el_name, id }
    } else {
        owner
    };
    for child in children.iter_mut() {
        rewrite_element(child, child_owner, rewrite, changes);
    }
}

/// [`rewrite_element`] for several rewrites at once, on an element of a
/// [`Doc`]: each value goes through every rewrite in turn, the change lines
/// of rewrite `k` go to `lines[k]`, and the final values are collected in
/// `edits` for the caller to apply. Children are visited in canonical order
/// (the order of the owned scope).
fn rewrite_doc(
    el: DocNode<'_>,
    owner: Owner<'_>,
    rewrites: &[Rewrite<'_>],
    wanted: &Wanted,
    prefixes: &[String],
    lines: &mut [Vec<String>],
    edits: &mut Vec<(AttrId, String)>,
) {
    let doc = el.doc();
    let here = Here::new(el.name(), owner);
    for a in el.attr_ids() {
        let original = doc.value(a);
        // Most values hold no byte any rewrite looks for.
        if !wanted.may_change(original) {
            continue;
        }
        let name = doc.attr_name(a);
        if is_reference_attr(name) {
            continue;
        }
        let mut value: Cow<'_, str> = Cow::Borrowed(original);
        for (k, rewrite) in rewrites.iter().enumerate() {
            if !rewrite.accepts(name) {
                continue;
            }
            let Some(new) = rewrite.edit(&value).filter(|new| *new != value) else {
                continue;
            };
            lines[k].push(here.line(&prefixes[k], el.id(), name, &value, &new));
            value = Cow::Owned(new);
        }
        if let Cow::Owned(v) = value {
            edits.push((a, v));
        }
    }
    if !el.has_children() {
        return;
    }
    let child_owner = if here.is_owner() {
        Owner::Element { name: el.name(), id: el.id() }
    } else {
        owner
    };
    for_each_canonical_child(el, |c| rewrite_doc(c, child_owner, rewrites, wanted, prefixes, lines, edits));
}

/// How the change lines of one element name it: its location ("primitive
/// `vip` nvpair `vip-ip`"), written into each line.
struct Here<'o> {
    name: &'o str,
    owner: Owner<'o>,
}

impl<'o> Here<'o> {
    fn new(name: &'o str, owner: Owner<'o>) -> Here<'o> {
        Here { name, owner }
    }

    /// Whether the element names the owner of what changes inside it.
    fn is_owner(&self) -> bool {
        is_owner_name(self.name)
    }

    /// The change line of attribute `attr` going from `value` to `new`.
    /// `prefix` (the rule, for lines written here in their final form) goes
    /// first when not empty.
    ///
    /// (Built with `push_str` into one string of the right size: a rule
    /// that rewrites every address of a large CIB writes thousands of
    /// lines.)
    fn line(&self, prefix: &str, id: Option<&str>, attr: &str, value: &str, new: &str) -> String {
        let owner = match self.owner {
            _ if self.is_owner() => None,
            Owner::None => None,
            Owner::Text(t) => Some((t, None)),
            Owner::Element { name, id } => Some((name, Some(id))),
        };
        let described = |name: &str, id: Option<&str>| name.len() + id.map_or(0, |id| id.len() + 3);
        let len = prefix.len()
            + owner.map_or(0, |(name, id)| described(name, id.flatten()) + 1)
            + described(self.name, id)
            + attr.len()
            + value.len()
            + new.len()
            + 24;
        let mut line = String::with_capacity(len);
        if !prefix.is_empty() {
            line.push_str(prefix);
            line.push_str(": ");
        }
        match owner {
            None => {}
            // Already rendered.
            Some((text, None)) => line.push_str(text),
            Some((name, Some(id))) => push_described(&mut line, name, id),
        }
        if owner.is_some() {
            line.push(' ');
        }
        push_described(&mut line, self.name, id);
        if self.name == "nvpair" && attr == "value" {
            line.push_str(": ");
        } else {
            line.push_str(" attribute `");
            line.push_str(attr);
            line.push_str("`: ");
        }
        line.push_str(value);
        line.push_str(" -> ");
        line.push_str(new);
        line
    }
}

/// Maps `addr` into `to` keeping its host part, if it is inside `from`.
/// `from` and `to` have the same family and prefix length.
fn remap(addr: IpAddr, from: &IpNet, to: &IpNet) -> Option<IpAddr> {
    if !from.contains(&addr) {
        return None;
    }
    match (addr, from.hostmask(), to.network()) {
        (IpAddr::V4(a), IpAddr::V4(mask), IpAddr::V4(net)) => Some(IpAddr::V4(Ipv4Addr::from(
            u32::from(net) | (u32::from(a) & u32::from(mask)),
        ))),
        (IpAddr::V6(a), IpAddr::V6(mask), IpAddr::V6(net)) => Some(IpAddr::V6(Ipv6Addr::from(
            u128::from(net) | (u128::from(a) & u128::from(mask)),
        ))),
        _ => None,
    }
}

/// Rewrites every complete address token of `value` that lies in `from`.
/// None when nothing was rewritten.
fn remap_ips(value: &str, from: &IpNet, to: &IpNet) -> Option<String> {
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < value.len() {
        let Some((end, addr)) = address_at(value, i) else {
            i += 1;
            continue;
        };
        if let Some(new) = remap(addr, from, to) {
            out.push_str(&value[copied..i]);
            out.push_str(&new.to_string());
            copied = end;
        }
        i = end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&value[copied..]);
    Some(out)
}

/// Part of a word: an address may not touch one.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || !b.is_ascii()
}

/// The address token starting at byte `i` of `value`, as (end, address).
///
/// A token starts at the beginning or after a non-word character other than
/// `.` (an IPv4 token may follow `:`, as in `tcp:1.2.3.4`), is the longest
/// text parsing as an address, and must end the value or be followed by a
/// non-word character (`.` only if no word follows it; `:` only after IPv4).
fn address_at(value: &str, i: usize) -> Option<(usize, IpAddr)> {
    let bytes = value.as_bytes();
    let v4_only = match i.checked_sub(1).map(|p| bytes[p]) {
        None => false,
        Some(p) if is_word(p) || p == b'.' => return None,
        Some(p) => p == b':',
    };
    let run = bytes[i..]
        .iter()
        .take(MAX_ADDR_LEN)
        .take_while(|&&c| c.is_ascii_hexdigit() || c == b'.' || c == b':')
        .count();
    (1..=run).rev().find_map(|len| {
        let end = i + len;
        let addr: IpAddr = value[i..end].parse().ok()?;
        let ok = !(v4_only && addr.is_ipv6()) && ends_token(bytes, end, addr.is_ipv6());
        ok.then_some((end, addr))
    })
}

/// Whether an address ending at byte `end` is a complete token.
fn ends_token(bytes: &[u8], end: usize, v6: bool) -> bool {
    match bytes.get(end) {
        None => true,
        Some(&c) if is_word(c) => false,
        Some(b'.') => !bytes.get(end + 1).is_some_and(|&n| is_word(n)),
        Some(b':') => !v6,
        Some(_) => true,
    }
}

/// Whether `c` ends a path token.
fn is_path_separator(c: char) -> bool {
    c.is_whitespace() || PATH_SEPARATORS.contains(c)
}

/// Rewrites every path token of `value` equal to `from` or under `from/`.
/// None when nothing was rewritten.
fn rewrite_paths(value: &str, from: &str, to: &str) -> Option<String> {
    let mut out = String::new();
    let mut copied = 0;
    let mut changed = false;
    for (pos, _) in value.match_indices(from) {
        let end = pos + from.len();
        let before_ok = value[..pos]
            .chars()
            .next_back()
            .is_none_or(is_path_separator);
        let after = value[end..].chars().next();
        let after_ok = after.is_none_or(|c| c == '/' || is_path_separator(c));
        if !before_ok || !after_ok || pos < copied {
            continue;
        }
        out.push_str(&value[copied..pos]);
        // "/" + "/rest" must not become "//rest".
        if !(to == "/" && after == Some('/')) {
            out.push_str(to);
        }
        copied = end;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(&value[copied..]);
    Some(out)
}

// ---------------------------------------------------------------------------
// set

/// Sets nvpair `name` of `resource`'s own `kind` sets to `value`, adding it
/// (and the set) when missing.
fn set_nvpair(
    config: &mut Element,
    resource: &str,
    name: &str,
    value: &str,
    kind: NvKind,
) -> Result<Vec<String>, String> {
    let path =
        find_path(config, resource).ok_or_else(|| format!("no resource with id `{resource}`"))?;
    let ids = collect_ids(config);
    let rsc = at_path_mut(config, &path);
    check_set_target(rsc, resource, kind)?;
    let here = describe(rsc);
    let set_name = kind.element();
    let mut changes = Vec::new();
    let mut found = false;
    for set in rsc.children.iter_mut().filter(|c| c.name == set_name) {
        for nv in set
            .children
            .iter_mut()
            .filter(|c| c.name == "nvpair" && c.attr("name") == Some(name))
        {
            found = true;
            let old = nv.attr("value").unwrap_or("(unset)").to_string();
            if nv.attr("value") != Some(value) {
                let nv_desc = nv.id().unwrap_or(name);
                changes.push(format!("{here} nvpair `{nv_desc}`: {old} -> {value}"));
                nv.set_attr("value", value);
            }
        }
    }
    if found {
        return Ok(changes);
    }
    add_nvpair(rsc, &ids, name, value, kind).map(|c| vec![format!("{here} {c}")])
}

/// `set` applies to resources only, and utilization to primitives and
/// templates only (the schema allows it nowhere else).
fn check_set_target(rsc: &Element, resource: &str, kind: NvKind) -> Result<(), String> {
    if !RESOURCE_ELEMENTS.contains(&rsc.name.as_str()) {
        return Err(format!("`{resource}` is a <{}>, not a resource", rsc.name));
    }
    if kind == NvKind::Utilization && rsc.name != "primitive" && rsc.name != "template" {
        return Err(format!(
            "`{resource}` is a <{}>: only primitives and templates have utilization",
            rsc.name
        ));
    }
    Ok(())
}

/// Adds nvpair `name` to the first own `kind` set of `rsc` (not an `id-ref`
/// one), creating the set if there is none. Returns the change description.
fn add_nvpair(
    rsc: &mut Element,
    ids: &HashSet<String>,
    name: &str,
    value: &str,
    kind: NvKind,
) -> Result<String, String> {
    let set_name = kind.element();
    let rsc_id = rsc.id().unwrap_or_default().to_string();
    let default_set_id = format!("{rsc_id}-{set_name}");
    let existing = rsc
        .children
        .iter()
        .position(|c| c.name == set_name && c.attr("id-ref").is_none());
    let set_id = existing
        .and_then(|p| rsc.children[p].id())
        .unwrap_or(&default_set_id)
        .to_string();
    let nv_id = format!("{set_id}-{}", sanitize_id(name));
    if existing.is_none() && ids.contains(&set_id) {
        return Err(format!(
            "cannot create {set_name} `{set_id}` for `{rsc_id}`: that id is already used"
        ));
    }
    if ids.contains(&nv_id) {
        return Err(format!(
            "cannot add nvpair `{name}` to `{rsc_id}`: its id `{nv_id}` is already used"
        ));
    }
    let nvpair = Element::new("nvpair")
        .with_attr("id", nv_id.as_str())
        .with_attr("name", name)
        .with_attr("value", value);
    let created = match existing {
        Some(p) => {
            rsc.children[p].children.push(nvpair);
            ""
        }
        None => {
            let set = Element::new(set_name)
                .with_attr("id", set_id.as_str())
                .with_child(nvpair);
            let at = rsc.children.iter().rposition(is_nvset).map_or(0, |p| p + 1);
            rsc.children.insert(at, set);
            "new "
        }
    };
    Ok(format!(
        "nvpair `{nv_id}` (added to {created}{set_name} `{set_id}`): (unset) -> {value}"
    ))
}

/// Whether `el` is an attribute set of a resource.
fn is_nvset(el: &Element) -> bool {
    matches!(
        el.name.as_str(),
        "instance_attributes" | "meta_attributes" | "utilization"
    )
}

/// Replaces characters not allowed in an XML id by `.`.
fn sanitize_id(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// drop

/// Removes the element named `id`.
fn drop_element(config: &mut Element, id: &str, missing_ok: bool) -> Result<Vec<String>, String> {
    let Some(path) = find_path(config, id) else {
        return if missing_ok {
            Ok(Vec::new())
        } else {
            Err(format!("drop: no element with id `{id}`"))
        };
    };
    let Some((&last, ancestors)) = path.split_last() else {
        return Err(format!("drop: `{id}` is the root element"));
    };
    let owner = owner_along(config, ancestors);
    let parent = at_path_mut(config, ancestors);
    let removed = parent.children.remove(last);
    Ok(vec![format!(
        "{}: removed",
        location(&removed, owner.as_deref())
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    const CONFIG: &str = r#"<configuration>
  <resources>
    <primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">
      <instance_attributes id="vip-instance_attributes">
        <nvpair id="vip-ip" name="ip" value="192.168.1.10"/>
        <nvpair id="vip-cidr" name="cidr_netmask" value="24"/>
      </instance_attributes>
      <operations>
        <op id="vip-monitor-10s" name="monitor" interval="10s"/>
      </operations>
    </primitive>
    <group id="g">
      <meta_attributes id="g-meta">
        <nvpair id="g-meta-target-role" name="target-role" value="Started"/>
      </meta_attributes>
      <primitive id="web" class="ocf" provider="heartbeat" type="apache">
        <instance_attributes id="web-ia">
          <nvpair id="web-conf" name="configfile" value="/srv/site-a/conf/httpd.conf"/>
          <nvpair id="web-opts" name="options" value="--listen 192.168.1.10:80,192.168.1.11"/>
        </instance_attributes>
      </primitive>
      <primitive id="db" class="ocf" provider="heartbeat" type="pgsql">
        <instance_attributes id="db-ia">
          <nvpair id="db-ia-ip" name="ip" value="192.168.1.20"/>
        </instance_attributes>
      </primitive>
    </group>
    <primitive id="bare" class="ocf" provider="heartbeat" type="Dummy"/>
  </resources>
  <constraints>
    <rsc_location id="loc-vip" rsc="vip" node="192.168.1.10" score="100"/>
    <rsc_ticket id="t-g" rsc="g" ticket="192.168.1.10" loss-policy="stop"/>
  </constraints>
  <tags>
    <tag id="tag1">
      <obj_ref id="vip"/>
    </tag>
  </tags>
</configuration>"#;

    fn config() -> Element {
        parse(CONFIG).unwrap()
    }

    fn rules(src: &str) -> RuleSet {
        RuleSet::from_toml(src, "rules.toml").unwrap()
    }

    fn apply(src: &str, config: &mut Element) -> Vec<String> {
        rules(src).apply(config).unwrap()
    }

    fn parse_err(src: &str) -> (String, String) {
        match RuleSet::from_toml(src, "rules.toml") {
            Err(Error::Rule { rule, message }) => (rule, message),
            other => panic!("expected a rule error, got {other:?}"),
        }
    }

    fn apply_err(src: &str) -> (String, String) {
        let mut c = config();
        let before = c.clone();
        let result = rules(src).apply(&mut c);
        assert_eq!(c, before, "config must be unchanged on error");
        match result {
            Err(Error::Rule { rule, message }) => (rule, message),
            other => panic!("expected a rule error, got {other:?}"),
        }
    }

    fn value(config: &Element, id: &str) -> String {
        config
            .find_id(id)
            .unwrap()
            .attr("value")
            .unwrap()
            .to_string()
    }

    fn ip_rule(from: &str, to: &str) -> String {
        format!("[[rule]]\ntype = \"ip\"\nfrom = \"{from}\"\nto = \"{to}\"\n")
    }

    fn remap_str(value: &str, from: &str, to: &str) -> String {
        let from: IpNet = from.parse().unwrap();
        let to: IpNet = to.parse().unwrap();
        remap_ips(value, &from, &to).unwrap_or_else(|| value.to_string())
    }

    #[test]
    fn owner_names_match_their_list() {
        for name in OWNER_ELEMENTS {
            assert!(is_owner_name(name), "{name}");
        }
        assert!(!is_owner_name("nvpair") && !is_owner_name("operations"));
    }

    #[test]
    fn reference_attrs_match_their_list() {
        for name in REFERENCE_ATTRS {
            assert!(is_reference_attr(name), "{name}");
        }
        for name in ["value", "name", "ids", "", "rsc-role", "template-id"] {
            assert!(!is_reference_attr(name), "{name}");
        }
    }

    #[test]
    fn ip_whole_value_and_change_line() {
        let mut c = config();
        let changes = apply(&ip_rule("192.168.1.0/24", "10.2.1.0/24"), &mut c);
        assert_eq!(value(&c, "vip-ip"), "10.2.1.10");
        assert_eq!(value(&c, "db-ia-ip"), "10.2.1.20");
        assert_eq!(value(&c, "web-opts"), "--listen 10.2.1.10:80,10.2.1.11");
        assert!(
            changes.contains(
                &"rule #1 (ip) rules.toml: primitive `vip` nvpair `vip-ip`: 192.168.1.10 -> 10.2.1.10"
                    .to_string()
            ),
            "{changes:#?}"
        );
        assert_eq!(changes.len(), 3, "{changes:#?}");
    }

    #[test]
    fn ip_never_touches_references_or_node_names() {
        let mut c = config();
        apply(&ip_rule("192.168.1.0/24", "10.2.1.0/24"), &mut c);
        let loc = c.find_id("loc-vip").unwrap();
        assert_eq!(loc.attr("node"), Some("192.168.1.10"));
        assert_eq!(
            c.find_id("t-g").unwrap().attr("ticket"),
            Some("192.168.1.10")
        );
    }

    #[test]
    fn ip_with_prefix_and_network_values() {
        let (f, t) = ("192.168.1.0/24", "10.2.1.0/24");
        assert_eq!(remap_str("192.168.1.10/24", f, t), "10.2.1.10/24");
        assert_eq!(remap_str("192.168.1.0/24", f, t), "10.2.1.0/24");
        assert_eq!(remap_str("192.168.0.0/16", f, t), "192.168.0.0/16");
        assert_eq!(
            remap_str("192.168.1.10-192.168.1.20", f, t),
            "10.2.1.10-10.2.1.20"
        );
        assert_eq!(remap_str("tcp:192.168.1.5:80", f, t), "tcp:10.2.1.5:80");
        assert_eq!(remap_str("ip=192.168.1.5.", f, t), "ip=10.2.1.5.");
    }

    #[test]
    fn ip_boundaries() {
        let (f, t) = ("192.168.1.0/28", "10.2.1.0/28");
        for untouched in [
            "1192.168.1.10",
            "192.168.1.100",
            "192.168.1.10.5",
            "x192.168.1.10",
            "192.168.1.10a",
            "192.168.1.10_1",
            "v1.192.168.1.10",
            "192.168.1.16",
            "192.168.01.10",
            "::ffff:192.168.1.10",
        ] {
            assert_eq!(remap_str(untouched, f, t), untouched);
        }
        assert_eq!(remap_str("192.168.1.15", f, t), "10.2.1.15");
        assert_eq!(
            remap_str("a 192.168.1.100 b 192.168.1.10 c", f, t),
            "a 192.168.1.100 b 10.2.1.10 c"
        );
    }

    #[test]
    fn ipv6_compressed_and_canonical() {
        let (f, t) = ("fd00:1::/64", "fd00:2::/64");
        assert_eq!(remap_str("fd00:1::10", f, t), "fd00:2::10");
        assert_eq!(remap_str("FD00:1:0:0:0:0:0:10/64", f, t), "fd00:2::10/64");
        assert_eq!(remap_str("[fd00:1::10]:80", f, t), "[fd00:2::10]:80");
        assert_eq!(remap_str("fd00:1::10%eth0", f, t), "fd00:2::10%eth0");
        assert_eq!(
            remap_str("fd00:3::10 fd00:1::", f, t),
            "fd00:3::10 fd00:2::"
        );
        assert_eq!(remap_str("192.168.1.10", f, t), "192.168.1.10");
        let mut c = Element::new("configuration").with_child(
            Element::new("nvpair")
                .with_attr("id", "fd00:1::10")
                .with_attr("value", "fd00:1::10"),
        );
        apply(&ip_rule("fd00:1::/64", "fd00:2::/64"), &mut c);
        assert_eq!(c.children[0].id(), Some("fd00:1::10"));
        assert_eq!(c.children[0].attr("value"), Some("fd00:2::10"));
    }

    #[test]
    fn ip_rule_validation() {
        let (rule, message) = parse_err(&ip_rule("192.168.1.0/24", "10.2.0.0/16"));
        assert_eq!(rule, "rules.toml rule #1 (ip)");
        assert!(message.contains("prefix lengths"), "{message}");
        let (_, message) = parse_err(&ip_rule("192.168.1.0/24", "fd00::/24"));
        assert!(message.contains("family"), "{message}");
        let (_, message) = parse_err(&ip_rule("192.168.1.10/24", "10.2.1.0/24"));
        assert!(message.contains("host bits"), "{message}");
        let (_, message) = parse_err(&ip_rule("not-an-ip", "10.2.1.0/24"));
        assert!(message.contains("not-an-ip"), "{message}");
        // A bare address is a /32.
        let mut c = config();
        apply(&ip_rule("192.168.1.10", "10.9.9.9"), &mut c);
        assert_eq!(value(&c, "vip-ip"), "10.9.9.9");
        assert_eq!(value(&c, "db-ia-ip"), "192.168.1.20");
    }

    #[test]
    fn ip_restricted_to_resource() {
        let mut c = config();
        let src = ip_rule("192.168.1.0/24", "10.2.1.0/24") + "resource = \"db\"\n";
        let changes = apply(&src, &mut c);
        assert_eq!(value(&c, "db-ia-ip"), "10.2.1.20");
        assert_eq!(value(&c, "vip-ip"), "192.168.1.10");
        assert_eq!(
            changes,
            ["rule #1 (ip) rules.toml: primitive `db` nvpair `db-ia-ip`: 192.168.1.20 -> 10.2.1.20"]
        );
        let (rule, message) =
            apply_err(&(ip_rule("192.168.1.0/24", "10.2.1.0/24") + "resource = \"nope\"\n"));
        assert_eq!(rule, "rules.toml rule #1 (ip)");
        assert!(message.contains("`nope`"), "{message}");
    }

    #[test]
    fn change_lines_name_attributes_and_owners_on_both_trees() {
        // Attributes other than an nvpair's value, on an owner and below
        // one, and an element with no owner above: the same lines from
        // the owned tree and from the compact one.
        let src = r#"<configuration><resources>
            <primitive id="p" class="ocf" provider="heartbeat" type="Filesystem" description="/srv/a/x">
              <operations><op id="p-mon" name="monitor" interval="10s" description="/srv/a/y"/></operations>
            </primitive></resources>
            <constraints><rsc_location id="l" rsc="p" score="0" description="/srv/a/z"/></constraints></configuration>"#;
        let rules = RuleSet::from_toml("[[rule]]\ntype = \"path\"\nfrom = \"/srv/a\"\nto = \"/srv/b\"\n", "r.toml").unwrap();
        let expected = [
            "rule #1 (path) r.toml: primitive `p` attribute `description`: /srv/a/x -> /srv/b/x",
            "rule #1 (path) r.toml: primitive `p` op `p-mon` attribute `description`: /srv/a/y -> /srv/b/y",
            "rule #1 (path) r.toml: rsc_location `l` attribute `description`: /srv/a/z -> /srv/b/z",
        ];
        let mut owned = crate::xml::parse(src).unwrap();
        assert_eq!(rules.apply(&mut owned).unwrap(), expected);
        let mut doc = Doc::parse(src).unwrap();
        let roots: Vec<u32> = doc.root().children().map(DocNode::index).collect();
        assert_eq!(rules.apply_doc(&mut doc, &roots).unwrap().unwrap(), expected);
        assert_eq!(doc.root().to_element(), owned);
    }

    #[test]
    fn a_large_scope_walked_in_two_halves_gives_the_lines_of_one_walk() {
        // Enough elements for two threads, with values changed in both
        // halves by two rules in turn (the second sees the first's output).
        let mut src = String::from("<configuration><resources>");
        for i in 0..4000 {
            src.push_str(&format!(
                r#"<primitive id="p{i}" class="ocf" provider="heartbeat" type="IPaddr2"><instance_attributes id="p{i}-ia"><nvpair id="p{i}-ip" name="ip" value="192.168.{}.{}"/><nvpair id="p{i}-d" name="dir" value="/srv/a/{i}"/></instance_attributes><operations><op id="p{i}-mon" name="monitor" interval="10s"/></operations></primitive>"#,
                i / 250,
                i % 250
            ));
        }
        src.push_str("</resources></configuration>");
        let rules = RuleSet::from_toml(
            "[[rule]]\ntype = \"ip\"\nfrom = \"192.168.0.0/16\"\nto = \"10.2.0.0/16\"\n\n\
             [[rule]]\ntype = \"regex\"\npattern = \"^10\\\\.2\\\\.(.*)$\"\nreplace = \"10.3.$1\"\n\n\
             [[rule]]\ntype = \"path\"\nfrom = \"/srv/a\"\nto = \"/srv/b\"\n",
            "r.toml",
        )
        .unwrap();
        let mut owned = crate::xml::parse(&src).unwrap();
        let expected = rules.apply(&mut owned).unwrap();
        assert_eq!(expected.len(), 3 * 4000);
        let mut doc = Doc::parse(&src).unwrap();
        let roots: Vec<u32> = doc.node(1).children().map(DocNode::index).collect();
        let (first, second) = split_in_two(&doc, &roots);
        assert!(!first.is_empty() && !second.is_empty(), "two halves");
        assert_eq!(rules.apply_doc(&mut doc, &roots).unwrap().unwrap(), expected);
        assert_eq!(doc.root().to_element(), owned);
        assert!(expected[4000].contains("p0-ip") && expected[4000].contains("10.3.0.0"), "{}", expected[4000]);
    }

    #[test]
    fn path_component_boundary() {
        let (f, t) = ("/srv/site-a", "/srv/site-b");
        let p = |v: &str| rewrite_paths(v, f, t).unwrap_or_else(|| v.to_string());
        assert_eq!(p("/srv/site-a"), "/srv/site-b");
        assert_eq!(p("/srv/site-a/conf.d/x.conf"), "/srv/site-b/conf.d/x.conf");
        assert_eq!(
            p("-c /srv/site-a/conf.d/x.conf"),
            "-c /srv/site-b/conf.d/x.conf"
        );
        assert_eq!(
            p("--dir=/srv/site-a,/srv/site-a/y"),
            "--dir=/srv/site-b,/srv/site-b/y"
        );
        assert_eq!(p("/srv/site-abc/x"), "/srv/site-abc/x");
        assert_eq!(p("/srv/site-a.bak"), "/srv/site-a.bak");
        assert_eq!(p("/data/srv/site-a"), "/data/srv/site-a");
        assert_eq!(p("x/srv/site-a"), "x/srv/site-a");
        assert_eq!(
            rewrite_paths("/srv/a/x /srv/a", "/srv/a", "/").unwrap(),
            "/x /"
        );
    }

    #[test]
    fn path_rule_in_document() {
        let mut c = config();
        let changes = apply(
            "[[rule]]\ntype = \"path\"\nfrom = \"/srv/site-a/\"\nto = \"/srv/site-b\"\n",
            &mut c,
        );
        assert_eq!(value(&c, "web-conf"), "/srv/site-b/conf/httpd.conf");
        assert_eq!(
            changes,
            ["rule #1 (path) rules.toml: primitive `web` nvpair `web-conf`: /srv/site-a/conf/httpd.conf -> /srv/site-b/conf/httpd.conf"]
        );
        let (rule, message) =
            parse_err("[[rule]]\ntype = \"path\"\nfrom = \"srv/site-a\"\nto = \"/x\"\n");
        assert_eq!(rule, "rules.toml rule #1 (path)");
        assert!(message.contains("absolute"), "{message}");
        let (_, message) = parse_err("[[rule]]\ntype = \"path\"\nfrom = \"/\"\nto = \"/x\"\n");
        assert!(message.contains("every"), "{message}");
    }

    #[test]
    fn set_existing_nvpair() {
        let mut c = config();
        let changes = apply(
            "[[rule]]\ntype = \"set\"\nresource = \"db\"\nname = \"ip\"\nvalue = \"10.0.0.5\"\n",
            &mut c,
        );
        assert_eq!(value(&c, "db-ia-ip"), "10.0.0.5");
        assert_eq!(
            changes,
            ["rule #1 (set) rules.toml: primitive `db` nvpair `db-ia-ip`: 192.168.1.20 -> 10.0.0.5"]
        );
        // Same value again: no change.
        let again = apply(
            "[[rule]]\ntype = \"set\"\nresource = \"db\"\nname = \"ip\"\nvalue = \"10.0.0.5\"\n",
            &mut c,
        );
        assert!(again.is_empty());
    }

    #[test]
    fn set_adds_nvpair_to_existing_set() {
        let mut c = config();
        let changes = apply(
            "[[rule]]\ntype = \"set\"\nresource = \"db\"\nname = \"port\"\nvalue = \"5433\"\nkind = \"instance\"\n",
            &mut c,
        );
        let nv = c.find_id("db-ia-port").unwrap();
        assert_eq!(nv.attr("name"), Some("port"));
        assert_eq!(nv.attr("value"), Some("5433"));
        assert_eq!(c.find_id("db-ia").unwrap().children.len(), 2);
        assert_eq!(changes.len(), 1);
        assert!(
            changes[0].contains("added to instance_attributes `db-ia`"),
            "{changes:?}"
        );
    }

    #[test]
    fn set_creates_set() {
        let mut c = config();
        let changes = apply(
            "[[rule]]\ntype = \"set\"\nresource = \"bare\"\nname = \"target-role\"\nvalue = \"Stopped\"\nkind = \"meta\"\n",
            &mut c,
        );
        let set = c.find_id("bare-meta_attributes").unwrap();
        assert_eq!(set.name, "meta_attributes");
        let nv = c.find_id("bare-meta_attributes-target-role").unwrap();
        assert_eq!(nv.attr("value"), Some("Stopped"));
        assert!(changes[0].contains("new meta_attributes"), "{changes:?}");
        // Only the resource's own sets count, not its children's.
        let mut c = config();
        apply(
            "[[rule]]\ntype = \"set\"\nresource = \"g\"\nname = \"ip\"\nvalue = \"1\"\n",
            &mut c,
        );
        assert_eq!(value(&c, "g-instance_attributes-ip"), "1");
        assert_eq!(value(&c, "db-ia-ip"), "192.168.1.20");
        assert_eq!(c.find_id("g").unwrap().children[0].name, "meta_attributes");
        assert_eq!(
            c.find_id("g").unwrap().children[1].name,
            "instance_attributes"
        );
    }

    #[test]
    fn set_errors() {
        let (rule, message) = apply_err(
            "[[rule]]\ntype = \"set\"\nresource = \"nope\"\nname = \"a\"\nvalue = \"b\"\n",
        );
        assert_eq!(rule, "rules.toml rule #1 (set)");
        assert!(message.contains("`nope`"), "{message}");
        let (_, message) = apply_err(
            "[[rule]]\ntype = \"set\"\nresource = \"loc-vip\"\nname = \"a\"\nvalue = \"b\"\n",
        );
        assert!(message.contains("not a resource"), "{message}");
        // Tags reference `vip` through obj_ref; that is not the resource.
        let (_, message) = apply_err(
            "[[rule]]\ntype = \"set\"\nresource = \"g\"\nname = \"a\"\nvalue = \"b\"\nkind = \"utilization\"\n",
        );
        assert!(message.contains("utilization"), "{message}");
        // Generated id already used.
        let mut c = config();
        c.children[0]
            .children
            .push(Element::new("primitive").with_attr("id", "bare-instance_attributes"));
        let err =
            rules("[[rule]]\ntype = \"set\"\nresource = \"bare\"\nname = \"a\"\nvalue = \"b\"\n")
                .apply(&mut c)
                .unwrap_err();
        assert!(err.to_string().contains("already used"), "{err}");
        let (_, message) =
            parse_err("[[rule]]\ntype = \"set\"\nresource = \"x\"\nname = \"a\"\nvalue = \"b\"\nkind = \"other\"\n");
        assert!(message.contains("other"), "{message}");
    }

    #[test]
    fn regex_groups_and_attribute_filter() {
        let mut c = config();
        let changes = apply(
            r#"[[rule]]
type = "regex"
pattern = '^(\d+)\.(\d+)\.1\.(\d+)$'
replace = "${1}.${2}.99.$3"
attributes = ["value"]
"#,
            &mut c,
        );
        assert_eq!(value(&c, "vip-ip"), "192.168.99.10");
        assert_eq!(value(&c, "db-ia-ip"), "192.168.99.20");
        assert_eq!(changes.len(), 2);
        // Attribute filter: only `interval`.
        let mut c = config();
        apply(
            "[[rule]]\ntype = \"regex\"\npattern = \"10s\"\nreplace = \"20s\"\nattributes = [\"interval\"]\n",
            &mut c,
        );
        assert_eq!(
            c.find_id("vip-monitor-10s").unwrap().attr("interval"),
            Some("20s")
        );
        let mut c = config();
        apply(
            "[[rule]]\ntype = \"regex\"\npattern = \"10s\"\nreplace = \"20s\"\nattributes = [\"value\"]\n",
            &mut c,
        );
        assert_eq!(
            c.find_id("vip-monitor-10s").unwrap().attr("interval"),
            Some("10s")
        );
    }

    #[test]
    fn regex_never_changes_ids_or_references() {
        let mut c = config();
        let before = config();
        apply(
            "[[rule]]\ntype = \"regex\"\npattern = \".+\"\nreplace = \"X\"\n",
            &mut c,
        );
        let mut ids = Vec::new();
        c.walk(&mut |e| ids.push(e.id().map(str::to_string)));
        let mut old = Vec::new();
        before.walk(&mut |e| old.push(e.id().map(str::to_string)));
        assert_eq!(ids, old);
        let loc = c.find_id("loc-vip").unwrap();
        assert_eq!(loc.attr("rsc"), Some("vip"));
        assert_eq!(loc.attr("node"), Some("192.168.1.10"));
        assert_eq!(loc.attr("score"), Some("X"));
        let (rule, message) = parse_err(
            "[[rule]]\ntype = \"regex\"\npattern = \"a\"\nreplace = \"b\"\nattributes = [\"id\"]\n",
        );
        assert_eq!(rule, "rules.toml rule #1 (regex)");
        assert!(message.contains("`id`"), "{message}");
    }

    #[test]
    fn regex_invalid_and_scoped() {
        let (rule, message) = parse_err(
            "[[rule]]\ntype = \"drop\"\nid = \"x\"\n[[rule]]\ntype = \"regex\"\npattern = \"(\"\nreplace = \"\"\n",
        );
        assert_eq!(rule, "rules.toml rule #2 (regex)");
        assert!(message.contains("invalid pattern"), "{message}");
        let mut c = config();
        apply(
            "[[rule]]\ntype = \"regex\"\npattern = \"192\"\nreplace = \"172\"\nresource = \"web\"\n",
            &mut c,
        );
        assert_eq!(
            value(&c, "web-opts"),
            "--listen 172.168.1.10:80,172.168.1.11"
        );
        assert_eq!(value(&c, "vip-ip"), "192.168.1.10");
    }

    #[test]
    fn drop_rules() {
        let mut c = config();
        let changes = apply("[[rule]]\ntype = \"drop\"\nid = \"db\"\n", &mut c);
        assert!(c.find_id("db").is_none());
        assert!(c.find_id("db-ia-ip").is_none());
        assert!(c.find_id("web").is_some());
        assert_eq!(
            changes,
            ["rule #1 (drop) rules.toml: primitive `db`: removed"]
        );
        let changes = apply("[[rule]]\ntype = \"drop\"\nid = \"web-conf\"\n", &mut c);
        assert_eq!(
            changes,
            ["rule #1 (drop) rules.toml: primitive `web` nvpair `web-conf`: removed"]
        );

        let (rule, message) = apply_err("[[rule]]\ntype = \"drop\"\nid = \"x\"\n");
        assert_eq!(rule, "rules.toml rule #1 (drop)");
        assert_eq!(message, "drop: no element with id `x`");
        let mut c = config();
        let before = c.clone();
        let changes = apply(
            "[[rule]]\ntype = \"drop\"\nid = \"x\"\nmissing_ok = true\n",
            &mut c,
        );
        assert!(changes.is_empty());
        assert_eq!(c, before);
    }

    #[test]
    fn drop_ignores_references() {
        let mut c = config();
        apply("[[rule]]\ntype = \"drop\"\nid = \"vip\"\n", &mut c);
        // The primitive went; the tag's obj_ref (a reference) stayed.
        assert_eq!(c.children[0].children[0].id(), Some("g"));
        assert!(c.find_id("tag1").unwrap().child("obj_ref").is_some());
    }

    #[test]
    fn rules_apply_in_order() {
        let mut c = config();
        let src = ip_rule("192.168.1.0/24", "10.2.1.0/24")
            + "[[rule]]\ntype = \"regex\"\npattern = '^10\\.2\\.1\\.(\\d+)$'\nreplace = \"host-$1\"\n";
        let changes = apply(&src, &mut c);
        assert_eq!(value(&c, "vip-ip"), "host-10");
        assert!(changes
            .iter()
            .any(|l| l.starts_with("rule #2 (regex) rules.toml: primitive `vip`")));
        // Errors name the failing rule; nothing is applied.
        let (rule, _) = apply_err(&(src + "[[rule]]\ntype = \"drop\"\nid = \"zz\"\n"));
        assert_eq!(rule, "rules.toml rule #3 (drop)");
    }

    #[test]
    fn extend_keeps_origins() {
        let mut set =
            RuleSet::from_toml(&ip_rule("192.168.1.0/24", "10.2.1.0/24"), "a.toml").unwrap();
        let other =
            RuleSet::from_toml("[[rule]]\ntype = \"drop\"\nid = \"nope\"\n", "b.toml").unwrap();
        assert_eq!((set.len(), set.is_empty()), (1, false));
        set.extend(other);
        assert_eq!(set.len(), 2);
        match set.apply(&mut config()) {
            Err(Error::Rule { rule, .. }) => assert_eq!(rule, "b.toml rule #1 (drop)"),
            other => panic!("{other:?}"),
        }
        let empty = RuleSet::from_toml("", "empty.toml").unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn toml_errors() {
        let (rule, message) = parse_err("[[rule]]\ntype = \"drop\"\nid = \"x\"\nmissing = true\n");
        assert_eq!(rule, "rules.toml");
        assert!(message.contains("missing"), "{message}");
        let (rule, message) = parse_err("[[rule]]\ntype = \"rename\"\nid = \"x\"\n");
        assert_eq!(rule, "rules.toml");
        assert!(message.contains("rename"), "{message}");
        let (_, message) = parse_err("[[rules]]\ntype = \"drop\"\nid = \"x\"\n");
        assert!(message.contains("rules"), "{message}");
        let (_, message) = parse_err("[[rule]]\nid = \"x\"\n");
        assert!(message.contains("type"), "{message}");
        let (_, message) = parse_err("[[rule]\n");
        assert!(!message.is_empty());
        let (_, message) = parse_err("[[rule]]\ntype = \"ip\"\nfrom = \"192.168.1.0/24\"\n");
        assert!(message.contains("to"), "{message}");
    }
}
