#!/usr/bin/env bash
# make bench-wal: real PostgreSQL WAL (pgbench + forced idle switches),
# shipped one process per segment by each archiver. Needs root (PostgreSQL
# runs as the postgres user), PostgreSQL, rsync and pgbackrest.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x bin/pgwarm-wal ] || CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/pgwarm-wal
exec go run ./bench/wal -bin "$PWD/bin/pgwarm-wal" "$@"
