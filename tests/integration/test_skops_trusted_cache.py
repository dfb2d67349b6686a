"""skops's trusted-type lists kept between processes (lifecycle/fastload.py): a process that takes
them from the cache has exactly the lists skops computes itself, refuses the same untrusted types
and predicts the same; a cache that does not fit this environment, is damaged or lacks a list
is not used. Each case runs in fresh processes: the lists are made when skops.io is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PROBE = r"""
import json, sys
from nbops.lifecycle import fastload, models

mode, model_path = sys.argv[1], sys.argv[2]
with models._torch_hidden():  # as models.load imports it
    if mode == "nbops":
        skops_io = fastload.import_skops_io()
    else:
        import skops.io as skops_io
lists = sys.modules["skops.io._trusted_types"]
from skops.io.exceptions import UntrustedTypesFoundException
try:
    skops_io.load(model_path)
    refused = []
except UntrustedTypesFoundException as exc:
    refused = sorted(str(exc).split("[", 1)[1].split("]", 1)[0].replace("'", "").split(", "))
model = skops_io.load(model_path, trusted=refused)
print(json.dumps({
    "lists": {k: [str(v) for v in val] for k, val in vars(lists).items() if k.isupper() and not k.startswith("_")},
    "from_cache": getattr(lists, "__file__", None) is None,
    "bound": skops_io._trusted_types is lists,
    "all_estimators_ran": "sklearn.utils._testing" in sys.modules,
    "refused": refused,
    "predictions": model.predict([[0.1 * i, -0.2 * i, 0.3] for i in range(20)]).tolist(),
}))
"""


def probe(tmp_path: Path, mode: str) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-c", PROBE, mode, str(tmp_path / "model.skops")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def knn_model(tmp_path: Path) -> None:
    """A scaler + k-NN pipeline as the templates log it: its KD tree is not trusted by default."""
    import numpy as np
    import skops.io
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3))
    model = make_pipeline(StandardScaler(), KNeighborsClassifier()).fit(X, (X[:, 0] > X[:, 1]).astype(int))
    skops.io.dump(model, tmp_path / "model.skops")


def cache_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "nbops").glob("skops-trusted-types-*.json"))


def test_lists_from_the_cache_are_the_ones_skops_computes(tmp_path):
    knn_model(tmp_path)
    skops_own = probe(tmp_path, "plain")
    assert not cache_files(tmp_path)
    first = probe(tmp_path, "nbops")  # computes them as skops does, and keeps them
    assert not first["from_cache"] and first["all_estimators_ran"]
    assert len(cache_files(tmp_path)) == 1
    cached = probe(tmp_path, "nbops")
    assert cached["from_cache"] and cached["bound"]
    assert not cached["all_estimators_ran"], "the cache is there to skip all_estimators()"
    assert len(skops_own["lists"]["SKLEARN_ESTIMATOR_TYPE_NAMES"]) > 100
    for result in (first, cached):
        assert result["lists"] == skops_own["lists"]
        assert result["refused"] == skops_own["refused"] and "sklearn.neighbors._kd_tree.KDTree" in result["refused"]
        assert result["predictions"] == skops_own["predictions"]


def test_a_cache_that_does_not_fit_is_not_used(tmp_path):
    knn_model(tmp_path)
    skops_own = probe(tmp_path, "plain")
    probe(tmp_path, "nbops")
    (path,) = cache_files(tmp_path)
    good = json.loads(path.read_text())

    def after(data: dict | str) -> dict:
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        result = probe(tmp_path, "nbops")
        assert result["lists"] == skops_own["lists"] and result["refused"] == skops_own["refused"]
        assert result["predictions"] == skops_own["predictions"]
        return result

    trusting = json.loads(json.dumps(good))  # another environment's key, one more trusted type
    trusting["key"] = good["key"].replace('"cache": 1', '"cache": 0')
    trusting["names"]["SKLEARN_ESTIMATOR_TYPE_NAMES"].append("sklearn.neighbors._kd_tree.KDTree")
    assert not after(trusting)["from_cache"]
    assert json.loads(path.read_text()) == good, "the file is written again for this environment"
    assert not after("{not json")["from_cache"]
    short = json.loads(json.dumps(good))  # a list skops imports is missing: skops's own import
    del short["names"]["SKLEARN_ESTIMATOR_TYPE_NAMES"]
    result = after(short)
    assert not result["from_cache"] and result["bound"]
    assert after(good)["from_cache"]
