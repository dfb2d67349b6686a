import math

import numpy as np
import pytest

from nbops.notebook.scraps import read_records, split_metrics
from nbops.record import encode


def as_notebook(*pairs):
    outputs = [{"output_type": "display_data", "data": d, "metadata": m} for d, m in pairs]
    return {"cells": [{"cell_type": "code", "source": "", "outputs": outputs}]}


def test_encode_uses_scrapbooks_mimetypes_and_metadata():
    data, meta = encode("accuracy", np.float64(0.5))
    assert data == {"application/scrapbook.scrap.json+json":
                    {"name": "accuracy", "data": 0.5, "encoder": "json", "version": 1}}
    assert meta == {"scrapbook": {"name": "accuracy", "data": True, "display": False}}
    data, _ = encode("note", "1.5")
    assert data["application/scrapbook.scrap.text+json"]["data"] == "1.5"


def test_round_trip_and_split():
    nb = as_notebook(encode("a", 1), encode("b", [1, 2]), encode("c", "x"), encode("a", 2.5),
                     encode("n", float("nan")), encode("flag", True), encode("arr", np.arange(3)))
    records = read_records(nb)
    assert records == {"a": 2.5, "b": [1, 2], "c": "x", "n": "nan", "flag": True, "arr": [0, 1, 2]}
    metrics, others = split_metrics(records)
    assert metrics == {"a": 2.5}
    assert set(others) == {"b", "c", "n", "flag", "arr"}
    assert not any(isinstance(v, float) and math.isnan(v) for v in metrics.values())


def test_unencodable_values_are_refused():
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        encode("obj", object())
    with pytest.raises(TypeError, match="None cannot be recorded"):
        encode("none", None)
    with pytest.raises(ValueError, match="non-empty string"):
        encode("", 1)


def test_locate_failure_prefers_the_cell_papermill_flagged():
    from nbops.run.failure import locate_failure

    err = {"output_type": "error", "ename": "ValueError", "evalue": "boom", "traceback": []}
    expected_err = {"output_type": "error", "ename": "KeyError", "evalue": "k", "traceback": []}
    nb = {"cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": []},
        {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "outputs": []},
        # an expected error, in a cell tagged raises-exception, comes first
        {"cell_type": "code", "metadata": {"tags": ["raises-exception"], "papermill": {"exception": False}},
         "outputs": [expected_err]},
        {"cell_type": "markdown", "metadata": {}},
        {"cell_type": "code", "metadata": {"papermill": {"exception": True, "start_time": "t"}},
         "outputs": [err]},
    ]}
    failure = locate_failure(nb)
    assert (failure.cell, failure.ename, failure.evalue) == (4, "ValueError", "boom")
