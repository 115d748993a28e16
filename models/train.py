"""Trains the wine random forest, exports it to ONNX and writes its card and parity fixture.

Run through models/train.sh (a virtualenv with the pinned packages). Everything is
deterministic: the data set ships with scikit-learn (no download), the split and the
forest have fixed seeds, so a retrain with the same packages gives the same file.

Outputs, next to this script (or in the directory given as the only argument):
  wine-forest.onnx         the model the prediction-service loads (MODEL_PATH)
  wine-forest.json         its card: versions, seed, sizes, held-out accuracy, sha256
  wine-forest-parity.json  all 178 rows with scikit-learn's class and probabilities, for
                           the Rust parity test
"""

import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import onnx
import scipy
import sklearn
import skl2onnx
from skl2onnx import to_onnx
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

SEED = 17
N_TREES = 100
MAX_DEPTH = 6
NAME = "wine-forest"
VERSION = "1"
# TreeEnsembleClassifier of ai.onnx.ml opset 3: the operator the service's evaluator
# implements (opset 5's TreeEnsemble is refused there).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}

HERE = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parent


def train():
    data = load_wine()
    x = data.data.astype(np.float32)
    y = data.target
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=SEED, stratify=y
    )
    forest = RandomForestClassifier(
        n_estimators=N_TREES, max_depth=MAX_DEPTH, random_state=SEED, n_jobs=1
    )
    forest.fit(x_train, y_train)
    accuracy = float(forest.score(x_test, y_test))
    return data, x, forest, accuracy, len(x_train), len(x_test)


def export(forest, x):
    model = to_onnx(
        forest,
        x[:1],
        options={id(forest): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    model.producer_name = "skl2onnx"
    model.model_version = int(VERSION)
    model.doc_string = "Random forest on scikit-learn's wine data (models/train.py)."
    for key, value in (("name", NAME), ("version", VERSION)):
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


def main():
    data, x, forest, accuracy, n_train, n_test = train()
    onnx_bytes = export(forest, x)
    sha256 = hashlib.sha256(onnx_bytes).hexdigest()
    (HERE / f"{NAME}.onnx").write_bytes(onnx_bytes)

    nodes = sum(tree.tree_.node_count for tree in forest.estimators_)
    card = {
        "name": NAME,
        "version": VERSION,
        "file": f"{NAME}.onnx",
        "sha256": sha256,
        "bytes": len(onnx_bytes),
        "task": "classification of the UCI wine data (3 cultivars)",
        "data": "sklearn.datasets.load_wine (bundled with scikit-learn, 178 rows)",
        "features": list(data.feature_names),
        "classes": [int(c) for c in forest.classes_],
        "estimator": "RandomForestClassifier",
        "hyperparameters": {
            "n_estimators": N_TREES,
            "max_depth": MAX_DEPTH,
            "random_state": SEED,
        },
        "seed": SEED,
        "split": {"test_size": 0.25, "stratify": True, "train_rows": n_train, "test_rows": n_test},
        "held_out_accuracy": accuracy,
        "tree_nodes": nodes,
        "onnx": {
            "operator": "ai.onnx.ml TreeEnsembleClassifier",
            "target_opset": TARGET_OPSET,
            "options": {"zipmap": False},
            "input": "float32 [N, 13]",
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "onnx": onnx.__version__,
        },
    }
    (HERE / f"{NAME}.json").write_text(json.dumps(card, indent=2) + "\n")

    probabilities = forest.predict_proba(x)
    classes = forest.predict(x)
    rows = [
        {
            "features": [float(v) for v in row],
            "class": int(c),
            "probabilities": [float(p) for p in probs],
        }
        for row, c, probs in zip(x, classes, probabilities)
    ]
    parity = {"model_sha256": sha256, "rows": rows}
    (HERE / f"{NAME}-parity.json").write_text(json.dumps(parity, separators=(",", ":")) + "\n")
    print(
        f"{NAME}.onnx: {len(onnx_bytes)} bytes, {nodes} nodes, held-out accuracy "
        f"{accuracy:.4f}, sha256 {sha256}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
