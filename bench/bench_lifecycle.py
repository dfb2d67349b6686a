"""`nbops models promote` and `nbops models approve` against a plain `MlflowClient` script doing the
same writes (issue 23: both waited 10-30 s, silently, importing mlflow), on the embedded sqlite
store: goal <= 0.4 each, and each under 1.5 s. ../shared/BENCHMARKS.md.

The store is generated here (seeded, as bench_models.py's: one registered model with --versions
versions). The peer reads the model and version and writes what nbops writes: the alias and its
event tag (promote), the approval tags (approve). Both sides move the champion between two
versions, every call a real move (the calls of both sides move it in turn).

Usage: python bench/bench_lifecycle.py [--versions 4] [--pairs 5]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import BIN, alternate, report, save  # noqa: E402
from bench_models import POPULATE, _call  # noqa: E402

PROMOTE_SCRIPT = """
import json, sys, time
from mlflow.tracking import MlflowClient
uri, name, version = sys.argv[1], sys.argv[2], sys.argv[3]
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
model = client.get_registered_model(name)
client.get_model_version(name, version)
client.set_registered_model_alias(name, "champion", version)
client.set_registered_model_tag(name, f"nbops.alias_event.champion.{time.time_ns():020d}",
                                json.dumps({"to": version, "from": model.aliases.get("champion")}))
print(f"{name}@champion -> version {version}")
"""

APPROVE_SCRIPT = """
import json, sys, time
from mlflow.tracking import MlflowClient
uri, name, version, by = sys.argv[1:5]
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
client.get_registered_model(name)
client.get_model_version(name, version)
at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
client.set_model_version_tag(name, version, f"nbops.approval.{time.time_ns():020d}",
                             json.dumps({"by": by, "at": at, "note": ""}))
client.set_model_version_tag(name, version, "nbops.approved_by", by)
client.set_model_version_tag(name, version, "nbops.approved_at", at)
print(f"{name} version {version} approved by {by}")
"""


def measure(uri: str, root: Path, pairs: int) -> list[dict]:
    # the calls, both sides in turn, move the champion between versions 2 and 1 (1 to start)
    moves = itertools.cycle(("2", "1"))
    names = itertools.count()

    def promote_peer():
        _call([BIN / "python", "-c", PROMOTE_SCRIPT, uri, "clf", next(moves)], root, uri)

    def promote_ours():
        _call([BIN / "nbops", "models", "promote", "clf", next(moves), "--alias", "champion", "--by", "bench"],
              root, uri)

    def approve_peer():
        _call([BIN / "python", "-c", APPROVE_SCRIPT, uri, "clf", "3", f"peer{next(names)}"], root, uri)

    def approve_ours():
        _call([BIN / "nbops", "models", "approve", "clf", "3", "--by", f"ours{next(names)}"], root, uri)

    results = []
    for what, peer, mine, target in (("promote", promote_peer, promote_ours, "promote-embedded"),
                                     ("approve", approve_peer, approve_ours, "approve-embedded")):
        ta, tb = alternate(peer, mine, pairs)
        result = report(f"models {what} on the embedded sqlite store",
                        (f"MlflowClient script, the same reads and writes as {what}", ta),
                        (f"nbops models {what}", tb), target, 0.4)
        worst = max(tb)
        print(f"{what}: slowest nbops call {worst:.3f} s (goal < 1.5 s) {'PASS' if worst < 1.5 else 'FAIL'}")
        result["nbops_max_s"] = round(worst, 3)
        results.append(result)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        (root / "pyproject.toml").write_text("[tool.nbops]\n")
        uri = f"sqlite:///{root / 'mlflow.db'}"
        _call([BIN / "python", "-c", POPULATE, uri, max(args.versions, 3)], root, uri)
        results = measure(uri, root, args.pairs)
    print(f"\n(total {time.perf_counter() - started:.0f} s; medians: "
          + ", ".join(f"{r['target']} {r['nbops_s']:.3f} s vs {r['baseline_s']:.3f} s" for r in results) + ")")
    save("lifecycle", results)
    return 0 if all(r["verdict"] == "PASS" and r["nbops_max_s"] < 1.5 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
