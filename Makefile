# The two commands of the README: `make demo` and `make test`. Both create or
# update .venv first (scripts/setup_env.sh, idempotent).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup_env.sh

# Until `vla-ros demo` (the full graph over DDS, issue 9) lands: the simulated arm
# solving seeded tasks with the scripted expert, with a video per episode.
demo: setup
	$(VENV)/bin/vla-ros eval --policy expert --episodes 7 --seed 0 --split seen --json runs/demo/eval.json --video runs/demo

test: setup
	$(VENV)/bin/ruff check vla_ros test bench
	$(PY) -m pytest -q test

lint: setup
	$(VENV)/bin/ruff check vla_ros test bench

bench: setup
	$(VENV)/bin/vla-ros bench all

clean:
	rm -rf build install log build-interfaces.log
