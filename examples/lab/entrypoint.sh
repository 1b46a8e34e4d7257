#!/bin/bash
# PID 1's child in every lab container (tini reaps zombies). Starts sshd and
# cron, and PostgreSQL on the host whose role is primary. The lab has no
# systemd, like many containers: pgwarm must manage PostgreSQL with
# pg_ctlcluster there.
set -eu
role=${LAB_ROLE:?LAB_ROLE unset}
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A >/dev/null
for u in root pgwarm nosudo; do
  home=$(getent passwd "$u" | cut -d: -f6)
  install -d -m 0700 -o "$u" -g "$u" "$home/.ssh"
  install -m 0600 -o "$u" -g "$u" /lab/authorized_keys "$home/.ssh/authorized_keys"
done
ver=$(ls /etc/postgresql | sort -n | tail -1)
first_boot=/var/lib/lab-first-boot-done
if [ ! -e $first_boot ]; then
  case $role in
    primary)
      # A role and password only for the lab's own tests of the SSH tunnel
      # (pgx through DialContext); pgwarm itself does not need it.
      pg_ctlcluster "$ver" main start
      runuser -u postgres -- psql -qc "CREATE ROLE pgwarm_lab LOGIN SUPERUSER PASSWORD '$(cat /lab/pg_password)'"
      echo "host all pgwarm_lab 127.0.0.1/32 scram-sha-256" >> /etc/postgresql/$ver/main/pg_hba.conf
      pg_ctlcluster "$ver" main stop
      ;;
    standby)
      # PostgreSQL installed, configuration in place, no cluster data: ready to be seeded.
      rm -rf /var/lib/postgresql/$ver/main
      install -d -m 0700 -o postgres -g postgres /var/lib/postgresql/$ver/main
      ;;
    archive)
      # An archive host needs no running PostgreSQL; keep the packages only.
      rm -rf /var/lib/postgresql/$ver/main
      ;;
  esac
  touch $first_boot
fi
/usr/sbin/sshd
/usr/sbin/cron
# Like Debian's boot scripts: start every cluster whose start.conf says auto
# and whose data directory is initialised (a seeded standby, an old primary).
if [ -e /var/lib/postgresql/$ver/main/PG_VERSION ] && grep -qx auto /etc/postgresql/$ver/main/start.conf 2>/dev/null; then
  pg_ctlcluster "$ver" main start || echo "lab: PostgreSQL $ver did not start" >&2
fi
echo "lab host $(hostname) ($role, PostgreSQL $ver) ready"
exec sleep infinity
