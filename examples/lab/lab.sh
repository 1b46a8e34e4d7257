#!/usr/bin/env bash
# The pgwarm lab: three real hosts (pg1 primary, pg2 future standby, arch
# archive) in containers on a private Docker network, each with sshd, a
# non-root sudo user, cron and the same PostgreSQL major.
#
#   lab.sh up      build (once) and start the lab; writes .state/ and pgwarm.yaml
#   lab.sh down    remove the containers and the network (images are kept)
#   lab.sh status  show the containers
#   lab.sh images  build the images only
#   lab.sh reset   down + up: fresh hosts from the same image (seconds)
#
# LAB_NAMESPACE=NS (default pgwarm) prefixes every image, network and
# container name, so a second checkout (a CI dry run, say) can build and run
# its own labs beside this one's.
# LAB_INSTANCE=NAME runs a second, independent lab (its own network, subnet,
# containers and .state-NAME/), so tests that change hosts can have their own.
#
# LAB_SUITE=bullseye|bookworm|trixie picks the Debian suite and so the
# PostgreSQL major (13, 15, 17). No registry is reachable here, so the base
# image is made with debootstrap from Debian's packages and `docker import`ed,
# unless the engine already has debian:<suite>.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=${LAB_SUITE:-bookworm}
mirror=${LAB_MIRROR:-http://deb.debian.org/debian}
instance=${LAB_INSTANCE:-}
sfx=${instance:+-$instance}
state=$here/.state$sfx
ns=${LAB_NAMESPACE:-pgwarm}
net=$ns-lab$sfx
# Each instance gets its own /24 in 172.31.231-254; the first free one from
# a start derived from the name (network() tries the next on a clash).
if [ -z "$instance" ]; then octet=231; else octet=$(( 232 + $(printf %s "$instance" | cksum | cut -d' ' -f1) % 22 )); fi
subnet=${LAB_SUBNET:-172.31.$octet.0/24}
image=$ns-lab:$suite
base=$ns-base:$suite
declare -A addr=()
declare -A role=([pg1]=primary [pg2]=standby [arch]=archive)
hosts=(pg1 pg2 arch)

say() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

case $suite in
  bullseye) pgver=13 ;; bookworm) pgver=15 ;; trixie) pgver=17 ;;
  *) die "LAB_SUITE=$suite: use bullseye, bookworm or trixie" ;;
esac

need() { command -v "$1" >/dev/null || die "$1 not found: $2"; }

# want CMD PACKAGE: on a fresh Debian machine, as root, install what the lab
# needs from Debian's packages instead of stopping (make demo must just work).
want() {
  command -v "$1" >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing $2 (apt-get) for $1"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2"; } >/dev/null \
      || die "apt-get install $2 failed"
  fi
  need "$1" "apt-get install $2"
}

base_image() {
  if docker image inspect "debian:$suite" >/dev/null 2>&1; then
    echo "debian:$suite"; return
  fi
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    want debootstrap debootstrap
    local root
    root=$(mktemp -d /tmp/pgwarm-debootstrap.XXXXXX)
    say "building $base with debootstrap from $mirror (a few minutes, once)"
    debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
      || { tail -20 "$root.log" >&2; rm -rf "$root"; die "debootstrap $suite failed (log above)"; }
    echo "deb $mirror $suite main" > "$root/etc/apt/sources.list"
    # (a failure inside $(base_image) would not stop the script: check it)
    if ! tar -C "$root" -c . | docker import - "$base" >/dev/null; then
      rm -rf "$root" "$root.log"; die "docker import of $base failed"
    fi
    rm -rf "$root" "$root.log"
  fi
  echo "$base"
}

images() {
  need docker "install Docker"
  # Rebuild only when the Dockerfile or its files changed: a label holds their hash.
  local sum from
  sum=$(cat "$here/Dockerfile" "$here/entrypoint.sh" "$here/sshd_config" | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{index .Config.Labels "pgwarm.lab.sum"}}' "$image" 2>/dev/null)" = "$sum" ]; then
    return
  fi
  from=$(base_image) || exit 1
  docker image inspect "$from" >/dev/null 2>&1 || die "base image $from missing"
  say "building $image from $from"
  docker build -q --build-arg "BASE=$from" --label "pgwarm.lab.sum=$sum" -t "$image" "$here" >/dev/null
}

secrets() {
  want ssh-keygen openssh-client
  want ssh openssh-client
  mkdir -p "$state"; chmod 0700 "$state"
  [ -f "$state/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C pgwarm-lab -f "$state/id_ed25519"
  [ -f "$state/pg_password" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$state/pg_password"; }
  [ -f "$state/replication_password" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$state/replication_password"; }
  mkdir -p "$state/share"
  cp "$state/id_ed25519.pub" "$state/share/authorized_keys"
  cp "$state/pg_password" "$state/share/pg_password"
}

running() { [ "$(docker inspect -f '{{.State.Running}}' "$ns-lab$sfx-$1" 2>/dev/null)" = true ]; }

# PostgreSQL's data lives on a volume, not in the container's overlay: on
# this engine's fuse-overlayfs a directory that came with the image and was
# removed (pg2's data directory, or an old primary being reseeded) shows its
# image files again when it is re-created, and pg_basebackup then fails with
# "File exists". A volume behaves like a real disk.
start_host() {
  local h=$1 c=$ns-lab$sfx-$1 owner
  # A container is reused only when it is this checkout's (same state
  # directory, so same key and password) and runs the current image. Any other
  # (another clone's lab under the same name, a machine restored with old
  # containers and a new key, an image rebuilt since) is replaced: lab hosts are disposable,
  # and a stale one only fails later as "did not answer on ssh".
  owner="$(cat "$state/id_ed25519.pub" "$state/pg_password" | sha256sum | cut -c1-16)@$state@$(docker image inspect -f '{{.Id}}' "$image")"
  if docker inspect "$c" >/dev/null 2>&1; then
    if [ "$(docker inspect -f '{{index .Config.Labels "pgwarm.lab.owner"}}' "$c")" = "$owner" ]; then
      running "$h" || docker start "$c" >/dev/null
      return
    fi
    say "replacing $c (made by another checkout or from an older image)"
    docker rm -fv "$c" >/dev/null
  fi
  local hostsargs=()
  for o in "${hosts[@]}"; do [ "$o" = "$h" ] || hostsargs+=(--add-host "$o:${addr[$o]}"); done
  docker run -d --name "$c" --hostname "$h" --network "$net" --ip "${addr[$h]}" \
    "${hostsargs[@]}" -e "LAB_ROLE=${role[$h]}" \
    --label pgwarm.lab=1 --label "pgwarm.lab.instance=$ns${instance:+-$instance}" --label "pgwarm.lab.owner=$owner" \
    -v "$state/share:/lab:ro" \
    --mount type=volume,dst=/var/lib/postgresql \
    --cap-add NET_ADMIN --shm-size 256m "$image" >/dev/null
}

wait_ssh() {
  local h=$1
  for _ in $(seq 1 100); do
    if ssh -q -i "$state/id_ed25519" -o BatchMode=yes -o UserKnownHostsFile="$state/known_hosts" \
        -o StrictHostKeyChecking=yes -o ConnectTimeout=2 "root@${addr[$h]}" true 2>/dev/null; then
      return 0
    fi
    sleep 0.3
  done
  docker logs "$ns-lab$sfx-$h" 2>&1 | tail -20 >&2
  die "$h (${addr[$h]}) did not answer on ssh"
}

# wait_primary: pg1's cluster accepts connections (a test's first psql or
# pgbench must not meet "the database system is starting up").
wait_primary() {
  for _ in $(seq 1 300); do
    docker exec -u postgres "$ns-lab$sfx-pg1" pg_isready -q 2>/dev/null && return 0
    sleep 0.2
  done
  docker exec "$ns-lab$sfx-pg1" tail -20 "/var/log/postgresql/postgresql-$pgver-main.log" >&2 || true
  die "pg1's PostgreSQL $pgver did not accept connections within a minute"
}

known_hosts() {
  # Host keys are read through docker exec, a channel we already trust,
  # instead of trust-on-first-use scanning.
  local h k
  : > "$state/known_hosts.new"
  for h in "${hosts[@]}"; do
    for _ in $(seq 1 50); do
      k=$(docker exec "$ns-lab$sfx-$h" cat /etc/ssh/ssh_host_ed25519_key.pub 2>/dev/null) && break
      sleep 0.2
    done
    [ -n "$k" ] || die "$h: no ssh host key"
    echo "${addr[$h]} $(echo "$k" | cut -d' ' -f1-2)" >> "$state/known_hosts.new"
  done
  mv "$state/known_hosts.new" "$state/known_hosts"
}

write_env() {
  cat > "$state/lab.env" <<ENV
# written by examples/lab/lab.sh up; read by internal/labtest
LAB_SUITE=$suite
LAB_PG_VERSION=$pgver
LAB_KEY=$state/id_ed25519
LAB_KNOWN_HOSTS=$state/known_hosts
LAB_USER=pgwarm
LAB_NOSUDO_USER=nosudo
LAB_SSH_PORT=22
LAB_PG_USER=pgwarm_lab
LAB_PG_PASSWORD=$(cat "$state/pg_password")
LAB_PG1_ADDR=${addr[pg1]}
LAB_PG2_ADDR=${addr[pg2]}
LAB_ARCH_ADDR=${addr[arch]}
LAB_PG1_CONTAINER=$ns-lab$sfx-pg1
LAB_PG2_CONTAINER=$ns-lab$sfx-pg2
LAB_ARCH_CONTAINER=$ns-lab$sfx-arch
LAB_INVENTORY=$state/pgwarm.yaml
LAB_INSTANCE=$instance
ENV
  inventory "$state/pgwarm.yaml" .
  # The default lab's inventory also sits where the README points.
  [ -n "$instance" ] || inventory "$here/pgwarm.yaml" ".state"
}

# inventory FILE DIR: the lab inventory, key paths relative to FILE (DIR).
inventory() {
  sed -e "s/@VERSION@/$pgver/" -e "s/@PG1@/${addr[pg1]}/" -e "s/@PG2@/${addr[pg2]}/" \
      -e "s/@ARCH@/${addr[arch]}/" -e "s/@SUITE@/$suite/" -e "s|@STATE@|$2|" "$here/pgwarm.yaml.in" > "$1"
}

# network creates the instance's network on a free /24 (unless it exists)
# and sets the hosts' addresses from its subnet.
network() {
  if ! docker network inspect "$net" >/dev/null 2>&1; then
    for _ in $(seq 0 23); do
      if docker network create --subnet "$subnet" --label pgwarm.lab=1 \
          --label "pgwarm.lab.instance=$ns${instance:+-$instance}" "$net" >/dev/null 2>"$state/network.err"; then
        break
      fi
      # Only an overlap is worth another subnet; LAB_SUBNET is taken as given.
      if [ -n "${LAB_SUBNET:-}" ] || ! grep -qi overlap "$state/network.err"; then
        die "could not create network $net ($subnet): $(cat "$state/network.err"); set LAB_SUBNET to a free /24"
      fi
      octet=$(( 231 + (octet - 231 + 1) % 24 )); subnet=172.31.$octet.0/24
    done
  fi
  subnet=$(docker network inspect -f '{{(index .IPAM.Config 0).Subnet}}' "$net")
  local prefix=${subnet%.*}
  addr=([pg1]=$prefix.11 [pg2]=$prefix.12 [arch]=$prefix.13)
}

up() {
  images
  secrets
  network
  for h in "${hosts[@]}"; do start_host "$h"; done
  known_hosts
  for h in "${hosts[@]}"; do wait_ssh "$h"; done
  wait_primary
  write_env
  say "up: pg1 ${addr[pg1]}, pg2 ${addr[pg2]}, arch ${addr[arch]} (Debian $suite, PostgreSQL $pgver)"
  say "inventory: ${state#$PWD/}/pgwarm.yaml; replication password: export PGWARM_REPLICATION_PASSWORD=\$(cat ${state#$PWD/}/replication_password)"
}

down() {
  local h
  # -v: the anonymous data volume goes with its container.
  for h in "${hosts[@]}"; do docker rm -fv "$ns-lab$sfx-$h" >/dev/null 2>&1 || true; done
  docker network rm "$net" >/dev/null 2>&1 || true
  rm -f "$state/lab.env" "$state/known_hosts" "$state/pgwarm.yaml"
  [ -n "$instance" ] || rm -f "$here/pgwarm.yaml"
  say "down"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  images) images ;;
  reset) down; up ;;
  status) docker ps -a --filter "label=pgwarm.lab.instance=$ns${instance:+-$instance}" --format 'table {{.Names}}\t{{.Status}}\t{{.Image}}' ;;
  *) echo "usage: $0 up|down|status|images" >&2; exit 2 ;;
esac
