# lambdad — the commands a newcomer needs. `make serve` sets up and starts the server;
# `make test` sets up and runs every test. Both work on a fresh Debian/Ubuntu machine.
# The interpreter the venv is made from: the distribution's /usr/bin/python3 when it is 3.11 or
# newer, else the first python3 on PATH. Debian and Ubuntu build theirs with PGO and LTO; the
# server's event loop needs about a fifth less CPU per invoke on it than on a plain source build
# such as pyenv's (docs/performance.md). `make clean` first to move an existing venv over.
SYSTEM_PYTHON := /usr/bin/python3
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell $(SYSTEM_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $(SYSTEM_PYTHON) || echo python3)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= .lambdad
HOST ?= 127.0.0.1
PORT ?= 9000

.PHONY: setup serve test lint bench clean system-deps console-e2e-deps compiled compiler-deps

setup: system-deps console-e2e-deps $(STAMP) compiled

# The invoke path's modules compiled with mypyc (lambdad/compiled.py). Quick when the build matches
# the sources; without a C compiler lambdad warns and runs its Python sources.
compiled: compiler-deps $(STAMP)
	@$(BIN)/python -m lambdad.compiler

# A C compiler and Python's headers for it, installed when run as root and missing (best effort).
compiler-deps:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		command -v cc >/dev/null 2>&1 || { echo "installing gcc (apt-get) for the compiled hot path"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null \
			|| echo "WARNING: gcc not installed; lambdad will run its Python sources"; }; \
		$(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
			|| { echo "installing python3-dev (apt-get) for the compiled hot path"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-dev >/dev/null || true; }; \
	fi

# Debian packages lambdad needs at run time: bubblewrap (sandboxes), e2fsprogs (mkfs.ext4 for each
# sandbox's /tmp), util-linux (losetup, setpriv, prlimit). Installed only when run as root and
# missing, so repeated runs are quick.
SYSTEM_TOOLS := bwrap mkfs.ext4 losetup setpriv prlimit
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing bubblewrap, e2fsprogs, util-linux (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap e2fsprogs util-linux >/dev/null; \
		else \
			echo "WARNING: missing$$missing; install bubblewrap e2fsprogs util-linux, or run with --sandbox process"; \
		fi; \
	fi

# Headless Chromium and playwright-core for the console's browser test (tests/console_e2e).
# Best effort: where they cannot be installed, that one test skips and says why.
console-e2e-deps:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing (apt-get) for the console browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
			|| echo "WARNING:$$missing not installed; the console browser test will skip"; \
	fi
	@if command -v npm >/dev/null 2>&1 && [ ! -d tests/console_e2e/node_modules/playwright-core ]; then \
		(cd tests/console_e2e && npm ci --no-audit --no-fund --silent) \
			|| echo "WARNING: playwright-core not installed; the console browser test will skip"; \
	fi

# Debian's python3 makes venvs only with python3-venv (ensurepip): installed when root and missing;
# where that fails, the venv is made from the python3 on PATH instead.
$(STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
		if ! $(PYTHON) -c 'import ensurepip' 2>/dev/null && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing python3-venv (apt-get) to make the venv from $(PYTHON)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null || true; \
		fi; \
		$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "WARNING: $(PYTHON) made no venv; using python3"; python3 -m venv $(VENV); }; \
	fi
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

serve: setup
	$(BIN)/lambdad serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

lint: setup
	$(BIN)/ruff check lambdad tests bench
	$(BIN)/ruff format --check lambdad tests bench
	$(BIN)/mypy

test: setup lint
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache lambdad/_compiled
