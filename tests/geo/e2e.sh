#!/usr/bin/env bash
# e2e.sh — geo failover end to end, on two live Pacemaker sites and a booth
# arbitrator (tests/geo/lab.sh), with cib-replicator run by Pacemaker through
# its OCF agents and booth's before-acquire-handler set to `cib-subscriber
# gate`.
#
#   tests/geo/e2e.sh              (as root, after cargo build --workspace --bins)
#
# The scenario, each step asserted:
#   1. both sites run ocf:cib-replicator:subscriber; the publisher is bound
#      to ticket "geo"; booth grants geo to site A;
#   2. the admin creates resources bound to geo at A; B receives them,
#      transformed (B's address and path), and they stay stopped at B;
#   3. attribute changes at A reach B (latency measured); `cib-subscriber
#      diff` at B then exits 0;
#   4. site A loses power: booth moves geo to B (the gate allows: B's copy is
#      current); the copy starts at B with B's values; the publisher runs at B;
#   5. A boots again and becomes the subscriber: it takes its elements back
#      and follows B; a change at B reaches A; A refuses A's own older-term
#      document when it is replayed;
#   6. the gate refuses a stale copy: A in manual mode has a staged change it
#      did not apply; B loses power; booth does not give geo to A; once A
#      applies the staged change, A may take geo and starts the copy;
#   7. throughout, both sites' crm_mon is sampled: never do both run the
#      ticket's resources.
#
# Environment: GEO_ARTIFACTS (default target/geo-e2e) receives timings.txt,
# samples.txt and, always, the logs of both sites and the arbitrator (logs/).
# Other GEO_* variables as in lab.sh (the defaults keep this run apart from
# examples/geo).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAB=$HERE/lab.sh
export GEO_BASE=${GEO_BASE:-/tmp/cib-replicator-geo-e2e}
export GEO_NS=${GEO_NS:-crge2e}
GEO_EXPIRE=$(awk '$1 == "expire" { print $3 }' "$REPO/examples/geo/booth.conf")
export GEO_BOOTH_CONF=$REPO/examples/geo/booth.conf
ART=${GEO_ARTIFACTS:-$REPO/target/geo-e2e}
mkdir -p "$ART"
ART=$(cd "$ART" && pwd)
export GEO_LOGS=$ART/logs
TICKET=geo
CFG=/etc/cib-replicator/subscriber.toml
rm -f "$ART/timings.txt" "$ART/samples.txt"

# shellcheck source=tests/geo/common.sh
. "$HERE/common.sh"

require_root_and_binaries
T_START=$(now)

say "two sites and an arbitrator"
t0=$(now)
"$LAB" up
record "lab up (both DCs elected, booth running): $(elapsed "$t0") s"
WORK=$GEO_BASE/state/e2e # removed by lab.sh down
mkdir -p "$WORK"

"$LAB" replicator
until_true 30 "the subscriber running at A and B" sh -c "'$LAB' exec A crm_mon -1 | grep -q 'subscriber.*Started' && '$LAB' exec B crm_mon -1 | grep -q 'subscriber.*Started'"
ok "ocf:cib-replicator:subscriber runs at both sites"

say "1. the publisher at A, bound to ticket $TICKET; booth grants $TICKET to A"
at A booth grant "$TICKET" >/dev/null
until_true 20 "$TICKET granted at A" granted A
until_true 30 "the publisher running at A" rsc_running A publisher
booth_log A | grep -q "ticket geo: allowed: no version was ever received here" ||
    fail "booth at A did not ask the gate before the grant (see logs/A/booth.log)"
ok "booth granted $TICKET to A (the gate allowed it: A is the origin); the publisher runs at A"
start_sampler

say "2. the admin creates resources bound to $TICKET at A"
t0=$(now)
at A cibadmin -C -o resources -x "$REPO/examples/geo/app.xml"
at A cibadmin -C -o constraints -X '<rsc_ticket id="app-needs-geo" rsc="app" ticket="geo" loss-policy="stop"/>'
until_true 30 "the copy of app at B" param_is B app-ip ip 10.213.2.10
record "created at A -> copy at B: $(elapsed "$t0") s"
param_is B app-daemon state /run/app-site-b/daemon.state || fail "B's copy kept A's path: $(param B app-daemon state)"
ok "B holds app with B's address (10.213.2.10) and path (/run/app-site-b)"
until_true 30 "app running at A" app_running A
sleep 2
[ "$(app_active B)" = 0 ] || fail "the copy of app runs at B"
rsc_running B publisher && fail "the copy of the publisher runs at B"
at B crm_verify -L || fail "crm_verify -L at B"
ok "at B the copy is stopped and crm_verify -L is clean"

say "3. attribute changes at A reach B"
lat=()
for i in 11 12 13 14 15 16 17 18 19 20; do
    t0=$(now)
    at A crm_resource -r app-ip -p ip -v "10.213.1.$i" >/dev/null
    until_true 20 "ip 10.213.2.$i at B" param_is B app-ip ip "10.213.2.$i"
    lat+=("$(elapsed "$t0")")
done
record "change at A -> applied at B, 10 changes (s): ${lat[*]}"
record "  median $(printf '%s\n' "${lat[@]}" | sort -n | sed -n 5p) s, max $(printf '%s\n' "${lat[@]}" | sort -n | tail -1) s"
# After each write B reads its CIB again in the background, so the next
# change starts from that copy (two small queries) instead of reading the
# CIB whole on its path.
reads=$(at B curl -sf http://127.0.0.1:9465/metrics | grep '^cib_subscriber_local_cib_reads_total{' || true)
kept=$(awk '/how="kept"/ { print $2 }' <<<"$reads")
[ "${kept:-0}" -ge 5 ] || fail "B read its CIB whole for most of the 10 changes: ${reads:-no metric}"
whole=$(awk '/how="whole"/ { print $2 }' <<<"$reads")
ok "B planned $kept of its documents on the kept copy of its CIB (${whole:-0} read whole)"
# A reads its CIB when a file event says it changed (the CIB manager's
# disk writer opening cib.xml), not when the once-a-second re-check finds it.
reads=$(at A curl -sf --cert /etc/cib-replicator/certs/site.pem --key /etc/cib-replicator/certs/site.key \
    --cacert /etc/cib-replicator/certs/ca.pem "https://$("$LAB" ip A):9443/metrics" | grep '^cib_publisher_cib_reads_total{' || true)
by_file=$(awk '/trigger="file"/ { print $2 }' <<<"$reads")
[ "${by_file:-0}" -ge 5 ] || fail "A noticed most of the 10 changes only by its re-check: ${reads:-no metric}"
ok "A noticed $by_file changes by a file event ($(awk '/trigger="recheck"/ { print $2 }' <<<"$reads") by the re-check)"
TLS=(--cert /etc/cib-replicator/certs/site.pem --key /etc/cib-replicator/certs/site.key --ca /etc/cib-replicator/certs/ca.pem)
at B cib-subscriber diff --ticket "$TICKET" --config "$CFG" --from "https://$("$LAB" ip A):9443" "${TLS[@]}" \
    --rules /etc/cib-replicator/rules.toml >"$ART/diff-b.txt" 2>&1 || fail "diff at B did not exit 0: $(cat "$ART/diff-b.txt")"
ok "cib-subscriber diff at B exits 0 after the changes"
# A's document as published now, for the replay in step 5.
at A cib-publisher scope --ticket "$TICKET" >"$WORK/a-term0.xml"
grep -q 'replicator-term="0"' "$WORK/a-term0.xml" || fail "A's document does not carry term 0"

say "3b. log_level changes without a restart (Pacemaker calls reload-agent)"
SUB_RUN=/run/resource-agents/cib-replicator-subscriber
pid_before=$(at B cat "$SUB_RUN.pid")
at B crm_resource -r subscriber -p log_level -v debug >/dev/null
until_true 30 "debug logging at B's subscriber" at B grep -q "debug logging is on" "$SUB_RUN.out"
[ "$(at B cat "$SUB_RUN.pid")" = "$pid_before" ] || fail "B's subscriber was restarted for log_level"
at B grep -q "reload-agent" /var/log/pacemaker/pacemaker.log ||
    fail "Pacemaker did not call reload-agent at B"
at B crm_resource -r subscriber -p log_level -v info >/dev/null
ok "B's subscriber (pid $pid_before) logs at debug after crm_resource -p log_level, without a restart"

say "4. site A loses power; booth moves $TICKET to B"
until_true 10 "B's booth attribute current" attribute_is B current
t0=$(now)
"$LAB" kill-site A
until_true 60 "$TICKET granted at B" granted B
t_granted=$(now)
until_true 60 "app running at B" app_running B
record "site A lost -> $TICKET granted at B: $(elapsed "$t0" "$t_granted") s; -> app running at B: $(elapsed "$t0") s (booth expire = $GEO_EXPIRE s)"
until_true 10 "B's address 10.213.2.20 up at B" has_address B 10.213.2.20
at B test -e /run/app-site-b/daemon.state || fail "app-daemon at B does not use B's path"
until_true 30 "the publisher running at B" rsc_running B publisher
ok "B (attribute cib-replicator=current) took $TICKET; app runs at B with B's address and path; the publisher runs at B"

say "5. A boots again and follows B"
t0=$(now)
"$LAB" start-site A
at A mkdir -p /run/app-site-a
record "site A boot (DC elected, booth running): $(elapsed "$t0") s"
granted A && fail "$TICKET is granted at A after its restart"
until_true 60 "A taking its elements back" sh -c "'$LAB' exec A cibadmin -Q -o crm_config | grep -q 'name=\"applied-term\" value=\"1\"'"
param_is A app-ip ip 10.213.1.20 || fail "A's copy has ip $(param A app-ip ip), expected A's address 10.213.1.20"
ok "A took its elements back, with B's term 1 and A's address"
t0=$(now)
at B crm_resource -r app-ip -p ip -v 10.213.2.30 >/dev/null
until_true 20 "ip 10.213.1.30 at A" param_is A app-ip ip 10.213.1.30
record "change at B -> applied at A (reversed): $(elapsed "$t0") s"
before=$(configuration A)
if at A cib-subscriber replicate-now --ticket "$TICKET" --config "$CFG" --from "$WORK/a-term0.xml" \
    --rules /etc/cib-replicator/rules.toml >"$ART/replay.txt" 2>&1; then
    fail "A applied its own older-term document: $(cat "$ART/replay.txt")"
fi
grep -q "older" "$ART/replay.txt" || fail "the replay was refused for another reason: $(cat "$ART/replay.txt")"
[ "$(configuration A)" = "$before" ] || fail "the refused replay changed A's configuration"
ok "A refuses the replayed term-0 document; its configuration is unchanged"

say "6. the gate refuses a stale copy"
at A sed -i 's/^mode  = "auto"/mode  = "manual"/' "$CFG"
at A crm_resource -r subscriber --restart --timeout=60s >/dev/null
until_true 30 "A's subscriber running" rsc_running A subscriber
sleep 1
at B crm_resource -r app-ip -p ip -v 10.213.2.40 >/dev/null
until_true 20 "the change staged at A" at A test -s /var/lib/cib-replicator/geo/pending.xml
param_is A app-ip ip 10.213.1.30 || fail "manual mode applied the change at A"
at A cib-subscriber gate --ticket "$TICKET" --config "$CFG" && fail "the gate at A allows a stale copy"
until_true 10 "A's booth attribute stale" attribute_is A stale
t0=$(now)
"$LAB" kill-site B
sleep $((GEO_EXPIRE * 3))
granted A && fail "booth gave $TICKET to A, whose copy is stale"
[ "$(app_active A)" = 0 ] || fail "app runs at A with a stale copy"
booth_log A | grep -q "attribute prerequisite not met" ||
    fail "booth at A did not check the attribute (see logs/A/booth.log)"
ok "B lost: for $((GEO_EXPIRE * 3)) s booth did not give $TICKET to A (stale copy), nothing runs"
at A cib-subscriber replicate-now --ticket "$TICKET" --config "$CFG" >/dev/null
param_is A app-ip ip 10.213.1.40 || fail "replicate-now did not apply the staged change at A"
t0=$(now)
for _ in $(seq 1 $((GEO_EXPIRE * 4 * 10))); do
    granted A && break
    sleep 0.1
done
if ! granted A; then
    at A booth grant "$TICKET" >/dev/null 2>&1 || true
    until_true 20 "$TICKET granted at A after booth grant" granted A
    record "after the staged change was applied, booth grant at A succeeded"
else
    record "after the staged change was applied, booth gave $TICKET to A by itself in $(elapsed "$t0") s"
fi
until_true 60 "app running at A" app_running A
ok "with its copy current, A holds $TICKET and runs app"

say "7. never both sites"
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""
n=$(wc -l <"$ART/samples.txt")
both=$(awk '$2 > 0 && $3 > 0' "$ART/samples.txt" | wc -l)
at_a=$(awk '$2 == 2' "$ART/samples.txt" | wc -l)
at_b=$(awk '$3 == 2' "$ART/samples.txt" | wc -l)
[ "$n" -gt 50 ] || fail "only $n samples"
{ [ "$at_a" -gt 0 ] && [ "$at_b" -gt 0 ]; } || fail "the samples never saw app at A ($at_a) or at B ($at_b)"
[ "$both" = 0 ] || fail "$both of $n samples saw app active at both sites: $(awk '$2 > 0 && $3 > 0' "$ART/samples.txt" | head -3)"
ok "$n samples of both sites' crm_mon: app at A in $at_a, at B in $at_b, at both in none"

say "8. logs where HA admins look: the journal, crm_report, crm report, sosreport"
# The lab's sites have no systemd: A gets a journald of its own (its /run is
# private), and its subscriber is restarted to log there.
at A sh -c 'mkdir -p /run/systemd/journal && setsid /lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 &'
until_true 10 "A's journald" at A test -S /run/systemd/journal/socket
since=$(date -d '-1 min' '+%Y-%m-%d %H:%M:%S')
at A crm_resource -r subscriber --restart --timeout=60s >/dev/null
# (grep reads all its input: with -q, pipefail would fail on the writer's SIGPIPE.)
journal_has() { at A journalctl --no-pager "$@" 2>/dev/null | grep "ticket=$TICKET" >/dev/null; }
until_true 30 "A's subscriber in the journal, with its fields" journal_has -t cib-subscriber
journal_has OCF_RESOURCE=subscriber || fail "no entries with OCF_RESOURCE=subscriber"
# Levels map to priorities: info lines are notices, not warnings.
journal_has -t cib-subscriber -p notice || fail "no info lines at priority notice"
at A journalctl --no-pager -t cib-subscriber -p warning | grep ' INFO ' >/dev/null &&
    fail "info lines logged at priority warning or higher"
at A journalctl --no-pager -t cib-subscriber >"$ART/journal-a.txt"
ok "journalctl -t cib-subscriber: $(wc -l <"$ART/journal-a.txt") lines with their fields; OCF_RESOURCE and -p select them"
REPORTS=$ART/reports
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
report_has() { tar xf "$1" -O --wildcards '*journal.log' 2>/dev/null | grep "cib-subscriber.*ticket=$TICKET" >/dev/null; }
at A crm_report -S --from "$since" "$REPORTS/crm_report" >"$REPORTS/crm_report.log" 2>&1 ||
    fail "crm_report at A: $(tail -3 "$REPORTS/crm_report.log")"
report_has "$REPORTS/crm_report.tar.bz2" || fail "crm_report's journal.log lacks the subscriber's lines"
# crm report (crmsh 4.4) cuts its journal window down to whole minutes:
# without a -t past the current minute, the last minute is missing.
at A crm report -S -f "$since" -t "$(date -d '+2 min' '+%Y-%m-%d %H:%M')" "$REPORTS/crmsh" >"$REPORTS/crmsh.log" 2>&1 ||
    fail "crm report at A: $(tail -3 "$REPORTS/crmsh.log")"
report_has "$REPORTS/crmsh.tar.bz2" || fail "crm report's journal.log lacks the subscriber's lines"
at A sos report --batch -o pacemaker --tmp-dir "$REPORTS" >"$REPORTS/sos.log" 2>&1 ||
    fail "sos report at A: $(tail -3 "$REPORTS/sos.log")"
report_has "$(ls "$REPORTS"/sosreport-*.tar.xz)" || fail "sosreport's crm_report lacks the subscriber's lines"
ok "crm_report, crm report and sos report (pacemaker plugin) each carry the subscriber's journal lines"

record "whole scenario: $(elapsed "$T_START") s"
say "passed (timings in $ART/timings.txt)"
