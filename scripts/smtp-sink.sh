#!/usr/bin/env bash
# The SMTP server the notification-service tests deliver welcome emails to: aiosmtpd
# (PyPI) in its own virtualenv, run by scripts/smtp-sink.py.
#
#   scripts/smtp-sink.sh install   create the venv and install aiosmtpd (idempotent)
#   scripts/smtp-sink.sh python    print the venv's python (what the tests run)
#   scripts/smtp-sink.sh run DIR   run the sink in the foreground, one JSON file per email
#
# The venv lives in ${PLATFORM_CACHE:-$HOME/.cache/platform}/venv-smtp.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

AIOSMTPD_VERSION=1.4.6
venv="${PLATFORM_CACHE:-$HOME/.cache/platform}/venv-smtp"
python="$venv/bin/python"

install() {
  if "$python" -c "import aiosmtpd" 2>/dev/null; then
    echo "aiosmtpd already installed in $venv"
    return
  fi
  command -v python3 >/dev/null || { echo "python3 not found: apt-get install python3 python3-venv" >&2; exit 1; }
  echo "creating $venv and installing aiosmtpd==$AIOSMTPD_VERSION from PyPI"
  if ! python3 -c "import ensurepip" 2>/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "python3 has no venv support: installing python3-venv (apt)"
    apt-get install -y -qq python3-venv >/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
  fi
  python3 -m venv "$venv" || { echo "python3 -m venv failed: apt-get install python3-venv" >&2; exit 1; }
  "$python" -m pip install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION" ||
    { echo "pip could not install aiosmtpd: is PyPI reachable?" >&2; exit 1; }
  "$python" -c "import aiosmtpd" && echo "aiosmtpd installed in $venv"
}

case "${1:-}" in
  install) install ;;
  python) echo "$python" ;;
  run) exec "$python" scripts/smtp-sink.py "${2:?usage: $0 run DIR}" ;;
  *) echo "usage: $0 install | python | run DIR" >&2; exit 2 ;;
esac
