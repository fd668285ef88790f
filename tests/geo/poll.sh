# Sourced by tests/geo/lab.sh, tests/geo/e2e.sh and examples/geo/run.sh.
# shellcheck shell=bash

# Seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

# poll SECONDS CMD...: runs CMD (output discarded) every 0.1 s until it
# succeeds; returns 1 when SECONDS have passed first.
poll() {
    local limit=$1 t0
    shift
    t0=$(now)
    until "$@" >/dev/null 2>&1; do
        awk -v a="$t0" -v b="$(now)" -v t="$limit" 'BEGIN { exit !(b - a > t) }' && return 1
        sleep 0.1
    done
}
