# Sourced by tests/geo/e2e.sh and tests/geo/faults.sh: the checks and
# helpers both run against the live lab (tests/geo/lab.sh). The caller sets
# LAB, ART (artifacts directory) and TICKET first.
# shellcheck shell=bash

say() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}
# shellcheck source=tests/geo/poll.sh
. "$(dirname "${BASH_SOURCE[0]}")/poll.sh"
elapsed() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }
record() { printf '%s\n' "$*" | tee -a "$ART/timings.txt"; }
at() {
    local site=$1
    shift
    "$LAB" exec "$site" "$@"
}

# until_true SECONDS WHAT CMD...: poll, and fail the test on timeout.
until_true() {
    local limit=$1 what=$2
    shift 2
    poll "$limit" "$@" || fail "timed out after ${limit}s: $what"
}

# Checks over one site.
attribute_is() { [ "$(at "$1" geostore get -t "$TICKET" cib-replicator 2>/dev/null)" = "$2" ]; }
booth_log() { cat "$GEO_BASE/state/$1/log/booth.log"; }
granted() { at "$1" crm_ticket -t "$TICKET" -G granted 2>/dev/null | grep -qx true; }
# Number of the ticket's application resources (group "app") active at SITE.
app_active() {
    at "$1" crm_mon -1 --output-as=xml 2>/dev/null |
        grep -cE '<resource id="app-(ip|daemon)"[^>]* active="true"' || true
}
# Both application resources started at SITE (not just starting).
app_running() {
    [ "$(at "$1" crm_mon -1 --output-as=xml 2>/dev/null |
        grep -cE '<resource id="app-(ip|daemon)"[^>]* role="Started" active="true"')" = 2 ]
}
has_address() { at "$1" ip -o addr show dev eth0 | grep -q "inet $2/"; }
rsc_running() { at "$1" crm_mon -1 --output-as=xml 2>/dev/null | grep -qE "<resource id=\"$2\"[^>]* active=\"true\""; }
param() { at "$1" crm_resource -r "$2" -g "$3" 2>/dev/null; }
param_is() { [ "$(param "$1" "$2" "$3")" = "$4" ]; }
configuration() { at "$1" cibadmin -Q -o configuration; }

sampler_pid=""
start_sampler() {
    (
        while :; do
            printf '%s %s %s\n' "$(date +%s.%N)" "$(app_active A)" "$(app_active B)"
            sleep 0.2
        done
    ) >>"$ART/samples.txt" 2>/dev/null &
    sampler_pid=$!
}

finish() {
    local rc=$?
    [ -z "$sampler_pid" ] || kill "$sampler_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    "$LAB" down >/dev/null 2>&1 || true
    if [ "$rc" -ne 0 ]; then
        echo "${0##*/}: FAILED; logs of both sites and the arbitrator are in $ART/logs" >&2
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

