# Two entry points: `make demo` and `make test`. Both create .venv with python3 first.
# `make test` lints once, then runs the suite on every supported Python it finds (3.10-3.13,
# one .venv-3.X each; see .ci/test-matrix). PYTHONS="3.13" make test narrows it.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PY

.PHONY: demo test lint servers venv dist bench clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/python -m wechatpay_chain demo

lint: $(BIN)/.installed
	$(BIN)/ruff check wechatpay_chain tests tools .ci $(wildcard bench)
	$(BIN)/mypy wechatpay_chain .ci/check_dist.py

# The store tests need the PostgreSQL and Redis binaries (installed when missing, as root).
servers:
	.ci/servers

test: lint servers
	.ci/test-matrix

# The sdist and the wheel: built, checked (twine, contents) and the sdist's tests run on the wheel.
dist: $(BIN)/.installed
	$(BIN)/python .ci/check_dist.py

bench: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/run.py

.PHONY: docs
docs: $(BIN)/.installed  # the site in build/site; tests/test_docs.py builds it in `make test`
	PYTHON=$(BIN)/python tools/build_docs.sh

clean:
	rm -rf .venv .venv-3.* build dist *.egg-info
