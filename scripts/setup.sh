#!/usr/bin/env bash
# Prepare a fresh Debian/Ubuntu machine for the gateway: system packages the tests and the
# demo need (SoftHSM2, poppler, qpdf, a Times-metric font, other PDF signers for the interop
# tests), a virtual environment with the pinned dependencies, and (when they are installed but
# stopped) the local PostgreSQL and RabbitMQ.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v pdfsig >/dev/null || need+=(poppler-utils)
command -v qpdf >/dev/null || need+=(qpdf)  # linearized test files (ISO 32000-2 Annex F)
[ -f /usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf ] || need+=(fonts-liberation)
# Interoperability corpus (tests/signing/test_interop.py): poppler's pdfsig signs from an NSS
# database (certutil/pk12util), Apache PDFBox 2 + BouncyCastle sign from a small Java program.
command -v pk12util >/dev/null || need+=(libnss3-tools)
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
[ -f /usr/share/java/pdfbox2.jar ] || need+=(libpdfbox2-java)
[ -f /usr/share/java/bcpkix.jar ] || need+=(libbcpkix-java)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing ${need[*]}" >&2
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Local services: start them if they are installed here but not running.
if command -v pg_ctlcluster >/dev/null && ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if command -v rabbitmqctl >/dev/null && ! rabbitmqctl -q status >/dev/null 2>&1; then
  rabbitmq-server -detached || true
  for _ in $(seq 1 60); do rabbitmqctl -q status >/dev/null 2>&1 && break; sleep 1; done
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-*; touch "$stamp"
fi
