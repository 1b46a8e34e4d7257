# keygen.sh KEY COMMENT OWNER: make the postgres user's ssh key pair once
# and print its public half. The pair is made under a temporary name and
# renamed, public half first, so an interrupted run never leaves a private
# key without its public half for long: a rerun derives it.
set -e
k=$1
if [ ! -s "$k" ]; then
  rm -f "$k.tmp" "$k.tmp.pub"
  ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$k.tmp"
  mv "$k.tmp.pub" "$k.pub"
  mv "$k.tmp" "$k"
  echo generated >&2
fi
[ -s "$k.pub" ] || ssh-keygen -y -f "$k" > "$k.pub"
chown "$3" "$k" "$k.pub"
chmod 0600 "$k"
chmod 0644 "$k.pub"
cat "$k.pub"
