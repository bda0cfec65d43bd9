#!/usr/bin/env bash
# One-time (and idempotent) set-up of a fresh Debian/Ubuntu machine for ledgerstream:
# system packages (Java 17, Maven, PostgreSQL), the Python venv with pinned
# dependencies, and the Maven-resolved Kafka and Apicurio jars.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need_apt+=(postgresql)
command -v runuser >/dev/null || need_apt+=(util-linux)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# Debian's postgresql package starts its own cluster on 5432; ours lives in the
# project's state directory and never needs it.

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "== installing Python dependencies (pinned by requirements.lock)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c requirements.lock -e '.[dev]'
  rm -f .venv/.installed-*; touch "$stamp"
fi

echo "== resolving Kafka and Apicurio Registry from Maven Central"
.venv/bin/ledgerstream resolve
