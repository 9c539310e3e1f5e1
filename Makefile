# ftrag-desktop: every target sets itself up on a fresh machine.
#   make install   create/update .venv (idempotent: nothing to do when up to date)
#   make run       start the desktop app
#   make test      lint, types, import contracts, then the whole test suite (slow tests too)
#   make bench     the benchmarks; figures go to bench/RESULTS.md
#   make .venv-peer  the LlamaIndex peer of the benchmarks, in a virtualenv of its own
#   make screenshots  docs/screenshots/*.png from the real app under Xvfb
#   make package   the installers: PyInstaller folder, .deb and .tar.gz in dist/ (packaging/)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PIP    := $(PY) -m pip
APP_STAMP  := $(VENV)/.stamp-app
TEST_STAMP := $(VENV)/.stamp-test
SYS_STAMP  := $(VENV)/.stamp-system
PKG_STAMP  := $(VENV)/.stamp-package
DIST_STAMP := dist/.stamp-build
# What the installers are built from: a change to any of these rebuilds them.
PKG_SOURCES = $(wildcard $(shell git ls-files ftrag_desktop packaging resources 2>/dev/null)) \
	pyproject.toml requirements/lock.txt
PEER_VENV  := .venv-peer
PEER_STAMP := $(PEER_VENV)/.stamp
PEER_PYTHON ?= python3.11
# The S3-compatible server (moto) that tests/test_shared_index.py starts on loopback, in its own
# virtualenv: its botocore needs a python-dateutil older than the one .venv pins.
S3_VENV    := .venv-s3
S3_STAMP   := $(S3_VENV)/.stamp
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF
PYTEST_ARGS ?=
WHEELS ?= $(HOME)/.cache/ftrag-desktop/wheels

export QT_QPA_PLATFORM ?= offscreen

.PHONY: install install-test run test lint bench package clean system-deps screenshots .venv-peer

install: $(APP_STAMP)

$(APP_STAMP): pyproject.toml requirements/lock.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -c requirements/lock.txt -e .
	@touch $@

install-test: $(TEST_STAMP) $(S3_STAMP)

$(S3_STAMP): requirements/s3-server.txt
	@test -x $(S3_VENV)/bin/python || $(PYTHON) -m venv $(S3_VENV)
	$(S3_VENV)/bin/pip install -q --disable-pip-version-check -r requirements/s3-server.txt
	@touch $@

$(TEST_STAMP): $(APP_STAMP) requirements/nodeps.txt requirements/llama.txt requirements/train.txt
	@# [train]: torch, transformers and peft for the fine-tuning tests (torch's CPU build, pinned).
	$(PIP) install -q --disable-pip-version-check -c requirements/lock.txt \
	  -c requirements/train.txt -e '.[dev,train]'
	$(PIP) install -q --disable-pip-version-check --no-deps -r requirements/nodeps.txt
	@# llama-cpp-python compiles from source (about 7 min); keep the wheel outside the checkout.
	@ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel -q --disable-pip-version-check --no-deps -w $(WHEELS) -r requirements/llama.txt
	$(PIP) install -q --disable-pip-version-check -c requirements/lock.txt --find-links $(WHEELS) -r requirements/llama.txt
	@touch $@

# Debian packages the suite needs (fonts for Qt offscreen, GL/xkb libraries for PySide6, Xvfb).
system-deps: $(SYS_STAMP)

$(SYS_STAMP):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || true
	@./.ci/system-deps.sh
	@touch $@

run: $(APP_STAMP)
	@env -u QT_QPA_PLATFORM $(PY) -m ftrag_desktop

lint: $(TEST_STAMP)
	$(BIN)/ruff check ftrag_desktop tests bench
	$(BIN)/ruff format --check ftrag_desktop tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The installers are built as a step of their own before the tests (a build, not a test: about
# 5 minutes), and again only when a packaged file changed; tests/test_packaging.py then installs
# and runs exactly those files (FTRAG_PREBUILT_DIST), and builds them itself when run alone.
# One pytest worker per core (pytest-xdist): much of the suite waits on subprocesses, sockets
# and timers, so two workers on this 2-core machine take 650 s where one took 910-960 s.
test: $(SYS_STAMP) $(TEST_STAMP) $(S3_STAMP) lint $(DIST_STAMP)
	FTRAG_PREBUILT_DIST=$(DIST_STAMP) $(BIN)/pytest -n auto --durations=25 $(PYTEST_ARGS)

bench: $(TEST_STAMP) $(PEER_STAMP)
	$(PY) bench/run_all.py

# The peer that bench/vs_llamaindex.py runs beside ours (LlamaIndex, pinned exactly), in its own
# virtualenv: its dependencies must never move the lancedb/pyarrow/numpy pinned in .venv.
.venv-peer: $(PEER_STAMP)

$(PEER_STAMP): requirements/peer-llamaindex.txt
	@test -x $(PEER_VENV)/bin/python || $(PEER_PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install -q --disable-pip-version-check \
	  -r requirements/peer-llamaindex.txt
	@touch $@

screenshots: $(SYS_STAMP) $(TEST_STAMP)
	$(PY) docs/make_screenshots.py

# PyInstaller copies the system's xcb libraries into the bundle: system-deps installs them first.
$(PKG_STAMP): $(APP_STAMP)
	$(PIP) install -q --disable-pip-version-check -c requirements/lock.txt pyinstaller pyinstaller-hooks-contrib
	@touch $@

package: $(SYS_STAMP) $(PKG_STAMP)
	$(PY) packaging/build.py
	@touch $(DIST_STAMP)

$(DIST_STAMP): $(SYS_STAMP) $(PKG_STAMP) $(PKG_SOURCES)
	$(PY) packaging/build.py
	@touch $@

clean:
	rm -rf $(VENV) $(PEER_VENV) $(S3_VENV) build dist .pytest_cache .mypy_cache .ruff_cache
