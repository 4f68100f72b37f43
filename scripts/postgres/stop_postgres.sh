#!/usr/bin/env bash
# Stop the cluster started by setup_postgres.sh (pg_ctl stop -m fast) and remove its data
# directory. Same PGDATA_DIR as setup (default /tmp/proxcompute-pg). Safe to run twice.
set -u
PGDATA_DIR=${PGDATA_DIR:-/tmp/proxcompute-pg}
PGBIN=/usr/lib/postgresql/15/bin
[ -e "$PGDATA_DIR" ] || exit 0
if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
  echo "stop_postgres.sh: $PGDATA_DIR is not a PostgreSQL data directory; left alone" >&2
  exit 1
fi
if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" stop -m fast -w -t 60 >/dev/null \
    || { echo "stop_postgres.sh: pg_ctl stop failed" >&2; exit 1; }
fi
rm -rf "$PGDATA_DIR"
echo "postgres stopped; $PGDATA_DIR removed"
