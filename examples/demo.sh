#!/usr/bin/env bash
# Two sites on one machine, offline: site A holds ticket `geo`, site B keeps a
# stopped, adapted copy of its configuration. Each site's CIB is a file used
# through CIB_file, exactly as a live cluster would be used through cibadmin.
#
#   scope at A  ->  diff at B  ->  replicate-now at B  ->  result at B
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
./scripts/setup >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --quiet --locked --bins
bin="$root/target/debug"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cp examples/offline/site-a.xml "$work/site-a.xml"
cp examples/offline/site-b.xml "$work/site-b.xml"
rules=examples/offline/site-b-rules.toml

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Site A: grant ticket geo (crm_ticket)"
CIB_file="$work/site-a.xml" crm_ticket --ticket geo --grant --force
CIB_file="$work/site-a.xml" crm_ticket --ticket geo --info

step "Site A: cib-publisher scope --ticket geo"
CIB_file="$work/site-a.xml" "$bin/cib-publisher" scope --ticket geo >"$work/geo.xml"
cat "$work/geo.xml"

step "Site B: cib-subscriber diff (dry run, exit 1 = changes pending)"
rc=0
CIB_file="$work/site-b.xml" "$bin/cib-subscriber" diff --ticket geo --from "$work/geo.xml" --rules "$rules" --color always || rc=$?
echo "exit status: $rc"
[ "$rc" -eq 1 ]

step "Site B: cib-subscriber replicate-now"
CIB_file="$work/site-b.xml" "$bin/cib-subscriber" replicate-now --ticket geo --from "$work/geo.xml" --rules "$rules"

step "Site B: second diff changes nothing (exit 0)"
CIB_file="$work/site-b.xml" "$bin/cib-subscriber" diff --ticket geo --from "$work/geo.xml" --rules "$rules" | tail -n 7

step "Site B: crm_verify"
crm_verify --xml-file "$work/site-b.xml" && echo "crm_verify: clean"

step "Site B: cib-subscriber status"
CIB_file="$work/site-b.xml" "$bin/cib-subscriber" status --ticket geo

step "Site B: replicated resources, with the site's addresses and paths"
CIB_file="$work/site-b.xml" cibadmin --query --scope resources

step "Site B without the ticket: the copy stays stopped"
crm_simulate --xml-file "$work/site-b.xml" --simulate --node-up b1 --node-up b2 2>/dev/null | sed -n '/Transition Summary/,/Executing/p' | head -n 12

step "Site B when it gets the ticket (crm_simulate --ticket-grant geo): the copy starts"
crm_simulate --xml-file "$work/site-b.xml" --simulate --node-up b1 --node-up b2 --ticket-grant geo 2>/dev/null | sed -n '/Transition Summary/,/Executing/p' | head -n 12

# ---------------------------------------------------------------------------
# The same two sites, live: the publisher daemon serves site A's scope over
# mutual TLS on loopback, the subscriber daemon follows it and applies every
# new version at site B.

step "Live: a CA and one certificate per site (examples/make-certs.sh)"
examples/make-certs.sh -d "$work/certs" \
  site-a.example,DNS:localhost,IP:127.0.0.1 site-b.example,DNS:localhost,IP:127.0.0.1 2>&1 | tail -n 3
port=$((20000 + RANDOM % 20000))
cat >"$work/publisher.toml" <<EOF
site = "site-a"
listen = "127.0.0.1:$port"
cib_file = "$work/site-a.xml"
[tls]
cert = "$work/certs/site-a.example.pem"
key = "$work/certs/site-a.example.key"
ca = "$work/certs/ca.pem"
[[ticket]]
name = "geo"
allow = ["site-b.example"]
EOF
cat >"$work/subscriber.toml" <<EOF
site = "site-b"
state_dir = "$work/state"
cib_file = "$work/site-b.xml"
[tls]
cert = "$work/certs/site-b.example.pem"
key = "$work/certs/site-b.example.key"
ca = "$work/certs/ca.pem"
[[ticket]]
name = "geo"
mode = "auto"
peers = ["https://localhost:$port"]
rules = ["$root/$rules"]
EOF

step "Live: cib-publisher serve (site A, 127.0.0.1:$port) and cib-subscriber run (site B)"
"$bin/cib-publisher" serve --config "$work/publisher.toml" >"$work/publisher.log" 2>&1 &
pids+=($!)
"$bin/cib-subscriber" run --config "$work/subscriber.toml" >"$work/subscriber.log" 2>&1 &
pids+=($!)
b_has() { CIB_file="$work/site-b.xml" cibadmin --query --scope resources | grep -q "$1"; }
for _ in $(seq 100); do
  [ -f "$work/state/geo/state.toml" ] && break
  sleep 0.1
done
echo "both daemons are up"

step "Live: change site A (cibadmin --modify), watch site B follow"
start=$(date +%s%N)
CIB_file="$work/site-a.xml" cibadmin --modify --scope resources \
  --xml-text '<nvpair id="web-app-state" name="state" value="/srv/site-a/web/app-v2.state"/>'
for _ in $(seq 250); do
  b_has "/srv/site-b/web/app-v2.state" && break
  sleep 0.02
done
if ! b_has "/srv/site-b/web/app-v2.state"; then
  cat "$work/publisher.log" "$work/subscriber.log"
  exit 1
fi
echo "site B holds /srv/site-b/web/app-v2.state $(( ($(date +%s%N) - start) / 1000000 )) ms after the change at site A"

step "Live: cib-subscriber status (site B)"
"$bin/cib-subscriber" status --ticket geo --config "$work/subscriber.toml"
