//! A realistic big CIB for the benchmarks, and a second version of it with
//! about 1% of its resources changed.
//!
//! Layout for `n` primitives (all counted, fencing included): one fencing
//! device, `n/1000` clones of `ocf:pacemaker:ping`, `3n/100` groups of three
//! (an `IPaddr2` and two `Filesystem`s), and standalone primitives, alternately
//! `IPaddr2` and `Filesystem`, for the rest. Every primitive has
//! instance_attributes, meta_attributes and monitor/start/stop operations.
//! Nine top-level resources in ten are bound to ticket `geo` (a quarter of
//! them through `resource_set` rsc_tickets), the tenth is local-only (with
//! `--all-bound`, all of them are bound). Orders and colocations link bound
//! resources; a few constraints mix bound and local resources or pin a node,
//! so the scope has things to leave out.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The ticket the generated CIB binds its resources to.
pub const TICKET: &str = "geo";

/// Which version of the CIB to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The original.
    A,
    /// ~1% of primitives with changed values, a few resources removed and added.
    B,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    Ip,
    Fs,
    Ping,
}

#[derive(Debug, Clone)]
struct Prim {
    id: String,
    agent: Agent,
    /// Global primitive number: makes addresses and paths unique.
    k: usize,
}

#[derive(Debug, Clone)]
enum Top {
    Prim(Prim),
    Group(String, Vec<Prim>),
    Clone(String, Prim),
}

impl Top {
    fn id(&self) -> &str {
        match self {
            Top::Prim(p) => &p.id,
            Top::Group(id, _) | Top::Clone(id, _) => id,
        }
    }
}

#[derive(Debug, Clone)]
enum Con {
    TicketRsc(String),
    TicketSet(usize, Vec<String>),
    Order(String, String),
    Coloc(String, String),
    Location(String),
}

/// The generated configuration, before rendering.
#[derive(Debug)]
pub struct Model {
    tops: Vec<Top>,
    cons: Vec<Con>,
    /// Primitives in total (fencing device included).
    pub primitives: usize,
    /// Top-level resources bound to the ticket.
    pub bound: usize,
}

/// Builds the model of a CIB with `n` primitives (at least 20). With
/// `all_bound`, every top-level resource (the fencing device aside) is bound
/// to the ticket, none is local-only.
pub fn model(n: usize, all_bound: bool) -> Model {
    let n = n.max(20);
    let clones = (n / 1000).max(1);
    let groups = n * 3 / 100;
    let standalone = n - 1 - clones - 3 * groups;
    let mut k = 0;
    let mut prim = |id: String, agent: Agent| {
        k += 1;
        Prim { id, agent, k }
    };
    let mut tops = Vec::new();
    for g in 0..groups {
        let id = format!("grp-{g}");
        let members = vec![
            prim(format!("{id}-vip"), Agent::Ip),
            prim(format!("{id}-fs"), Agent::Fs),
            prim(format!("{id}-data"), Agent::Fs),
        ];
        tops.push(Top::Group(id, members));
    }
    for c in 0..clones {
        let p = prim(format!("ping-{c}"), Agent::Ping);
        tops.push(Top::Clone(format!("ping-{c}-clone"), p));
    }
    for s in 0..standalone {
        let p = if s % 2 == 0 {
            prim(format!("vip-{s}"), Agent::Ip)
        } else {
            prim(format!("fs-{s}"), Agent::Fs)
        };
        tops.push(Top::Prim(p));
    }

    let mut bound: Vec<&Top> = Vec::new();
    let mut local: Vec<&Top> = Vec::new();
    for (i, top) in tops.iter().enumerate() {
        if !all_bound && i % 10 == 9 {
            local.push(top);
        } else {
            bound.push(top);
        }
    }
    let mut cons = Vec::new();
    let mut set: Vec<String> = Vec::new();
    for (b, top) in bound.iter().enumerate() {
        let id = top.id().to_string();
        if b % 20 < 5 {
            set.push(id.clone());
            if set.len() == 5 {
                cons.push(Con::TicketSet(b / 20, std::mem::take(&mut set)));
            }
        } else {
            cons.push(Con::TicketRsc(id.clone()));
        }
        if b > 0 && b % 25 == 1 {
            cons.push(Con::Order(bound[b - 1].id().into(), id.clone()));
        }
        if b > 1 && b % 25 == 2 {
            cons.push(Con::Coloc(id.clone(), bound[b - 1].id().into()));
        }
        if b % 200 == 3 {
            cons.push(Con::Location(id));
        }
    }
    if !set.is_empty() {
        cons.push(Con::TicketSet(usize::MAX, set));
    }
    for (l, top) in local.iter().enumerate() {
        if l % 10 == 0 {
            cons.push(Con::Coloc(
                top.id().into(),
                bound[l % bound.len()].id().into(),
            ));
        }
    }
    let bound = bound.len();
    Model {
        tops,
        cons,
        primitives: n,
        bound,
    }
}

/// Whether variant B changes the values of primitive number `k` (1%).
fn changed(variant: Variant, k: usize) -> bool {
    variant == Variant::B && k % 100 == 42
}

/// Top-level ids that variant B removes (standalone primitives, ~0.1%).
fn removed(model: &Model, variant: Variant) -> BTreeSet<String> {
    if variant == Variant::A {
        return BTreeSet::new();
    }
    model
        .tops
        .iter()
        .filter_map(|t| match t {
            Top::Prim(p) if p.k % 1000 == 700 => Some(p.id.clone()),
            _ => None,
        })
        .collect()
}

/// Number of resources variant B adds.
const ADDED: usize = 5;

/// Renders the model as a full `<cib>` document.
pub fn render(model: &Model, variant: Variant) -> String {
    let removed = removed(model, variant);
    let mut out = String::with_capacity(model.primitives * 1100);
    let epoch = if variant == Variant::A { 100 } else { 101 };
    let _ = writeln!(
        out,
        r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="{epoch}" num_updates="0" admin_epoch="0" have-quorum="1" dc-uuid="1">"#
    );
    out.push_str(
        r#"  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
        <nvpair id="cib-bootstrap-options-cluster-name" name="cluster-name" value="site-a"/>
        <nvpair id="cib-bootstrap-options-no-quorum-policy" name="no-quorum-policy" value="stop"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="node-a1"/>
      <node id="2" uname="node-a2"/>
    </nodes>
    <resources>
      <primitive id="fence-site-a" class="stonith" type="fence_ipmilan">
        <instance_attributes id="fence-site-a-instance_attributes">
          <nvpair id="fence-site-a-instance_attributes-ip" name="ip" value="10.1.0.100"/>
          <nvpair id="fence-site-a-instance_attributes-username" name="username" value="admin"/>
          <nvpair id="fence-site-a-instance_attributes-pcmk_host_list" name="pcmk_host_list" value="node-a1 node-a2"/>
        </instance_attributes>
        <operations>
          <op id="fence-site-a-monitor" name="monitor" interval="60s"/>
        </operations>
      </primitive>
"#,
    );
    for top in model.tops.iter().filter(|t| !removed.contains(t.id())) {
        render_top(&mut out, top, variant);
    }
    let mut added = Vec::new();
    if variant == Variant::B {
        for j in 0..ADDED {
            let p = Prim {
                id: format!("vip-new-{j}"),
                agent: Agent::Ip,
                k: 60_000 + j,
            };
            render_top(&mut out, &Top::Prim(p), variant);
            added.push(format!("vip-new-{j}"));
        }
    }
    out.push_str("    </resources>\n    <constraints>\n");
    for con in &model.cons {
        render_con(&mut out, con, &removed);
    }
    for id in &added {
        render_con(&mut out, &Con::TicketRsc(id.clone()), &removed);
    }
    out.push_str("    </constraints>\n  </configuration>\n");
    let _ = writeln!(
        out,
        r#"  <status>
    <tickets>
      <ticket_state id="{TICKET}" granted="true" last-granted="1763900000"/>
    </tickets>
  </status>
</cib>"#
    );
    out
}

fn render_top(out: &mut String, top: &Top, variant: Variant) {
    match top {
        Top::Prim(p) => render_prim(out, p, variant, 3),
        Top::Group(id, members) => {
            let _ = writeln!(out, r#"      <group id="{id}">"#);
            nvset(out, 4, id, "meta_attributes", &[("target-role", "Started")]);
            for p in members {
                render_prim(out, p, variant, 4);
            }
            out.push_str("      </group>\n");
        }
        Top::Clone(id, p) => {
            let _ = writeln!(out, r#"      <clone id="{id}">"#);
            nvset(
                out,
                4,
                id,
                "meta_attributes",
                &[
                    ("clone-max", "2"),
                    ("clone-node-max", "1"),
                    ("interleave", "true"),
                ],
            );
            render_prim(out, p, variant, 4);
            out.push_str("      </clone>\n");
        }
    }
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn nvset(out: &mut String, level: usize, owner: &str, kind: &str, pairs: &[(&str, &str)]) {
    indent(out, level);
    let _ = writeln!(out, r#"<{kind} id="{owner}-{kind}">"#);
    for (name, value) in pairs {
        indent(out, level + 1);
        let _ = writeln!(
            out,
            r#"<nvpair id="{owner}-{kind}-{name}" name="{name}" value="{value}"/>"#
        );
    }
    indent(out, level);
    let _ = writeln!(out, "</{kind}>");
}

fn render_prim(out: &mut String, p: &Prim, variant: Variant, level: usize) {
    let k = p.k;
    let changed = changed(variant, k);
    let (provider, kind) = match p.agent {
        Agent::Ip => ("heartbeat", "IPaddr2"),
        Agent::Fs => ("heartbeat", "Filesystem"),
        Agent::Ping => ("pacemaker", "ping"),
    };
    indent(out, level);
    let _ = writeln!(
        out,
        r#"<primitive id="{}" class="ocf" provider="{provider}" type="{kind}">"#,
        p.id
    );
    let level = level + 1;
    let (timeout, monitor) = match (p.agent, changed) {
        (Agent::Fs, false) => ("60s", "20s"),
        (Agent::Fs, true) => ("60s", "30s"),
        (_, false) => ("20s", "10s"),
        (_, true) => ("20s", "15s"),
    };
    match p.agent {
        Agent::Ip => {
            let ip = format!("192.168.{}.{}", (k / 250) % 250, k % 250 + 1);
            let cidr = if changed { "23" } else { "24" };
            nvset(
                out,
                level,
                &p.id,
                "instance_attributes",
                &[("ip", &ip), ("cidr_netmask", cidr)],
            );
        }
        Agent::Fs => {
            let device = format!("/dev/vg-a/lv-{k}");
            let dir = format!("/srv/site-a/data/{k}");
            let fstype = if changed { "ext4" } else { "xfs" };
            nvset(
                out,
                level,
                &p.id,
                "instance_attributes",
                &[("device", &device), ("directory", &dir), ("fstype", fstype)],
            );
        }
        Agent::Ping => {
            let host = format!("192.168.254.{}", k % 250 + 1);
            let mult = if changed { "2000" } else { "1000" };
            nvset(
                out,
                level,
                &p.id,
                "instance_attributes",
                &[("host_list", &host), ("multiplier", mult)],
            );
        }
    }
    nvset(
        out,
        level,
        &p.id,
        "meta_attributes",
        &[("resource-stickiness", "100")],
    );
    indent(out, level);
    out.push_str("<operations>\n");
    for (name, interval, t) in [
        ("monitor", monitor, "20s"),
        ("start", "0s", timeout),
        ("stop", "0s", timeout),
    ] {
        indent(out, level + 1);
        let _ = writeln!(
            out,
            r#"<op id="{}-{name}" name="{name}" interval="{interval}" timeout="{t}"/>"#,
            p.id
        );
    }
    indent(out, level);
    out.push_str("</operations>\n");
    indent(out, level - 1);
    out.push_str("</primitive>\n");
}

fn render_con(out: &mut String, con: &Con, removed: &BTreeSet<String>) {
    let gone = |id: &String| removed.contains(id);
    match con {
        Con::TicketRsc(r) if !gone(r) => {
            let _ = writeln!(
                out,
                r#"      <rsc_ticket id="{r}-needs-{TICKET}" rsc="{r}" ticket="{TICKET}" loss-policy="stop"/>"#
            );
        }
        Con::TicketSet(n, members) => {
            let members: Vec<&String> = members.iter().filter(|m| !gone(m)).collect();
            if members.is_empty() {
                return;
            }
            let id = format!("{TICKET}-set-{n}");
            let _ = writeln!(
                out,
                r#"      <rsc_ticket id="{id}" ticket="{TICKET}" loss-policy="stop">"#
            );
            let _ = writeln!(out, r#"        <resource_set id="{id}-0">"#);
            for m in members {
                let _ = writeln!(out, r#"          <resource_ref id="{m}"/>"#);
            }
            out.push_str("        </resource_set>\n      </rsc_ticket>\n");
        }
        Con::Order(first, then) if !gone(first) && !gone(then) => {
            let _ = writeln!(
                out,
                r#"      <rsc_order id="order-{first}-then-{then}" first="{first}" then="{then}" kind="Mandatory"/>"#
            );
        }
        Con::Coloc(rsc, with) if !gone(rsc) && !gone(with) => {
            let _ = writeln!(
                out,
                r#"      <rsc_colocation id="colo-{rsc}-with-{with}" rsc="{rsc}" with-rsc="{with}" score="INFINITY"/>"#
            );
        }
        Con::Location(rsc) if !gone(rsc) => {
            let _ = writeln!(
                out,
                r#"      <rsc_location id="loc-{rsc}-prefers-node-a1" rsc="{rsc}" node="node-a1" score="100"/>"#
            );
        }
        _ => {}
    }
}

/// The transform rules of the benchmark (`rules.toml`).
pub const RULES_TOML: &str = r#"# Site B: addresses and paths of site A, rewritten.
[[rule]]
type = "ip"
from = "192.168.0.0/16"
to = "10.2.0.0/16"

[[rule]]
type = "path"
from = "/srv/site-a"
to = "/srv/site-b"
"#;

/// The same rewriting as [`RULES_TOML`] in XSLT 1.0 (`equivalent.xsl`): the
/// identity transform plus overrides for nvpair values that start with an
/// address of 192.168.0.0/16 or a path under /srv/site-a. Equivalent on the
/// generated CIB, where addresses and paths appear only in nvpair values,
/// one per value. (Matching `@*` with the rules' exclusion list of reference
/// attributes instead of `nvpair/@value` gives the same output but makes
/// xsltproc 4x slower: the anchor would flatter us.)
pub const EQUIVALENT_XSL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" encoding="UTF-8"/>

  <!-- identity -->
  <xsl:template match="@*|node()">
    <xsl:copy>
      <xsl:apply-templates select="@*|node()"/>
    </xsl:copy>
  </xsl:template>

  <!-- ip rule: 192.168.0.0/16 -> 10.2.0.0/16 -->
  <xsl:template match="nvpair/@value[starts-with(., '192.168.')]">
    <xsl:attribute name="value">
      <xsl:value-of select="concat('10.2.', substring-after(., '192.168.'))"/>
    </xsl:attribute>
  </xsl:template>

  <!-- path rule: /srv/site-a -> /srv/site-b -->
  <xsl:template match="nvpair/@value[. = '/srv/site-a' or starts-with(., '/srv/site-a/')]">
    <xsl:attribute name="value">
      <xsl:value-of select="concat('/srv/site-b', substring-after(., '/srv/site-a'))"/>
    </xsl:attribute>
  </xsl:template>
</xsl:stylesheet>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use cib_transforms::xml::parse;

    #[test]
    fn small_cib_parses_and_has_a_scope() {
        let m = model(200, false);
        let a = parse(&render(&m, Variant::A)).expect("A parses");
        let b = parse(&render(&m, Variant::B)).expect("B parses");
        let sa = cib_transforms::scope::scope(&a, TICKET).expect("scope A");
        let sb = cib_transforms::scope::scope(&b, TICKET).expect("scope B");
        assert_ne!(sa.digest, sb.digest);
        assert!(!sa.left_out.is_empty());
        let rules =
            cib_transforms::rules::RuleSet::from_toml(RULES_TOML, "rules.toml").expect("rules");
        let mut config = sa.config.clone();
        let changes = rules.apply(&mut config).expect("apply");
        assert!(!changes.is_empty());
    }
}
