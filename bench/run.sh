#!/usr/bin/env bash
# The benchmarks of cib-replicator: the commands users run, each timed in
# turns with its anchor (see docs/benchmarks.md). There is no `cargo bench`:
# running this script is the way.
#
#   bench/run.sh [--sizes "250 2500 10000"] [--rounds N] [--changes N]
#                [--streams N] [--only LETTERS] [--out DIR] [--keep]
#
# Builds the release binaries, generates a CIB of each size (primitives)
# with `cib-bench generate`, checks it (crm_verify; our rules and the XSLT
# anchor rewrite it alike), then, each pair of commands run in turns by
# `cib-bench paired` (--rounds N, default 20; the median of the per-round
# ratios, which drift of the machine's speed does not bias):
#   a. CIB_file=cib.xml cib-publisher scope --ticket geo > s.xml &&
#      cib-subscriber transform --from s.xml --rules rules.toml
#      vs  xsltproc equivalent.xsl cib.xml (the same rewrite, whole CIB)
#   b. cib-subscriber transform --from scope.xml --xslt equivalent.xsl
#      vs  xsltproc equivalent.xsl scope-config.xml
#   with the peak RSS of each one-shot command (/usr/bin/time -f %M), and
#   the growth from 2500 to 10000 primitives (ours at both sizes in turns);
#   c. cib-bench diff (our format-2 patch) vs crm_diff, at 2500 only;
#   d. cib-bench latency --primitives 250 and 2500 (--changes N, default
#      100): change at A -> applied at B through the release daemons,
#      p50/p99, our own share, the Pacemaker tools alone;
#   e. cib-bench fanout --streams N (default 1000): one change reaching N
#      event streams, and the publisher's memory.
# --only runs some sections (e.g. --only ab). Prints the tables and a
# results table with verdicts against the targets; raw results go to DIR
# (default target/bench-results). The whole run takes 20-30 minutes on
# 2 cores. Needs: cargo, xsltproc, crm_verify, crm_diff, cibadmin,
# /usr/bin/time (GNU).
set -euo pipefail

sizes="250 2500 10000"
rounds=20
changes=100
streams=1000
only=abcde
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/target/bench-results"
keep=false
while (($#)); do
    case "$1" in
        --sizes) sizes=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --changes) changes=$2; shift 2 ;;
        --streams) streams=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --keep) keep=true; shift ;;
        -h|--help) sed -n '2,31p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ "$only" =~ ^[a-e]+$ ]] || { echo "run.sh: --only takes letters among a-e, got '$only'" >&2; exit 2; }
[[ "$sizes" =~ ^[0-9\ ]+$ ]] || { echo "run.sh: --sizes takes numbers, got '$sizes'" >&2; exit 2; }
# want X: whether section X runs.
want() { [[ "$only" == *"$1"* ]]; }

for tool in cargo xsltproc crm_verify crm_diff cibadmin /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is not installed" >&2; exit 2; }
done

cd "$root"
cargo build --release --locked -p cib-publisher -p cib-subscriber -p cib-bench
bin="${CARGO_TARGET_DIR:-$root/target}/release"
export PATH="$bin:$PATH"
mkdir -p "$out"
out=$(cd "$out" && pwd)
# One line per measured figure: section, size, fields (see `row` below).
results="$out/results.tsv"
: > "$results"

work=$(mktemp -d "${TMPDIR:-/tmp}/cib-bench.XXXXXX")
if $keep; then
    echo "run.sh: generated files kept in $work"
else
    trap 'rm -rf "$work"' EXIT
fi

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores"
    echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "os: $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), kernel $(uname -r)"
    echo "tools: $(xsltproc --version | head -1); $(crm_diff --version | head -1); $(rustc --version)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/machine.txt"
cat "$out/machine.txt"

# row FIELDS...: one line of results.tsv.
row() { (IFS=$'\t'; echo "$*") >> "$results"; }

# median CSV COL: median of column COL (2 ours, 3 anchor; ms) of a
# `cib-bench paired` CSV.
median() {
    tail -n +2 "$1" | cut -d, -f"$2" | sort -g | awk '{v[NR] = $1} END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# paired NAME ROUNDS OURS ANCHOR [--shell]: the two commands in turns;
# prints the table and records "NAME ours_ms anchor_ms ratio".
paired() {
    local name=$1 n=$2 ours=$3 anchor=$4
    shift 4
    echo "== $name"
    cib-bench paired --rounds "$n" "$@" --csv "$out/$name.csv" "$ours" "$anchor" | tee "$out/$name.md"
    echo
}

# ratio NAME: median of the per-round ratios anchor/ours of paired NAME.
ratio() { grep -o 'ratio anchor/ours: median [0-9.]*' "$out/$1.md" | awk '{print $NF}'; }

# rss FILE COMMAND...: peak RSS (KiB) of COMMAND (and of any child it
# waits for), its output discarded.
rss() {
    local file=$1
    shift
    if /usr/bin/time -f %M -o "$file" "$@" > /dev/null 2>&1; then
        tail -1 "$file"
    else
        echo "run.sh: $* failed" >&2
        echo failed
    fi
}

# Our commands in a and b, run in the directory of one size.
ours_a='CIB_file=cib.xml cib-publisher scope --ticket geo > s.xml && cib-subscriber transform --from s.xml --rules rules.toml'
ours_b='cib-subscriber transform --from scope.xml --xslt equivalent.xsl'
for n in $sizes; do
    want a || want b || { want c && [[ $n == 2500 ]]; } || continue
    dir="$work/$n"
    echo "== generating $n primitives into $dir"
    if ! cib-bench generate --dir "$dir" --primitives "$n" > "$out/generate-$n.txt" 2>&1; then
        # Our parser or scope refused the CIB: nothing of ours can be timed.
        cat "$out/generate-$n.txt"
        row refused "$n" "our parser: $(sed -n '/^Caused by/{n;s/.*: //p;q;}' "$out/generate-$n.txt")"
        continue
    fi
    cat "$out/generate-$n.txt"
    cd "$dir"
    crm_verify -x cib.xml
    crm_verify -x cib-b.xml
    # Our rules and the stylesheet rewrite the scope alike (same digest),
    # and our scope and xsltproc on the whole CIB agree on sample values.
    CIB_file=cib.xml cib-publisher scope --ticket geo > s.xml 2> /dev/null
    cmp -s s.xml scope.xml || { echo "run.sh: cib-publisher scope differs from cib-bench generate's scope.xml" >&2; exit 1; }
    cib-subscriber transform --from s.xml --rules rules.toml > via-rules.xml 2> /dev/null
    cib-subscriber transform --from s.xml --xslt equivalent.xsl > via-xslt.xml 2> /dev/null
    digest() { grep -o 'replicator-transformed-digest="[^"]*"' "$1" | head -1; }
    [[ -n "$(digest via-rules.xml)" && "$(digest via-rules.xml)" == "$(digest via-xslt.xml)" ]] ||
        { echo "run.sh: --rules and --xslt disagree: $(digest via-rules.xml) vs $(digest via-xslt.xml)" >&2; exit 1; }
    xsltproc equivalent.xsl cib.xml > xslt-whole.xml
    grep -o '<nvpair [^>]*>' via-rules.xml | sort > ours.txt
    grep -o '<nvpair [^>]*>' xslt-whole.xml | sort > anchor.txt
    missing=$(comm -23 ours.txt anchor.txt | wc -l)
    [[ $missing == 0 && -s ours.txt ]] ||
        { echo "run.sh: $missing nvpairs of our output are not in xsltproc's on the whole CIB" >&2; exit 1; }
    echo "checked: crm_verify passes; rules and XSLT give digest $(digest via-rules.xml); our $(wc -l < ours.txt) nvpairs are in xsltproc's output"
    cib=$(stat -c %s cib.xml)
    scope=$(stat -c %s scope.xml)

    if want a; then
        paired "a-$n" "$rounds" "$ours_a" 'xsltproc equivalent.xsl cib.xml' --shell
        row a "$n" "$(median "$out/a-$n.csv" 2)" "$(median "$out/a-$n.csv" 3)" "$(ratio "a-$n")"
        row rss "$n" "cib-publisher scope" "$cib" "$(CIB_file=cib.xml rss "$out/rss.tmp" cib-publisher scope --ticket geo)"
        row rss "$n" "cib-subscriber transform --rules" "$scope" "$(rss "$out/rss.tmp" cib-subscriber transform --from s.xml --rules rules.toml)"
        row rss "$n" "xsltproc (whole CIB)" "$cib" "$(rss "$out/rss.tmp" xsltproc equivalent.xsl cib.xml)"
    fi
    if want b; then
        paired "b-$n" "$rounds" "$ours_b" 'xsltproc equivalent.xsl scope-config.xml'
        row b "$n" "$(median "$out/b-$n.csv" 2)" "$(median "$out/b-$n.csv" 3)" "$(ratio "b-$n")"
        row rss "$n" "cib-subscriber transform --xslt" "$scope" "$(rss "$out/rss.tmp" cib-subscriber transform --from scope.xml --xslt equivalent.xsl)"
        row rss "$n" "xsltproc (scope)" "$scope" "$(rss "$out/rss.tmp" xsltproc equivalent.xsl scope-config.xml)"
    fi
    if want c && [[ $n == 2500 ]]; then
        # crm_diff exits 1 when the files differ.
        paired "c-$n" 5 \
            'cib-bench diff cib.xml cib-b.xml' \
            'crm_diff -o cib.xml -n cib-b.xml; test $? -le 1' --shell
        row c "$n" "$(median "$out/c-$n.csv" 2)" "$(median "$out/c-$n.csv" 3)" "$(ratio "c-$n")"
    fi
    rm -f "$out/rss.tmp"
    cd "$root"
done

# Growth: ours at 10,000 primitives and at 2,500 in turns, so that the
# machine's drift between the sizes' sections does not count.
for x in a b; do
    if want $x && [[ -f "$work/2500/scope.xml" && -f "$work/10000/scope.xml" ]]; then
        ours="ours_$x"
        paired "growth-$x" "$rounds" "cd '$work/10000' && ${!ours}" "cd '$work/2500' && ${!ours}" --shell
        row growth "$x" "$(ratio "growth-$x")"
    fi
done

# Sections d and e: the release daemons on loopback. Each subcommand makes
# its own CIBs, certificates and configurations, starts and stops the
# daemons and prints its tables.
if want d; then
    for n in 250 2500; do
        echo "== d. change at A -> applied at B, $n primitives ($changes changes)"
        cib-bench latency --primitives "$n" --changes "$changes" --csv "$out/d-$n.csv" | tee "$out/d-$n.md"
        # p50 WORDS COL: column COL of the first row of the tables that starts with WORDS.
        p50() { awk -F' *[|] *' -v w="$1" -v c="$2" 'index($2, w) == 1 {print $c; exit}' "$out/d-$n.md"; }
        tools=$(awk -v m="$(p50 "\`cibadmin --modify\` at A alone" 3)" -v v="$(p50 "\`crm_verify" 4)" \
            -v p="$(p50 "\`cibadmin --patch\`" 4)" 'BEGIN {printf "%.1f", m + v + p}')
        own=$(grep -o 'p50 [0-9.]* ms, p99 [0-9.]* ms; [0-9.]* %' "$out/d-$n.md" | awk '{print $2, $7}')
        row d "$n" "$(p50 'change at A' 3)" "$(awk -F' *[|] *' 'index($2, "change at A") == 1 {print $4; exit}' "$out/d-$n.md")" \
            "${own% *}" "${own#* }" "$tools"
    done
fi
if want e; then
    echo "== e. publisher fan-out ($streams streams)"
    cib-bench fanout --streams "$streams" --csv "$out/e-fanout.csv" | tee "$out/e-fanout.md"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"

# The results table and the verdicts.
awk -F'\t' '
function verdict(ok) { return ok ? "met" : "NOT met" }
function speed(r) { return r >= 1 ? sprintf("%.2fx faster", r) : sprintf("%.2fx slower", 1 / r) }
$1 == "a" { printf "| a. scope + rules vs xsltproc, %s primitives | %.0f ms | %.0f ms | %s | %s |\n",
    $2, $3, $4, speed($5), ($2 + 0 >= 2500 ? "≥ 2.5x: " verdict($5 >= 2.5) : "(reported)") }
$1 == "b" { printf "| b. transform --xslt vs xsltproc, %s primitives | %.0f ms | %.0f ms | %.2fx its time | ≤ 1.3x: %s |\n",
    $2, $3, $4, 1 / $5, verdict(1 / $5 <= 1.3) }
$1 == "c" { printf "| c. diff vs crm_diff, %s primitives | %.0f ms | %.0f ms | %s | (reported) |\n", $2, $3, $4, speed($5) }
$1 == "rss" && $5 == "failed" { printf "| peak RSS, %s, %s primitives | failed | | | NOT met |\n", $3, $2; next }
$1 == "rss" { lim = 4 * $4 + 30e6; rss = $5 * 1024
    printf "| peak RSS, %s, %s primitives (document %.1f MB) | %.1f MB | | | %s |\n", $3, $2, $4 / 1e6, rss / 1e6,
    ($3 ~ /^xsltproc/ ? "(anchor)" : $3 ~ /--xslt/ ? "(the larger of ours and xsltproc)" : \
     "≤ " sprintf("%.1f", lim / 1e6) " MB: " verdict(rss <= lim)) }
$1 == "growth" { printf "| growth of %s, 10000 vs 2500 primitives (in turns) | %.2fx the time | | | ≤ 5x: %s |\n", $2, 1 / $3, verdict(1 / $3 <= 5) }
$1 == "refused" { refused[$2] = 1; printf "| %s primitives | refused | | %s | NOT met |\n", $2, $3 }
$1 == "d" { printf "| d. change at A → applied at B, %s primitives: p50 / p99 | %s / %s ms | tools alone %s ms | our share p50 %s ms = %s %% | ≤ 10 %%: %s |\n",
    $2, $3, $4, $7, $5, $6, verdict($6 <= 10) }
END {
    if (10000 in refused) printf "| growth, 10000 vs 2500 | not measured | | 10000 refused | NOT met |\n"
}' "$results" > "$out/verdicts.md"
{
    echo
    echo "| measure | ours | anchor | result | target |"
    echo "|---|---:|---:|---:|---|"
    cat "$out/verdicts.md"
} | tee "$out/table.md"
echo
echo "results in $out"
