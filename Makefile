# tinysift: the two commands a newcomer needs are `make demo` and `make test`.
# Both run the idempotent set-up first (Debian packages, .venv, offline PlatformIO seed).
VENV := .venv
PY := $(VENV)/bin/python
TINYSIFT := $(VENV)/bin/tinysift

.PHONY: setup demo demo-quick test test-fast lint clean

setup:
	tools/setup.sh

demo: setup
	$(TINYSIFT) demo

demo-quick: setup
	$(TINYSIFT) demo --quick

# Two pytest-xdist workers, a test file per worker at a time (module fixtures build once; runs
# shared by several files are held with a lock: tests/scratch.py), longest files first
# (tests/conftest.py orders them; --no-loadscope-reorder keeps that order).
test: setup
	$(VENV)/bin/ruff check host tests tools
	$(VENV)/bin/pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# Without set-up, for a machine that already has it.
test-fast:
	$(VENV)/bin/pytest -q -x -m "not slow"

lint: setup
	$(VENV)/bin/ruff check host tests tools

clean:
	rm -rf runs/_scratch .pytest_cache
