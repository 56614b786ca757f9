"""docs/BENCHMARKS.md from the JSON files the bench/ scripts write (bench/results/*.json).

One headline table lists every target the issues set, with the measured value and
whether it is met; a section per benchmark follows, and PNG plots go beside the
document. A benchmark that has not been run shows as "not run", never as a number.
Benchmarks without a dedicated section (new scripts) are listed with their scalar
figures, so nothing measured goes missing from the report.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    issue: str
    figure: str
    benchmark: str  # result file stem
    path: str  # dotted path to the value in that file
    unit: str
    limit: float | None  # None: reported, no target
    higher_is_better: bool = True


TARGETS = [
    Target("#3 simulated arm", "physics steps per second", "sim", "mj_step_per_second", "/s", None),
    Target("#3 simulated arm", "render 640x480", "sim", "render_fps.640x480", "fps", None),
    Target("#3 simulated arm", "expert success (200 episodes)", "sim_expert_eval", "success_rate", "", None),
    Target("#4 safety filter", "violations in adversarial fuzzing", "safety", "fuzz.violations", "", 0, False),
    Target("#4 safety filter", "filter cost per period p99", "safety", "cost.smooth_us.p99", "us", None),
    Target("#4 safety filter", "false interventions on feasible targets", "safety",
           "synthetic_feasible.targets_every_output_period.false_intervention_rate", "", None),
    Target("#6 camera", "640x480 over DDS, publish -> policy frame p99", "camera",
           "dds.640x480 at 30 Hz.publish_to_receive_ms.p99", "ms", None),
    Target("#5 instruction intake", "command accuracy at 10 dB SNR (default backend)", "speech",
           "backends.pocketsphinx.snr_10db.command_accuracy", "", 0.98),
    Target("#5 instruction intake", "real-time factor p50 (default backend)", "speech",
           "backends.pocketsphinx.snr_10db.real_time_factor.p50", "", 0.1, False),
    Target("#7 built-in policy", "success, seen tasks", "policy_success", "policies.builtin.splits.seen.success_rate",
           "", 0.95),
    Target("#7 built-in policy", "success, unseen compositions", "policy_success",
           "policies.builtin.splits.unseen.success_rate", "", 0.80),
    Target("#7 built-in policy", "success, paraphrases", "policy_success",
           "policies.builtin.splits.paraphrase.success_rate", "", 0.85),
    Target("#7 built-in policy", "forward pass p99, default config", "policy_latency",
           "variants.default.latency_ms.p99", "ms", 10.0, False),
    Target("#8 inference node", "frame -> /joint_commands p99", "pipeline", "frame_to_command_ms.p99", "ms", 30.0,
           False),
    Target("#8 inference node", "command rate at the arm", "pipeline", "command_rate_hz", "Hz", 50.0),
    Target("#10 peer", "ACT / builtin success ratio (same episodes)", "peer_act", "ratio_act_to_builtin.success_rate",
           "", None),
    Target("#10 reliability", "policy node killed mid-motion: filter holds (max)", "faults",
           "summary.policy.hold_ms.max", "ms", 100.0, False),
    Target("#10 reliability", "policy node killed mid-motion: commands still (max)", "faults",
           "summary.policy.settled_ms.max", "ms", None),
    Target("#10 reliability", "soak 600 s: node exits", "soak", "summary.node_exits", "", 0, False),
    Target("#10 reliability", "soak 600 s: largest RSS growth of a node", "soak", "summary.max_growth_mb", "MB", None),
    Target("#10 reliability", "soak 600 s: largest RSS slope, second half", "soak",
           "summary.max_slope_second_half_mb_per_min", "MB/min", None),
    Target("#10 reliability", "camera killed: stale image reported (max)", "faults",
           "summary.camera.stale_reported_ms.max", "ms", None),
    Target("#10 reliability", "unsafe commands during fault injection", "faults", "unsafe_commands", "", 0, False),
    Target("#10 reliability", "node crashes under topic fuzzing", "fuzz", "crashes", "", 0, False),
    Target("#10 reliability", "unsafe commands under topic fuzzing", "fuzz", "unsafe_commands", "", 0, False),
]


def lookup(data: dict | None, path: str):
    """The value at a dotted path, or None. Keys may contain dots' neighbours (spaces, 'x')."""
    node = data
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _format(value, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text} {unit}".strip()


def target_rows(results: dict[str, dict]) -> list[list[str]]:
    rows = []
    for t in TARGETS:
        value = lookup(results.get(t.benchmark), t.path)
        if isinstance(value, (list, dict)):  # e.g. a list of crash records: count them
            value = len(value)
        if t.limit is None:
            target, met = "", ""
        else:
            target = ("\u2265 " if t.higher_is_better else "\u2264 ") + _format(float(t.limit), t.unit)
            if value is None:
                met = ""
            else:
                met = "met" if (value >= t.limit if t.higher_is_better else value <= t.limit) else "**not met**"
        rows.append([t.issue, t.figure, "not run" if value is None else _format(value, t.unit), target, met])
    return rows


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def scalar_leaves(data, prefix: str = "", depth: int = 3) -> list[tuple[str, object]]:
    """(dotted key, value) of every number/string/bool up to `depth` levels, machine and time excluded."""
    leaves = []
    if isinstance(data, dict) and depth > 0:
        for key, value in data.items():
            if key in ("machine", "time", "benchmark"):
                continue
            leaves += scalar_leaves(value, f"{prefix}{key}.", depth - 1)
    elif isinstance(data, (int, float, str, bool)):
        leaves.append((prefix.rstrip("."), data))
    return leaves


# -- sections ---------------------------------------------------------------------------
def _pipeline(data: dict, plots: Path) -> list[str]:
    rows = [[name, *(_format(lookup(data, f"{key}.{p}"), "ms") for p in ("p50", "p90", "p99", "max"))]
            for name, key in (("frame -> /joint_targets", "frame_to_target_ms"),
                              ("frame -> /joint_commands", "frame_to_command_ms"),
                              ("interval between commands", "command_interval_ms"))]
    lines = table(["stage", "p50", "p90", "p99", "max"], rows)
    lines.append(f"Command rate {_format(data.get('command_rate_hz'), 'Hz')}; policy inference in the node p50 "
                 f"{_format(data.get('vla_node_inference_p50_ms'), 'ms')}; instruction: "
                 f"\"{data.get('instruction', '')}\", {_format(data.get('seconds'), 's')} window.")
    runs = data.get("runs")
    if runs:
        p99s = ", ".join(_format(lookup(run, "frame_to_command_ms.p99"), "ms") for run in runs)
        lines.append(f"The run with the median p99 of {len(runs)}, each on a freshly started graph "
                     f"(frame -> /joint_commands p99 per run: {p99s}); the histogram pools all runs.")
    samples = data.get("frame_to_command_samples_ms")
    if samples:
        _histogram(samples, "frame -> /joint_commands (ms)", plots / "pipeline_latency.png")
        lines += ["", "![frame to command latency](benchmarks/pipeline_latency.png)"]
    return lines + [""]


def _policy_latency(data: dict, plots: Path) -> list[str]:
    variants = data.get("variants", {})
    rows = [[name, *(_format(lookup(v, f"latency_ms.{p}"), "ms") for p in ("p50", "p99")),
             _format(v.get("parameters"))] for name, v in variants.items()]
    _bars({name: [lookup(v, "latency_ms.p50"), lookup(v, "latency_ms.p99")] for name, v in variants.items()},
          ["p50", "p99"], "ms", plots / "policy_latency.png")
    return table(["variant", "p50", "p99", "parameters"], rows) + [
        f"Batch 1, {data.get('threads')} torch threads, {data.get('repeats')} calls each.", "",
        "![policy forward pass](benchmarks/policy_latency.png)", ""]


def _policy_success(data: dict, plots: Path) -> list[str]:
    lines = []
    splits = ("seen", "unseen", "paraphrase")
    rows = []
    for name, policy in data.get("policies", {}).items():
        rows.append([name, *(_format(lookup(policy, f"splits.{s}.success_rate")) for s in splits),
                     *(_format(lookup(policy, f"splits.{s}.mean_time_to_success"), "s") for s in splits[:1])])
    lines += table(["policy", "seen", "unseen", "paraphrase", "time to success (seen)"], rows)
    lines.append(f"{data.get('episodes_per_split')} seeded episodes per split (seed {data.get('seed')}), scenes not "
                 "in the training data; targets: seen 0.95, unseen 0.80, paraphrase 0.85.")
    builtin = lookup(data, "policies.builtin.splits")
    if builtin:
        kinds = sorted({k for s in splits for k in (lookup(builtin, f"{s}.per_task") or {})})
        rows = [[kind, *(_format(lookup(builtin, f"{s}.per_task.{kind}.success_rate")) for s in splits)]
                for kind in kinds]
        lines += ["", "Built-in policy per task:", ""] + table(["task", "seen", "unseen", "paraphrase"], rows)
        _bars({kind: [lookup(builtin, f"{s}.per_task.{kind}.success_rate") for s in splits] for kind in kinds},
              list(splits), "success rate", plots / "policy_success.png")
        lines += ["![success per task](benchmarks/policy_success.png)", ""]
    return lines


def _policy_heads(data: dict, plots: Path) -> list[str]:
    splits = ("seen", "unseen", "paraphrase")
    heads = data.get("heads", {})
    rows = [[name, *(_format(lookup(head, f"splits.{s}.success_rate")) for s in splits),
             _format(lookup(head, "splits.seen.mean_time_to_success"), "s"), _format(head.get("parameters")),
             _format(head.get("train_seconds"), "s")] for name, head in heads.items()]
    _bars({name: [lookup(head, f"splits.{s}.success_rate") for s in splits] for name, head in heads.items()},
          list(splits), "success rate", plots / "policy_heads.png")
    steps = sorted({head.get("steps") for head in heads.values()})
    return table(["head", "seen", "unseen", "paraphrase", "time to success (seen)", "parameters", "training"],
                 rows) + [
        f"Recipe: {data.get('recipe')}; {', '.join(map(str, steps))} steps each; "
        f"{data.get('episodes_per_split')} seeded episodes per split (seed {data.get('seed')}). "
        "Forward-pass times per head: the policy forward pass section.", "",
        "![success per head](benchmarks/policy_heads.png)", ""]


def _peer(data: dict, plots: Path) -> list[str]:
    splits = ("seen", "unseen", "paraphrase")
    rows = [[name, _format(lookup(data, f"{key}.success_rate")),
             *(_format(lookup(data, f"{key}.per_split.{s}.success_rate")) for s in splits),
             _format(lookup(data, f"{key}.call_ms.p50"), "ms")] for name, key in (("vla_ros builtin", "builtin"),
                                                                                 ("LeRobot ACT", "act"))]
    budget = data.get("budget", {})
    return table(["policy", "all", "seen", "unseen", "paraphrase", "call p50"], rows) + [
        f"Same {lookup(data, 'evaluation.episodes')} episodes for both. Training budget: builtin "
        f"{_format(budget.get('builtin_train_seconds'), 's')}, ACT {_format(budget.get('act_train_seconds'), 's')} "
        f"({_format(lookup(data, 'act_training.steps'))} steps, {lookup(data, 'act_training.backbone')}).", ""]


SECTIONS: dict[str, tuple[str, Callable[[dict, Path], list[str]]]] = {
    "pipeline": ("End to end: camera frame -> joint commands (whole graph over DDS)", _pipeline),
    "policy_success": ("Policy success in the simulator", _policy_success),
    "policy_heads": ("Action heads compared (continuous chunk, 256-bin tokens, flow matching)", _policy_heads),
    "policy_latency": ("Policy forward pass", _policy_latency),
    "peer_act": ("A peer side by side: LeRobot ACT on the same data", _peer),
}


# -- plots --------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def _histogram(samples: list[float], xlabel: str, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(samples, bins=40)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _bars(groups: dict[str, list], series: list[str], ylabel: str, path: Path) -> None:
    if not groups:
        return
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5, len(groups) * 0.9), 3.2))
    width = 0.8 / len(series)
    for i, name in enumerate(series):
        values = [(v[i] or 0.0) for v in groups.values()]
        ax.bar([x + i * width for x in range(len(groups))], values, width, label=name)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(groups))])
    ax.set_xticklabels(list(groups), rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -- the document ---------------------------------------------------------------------------
def load_results(results_dir: Path) -> dict[str, dict]:
    results = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            results[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            results[path.stem] = {"error": f"unreadable result file: {err}"}
    return results


def render(results_dir: Path, out: Path, run: dict | None = None) -> str:
    """Write `out` (markdown) and its plots under `out`'s directory / benchmarks; return the text."""
    out = Path(out)
    plots = out.parent / "benchmarks"
    results = load_results(results_dir)
    results.pop("run", None)
    lines = ["# Benchmarks", "",
             "Generated by `vla-ros bench all` (`make bench`) from `bench/results/*.json`; do not edit by hand.",
             "Each figure comes from the JSON file named in its section; the machine is the one recorded there.", ""]
    machine = next((r["machine"] for r in results.values() if "machine" in r), None)
    if machine:
        lines += [f"Machine: {machine.get('cores')} cores, {machine.get('cpu_model')}, "
                  f"Python {machine.get('python')}.", ""]
    if not run:
        lines += ["No `vla-ros bench all` run is recorded with these results: each figure comes from its "
                  "script's own run, at the time shown in its section.", ""]
    else:
        # A partial re-run (`bench all --only`) merged into an earlier record keeps each script's own start.
        lines += ["## This run", ""] + table(
            ["benchmark", "status", "seconds", "run started"],
            [[s["name"], s["status"], _format(s.get("seconds")), s.get("started", run.get("started", ""))]
             for s in run.get("scripts", [])])
    lines += ["## Targets", ""] + table(["issue", "figure", "measured", "target", ""], target_rows(results))
    for name, (title, section) in SECTIONS.items():
        if name in results:
            lines += [f"## {title}", "", f"`bench/results/{name}.json`, measured {results[name].get('time', '?')}.",
                      ""] + section(results[name], plots)
    others = sorted(set(results) - set(SECTIONS))
    for name in others:
        leaves = scalar_leaves(results[name])
        lines += [f"## {name}", "", f"`bench/results/{name}.json`, measured {results[name].get('time', '?')}.", ""]
        lines += table(["figure", "value"], [[key, _format(value)] for key, value in leaves[:60]])
        if len(leaves) > 60:
            lines += [f"({len(leaves) - 60} more figures in the JSON file.)", ""]
    text = "\n".join(lines).rstrip() + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text
