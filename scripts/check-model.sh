#!/usr/bin/env bash
# Retrains the wine forest (models/train.sh, pinned packages in a cached virtualenv) into a
# temporary directory and checks that the committed model, card and parity fixture are
# exactly what the training script produces (the card up to the Python version).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$root/models/train.sh" "$out"
status=0
for file in wine-forest.onnx wine-forest-parity.json; do
  if ! cmp -s "$out/$file" "$root/models/$file"; then
    echo "[model] FAILED: models/$file differs from what models/train.sh produces" >&2
    status=1
  fi
done
# The card records the Python that trained the model; everything else must match.
python3 - "$out/wine-forest.json" "$root/models/wine-forest.json" <<'PY' || status=1
import json, sys
new, old = (json.load(open(p)) for p in sys.argv[1:])
for card in (new, old):
    card["versions"].pop("python", None)
if new != old:
    sys.exit("[model] FAILED: models/wine-forest.json differs from what models/train.sh produces")
PY
[ "$status" = 0 ] && echo "[model] ok: models/ is reproduced exactly by models/train.sh"
exit "$status"
