# The two commands of the README: `make demo` and `make test`. Both create or
# update .venv first (scripts/setup_env.sh, idempotent).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup_env.sh

# The whole graph over DDS against the simulated arm with the shipped policy: instructions
# on /voice_command, outcome and timings printed, MP4s and an MCAP recording in runs/demo.
# The gripper instructions are ones the shipped policy solves every time (docs/POLICY.md).
demo: setup
	$(VENV)/bin/vla-ros demo "close the gripper" "open the gripper" --out runs/demo

test: setup
	$(VENV)/bin/ruff check vla_ros test bench
	$(PY) -m pytest -q test

lint: setup
	$(VENV)/bin/ruff check vla_ros test bench

bench: setup
	$(VENV)/bin/vla-ros bench all

clean:
	rm -rf build install log build-interfaces.log
