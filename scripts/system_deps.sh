#!/usr/bin/env bash
# System packages the tests need: Node.js and npm (real agent-like processes; npm
# installs pm2 and an old Node for the tests), openssl and curl (certificates the
# endpoint tests make; the TLS and HTTP fix commands), an SSH client (the unreachable-host
# test), the PostgreSQL server and client (throwaway clusters) and promtool from the prometheus package
# (validates prometheus/agentops-alerts.yml). Installs only what is missing.
set -euo pipefail
missing=()
norecommends=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# promtool (tests/unit/test_alerts.py); without recommends, which would add node-exporter, smartmontools, ipmitool.
command -v promtool >/dev/null 2>&1 || norecommends+=(prometheus)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
# headless Chromium renders report.html in tests/integration/test_html_report_chromium.py.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing system packages: ${missing[*]}; install them (apt-get install ${missing[*]}) and re-run." >&2
    exit 1
  fi
  echo "Installing system packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ${#norecommends[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing system packages: ${norecommends[*]}; install them (apt-get install --no-install-recommends ${norecommends[*]}) and re-run." >&2
    exit 1
  fi
  echo "Installing system packages: ${norecommends[*]}"
  [ ${#missing[@]} -gt 0 ] || DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${norecommends[@]}" >/dev/null
fi
