"""Print what nbops recorded in the MLflow store: one block per run, plus per-cell times.

Usage: python inspect_runs.py TRACKING_URI LABEL [EXPECT]
EXPECT "gpu": every run must have FINISHED and recorded a `device` other than "cpu";
EXPECT "cpu": every run must have FINISHED and recorded device "cpu". Exit 1 otherwise.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

uri, label = sys.argv[1], sys.argv[2]
expect = sys.argv[3] if len(sys.argv) > 3 else ""
failures: list[str] = []
client = MlflowClient(uri)
exps = client.search_experiments()
runs = client.search_runs([e.experiment_id for e in exps], order_by=["attributes.start_time ASC"])
print(f"== {label}: {len(runs)} run(s) in {uri}")
for run in runs:
    t, m, p = run.data.tags, run.data.metrics, run.data.params
    wall = (run.info.end_time - run.info.start_time) / 1000 if run.info.end_time else float("nan")
    records: dict = {}
    try:
        with tempfile.TemporaryDirectory() as d:
            path = client.download_artifacts(run.info.run_id, "nbops/records.json", d)
            records = json.loads(Path(path).read_text())
    except Exception as exc:  # noqa: BLE001
        records = {"<error>": str(exc)}
    print(f"-- run {run.info.run_id[:8]} notebook={t.get('nbops.notebook')} status={run.info.status}")
    print(f"   RECORD device        = {records.get('device')!r}")
    print(f"   tag nbops.device     = {t.get('nbops.device')!r}  (nvidia-smi, host-level)")
    print(f"   accuracy={m.get('accuracy')} f1={m.get('f1')} train_loss={m.get('train_loss')}")
    print(f"   nbops.duration_s={t.get('nbops.duration_s')} mlflow run wall={wall:.2f}s")
    print(f"   params: epochs={p.get('epochs')} hidden={p.get('hidden')} layers={p.get('layers')} "
          f"batch_size={p.get('batch_size')} use_gpu={p.get('use_gpu')}")
    print(f"   model_uri={records.get('model_uri')} error={t.get('nbops.error')}")
    dev = records.get("device")
    if run.info.status != "FINISHED":
        failures.append(f"{t.get('nbops.notebook')}: status {run.info.status}")
    if expect == "gpu" and (not dev or dev == "cpu"):
        failures.append(f"{t.get('nbops.notebook')}: device {dev!r}, expected a GPU name")
    if expect == "cpu" and dev != "cpu":
        failures.append(f"{t.get('nbops.notebook')}: device {dev!r}, expected 'cpu'")
    out = t.get("nbops.output")
    nb_path = Path(out) if out else None
    if nb_path and nb_path.exists():
        nb = json.loads(nb_path.read_text())
        cells = [(i, c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
        parts = []
        for i, c in cells:
            d = (c.get("metadata", {}).get("papermill", {}) or {}).get("duration")
            first = (c["source"] if isinstance(c["source"], str) else "".join(c["source"])).strip().splitlines()
            head = first[0][:28] if first else ""
            if d is not None:
                parts.append(f"[{i}] {d:.2f}s {head!r}")
        print("   cell durations: " + "; ".join(parts))

for mv in client.search_model_versions():
    print(f"== model {mv.name} v{mv.version} run={mv.run_id[:8]} status={mv.status}")

if not runs:
    failures.append("no runs recorded")
if expect:
    print(f"CHECK [{label}] expect={expect}: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
sys.exit(1 if expect and failures else 0)
