# Two entry points: `make demo` (the whole service on embedded defaults) and `make test` (the full suite, what CI
# runs); `make test-fast` is the edit-test loop (no test that trains, starts Ray or starts a server: under 90 s).
# Both create .venv and install the project on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean

# --no-cache-dir: the venv is about 7 GB (torch's CUDA build); a pip cache beside it only costs disk.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-cache-dir --upgrade pip
	$(PY) -m pip install -q --no-cache-dir -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mahppo demo --out demo_out

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m pip install -q --no-cache-dir -e ".[dev,bench]"
	$(PY) benchmarks/env_throughput.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
