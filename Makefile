# Two commands do all set-up on a fresh clone:
#   make demo   - create .venv if needed, then run the whole pipeline on embedded defaults
#   make test   - create .venv if needed, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,infra]'
	sh devtools/install-actionlint.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m devtools.demo

test: $(STAMP) lint
	$(PY) -m pytest -n 2 -q

# The gates CI runs before the tests: ruff (rules in pyproject.toml) and mypy over pubsys/.
lint: $(STAMP)
	$(VENV)/bin/ruff check pubsys tests devtools bench infra
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/repo_build.py
	$(PY) bench/snapshot_upload.py
	$(PY) bench/ssm_publish.py

clean:
	rm -rf demo-out build *.egg-info .pytest_cache
