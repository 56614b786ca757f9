"""`vla-ros bench all|list|report`: run the bench/ scripts one after another and render docs/BENCHMARKS.md.

Scripts run one at a time, each in its own process: on a 2-core machine two
benchmarks side by side would measure each other. `--quick` gives every script
small sizes (a smoke run: the figures are not the reported ones).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# Known scripts in the order they run (cheap first), with the arguments of a quick run.
# Any other bench/bench_*.py runs after them, with no arguments.
QUICK_ARGS: dict[str, list[str]] = {
    "sim": ["--episodes", "7"],
    "safety": ["--fuzz-periods", "5000", "--episodes", "3", "--moves", "20"],
    "camera": ["--repeats", "50", "--seconds", "3"],
    "speech": ["--clips", "20"],
    "policy_latency": ["--repeats", "100"],
    "pipeline": ["--seconds", "5", "--repeats", "1"],
    "policy_success": ["--episodes", "6", "--policies", "builtin"],
    "policy_heads": ["--episodes", "3", "--steps", "20", "--work-dir", "runs/heads-quick"],
    "peer_act": ["--episodes", "6"],
    "faults": ["--repeats", "1"],
    "fuzz": ["--seconds", "1"],
    "soak": ["--duration", "60"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("all", "list", "report"),
                        help="all: run every benchmark, then render the report; list: the benchmarks; "
                        "report: render docs/BENCHMARKS.md from the existing results")
    parser.add_argument("--quick", action="store_true", help="small sizes everywhere (smoke run, not for the report)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks (names from `list`)")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME", help="do not run these benchmarks")
    parser.add_argument("--results", metavar="DIR", help="result JSON directory (default bench/results)")
    parser.add_argument("--out", metavar="FILE.md", help="report to write (default docs/BENCHMARKS.md)")


def bench_dir() -> Path:
    from vla_ros.paths import share_dir

    directory = share_dir() / "bench"
    if not (directory / "benchlib.py").is_file():
        raise FileNotFoundError(f"no bench/ scripts in {directory.parent}: `vla-ros bench` runs from a source checkout")
    return directory


def benchmarks(directory: Path) -> list[str]:
    found = sorted(p.stem.removeprefix("bench_") for p in directory.glob("bench_*.py"))
    return [name for name in QUICK_ARGS if name in found] + [name for name in found if name not in QUICK_ARGS]


def run_script(directory: Path, name: str, quick: bool, results: Path) -> dict:
    """Run bench_<name>.py to completion; its output goes to <results>/logs/<name>.log."""
    log = results / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(directory / f"bench_{name}.py"), *(QUICK_ARGS.get(name, []) if quick else [])]
    env = {**os.environ, "VLA_ROS_BENCH_RESULTS": str(results)}
    started = time.monotonic()
    print(f"bench {name}: {' '.join(command[1:])}", flush=True)
    with log.open("w") as output:
        code = subprocess.call(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=directory.parent)
    seconds = round(time.monotonic() - started, 1)
    status = "ok" if code == 0 else f"failed (exit {code}, see {log})"
    print(f"bench {name}: {status} in {seconds} s", flush=True)
    return {"name": name, "status": status, "seconds": seconds, "quick": quick}


def run(args: argparse.Namespace) -> int:
    from vla_ros.bench_report import render

    try:
        directory = bench_dir()
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    names = benchmarks(directory)
    if args.action == "list":
        print("\n".join(names))
        return 0
    unknown = sorted(set(args.only or []) | set(args.skip)) if args.only or args.skip else []
    unknown = [n for n in unknown if n not in names]
    if unknown:
        print(f"error: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}", file=sys.stderr)
        return 2
    results = Path(args.results) if args.results else directory / "results"
    out = Path(args.out) if args.out else directory.parent / "docs" / "BENCHMARKS.md"
    run_record = None
    if args.action == "all":
        selected = [n for n in names if (not args.only or n in args.only) and n not in args.skip]
        run_record = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "scripts": [run_script(directory, name, args.quick, results) for name in selected]}
        results.mkdir(parents=True, exist_ok=True)
        (results / "run.json").write_text(json.dumps(run_record, indent=2))
    elif (results / "run.json").is_file():
        run_record = json.loads((results / "run.json").read_text())
    render(results, out, run_record)
    print(f"wrote {out}")
    failed = [s["name"] for s in (run_record or {}).get("scripts", []) if s["status"] != "ok"]
    if args.action == "all" and failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
