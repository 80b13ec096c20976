#!/usr/bin/env bash
# Installs the Debian packages listed in deploy/packages.txt that are missing
# (apt-get update once, then apt-get install -y). Used by the demo and tests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
missing=""
# shellcheck disable=SC2013  # one package name per line, no spaces
for p in $(grep -v '^[[:space:]]*#' "$here/packages.txt"); do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-packages: missing Debian packages:$missing; run as root, or: sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "==> installing packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
