#!/usr/bin/env bash
# Install (apt, only if missing) and start an nginx serving a directory over HTTP with Range
# requests, for the remote-catalog tests and benchmarks/bench_remote.py. Loopback only.
#   start_nginx.sh ROOT [PORT]
#     ROOT        the directory served at http://127.0.0.1:PORT/ (directory listings on, as the
#                 HATS "Npix=n/" layout needs); ROOT/forbidden/ answers 403 (deny all)
#     PORT        default 18480
#   NGINX_DIR     runtime directory: nginx.conf, pid, access.log, error.log
#                 (default /tmp/proxcompute-nginx-PORT). access.log has one line per request:
#                 "METHOD URI STATUS BYTES_SENT RANGE" (what the tests and the benchmark count)
#   SKIP_APT=1    never call apt-get
# Needs root only to install the package. Idempotent: a second run with the same PORT rewrites
# the configuration and reloads the running server. The last line printed is the base URL.
# Stop it with stop_nginx.sh PORT. Exit status 2: nginx is missing and cannot be installed.
set -euo pipefail
ROOT=${1:?usage: start_nginx.sh ROOT [PORT]}
PORT=${2:-18480}
RUN=${NGINX_DIR:-/tmp/proxcompute-nginx-$PORT}
NGINX=/usr/sbin/nginx
[ -d "$ROOT" ] || { echo "start_nginx.sh: $ROOT is not a directory" >&2; exit 1; }
ROOT=$(cd "$ROOT" && pwd)

if [ ! -x "$NGINX" ]; then
  if [ "${SKIP_APT:-0}" = 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "start_nginx.sh: nginx is not installed and this is not root with apt-get (or SKIP_APT=1)" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  # the package would start its own server on port 80: forbid service starts while installing
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 \
    || apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends nginx >/dev/null 2>&1 \
    || { apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends nginx >/dev/null; }
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ -x "$NGINX" ] || { echo "start_nginx.sh: nginx did not install" >&2; exit 1; }
fi

mkdir -p "$RUN"
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root root;"   # workers read test data in private temp dirs
cat > "$RUN/nginx.conf" <<CONF
# written by scripts/remote/start_nginx.sh: a loopback test server for remote catalogs
$user_line
worker_processes 1;
pid $RUN/nginx.pid;
error_log $RUN/error.log warn;
events { worker_connections 256; }
http {
    log_format ranges '\$request_method \$uri \$status \$body_bytes_sent "\$http_range"';
    access_log $RUN/access.log ranges;
    client_body_temp_path $RUN/client_body;
    proxy_temp_path $RUN/proxy;
    fastcgi_temp_path $RUN/fastcgi;
    uwsgi_temp_path $RUN/uwsgi;
    scgi_temp_path $RUN/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:$PORT;
        root $ROOT;
        autoindex on;
        location /forbidden/ { deny all; }
    }
}
CONF
"$NGINX" -t -q -c "$RUN/nginx.conf" -p "$RUN" 2>"$RUN/config-test.log" \
  || { echo "start_nginx.sh: invalid configuration:" >&2; cat "$RUN/config-test.log" >&2; exit 1; }
if [ -f "$RUN/nginx.pid" ] && kill -0 "$(cat "$RUN/nginx.pid")" 2>/dev/null; then
  "$NGINX" -c "$RUN/nginx.conf" -p "$RUN" -s reload
else
  "$NGINX" -c "$RUN/nginx.conf" -p "$RUN"
fi
for _ in $(seq 50); do
  [ -f "$RUN/nginx.pid" ] && kill -0 "$(cat "$RUN/nginx.pid")" 2>/dev/null && break
  sleep 0.1
done
kill -0 "$(cat "$RUN/nginx.pid" 2>/dev/null || echo 0)" 2>/dev/null \
  || { echo "start_nginx.sh: nginx did not start; log tail:" >&2; tail -20 "$RUN/error.log" >&2; exit 1; }
echo "nginx serving $ROOT (runtime $RUN)"
echo "http://127.0.0.1:$PORT/"
