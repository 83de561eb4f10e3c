#!/bin/sh
# Installs what the browser test needs (used by make browser-deps, and so by
# make test): Debian's chromium, Node.js with npm when the machine has none,
# and playwright-core at the version pinned in tests/browser/package-lock.json.
set -eu
here=$(dirname "$0")
"$here/deps.sh" chromium fonts-liberation
if ! command -v npm >/dev/null 2>&1; then
  "$here/deps.sh" nodejs npm
fi
cd "$here/../tests/browser"
# npm ci installs exactly the lock file; only when it changed or is missing.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
