"""The task suite: machine-readable specs, their instructions, success checks and the data split.

A task spec is a JSON-able dict:

    {"task": "pick", "object": "red cube"}
    {"task": "place", "object": "red cube", "target": "white plate"}
    {"task": "push", "object": "red cube", "direction": "left"}        # "distance": 0.1 m by default
    {"task": "stack", "object": "red cube", "target": "blue cylinder"}
    {"task": "home"} | {"task": "open_gripper"} | {"task": "close_gripper"}

Instructions come from vocabulary.TRAIN_TEMPLATES (seen phrasings) and
vocabulary.PARAPHRASE_TEMPLATES (held-out phrasings). UNSEEN_COMPOSITIONS lists
the task/object combinations that never appear in training data (docs/SIMULATION.md).
Success checks work on a WorldState, so they test on hand-built states. No ROS, no MuJoCo.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from vla_ros import arm, vocabulary
from vla_ros.sim.state import WorldState

# Seconds of simulated time an episode of each task gets.
TIME_LIMITS: dict[str, float] = {
    "pick": 10.0,
    "place": 15.0,
    "push": 12.0,
    "stack": 15.0,
    "home": 8.0,
    "open_gripper": 4.0,
    "close_gripper": 4.0,
}
DIRECTION_VECTORS: dict[str, np.ndarray] = {
    "left": np.array([0.0, 1.0]),
    "right": np.array([0.0, -1.0]),
    "forward": np.array([1.0, 0.0]),
}
GRASP_KINDS = ("pick", "place", "stack")  # tasks that start with a grasp
PUSH_DEFAULT_DISTANCE = 0.1
PUSH_DISTANCE_RANGE = (0.03, 0.2)  # metres; beyond this a push leaves the workspace

# Success thresholds (metres, radians).
LIFT_HEIGHT = 0.05  # pick: object bottom this far above the table, in the hand
REST_TOLERANCE = 0.015  # place/stack/push: bottom within this of the surface below it
PLATE_MARGIN = 0.02  # place: centre at least this far inside the plate's rim
PUSH_SHORT, PUSH_LONG, PUSH_LATERAL = 0.02, 0.04, 0.04  # push: along-track window and drift
HOME_TOLERANCE = 0.05  # home: every arm joint within this of arm.HOME_POSITIONS
GRIPPER_OPEN, GRIPPER_CLOSED = 0.035, 0.005  # open/close: finger opening beyond these

# Arm start pose: home plus this much uniform noise per joint; the home task starts
# further away (at least HOME_START_MIN on every joint) so that it has work to do.
START_NOISE = 0.05
HOME_START_MIN, HOME_START_MAX = 0.1, 0.3

SPLITS: tuple[str, ...] = ("seen", "unseen", "paraphrase")

# Held-out compositions: a spec matching any pattern (every key equal) is "unseen".
# Every object, colour, plate and direction still appears in training, in other
# combinations; only these pairings are new at evaluation time.
UNSEEN_COMPOSITIONS: tuple[dict, ...] = (
    {"task": "pick", "object": "green cylinder"},
    {"task": "pick", "object": "yellow cube"},
    {"task": "place", "object": "blue cube"},
    {"task": "place", "object": "red cylinder", "target": "black plate"},
    {"task": "push", "object": "yellow cylinder"},
    {"task": "push", "object": "red cube", "direction": "forward"},
    {"task": "stack", "object": "green cube"},
    {"task": "stack", "target": "blue cylinder"},
)

_KEYS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (required keys, optional keys) besides "task"
    "pick": ({"object"}, set()),
    "place": ({"object", "target"}, set()),
    "push": ({"object", "direction"}, {"distance"}),
    "stack": ({"object", "target"}, set()),
    "home": (set(), set()),
    "open_gripper": (set(), set()),
    "close_gripper": (set(), set()),
}


class TaskError(ValueError):
    """A task spec that is malformed or impossible; the message says why."""


@dataclass(frozen=True)
class Episode:
    spec: dict
    instruction: str
    split: str  # "seen", "unseen" or "paraphrase"


def validate(spec) -> dict:
    """A checked copy of `spec` with defaults filled in (push distance); raises TaskError."""
    if not isinstance(spec, dict):
        raise TaskError(f"a task spec is a JSON object, got {type(spec).__name__}")
    kind = spec.get("task")
    if kind not in _KEYS:
        raise TaskError(f"unknown task {kind!r}; known: {', '.join(vocabulary.TASK_KINDS)}")
    required, optional = _KEYS[kind]
    keys = set(spec) - {"task"}
    if missing := required - keys:
        raise TaskError(f"task {kind!r} needs {', '.join(sorted(missing))}")
    if extra := keys - required - optional:
        raise TaskError(f"task {kind!r} takes no {', '.join(sorted(extra))}")
    checked = dict(spec)
    if "object" in spec and spec["object"] not in vocabulary.OBJECTS:
        raise TaskError(f"unknown object {spec['object']!r}; known: {', '.join(vocabulary.OBJECTS)}")
    if kind == "place" and spec["target"] not in vocabulary.PLATES:
        raise TaskError(f"place needs a plate as target, got {spec['target']!r}; plates: {', '.join(vocabulary.PLATES)}")
    if kind == "stack":
        if spec["target"] not in vocabulary.OBJECTS:
            raise TaskError(f"stack needs an object as target, got {spec['target']!r}")
        if spec["target"] == spec["object"]:
            raise TaskError(f"cannot stack the {spec['object']} on itself")
    if kind == "push":
        if spec["direction"] not in DIRECTION_VECTORS:
            raise TaskError(f"unknown direction {spec['direction']!r}; known: {', '.join(DIRECTION_VECTORS)}")
        distance = spec.get("distance", PUSH_DEFAULT_DISTANCE)
        low, high = PUSH_DISTANCE_RANGE
        if isinstance(distance, bool) or not isinstance(distance, (int, float)) or not low <= distance <= high:
            raise TaskError(f"push distance must be a number in [{low}, {high}] m, got {distance!r}")
        checked["distance"] = float(distance)
    return checked


def objects_of(spec: dict) -> tuple[str, ...]:
    """The objects (not plates) a task needs on the table."""
    names = [spec[key] for key in ("object", "target") if key in spec]
    return tuple(name for name in names if name in vocabulary.OBJECTS)


def push_path(spec: dict, approach: float = 0.07) -> list[np.ndarray]:
    """Offsets (x, y) from a pushed object's start that its push sweeps, from the
    pusher's approach point behind it to its destination; empty for other tasks."""
    if spec["task"] != "push":
        return []
    direction = DIRECTION_VECTORS[spec["direction"]]
    distance = spec.get("distance", PUSH_DEFAULT_DISTANCE)
    return [s * direction for s in np.linspace(-approach, distance, 6)]


def split_of(spec: dict) -> str:
    """"unseen" for held-out compositions, else "seen" (phrasings are split separately)."""
    for pattern in UNSEEN_COMPOSITIONS:
        if all(spec.get(key) == value for key, value in pattern.items()):
            return "unseen"
    return "seen"


def compositions(kind: str) -> list[dict]:
    """Every spec of one task kind (push at its default distance)."""
    if kind == "pick":
        return [{"task": kind, "object": o} for o in vocabulary.OBJECTS]
    if kind == "place":
        return [{"task": kind, "object": o, "target": t} for o, t in itertools.product(vocabulary.OBJECTS, vocabulary.PLATES)]
    if kind == "push":
        return [{"task": kind, "object": o, "direction": d} for o, d in itertools.product(vocabulary.OBJECTS, DIRECTION_VECTORS)]
    if kind == "stack":
        return [{"task": kind, "object": o, "target": t}
                for o, t in itertools.permutations(vocabulary.OBJECTS, 2)]
    return [{"task": kind}]


def kinds_in_split(split: str) -> tuple[str, ...]:
    """Task kinds that have at least one composition in `split`."""
    composition_split = "unseen" if split == "unseen" else "seen"
    return tuple(k for k in vocabulary.TASK_KINDS if any(split_of(s) == composition_split for s in compositions(k)))


def instruction_for(spec: dict, rng: np.random.Generator, paraphrase: bool = False) -> str:
    """A phrasing of `spec` from the TRAIN templates (or the held-out PARAPHRASE ones)."""
    templates = (vocabulary.PARAPHRASE_TEMPLATES if paraphrase else vocabulary.TRAIN_TEMPLATES)[spec["task"]]
    return vocabulary.fill(templates[int(rng.integers(len(templates)))], spec)


def canonical_instruction(spec: dict) -> str:
    """The first training phrasing of `spec`: how the simulator names its current task."""
    return vocabulary.fill(vocabulary.TRAIN_TEMPLATES[spec["task"]][0], spec)


def sample_episode(rng: np.random.Generator, split: str, kind: str) -> Episode:
    """A task of `kind` in `split`: "seen" (training compositions and phrasings), "unseen"
    (held-out compositions, training phrasings), "paraphrase" (training compositions,
    held-out phrasings)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    wanted = "unseen" if split == "unseen" else "seen"
    candidates = [spec for spec in compositions(kind) if split_of(spec) == wanted]
    if not candidates:
        raise ValueError(f"task {kind!r} has no {wanted} compositions")
    spec = validate(candidates[int(rng.integers(len(candidates)))])
    return Episode(spec, instruction_for(spec, rng, paraphrase=split == "paraphrase"), split)


def start_gripper(spec: dict) -> float:
    """Finger opening an episode starts with: closed for open_gripper, open otherwise."""
    return 0.0 if spec.get("task") == "open_gripper" else arm.HOME_POSITIONS[arm.GRIPPER_JOINT]


def start_arm_offsets(spec: dict | None, rng: np.random.Generator) -> np.ndarray:
    """Offsets (rad) from the home pose of the 7 arm joints at an episode start."""
    if spec is not None and spec["task"] == "home":
        return rng.choice([-1.0, 1.0], 7) * rng.uniform(HOME_START_MIN, HOME_START_MAX, 7)
    return rng.uniform(-START_NOISE, START_NOISE, 7)


def check_success(spec: dict, state: WorldState, start: WorldState) -> bool:
    """Whether `state` completes the task; `start` is the state when the task was set (push)."""
    kind = spec["task"]
    if kind == "home":
        return bool(np.max(np.abs(state.joints[:7] - arm.home_vector()[:7])) <= HOME_TOLERANCE)
    if kind == "open_gripper":
        return bool(state.joints[7] >= GRIPPER_OPEN)
    if kind == "close_gripper":
        return bool(state.joints[7] <= GRIPPER_CLOSED)
    name = spec["object"]
    if name not in state.bodies:
        return False
    if kind == "pick":
        return name in state.in_hand and state.bottom(name) >= LIFT_HEIGHT
    if name in state.in_hand:
        return False  # place, stack and push are done only once the hand has let go
    position = state.bodies[name].position
    if kind == "push":
        if name not in start.bodies or state.bottom(name) > REST_TOLERANCE:
            return False
        moved = position[:2] - start.bodies[name].position[:2]
        direction = DIRECTION_VECTORS[spec["direction"]]
        along = float(moved @ direction)
        lateral = float(np.linalg.norm(moved - along * direction))
        distance = spec.get("distance", PUSH_DEFAULT_DISTANCE)
        return distance - PUSH_SHORT <= along <= distance + PUSH_LONG and lateral <= PUSH_LATERAL
    target = spec["target"]
    if target not in state.bodies:
        return False
    support = state.bodies[target]
    offset = float(np.linalg.norm(position[:2] - support.position[:2]))
    resting = abs(state.bottom(name) - state.top(target)) <= REST_TOLERANCE
    if kind == "place":
        return resting and offset <= support.radius - PLATE_MARGIN
    # stack: on top of the target, which itself still stands on the table
    return resting and offset <= support.radius and state.bottom(target) <= REST_TOLERANCE


class SuccessWatch:
    """Reads the simulator's latched success flag (/sim/task) as "solved since I started watching".

    The flag stays true until the task changes, so a success left over from the previous
    task must not count: a success counts only after the same task was seen unsolved
    since `reset()`. vla_node, `vla-ros demo` and the recording converter share this rule.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._task_json: str | None = None
        self.seen_unsolved = False
        self.solved = False

    def update(self, task_json: str, success: bool) -> bool:
        """Take one status; returns `solved`: the watched task is solved now."""
        if task_json != self._task_json:
            self._task_json, self.seen_unsolved = task_json, False
        if not success:
            self.seen_unsolved = True
        self.solved = bool(success) and self.seen_unsolved
        return self.solved
