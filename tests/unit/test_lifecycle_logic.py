"""Pure pieces of the model lifecycle: references, ranking, data-parameter detection, tolerance."""

import math

import pytest

from nbops.core.errors import RegistryError
from nbops.lifecycle.rerun import Lineage, MetricDiff, ReproduceResult, find_data_param
from nbops.lifecycle.versions import ModelInfo, VersionInfo, parse_ref, rank_key


def _version(number: str, **metrics) -> VersionInfo:
    return VersionInfo("m", number, "", "", metrics, {})


def test_parse_ref():
    assert parse_ref("clf") == ("clf", None, None)
    assert parse_ref("clf@challenger") == ("clf", "challenger", None)
    assert parse_ref("team/clf/3") == ("team/clf", None, "3")
    for bad in ("clf@", "@x", "clf/x"):
        with pytest.raises(RegistryError):
            parse_ref(bad)


@pytest.mark.parametrize("higher, order", [(True, ["2", "3", "1", "4"]), (False, ["1", "3", "2", "4"])])
def test_rank_by_metric_in_its_direction_missing_last(higher, order):
    info = ModelInfo("m", "loss" if not higher else "acc", higher, ())
    key = "acc" if higher else "loss"
    versions = [_version("1", **{key: 0.1}), _version("2", **{key: 0.9}), _version("3", **{key: 0.5}),
                _version("4", **{key: math.nan})]
    assert [v.version for v in sorted(versions, key=rank_key(info))] == order


def test_data_parameter_detection():
    lin = Lineage(_version("1"), "nb.ipynb", "abc", False, {}, None, {}, {})
    assert find_data_param(lin, {"dataset": "iris", "data_path": "", "seed": 1}, None) == "data_path"
    assert find_data_param(lin, {"train_file": "a.csv", "epochs": 3}, None) == "train_file"
    assert find_data_param(lin, {"x": "", "source": ""}, "source") == "source"
    with pytest.raises(RegistryError, match="cannot tell which parameter") as info:
        find_data_param(lin, {"x": "", "y": 2}, None)
    assert "--data-param" in info.value.one_line()
    with pytest.raises(RegistryError, match="no parameter 'nope'"):
        find_data_param(lin, {"x": ""}, "nope")


def test_reproduce_tolerance_and_missing_metrics():
    def result(*diffs, tolerance=1e-6):
        return ReproduceResult(_version("1"), "run", True, tolerance, list(diffs))

    assert result(MetricDiff("acc", 0.9, 0.9), MetricDiff("f1", 0.8, 0.8 + 1e-9)).ok
    assert not result(MetricDiff("acc", 0.9, 0.91)).ok
    assert result(MetricDiff("acc", 0.9, 0.91), tolerance=0.02).ok
    assert [m.name for m in result(MetricDiff("acc", 0.9, None)).mismatches] == ["acc"]
    assert result(MetricDiff("loss", math.nan, math.nan)).ok
    assert not result().ok  # nothing compared is not a reproduction


def test_project_path_maps_a_linked_file_back_to_the_project(tmp_path):
    from nbops.core.config import Settings
    from nbops.lifecycle.lineage import project_path as _project_path

    settings = Settings(root=tmp_path / "proj")
    tree = tmp_path / "worktree" / "proj"
    assert _project_path(settings, tree, "data/a.csv") == "data/a.csv"
    assert _project_path(settings, tree, str((tmp_path / "proj" / "data" / "a.csv").resolve())) == "data/a.csv"
    assert _project_path(settings, tree, str((tree / "data" / "b.csv").resolve())) == "data/b.csv"
    assert _project_path(settings, tree, "/elsewhere/c.csv") == "/elsewhere/c.csv"
