#!/usr/bin/env bash
# System packages the tests need: Node.js and npm (real agent-like processes; npm
# installs pm2 and an old Node for the tests), openssl and curl (certificates the
# endpoint tests make; the TLS and HTTP fix commands), an SSH client (the unreachable-host
# test) and the PostgreSQL server and client (throwaway clusters). Installs only
# what is missing.
set -euo pipefail
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing system packages: ${missing[*]}; install them (apt-get install ${missing[*]}) and re-run." >&2
    exit 1
  fi
  echo "Installing system packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
