#!/usr/bin/env bash
# Stop the nginx started by start_nginx.sh on PORT and remove its runtime directory.
#   stop_nginx.sh [PORT]   (same NGINX_DIR as start_nginx.sh). Safe to run twice.
set -u
PORT=${1:-18480}
RUN=${NGINX_DIR:-/tmp/proxcompute-nginx-$PORT}
[ -e "$RUN" ] || exit 0
if [ ! -f "$RUN/nginx.conf" ] || ! grep -q "start_nginx.sh" "$RUN/nginx.conf"; then
  echo "stop_nginx.sh: $RUN was not made by start_nginx.sh; left alone" >&2
  exit 1
fi
if [ -f "$RUN/nginx.pid" ]; then
  pid=$(cat "$RUN/nginx.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -QUIT "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid"
  fi
fi
rm -rf "$RUN"
