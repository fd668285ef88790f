//! Tests of the rules: TOML validation, every rule type, change lines.

use super::values::*;
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
    assert_eq!(rule, "rules.toml:1 rule #1 (ip)");
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
    assert_eq!(rule, "rules.toml:1 rule #1 (ip)");
    assert!(message.contains("`nope`"), "{message}");
}

#[test]
fn change_lines_name_attributes_and_owners() {
    // Attributes other than an nvpair's value, on an owner and below
    // one, and an element with no owner above.
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
    assert_eq!(rule, "rules.toml:1 rule #1 (path)");
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
    assert_eq!(rule, "rules.toml:1 rule #1 (set)");
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
    assert_eq!(rule, "rules.toml:1 rule #1 (regex)");
    assert!(message.contains("`id`"), "{message}");
}

#[test]
fn regex_invalid_and_scoped() {
    let (rule, message) = parse_err(
        "[[rule]]\ntype = \"drop\"\nid = \"x\"\n[[rule]]\ntype = \"regex\"\npattern = \"(\"\nreplace = \"\"\n",
    );
    assert_eq!(rule, "rules.toml:4 rule #2 (regex)");
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
    assert_eq!(rule, "rules.toml:1 rule #1 (drop)");
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
    assert_eq!(rule, "rules.toml:9 rule #3 (drop)");
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
        Err(Error::Rule { rule, .. }) => assert_eq!(rule, "b.toml:1 rule #1 (drop)"),
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

#[test]
fn every_rule_counts_what_it_changed() {
    let src = "# site B\n\n".to_string()
        + &ip_rule("192.168.1.0/24", "10.2.1.0/24")
        + "\n[[rule]]\ntype = \"path\"\nfrom = \"/nowhere\"\nto = \"/elsewhere\"\n"
        + "[[rule]]\ntype = \"drop\"\nid = \"absent\"\nmissing_ok = true\n"
        + "[[rule]]\ntype = \"set\"\nresource = \"db\"\nname = \"ip\"\nvalue = \"10.2.1.20\"\n";
    let mut c = config();
    let applied = rules(&src).apply_counted(&mut c).unwrap();
    let counts: Vec<String> = applied.counts.iter().map(ToString::to_string).collect();
    assert_eq!(
        counts,
        [
            "rule #1 (ip) rules.toml:3 changed 3 values",
            "rule #2 (path) rules.toml:8 matched nothing",
            "rule #3 (drop) rules.toml:12 matched nothing",
            // The ip rule already gave db this address.
            "rule #4 (set) rules.toml:16 matched nothing",
        ]
    );
    assert_eq!(applied.changed(), 3);
    assert_eq!(applied.changes.len(), 3);
    let idle: Vec<&str> = applied.idle().map(|c| c.rule.as_str()).collect();
    assert_eq!(idle, ["rule #2 (path) rules.toml:8", "rule #3 (drop) rules.toml:12", "rule #4 (set) rules.toml:16"]);
    // `apply` gives the same changes.
    assert_eq!(rules(&src).apply(&mut config()).unwrap(), applied.changes);
}

#[test]
fn counts_follow_the_files_of_an_extended_set() {
    let mut set = RuleSet::from_toml(&ip_rule("192.168.9.0/24", "10.2.9.0/24"), "a.toml").unwrap();
    set.extend(RuleSet::from_toml(&format!("\n{}", ip_rule("192.168.1.10", "10.0.0.1")), "b.toml").unwrap());
    let applied = set.apply_counted(&mut config()).unwrap();
    let idle: Vec<String> = applied.idle().map(ToString::to_string).collect();
    assert_eq!(idle, ["rule #1 (ip) a.toml:1 matched nothing"]);
    assert_eq!(applied.counts[1].to_string(), "rule #1 (ip) b.toml:2 changed 2 values");
    assert!(RuleSet::default().apply_counted(&mut config()).unwrap().counts.is_empty());
}

#[test]
fn errors_point_at_the_line() {
    // An invalid rule: the line of its table.
    let src = "[[rule]]\ntype = \"drop\"\nid = \"x\"\n\n# bad\n[[rule]]\ntype = \"path\"\nfrom = \"relative\"\nto = \"/b\"\n";
    let (rule, message) = parse_err(src);
    assert_eq!(rule, "rules.toml:6 rule #2 (path)");
    assert!(message.contains("absolute"), "{message}");
    // TOML errors: toml's own message, with the line and the text.
    let (rule, message) = parse_err("[[rule]]\ntype = \"drop\"\nid = \"x\"\nmissing = true\n");
    assert_eq!(rule, "rules.toml");
    assert!(message.contains("line 4"), "{message}");
    assert!(message.contains("missing = true"), "{message}");
    let (_, message) = parse_err("[[rule]]\ntype = \"drop\"\nid = x\n");
    assert!(message.contains("line 3"), "{message}");
    let err = RuleSet::from_toml("[[rule]]\ntype = \"rename\"\n", "r.toml").unwrap_err().to_string();
    assert!(err.starts_with("transform rule r.toml: TOML parse error at line 2"), "{err}");
}
