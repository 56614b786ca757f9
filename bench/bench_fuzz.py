"""Topic fuzzing over processes: garbage into every subscribed topic of every node of the running graph.

Brings up the simulated graph (bringup plan, each node its own process, debug view included),
starts the arm moving, and then, topic by topic (every topic any node subscribes to, found
in the ROS graph), publishes fuzzed messages (vla_ros/msg_fuzz.py: empty, random, and real
messages from the topic with fields replaced by NaN/inf, extreme integers, huge arrays,
wrong encodings, wrong joint names, long and binary strings) for --seconds per topic. Counts:

- crashes: node processes that exit (the log's last lines are kept; the node is restarted);
- silent nodes: nodes that publish no /diagnostics in the 5 s after a topic's fuzzing;
- unsafe commands: /joint_commands from the safety filter outside its limits (position,
  velocity, acceleration, jerk by finite differences, workspace), malformed or non-finite
  (vla_ros/safety/audit.py, received_violations).

Usage: bench_fuzz.py [--seconds 10] [--rate 50] [--max-elements 200000] [--speech] [--seed 0] [--log-dir DIR]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from benchlib import save

SILENCE_WINDOW = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="fuzzing per topic")
    parser.add_argument("--rate", type=float, default=50.0, help="fuzzed messages per second")
    parser.add_argument("--max-elements", type=int, default=200_000, help="longest array or string")
    parser.add_argument("--speech", action="store_true", help="also run speech_node (/speech/audio)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-dir", help="keep every node's log here (default: a temporary directory)")
    args = parser.parse_args()

    from vla_ros import faults, launcher
    from vla_ros.graph_probe import running_sim_graph
    from vla_ros.safety import SafetyState

    rng = np.random.default_rng(args.seed)
    instruction = "pick up the red cube"
    with running_sim_graph(args.log_dir, seed=90_001, task={"task": "pick", "object": "red cube"},
                           speech=args.speech) as (graph, probe):
        names = [node.spec.name for node in graph.nodes]
        topics = probe.subscribed_topics(names)
        per_topic = []
        for topic, type_name in topics.items():
            for node in graph.failed():  # a crash that the previous topic's check came too early for
                graph.restart(node.spec.name)
            try:
                faults.start_moving(probe, instruction)
            except faults.ScenarioError as err:
                print(f"before {topic}: {err}")
            template = probe.sample(topic, type_name, timeout=1.0)
            started = time.time()
            sent = probe.fuzz(topic, type_name, args.seconds, rng, rate=args.rate, template=template,
                              max_elements=args.max_elements)
            silent = probe.silent_nodes(names, time.time(), SILENCE_WINDOW)
            crashed = [{"node": node.spec.name, "exit_code": node.returncode(),
                        "log_tail": launcher.log_tail(node.log_path, 12)} for node in graph.failed()]
            silent = [name for name in silent if name not in {c["node"] for c in crashed}]
            violations = probe.command_violations(started)
            row = {"topic": topic, "type": type_name, "template": template is not None, "sent": sent,
                   "crashes": crashed, "silent_nodes": silent, "unsafe_commands": violations,
                   "commands": len(probe.filter_commands(started))}
            per_topic.append(row)
            print(f"{topic:28s} sent {sent:5d}  crashes {[c['node'] for c in crashed]}  silent {silent}  "
                  f"unsafe {len(violations)}  commands {row['commands']}", flush=True)
            for node in graph.failed():
                graph.restart(node.spec.name)
            if probe.safety_state()[0] == SafetyState.ESTOP:  # a fuzzed "stop", or true on /safety/estop
                probe.reset_estop()

    save("fuzz", {
        "seconds_per_topic": args.seconds, "rate_hz": args.rate, "max_elements": args.max_elements,
        "seed": args.seed, "nodes": names, "topics": len(per_topic),
        "messages_sent": sum(row["sent"] for row in per_topic),
        "crashes": sum(len(row["crashes"]) for row in per_topic),
        "silent_nodes": sum(len(row["silent_nodes"]) for row in per_topic),
        "unsafe_commands": sum(len(row["unsafe_commands"]) for row in per_topic),
        "per_topic": per_topic,
        "method": "fuzzed messages published into each subscribed topic while the graph runs an instruction; "
                  "crashes = node process exits; unsafe = safety filter commands audited against its limits",
    })


if __name__ == "__main__":
    main()
