# seed-prep.sh PIDFILE STATEDIR MARKER DATADIR OWNER: before a seed, stop a
# base backup a killed run left behind (its process group), then empty the
# data directory behind the marker, so that a rerun knows the copy there
# is partial until the seed removes the marker.
set -e
pidf=$1
if [ -s "$pidf" ]; then
  p=$(cat "$pidf")
  kill -TERM -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true
  i=0
  while kill -0 -- "-$p" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
  rm -f "$pidf"
fi
mkdir -p "$2"
touch "$3"
mkdir -p "$4"
find "$4" -mindepth 1 -delete
chown "$5" "$4"
chmod 0700 "$4"
