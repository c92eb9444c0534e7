# Dockyard's two set-up commands: `make demo` and `make test` (as root).
# Everything the project needs is installed from here: Debian packages with
# apt-get, Python packages with pip from pyproject.toml into .venv.

PYTHON    ?= python3
VENV      := .venv
PY        := $(VENV)/bin/python
BIN       ?= /usr/local/bin
SCRIPTS   := dockyard-runtime dockyard dockyardd dockyard-registry

# Debian packages: what the engine needs at run time, and the peers the tests
# compare against (runc, podman, dockerd, skopeo, umoci, a registry).
RUN_DEBS  := busybox-static libseccomp2 iproute2 python3-venv tini
TEST_DEBS := runc podman docker.io skopeo umoci docker-registry curl docker-compose

.PHONY: demo test install deps test-deps lint bench clean

demo: install
	./demo/demo.sh

test: test-deps $(VENV)/.installed-test install
	$(VENV)/bin/ruff check dockyard tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -p no:cacheprovider tests

# `install` runs after any pip install: pip rewrites the console scripts,
# and write-launchers replaces two of them with lean ones.
install: deps $(VENV)/.installed
	@# Bytecode ahead of time: every command pays its imports, and with
	@# PYTHONDONTWRITEBYTECODE set nothing would ever be cached.
	@$(PY) -m compileall -q dockyard >/dev/null
	@$(PY) scripts/write-launchers.py
	@for s in $(SCRIPTS); do ln -sf "$(CURDIR)/$(VENV)/bin/$$s" "$(BIN)/$$s"; done

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	touch $@

deps:
	@./.ci/apt-need $(RUN_DEBS)

test-deps:
	@./.ci/apt-need $(TEST_DEBS)

lint:
	$(VENV)/bin/ruff check dockyard tests bench
	$(VENV)/bin/lint-imports

bench: test-deps $(VENV)/.installed-test install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
