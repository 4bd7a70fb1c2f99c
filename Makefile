# Set-up and the two jobs of README.md. Everything installs into .venv from PyPI.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
DEMO_DIR ?= demo-data
DEMO_EVENTS ?= 200000
DEMO_SEED ?= 7

.PHONY: run report test install lint format bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The main job: the server on the embedded store, loaded with a demo cluster's audit log
# (ending now); it prints its URL and the admin token it created. Ctrl-C stops it.
run: install
	mkdir -p $(DEMO_DIR)
	rm -rf $(DEMO_DIR)/demo.duckdb $(DEMO_DIR)/demo.duckdb.wal $(DEMO_DIR)/demo.duckdb.spool \
		$(DEMO_DIR)/demo.duckdb.quarantine.jsonl $(DEMO_DIR)/demo.duckdb.auth.json
	$(VENV)/bin/kubetrail serve --demo --demo-events $(DEMO_EVENTS) --db $(DEMO_DIR)/demo.duckdb

# The earlier main job, still useful without a server: demo data → store → report.
report: install
	mkdir -p $(DEMO_DIR)
	rm -f $(DEMO_DIR)/report.duckdb $(DEMO_DIR)/report.duckdb.wal
	$(VENV)/bin/kubetrail demo generate --events $(DEMO_EVENTS) --seed $(DEMO_SEED) --end now \
		--output $(DEMO_DIR)/audit.jsonl
	$(VENV)/bin/kubetrail ingest $(DEMO_DIR)/audit.jsonl --cluster demo --db $(DEMO_DIR)/report.duckdb
	$(VENV)/bin/kubetrail report --db $(DEMO_DIR)/report.duckdb

# The whole test suite, lint included.
test: install
	bash .ci/system-deps.sh
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: install
	$(VENV)/bin/ruff format src tests bench

bench: install
	$(PY) bench/ingest_bench.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache
