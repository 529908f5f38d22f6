#!/usr/bin/env bash
# Make sure the system programs the benchmarks drive are present:
# wrk (load), nginx (upstream and reverse-proxy peer), redis-server (session store) and
# curl (streaming client; the benchmark falls back to aiohttp without it).
set -euo pipefail

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "installing ${missing[*]} with apt-get"
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  exit 0
fi
echo "missing ${missing[*]}: install them with your package manager (Debian: sudo apt-get install ${missing[*]})" >&2
exit 1
