#!/usr/bin/env bash
# Install Debian's STILTS (for `stilts taplint`, the IVOA TAP validator) if it is missing.
# Idempotent; needs root and apt. Prints the path of the stilts command on its last line.
set -euo pipefail
if command -v stilts >/dev/null 2>&1; then
    command -v stilts
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_stilts.sh: stilts is not installed and this is not root with apt-get" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends stilts >/dev/null 2>&1 || {
    apt-get update >/dev/null 2>&1
    apt-get install -y --no-install-recommends stilts >/dev/null
}
command -v stilts
