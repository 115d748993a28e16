#!/usr/bin/env bash
# Trains the wine random forest and exports it to ONNX (models/train.py), in a virtualenv
# under the platform cache with the pinned packages of models/requirements.txt. The
# virtualenv is made once per requirements file and reused.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PLATFORM_CACHE:-$HOME/.cache/platform}"
hash="$(sha256sum "$here/requirements.txt" | cut -c1-12)"
venv="$cache/venv-models-$hash"
if [ ! -x "$venv/bin/python" ]; then
  echo "[models] creating $venv" >&2
  python3 -m venv "$venv.tmp"
  "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  rm -rf "$venv"
  mv "$venv.tmp" "$venv"
fi
exec "$venv/bin/python" "$here/train.py" "$@"
