#!/usr/bin/env bash
# bench/live.sh — scale on the live two-site lab (tests/geo/lab.sh): what
# a site of N primitives costs, with Pacemaker running at both sites. For
# each size (primitives, `cib-bench generate`):
#
#   1. A gets the generated resources and constraints (`cibadmin --replace`
#      of each section, timed: the anchor of the first replication), with
#      B's subscriber stopped;
#   2. first full replication: B's subscriber started -> B's state file says
#      applied (includes the daemon's start and its first stream);
#   3. B's CIB and crm_config sizes before and after, the scheduler
#      (`crm_simulate -S -x`, median of 5) on A's CIB and on B's with and
#      without the replica, `crm_verify -L` at B alone (median of 5);
#   4. --changes N changes at A (`cibadmin --modify` of one nvpair, timed
#      alone: the anchor) -> applied at B (B's state file, then the value
#      checked in B's CIB): p50, p99;
#   5. the ways to write one nvpair into B's live CIB, B's subscriber
#      stopped, 5 each: `cibadmin --patch` of a format-2 diff (`crm_diff`),
#      the guarded `cibadmin --modify` the subscriber writes
#      (`cib-bench diff --modify`), `cibadmin --modify` of the nvpair
#      alone, `cibadmin --replace` of the resources section.
#
#   bench/live.sh [--sizes "250 2500 10000"] [--changes N] [--out DIR]
#                 [--no-scheduler]   (skip 3.'s crm_simulate runs: time
#                 them later on the CIBs kept in DIR)
#                 [--debug]          (the daemons log at debug level: the
#                 stages of every publication and apply, in DIR/logs-N)
#
# Booth runs with its own defaults (`expire` 600 s, renewed every 300 s),
# as production sites do (GEO_EXPIRE and GEO_RENEWAL_FREQ override them):
# the lab's (expire 5 s, renewal every 2 s), made for failover tests, have
# booth rewrite the sites' ticket state every second or two, and on a CIB
# of megabytes each rewrite keeps the CIB manager busy and makes a
# version-checked patch sent meanwhile stale.
#
# Results: DIR/results.txt (default target/bench-live), one `key value`
# line per figure and size. Needs root, the release binaries
# (cargo build --release --workspace --bins) and what the lab needs. Both
# sites run without start-up probes (enable-startup-probes=false: 10,000
# agents probed would hold the CPU for minutes) and A's generated resources
# stay stopped (rsc_defaults target-role=Stopped), so that only the
# configuration is measured, not the agents. Pacemaker's IPC messages are
# limited to PCMK_ipc_buffer (128 KiB, compressed): sites of thousands of
# primitives need it raised, in the lab as on real clusters.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sizes="250 2500 10000"
changes=20
scheduler=true
log_level=info
out="$root/target/bench-live"
while (($#)); do
    case "$1" in
        --sizes) sizes=$2; shift 2 ;;
        --changes) changes=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --no-scheduler) scheduler=false; shift ;;
        --debug) log_level=debug; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "live.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "live.sh: needs root (the lab's namespaces)" >&2; exit 2; }

export GEO_NS=${GEO_NS:-crbench} GEO_BASE=${GEO_BASE:-/tmp/cib-replicator-bench}
export GEO_EXPIRE=${GEO_EXPIRE:-600} GEO_RENEWAL_FREQ=${GEO_RENEWAL_FREQ-}
export GEO_BIN=${GEO_BIN:-$root/target/release}
# Big CIBs need bigger IPC messages than Pacemaker's default (128 KiB,
# compressed), for the sites' daemons (through the lab) and every client.
export PCMK_ipc_buffer=${PCMK_ipc_buffer:-4194304}
BENCH=$GEO_BIN/cib-bench
for b in cib-publisher cib-subscriber cib-bench; do
    [ -x "$GEO_BIN/$b" ] || { echo "live.sh: no $GEO_BIN/$b: cargo build --release --workspace --bins" >&2; exit 2; }
done
LAB=$root/tests/geo/lab.sh
TICKET=geo
mkdir -p "$out"
results=$out/results.txt
: >"$results"

at() { "$LAB" exec "$@"; }
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f\n", (b - a) * 1000 }'; }
put() { printf '%s %s\n' "$1" "$2" | tee -a "$results"; }
# median / p99 of numbers on stdin
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
p99() { sort -n | awk '{ v[NR] = $1 } END { i = int(NR * 0.99 + 0.999); if (i > NR) i = NR; print v[i] }'; }
# timed CMD...: runs CMD, prints its milliseconds
timed() {
    local t0 t1
    t0=$(now)
    "$@" >/dev/null
    t1=$(now)
    ms "$t0" "$t1"
}
# B's state file, from the host (the lab's overlay on B's /var/lib).
state_b() { cat "$GEO_BASE/state/B/overlay/_var_lib/upper/cib-replicator/$TICKET/state.toml" 2>/dev/null || true; }
applied_b() { state_b | sed -n '/^\[applied\]/,/^\[/p' | grep -m1 '^version' || true; }
wait_for() {
    local limit=$1 what=$2 deadline
    shift 2
    deadline=$(($(date +%s) + limit))
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "live.sh: timed out after ${limit}s: $what" >&2; return 1; }
        sleep 0.05
    done
}
granted_a() { at A crm_ticket -t "$TICKET" -G granted 2>/dev/null | grep -qx true; }
rsc_stopped() { ! at "$1" crm_mon -1 --output-as=xml 2>/dev/null | grep -qE "<resource id=\"$2\"[^>]* active=\"true\""; }
rsc_started() { at "$1" crm_mon -1 --output-as=xml 2>/dev/null | grep -qE "<resource id=\"$2\"[^>]* active=\"true\""; }
applied_changed() { [ "$(applied_b)" != "$1" ]; }
applied_digest_b() { state_b | sed -n '/^\[applied\]/,/^\[/p' | grep -m1 '^digest' | cut -d'"' -f2 || true; }
applied_is() { [ "$(applied_digest_b)" = "$1" ]; }
# Appends the children of SECTION in the generated FILE to SECTION of the
# CIB on stdin; prints the new section.
merge_section() {
    python3 -c '
import sys, xml.etree.ElementTree as ET
section, generated = sys.argv[1], sys.argv[2]
mine = ET.fromstring(sys.stdin.read())
gen = ET.parse(generated).getroot().find("configuration/" + section)
for child in list(gen):
    mine.append(child)
sys.stdout.write(ET.tostring(mine, encoding="unicode"))
' "$1" "$2"
}
scheduler_ms() {
    local f=$1 i
    for i in 1 2 3 4 5; do timed crm_simulate -x "$f" -S -Q; done | median
}

cleanup() {
    "$LAB" down "$out/logs" >/dev/null 2>&1 || true
}
trap cleanup EXIT

for n in $sizes; do
    echo "== $n primitives"
    gen=$out/gen-$n
    "$BENCH" generate --primitives "$n" --dir "$gen" >/dev/null
    # The nvpair changed: the first Filesystem directory in the ticket's scope.
    NVPAIR=$(grep -m1 -o '<nvpair id="[^"]*" name="directory" value="/srv/site-a' "$gen/scope.xml" | cut -d'"' -f2)
    [ -n "$NVPAIR" ] || { echo "live.sh: no directory nvpair in the scope of $gen/cib.xml" >&2; exit 1; }
    etc_b=$out/etc-b
    rm -rf "$etc_b" && cp -r "$root/examples/geo/site-b" "$etc_b" && cp "$gen/rules.toml" "$etc_b/rules.toml"
    GEO_ETC_B=$etc_b "$LAB" up >"$out/lab-$n.log" 2>&1
    GEO_ETC_B=$etc_b "$LAB" replicator >>"$out/lab-$n.log" 2>&1
    for s in A B; do
        at "$s" crm_attribute -t crm_config -n enable-startup-probes -v false >/dev/null
    done
    at A crm_attribute -t rsc_defaults -n target-role -v Stopped >/dev/null
    at A crm_resource -r publisher -m -p target-role -v Started >/dev/null
    at A crm_resource -r subscriber -m -p target-role -v Started >/dev/null
    at A crm_resource -r publisher -p log_level -v "$log_level" >/dev/null
    at B crm_resource -r subscriber -p log_level -v "$log_level" >/dev/null
    at B crm_resource -r subscriber -m -p target-role -v Stopped >/dev/null
    wait_for 60 "B's subscriber stopped" rsc_stopped B subscriber
    at A booth grant "$TICKET" >/dev/null 2>&1 || true
    wait_for 60 "$TICKET granted at A" granted_a
    wait_for 60 "A's publisher started" rsc_started A publisher

    # 1. A's configuration.
    at A cibadmin -Q -o resources | merge_section resources "$gen/cib.xml" >"$out/resources-$n.xml"
    at A cibadmin -Q -o constraints | merge_section constraints "$gen/cib.xml" >"$out/constraints-$n.xml"
    put "n$n.anchor_replace_resources_at_a_ms" "$(timed at A cibadmin --replace -o resources --xml-file "$out/resources-$n.xml")"
    at A cibadmin --replace -o constraints --xml-file "$out/constraints-$n.xml"
    at A cibadmin -Q >"$out/cib-a-$n.xml"
    at B cibadmin -Q >"$out/cib-b-before-$n.xml"
    put "n$n.cib_a_bytes" "$(wc -c <"$out/cib-a-$n.xml")"
    put "n$n.cib_b_before_bytes" "$(wc -c <"$out/cib-b-before-$n.xml")"
    put "n$n.crm_config_b_before_bytes" "$(at B cibadmin -Q -o crm_config | wc -c)"

    # 2. First full replication: until B applied what A publishes now.
    # (awk reads all of it: an early exit would fail the pipeline.)
    want=$(at A cib-publisher scope --ticket "$TICKET" 2>/dev/null |
        awk '!d && match($0, /replicator-digest="[^"]*"/) { d = substr($0, RSTART + 19, RLENGTH - 20) } END { print d }')
    [ -n "$want" ] || { echo "live.sh: no digest of A's scope" >&2; exit 1; }
    t0=$(now)
    at B crm_resource -r subscriber -m -p target-role -v Started >/dev/null
    wait_for 900 "the first replication at B" applied_is "$want"
    put "n$n.first_replication_ms" "$(ms "$t0" "$(now)")"

    # 3. Sizes, scheduler, crm_verify.
    at B cibadmin -Q >"$out/cib-b-after-$n.xml"
    put "n$n.cib_b_after_bytes" "$(wc -c <"$out/cib-b-after-$n.xml")"
    put "n$n.crm_config_b_after_bytes" "$(at B cibadmin -Q -o crm_config | wc -c)"
    if $scheduler; then
        put "n$n.scheduler_a_ms" "$(scheduler_ms "$out/cib-a-$n.xml")"
        put "n$n.scheduler_b_with_replica_ms" "$(scheduler_ms "$out/cib-b-after-$n.xml")"
        put "n$n.scheduler_b_without_ms" "$(scheduler_ms "$out/cib-b-before-$n.xml")"
    fi
    put "n$n.crm_verify_b_ms" "$(for _ in 1 2 3 4 5; do timed at B crm_verify -L; done | median)"

    # 4. Change at A -> applied at B.
    : >"$out/latency-$n.txt"
    : >"$out/modify-$n.txt"
    for i in $(seq 1 "$changes"); do
        before=$(applied_b)
        t0=$(now)
        at A cibadmin --modify -X "<nvpair id=\"$NVPAIR\" name=\"directory\" value=\"/srv/site-a/bench-$i\"/>"
        t1=$(now)
        wait_for 300 "change $i applied at B" applied_changed "$before"
        t2=$(now)
        ms "$t0" "$t1" >>"$out/modify-$n.txt"
        ms "$t0" "$t2" >>"$out/latency-$n.txt"
        at B cibadmin -Q --xpath "//nvpair[@id='$NVPAIR']" | grep -q "/srv/site-b/bench-$i\"" ||
            { echo "live.sh: change $i is not in B's CIB" >&2; exit 1; }
        sleep 0.5
    done
    put "n$n.latency_p50_ms" "$(median <"$out/latency-$n.txt")"
    put "n$n.latency_p99_ms" "$(p99 <"$out/latency-$n.txt")"
    put "n$n.anchor_modify_at_a_ms" "$(median <"$out/modify-$n.txt")"

    # 5. Ways to write one nvpair into B's live CIB.
    # B's CIB as read into old.xml, the nvpair set to $1 and the next epoch
    # (a patch must lead forward).
    edited() {
        python3 -c '
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"(<cib [^>]*\bepoch=\")(\d+)", lambda m: m.group(1) + str(int(m.group(2)) + 1), text, count=1)
text = re.sub(r"(id=\"%s\"[^>]*value=\")[^\"]*" % re.escape(sys.argv[2]), r"\g<1>" + sys.argv[3], text)
sys.stdout.write(text)
' "$out/old.xml" "$NVPAIR" "$1"
    }
    at B crm_resource -r subscriber -m -p target-role -v Stopped >/dev/null
    wait_for 120 "B's subscriber stopped" rsc_stopped B subscriber
    : >"$out/patch-$n.txt"
    : >"$out/modify-b-$n.txt"
    : >"$out/guarded-b-$n.txt"
    : >"$out/replace-b-$n.txt"
    for i in 1 2 3 4 5; do
        # A patch is version-checked: when the status section moved on
        # between the query and the patch (exit 103), query and try again,
        # as the subscriber does; only the patch that applied is counted.
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            at B cibadmin -Q >"$out/old.xml"
            edited "/srv/site-b/patch-$i" >"$out/new.xml"
            crm_diff -o "$out/old.xml" -n "$out/new.xml" >"$out/patch.xml" || true
            if t=$(timed at B cibadmin --patch --xml-file "$out/patch.xml" 2>/dev/null); then
                echo "$t" >>"$out/patch-$n.txt"
                break
            fi
        done
        # The guarded modify: refused only when the configuration moved on.
        at B cibadmin -Q >"$out/old.xml"
        edited "/srv/site-b/guarded-$i" >"$out/new.xml"
        "$BENCH" diff --modify "$out/old.xml" "$out/new.xml" >"$out/guarded.xml"
        timed at B cibadmin --modify --xml-file "$out/guarded.xml" >>"$out/guarded-b-$n.txt"
        timed at B cibadmin --modify -X "<nvpair id=\"$NVPAIR\" name=\"directory\" value=\"/srv/site-b/modify-$i\"/>" >>"$out/modify-b-$n.txt"
        at B cibadmin -Q -o resources |
            sed "s|\(id=\"$NVPAIR\"[^>]*value=\"\)[^\"]*\"|\1/srv/site-b/replace-$i\"|" >"$out/section.xml"
        timed at B cibadmin --replace -o resources --xml-file "$out/section.xml" >>"$out/replace-b-$n.txt"
    done
    put "n$n.b_patch_ms" "$(median <"$out/patch-$n.txt")"
    put "n$n.b_guarded_modify_ms" "$(median <"$out/guarded-b-$n.txt")"
    put "n$n.b_modify_ms" "$(median <"$out/modify-b-$n.txt")"
    put "n$n.b_replace_resources_ms" "$(median <"$out/replace-b-$n.txt")"
    rm -f "$out/old.xml" "$out/new.xml" "$out/patch.xml" "$out/guarded.xml" "$out/section.xml"
    "$LAB" down "$out/logs-$n" >/dev/null 2>&1
done
echo "results in $results"
