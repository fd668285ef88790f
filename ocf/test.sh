#!/usr/bin/env bash
# Tests the OCF agents ocf/publisher and ocf/subscriber with ocf-tester
# (package resource-agents), each against its real daemon: certificates from
# examples/make-certs.sh, a CIB file from `cibadmin --empty` named by the
# daemon's configuration (cib_file), and the built binaries. Also checks
# that the agents' meta-data is valid (ra-api-1.dtd and metadata.rng) and
# that the common part of the two agents is identical.
#
# Usage: ocf/test.sh            (after cargo build --workspace --bins)
#
#   CIB_REPLICATOR_BIN   directory of cib-publisher and cib-subscriber
#                        (default: target/debug of this checkout)
#
# The subscriber agent is tested only when the binary has the `run`
# subcommand (it says so when skipped). Run as root, ocf-tester also checks
# that the agents are executable by nobody. Every daemon started is stopped
# (by its pid) and the temporary directory removed, also on failure.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bindir="${CIB_REPLICATOR_BIN:-$root/target/debug}"
export OCF_ROOT="${OCF_ROOT:-/usr/lib/ocf}"
export PATH="$PATH:/usr/sbin:/sbin"
unset CIB_file CIB_shadow

for tool in ocf-tester cibadmin xmllint openssl; do
  command -v "$tool" >/dev/null || {
    echo "ocf/test.sh: $tool not found (apt-get install resource-agents pacemaker-cli-utils libxml2-utils openssl, or run ./scripts/setup)" >&2
    exit 2
  }
done
for b in cib-publisher cib-subscriber; do
  [ -x "$bindir/$b" ] || {
    echo "ocf/test.sh: $bindir/$b not found: run cargo build --workspace --bins first" >&2
    exit 2
  }
done

work="$(mktemp -d)"
# Stops every daemon whose pid file is in $work (only when the pid still
# runs one of our binaries), then removes $work.
cleanup() {
  local f pid exe
  for f in "$work"/*.pid; do
    [ -f "$f" ] || continue
    pid="$(head -n 1 "$f")"
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || continue
    case "$exe" in
      "$bindir"/cib-publisher* | "$bindir"/cib-subscriber*)
        echo "ocf/test.sh: stopping leftover ${exe##*/} (pid $pid)" >&2
        kill -KILL "$pid" 2>/dev/null || true
        ;;
    esac
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

failed=0
fail() {
  echo "FAIL: $*" >&2
  failed=1
}

# The agents, installed as they would be: mode 0755 in a directory nobody
# (ocf-tester's permission check) can read.
chmod 0755 "$work"
install -d -m 0755 "$work/resource.d/cib-replicator"
for a in publisher subscriber; do
  [ -x "$root/ocf/$a" ] || fail "ocf/$a is not executable"
  install -m 0755 "$root/ocf/$a" "$work/resource.d/cib-replicator/$a"
done
agents="$work/resource.d/cib-replicator"

echo "== the common part of the agents is identical"
common() { sed -n '/^# ---- common part/,$p' "$1"; }
if ! diff -u <(common "$root/ocf/publisher") <(common "$root/ocf/subscriber"); then
  fail "the common parts of ocf/publisher and ocf/subscriber differ"
fi

# resource-agents' ra-api-1.dtd and metadata.rng (4.12) predate the
# reload-agent action (the DTD) and the reloadable parameter attribute
# (both) of OCF 1.1, which Pacemaker's own agents use: lint, and run
# ocf-tester, against copies that add them.
radata="$work/share/resource-agents"
mkdir -p "$radata"
sed -e 's/|validate-all)/|validate-all|reload-agent)/' \
  -e 's/unique  (1|0)   "0">/unique (1|0) "0" reloadable (1|0) "0">/' \
  /usr/share/resource-agents/ra-api-1.dtd >"$radata/ra-api-1.dtd"
grep -q 'reload-agent' "$radata/ra-api-1.dtd" || fail "cannot add reload-agent to ra-api-1.dtd"
grep -q 'reloadable' "$radata/ra-api-1.dtd" || fail "cannot add reloadable to ra-api-1.dtd"
sed 's|<attribute name="required"> <ref name="boolean-values" /> </attribute>|&</optional><optional><attribute name="reloadable"> <ref name="boolean-values" /> </attribute>|' \
  /usr/share/resource-agents/metadata.rng >"$radata/metadata.rng"
grep -q 'reloadable' "$radata/metadata.rng" || fail "cannot add reloadable to metadata.rng"
sed "s|^DATADIR=.*|DATADIR=$work/share|" "$(command -v ocf-tester)" >"$work/ocf-tester"
chmod +x "$work/ocf-tester"

echo "== meta-data is valid (ra-api-1.dtd with reload-agent, metadata.rng)"
for a in publisher subscriber; do
  "$agents/$a" meta-data >"$work/$a.xml"
  (cd "$radata" && xmllint --noout --valid - <"$work/$a.xml") || fail "$a meta-data does not conform to ra-api-1.dtd"
  xmllint --noout --nowarning --relaxng "$radata/metadata.rng" "$work/$a.xml" 2>"$work/rng.err" \
    || { cat "$work/rng.err" >&2; fail "$a meta-data does not conform to metadata.rng"; }
done

echo "== certificates and CIB files"
"$root/examples/make-certs.sh" -d "$work/certs" site-a.example,IP:127.0.0.1 site-b.example >/dev/null
cibadmin --empty >"$work/cib-a.xml"
cibadmin --empty >"$work/cib-b.xml"

cat >"$work/publisher.toml" <<'EOF'
site = "site-a"
listen = "127.0.0.1:0"
cib_file = "cib-a.xml"
[tls]
cert = "certs/site-a.example.pem"
key  = "certs/site-a.example.key"
ca   = "certs/ca.pem"
[[ticket]]
name  = "geo"
allow = ["site-b.example"]
EOF

# Nothing listens at the peer: the daemon keeps retrying, which the agent's
# monitor must not mind.
mkdir "$work/state"
cat >"$work/subscriber.toml" <<'EOF'
site = "site-b"
state_dir = "state"
cib_file = "cib-b.xml"
[tls]
cert = "certs/site-b.example.pem"
key  = "certs/site-b.example.key"
ca   = "certs/ca.pem"
[[ticket]]
name  = "geo"
mode  = "auto"
peers = ["https://127.0.0.1:9"]
EOF

# ocf-tester NAME AGENT: the whole ocf-tester run for one agent.
run_ocf_tester() {
  local name="$1" agent="$2"
  echo "== ocf-tester $agent"
  if ! "$work/ocf-tester" -n "$name" \
    -o config="$work/$agent.toml" \
    -o binary="$bindir/cib-$agent" \
    -o pidfile="$work/$name.pid" \
    -o logfile="$work/log/$name.log" \
    "$agents/$agent"; then
    [ -f "$work/log/$name.log" ] && { echo "-- $work/log/$name.log:"; cat "$work/log/$name.log"; } >&2
    fail "ocf-tester $agent"
  fi
}

run_ocf_tester pub publisher
if "$bindir/cib-subscriber" run --help >/dev/null 2>&1; then
  run_ocf_tester sub subscriber
else
  echo "== SKIPPED ocf-tester subscriber: $bindir/cib-subscriber has no run subcommand yet"
fi

if [ "$failed" -ne 0 ]; then
  echo "ocf/test.sh: FAILED" >&2
  exit 1
fi
echo "ocf/test.sh: all OCF agent tests passed"
