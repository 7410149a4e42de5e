# Livechain — the two commands are `make demo` and `make test`; both install what they need first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ANVIL := node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
# Debian packages: chromium drives the dashboard browser tests; wrk and nginx are the benchmark baseline.
DEB_PACKAGES := chromium wrk nginx-light

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP) $(ANVIL) .deb-installed

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(ANVIL): package.json
	npm install --no-audit --no-fund --loglevel=error
	@test -x $(ANVIL) || { echo "anvil binary missing after npm install"; exit 1; }
	touch $(ANVIL)

# Installs Debian packages only when one is missing (idempotent; needs root or sudo).
.deb-installed:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$missing; \
	fi
	@touch .deb-installed

demo: install
	$(BIN)/livechain demo

test: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q tests

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports --no-cache

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) node_modules .deb-installed .pytest_cache
