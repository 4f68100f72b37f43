#!/usr/bin/env bash
# Install (apt, only if missing) and start a throwaway PostgreSQL 15 cluster with Q3C, for the SQL
# benchmark and the tests that need a real database. Needs root and apt (Debian 12 packages
# postgresql-15 and postgresql-15-q3c). The cluster runs as the postgres user, listens on
# 127.0.0.1:$PGPORT only, trusts local connections and has the q3c extension created in the
# postgres database. Durability is off (fsync, full_page_writes): it is for tests, not for data.
#   PGDATA_DIR  data directory (default /tmp/proxcompute-pg; its parents must be readable by postgres)
#   PGPORT      port (default 54329)
#   SKIP_APT=1  never call apt-get
# Idempotent: a second run reuses the cluster (starting it if needed). The last line printed is
# the DSN. Stop and remove it with stop_postgres.sh.
set -euo pipefail
PGDATA_DIR=${PGDATA_DIR:-/tmp/proxcompute-pg}
PGPORT=${PGPORT:-54329}
PGBIN=/usr/lib/postgresql/15/bin
Q3C_CONTROL=/usr/share/postgresql/15/extension/q3c.control
[ "$(id -u)" = 0 ] || { echo "setup_postgres.sh: needs root (to install packages and run as postgres)" >&2; exit 2; }
if [ ! -x "$PGBIN/pg_ctl" ] || [ ! -f "$Q3C_CONTROL" ]; then
  if [ "${SKIP_APT:-0}" = 1 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_postgres.sh: postgresql-15 / postgresql-15-q3c missing and apt-get unavailable (or SKIP_APT=1)" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # the Debian package would create and start its own cluster on 5432: we do not want it
  mkdir -p /etc/postgresql-common
  grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf \
    || echo "create_main_cluster = false" >> /etc/postgresql-common/createcluster.conf
  apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-15-q3c >/dev/null
fi
id postgres >/dev/null 2>&1 || { echo "setup_postgres.sh: no postgres user after install" >&2; exit 1; }
as_pg() { runuser -u postgres -- "$@"; }

if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
  if [ -e "$PGDATA_DIR" ] && [ -n "$(ls -A "$PGDATA_DIR" 2>/dev/null)" ]; then
    echo "setup_postgres.sh: $PGDATA_DIR exists, is not empty and is not a PostgreSQL data directory" >&2
    exit 1
  fi
  install -d -o postgres -g postgres -m 0700 "$PGDATA_DIR"
  as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --no-sync >/dev/null
  cat >> "$PGDATA_DIR/postgresql.conf" <<CONF
# --- setup_postgres.sh: throwaway test cluster ---
listen_addresses = '127.0.0.1'
port = ${PGPORT}
unix_socket_directories = '${PGDATA_DIR}'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 2GB
work_mem = 256MB
maintenance_work_mem = 1GB
max_wal_size = 8GB
max_parallel_workers_per_gather = 2
max_parallel_maintenance_workers = 2
CONF
fi

if as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
  echo "postgres already running in $PGDATA_DIR"
else
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -o "-p $PGPORT" start -w -t 60 >/dev/null \
    || { echo "setup_postgres.sh: server did not start; log tail:" >&2; tail -20 "$PGDATA_DIR/server.log" >&2; exit 1; }
fi
as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres \
  -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS q3c" >/dev/null
q3c=$(as_pg "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres \
  -c "SELECT q3c_version()" 2>/dev/null || echo '?')
echo "postgres ready: $("$PGBIN/postgres" --version | awk '{print $3}'), q3c ${q3c}, data $PGDATA_DIR"
echo "postgresql://postgres@127.0.0.1:${PGPORT}/postgres"
