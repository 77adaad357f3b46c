#!/usr/bin/env bash
# Node tools the tests run for real, installed from the npm registry into a checkout-local prefix
# (.cache/npm-tools, ignored by git): pm2, the process manager whose crash loops the services family reads.
# Idempotent: a tool already installed at its pinned version is left alone. Prints the prefix's bin directory.
#
#     bash scripts/npm_tools.sh            # install what is missing
#     PM2="$(bash scripts/npm_tools.sh)/pm2"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${AGENTOPS_NPM_TOOLS:-$ROOT/.cache/npm-tools}"
TOOLS=("pm2@6.0.9")

if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: install nodejs and npm (scripts/system_deps.sh) and re-run." >&2
  exit 1
fi
mkdir -p "$PREFIX"
missing=()
for tool in "${TOOLS[@]}"; do
  name="${tool%@*}"
  version="${tool##*@}"
  manifest="$PREFIX/node_modules/$name/package.json"
  installed=""
  if [ -f "$manifest" ]; then
    installed="$(node -p 'require(process.argv[1]).version' "$manifest" 2>/dev/null || true)"
  fi
  [ "$installed" = "$version" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing npm tools into $PREFIX: ${missing[*]}" >&2
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "${missing[@]}" >&2
fi
echo "$PREFIX/node_modules/.bin"
