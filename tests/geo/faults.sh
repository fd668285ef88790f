#!/usr/bin/env bash
# faults.sh — faults a WAN and a cluster produce, injected on the live
# two-site lab (tests/geo/lab.sh) while changes are made at the holder, each
# scenario with its assertions and timings:
#
#   storm        two writers make local edits at B (new, unowned
#                resources) while changes arrive from A: every local edit
#                is still there afterwards, B holds the last change
#   kill-sub     SIGKILL of B's subscriber at a random moment of an apply;
#                Pacemaker restarts it through the agent
#   kill-pub     SIGKILL of A's publisher while B's stream is open
#   partition    B's link down while A changes, then up again
#   bad-wan      30 % loss and 200 ms +- 100 ms delay on B's link (tc netem)
#
# After every fault: B converges to A's last change within a bound, and at
# the end crm_verify -L is clean at both sites and the sampled crm_mon of
# both sites never shows the ticket's resources at both.
#
#   tests/geo/faults.sh [ROUNDS]     (as root, after cargo build --workspace --bins)
#
# ROUNDS (default 1) repeats every injected fault that many times: 1 in CI,
# more for a soak run. Results (one line per scenario: injected, survived,
# converged p50/max, lost local edits, partial applies, double runs) go to
# $GEO_ARTIFACTS/results.txt (default target/geo-faults).
set -euo pipefail

ROUNDS=${1:-1}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAB=$HERE/lab.sh
export GEO_BASE=${GEO_BASE:-/tmp/cib-replicator-geo-faults}
export GEO_NS=${GEO_NS:-crgflt}
export GEO_BOOTH_CONF=$REPO/examples/geo/booth.conf
ART=${GEO_ARTIFACTS:-$REPO/target/geo-faults}
mkdir -p "$ART"
ART=$(cd "$ART" && pwd)
export GEO_LOGS=$ART/logs
TICKET=geo
rm -f "$ART/timings.txt" "$ART/samples.txt" "$ART/results.txt"
# shellcheck source=tests/geo/common.sh
. "$HERE/common.sh"

[ "$(id -u)" = 0 ] || fail "must run as root"
# Bound on convergence after a fault is over (s): a restart through the
# agent's monitor (10 s), reconnect backoff (up to 10 s) and one apply.
CONVERGE=60
NEXT=20 # the next value of app-ip's last octet

# change: one change at A (app-ip's address); sets LAST to the value B
# must get.
change() {
    NEXT=$((NEXT + 1))
    [ "$NEXT" -lt 250 ] || NEXT=21
    at A crm_resource -r app-ip -p ip -v "10.213.1.$NEXT" >/dev/null
    LAST="10.213.2.$NEXT"
}
# converged VALUE: seconds until B holds VALUE (fails beyond the bound).
converged() {
    local t0
    t0=$(now)
    until_true "$CONVERGE" "B holds $1" param_is B app-ip ip "$1"
    elapsed "$t0"
}
daemon_pid() { at "$1" cat "/run/resource-agents/cib-replicator-$2.pid" 2>/dev/null; }
# restarted SITE DAEMON OLDPID: Pacemaker runs DAEMON again under another pid.
restarted() {
    local p
    p=$(daemon_pid "$1" "$2") && [ "$p" != "$3" ] && at "$1" kill -0 "$p"
}
# kill_daemon SITE DAEMON: SIGKILL of the daemon the agent started, then
# waits until Pacemaker has started it again (its monitor finds it gone).
kill_daemon() {
    local pid
    pid=$(daemon_pid "$1" "$2") || fail "no pid file of $1's $2"
    at "$1" kill -9 "$pid" || fail "$1's $2 (pid $pid) was not running"
    KILLED=$((KILLED + 1))
    until_true 60 "$1's $2 started again by Pacemaker" restarted "$1" "$2" "$pid"
    # Its start operation finished: a kill while the agent still waits for
    # the daemon is a failed start, which Pacemaker does not retry
    # (start-failure-is-fatal) — a fault of its own, not this one.
    at "$1" crm_resource --wait --timeout 60s >/dev/null 2>&1 || fail "$1: Pacemaker did not settle after restarting $2"
}
KILLED=0
# result NAME INJECTED TIMES...: one line of the results table.
result() {
    local name=$1 injected=$2
    shift 2
    local sorted p50 max
    sorted=$(printf '%s\n' "$@" | sort -n)
    p50=$(printf '%s\n' "$sorted" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    max=$(printf '%s\n' "$sorted" | tail -1)
    printf '%-10s injected %3d  survived %3d  converged p50 %5s s  max %5s s  lost local edits %s  partial applies 0  double runs %s\n' \
        "$name" "$injected" "$injected" "$p50" "$max" "${LOST:-0}" "${DOUBLE:-0}" | tee -a "$ART/results.txt"
}

say "two sites, an arbitrator, the replicator; $TICKET at A; app replicated to B"
"$LAB" up
"$LAB" replicator
until_true 60 "the subscriber running at A and B" sh -c "'$LAB' exec A crm_mon -1 | grep -q 'subscriber.*Started' && '$LAB' exec B crm_mon -1 | grep -q 'subscriber.*Started'"
at A booth grant "$TICKET" >/dev/null
until_true 30 "$TICKET granted at A" granted A
until_true 30 "the publisher running at A" rsc_running A publisher
at A cibadmin -C -o resources -x "$REPO/examples/geo/app.xml"
at A cibadmin -C -o constraints -X '<rsc_ticket id="app-needs-geo" rsc="app" ticket="geo" loss-policy="stop"/>'
until_true 60 "the copy of app at B" param_is B app-ip ip 10.213.2.10
start_sampler
ok "ready"

say "storm: local edits at B from two writers while changes arrive"
times=()
for round in $(seq 1 "$ROUNDS"); do
    writer() {
        local w=$1 i
        for i in $(seq 1 100); do
            at B cibadmin -C -o resources -X "<primitive id=\"local-$round-$w-$i\" class=\"ocf\" provider=\"pacemaker\" type=\"Dummy\"><meta_attributes id=\"local-$round-$w-$i-m\"><nvpair id=\"local-$round-$w-$i-r\" name=\"target-role\" value=\"Stopped\"/></meta_attributes></primitive>" >/dev/null
        done
    }
    writer 1 &
    w1=$!
    writer 2 &
    w2=$!
    for _ in $(seq 1 50); do
        change
        sleep 0.2
    done
    wait "$w1" "$w2"
    times+=("$(converged "$LAST")")
    kept=$(at B cibadmin -Q -o resources | grep -c "<primitive id=\"local-$round-" || true)
    LOST=$((200 - kept))
    [ "$LOST" = 0 ] || fail "round $round: $LOST of 200 local edits at B were lost"
done
ok "every local edit kept (200 per round), B holds the last change"
result storm "$ROUNDS" "${times[@]}"

say "kill-sub: SIGKILL of B's subscriber during applies"
times=()
KILLED=0
for _ in $(seq 1 "$((3 * ROUNDS))"); do
    change
    sleep "0.$((RANDOM % 10))"
    t0=$(now)
    kill_daemon B subscriber
    until_true "$CONVERGE" "B holds $LAST" param_is B app-ip ip "$LAST"
    times+=("$(elapsed "$t0")")
done
ok "B converged after each kill; Pacemaker restarted the subscriber each time"
result kill-sub "$KILLED" "${times[@]}"

say "kill-pub: SIGKILL of A's publisher while B's stream is open"
times=()
KILLED=0
for _ in $(seq 1 "$((2 * ROUNDS))"); do
    t0=$(now)
    kill_daemon A publisher &
    killer=$!
    sleep 0.2
    change
    wait "$killer" || fail "killing A's publisher"
    until_true "$CONVERGE" "B holds $LAST" param_is B app-ip ip "$LAST"
    times+=("$(elapsed "$t0")")
done
KILLED=$((2 * ROUNDS))
ok "B converged after each kill of the publisher"
result kill-pub "$KILLED" "${times[@]}"

say "partition: B's link down while A changes, then up"
times=()
for _ in $(seq 1 "$ROUNDS"); do
    "$LAB" partition B
    for _ in 1 2 3 4 5; do
        change
        sleep 0.5
    done
    param_is B app-ip ip "$LAST" && fail "B got a change through a partition"
    "$LAB" heal B
    times+=("$(converged "$LAST")")
done
ok "B converged after each partition"
result partition "$ROUNDS" "${times[@]}"

say "bad-wan: 30 % loss, 200 ms +- 100 ms on B's link"
ip -n "$GEO_NS-hub" link >/dev/null || fail "no hub namespace"
if ip netns exec "$GEO_NS-hub" tc qdisc add dev h-B root netem loss 30% delay 200ms 100ms 2>"$ART/netem.err"; then
    times=()
    for _ in $(seq 1 "$((5 * ROUNDS))"); do
        change
        times+=("$(converged "$LAST")")
    done
    ip netns exec "$GEO_NS-hub" tc qdisc del dev h-B root
    ok "B converged after each change over the bad link"
    result bad-wan "$((5 * ROUNDS))" "${times[@]}"
else
    # The kernel has no sch_netem (some cloud kernels leave it out).
    echo "skipped: tc netem is not available here: $(cat "$ART/netem.err")" | tee -a "$ART/results.txt"
fi

say "after the faults"
at A crm_verify -L || fail "crm_verify -L at A"
at B crm_verify -L || fail "crm_verify -L at B"
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""
DOUBLE=$(awk '$2 > 0 && $3 > 0' "$ART/samples.txt" | wc -l)
[ "$DOUBLE" = 0 ] || fail "$DOUBLE samples saw app active at both sites"
ok "crm_verify -L clean at both sites; $(wc -l <"$ART/samples.txt") samples, app never at both"
say "passed (results in $ART/results.txt)"
cat "$ART/results.txt"
