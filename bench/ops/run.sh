#!/usr/bin/env bash
# make bench-ops: on its own fresh lab instance (bench), apply the lab's hot
# pair with `pgwarm apply --auto-approve`, then measure replay delay
# (pgwarm's restore retry against PostgreSQL's default 5s), promote with the
# old primary killed, and rebuild by rewind against a base backup. One table.
# Other labs (the default one, ops, apply, plan) are left alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
export LAB_INSTANCE=bench
state=examples/lab/.state-bench
[ -x bin/pgwarm ] || CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/...
bash examples/lab/lab.sh reset
start=$(date +%s)
PGWARM_REPLICATION_PASSWORD=$(cat "$state/replication_password") \
  bin/pgwarm apply -i "$state/pgwarm.yaml" --auto-approve > "$state/apply.log" 2>&1 \
  || { tail -30 "$state/apply.log" >&2; echo "bench-ops: apply failed" >&2; exit 1; }
echo "bench-ops: pair applied in $(( $(date +%s) - start ))s" >&2
go run ./bench/ops -state "$state" -bin "$PWD/bin/pgwarm" "$@"
echo "($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
