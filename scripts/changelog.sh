#!/usr/bin/env bash
# antsibull-changelog in a virtualenv of its own under the checkout (.cache/venv-changelog, ignored by git), from
# requirements-changelog.txt, run from the checkout's root with the given arguments. Idempotent: a venv built from the
# same requirements file is left alone.
#
#     bash scripts/changelog.sh lint                       # check changelogs/fragments/*.yml
#     bash scripts/changelog.sh release --version 0.3.0    # fragments -> changelogs/changelog.yaml + CHANGELOG.rst
#     bash scripts/changelog.sh generate                   # CHANGELOG.rst again from changelogs/changelog.yaml
#
# Cutting a release: set `version:` in galaxy.yml, `bash scripts/changelog.sh release`, commit galaxy.yml,
# CHANGELOG.rst, changelogs/changelog.yaml and the removed fragments together (tests/unit/test_release.py checks
# that they agree).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AGENTOPS_CHANGELOG_VENV:-$ROOT/.cache/venv-changelog}"
REQUIREMENTS="$ROOT/requirements-changelog.txt"
PYTHON="${PYTHON:-python3}"

stamp="$VENV/.requirements.sha256"
want="$(cat "$REQUIREMENTS" "$ROOT/requirements.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/antsibull-changelog" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing antsibull-changelog into $VENV" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt" -r "$REQUIREMENTS" 2>&1 \
    | { grep -v 'is ignored: it is neither a file' || true; } >&2
  echo "$want" > "$stamp"
fi
# The plugin scan runs ansible-doc on the collection: interpreter discovery plays no part, but the collection must be
# found where antsibull-changelog looks for it (this checkout, through the .collections link that make creates).
cd "$ROOT"
export PATH="$VENV/bin:$PATH"
exec "$VENV/bin/antsibull-changelog" "$@"
