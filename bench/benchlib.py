"""What every bench/ script shares: machine description, percentiles, and the JSON result file."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

# `vla-ros bench all --results DIR` points this elsewhere (tests, trial runs) through the environment.
RESULTS_DIR = Path(os.environ.get("VLA_ROS_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def machine() -> dict:
    """Cores and CPU model of this machine (noisy shared machines: always report them with figures)."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform()}


def percentiles(samples_seconds, scale: float = 1e3) -> dict:
    """p50/p90/p99/max/mean of samples (seconds), in milliseconds by default."""
    values = np.asarray(samples_seconds, dtype=float) * scale
    return {"p50": float(np.percentile(values, 50)), "p90": float(np.percentile(values, 90)),
            "p99": float(np.percentile(values, 99)), "max": float(values.max()), "mean": float(values.mean()),
            "count": int(values.size)}


def save(name: str, results: dict) -> Path:
    """Write bench/results/<name>.json with the machine and a timestamp, print it, return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **results}
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    print(json.dumps(payload, indent=2))
    return path
