#!/usr/bin/env bash
# Make sure the system programs named as arguments are present (each is a Debian package
# of the same name), installing the missing ones with apt-get on Debian as root.
# Without arguments: what `make test` runs for real, redis-server (session store tests,
# also as Sentinel with `redis-server --sentinel` and as a Cluster, so nothing else from
# Redis is needed), chromium (browser tests), nginx (with its auth_request module) and
# caddy (the forward-auth tests put them in front of the gateway). `make bench` asks for wrk, nginx, redis-server and curl.
set -euo pipefail

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(redis-server chromium nginx caddy)

missing=()
for program in "${wanted[@]}"; do
  command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || [ -x "/usr/bin/$program" ] \
    || missing+=("$program")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "installing ${missing[*]} with apt-get"
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  exit 0
fi
echo "missing ${missing[*]}: install them with your package manager (Debian: sudo apt-get install ${missing[*]})" >&2
exit 1
