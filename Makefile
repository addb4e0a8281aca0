# game-analytics: every target works from a clean clone; each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(CURDIR)/.cache/bin
export PATH := $(BIN):$(CURDIR)/$(VENV)/bin:$(PATH)
ARGS ?=

.PHONY: help lock venv debs tools data envtest prometheus-operator node crds dashboards chart-assets lint test fuzz e2e bench demo cluster clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

lock: ## refresh requirements.lock: resolve pyproject.toml's dependencies afresh in a throwaway venv
	rm -rf .cache/lock-venv && $(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/python -m pip install --quiet --upgrade pip
	.cache/lock-venv/bin/python -m pip install --quiet '.[dev]'
	{ echo "# pinned by 'make lock' from pyproject.toml on $$(date -u +%F); make venv installs exactly these"; \
	  .cache/lock-venv/bin/python -m pip freeze --exclude game-analytics; } > requirements.lock
	rm -rf .cache/lock-venv

venv: $(VENV)/.installed ## the virtualenv with the project and its dev tools

debs: ## Debian packages: PostgreSQL, Redis + Sentinel, Prometheus, Alertmanager, etcd
	bash hack/install-debs.sh

tools: ## helm and kubectl into .cache/bin
	bash hack/install-tools.sh

data: venv ## fetch the real data sets (../shared/DATA.md) into .cache/data
	$(PY) -m game_analytics.data

envtest: debs ## build kube-apiserver + kube-controller-manager from Go modules (cached in .cache/bin)
	bash hack/envtest/build.sh

prometheus-operator: ## prometheus-operator + config-reloader and their real CRDs from the Go module (cached)
	bash hack/prometheus-operator/build.sh

node: venv debs envtest ## the node tier: kubelet, kube-proxy, kube-scheduler, CoreDNS and the images (cached)
	bash hack/envtest/build.sh node
	bash hack/coredns/build.sh
	$(PY) -m devtools.images build

crds: venv ## regenerate crds/ and the chart's CRDs from the pydantic models
	$(PY) -m game_analytics.api.crdgen --output crds --chart charts/game-analytics

dashboards: venv ## regenerate grafana_dashboards/ from monitoring/dashboards.py (and the chart's copies)
	$(PY) -m game_analytics.monitoring.dashboards --output grafana_dashboards
	$(PY) -m devtools.chart_assets

chart-assets: venv ## copy alert_rules/ and grafana_dashboards/ into the chart (charts/game-analytics/files/)
	$(PY) -m devtools.chart_assets

lint: venv ## static checks
	$(PY) -m ruff check src tests operator benchmarks devtools

test: venv debs tools data ## unit tests and fast integration tests (real Postgres, Redis, promtool, helm)
	$(PY) -m pytest -m "not e2e" $(ARGS)

fuzz: venv ## the CR fuzz test at the issue's count: 2,000 admitted objects per kind (make test runs 20; 10-30 min per kind on a busy 2-core machine), then 2,000 event batches through the real ingest worker (about 11 min)
	$(PY) -m pytest -q -s tests/controller/test_fuzz_crs.py tests/ingest/test_fuzz_events.py --hypothesis-profile=long --timeout=0 $(ARGS)

e2e: venv debs tools data envtest prometheus-operator node ## tests against a real kube-apiserver (envtest style)
	$(PY) -m pytest -m e2e tests/e2e $(ARGS)

bench: venv debs tools data envtest prometheus-operator ## benchmarks that print figures (ARGS=--quick: small sizes, as CI runs them; bench_operator_scale needs the control plane)
	@failed=""; for b in benchmarks/bench_*.py; do echo "== $$b $(ARGS)"; \
	  PYTHONPATH=$(CURDIR) $(PY) $$b $(ARGS) || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "benchmarks failed:$$failed"; exit 1; fi

cluster: venv debs tools envtest ## start a local control plane in the foreground (Ctrl-C stops it; ARGS=--node: with a node, after make node)
	$(PY) -m devtools.cluster up $(ARGS)

demo: venv debs tools data envtest prometheus-operator ## the whole stack on real data, on this machine
	$(PY) -m devtools.demo $(ARGS)

clean: ## remove caches (keeps downloaded data and built binaries)
	rm -rf .pytest_cache .ruff_cache build dist
