#!/usr/bin/env bash
# Make sure the system programs the tests run for real are present:
# redis-server (session store tests) and chromium (browser tests).
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "installing ${missing[*]} with apt-get"
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  exit 0
fi
echo "missing ${missing[*]}: install them with your package manager (Debian: sudo apt-get install ${missing[*]})" >&2
exit 1
