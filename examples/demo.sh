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
trap 'rm -rf "$work"' EXIT
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
