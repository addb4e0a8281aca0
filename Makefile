# game-analytics: every target works from a clean clone; each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(CURDIR)/.cache/bin
export PATH := $(BIN):$(CURDIR)/$(VENV)/bin:$(PATH)
ARGS ?=

.PHONY: help venv debs tools data envtest crds dashboards lint test e2e bench demo cluster clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed ## the virtualenv with the project and its dev tools

debs: ## Debian packages: PostgreSQL, Redis + Sentinel, Prometheus, Alertmanager, etcd
	bash hack/install-debs.sh

tools: ## helm and kubectl into .cache/bin
	bash hack/install-tools.sh

data: venv ## fetch the real data sets (../shared/DATA.md) into .cache/data
	$(PY) -m game_analytics.data

envtest: debs ## build kube-apiserver + kube-controller-manager from Go modules (cached in .cache/bin)
	bash hack/envtest/build.sh

crds: venv ## regenerate crds/ and the chart's CRDs from the pydantic models
	$(PY) -m game_analytics.api.crdgen --output crds --chart charts/game-analytics

dashboards: venv ## regenerate grafana_dashboards/ from monitoring/dashboards.py
	$(PY) -m game_analytics.monitoring.dashboards --output grafana_dashboards

lint: venv ## static checks
	$(PY) -m ruff check src tests operator benchmarks devtools

test: venv debs tools data ## unit tests and fast integration tests (real Postgres, Redis, promtool, helm)
	$(PY) -m pytest -m "not e2e" $(ARGS)

e2e: venv debs tools data envtest ## tests against a real kube-apiserver (envtest style)
	$(PY) -m pytest -m e2e tests/e2e $(ARGS)

bench: venv debs data ## benchmarks that print figures
	@for b in benchmarks/bench_*.py; do echo "== $$b"; PYTHONPATH=$(CURDIR) $(PY) $$b || exit 1; done

cluster: venv debs tools envtest ## start a local control plane in the foreground (Ctrl-C stops it)
	$(PY) -m devtools.cluster up $(ARGS)

demo: venv debs tools data envtest ## the whole stack on real data, on this machine
	$(PY) -m devtools.demo $(ARGS)

clean: ## remove caches (keeps downloaded data and built binaries)
	rm -rf .pytest_cache .ruff_cache build dist
