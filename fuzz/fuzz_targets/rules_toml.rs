//! A subscriber's rewriting rules (TOML) parsed and, when accepted, applied
//! to a small configuration. An application that fails leaves the
//! configuration unchanged.

#![no_main]

use std::sync::OnceLock;

use cib_transforms::rules::RuleSet;
use cib_transforms::{xml, Element};
use libfuzzer_sys::fuzz_target;

/// A configuration with the shapes rules act on: a primitive with instance
/// attributes and meta attributes, a group, a clone, constraints, a tag.
const CONFIG: &str = r#"<configuration>
  <resources>
    <primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">
      <instance_attributes id="vip-ia">
        <nvpair id="vip-ip" name="ip" value="192.168.1.10"/>
        <nvpair id="vip-nic" name="nic" value="eth0"/>
      </instance_attributes>
      <meta_attributes id="vip-meta">
        <nvpair id="vip-meta-target-role" name="target-role" value="Started"/>
      </meta_attributes>
      <operations>
        <op id="vip-monitor" name="monitor" interval="10s"/>
      </operations>
    </primitive>
    <group id="app">
      <primitive id="fs" class="ocf" provider="heartbeat" type="Filesystem">
        <instance_attributes id="fs-ia">
          <nvpair id="fs-device" name="device" value="/dev/sdb1"/>
          <nvpair id="fs-dir" name="directory" value="/srv"/>
        </instance_attributes>
      </primitive>
      <primitive id="web" class="systemd" type="nginx"/>
    </group>
    <clone id="ping-clone">
      <primitive id="ping" class="ocf" provider="pacemaker" type="ping">
        <instance_attributes id="ping-ia">
          <nvpair id="ping-host" name="host_list" value="192.168.1.1"/>
        </instance_attributes>
      </primitive>
    </clone>
  </resources>
  <constraints>
    <rsc_ticket id="app-geo" rsc="app" ticket="geo" loss-policy="stop"/>
    <rsc_colocation id="vip-with-app" rsc="vip" with-rsc="app" score="INFINITY"/>
    <rsc_order id="app-then-vip" first="app" then="vip"/>
  </constraints>
  <tags>
    <tag id="web-tier">
      <obj_ref id="vip"/>
    </tag>
  </tags>
</configuration>
"#;

fn config() -> &'static Element {
    static CONFIG_TREE: OnceLock<Element> = OnceLock::new();
    CONFIG_TREE.get_or_init(|| xml::parse(CONFIG).expect("the fixed configuration parses"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(rules) = RuleSet::from_toml(text, "f") else { return };
    let mut work = config().clone();
    if rules.apply(&mut work).is_err() {
        assert_eq!(&work, config(), "a failed application changed the configuration");
    }
});
