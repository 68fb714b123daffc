# One command to run the demo, one to run the tests. Each bootstraps everything it needs
# (uv in .tools/, the locked environment in .venv/) on a machine with only Python 3.11+.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
PY := $(VENV)/bin/python

export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export DO_NOT_TRACK := 1
export RECOUP_HOME ?= $(CURDIR)/work
export BENTOML_HOME ?= $(RECOUP_HOME)/bentoml

.PHONY: setup setup-pip demo bento lint typecheck format test test-fast test-slow lock bench audit-deps clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $@

## also Debian's chromium (browser tests) and postgresql (tests with a real server), when missing and run as root
setup: $(VENV)/.synced
	@.ci/ensure-chromium
	@.ci/ensure-postgresql

## Plain-pip alternative to uv (same pinned versions, exported from uv.lock)
setup-pip:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .

demo: setup
	$(VENV)/bin/recoup demo

## The scoring service as a Bento, with the champion of $(BENTOML_HOME)'s store (after `make demo` or
## `recoup train --promote`); then `bentoml containerize recoup:latest`. See docs/service.md, "Building a Bento".
bento: setup
	PATH="$(CURDIR)/.tools/bin:$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/bentoml build

## Lint, format check and type check (ruff, mypy; their settings in pyproject.toml); `make format` rewrites the files
lint: setup typecheck
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## Type check of features, training, serving and recoup (mypy; cache in .mypy_cache)
typecheck: setup
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup lint
	$(PY) -m pytest -q -m "not slow" --durations=10
	$(PY) -m pytest -q -m slow

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

lock: $(UV)
	$(UV) lock --python $(PYTHON)
	$(UV) export --frozen --all-extras --no-hashes --no-emit-project -o requirements.lock >/dev/null

## All benchmarks (long: about an hour on 2 cores); each prints the figures quoted in docs/
bench: setup
	$(PY) bench/bench_rulebook.py
	$(PY) bench/bench_generate.py --claims 100000 1000000
	$(PY) bench/bench_x12.py
	$(PY) bench/bench_features.py
	$(PY) bench/bench_train.py --sizes 250000 500000 1000000
	$(PY) bench/bench_audit.py --claims 1000000
	$(PY) bench/bench_service.py

## Known vulnerabilities in the locked dependencies: a release step that needs the network (PyPI's JSON
## API, or OSV with AUDIT_FLAGS="-s osv"); --strict fails when a package could not be checked
## (without it, unreachable services end in "No known vulnerabilities found"). See docs/security.md.
AUDIT_FLAGS ?=
audit-deps: setup
	$(VENV)/bin/pip-audit -r requirements.lock --disable-pip --no-deps --strict $(AUDIT_FLAGS)

clean:
	rm -rf $(VENV) .tools work .pytest_cache .mypy_cache .ruff_cache
