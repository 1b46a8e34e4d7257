#!/usr/bin/env bash
# `make demo`: the main job on the local lab, after `make lab-up` — validate,
# plan, apply, verify, status, and a last plan that must be empty. Each step
# is the real command an operator runs. LAB_INSTANCE=NAME runs it against
# that lab instance instead of the default one.
set -euo pipefail
cd "$(dirname "$0")/../.."
state=examples/lab/.state${LAB_INSTANCE:+-$LAB_INSTANCE}
inv=$state/pgwarm.yaml
[ -n "${LAB_INSTANCE:-}" ] || inv=examples/lab/pgwarm.yaml
export PGWARM_REPLICATION_PASSWORD=${PGWARM_REPLICATION_PASSWORD:-$(cat "$state/replication_password")}
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' off=$'\033[0m'; else bold='' off=''; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$off"; }
run() { step "$*"; "$@"; }

run bin/pgwarm validate -i "$inv"
# Exit 2 means "changes pending" (a fresh lab); 1 is an error.
step "bin/pgwarm plan -i $inv --detailed-exitcode"
rc=0; bin/pgwarm plan -i "$inv" --detailed-exitcode || rc=$?
[ "$rc" -ne 1 ] || exit 1
run bin/pgwarm apply -i "$inv" --auto-approve
# The seed's missing piece: proof that a write on the primary reaches the standby.
run bin/pgwarm verify -i "$inv"
run bin/pgwarm status -i "$inv"
step "bin/pgwarm plan -i $inv --detailed-exitcode   # nothing left to do"
bin/pgwarm plan -i "$inv" --detailed-exitcode
