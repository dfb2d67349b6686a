"""`nbops run --changed` in the project of tests/unit/test_plan.py: it runs the changed notebooks
on real kernels, and the next plan finds their results in MLflow."""

from __future__ import annotations

from nbops.cli.main import main
from tests.conftest import commit_all, git
from tests.unit.test_plan import plan, repo  # noqa: F401  (repo: the fixture, shared)


def test_run_changed_then_cached_then_no_cache(repo, capsys):  # noqa: F811  (the fixture)
    base = git(repo, "rev-parse", "HEAD")
    (repo / "src" / "demo" / "features.py").write_text(
        "from .helpers import twice\n\ndef double(x):\n    return twice(x) + 0\n")
    commit_all(repo, "change features")
    assert sorted(plan(capsys, "--base", base)) == ["notebooks/a.ipynb", "notebooks/b.ipynb"]

    assert main(["run", "--changed", "--base", base]) == 0
    out = capsys.readouterr().out
    assert "notebooks/a.ipynb" in out and "notebooks/b.ipynb" in out and "notebooks/g.ipynb" not in out
    assert plan(capsys, "--base", base) == {}  # cached: the results are in MLflow
    assert main(["run", "--changed", "--base", base]) == 0
    assert "nothing to run" in capsys.readouterr().out
    entries = plan(capsys, "--base", base, "--no-cache")
    assert sorted(entries) == ["notebooks/a.ipynb", "notebooks/b.ipynb"]

    # the embedded store's fast path answers exactly what MLflow's own search answers
    from nbops.ci.plan import _successful_runs_mlflow, _successful_runs_sqlite

    fingerprints = [e["fingerprint"] for e in entries.values()] + ["0" * 64]
    fast = _successful_runs_sqlite(repo / "mlflow.db", fingerprints)
    assert fast == _successful_runs_mlflow(f"sqlite:///{repo / 'mlflow.db'}", fingerprints)
    assert len(fast) == 2
