#!/usr/bin/env bash
# Runs the pcs and crm command lines of the READMEs, verbatim, offline
# against CIB files: `pcs -f CIB ...` and `CIB_file=CIB crm ...`.
#
#   tests/readme-commands.sh            # needs root, pcs and crmsh
#
# Both tools read an agent's meta-data through crm_resource, which looks for
# agents only in Pacemaker's compiled-in /usr/lib/ocf/resource.d: the script
# runs them in a private mount namespace where that directory also holds
# ocf/publisher and ocf/subscriber as cib-replicator agents (nothing is
# installed on the host).
#
# The commands are the lines of the ```sh blocks starting with `pcs ` or
# `crm ` — also as `# ` comments, the geo walkthrough's form for the crm
# alternative —, with their `\` continuations. Each README's pcs commands run
# in order on one empty CIB (fencing disabled), its crm commands on
# another; every one must succeed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
readmes=(README.md ocf/README.md examples/geo/README.md)

if [ "${1:-}" != _inside ]; then
  for tool in pcs crm cibadmin unshare; do
    command -v "$tool" >/dev/null || {
      echo "tests/readme-commands.sh: $tool not found (apt-get install pcs crmsh pacemaker-cli-utils util-linux, or run ./scripts/setup)" >&2
      exit 2
    }
  done
  [ "$(id -u)" -eq 0 ] || { echo "tests/readme-commands.sh: needs root (a mount namespace)" >&2; exit 2; }
  exec unshare --mount --propagation private "$0" _inside
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A copy of /usr/lib/ocf/resource.d (crm_resource follows no symbolic
# links out of it), plus our agents.
ra="$work/resource.d"
cp -a /usr/lib/ocf/resource.d "$ra"
mkdir -p "$ra/cib-replicator"
cp "$root/ocf/publisher" "$root/ocf/subscriber" "$ra/cib-replicator/"
mount --bind "$ra" /usr/lib/ocf/resource.d

# Prints the commands of TOOL in FILE, one per line, continuations joined.
commands() {
  awk -v tool="$2" '
    /^```/ { inblock = !inblock; next }
    !inblock { next }
    {
      line = $0
      sub(/^[ \t]*(# ?)?[ \t]*/, "", line)
      if (cont != "") { cmd = cmd " " line }
      else if (index(line, tool " ") == 1) { cmd = line }
      else { next }
      if (line ~ /\\$/) { sub(/[ \t]*\\$/, "", cmd); cont = 1; next }
      cont = ""
      gsub(/[ \t]+/, " ", cmd)
      print cmd
    }
  ' "$1"
}

failed=0
ran=0
for readme in "${readmes[@]}"; do
  for tool in pcs crm; do
    cib="$work/$(echo "$readme" | tr / _)-$tool.xml"
    # An empty CIB, without fencing (crm checks each change with
    # crm_verify, which refuses resources in a cluster without any).
    cibadmin --empty >"$cib"
    CIB_file="$cib" crm_attribute --type crm_config --name stonith-enabled --update false
    while IFS= read -r cmd; do
      [ -n "$cmd" ] || continue
      read -r -a words <<<"$cmd"
      echo "== $readme: $cmd"
      ran=$((ran + 1))
      if [ "$tool" = pcs ]; then
        out=$(pcs -f "$cib" "${words[@]:1}" 2>&1) || { echo "$out" >&2; echo "FAIL: $readme: $cmd" >&2; failed=1; }
      else
        # (crm prints crm_verify's warnings about the node-less CIB as
        # errors, yet commits; its exit status says what failed.)
        out=$(CIB_file="$cib" crm "${words[@]:1}" 2>&1 </dev/null) || { echo "$out" >&2; echo "FAIL: $readme: $cmd" >&2; failed=1; }
      fi
      # A resource the command creates must be in the CIB now.
      name=""
      case "${words[1]:-} ${words[2]:-}" in
        "resource create" | "configure primitive") name="${words[3]}" ;;
      esac
      if [ -n "$name" ] && ! CIB_file="$cib" cibadmin --query --xpath "//primitive[@id='$name']" >/dev/null 2>&1; then
        echo "FAIL: $readme: $cmd: no primitive $name in the CIB" >&2
        failed=1
      fi
    done < <(commands "$root/$readme" "$tool")
  done
done

[ "$ran" -gt 0 ] || { echo "tests/readme-commands.sh: no pcs or crm command found" >&2; exit 1; }
if [ "$failed" -ne 0 ]; then
  echo "tests/readme-commands.sh: FAILED" >&2
  exit 1
fi
echo "all $ran pcs and crm commands of the READMEs ran"
