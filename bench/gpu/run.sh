#!/usr/bin/env bash
# GPU check for nbops: `nbops run` of the torch notebooks on the GPU, then with
# CUDA_VISIBLE_DEVICES="" (CPU), each tracked into its own local sqlite MLflow store.
# Offline: everything nbops needs that the machine lacks comes from .gpu/wheels.
# Run from the repository root:  bash .gpu/run.sh      (log: $OUT/gpu.log)
# Overrides (for local testing): PY, WHEELS, VENV, EPOCHS_ARGS, NOTEBOOKS
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/.gpu/out}
mkdir -p "$OUT"
LOG=$OUT/gpu.log
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1

PY=${PY:-python3}
WHEELS=${WHEELS:-$ROOT/.gpu/wheels}
VENV=${VENV:-/tmp/nbops-gpu-venv}
NOTEBOOKS=${NOTEBOOKS:-"templates/torch_classifier.ipynb notebooks/digits_mlp.ipynb"}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg GIT_PYTHON_REFRESH=quiet
export MLFLOW_ENABLE_ASYNC_LOGGING=false MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false TQDM_DISABLE=1
export JUPYTER_DATA_DIR=$VENV/jupyter-user JUPYTER_PLATFORM_DIRS=1
T0=$(date +%s)
say() { printf '\n##### %s  (t=%ss)\n' "$*" "$(($(date +%s) - T0))"; }

say "machine"
date -u
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader || echo "no nvidia-smi"
nvidia-smi -L || true
command -v "$PY" && "$PY" -V
"$PY" - <<'EOF'
import torch, numpy, pandas, sklearn
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      "count", torch.cuda.device_count(),
      "name", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
print("numpy", numpy.__version__, "pandas", pandas.__version__, "sklearn", sklearn.__version__)
EOF

say "venv on top of $PY, wheels from $WHEELS"
rm -rf "$VENV"
"$PY" -m venv --without-pip "$VENV" || { echo "FATAL: venv failed"; exit 1; }
SP=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The parent interpreter may itself be a venv (/opt/torch/.venv): --system-site-packages would
# then see the base Python's packages, not torch's. Chain the parent's site-packages instead
# (addsitedir so .pth files in it are honoured); the new venv's own packages come first.
PARENT_SP=$("$PY" -c 'import sys; print(":".join(p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))))')
{
  IFS=: read -ra dirs <<<"$PARENT_SP"
  for d in "${dirs[@]}"; do [ -d "$d" ] && echo "import site; site.addsitedir('$d')"; done
} >"$SP/zz_parent_site.pth"
cat "$SP/zz_parent_site.pth"
ls "$WHEELS"/*.whl | wc -l
# pip: the venv's python sees the parent's pip through the chained site-packages
if "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then PIP=("$VENV/bin/python" -m pip)
else PIP=("$PY" -m pip --python "$VENV/bin/python"); fi
echo "pip: ${PIP[*]} ($("${PIP[@]}" --version))"
pipi() { "${PIP[@]}" install --quiet --no-index --no-deps --disable-pip-version-check --no-warn-script-location "$@"; }
# --no-deps: exactly the wheelhouse (the rest is the machine's own); pip check reports below
pipi "$WHEELS"/*.whl || { echo "FATAL: wheel install failed"; exit 1; }
smoke() {
  "$VENV/bin/python" - <<'EOF2'
import tempfile, pydantic, opentelemetry.proto.trace.v1.trace_pb2, papermill, nbclient, ipykernel, mlflow
from mlflow.tracking import MlflowClient
with tempfile.TemporaryDirectory() as d:
    MlflowClient(f"sqlite:///{d}/smoke.db").search_experiments()
print("smoke ok: mlflow", mlflow.__version__, "pydantic", pydantic.__version__)
EOF2
}
CHECK=$("${PIP[@]}" check 2>&1); echo "$CHECK" | head -20
# newer protobuf / typing-extensions / packaging than the machine's, only when needed
if ! smoke 2>"$VENV/smoke.err" || echo "$CHECK" | grep -q -i -E "(protobuf|typing.extensions|packaging)"; then
  tail -3 "$VENV/smoke.err"
  echo "installing fallback wheels: $(ls "$WHEELS-fallback")"
  pipi "$WHEELS-fallback"/*.whl
  "${PIP[@]}" check 2>&1 | head -20
  smoke || { echo "FATAL: mlflow/papermill/ipykernel do not import"; exit 1; }
fi
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (nbops-gpu)" \
  || { echo "FATAL: kernelspec install failed"; exit 1; }
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
for n in ("mlflow-skinny", "papermill", "nbclient", "ipykernel", "jupyter_client", "sqlalchemy", "alembic"):
    print(n, md.version(n))
from jupyter_client.kernelspec import KernelSpecManager
for name, d in KernelSpecManager().find_kernel_specs().items():
    print("kernelspec", name, d, KernelSpecManager().get_kernel_spec(name).argv[0])
EOF

say "project copy"
WORK=$(mktemp -d /tmp/nbops-gpu-work.XXXX)
tar -C "$ROOT" --exclude=./.gpu --exclude=./.venv --exclude=./.git --exclude=./runs \
  --exclude=./mlflow.db --exclude=./mlruns --exclude=./mlartifacts -cf - . | tar -C "$WORK" -xf -
if command -v git >/dev/null; then
  (cd "$WORK" && git init -q && git add -A && git -c user.name=gpu -c user.email=gpu@check \
    commit -qm "gpu check snapshot" && git log --oneline -1) || true
fi
export PYTHONPATH=$WORK/src
cd "$WORK" || exit 1
ls
"$VENV/bin/python" -c 'import nbops, sys; print("nbops", nbops.__version__, nbops.__file__)'

rc_all=0
run_nbops() { # label expect [VAR=value...]: one `nbops run` of $NOTEBOOKS into its own store
  local label=$1 expect=$2 db=$WORK/mlflow-$1.db rc
  shift 2
  say "nbops run [$label]: $NOTEBOOKS"
  local t1; t1=$(date +%s%N)
  env "$@" "$VENV/bin/python" -m nbops run $NOTEBOOKS --jobs 1 --tracking-uri "sqlite:///$db" \
    --output-dir "runs-$label" ${EPOCHS_ARGS:-}
  rc=$?
  echo "nbops exit code [$label]: $rc   wall: $(( ($(date +%s%N) - t1) / 1000000 )) ms"
  [ "$rc" -eq 0 ] || rc_all=1
  say "recorded [$label]"
  env "$@" "$VENV/bin/python" "$ROOT/.gpu/inspect_runs.py" "sqlite:///$db" "$label" "$expect" \
    2>"$WORK/inspect-$label.err"
  [ $? -eq 0 ] || { rc_all=1; tail -5 "$WORK/inspect-$label.err"; }
  find "runs-$label" -name '*.kernel.log' 2>/dev/null | while read -r k; do echo "--- $k"; tail -40 "$k"; done
  cp -r "runs-$label" "$OUT/" 2>/dev/null || true
}

# the GPU expectation is enforced only where a GPU is (local dry runs have none)
GPU_EXPECT=$("$PY" -c 'import torch; print("gpu" if torch.cuda.is_available() else "")' 2>/dev/null)
run_nbops gpu "$GPU_EXPECT" NBOPS_GPU_CHECK=1
run_nbops cpu cpu CUDA_VISIBLE_DEVICES=

say "done: overall rc=$rc_all"
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader 2>/dev/null || true
sleep 1  # let tee flush the last lines into gpu.log
exit "$rc_all"
