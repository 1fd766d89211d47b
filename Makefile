# screenpop: `make demo` to see it, `make test` to check it. Everything runs from a local .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo serve test test-fast bench bench-quick bench-cluster bench-count lint fmt clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)  ## run the service with three sample back-office systems on http://127.0.0.1:8000
	$(BIN)/screenpop demo

serve: $(STAMP)  ## run the service with the SCREENPOP_* settings of the environment
	$(BIN)/screenpop serve

test: $(STAMP)  ## every test: unit, contract, API, end-to-end, browser
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## skip the end-to-end and browser tests
	$(BIN)/python -m pytest -m "not e2e"

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## screenpop against the floor, every scenario (~6 min): bench/results.json, RESULTS.md, latency.png
	$(BIN)/python -m bench.run

bench-quick: $(BENCH_STAMP)  ## every benchmark scenario, shortened (about 1.5 minutes); writes to /tmp/screenpop-bench-quick
	$(BIN)/python -m bench.run --quick --out /tmp/screenpop-bench-quick

bench-cluster: $(BENCH_STAMP)  ## the cluster scenario alone (~1.5 min): two instances behind HAProxy; merged into bench/results.json
	$(BIN)/python -m bench.run --only cluster

bench-count: $(BENCH_STAMP)  ## Python function calls per call, screenpop and floor: a cost measure noise does not move (~1 min)
	$(BIN)/python -m bench.count

lint: $(STAMP)  ## ruff; the rooms' import rules and "no import cycle" (import-linter); mypy --strict
	$(BIN)/ruff check screenpop connectors telephony tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix screenpop connectors telephony tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
