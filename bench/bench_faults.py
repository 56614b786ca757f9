"""Fault injection over processes, repeated: how fast the graph holds the arm, and how fast it comes back.

Brings up the simulated graph (bringup plan, each node its own process) and, --repeats times,
with the arm moving under an instruction, runs each scenario of vla_ros/faults.py (the ones
test/test_faults.py asserts on); the policy kill and the e-stop wait until the safety filter
follows commands moving faster than 0.05 rad/s, and strike right then:

- policy: SIGKILL vla_node -> the safety filter's first HOLD period, the moment its commands
  settle into one repeated position (the hold time), and after a restart the time until
  vla_node sends targets again (it picks up the latched instruction);
- camera: SIGKILL camera_node -> vla_node's last target, its "image is stale" status, the
  filter's HOLD; restart -> targets again;
- simulator: SIGKILL mujoco_sim_node (no /joint_states) -> the filter's FAULT, its last
  command; restart -> commands again, and how far the first one is from the arm;
- estop: /safety/trigger_estop mid-motion -> latch, braking time (s and output periods),
  any step away from the hold position, any motion after a fresh target.

Times are from the fault, on the system clock the nodes stamp with. Every command of the run
is also audited against the safety filter's limits.
Usage: bench_faults.py [--repeats 5] [--moving 0.5] [--log-dir DIR]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

from benchlib import percentiles, save

INSTRUCTION = "pick up the red cube"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--moving", type=float, default=0.5, help="s of motion before each fault")
    parser.add_argument("--log-dir", help="keep every node's log here (default: a temporary directory)")
    args = parser.parse_args()

    from vla_ros import faults
    from vla_ros.graph_probe import running_sim_graph

    scenarios = {
        "policy": lambda graph, probe: faults.policy_outage(graph, probe),
        "camera": lambda graph, probe: faults.camera_outage(graph, probe),
        "simulator": lambda graph, probe: faults.simulator_outage(graph, probe),
        "estop": lambda graph, probe: faults.estop_mid_motion(probe),
    }
    runs: dict[str, list[dict]] = {name: [] for name in scenarios}
    errors: list[str] = []
    started = time.time()
    with running_sim_graph(args.log_dir, seed=90_001, task={"task": "pick", "object": "red cube"}) as (graph, probe):
        startup = time.time() - started
        for repeat in range(args.repeats):
            for name, scenario in scenarios.items():
                for node in graph.failed():
                    graph.restart(node.spec.name)
                try:
                    faults.start_moving(probe, INSTRUCTION)
                    probe.settle(args.moving)
                    result = dataclasses.asdict(scenario(graph, probe))
                except faults.ScenarioError as err:
                    errors.append(f"repeat {repeat} {name}: {err}")
                    print(errors[-1], flush=True)
                    continue
                runs[name].append(result)
                print(f"{repeat} {name}: {result}", flush=True)
        violations = probe.command_violations()
        commands = len(probe.filter_commands())

    # Times (fields ending in _s) in ms; periods, distances and counts as they are.
    summary: dict[str, dict] = {}
    for name, results in runs.items():
        summary[name] = {"runs": len(results)}
        for field in (results[0] if results else {}):
            values = [r[field] for r in results if isinstance(r[field], (int, float))]
            if values:
                key, scale = (field[:-2] + "_ms", 1e3) if field.endswith("_s") else (field, 1.0)
                summary[name][key] = percentiles(values, scale)
    save("faults", {
        "repeats": args.repeats, "moving_seconds": args.moving, "startup_seconds": round(startup, 1),
        "summary": summary, "runs": runs, "errors": errors,
        "commands_audited": commands, "unsafe_commands": violations,
        "method": "SIGKILL / e-stop service while the arm moves under an instruction; times from the fault "
                  "by message stamps (safety filter clock) and DDS source timestamps; restart times by wall clock "
                  "until the graph's output resumed",
    })


if __name__ == "__main__":
    main()
