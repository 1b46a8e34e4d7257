#!/usr/bin/env bash
# Times `pgwarm plan` against the lab pair: N runs, median and p90 wall
# time per plan (one plan covers the pair and the archive host), and the
# SSH commands each host's probe needed. Run by `make bench-plan` after
# `make build lab-up`. Usage: bench/plan/run.sh [N] (default 10).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-10}
bin=$root/bin/pgwarm
state=$root/examples/lab/.state
[ -x "$bin" ] || { echo "bench-plan: $bin missing; run make build" >&2; exit 1; }
[ -f "$state/lab.env" ] || { echo "bench-plan: no lab; run make lab-up" >&2; exit 1; }
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
  2) kind="plan WITH pending changes ($(tail -n 1 "$tmp/plan.txt")) — the lab is not applied yet, so there is no no-op plan; this measures the plan as it is" ;;
  *) echo "bench-plan: pgwarm plan failed (exit $rc):" >&2; cat "$tmp/err" >&2; exit 1 ;;
esac

for i in $(seq "$n"); do
  s=$(date +%s%N)
  "$bin" plan -i "$inv" --stats >/dev/null 2>"$tmp/stats.$i" || [ $? -eq 2 ]
  e=$(date +%s%N)
  echo $(( (e - s) / 1000000 )) >>"$tmp/ms"
done

sort -n "$tmp/ms" >"$tmp/sorted"
pick() { # percentile p of the sorted samples (nearest rank)
  local p=$1 k
  k=$(( (p * n + 99) / 100 )); [ "$k" -lt 1 ] && k=1
  sed -n "${k}p" "$tmp/sorted"
}
median=$(pick 50); p90=$(pick 90); min=$(head -n 1 "$tmp/sorted"); max=$(tail -n 1 "$tmp/sorted")

echo "pgwarm plan against the lab ($inv)"
echo "what: $kind"
echo "runs: $n, machine load: $(cut -d ' ' -f 1-3 /proc/loadavg) on $(nproc) CPUs"
echo
printf '%-28s %10s\n' "wall time per plan" "ms"
printf '%-28s %10s\n' "median" "$median"
printf '%-28s %10s\n' "p90" "$p90"
printf '%-28s %10s\n' "min / max" "$min / $max"
echo
printf '%-8s %16s %16s %14s\n' host "probe commands" "connect (med)" "probe (med)"
# Go durations as --stats prints them ("704ms", "1.09s") in ms, median.
med() { awk -v h="$1" -v col="$2" '$2 == h { v = $col; if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } print int(v) }' "$tmp"/stats.* |
  sort -n | sed -n "$(( (n + 1) / 2 ))p"; }
for h in $(awk '$2 != "total" {print $2}' "$tmp/stats.1"); do
  cmds=$(awk -v h="$h" '$2 == h {print $8}' "$tmp"/stats.* | sort -u | paste -sd/)
  printf '%-8s %16s %13s ms %11s ms\n' "$h" "$cmds" "$(med "$h" 4)" "$(med "$h" 6)"
done
echo
echo "SSH round trips per host: connect (TCP + SSH handshake + one 'sudo -n true' check) + the probe commands above."
echo "target: a no-op plan under 1000 ms per host pair; median here: $median ms"
