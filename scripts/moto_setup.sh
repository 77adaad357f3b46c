#!/usr/bin/env bash
# moto in server mode (a local S3-compatible endpoint) for the report-upload integration test, in a virtualenv of its
# own under the checkout (.cache/venv-moto, ignored by git), from requirements-moto.txt. Idempotent: a venv built from
# the same requirements-moto.txt is left alone. Prints the venv's bin directory.
#
#     MOTO="$(bash scripts/moto_setup.sh)"; "$MOTO/moto_server" -H 127.0.0.1 -p 0
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AGENTOPS_MOTO_VENV:-$ROOT/.cache/venv-moto}"
REQUIREMENTS="$ROOT/requirements-moto.txt"
PYTHON="${PYTHON:-python3}"

stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/moto_server" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing moto[server] into $VENV" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS" 2>&1 \
    | { grep -v 'is ignored: it is neither a file' || true; } >&2
  echo "$want" > "$stamp"
fi
echo "$VENV/bin"
