# Sourced by tests/geo/e2e.sh, tests/geo/faults.sh and tests/geo/three.sh:
# the checks and helpers they run against the live lab (tests/geo/lab.sh).
# The caller sets LAB, ART (artifacts directory) and TICKET first (the
# helpers named *_of / *_at take the ticket or group as an argument).
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

# Root, and the binaries the lab installs: a .deb (GEO_DEB) or GEO_BIN's
# (default the debug build of the tree, REPO set by the caller).
require_root_and_binaries() {
    local b
    [ "$(id -u)" = 0 ] || fail "must run as root"
    for b in cib-publisher cib-subscriber; do
        [ -n "${GEO_DEB:-}" ] || [ -x "${GEO_BIN:-$REPO/target/debug}/$b" ] || fail "no $b: run cargo build --workspace --bins first"
    done
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

# Checks of one ticket or one resource group at one site.
attribute_of() { at "$1" geostore get -t "$2" cib-replicator 2>/dev/null || true; }
granted_at() { at "$1" crm_ticket -t "$2" -G granted 2>/dev/null | grep -qx true; }
# crm_mon's XML at SITE (empty when the site is down).
mon_xml() { at "$1" crm_mon -1 --output-as=xml 2>/dev/null || true; }
# count_active XML GROUP: resources GROUP-* active in crm_mon's XML.
count_active() { printf '%s\n' "$1" | grep -cE "<resource id=\"$2-[a-z0-9]+\"[^>]* active=\"true\"" || true; }
# group_running SITE GROUP N: N resources GROUP-* started at SITE.
group_running() {
    [ "$(mon_xml "$1" | grep -cE "<resource id=\"$2-[a-z0-9]+\"[^>]* role=\"Started\" active=\"true\"")" = "$3" ]
}
in_cib() { at "$1" cibadmin -Q -o resources -A "//primitive[@id='$2']" >/dev/null 2>&1; }

# start_sampler_groups "SITES" "GROUPS" [EXTRA]: every 0.2 s one line of
# $ART/samples.txt: the time, then for each site and each group the number
# of the group's resources active there, then EXTRA's output (a command).
start_sampler_groups() {
    local sites=$1 groups=$2 extra=${3:-}
    (
        while :; do
            line=$(date +%s.%N)
            for s in $sites; do
                xml=$(mon_xml "$s")
                for g in $groups; do line+=" $(count_active "$xml" "$g")"; done
            done
            [ -z "$extra" ] || line+=" $($extra)"
            printf '%s\n' "$line"
            sleep 0.2
        done
    ) >>"$ART/samples.txt" 2>/dev/null &
    sampler_pid=$!
}

# stop_sampler: stops the sampler started above, if it runs.
stop_sampler() {
    [ -z "$sampler_pid" ] || kill "$sampler_pid" 2>/dev/null || true
    [ -z "$sampler_pid" ] || wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=""
}

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

# Functions of the caller that undo faults left in place, run by `finish`
# first (before the lab goes down); they must not exit.
finish_hooks=""
finish() {
    local rc=$? h
    for h in $finish_hooks; do "$h" quiet || true; done
    [ -z "$sampler_pid" ] || kill "$sampler_pid" 2>/dev/null || true
    for p in $bg_pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$LAB" down >/dev/null 2>&1 || true
    if [ "$rc" -ne 0 ]; then
        echo "${0##*/}: FAILED; logs of every site and arbitrator are in $ART/logs" >&2
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
