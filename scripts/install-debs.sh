#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/debs.txt that are not installed yet. Runs
# apt-get update only when something is missing, so a machine that has them all pays nothing.
# Usage: scripts/install-debs.sh [LIST]   (default: scripts/debs.txt beside this script)
set -euo pipefail
list="${1:-$(dirname "$0")/debs.txt}"
mapfile -t want < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$' || true)
[ "${#want[@]}" -gt 0 ] || exit 0
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ "${#missing[@]}" -gt 0 ] || exit 0
command -v apt-get >/dev/null || { echo "missing Debian packages: ${missing[*]} (and no apt-get to install them)" >&2; exit 1; }
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
