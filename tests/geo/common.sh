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
# Further background helpers of the caller, stopped by `finish` too.
bg_pids=""
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
    for p in $bg_pids; do kill "$p" 2>/dev/null || true; done
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


# Site configuration for a lab whose first three octets are not the
# examples' (GEO_SUBNET): examples/geo's booth.conf and site-a, site-b with
# 10.213.0.x replaced, in DIR; exports GEO_BOOTH_CONF, GEO_ETC_A, GEO_ETC_B.
lab_config() {
    local dir=$1 subnet=${GEO_SUBNET:-10.213.0} repo
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -r "$repo/examples/geo/site-a" "$repo/examples/geo/site-b" "$dir/"
    cp "$repo/examples/geo/booth.conf" "$dir/booth.conf"
    find "$dir" -type f -exec sed -i "s/10\.213\.0\./$subnet./g" {} +
    export GEO_BOOTH_CONF=$dir/booth.conf GEO_ETC_A=$dir/site-a GEO_ETC_B=$dir/site-b
}

# A daemon's log at SITE (the agents' default: no logfile, no journal in
# the lab), seen from the host.
daemon_log() { printf '%s\n' "$GEO_BASE/state/$1/run/resource-agents/cib-replicator-$2.out"; }
# Number of lines of a daemon's log so far (0 when it has none yet).
log_lines() {
    local f
    f=$(daemon_log "$1" "$2")
    if [ -r "$f" ]; then wc -l <"$f"; else echo 0; fi
}
# log_since SITE DAEMON LINE: the daemon's log after line LINE.
log_since() {
    local f
    f=$(daemon_log "$1" "$2")
    [ -r "$f" ] && tail -n "+$(($3 + 1))" "$f"
    return 0
}
