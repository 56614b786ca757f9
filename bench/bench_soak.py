"""Soak: the whole graph for --duration seconds, watching every node's memory and diagnostics.

Brings up the simulated graph (bringup plan, each node its own process) with the camera at
--camera-rate (30 Hz, 320x240 by default, the simulator's configured size), gives a new
instruction every --period seconds, and every --sample seconds reads:

- the resident memory (VmRSS, /proc/PID/status) of every node process;
- every numeric value the nodes publish on /diagnostics: counters (camera frames received,
  dropped, throttled; vla_node holds, discarded inferences, policy errors; the safety
  filter's rejected commands and hold outputs; the simulator's rejected commands ...) and
  gauges (latencies, rates).

Reports per node the RSS growth (MB) and its linear-fit slope (MB/min; also over the second
half of the run, after warm-up), each diagnostic value at the start and end and its change,
node exits, and saves
bench/results/soak.json. Not part of the test suite: run it by hand, alone on the machine.
Usage: bench_soak.py [--duration 600] [--period 20] [--sample 5] [--camera-rate 30] [--log-dir DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from benchlib import save

INSTRUCTIONS = ("pick up the red cube", "open the gripper", "go home", "close the gripper",
                "push the blue cylinder left")


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB; None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def diagnostic_values(probe) -> dict[str, float]:
    """'<diagnostic status>/<key>' -> the latest of every numeric value on /diagnostics."""
    values = {}
    for name, (_, status) in list(probe.diagnostics.items()):
        for item in status.values:
            try:
                values[f"{name}/{item.key}"] = float(item.value)
            except ValueError:
                continue
    return values


def slope_mb_per_min(times: np.ndarray, values: np.ndarray) -> float | None:
    return float(np.polyfit(times / 60.0, values, 1)[0]) if len(times) >= 3 else None


def summary(nodes: dict, exits: dict) -> dict:
    """The figures the targets table reads: exits, and the worst node's growth and late slope."""
    slopes = [n["slope_second_half_mb_per_min"] for n in nodes.values() if n["slope_second_half_mb_per_min"] is not None]
    return {"node_exits": len(exits), "max_growth_mb": max(n["growth_mb"] for n in nodes.values()),
            "max_slope_second_half_mb_per_min": max(slopes) if slopes else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="s of soak after start-up")
    parser.add_argument("--period", type=float, default=20.0, help="s between instructions")
    parser.add_argument("--sample", type=float, default=5.0, help="s between samples")
    parser.add_argument("--camera-rate", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--log-dir", help="keep every node's log here (default: a temporary directory)")
    args = parser.parse_args()

    from vla_ros.graph_probe import running_sim_graph

    samples: list[dict] = []
    instructions: list[dict] = []
    with running_sim_graph(args.log_dir, seed=90_001, task={"task": "pick", "object": "red cube"},
                           camera_rate=args.camera_rate, image_size=(args.width, args.height),
                           record_commands=False) as (graph, probe):  # hours of 100 Hz commands: count only
        start = time.monotonic()
        next_instruction = next_sample = start
        while time.monotonic() - start < args.duration:
            now = time.monotonic()
            if now >= next_instruction:
                text = INSTRUCTIONS[len(instructions) % len(INSTRUCTIONS)]
                instructions.append({"t": round(now - start, 1), "text": text,
                                     "previous_status": probe.policy_state()[1]})
                probe.say(text)
                next_instruction += args.period
            if now >= next_sample:
                samples.append({"t": now - start,
                                "rss_mb": {node.spec.name: rss_mb(node.pid) for node in graph.nodes},
                                "diagnostics": diagnostic_values(probe), "commands": probe.command_count})
                next_sample += args.sample
            time.sleep(0.05)
        exits = {node.spec.name: node.returncode() for node in graph.nodes if node.returncode() is not None}

    times = np.array([s["t"] for s in samples])
    nodes = {}
    for name in samples[0]["rss_mb"]:
        rss = np.array([s["rss_mb"][name] if s["rss_mb"][name] is not None else np.nan for s in samples])
        alive = ~np.isnan(rss)
        half = alive & (times >= times[-1] / 2)
        nodes[name] = {"rss_start_mb": round(float(rss[alive][0]), 1), "rss_end_mb": round(float(rss[alive][-1]), 1),
                       "rss_max_mb": round(float(np.nanmax(rss)), 1),
                       "growth_mb": round(float(rss[alive][-1] - rss[alive][0]), 1),
                       "slope_mb_per_min": slope_mb_per_min(times[alive], rss[alive]),
                       "slope_second_half_mb_per_min": slope_mb_per_min(times[half], rss[half])}
    first, last = samples[0]["diagnostics"], samples[-1]["diagnostics"]
    diagnostics = {key: {"start": first.get(key), "end": value, "change": value - first.get(key, 0.0)}
                   for key, value in sorted(last.items())}
    duration = times[-1] - times[0]
    save("soak", {
        "duration_s": args.duration, "instruction_period_s": args.period, "sample_period_s": args.sample,
        "camera": {"rate_hz": args.camera_rate, "size": [args.width, args.height]},
        "nodes": nodes, "node_exits": exits, "summary": summary(nodes, exits), "instructions": len(instructions),
        "command_rate_hz": round((samples[-1]["commands"] - samples[0]["commands"]) / duration, 1),
        "diagnostics": diagnostics, "samples": samples, "instruction_log": instructions,
        "method": "VmRSS from /proc/PID/status of each node process; diagnostics = numeric /diagnostics values",
    })


if __name__ == "__main__":
    main()
