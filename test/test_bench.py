"""`vla-ros bench` and docs/BENCHMARKS.md: results become a report with every target, met or not."""
import json
import os
import subprocess
import sys

from vla_ros.bench_report import render

VLA_ROS = [sys.executable, "-m", "vla_ros.cli"]


def _write(directory, name, payload):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps({"benchmark": name, **payload}))


def test_report_lists_targets_met_and_not_met_and_unknown_benchmarks(tmp_path):
    results = tmp_path / "results"
    _write(results, "pipeline", {"frame_to_command_ms": {"p50": 20.0, "p90": 25.0, "p99": 42.0, "max": 50.0},
                                 "command_rate_hz": 91.0, "frame_to_command_samples_ms": [10.0, 20.0, 42.0],
                                 "runs": [{"frame_to_command_ms": {"p99": p99}} for p99 in (28.0, 42.0, 61.0)]})
    _write(results, "policy_success", {"episodes_per_split": 4, "seed": 1, "policies": {"builtin": {"splits": {
        "seen": {"success_rate": 0.96, "mean_time_to_success": 2.0,
                 "per_task": {"pick": {"success_rate": 1.0}}},
        "unseen": {"success_rate": 0.5, "per_task": {"pick": {"success_rate": 0.5}}}}}}})
    _write(results, "policy_heads", {"episodes_per_split": 4, "seed": 1, "recipe": "same", "heads": {
        name: {"steps": 10, "parameters": 5, "train_seconds": 1.0, "splits": {
            "seen": {"success_rate": rate}, "unseen": {"success_rate": 0.0}, "paraphrase": {"success_rate": 0.0}}}
        for name, rate in (("continuous", 0.5), ("tokens", 0.25), ("flow", 0.75))}})
    _write(results, "soak", {"rss_growth_mb": {"vla_node": 1.5}, "machine": {"cores": 2}})
    _write(results, "fuzz", {"crashes": [{"node": "camera_node", "exit": -11}], "unsafe_commands": 0})
    text = render(results, tmp_path / "docs" / "BENCHMARKS.md")

    rows = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith("| #")}
    assert "42 ms" in rows["frame -> /joint_commands p99"] and "**not met**" in rows["frame -> /joint_commands p99"]
    assert "| met |" in rows["command rate at the arm"]
    assert "median p99 of 3" in text and "p99 per run: 28 ms, 42 ms, 61 ms" in text
    assert "| met |" in rows["success, seen tasks"] and "**not met**" in rows["success, unseen compositions"]
    assert "not run" in rows["success, paraphrases"]  # absent from the results: never a number
    assert "not run" in rows["physics steps per second"]
    assert "| 1 |" in rows["node crashes under topic fuzzing"] and "**not met**" in rows["node crashes under topic fuzzing"]
    assert "| met |" in rows["unsafe commands under topic fuzzing"]
    assert "| rss_growth_mb.vla_node | 1.5 |" in text  # a benchmark without its own section still shows
    assert (tmp_path / "docs" / "benchmarks" / "pipeline_latency.png").stat().st_size > 0
    assert (tmp_path / "docs" / "benchmarks" / "policy_success.png").stat().st_size > 0
    assert "| flow | 0.75 | 0 | 0 |" in text and (tmp_path / "docs" / "benchmarks" / "policy_heads.png").is_file()


def test_bench_all_runs_a_script_and_renders_the_report(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results, out = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    done = subprocess.run([*VLA_ROS, "bench", "all", "--quick", "--only", "sim", "--results", str(results),
                           "--out", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr + done.stdout
    sim = json.loads((results / "sim.json").read_text())
    assert sim["mj_step_per_second"] > 0 and sim["machine"]["cores"] == os.cpu_count()
    run = json.loads((results / "run.json").read_text())
    assert [(s["name"], s["status"]) for s in run["scripts"]] == [("sim", "ok")]
    assert "| sim | ok |" in out.read_text()


def test_bench_rejects_unknown_benchmark_names(tmp_path):
    done = subprocess.run([*VLA_ROS, "bench", "all", "--only", "warp_drive", "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "warp_drive" in done.stderr
    assert not list(tmp_path.iterdir())
