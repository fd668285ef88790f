//! Property tests of the per-site transform rules (`cib_transforms::rules`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cib_transforms::rules::{RuleSet, REFERENCE_ATTRS};
use cib_transforms::Element;
use proptest::prelude::*;

/// A network, its prefix length and an address inside it, as text.
#[derive(Debug, Clone)]
struct Case {
    from: String,
    to: String,
    addr: IpAddr,
    prefix: u8,
    v6: bool,
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

fn v4_case() -> impl Strategy<Value = Case> {
    (0u8..=32, any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(p, f, t, h)| {
        let m = mask_v4(p);
        let (f, t) = (f & m, t & m);
        Case {
            from: format!("{}/{p}", Ipv4Addr::from(f)),
            to: format!("{}/{p}", Ipv4Addr::from(t)),
            addr: IpAddr::V4(Ipv4Addr::from(f | (h & !m))),
            prefix: p,
            v6: false,
        }
    })
}

fn v6_case() -> impl Strategy<Value = Case> {
    (0u8..=128, any::<u128>(), any::<u128>(), any::<u128>()).prop_map(|(p, f, t, h)| {
        let m = mask_v6(p);
        let (f, t) = (f & m, t & m);
        Case {
            from: format!("{}/{p}", Ipv6Addr::from(f)),
            to: format!("{}/{p}", Ipv6Addr::from(t)),
            addr: IpAddr::V6(Ipv6Addr::from(f | (h & !m))),
            prefix: p,
            v6: true,
        }
    })
}

fn any_case() -> impl Strategy<Value = Case> {
    prop_oneof![v4_case(), v6_case()]
}

fn ip_rule(from: &str, to: &str) -> String {
    format!("[[rule]]\ntype = \"ip\"\nfrom = \"{from}\"\nto = \"{to}\"\n")
}

/// `<configuration>` with one primitive whose nvpair holds `value`.
fn config_with(value: &str) -> Element {
    Element::new("configuration").with_child(
        Element::new("resources").with_child(
            Element::new("primitive").with_attr("id", "p").with_child(
                Element::new("instance_attributes")
                    .with_attr("id", "p-ia")
                    .with_child(
                        Element::new("nvpair")
                            .with_attr("id", "p-ia-ip")
                            .with_attr("name", "ip")
                            .with_attr("value", value),
                    ),
            ),
        ),
    )
}

fn nv_value(config: &Element) -> String {
    config
        .find_id("p-ia-ip")
        .unwrap()
        .attr("value")
        .unwrap()
        .to_string()
}

/// The address as it appears embedded in a longer value.
fn embedded(case: &Case, addr: &str) -> String {
    if case.v6 {
        format!("--listen [{addr}]:80 -q")
    } else {
        format!("--listen {addr}:80,{addr}/{}", case.prefix)
    }
}

proptest! {
    /// (a) from→to then to→from is the identity on addresses in `from`.
    #[test]
    fn ip_remap_round_trips(case in any_case()) {
        let src = ip_rule(&case.from, &case.to) + &ip_rule(&case.to, &case.from);
        let rules = RuleSet::from_toml(&src, "props.toml").unwrap();
        let value = embedded(&case, &case.addr.to_string());
        let mut config = config_with(&value);
        rules.apply(&mut config).unwrap();
        prop_assert_eq!(nv_value(&config), value);
    }

    /// (b) an address in `from` lands in `to` with the same host bits.
    #[test]
    fn ip_remap_keeps_host_bits(case in any_case()) {
        let rules = RuleSet::from_toml(&ip_rule(&case.from, &case.to), "props.toml").unwrap();
        let mut config = config_with(&case.addr.to_string());
        rules.apply(&mut config).unwrap();
        let out: IpAddr = nv_value(&config).parse().unwrap();
        let to: ipnet::IpNet = case.to.parse().unwrap();
        let from: ipnet::IpNet = case.from.parse().unwrap();
        prop_assert!(to.contains(&out), "{} not in {}", out, to);
        let host = |a: IpAddr, n: &ipnet::IpNet| match (a, n.hostmask()) {
            (IpAddr::V4(a), IpAddr::V4(m)) => u128::from(u32::from(a) & u32::from(m)),
            (IpAddr::V6(a), IpAddr::V6(m)) => u128::from(a) & u128::from(m),
            _ => panic!("family changed"),
        };
        prop_assert_eq!(host(out, &to), host(case.addr, &from));
    }
}

// --- (c) ids and references never change --------------------------------

const ID_STEMS: &[&str] = &["192.168.1.", "/srv/site-a/", "fd00:1::", "vip-", "10.2.1."];
const VALUES: &[&str] = &[
    "192.168.1.10",
    "192.168.1.0/24",
    "-c /srv/site-a/x.conf --bind 192.168.1.7:80",
    "fd00:1::5",
    "[fd00:1::5]:443",
    "/srv/site-a",
    "plain",
    "",
    "1192.168.1.1",
];

/// Builds a configuration from generated picks: resources with ids that look
/// like addresses and paths, nvpairs with such values, and constraints and
/// tags referencing them.
fn build_config(resources: &[(usize, Vec<usize>)], node: usize) -> Element {
    let rid = |i: usize, stem: usize| format!("{}{i}", ID_STEMS[stem % ID_STEMS.len()]);
    let mut rscs = Element::new("resources");
    let mut ids = Vec::new();
    for (i, (stem, values)) in resources.iter().enumerate() {
        let id = rid(i, *stem);
        let mut set = Element::new("instance_attributes").with_attr("id", format!("{id}-ia"));
        for (k, v) in values.iter().enumerate() {
            set = set.with_child(
                Element::new("nvpair")
                    .with_attr("id", format!("{id}-ia-{k}"))
                    .with_attr("name", format!("n{k}"))
                    .with_attr("value", VALUES[v % VALUES.len()]),
            );
        }
        rscs = rscs.with_child(
            Element::new("primitive")
                .with_attr("id", id.as_str())
                .with_attr("class", "ocf")
                .with_attr("type", "IPaddr2")
                .with_child(set),
        );
        ids.push(id);
    }
    let mut cons = Element::new("constraints");
    let mut tag = Element::new("tag").with_attr("id", "192.168.1.200");
    for (i, id) in ids.iter().enumerate() {
        let other = &ids[(i + 1) % ids.len()];
        cons = cons
            .with_child(
                Element::new("rsc_location")
                    .with_attr("id", format!("loc-{id}"))
                    .with_attr("rsc", id.as_str())
                    .with_attr("node", VALUES[node % VALUES.len()])
                    .with_attr("score", "100"),
            )
            .with_child(
                Element::new("rsc_colocation")
                    .with_attr("id", format!("col-{id}"))
                    .with_attr("rsc", id.as_str())
                    .with_attr("with-rsc", other.as_str())
                    .with_attr("score", "INFINITY"),
            );
        tag = tag.with_child(Element::new("obj_ref").with_attr("id", id.as_str()));
    }
    Element::new("configuration")
        .with_child(rscs)
        .with_child(cons)
        .with_child(Element::new("tags").with_child(tag))
}

/// One rule (TOML) per pick; `ids` are the resource ids for `set`/`drop`.
fn rule_src(pick: usize, target: usize, ids: &[String]) -> (String, bool) {
    let id = &ids[target % ids.len()];
    let is_drop = pick % 9 == 8;
    let src = match pick % 9 {
        0 => ip_rule("192.168.1.0/24", "10.2.1.0/24"),
        1 => ip_rule("fd00:1::/64", "fd00:2::/64"),
        2 => ip_rule("10.2.1.0/24", "192.168.1.0/24"),
        3 => "[[rule]]\ntype = \"path\"\nfrom = \"/srv/site-a\"\nto = \"/srv/site-b\"\n".into(),
        4 => "[[rule]]\ntype = \"regex\"\npattern = \".+\"\nreplace = \"X\"\n".into(),
        5 => "[[rule]]\ntype = \"regex\"\npattern = '(\\d+)'\nreplace = \"<$1>\"\n".into(),
        6 => format!("[[rule]]\ntype = \"set\"\nresource = \"{id}\"\nname = \"n0\"\nvalue = \"192.168.1.1\"\n"),
        7 => format!("[[rule]]\ntype = \"set\"\nresource = \"{id}\"\nname = \"new\"\nvalue = \"v\"\nkind = \"meta\"\n"),
        _ => format!("[[rule]]\ntype = \"drop\"\nid = \"{id}\"\nmissing_ok = true\n"),
    };
    (src, is_drop)
}

/// (attribute, value) of every reference attribute, in document order.
fn references(config: &Element) -> Vec<(String, String)> {
    let mut out = Vec::new();
    config.walk(&mut |el| {
        for (k, v) in &el.attrs {
            if REFERENCE_ATTRS.contains(&k.as_str()) {
                out.push((k.clone(), v.clone()));
            }
        }
    });
    out
}

fn is_subsequence(small: &[(String, String)], big: &[(String, String)]) -> bool {
    let mut it = big.iter();
    small.iter().all(|s| it.any(|b| b == s))
}

proptest! {
    /// (c) rules never change an id or a reference; drop only removes
    /// elements, set only adds elements with new ids.
    #[test]
    fn rules_never_change_ids(
        resources in prop::collection::vec((0usize..5, prop::collection::vec(0usize..9, 0..4)), 1..5),
        node in 0usize..9,
        picks in prop::collection::vec((0usize..9, 0usize..5), 1..6),
    ) {
        let config = build_config(&resources, node);
        let ids: Vec<String> = config.children[0]
            .children
            .iter()
            .filter_map(|p| p.id().map(str::to_string))
            .collect();
        let mut src = String::new();
        let mut dropping = false;
        for (pick, target) in &picks {
            let (rule, is_drop) = rule_src(*pick, *target, &ids);
            src.push_str(&rule);
            dropping |= is_drop;
        }
        let rules = RuleSet::from_toml(&src, "props.toml").unwrap();
        let before = references(&config);
        let before_ids: std::collections::HashSet<&str> = before
            .iter()
            .filter(|(k, _)| k == "id")
            .map(|(_, v)| v.as_str())
            .collect();
        let mut out = config.clone();
        match rules.apply(&mut out) {
            Ok(_) => {
                // Ids created by `set` are new; everything else was there.
                let after: Vec<(String, String)> = references(&out)
                    .into_iter()
                    .filter(|(k, v)| k != "id" || before_ids.contains(v.as_str()))
                    .collect();
                if dropping {
                    prop_assert!(is_subsequence(&after, &before), "{after:?}\n{before:?}");
                } else {
                    prop_assert_eq!(after, before);
                }
            }
            Err(_) => prop_assert_eq!(out, config),
        }
    }
}
