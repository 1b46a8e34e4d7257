#!/usr/bin/env bash
# Times `pgwarm plan` against the lab pair: N runs, median and p90 wall
# time per plan (one plan covers the pair and the archive host), the
# machine's load beside them, and per host the time to connect and probe
# and the SSH commands that took. Run by `make bench-plan` after
# `make build lab-up`. Usage: bench/plan/run.sh [N] (default 10).
#   LAB_INSTANCE=NAME    measure that lab instance (examples/lab/.state-NAME)
#                        instead of the default lab
#   PGWARM_BIN=FILE      the pgwarm to time (default bin/pgwarm)
#   PLAN_BASELINE=FILE   also time this pgwarm (an older build, say), runs
#                        interleaved with PGWARM_BIN's so that both see the
#                        same load; its helper (pgwarm-wal next to it)
#                        should match the hosts' too, or it plans changes
#
# Figures measured on this machine, with their load: README.md here.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-10}
bin=${PGWARM_BIN:-$root/bin/pgwarm}
base=${PLAN_BASELINE:-}
state=$root/examples/lab/.state${LAB_INSTANCE:+-$LAB_INSTANCE}
[ -x "$bin" ] || { echo "bench-plan: $bin missing; run make build" >&2; exit 1; }
[ -z "$base" ] || [ -x "$base" ] || { echo "bench-plan: baseline $base is not executable" >&2; exit 1; }
[ -f "$state/lab.env" ] || { echo "bench-plan: no lab at $state; run make lab-up (or LAB_INSTANCE=NAME bash examples/lab/lab.sh up)" >&2; exit 1; }
inv=$(sed -n 's/^LAB_INVENTORY=//p' "$state/lab.env")
inv=${inv:-$root/examples/lab/pgwarm.yaml}
if [ -f "$state/replication_password" ]; then
  PGWARM_REPLICATION_PASSWORD=$(cat "$state/replication_password")
  export PGWARM_REPLICATION_PASSWORD
fi
export NO_COLOR=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rc=0
"$bin" plan -i "$inv" --detailed-exitcode >"$tmp/plan.txt" 2>"$tmp/err" || rc=$?
case $rc in
  0) kind="no-op plan (the lab is applied)" ;;
  2) kind="plan WITH pending changes ($(tail -n 1 "$tmp/plan.txt")) — the lab is not applied yet (or by another build), so there is no no-op plan; this measures the plan as it is" ;;
  *) echo "bench-plan: pgwarm plan failed (exit $rc):" >&2; cat "$tmp/err" >&2; exit 1 ;;
esac

load() { cut -d ' ' -f 1 /proc/loadavg; }
load0=$(load)
for i in $(seq "$n"); do
  s=$(date +%s%N)
  "$bin" plan -i "$inv" --stats >/dev/null 2>"$tmp/stats.$i" || [ $? -eq 2 ]
  e=$(date +%s%N)
  echo $(( (e - s) / 1000000 )) >>"$tmp/ms"
  if [ -n "$base" ]; then
    s=$(date +%s%N)
    "$base" plan -i "$inv" >/dev/null 2>&1 || [ $? -eq 2 ]
    e=$(date +%s%N)
    echo $(( (e - s) / 1000000 )) >>"$tmp/base.ms"
  fi
done
load1=$(load)

# pick FILE P: percentile P of the samples in FILE (nearest rank).
pick() {
  local k
  k=$(( ($2 * n + 99) / 100 )); [ "$k" -lt 1 ] && k=1
  sort -n "$1" | sed -n "${k}p"
}
row() { printf '%-34s %7s %7s %15s\n' "$1" "$(pick "$2" 50)" "$(pick "$2" 90)" "$(sort -n "$2" | head -n 1) / $(sort -n "$2" | tail -n 1)"; }

echo "pgwarm plan against the lab ($inv)"
echo "what: $kind"
echo "runs: $n each, machine load (1 min): $load0 before, $load1 after, on $(nproc) CPUs"
echo
printf '%-34s %7s %7s %15s\n' "wall time per plan, ms" median p90 "min / max"
row "$bin" "$tmp/ms"
[ -z "$base" ] || row "$base (baseline)" "$tmp/base.ms"
echo
printf '%-8s %16s %18s\n' host "SSH commands" "connect+probe (med)"
# Go durations as --stats prints them ("704ms", "1.09s") in ms, median.
med() { awk -v h="$1" '$1 == "stats:" && $2 == h { v = $4; if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } print int(v) }' "$tmp"/stats.* |
  sort -n | sed -n "$(( (n + 1) / 2 ))p"; }
for h in $(awk '$1 == "stats:" && $3 == "connect+probe" {print $2}' "$tmp/stats.1"); do
  cmds=$(awk -v h="$h" '$2 == h {print $6}' "$tmp"/stats.* | sort -u | paste -sd/)
  printf '%-8s %16s %15s ms\n' "$h" "$cmds" "$(med "$h")"
done
echo
echo "per host: one SSH connection (TCP, handshake, auth) whose first command is the probe; under become: sudo its own sudo is the sudo check."
echo "target: a no-op plan under 1000 ms per host pair; median here: $(pick "$tmp/ms" 50) ms"
