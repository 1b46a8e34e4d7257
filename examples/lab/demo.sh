#!/usr/bin/env bash
# `make demo`: the main job on the local lab — validate, plan, apply, verify,
# status — after `make lab-up`. Each step is the real command an operator
# runs. LAB_INSTANCE=NAME runs it against that lab instance instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
state=examples/lab/.state${LAB_INSTANCE:+-$LAB_INSTANCE}
inv=$state/pgwarm.yaml
[ -n "${LAB_INSTANCE:-}" ] || inv=examples/lab/pgwarm.yaml
export PGWARM_REPLICATION_PASSWORD=${PGWARM_REPLICATION_PASSWORD:-$(cat "$state/replication_password")}
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; }

run bin/pgwarm validate -i "$inv"
step "bin/pgwarm plan -i $inv --detailed-exitcode"
rc=0; bin/pgwarm plan -i "$inv" --detailed-exitcode || rc=$?
[ "$rc" -ne 1 ] || exit 1
run bin/pgwarm apply -i "$inv" --auto-approve

# The end-to-end proof: a row written on the primary is replayed on the standby.
. "$state/lab.env"
lab_ssh() { ssh -q -i "$LAB_KEY" -o BatchMode=yes -o UserKnownHostsFile="$LAB_KNOWN_HOSTS" -o StrictHostKeyChecking=yes "$LAB_USER@$1" "$2"; }
psql_on() { lab_ssh "$1" "cd / && sudo -n -u postgres psql -X -At -v ON_ERROR_STOP=1 -c \"$2\""; }
if bin/pgwarm verify --help >/dev/null 2>&1 && ! bin/pgwarm verify -i "$inv" 2>&1 | grep -q 'not implemented'; then
  run bin/pgwarm verify -i "$inv"
else
  step "verify: insert a row on pg1, wait until pg2 replays it"
  mode=$(sed -n 's/^ *mode: *\([a-z]*\).*/\1/p' "$inv" | head -1)
  label="demo-$(date +%s)"
  psql_on "$LAB_PG1_ADDR" "CREATE TABLE IF NOT EXISTS pgwarm_demo (label text, at timestamptz DEFAULT now())"
  psql_on "$LAB_PG1_ADDR" "INSERT INTO pgwarm_demo (label) VALUES ('$label')"
  seg=$(psql_on "$LAB_PG1_ADDR" "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
  psql_on "$LAB_PG1_ADDR" "SELECT pg_switch_wal()" >/dev/null
  ok=
  for _ in $(seq 1 240); do
    if [ "$mode" = warm ]; then
      # A warm standby answers no queries: watch its startup process move past the segment.
      cur=$(lab_ssh "$LAB_PG2_ADDR" "ps -eo args" | sed -n 's/.*startup \(recovering\|waiting for\) \([0-9A-F]\{24\}\).*/\2/p' | head -1)
      if [ -n "$cur" ] && [[ "$cur" > "$seg" ]]; then ok="pg2 replayed segment $seg (now at $cur)"; break; fi
    elif [ "$(psql_on "$LAB_PG2_ADDR" "SELECT count(*) FROM pgwarm_demo WHERE label = '$label'" 2>/dev/null)" = 1 ]; then
      ok="pg2 has the row '$label' written on pg1"; break
    fi
    sleep 0.5
  done
  [ -n "$ok" ] || { echo "verify: pg2 did not replay the row written on pg1 within 2 minutes" >&2; exit 1; }
  echo "verify: $ok"
fi
if bin/pgwarm status --help >/dev/null 2>&1 && ! bin/pgwarm status -i "$inv" 2>&1 | grep -q 'not implemented'; then
  run bin/pgwarm status -i "$inv"
fi
step "bin/pgwarm plan -i $inv --detailed-exitcode   # nothing left to do"
bin/pgwarm plan -i "$inv" --detailed-exitcode
