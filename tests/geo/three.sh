#!/usr/bin/env bash
# three.sh — three live Pacemaker sites, two booth arbitrators and two
# tickets with different holders (tests/geo/lab.sh, examples/geo/three/),
# cib-replicator run by Pacemaker through its OCF agents, booth's
# before-acquire-handler set to `cib-subscriber gate`.
#
#   tests/geo/three.sh            (as root, after cargo build --workspace --bins)
#
# t1 (group app1) is first granted to A, t2 (group app2) to B; every site
# follows both tickets; site C keeps t1 lazily (out of its CIB). Each step
# asserted:
#   1. a change under t1 at A reaches B (in its CIB) and C (kept lazily,
#      nothing of t1 in C's CIB), each with its own values; a change under
#      t2 at B reaches A and C;
#   2. C is cut off (link down) and misses a change of each ticket: its
#      booth attribute of both turns `stale`, and C's booth starts no
#      election while cut off;
#   3. A is lost while C is cut off: booth moves t1 to B, which runs app1
#      with B's values;
#   4. C's link is back: C converges without a hand and follows the new
#      holder of t1 (B);
#   5. A boots again: it follows B and never runs t1's resources (sampled
#      until it is lost again);
#   6. A and B are both lost: C takes t1 and t2; app1 (lazy: written to the
#      CIB by the gate as t1 is acquired) and app2 (eager) start at C with
#      C's values — ticket granted -> resources in the CIB -> started, timed
#      for both;
#   7. throughout, every site's crm_mon is sampled: no ticket's resources
#      ever run at two sites at once, and C never acquires a ticket while
#      its attribute is stale.
#
# Environment: GEO_ARTIFACTS (default target/geo-three) receives
# timings.txt, samples.txt and, always, the logs of every site and
# arbitrator (logs/). Other GEO_* variables as in lab.sh; GEO_SUBNET may
# differ from the examples' 10.213.0 (the files are rewritten for it).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAB=$HERE/lab.sh
EX=$REPO/examples/geo/three
export GEO_BASE=${GEO_BASE:-/tmp/cib-replicator-geo-three}
export GEO_NS=${GEO_NS:-crg3}
export GEO_SUBNET=${GEO_SUBNET:-10.213.0}
export GEO_SITES="A B C" GEO_ARBS="arb arb2" GEO_TICKET="t1 t2" GEO_PUBLISHER_AT=""
ART=${GEO_ARTIFACTS:-$REPO/target/geo-three}
mkdir -p "$ART"
ART=$(cd "$ART" && pwd)
export GEO_LOGS=$ART/logs
TICKET=t1
NET=${GEO_SUBNET%.*} # the examples' 10.213
rm -f "$ART/timings.txt" "$ART/samples.txt"

# shellcheck source=tests/geo/common.sh
. "$HERE/common.sh"

require_root_and_binaries

# The example's files, for this run's subnet.
FILES=$ART/files
rm -rf "$FILES"
cp -r "$EX" "$FILES"
find "$FILES" -type f -exec sed -i "s/10\.213\./$NET./g" {} +
export GEO_BOOTH_CONF=$FILES/booth.conf GEO_ETC_A=$FILES/site-a GEO_ETC_B=$FILES/site-b GEO_ETC_C=$FILES/site-c
EXPIRE=$(awk '$1 == "expire" { print $3; exit }' "$GEO_BOOTH_CONF")
LAZY=/var/lib/cib-replicator/t1/lazy.xml
T_START=$(now)

# Site X's service network: A .1, B .2, C .3.
declare -A NETOF=([A]=$NET.1 [B]=$NET.2 [C]=$NET.3)
lazy_has() { at C grep -q "$1" "$LAZY"; }
# samples_since TIME N: the sampler wrote N lines after TIME.
samples_since() { [ "$(awk -v a="$1" '$1 > a' "$ART/samples.txt" | wc -l)" -ge "$2" ]; }
# attrs_are SITE VALUE: the site's booth attribute of both tickets.
attrs_are() { [ "$(attribute_of "$1" t1)" = "$2" ] && [ "$(attribute_of "$1" t2)" = "$2" ]; }
# watch FILE CMD...: the time CMD first succeeds, into FILE (background).
watch() {
    local f=$1
    shift
    poll 120 "$@" && now >"$f"
}
sites_running() { for s in A B C; do at "$s" crm_mon -1 2>/dev/null | grep -q 'subscriber.*Started' || return 1; done; }
# C's booth attribute and grant of t1, then of t2, for the sampler (one
# call into C).
c_booth() {
    # shellcheck disable=SC2016  # run inside C
    at C sh -c 'for t in t1 t2; do
        a=$(geostore get -t $t cib-replicator 2>/dev/null); printf "%s " "${a:-none}"
        if crm_ticket -t $t -G granted 2>/dev/null | grep -qx true; then printf "yes "; else printf "no "; fi
    done' 2>/dev/null || printf 'none no none no'
}

say "three sites, two arbitrators, two tickets"
t0=$(now)
"$LAB" up
record "lab up (three DCs elected, booth running at 5 members): $(elapsed "$t0") s"
"$LAB" replicator
until_true 60 "the subscriber running at A, B and C" sites_running
ok "ocf:cib-replicator:subscriber runs at every site"

say "1. t1 granted to A, t2 to B; changes reach the other two sites"
for t in t1 t2; do
    s=$([ "$t" = t1 ] && echo A || echo B)
    at "$s" cibadmin -C -o resources -x "$FILES/publisher-$t.xml"
    at "$s" cibadmin -C -o constraints -X "<rsc_ticket id=\"publisher-$t-needs-$t\" rsc=\"publisher-$t\" ticket=\"$t\" loss-policy=\"stop\"/>"
    at "$s" booth grant "$t" >/dev/null
    until_true 20 "$t granted at $s" granted_at "$s" "$t"
    until_true 30 "publisher-$t running at $s" rsc_running "$s" "publisher-$t"
done
ok "booth granted t1 to A and t2 to B; publisher-t1 runs at A, publisher-t2 at B"
start_sampler_groups "A B C" "app1 app2" c_booth
t0=$(now)
at A cibadmin -C -o resources -x "$FILES/app1.xml"
at A cibadmin -C -o constraints -X '<rsc_ticket id="app1-needs-t1" rsc="app1" ticket="t1" loss-policy="stop"/>'
at B cibadmin -C -o resources -x "$FILES/app2.xml"
at B cibadmin -C -o constraints -X '<rsc_ticket id="app2-needs-t2" rsc="app2" ticket="t2" loss-policy="stop"/>'
until_true 30 "app1 at B" param_is B app1-ip ip "${NETOF[B]}.10"
until_true 30 "app1 kept lazily at C" lazy_has "${NETOF[C]}.10"
until_true 30 "app2 at A" param_is A app2-ip ip "${NETOF[A]}.20"
until_true 30 "app2 at C" param_is C app2-ip ip "${NETOF[C]}.20"
record "created at the holders -> copies at the other two sites: $(elapsed "$t0") s"
param_is B app1-daemon state /run/app-site-b/app1.state || fail "B's app1 kept A's path: $(param B app1-daemon state)"
lazy_has /run/app-site-c/app1.state || fail "C's lazy app1 kept A's path"
param_is A app2-daemon state /run/app-site-a/app2.state || fail "A's app2 kept B's path"
param_is C app2-daemon state /run/app-site-c/app2.state || fail "C's app2 kept B's path"
in_cib C app1-ip && fail "C is lazy for t1, yet app1 is in C's CIB"
at C cibadmin -Q -o constraints | grep -q 'ticket="t1"' && fail "C is lazy for t1, yet a t1 constraint is in C's CIB"
at C cib-subscriber status --ticket t1 >"$ART/status-c-t1.txt" || fail "status at C for t1 is not in step: $(cat "$ART/status-c-t1.txt")"
grep -q "kept lazily" "$ART/status-c-t1.txt" || fail "status at C does not say t1 is kept lazily: $(cat "$ART/status-c-t1.txt")"
ok "B and A hold stopped copies with their own values; C keeps t1 out of its CIB (status: in step, kept lazily) and holds t2"

# THREE_CHANGES changes of each ticket (default 3; the benchmark in
# docs/benchmarks.md uses 50): p50 and p99 are recorded.
changes=${THREE_CHANGES:-3}
{ [ "$changes" -ge 1 ] && [ "$changes" -le 100 ]; } || fail "THREE_CHANGES must be 1 to 100"
# p50 and p99 of the numbers given.
percentiles() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
        i = int(NR * 0.99 + 0.999); if (i > NR) i = NR
        printf "p50 %s s, p99 %s s (%d changes)", v[int((NR + 1) / 2)], v[i], NR }'
}
lat=()
for i in $(seq 30 $((29 + changes))); do
    t0=$(now)
    at A crm_resource -r app1-ip -p ip -v "${NETOF[A]}.$i" >/dev/null
    until_true 20 "t1 change .$i at B" param_is B app1-ip ip "${NETOF[B]}.$i"
    until_true 20 "t1 change .$i kept at C" lazy_has "${NETOF[C]}.$i\""
    lat+=("$(elapsed "$t0")")
done
record "change under t1 at A -> at B and kept at C: $(percentiles "${lat[@]}")"
lat=()
for i in $(seq 150 $((149 + changes))); do
    t0=$(now)
    at B crm_resource -r app2-ip -p ip -v "${NETOF[B]}.$i" >/dev/null
    until_true 20 "t2 change .$i at A" param_is A app2-ip ip "${NETOF[A]}.$i"
    until_true 20 "t2 change .$i at C" param_is C app2-ip ip "${NETOF[C]}.$i"
    lat+=("$(elapsed "$t0")")
done
record "change under t2 at B -> at A and C: $(percentiles "${lat[@]}")"
until_true 60 "app1 running at A" group_running A app1 2
until_true 60 "app2 running at B" group_running B app2 2
ok "each change reached both other sites with their values; app1 runs at A, app2 at B"

# The fleet view: each holder's publisher knows every other site's copy.
fleet() { at "$1" cib-publisher status --config "/etc/cib-replicator/publisher-$2.toml" "${@:3}"; }
until_true 20 "A's publisher-t1 sees B and C in step" fleet A t1
until_true 20 "B's publisher-t2 sees A and C in step" fleet B t2
fleet A t1 >"$ART/fleet-a-t1.txt"
fleet A t1 --output json >"$ART/fleet-a-t1.json"
for site in site-b.example site-c.example; do
    grep -q "\"site\": *\"$site\"" "$ART/fleet-a-t1.json" || fail "A's fleet view lacks $site: $(cat "$ART/fleet-a-t1.json")"
done
# The page as a browser shows it (Chromium inside A, where the metrics
# listener is): kept as an artifact.
at A "$REPO/scripts/status-screenshot" http://127.0.0.1:9464/status "$ART/status-a-t1.png" 1100x520 >/dev/null ||
    fail "no screenshot of A's status page"
ok "cib-publisher status at A (t1) and B (t2): every site in step (exit 0); $ART/fleet-a-t1.txt"

say "2. C is cut off and misses a change of each ticket"
until_true 30 "C's attributes current" attrs_are C current
t0=$(now)
"$LAB" partition C
at A crm_resource -r app1-ip -p ip -v "${NETOF[A]}.14" >/dev/null
at B crm_resource -r app2-ip -p ip -v "${NETOF[B]}.24" >/dev/null
until_true 20 "t1 change .14 at B" param_is B app1-ip ip "${NETOF[B]}.14"
# The streams open to C die by the follower's idle timeout (45 s without a
# byte), then stale_after_seconds (20 s) runs.
until_true 100 "C's attributes stale" attrs_are C stale
record "C cut off -> its booth attributes stale: $(elapsed "$t0") s"
lazy_has "${NETOF[C]}.14\"" && fail "C got a change through a partition"
until_true 30 "C's booth refusing to start an election" sh -c "grep -q 'attribute prerequisite not met' '$GEO_BASE/state/C/log/booth.log'"
ok "C missed .14/.24; its attributes are stale; its booth starts no election (attribute prerequisite not met)"
fleet A t1 >"$ART/fleet-a-t1-c-cut.txt" && fail "A's fleet view says every site is in step while C is cut off"
grep -q "site-c" "$ART/fleet-a-t1-c-cut.txt" || fail "A's fleet view does not name C"
at A "$REPO/scripts/status-screenshot" http://127.0.0.1:9464/status "$ART/status-a-t1-c-cut.png" 1100x520 >/dev/null ||
    fail "no screenshot of A's status page"
ok "cib-publisher status at A exits 1 while C is cut off: $(grep -m1 'site-c' "$ART/fleet-a-t1-c-cut.txt" | tr -s ' ')"

say "3. A is lost while C is cut off: booth moves t1 to B"
t0=$(now)
"$LAB" kill-site A
until_true 60 "t1 granted at B" granted_at B t1
t_granted=$(now)
until_true 60 "app1 running at B" group_running B app1 2
record "A lost -> t1 granted at B: $(elapsed "$t0" "$t_granted") s; -> app1 running at B: $(elapsed "$t0") s (expire $EXPIRE s)"
until_true 10 "B's address ${NETOF[B]}.14" has_address B "${NETOF[B]}.14"
at B test -e /run/app-site-b/app1.state || fail "app1-daemon at B does not use B's path"
until_true 30 "publisher-t1 running at B" rsc_running B publisher-t1
granted_at C t1 && fail "C, cut off and stale, holds t1"
ok "B took t1 and runs app1 with B's address and path; publisher-t1 runs at B"

say "4. C's link is back: it converges and follows B"
t0=$(now)
"$LAB" heal C
until_true 60 "t2 change .24 at C" param_is C app2-ip ip "${NETOF[C]}.24"
until_true 60 "t1 change .14 kept at C" lazy_has "${NETOF[C]}.14\""
until_true 30 "C's attributes current" attrs_are C current
record "C's link back -> C holds both changes, attributes current: $(elapsed "$t0") s"
t0=$(now)
at B crm_resource -r app1-ip -p ip -v "${NETOF[B]}.15" >/dev/null
until_true 30 "t1 change .15 at B kept at C" lazy_has "${NETOF[C]}.15\""
record "change under t1 at B (new holder) -> kept at C: $(elapsed "$t0") s"
in_cib C app1-ip && fail "C wrote its lazy copy of t1 to its CIB"
grep -q "site-b" <(at C cat /var/lib/cib-replicator/t1/state.toml) || fail "C does not follow B for t1"
ok "C converged without a hand (t2 in its CIB, t1 kept lazily) and follows B, the new holder of t1"

say "5. A boots again and follows B"
t0=$(now)
"$LAB" start-site A
T_A_BACK=$(now)
at A mkdir -p /run/app-site-a
record "site A boot: $(elapsed "$t0") s"
until_true 60 "A's app1 following B" param_is A app1-ip ip "${NETOF[A]}.15"
granted_at A t1 && fail "t1 is granted at A after its restart"
rsc_running A publisher-t1 && fail "publisher-t1 runs at A after its restart"
# Enough samples of A following B (the sampler asserts it runs nothing of t1).
until_true 60 "10 samples since A's return" samples_since "$T_A_BACK" 10
ok "A follows B for t1 (${NETOF[A]}.15) and does not hold t1"

say "6. A and B are both lost: C takes t1 (lazy) and t2 (eager)"
until_true 30 "C's attributes current" attrs_are C current
t0=$(now)
T_AB_LOST=$t0
"$LAB" kill-site A &
ka=$!
"$LAB" kill-site B &
wait "$ka" $!
W=$ART/takeover
rm -rf "$W"
mkdir -p "$W"
watchers=()
watch "$W/g1" granted_at C t1 &
watchers+=($!)
watch "$W/c1" in_cib C app1-ip &
watchers+=($!)
watch "$W/r1" group_running C app1 2 &
watchers+=($!)
watch "$W/g2" granted_at C t2 &
watchers+=($!)
watch "$W/r2" group_running C app2 2 &
watchers+=($!)
wait "${watchers[@]}" || true
declare -A T=()
for k in g1 c1 r1 g2 r2; do
    [ -s "$W/$k" ] || fail "C did not take over within 120 s (no $k: g granted, c in the CIB, r running; 1 t1, 2 t2)"
    T[$k]=$(cat "$W/$k")
done
record "A and B lost -> t1 granted at C: $(elapsed "$t0" "${T[g1]}") s; t2 granted at C: $(elapsed "$t0" "${T[g2]}") s"
record "  lazy  (t1): granted -> app1 in C's CIB $(elapsed "${T[g1]}" "${T[c1]}") s -> app1 started $(elapsed "${T[c1]}" "${T[r1]}") s (granted -> started $(elapsed "${T[g1]}" "${T[r1]}") s)"
record "  eager (t2): granted -> app2 started $(elapsed "${T[g2]}" "${T[r2]}") s"
until_true 10 "C's address ${NETOF[C]}.15" has_address C "${NETOF[C]}.15"
until_true 10 "C's address ${NETOF[C]}.24" has_address C "${NETOF[C]}.24"
at C test -e /run/app-site-c/app1.state || fail "app1-daemon at C does not use C's path"
at C test -e /run/app-site-c/app2.state || fail "app2-daemon at C does not use C's path"
at C test ! -e "$LAZY" || fail "the gate (run by booth as hacluster) did not record what it wrote: $LAZY is still there"
grep -q "lazy copy written to the CIB" <(at C cat /var/lib/cib-replicator/t1/state.toml) ||
    fail "C's state does not record the lazy copy written by the gate"
ok "C runs app1 (written from its lazy copy as t1 was acquired) and app2, with C's addresses and paths"

say "7. never two sites, never a stale grant at C"
sleep 1
stop_sampler
# Columns: time A:app1 A:app2 B:app1 B:app2 C:app1 C:app2 C:t1-attr C:t1-granted C:t2-attr C:t2-granted
n=$(wc -l <"$ART/samples.txt")
[ "$n" -gt 50 ] || fail "only $n samples"
for g in 1 2; do
    both=$(awk -v g="$g" '{ c = ($(1 + g) > 0) + ($(3 + g) > 0) + ($(5 + g) > 0) } c > 1' "$ART/samples.txt" | wc -l)
    [ "$both" = 0 ] || fail "$both samples saw app$g active at two sites: $(awk -v g="$g" '{ c = ($(1 + g) > 0) + ($(3 + g) > 0) + ($(5 + g) > 0) } c > 1' "$ART/samples.txt" | head -3)"
done
seen=$(awk '{ for (i = 2; i <= 7; i++) if ($i == 2) s[i] = 1 } END { print s[2] + 0, s[3] + 0, s[4] + 0, s[5] + 0, s[6] + 0, s[7] + 0 }' "$ART/samples.txt")
[ "$seen" = "1 0 1 1 1 1" ] || fail "the samples did not see app1 at A, B, C and app2 at B, C (A:app1 A:app2 B:app1 B:app2 C:app1 C:app2 = $seen)"
back=$(awk -v a="$T_A_BACK" -v b="$T_AB_LOST" '$1 > a && $1 < b' "$ART/samples.txt" | wc -l)
at_a=$(awk -v a="$T_A_BACK" -v b="$T_AB_LOST" '$1 > a && $1 < b && $2 > 0' "$ART/samples.txt" | wc -l)
[ "$back" -ge 10 ] || fail "only $back samples between A's return and its second loss"
[ "$at_a" = 0 ] || fail "after its return A ran app1 in $at_a of $back samples"
# A grant at C (no -> yes between two samples) must follow a sample with C's attribute current.
stale_grants=$(awk 'NR > 1 && ((p9 == "no" && $9 == "yes" && p8 != "current") || (p11 == "no" && $11 == "yes" && p10 != "current")) { print } { p8 = $8; p9 = $9; p10 = $10; p11 = $11 }' "$ART/samples.txt" | wc -l)
[ "$stale_grants" = 0 ] || fail "C acquired a ticket while its attribute was not current ($stale_grants samples)"
stale_seen=$(awk '$8 == "stale" || $10 == "stale"' "$ART/samples.txt" | wc -l)
[ "$stale_seen" -gt 0 ] || fail "the samples never saw C's attribute stale"
ok "$n samples of every site's crm_mon: app1 and app2 never active at two sites; A ran app1 in none of the $back after its return; C acquired no ticket while stale ($stale_seen samples stale)"

record "whole scenario: $(elapsed "$T_START") s"
say "passed (timings in $ART/timings.txt)"
cat "$ART/timings.txt"
