# The two commands of the README: `make demo` and `make test`. Both create or
# update .venv first (scripts/setup_env.sh, idempotent).
VENV := .venv
PY := $(VENV)/bin/python
INSTRUCTION ?= pick up the red cube

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup_env.sh

demo: setup
	$(VENV)/bin/vla-ros demo "$(INSTRUCTION)"

test: setup
	$(VENV)/bin/ruff check vla_ros test bench
	$(PY) -m pytest -q test

lint: setup
	$(VENV)/bin/ruff check vla_ros test bench

bench: setup
	$(VENV)/bin/vla-ros bench all

clean:
	rm -rf build install log build-interfaces.log
