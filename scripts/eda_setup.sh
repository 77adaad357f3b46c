#!/usr/bin/env bash
# Event-Driven Ansible (ansible-rulebook) and ansible-builder in a virtualenv of their own under the checkout
# (.cache/venv-eda, ignored by git), from requirements-eda.txt; and a Java 17+ runtime, which ansible-rulebook's
# rules engine (drools) needs: installed from Debian (openjdk-17-jre-headless) only when none is found.
# Idempotent: a venv built from the same requirements-eda.txt is left alone. Prints the venv's bin directory.
#
#     bash scripts/eda_setup.sh                      # install what is missing
#     EDA="$(bash scripts/eda_setup.sh)"; "$EDA/ansible-rulebook" --version
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AGENTOPS_EDA_VENV:-$ROOT/.cache/venv-eda}"
REQUIREMENTS="$ROOT/requirements-eda.txt"
PYTHON="${PYTHON:-python3}"

java_major() {
  # "openjdk version "17.0.15" ..." -> 17; nothing when there is no java.
  java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n 1
}
major="$(command -v java >/dev/null 2>&1 && java_major || true)"
if [ -z "$major" ] || [ "$major" -lt 17 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ansible-rulebook needs Java 17 or later: install openjdk-17-jre-headless and re-run." >&2
    exit 1
  fi
  echo "Installing system packages: openjdk-17-jre-headless" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
fi

stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/ansible-rulebook" ] || [ ! -x "$VENV/bin/ansible-builder" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing ansible-rulebook and ansible-builder into $VENV" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS" 2>&1 \
    | { grep -v 'is ignored: it is neither a file' || true; } >&2
  echo "$want" > "$stamp"
fi
echo "$VENV/bin"
