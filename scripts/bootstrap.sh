#!/usr/bin/env bash
# Installs what the local platform needs, idempotently; a second run only checks and returns:
#   1. Debian packages (PostgreSQL, Redis, bubblewrap, Java 17, Maven), via apt when missing;
#   2. a Python 3.11 virtualenv in .venv with the pinned dependencies (reinstalled when
#      pyproject.toml changes);
#   3. the Kafka broker's jars from Maven Central into .run/kafka/libs (refetched when the pom
#      changes).
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=.run
VENV=.venv
PYTHON=${PYTHON:-python3.11}
APT_PACKAGES=(postgresql redis-server bubblewrap util-linux deck wrk haproxy chromium openjdk-17-jre-headless maven ca-certificates)

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
stamp_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  step "apt-get install ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages (${missing[*]}); run as root or install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v "$PYTHON" >/dev/null; then
  echo "error: $PYTHON not found; LearnFlow needs Python 3.11" >&2
  exit 1
fi
py_stamp="$VENV/.installed-$(stamp_of pyproject.toml)"
if [ ! -f "$py_stamp" ]; then
  step "Python virtualenv $VENV (pinned dependencies)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  rm -f "$VENV"/.installed-*
  touch "$py_stamp"
fi

libs="$RUN_DIR/kafka/libs"
kafka_stamp="$libs/.fetched-$(stamp_of scripts/kafka/pom.xml)"
if [ ! -f "$kafka_stamp" ]; then
  step "Kafka broker jars from Maven Central -> $libs"
  rm -rf "$libs"
  mkdir -p "$libs"
  mvn -q -B -f scripts/kafka/pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$PWD/$libs" -DincludeScope=runtime
  touch "$kafka_stamp"
fi
