"""nbops/lab/mlflow_ui.py: the installed MLflow UI still keeps, under the key nbops sets, whether
it has opened its assistant panel on its own (the lab's MLflow tab keeps the panel closed by
setting it). Part of the version matrix tier: a release that renames the key fails here, not in
a user's lab."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from nbops.lab.mlflow_ui import AUTO_OPENED, opening_page


def _ui_bundle() -> str:
    spec = importlib.util.find_spec("mlflow")  # not imported: this reads its files only
    assert spec is not None and spec.submodule_search_locations
    js = Path(next(iter(spec.submodule_search_locations))) / "server" / "js" / "build" / "static" / "js"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in sorted(js.glob("*.js")))


def test_mlflow_ui_keeps_the_auto_open_flag_under_nbops_key():
    bundle = _ui_bundle()
    found = re.findall(r'key:"(mlflow\.assistant\.fab\.autoOpenedOnFirstLoad)",version:(\d+)', bundle)
    assert found, "MLflow's UI no longer auto-opens its assistant under this key: see lab/mlflow_ui.py"
    assert {f"{key}_v{version}" for key, version in found} == {AUTO_OPENED}
    # how its localStorage hook names a stored value: `${key}_v${version}`, the value as JSON
    assert re.search(r"`\$\{\w+\}_v\$\{\w+\}`", bundle)


def test_opening_page_sets_the_flag_only_when_unset_then_opens_the_target():
    page = opening_page("/lab/mlflow/#/experiments/1/runs?workflowType=machine_learning")
    script = page.split("<script>", 1)[1].split("</script>", 1)[0]
    assert f"localStorage.getItem({json.dumps(AUTO_OPENED)}) === null" in script
    assert 'location.replace("/lab/mlflow/#/experiments/1/runs?workflowType=machine_learning")' in script


def test_opening_page_cannot_be_closed_early_by_its_target():
    page = opening_page("/x/</script><script>alert(1)</script>")
    assert page.count("<script>") == 1 and page.count("</script>") == 1
    assert "\\u003c/script>" in page
