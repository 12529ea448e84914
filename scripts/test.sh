#!/usr/bin/env bash
# `make test`: lint, unit tests (no services), then integration tests against the real services,
# then the web editor's unit tests and its end-to-end test in headless Chromium.
# Services that were not running before are started here and stopped again at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

step "lint"
"$BIN/ruff" check . && "$BIN/ruff" format --check . && "$BIN/mypy" || exit 1

step "unit tests"
"$BIN/python" -m pytest tests/unit || exit 1

was_up=no
"$BIN/learnflow" status >/dev/null 2>&1 && was_up=yes
step "platform (already running: $was_up)"
if [ "$was_up" = no ]; then
  trap 'step "stopping the platform"; "$BIN/learnflow" down' EXIT
  "$BIN/learnflow" up || exit 1
fi

step "integration tests"
"$BIN/python" -m pytest tests/integration || exit 1

# The web editor's node_modules and dist come from `learnflow up` (npm ci, npm run build).
step "web editor unit tests (vitest)"
npm --prefix frontend test || exit 1

step "web editor end to end (headless Chromium)"
node --test frontend/e2e/editor.e2e.mjs
