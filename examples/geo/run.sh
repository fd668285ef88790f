#!/usr/bin/env bash
# The geo walkthrough: two live Pacemaker sites and a booth arbitrator on
# this machine (in network namespaces, see tests/geo/lab.sh), with
# cib-replicator run by Pacemaker. Shows, step by step:
#
#   - booth grants ticket "geo" to site A, where the publisher runs;
#   - resources created at A appear at B, adapted (B's address and path)
#     and stopped;
#   - a change at A follows to B within a second;
#   - site A loses power: booth moves the ticket to B, B's copy starts with
#     B's values, the publisher runs at B;
#   - A boots again and follows B.
#
# Usage: sudo examples/geo/run.sh [--keep]
#
#   --keep   leave the sites running afterwards; look around with
#            tests/geo/lab.sh exec A crm_mon -1   (or B, arb), and stop
#            everything with tests/geo/lab.sh down
#
# Builds the binaries first when they are missing. Takes about a minute.
# Uses only addresses inside namespaces it creates (10.213.0.0/16); nothing
# is installed on this machine itself.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
lab=$repo/tests/geo/lab.sh
export GEO_BOOTH_CONF=$here/booth.conf
keep=false
case "${1:-}" in
    --keep) keep=true ;;
    "") ;;
    *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (namespaces, mounts): sudo $0" >&2; exit 2; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() {
    printf '$ [site %s] %s\n' "$1" "${*:2}"
    "$lab" exec "$@"
}
# shellcheck source=tests/geo/poll.sh
. "$repo/tests/geo/poll.sh"
wait_for() { # SECONDS CMD...
    poll "$@" || { echo "run.sh: gave up waiting for: ${*:2}" >&2; return 1; }
}
param_is() { [ "$("$lab" exec "$1" crm_resource -r "$2" -g "$3" 2>/dev/null)" = "$4" ]; }
running() { "$lab" exec "$1" crm_mon -1 2>/dev/null | grep -q "$2.*Started"; }

if $keep; then
    trap 'echo; echo "The sites keep running. Stop them with: $lab down"' EXIT
else
    trap '"$lab" down >/dev/null 2>&1 || true' EXIT
fi

if [ ! -x "$repo/target/debug/cib-subscriber" ] || [ ! -x "$repo/target/debug/cib-publisher" ]; then
    step "building cib-publisher and cib-subscriber"
    (cd "$repo" && cargo build --workspace --bins)
fi

step "two sites (corosync + pacemaker) and a booth arbitrator"
"$lab" up
step "cib-replicator at both sites (see examples/geo/README.md for each command)"
"$lab" replicator
show A crm_mon -1 --include=tickets

step "booth grants ticket geo to site A"
show A booth grant geo
wait_for 30 running A publisher
show A crm_mon -1 --include=tickets | sed -n '/Active Resources/,$p'

step "the admin creates resources bound to geo at site A"
show A cibadmin -C -o resources -x "$here/app.xml"
show A cibadmin -C -o constraints -X '<rsc_ticket id="app-needs-geo" rsc="app" ticket="geo" loss-policy="stop"/>'
wait_for 30 param_is B app-ip ip 10.213.2.10
echo "site B received them, with its own address and path, stopped:"
show B crm_resource -r app-ip -g ip
show B crm_resource -r app-daemon -g state
show B crm_mon -1 -r | sed -n '/Full List of Resources/,$p'

step "a change at A follows to B"
show A crm_resource -r app-ip -p ip -v 10.213.1.11
wait_for 30 param_is B app-ip ip 10.213.2.11
show B crm_resource -r app-ip -g ip
show B cib-subscriber status --ticket geo --config /etc/cib-replicator/subscriber.toml

step "site A loses power; booth moves geo to B after its expiry (5 s here)"
"$lab" kill-site A
wait_for 60 running B app-daemon
wait_for 30 running B publisher
show B crm_mon -1 --include=tickets | sed -n '/Active Resources/,$p'
show B ip -brief addr show dev eth0

step "site A boots again and follows B"
"$lab" start-site A
"$lab" exec A mkdir -p /run/app-site-a
owned_at_a() { "$lab" exec A cibadmin -Q -o crm_config 2>/dev/null | grep -q 'cluster_property_set id="cib-replicator-geo"'; }
wait_for 60 owned_at_a
show A crm_mon -1 --include=tickets | sed -n '/Active Resources/,$p'
show A cib-subscriber status --ticket geo --config /etc/cib-replicator/subscriber.toml
