# seedtar-prep.sh BASE DIR OWNER: a fresh directory DIR under BASE for this
# run's tar session. Sessions of killed runs are told to stop their
# backups first (their done file), given a moment, then removed.
set -e
base=$1
mkdir -p "$base"
left=0
for d in "$base"/*/; do
  [ -d "$d" ] || continue
  touch "$d/done"
  left=1
done
if [ "$left" = 1 ]; then sleep 3; fi
find "$base" -mindepth 1 -delete
mkdir -m 0700 "$2"
chown "$3" "$2"
