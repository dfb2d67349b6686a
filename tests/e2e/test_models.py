"""`nbops models`, `nbops retrain`, `nbops reproduce`: real runs, a real sqlite MLflow registry,
the real CLI in a subprocess."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from tests.conftest import write_notebook
from tests.lifecycle import MODEL, build_trained_project, cli, git, make_data, nbops

# A notebook whose accuracy is a parameter: the ranking and gate tests need metrics they choose.
SCORED = [
    ("code", "acc = 0.9\nseed = 0", ["parameters"]),
    ("code", "import pandas as pd\nfrom sklearn.dummy import DummyClassifier\n"
             "from nbops import kit, record\n"
             "X = pd.DataFrame({'a': [0.0, 1.0, 2.0, 3.0]}); y = [0, 1, 0, 1]\n"
             "record('accuracy', acc)\n"
             "kit.log_sklearn_model(DummyClassifier().fit(X, y), X)"),
]
META = {"model": {"name": "scored", "gates": ["accuracy >= 0.5"], "compare": "accuracy",
                  "higher_is_better": True}}


def _pyproject(root, registry: str) -> None:
    (root / "pyproject.toml").write_text(
        '[project]\nname = "reg"\n\n[tool.nbops]\nruns_dir = "runs"\n\n[tool.nbops.registry]\n' + registry)


@pytest.fixture(scope="module")
def scored_project(tmp_path_factory):
    """Versions 1, 2, 3 of `scored` with accuracy 0.95, 0.85 and 0.7 (version 1 is best)."""
    root = tmp_path_factory.mktemp("registry") / "proj"
    root.mkdir()
    _pyproject(root, "")
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\nruns/\n")
    git(root, "init", "-q", "-b", "main")
    for i, acc in enumerate((0.95, 0.85, 0.7), 1):
        cells = [("code", f"acc = {acc}\nseed = 0", ["parameters"]), SCORED[1]]
        write_notebook(root / "notebooks" / f"v{i}.ipynb", cells, nbops=META)
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "scored")
    nbops(root, "run", "notebooks/v1.ipynb", "notebooks/v2.ipynb", "notebooks/v3.ipynb",
          "--jobs", "1", "--quiet")
    return root


def _client(root):
    """A client of ROOT's store for runs and registry alike: without registry_uri, MLflow takes
    the process-wide registry URI, which an earlier in-process command pointed at its own store."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def run(root, *args, check: bool = True):
    """The CLI in-process: (code, stdout, stderr); check=True asserts exit 0."""
    code, out, err = cli(root, *args)
    if check:
        assert code == 0, (args, out, err)
    return code, out, err


def _listed(root) -> list[dict]:
    return json.loads(run(root, "models", "list", "scored", "--format", "json")[1])["versions"]


def test_list_ranks_by_metric_and_promotion_needs_gates_and_approval(scored_project, tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(scored_project, root)
    rows = _listed(root)
    assert [r["version"] for r in rows] == ["1", "2", "3"]  # by accuracy, not by number
    assert [r["value"] for r in rows] == [0.95, 0.85, 0.7]
    assert all(r["git_sha"] and r["notebook"].startswith("notebooks/v") and r["params_digest"]
               for r in rows)
    table = run(root, "models", "list", "scored")[1]
    assert table.index("0.95") < table.index("0.85") < table.index("0.7")

    run(root, "models", "promote", "scored", "1", "--alias", "champion", "--by", "alice")
    # a stricter bar for champion than for registration: version 3 does not clear it
    _pyproject(root, 'champion_gates = ["accuracy >= 0.8"]\n')
    code, _, err = run(root, "models", "promote", "scored", "3", "--alias", "champion", check=False)
    assert code == 2 and "Traceback" not in err
    assert "cannot be champion" in err and "accuracy >= 0.8" in err
    assert len(err.strip().splitlines()) == 1

    # approval required: refused until approved, then allowed
    _pyproject(root, "require_approval = true\n")
    code, _, err = run(root, "models", "promote", "scored", "3", "--alias", "champion", check=False)
    assert code == 2 and "not approved" in err and "nbops models approve" in err
    out = run(root, "models", "approve", "scored", "3", "--by", "bob", "--note", "looked at drift")[1]
    assert "approved by bob" in out
    out = run(root, "models", "promote", "scored", "3", "--alias", "champion", "--by", "carol")[1]
    assert "scored@champion -> version 3 (was version 1), by carol" in out
    rows = {r["version"]: r for r in _listed(root)}
    assert rows["3"]["aliases"] == ["champion"] and rows["3"]["approved_by"] == "bob"
    assert rows["1"]["aliases"] == []

    # rollback restores the previous champion, and is itself recorded
    out = run(root, "models", "rollback", "scored")[1]
    assert "scored@champion -> version 1 (was version 3)" in out
    assert {r["version"]: r for r in _listed(root)}["1"]["aliases"] == ["champion"]
    code, _, err = run(root, "models", "rollback", "scored", check=False)  # nothing before version 1
    assert code == 2 and "no earlier version" in err

    client = _client(root)
    events = sorted((k, json.loads(v)) for k, v in client.get_registered_model("scored").tags.items()
                    if k.startswith("nbops.alias_event.champion."))
    assert [(e["action"], e["from"], e["to"], e["by"]) for _, e in events] == [
        ("promote", None, "1", "alice"), ("promote", "1", "3", "carol"), ("rollback", "3", "1", events[2][1]["by"])]
    assert all(e["at"].endswith("Z") for _, e in events)
    assert client.get_model_version("scored", "3").tags["nbops.approval_note"] == "looked at drift"


def test_bad_registry_input_is_one_line_exit_2(scored_project):
    for args, needle in [
        (("models", "list", "scorde"), "did you mean 'scored'"),
        (("models", "promote", "scored", "9", "--alias", "champion"), "no version 9"),
        (("models", "approve", "scored", "1", "--by", " "), "--by needs a name"),
        (("reproduce", "scored@nope"), "no alias 'nope'"),
        (("retrain", "scored@champion", "--data", "x.csv"), "takes a model name"),
    ]:
        code, _, err = run(scored_project, *args, check=False)
        assert code == 2, (args, err)
        assert needle in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def one_version(tmp_path_factory):
    """clf v1 (champion, knn) trained on data/train.csv, then a later commit on main."""
    root = build_trained_project(tmp_path_factory.mktemp("rerun") / "proj", kinds=("knn",))
    (root / "NOTES.md").write_text("a later commit: HEAD is not the champion's sha\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "later")
    return root


def test_reproduce_a_seeded_run_gives_zero_differences(one_version):
    done = nbops(one_version, "reproduce", f"{MODEL}@champion", "--quiet")
    assert "reproduced clf v1: every metric within" in done.stdout
    assert "uncommitted" not in done.stdout and "data changed" not in done.stdout
    lines = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.strip()}
    assert lines["accuracy"][-1] == "+0" and lines["f1"][-1] == "+0"
    assert git(one_version, "worktree", "list").count("\n") == 0  # the worktree is gone


def test_retrain_registers_a_challenger_at_the_champions_sha_with_the_new_data(one_version, tmp_path):
    from nbops.notebook.inputs import file_digest

    client = _client(one_version)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    sha = champion.tags["nbops.git_sha"]
    assert sha != git(one_version, "rev-parse", "HEAD")
    new = make_data(tmp_path / "fresh.csv", seed=3, shift={"f2": 2.0})
    done = nbops(one_version, "retrain", MODEL, "--data", str(new), "--quiet")
    assert "v2 is challenger" in done.stdout and "champion" in done.stdout
    assert "nbops models promote clf 2 --alias champion" in done.stdout  # not promoted by itself
    challenger = client.get_model_version_by_alias(MODEL, "challenger")
    assert str(challenger.version) == "2"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    run = client.get_run(challenger.run_id)
    assert run.data.tags["nbops.git_sha"] == sha == challenger.tags["nbops.git_sha"]
    assert run.data.tags["nbops.git_dirty"] == "false"  # the code at the sha, untouched
    assert run.data.tags["nbops.retrain_of"] == "clf/1"
    assert run.data.params["data_path"] == str(new)
    digests = {d.dataset.digest for d in run.inputs.dataset_inputs}
    assert file_digest(new)[:32] in digests
    assert git(one_version, "worktree", "list").count("\n") == 0


def test_reproduce_fails_when_a_metric_differs(one_version):
    client = _client(one_version)
    v1 = client.get_model_version(MODEL, "1")
    original = client.get_run(v1.run_id).data.metrics["accuracy"]
    client.log_metric(v1.run_id, "accuracy", original - 0.01)  # the registered value moves
    try:
        code, out, _ = run(one_version, "reproduce", f"{MODEL}/1", "--quiet", check=False)
        assert code == 1
        assert "did not reproduce: accuracy differ by more than" in out
        _, out, _ = run(one_version, "reproduce", f"{MODEL}/1", "--quiet", "--tolerance", "0.02")
        assert "every metric within 0.02" in out
    finally:
        client.log_metric(v1.run_id, "accuracy", original)


def test_monitor_retrain_chains_drift_to_a_challenger(one_version, tmp_path):
    from nbops.notebook.inputs import file_digest

    same = tmp_path / "same.csv"
    shutil.copy(one_version / "data" / "train.csv", same)
    code, out, _ = run(one_version, "monitor", MODEL, "--reference", "data/train.csv",
                       "--current", str(same), "--out", str(tmp_path / "m0"), "--retrain", "--quiet",
                       check=False)
    assert code == 0 and "no drift" in out and "retrained" not in out  # no drift: no retrain
    code, _, err = run(one_version, "monitor", f"{MODEL}/1", "--reference", "data/train.csv",
                       "--current", str(same), "--retrain", check=False)
    assert code == 2 and "--retrain retrains the champion" in err
    # with auto_promote (and no approval required) a better challenger becomes champion itself.
    # The training rows with f4 moved two standard deviations for one class only: f4 drifts, and
    # the problem gets easier, so the challenger is better (f4 moved for every row would leave the
    # nearest neighbours, and so the accuracy, exactly as they were: a tie, not better).
    pyproject = one_version / "pyproject.toml"
    original = pyproject.read_text()
    pyproject.write_text(original + "\n[tool.nbops.registry]\nauto_promote = true\n")
    frame = pd.read_csv(one_version / "data" / "train.csv")
    frame.loc[frame["target"] == 1, "f4"] += 2.0 * frame["f4"].std()
    shifted = tmp_path / "shifted.csv"
    frame.to_csv(shifted, index=False)
    client = _client(one_version)
    try:
        code, out, _ = run(one_version, "monitor", MODEL, "--reference", "data/train.csv",
                           "--current", str(shifted), "--out", str(tmp_path / "m1"), "--retrain",
                           "--quiet", check=False)
        assert code == 1 and "drift: f4 (" in out, out
        assert "is challenger" in out and "challenger is better on accuracy" in out, out
        assert "(auto_promote)" in out, out
        challenger = client.get_model_version_by_alias(MODEL, "challenger")
        champion = client.get_model_version_by_alias(MODEL, "champion")
        assert str(champion.version) == str(challenger.version) != "1"
    finally:  # the module's project keeps version 1 as its champion
        pyproject.write_text(original)
        client.set_registered_model_alias(MODEL, "champion", "1")
    run_ = client.get_run(challenger.run_id)
    assert run_.data.params["data_path"] == str(shifted)
    assert file_digest(shifted)[:32] in {d.dataset.digest for d in run_.inputs.dataset_inputs}
    assert run_.data.tags["nbops.retrain_of"] == "clf/1"


def test_run_from_a_subfolder_registers_into_the_projects_store(scored_project, tmp_path):
    """MLflow checks a new version's `models:/` source through its process-wide URI, which
    defaults to ./mlflow.db of the working directory; nbops points it at the project's store."""
    root = tmp_path / "proj"
    shutil.copytree(scored_project, root)
    done = nbops(root / "notebooks", "run", "v2.ipynb", "--quiet")
    assert "scored v4" in done.stdout, done.stdout
    assert not (root / "notebooks" / "mlflow.db").exists()
