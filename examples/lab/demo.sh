#!/usr/bin/env bash
# `make demo`: the main job on the local lab — plan, apply, verify, status —
# after `make lab-up`. Each step is the real command an operator runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
inv=examples/lab/pgwarm.yaml
export PGWARM_REPLICATION_PASSWORD=${PGWARM_REPLICATION_PASSWORD:-$(cat examples/lab/.state/replication_password)}
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; }

run bin/pgwarm validate -i "$inv"
step "bin/pgwarm plan -i $inv --detailed-exitcode"
rc=0; bin/pgwarm plan -i "$inv" --detailed-exitcode || rc=$?
[ "$rc" -ne 1 ] || exit 1
