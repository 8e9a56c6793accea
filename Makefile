# Two commands on a fresh machine: `make demo` runs the main job, `make test` runs the test suite.
# `make lint`: ruff (pyflakes, sorted and absolute imports) and the import contracts of .importlinter.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --constraint constraints.txt

.PHONY: demo test lint clean

$(VENV)/.base: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) -e ".[test]"
	$(PY) -m pip install --quiet --no-deps "onnx2torch>=1.5"  # its torchvision requirement cannot be met here (constraints.txt)
	touch $@

$(VENV)/.lint: $(VENV)/.base
	$(PIP) -e ".[lint]"
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/modelinv demo --out demo-out

test: $(VENV)/.test
	$(PY) -m pytest -n auto --dist loadfile

lint: $(VENV)/.lint
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) demo-out .pytest_cache
