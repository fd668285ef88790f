#!/usr/bin/env bash
# The benchmarks of cib-replicator, each side by side with its anchor in the
# same hyperfine run (see docs/benchmarks.md). There is no `cargo bench`:
# running this script is the way.
#
#   bench/run.sh [--primitives N] [--out DIR] [--keep]
#                [--changes N] [--streams N] [--only LETTERS]
#
# Builds the release binaries, generates a CIB of N primitives (default
# 10000) into a temporary directory, checks it (crm_verify, and our rules
# and the XSLT anchor agree), then runs hyperfine (--warmup 2 --runs 10) on:
#   a. cib-bench scope-rules-digest  vs  xsltproc equivalent.xsl  (whole CIB)
#      (+ cib-publisher scope with CIB_file, for reference)
#   b. cib-subscriber transform --xslt  vs  xsltproc on the same scope
#   c. cib-bench diff  vs  crm_diff
# a and b again in turns (cib-bench paired, 20 rounds: the median of the
# per-round ratios, which the machine's drift does not bias), and the
# in-process phase breakdown; then, with the release daemons on
# loopback (mutual TLS, CIB_file mode, a generated 250-primitive CIB):
#   d. cib-bench latency --changes N (default 100): change at site A
#      (cibadmin --modify) to applied at site B, p50/p99, beside cibadmin
#      alone
#   e. cib-bench fanout --streams N (default 1000): one change reaching N
#      concurrent event streams, and the publisher's memory
# and prints the tables and the verdicts against the targets. --only runs
# some sections (e.g. --only de). Results (markdown, CSV, phases, machine)
# go to DIR (default target/bench-results). a-c take ~8 minutes, most of it
# crm_diff; d and e about 2.
# Needs: cargo, hyperfine, xsltproc, crm_verify, crm_diff, cibadmin.
set -euo pipefail

primitives=10000
changes=100
streams=1000
only=abcde
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/target/bench-results"
keep=false
while (($#)); do
    case "$1" in
        --primitives) primitives=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --keep) keep=true; shift ;;
        --changes) changes=$2; shift 2 ;;
        --streams) streams=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        -h|--help) sed -n '2,29p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ "$only" =~ ^[a-e]+$ ]] || { echo "run.sh: --only takes letters among a-e, got '$only'" >&2; exit 2; }
# want X: whether section X runs.
want() { [[ "$only" == *"$1"* ]]; }

abc=false
if want a || want b || want c; then abc=true; fi
tools=(cargo crm_verify crm_diff cibadmin)
if $abc; then tools+=(hyperfine xsltproc); fi
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is not installed" >&2; exit 2; }
done

cd "$root"
cargo build --release -p cib-bench -p cib-publisher -p cib-subscriber
bin="${CARGO_TARGET_DIR:-$root/target}/release"
export PATH="$bin:$PATH"
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/cib-bench.XXXXXX")
if $keep; then
    echo "run.sh: generated files kept in $work"
else
    trap 'rm -rf "$work"' EXIT
fi
cd "$work"

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
    echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "os: $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), kernel $(uname -r)"
    if $abc; then
        echo "tools: $(xsltproc --version | head -1); $(crm_diff --version | head -1); $(hyperfine --version); $(rustc --version)"
    else
        echo "tools: $(crm_diff --version | head -1); $(rustc --version)"
    fi
} > "$out/machine.txt"
cat "$out/machine.txt"

# Sections a-c: hyperfine against the anchors, on the generated big CIB.
if $abc; then
    echo "== generating $primitives primitives into $work"
    cib-bench generate --dir . --primitives "$primitives" | tee "$out/generate.txt"

    echo "== sanity checks"
    crm_verify -x cib-10k.xml
    crm_verify -x cib-10k-b.xml
    echo "crm_verify: both CIBs valid"
    ours=$(cib-bench scope-rules-digest cib-10k.xml)
    cib-subscriber transform --from scope.xml --rules rules.toml > via-rules.xml 2>/dev/null
    cib-subscriber transform --from scope.xml --xslt equivalent.xsl > via-xslt.xml 2>/dev/null
    for f in via-rules.xml via-xslt.xml; do
        d=$(sed -n 's/.*replicator-transformed-digest="\([^"]*\)".*/\1/p' "$f" | head -1)
        [[ "$d" == "$ours" ]] || { echo "run.sh: $f has digest $d, cib-bench says $ours" >&2; exit 1; }
    done
    echo "digest of the rewritten scope, identical by rules and by XSLT: $ours"
    xsltproc equivalent.xsl cib-10k.xml > xslt-whole.xml
    for id in vip-0-instance_attributes-ip fs-1-instance_attributes-directory; do
        a=$(grep -o "id=\"$id\"[^>]*" via-rules.xml | sed -n 's/.* value="\([^"]*\)".*/\1/p')
        b=$(grep -o "id=\"$id\"[^>]*" xslt-whole.xml | sed -n 's/.* value="\([^"]*\)".*/\1/p')
        [[ -n "$a" && "$a" == "$b" ]] || { echo "run.sh: $id: ours '$a', xsltproc '$b'" >&2; exit 1; }
        echo "sample $id: ours $a, xsltproc $b"
    done
    rm -f via-rules.xml via-xslt.xml xslt-whole.xml

    echo "== load before the runs: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"

    # bench NAME hyperfine-args... : runs hyperfine with the common options.
    bench() {
        local name=$1
        shift
        hyperfine -N --warmup 2 --runs 10 \
            --export-markdown "$out/$name.md" --export-csv "$out/$name.csv" "$@"
    }

    # paired NAME OURS ANCHOR: the two commands in turns (cib-bench paired),
    # 20 rounds: the median of the per-round ratios, which the drift of the
    # machine's speed within a minute does not bias.
    paired() {
        cib-bench paired --rounds 20 --csv "$out/$1-paired.csv" "$2" "$3" | tee "$out/$1-paired.md"
    }

    if want a; then
        bench a-scope-rules \
            -n 'cib-bench scope-rules-digest cib-10k.xml' 'cib-bench scope-rules-digest cib-10k.xml' \
            -n 'xsltproc equivalent.xsl cib-10k.xml' 'xsltproc equivalent.xsl cib-10k.xml' \
            -n 'CIB_file=cib-10k.xml cib-publisher scope --ticket geo' 'env CIB_file=cib-10k.xml cib-publisher scope --ticket geo'
        paired a-scope-rules 'cib-bench scope-rules-digest cib-10k.xml' 'xsltproc equivalent.xsl cib-10k.xml'
    fi
    if want b; then
        bench b-xslt-overhead \
            -n 'cib-subscriber transform --from scope.xml --xslt equivalent.xsl' 'cib-subscriber transform --from scope.xml --xslt equivalent.xsl' \
            -n 'xsltproc equivalent.xsl scope-config.xml' 'xsltproc equivalent.xsl scope-config.xml'
        paired b-xslt-overhead 'cib-subscriber transform --from scope.xml --xslt equivalent.xsl' 'xsltproc equivalent.xsl scope-config.xml'
    fi
    if want c; then
        bench c-diff -i \
            -n 'cib-bench diff cib-10k.xml cib-10k-b.xml' 'cib-bench diff cib-10k.xml cib-10k-b.xml' \
            -n 'crm_diff -o cib-10k.xml -n cib-10k-b.xml' 'crm_diff -o cib-10k.xml -n cib-10k-b.xml'
    fi

    echo "== load after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"

    cib-bench phases cib-10k.xml --against cib-10k-b.xml --iterations 7 > "$out/phases.md"
fi

# Sections d and e: the release daemons on loopback. Each subcommand makes
# its own CIBs, certificates and configurations, starts and stops the
# daemons, records the load average and prints its tables.
if want d; then
    echo "== d. change at A -> applied at B ($changes changes)"
    cib-bench latency --changes "$changes" --csv "$out/d-latency.csv" > "$out/d-latency.md"
fi
if want e; then
    echo "== e. publisher fan-out ($streams streams)"
    cib-bench fanout --streams "$streams" --csv "$out/e-fanout.csv" > "$out/e-fanout.md"
fi

# col NAME ROW COL: column COL (2 mean, 5 user, 6 system; seconds) of row
# ROW (1-based) of a hyperfine CSV.
col() {
    awk -F, -v row="$2" -v c="$3" 'NR == row + 1 {print $c}' "$out/$1.csv"
}

# verdict NAME LABEL KIND TARGET: row 1 (ours) against row 2 (anchor), on
# wall-clock means and on CPU time (user + system, less sensitive to load).
verdict() {
    awk -v label="$2" -v kind="$3" -v target="$4" \
        -v ours="$(col "$1" 1 2)" -v anchor="$(col "$1" 2 2)" \
        -v ocpu="$(col "$1" 1 5) $(col "$1" 1 6)" -v acpu="$(col "$1" 2 5) $(col "$1" 2 6)" 'BEGIN {
        split(ocpu, o, " "); split(acpu, a, " ")
        oc = o[1] + o[2]; ac = a[1] + a[2]
        if (kind == "faster") {
            r = anchor / ours
            printf "%s: ours %.3f s, anchor %.3f s: %.1fx faster (CPU time %.1fx); target >= %gx: %s\n",
                label, ours, anchor, r, ac / oc, target, (r >= target ? "met" : "NOT met")
        } else {
            printf "%s: ours %.3f s, anchor %.3f s: overhead %+.0f%% (CPU time %+.0f%%); target <= %g%%: %s\n",
                label, ours, anchor, 100 * (ours / anchor - 1), 100 * (oc / ac - 1), target,
                (100 * (ours / anchor - 1) <= target ? "met" : "NOT met")
        }
    }'
}

# paired_verdict NAME LABEL KIND TARGET: from the median of the per-round
# ratios of `cib-bench paired`.
paired_verdict() {
    local line
    if [[ "$3" == faster ]]; then
        line=$(grep -o 'ratio anchor/ours: median [0-9.]*' "$out/$1-paired.md" | awk '{print $NF}')
        awk -v label="$2" -v r="$line" -v target="$4" 'BEGIN {
            printf "%s, in turns: %.1fx faster (median of 20 per-round ratios); target >= %gx: %s\n",
                label, r, target, (r >= target ? "met" : "NOT met") }'
    else
        line=$(grep -o 'overhead ours/anchor: median [-+0-9.]*' "$out/$1-paired.md" | awk '{print $NF}')
        awk -v label="$2" -v o="$line" -v target="$4" 'BEGIN {
            printf "%s, in turns: overhead %+.1f%% (median of 20 per-round ratios); target <= %g%%: %s\n",
                label, o, target, (o <= target ? "met" : "NOT met") }'
    fi
}

{
    if want a; then
        verdict a-scope-rules "a. scope+rules+digest vs xsltproc" faster 10
        paired_verdict a-scope-rules "a. scope+rules+digest vs xsltproc" faster 10
    fi
    if want b; then
        verdict b-xslt-overhead "b. subscriber --xslt vs xsltproc" overhead 20
        paired_verdict b-xslt-overhead "b. subscriber --xslt vs xsltproc" overhead 20
    fi
    if want c; then verdict c-diff "c. diff vs crm_diff" faster 100; fi
    if want d; then echo "d. change at A -> applied at B: $(grep -o 'Target p50.*' "$out/d-latency.md")"; fi
} > "$out/verdicts.txt"

echo
for f in a-scope-rules b-xslt-overhead c-diff d-latency e-fanout; do
    want "${f:0:1}" || continue
    echo "### $f"
    echo
    cat "$out/$f.md"
    echo
    if [[ -f "$out/$f-paired.md" ]]; then
        echo "In turns:"
        echo
        cat "$out/$f-paired.md"
        echo
    fi
done
cat "$out/verdicts.txt"
if $abc; then
    echo
    cat "$out/phases.md"
fi
echo
echo "results in $out"
