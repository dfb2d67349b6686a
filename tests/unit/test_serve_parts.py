"""The pieces of `nbops serve` that need no server process and no MLflow: routing bands and
request keys, payload decoding, the batcher, the app in-process on a fake model, and the
version table's reload."""

from __future__ import annotations

import re
import time

import pytest

from nbops.lifecycle.serve.batching import INLINE_ROWS, Batcher
from nbops.lifecycle.serve.payload import PayloadError, decode
from nbops.lifecycle.serve.routing import bands, key_point
from nbops.lifecycle.serve.served import Served
from tests.lifecycle import FEATURES

ROW = {"f0": 0.5, "f1": -1.2, "f2": 0.3, "f3": 1.1, "f4": -0.4, "f5": 0.9}


def counts(client) -> dict[tuple[str, str], float]:
    """(version, status) -> nbops_serve_requests_total."""
    found = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("nbops_serve_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            found[(labels["version"], labels["status"])] = float(line.rsplit(" ", 1)[1])
    return found


def test_bands_give_the_canary_its_share_and_champion_the_rest():
    assert bands({"challenger": 20}) == (("challenger", 20.0), ("champion", 100.0))
    assert bands({}) == (("champion", 100.0),)


def test_request_keys_spread_evenly_and_stay_put():
    points = [key_point(f"user-{i}") for i in range(5000)]
    assert all(0 <= p < 100 for p in points)
    assert 0.17 < sum(p < 20 for p in points) / len(points) < 0.23
    # a key's point is fixed (blake2b of the key alone): the same in every process, replica and
    # release, unlike hash() under PYTHONHASHSEED; pinned, so a change of function shows here
    assert [key_point(k) for k in ("user-7", "user-8", "")] == [46.49, 14.08, 98.76]


@pytest.mark.parametrize("payload,shape", [
    ({"records": [ROW]}, "records"),
    ([ROW], "records"),
    ({"dataframe_records": [ROW]}, "records"),
    ({"instances": [ROW]}, "records"),
    ({"columns": {k: [v] for k, v in ROW.items()}}, "columns"),
    ({"inputs": ROW}, "columns"),
    ({"columns": list(ROW), "data": [list(ROW.values())]}, "split"),
    ({"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())]}}, "split"),
    ({"inputs": [list(ROW.values())]}, "rows"),
])
def test_payload_shapes(payload, shape):
    assert decode(payload)[0] == shape


@pytest.mark.parametrize("wrap", [lambda split: split, lambda split: {"dataframe_split": split}],
                         ids=["columns", "dataframe_split"])
def test_a_column_named_twice_is_a_payload_error(wrap):
    split = {"columns": [*FEATURES, "f0"], "data": [[1, 2, 3, 4, 5, 6, "abc"]]}
    with pytest.raises(PayloadError, match="column 'f0' more than once"):
        decode(wrap(split))


def _model(version: str = "1", predict=None):
    """A LoadedModel of six double columns whose predictor needs no MLflow."""
    import numpy as np

    from nbops.lifecycle.models import Column, LoadedModel
    from nbops.lifecycle.versions import VersionInfo

    class Predictor:
        def predict(self, X):
            return (np.asarray(X, dtype=float)[:, 0] > 0).astype(int)

    predictor = Predictor()
    if predict is not None:
        predictor.predict = predict
    info = VersionInfo(name="clf", version=version, run_id="", source="", metrics={}, tags={})
    return LoadedModel(info, tuple(Column(f, "double") for f in FEATURES), "sklearn", predictor)


@pytest.fixture
def app_client():
    """The app in-process on one fake version: no server, no MLflow."""
    import warnings

    with warnings.catch_warnings():  # starlette would rather have httpx2; httpx works
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from nbops.lifecycle.serve.app import create_app
    from nbops.lifecycle.serve.service import ServeOptions, Service

    service = Service(None, ServeOptions("clf"))
    service._load = lambda versions: {"champion": Served.of(_model(), "champion")}
    with TestClient(create_app(service, {})) as c:
        deadline = time.monotonic() + 10
        while c.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield c


def _app_counts(c) -> dict[str, float]:
    return {status: n for (_, status), n in counts(c).items()}


def test_a_column_named_twice_is_a_400_and_counted(app_client):
    payload = {"columns": [*FEATURES, "f0"], "data": [[1, 2, 3, 4, 5, 6, "abc"]]}
    response = app_client.post("/predict", json=payload)
    assert response.status_code == 400 and "'f0'" in response.json()["error"]
    assert _app_counts(app_client) == {"400": 1}
    assert app_client.post("/predict", json=[ROW]).status_code == 200


@pytest.mark.parametrize("exc,status", [(AttributeError("a bug"), 500), (ValueError("odd value"), 400),
                                        (TypeError("odd type"), 400)])
def test_an_unexpected_error_reading_the_input_is_json_counted_and_serving_goes_on(
        app_client, monkeypatch, exc, status):
    def prepare(self, shape, data):
        raise exc

    with monkeypatch.context() as m:
        m.setattr(Served, "prepare", prepare)
        response = app_client.post("/predict", json=[ROW])
    assert response.status_code == status
    assert str(exc) in response.json()["error"] and response.json()["version"] == "1"
    assert _app_counts(app_client) == {str(status): 1}
    assert app_client.post("/predict", json=[ROW]).status_code == 200


def _batches(predict, sizes: list[int]) -> list:
    """Submit matrices of SIZES rows in one loop turn; each one's result or exception."""
    import asyncio

    import numpy as np

    async def main():
        batcher = Batcher(predict)
        futures = [batcher.submit(np.full((n, len(FEATURES)), float(i))) for i, n in enumerate(sizes)]
        return await asyncio.gather(*futures, return_exceptions=True)

    return asyncio.run(main())


def test_a_failing_batch_is_redone_request_by_request_and_only_the_bad_one_fails():
    import numpy as np

    calls = []

    def predict(X):
        calls.append(len(X))
        if (X == 1.0).any():  # the second request's rows
            raise ValueError("Input contains NaN")
        return X[:, 0]

    results = _batches(predict, [2, 3, 1])
    assert calls == [6, 2, 3, 1]  # the stacked call, then one per request
    assert isinstance(results[1], ValueError)
    assert np.array_equal(results[0], [0.0, 0.0]) and np.array_equal(results[2], [2.0])


def test_no_batch_predicted_on_the_loop_has_more_than_inline_rows():
    import numpy as np

    calls = []

    def predict(X):
        calls.append(len(X))
        return X[:, 0]

    sizes = [INLINE_ROWS * 6 // 10, INLINE_ROWS * 6 // 10, INLINE_ROWS * 3 // 10, INLINE_ROWS]
    results = _batches(predict, sizes)
    assert calls == [sizes[0], sizes[1] + sizes[2], sizes[3]]
    assert all(np.array_equal(r, np.full(n, float(i))) for i, (r, n) in enumerate(zip(results, sizes, strict=True)))


def test_versions_no_alias_routes_to_are_dropped(monkeypatch):
    from types import SimpleNamespace

    from nbops.lifecycle import models
    from nbops.lifecycle.serve.service import ServeOptions, Service

    loaded = []

    def load(info):
        loaded.append(info.version)
        return _model(info.version)

    monkeypatch.setattr(models, "load", load)
    service = Service(None, ServeOptions("clf", canary={"challenger": 20}))
    try:
        info = {v: _model(v).version for v in ("1", "2", "3")}
        service.install(service._load({"champion": info["1"], "challenger": info["2"]}))
        assert set(service._models) == {"1", "2"}
        aliases = {"champion": "2", "challenger": "3"}  # both move: 1 is no longer served
        service._registry = SimpleNamespace(model=lambda name: SimpleNamespace(aliases=aliases),
                                            get=lambda name, version: info[version])
        service.install(service._moved({"champion": "1", "challenger": "2"}))
        assert set(service._models) == {"2", "3"} and loaded == ["1", "2", "3"]
        assert {s.alias: s.version for _, s in service.table} == aliases
    finally:
        service.mlflow.shutdown()
