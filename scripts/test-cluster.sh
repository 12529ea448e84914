#!/usr/bin/env bash
# `make test-cluster`: the fault tests of tests/cluster on the platform of
# `learnflow up --cluster` (three Kafka nodes, two Ray nodes). The two profiles share ports: a
# running single-node platform is stopped first and started again at the end; a cluster
# profile this script started is stopped at the end, one that was running is left running.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

single_was_up=no
cluster_was_up=no
if [ -f .run/profile.env ]; then
  "$BIN/learnflow" status >/dev/null 2>&1 && cluster_was_up=yes
else
  "$BIN/learnflow" status >/dev/null 2>&1 && single_was_up=yes
  step "stopping the single-node platform (running: $single_was_up)"
  "$BIN/learnflow" down >/dev/null || exit 1
fi

finish() {
  if [ "$cluster_was_up" = no ]; then
    step "stopping the cluster profile"
    "$BIN/learnflow" down
  fi
  if [ "$single_was_up" = yes ]; then
    step "starting the single-node platform again"
    "$BIN/learnflow" up
  fi
}
trap finish EXIT

step "cluster profile (already running: $cluster_was_up)"
"$BIN/learnflow" up --cluster || exit 1

step "cluster fault tests"
"$BIN/python" -m pytest tests/cluster
