# nbops: `make demo` runs the example notebooks into the embedded MLflow store; `make test`
# type-checks src/ and runs the whole test suite with coverage; `make test-fast` runs the unit
# tier only (the inner loop). All create .venv and install what they need, once.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast test-matrix lint bench clean dist tools system test-setup matrix-venvs

# `make demo` installs only what the demo needs (nbops and the torch extra), with uv configured as
# pip is on this machine (scripts/install_venv.py: pip's mirrors and constraints; plain pip where
# uv cannot be had). uv links packages from its cache, so a fresh clone installs in seconds; no
# .pyc ahead of time: Python compiles the modules a run imports. `make install`/`make test` add
# the dev extra the same way.
DEMO_STAMP := $(VENV)/.demo-stamp

$(DEMO_STAMP): pyproject.toml scripts/install_venv.py
	@echo "== [1/2] nbops, the CPU build of PyTorch and what the demo needs (.[torch]) into $(VENV)"
	# torch pinned: pip and uv take the wheel on local disk instead of the newest release with
	# several GB of CUDA packages
	$(PYTHON) scripts/install_venv.py $(VENV) "torch==2.13.0" -e ".[torch]"
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml $(DEMO_STAMP)
	@echo "== the development and test tools (.[dev])"
	# with uv too: pip took 40 s to add the dev extra to the demo's venv, uv 6 s
	$(PYTHON) scripts/install_venv.py $(VENV) "torch==2.13.0" -e ".[dev,torch]"
	# .pyc for everything, ahead of the suite: where PYTHONDONTWRITEBYTECODE is set (CI machines,
	# this sandbox) Python writes none, so each of the suite's hundreds of processes and kernels
	# compiled what it imported again (`import mlflow` 6.5 s instead of 2.0 s; a four-notebook
	# pipeline 46 s instead of 15 s). ~45 s once. Not in `make demo`: three notebooks do not
	# repay it (bench_demo.py). Exit status ignored: some packages ship Python 2 templates.
	@echo "== byte-compiling $(VENV) and src/ (once)"
	-$(BIN)/python -m compileall -q -j0 $(VENV)/lib src >/dev/null 2>&1
	touch $(STAMP)

install: $(STAMP)

demo: $(DEMO_STAMP)
	@echo "== [2/2] the example notebooks (notebooks/*.ipynb) into ./mlflow.db"
	$(BIN)/nbops run notebooks/*.ipynb
	@echo "Open the results with: $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db"

# What the tests use from Debian: chromium (the browser tests), PostgreSQL (tests/server: a team's
# stack; its server programs live in /usr/lib/postgresql/*/bin; moto's S3 comes from PyPI) and
# rsync (gitlab-ci-local's shell executor). Installed with one apt-get where we can (root, apt):
# two at once would wait on dpkg's lock. Where we cannot, the tests say what is missing (and fail
# under CI=true rather than skip).
CHROMIUM := /usr/bin/chromium
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) /usr/lib/postgresql/initdb)
RSYNC := /usr/bin/rsync

system:
	-@missing=""; \
	[ -x $(CHROMIUM) ] || missing="$$missing chromium"; \
	[ -x $(PG_INITDB) ] || missing="$$missing postgresql"; \
	[ -x $(RSYNC) ] || missing="$$missing rsync"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "== apt-get install$$missing"; \
	  (apt-get install -y -qq $$missing >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null && apt-get install -y -qq $$missing >/dev/null)); fi

# tests/e2e/test_gitlab_pipeline.py runs the shipped GitLab pipeline with gitlab-ci-local (npm;
# 4.56.x runs on Node 20) in .tools/, as scripts/gitlab-ci-local/package.json says: its `re2`
# dependency replaced by RegExp under that name (scripts/gitlab-ci-local/re2/index.js says why:
# its native module was compiled from C++ on every clean machine, ~140 s of CPU).
GITLAB_CI_LOCAL := .tools/node_modules/.bin/gitlab-ci-local
GITLAB_CI_LOCAL_STAMP := .tools/.gitlab-ci-local-4.56

# the stamp is written only when gitlab-ci-local then starts
$(GITLAB_CI_LOCAL_STAMP): scripts/gitlab-ci-local/package.json scripts/gitlab-ci-local/re2/index.js
	-command -v npm >/dev/null && mkdir -p .tools && cp scripts/gitlab-ci-local/package.json .tools/ && \
	  npm install --prefix .tools --no-audit --no-fund -q && \
	  $(GITLAB_CI_LOCAL) --version >/dev/null && touch $@

tools: $(GITLAB_CI_LOCAL_STAMP) system

# The whole suite, with coverage of src/nbops, subprocesses included (the nbops CLI, servers and
# kernels started by the tests are measured through coverage's `patch = ["subprocess"]`, see
# pyproject.toml). The total is printed; .ci/run sets COV_FLOOR, the figure it must not drop below.
# In three parts, so that a 2-core machine's cores are busy and Ray never starts on a loaded one:
# - Everything but the Ray tests, on three pytest-xdist workers (CI has 2 cores; most tests spend
#   much of their time waiting on a kernel, a server or a subprocess, so a third worker fills the
#   cores: 22.6 min against 25.1 with two, clean clones, 2026-12-07; five test processes at once,
#   the matrix beside three workers, took 33 min: the cores were oversubscribed). `--dist
#   loadgroup` with the groups tests/conftest.py gives (a file each; tests/server's stack and the
#   browser tests each on one worker), handed out longest first (--no-loadscope-reorder keeps the
#   conftest's order; xdist's own put the longest groups last). PYTEST_WORKERS=0 runs serially.
# - Then the Ray tests (marked `ray` by tests/conftest.py) beside the version matrix tier
#   (scripts/matrix.py, tests/matrix.txt: the store tests and the fences on the oldest and newest
#   MLflow, papermill, nbclient and uvicorn nbops supports, each in its own cached
#   .venv-mlflow-<version>/, a core each; its output printed whole when it ends). A Ray head's
#   raylet gives its Python agent about 27 s to start and dies after; beside three busy workers
#   it once never came up in three tries (tests/ray_cluster.py says more); beside the matrix it
#   comes up in 15-17 s. The Ray tests' coverage is added to the rest (--cov-append) and the
#   total checked there.
# Each part runs whatever the others did; `make test` fails if any failed (pytest's 5, "no tests
# ran", is no failure: PYTEST_ARGS may select none of one part's tests).
COV_FLOOR ?= 0
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 3

# Before the suite, at once: the venv then lint (ruff, mypy), the apt packages, gitlab-ci-local
# (npm) and the version matrix's venvs; each one's output in one piece (-Otarget). Independent
# downloads and installs overlap: on a fresh 2-core machine this is most of a few minutes.
test-setup:
	$(MAKE) --no-print-directory -j4 -Otarget lint tools matrix-venvs

# a set that will not install is reported by the matrix tier itself, after the suite
matrix-venvs:
	-$(PYTHON) scripts/matrix.py --install-only

test: test-setup
	rm -f .coverage .coverage.*
	status=0; \
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder -m "not ray" \
	  --durations=25 --cov \
	  --cov-report= $(PYTEST_ARGS) || { code=$$?; [ $$code = 5 ] || status=$$code; }; \
	log=$$(mktemp); trap 'kill $$matrix 2>/dev/null || true; rm -f $$log' EXIT; \
	$(PYTHON) scripts/matrix.py >$$log 2>&1 & matrix=$$!; \
	$(BIN)/python -m pytest -m ray --durations=5 --cov --cov-append --cov-report=term:skip-covered \
	  --cov-fail-under=$(COV_FLOOR) $(PYTEST_ARGS) || { code=$$?; [ $$code = 5 ] || status=$$code; }; \
	wait $$matrix || status=1; cat $$log; \
	exit $$status

# The version matrix tier alone (venvs made once, reused while pyproject.toml and the pins stay).
test-matrix:
	time $(PYTHON) scripts/matrix.py

# The unit tier: no kernel, no MLflow store, no server, no Ray, no nbops subprocess. Under a
# minute on a 2-core machine.
test-fast: $(STAMP)
	time $(BIN)/python -m pytest tests/unit -m "not slow" -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts $(wildcard bench)
	$(BIN)/mypy src

# Every benchmark prints its table and verdicts; a missed goal is reported, not an error, and the
# verdicts of the whole run are appended to bench/RESULTS.md.
bench: $(STAMP)
	rm -rf bench/out
	@for f in $(wildcard bench/bench_*.py); do echo "== $$f"; $(BIN)/python $$f || echo "(a goal was missed: see above)"; done
	$(BIN)/python bench/update_results.py

# The wheel and sdist in dist/ (templates, CI files and the pre-commit config inside as real files,
# read through the src/nbops/data symlinks), checked as PyPI would check them.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

clean:
	rm -rf runs mlruns mlflow.db .nbops .pytest_cache .mypy_cache .coverage .coverage.*
