"""MCAP recordings of the running pipeline -> the training dataset (vla_ros/dataset.py, as `vla-ros collect` writes).

What a recording becomes:

- Episodes. One starts at each new instruction on /vla/instruction (a new id) and
  at each change of the simulator's task on /sim/task (another task or seed, or
  its elapsed time going back: a reset). A gap in the data (below) ends one too;
  what follows the gap starts another with the same instruction.
- Frames, at `fps` (10 Hz, the policy rate) from the episode start: the newest
  image (/vla/image when recorded, else /camera/image_raw; framed by
  camera.preprocess.policy_frame, as camera_node frames the policy's input) and
  the newest /joint_states; with `wrist_camera`, also the newest hand camera image
  (/vla/wrist_image, else /wrist_camera/image_raw) as observation.wrist_image.
- Action of a frame: the first command after the tick on the action topic
  (/vla/joint_targets when recorded, else /joint_commands). A target on
  /vla/joint_targets is the position due one control period later, which is what
  an action of `collect` is; /joint_commands follow the targets a period late (the
  safety filter takes a period to reach each one), so they are read a period
  after the tick (ACTION_DELAYS).
- Gaps: a tick whose image (or wrist image) or joint state is older than `max_gap`, or whose
  command comes more than `max_gap` late (nothing commanding the arm: idle,
  held, done), is dropped and ends the episode. Episodes shorter than
  `min_frames` are dropped.
- language_instruction: the /vla/instruction text. task: /sim/task's spec when
  recorded, else the spec vocabulary.parse_instruction reads in the text, else {}.
  success: the simulator's success check turned true during the episode (a
  success still latched from the previous task does not count). seed: /sim/task's,
  else -1. Episodes also carry their source file and start time (s since the epoch).
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_ros import dataset, vocabulary
from vla_ros.policies.base import CONTROL_DT
from vla_ros.sim.tasks import SuccessWatch

IMAGE_TOPICS: tuple[str, ...] = ("/vla/image", "/camera/image_raw")  # first one recorded wins
WRIST_IMAGE_TOPICS: tuple[str, ...] = ("/vla/wrist_image", "/wrist_camera/image_raw")
ACTION_TOPICS: tuple[str, ...] = ("/vla/joint_targets", "/joint_commands")
# Seconds after a tick at which each command stream says where the arm should be one period later.
ACTION_DELAYS: dict[str, float] = {"/vla/joint_targets": 0.0, "/joint_commands": CONTROL_DT}
JOINT_STATES_TOPIC = "/joint_states"
INSTRUCTION_TOPIC = "/vla/instruction"
TASK_TOPIC = "/sim/task"
# Episodes of a shard are held in memory until it is written: ~100 MB at 128 px.
SHARD_FRAMES = 2000


@dataclass
class ConversionOptions:
    fps: float = 1.0 / CONTROL_DT
    image_size: int = 128
    resize_mode: str = "crop"
    max_gap: float = 0.3  # s
    min_frames: int = 10
    image_topic: str = ""  # "" = the first of IMAGE_TOPICS in the recording
    wrist_camera: bool = False  # also record the hand camera's frames
    wrist_image_topic: str = ""  # with wrist_camera: "" = the first of WRIST_IMAGE_TOPICS in the recording
    action_topic: str = ""  # "" = the first of ACTION_TOPICS in the recording
    action_delay: float | None = None  # None = ACTION_DELAYS of the action topic (0 for others)


@dataclass
class _Pending:
    tick: float
    image: np.ndarray | None  # None marks a gap (stale image or joint state at this tick)
    state: np.ndarray | None = None
    wrist_image: np.ndarray | None = None


@dataclass
class _Segment:
    start: float
    images: list[np.ndarray] = field(default_factory=list)
    wrist_images: list[np.ndarray] = field(default_factory=list)
    states: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)


class _ImageStream:
    """The newest message of one image topic, framed for the policy once however many ticks share it."""

    def __init__(self, options: ConversionOptions):
        self.options = options
        self.newest: tuple[float, object] | None = None  # (receive time, message)
        self._seen = 0
        self._decoded: tuple[int, np.ndarray] | None = None  # (number of the message, its policy frame)

    def add(self, t: float, msg) -> None:
        self.newest = (t, msg)
        self._seen += 1

    def fresh_at(self, tick: float) -> bool:
        return self.newest is not None and tick - self.newest[0] <= self.options.max_gap

    def frame(self) -> np.ndarray:
        from vla_ros.camera.preprocess import policy_frame
        from vla_ros.camera.ros_image import image_to_rgb

        if self._decoded is None or self._decoded[0] != self._seen:
            frame = policy_frame(image_to_rgb(self.newest[1]), self.options.image_size, self.options.resize_mode)
            self._decoded = (self._seen, frame)
        return self._decoded[1]


class EpisodeBuilder:
    """Feed a recording's messages in log-time order; take the finished dataset.Episodes as they complete.

    `image_topic` and `action_topic` (and with wrist_camera `wrist_image_topic`) must be
    set in `options` (convert() picks them).
    """

    def __init__(self, options: ConversionOptions, source: str = ""):
        if not options.image_topic or not options.action_topic or (options.wrist_camera
                                                                   and not options.wrist_image_topic):
            raise ValueError("EpisodeBuilder needs options.image_topic and options.action_topic "
                             "(and wrist_image_topic with wrist_camera)")
        self.options = options
        self.source = source
        self.period = 1.0 / options.fps
        delay = options.action_delay
        self.delay = ACTION_DELAYS.get(options.action_topic, 0.0) if delay is None else delay
        self.counts = {"episodes": 0, "frames": 0, "dropped_ticks": 0, "short_episodes": 0, "bad_messages": 0}
        self._finished: list[dataset.Episode] = []
        self._image = _ImageStream(options)
        self._wrist_image = _ImageStream(options) if options.wrist_camera else None
        self._state: tuple[float, np.ndarray] | None = None
        self._instruction: tuple[str, str] | None = None  # (id, text)
        self._task_key: tuple[str, int] | None = None  # (task_json, seed)
        self._task_elapsed = 0.0
        self._task_success = SuccessWatch()
        self._success = False  # solved at some point of the episode
        self._episode_start: float | None = None
        self._next_tick = 0.0
        self._pending: deque[_Pending] = deque()
        self._segment: _Segment | None = None

    # ------------------------------------------------------------------ input

    def feed(self, topic: str, t: float, msg) -> None:
        """One message received at `t` (seconds)."""
        self._advance(t)
        try:
            if topic == self.options.image_topic:
                self._image.add(t, msg)
            elif self._wrist_image is not None and topic == self.options.wrist_image_topic:
                self._wrist_image.add(t, msg)
            elif topic == JOINT_STATES_TOPIC:
                self._state = (t, self._positions(msg))
            elif topic == self.options.action_topic:
                self._on_command(t, self._positions(msg))
            elif topic == INSTRUCTION_TOPIC:
                self._on_instruction(t, msg)
            elif topic == TASK_TOPIC:
                self._on_task(t, msg)
        except ValueError:  # InputError (joint names) and bad task JSON alike: skip the message
            self.counts["bad_messages"] += 1

    def take_finished(self) -> list[dataset.Episode]:
        """The episodes completed since the last call."""
        finished, self._finished = self._finished, []
        return finished

    def finish(self) -> list[dataset.Episode]:
        """End the last episode (frames still waiting for a command are dropped); the episodes not yet taken."""
        self._close_segment()
        self._pending.clear()
        return self.take_finished()

    # ----------------------------------------------------------- internals

    @staticmethod
    def _positions(msg) -> np.ndarray:
        from vla_ros.safety.filter import positions_by_name

        return positions_by_name(msg.name, msg.position, ignore_extra=True)

    def _advance(self, now: float) -> None:
        """Take the ticks up to `now` and drop waiting frames whose command can no longer come in time."""
        while self._pending and self._pending[0].tick + self.delay + self.options.max_gap < now:
            self._pending.popleft()
            self._gap()
        if self._episode_start is None:
            return
        while self._next_tick <= now:
            self._pending.append(self._snapshot(self._next_tick))
            self._next_tick += self.period

    def _snapshot(self, tick: float) -> _Pending:
        fresh = (self._image.fresh_at(tick) and self._state is not None and tick - self._state[0] <= self.options.max_gap
                 and (self._wrist_image is None or self._wrist_image.fresh_at(tick)))
        if not fresh:
            return _Pending(tick, None)
        wrist = self._wrist_image.frame() if self._wrist_image is not None else None
        return _Pending(tick, self._image.frame(), self._state[1], wrist)

    def _on_command(self, t: float, command: np.ndarray) -> None:
        while self._pending and self._pending[0].tick + self.delay < t:
            pending = self._pending.popleft()
            if pending.image is None:
                self._gap()
                continue
            if self._segment is None:
                self._segment = _Segment(pending.tick)
            self._segment.images.append(pending.image)
            self._segment.wrist_images.append(pending.wrist_image)
            self._segment.states.append(pending.state)
            self._segment.actions.append(command)

    def _gap(self) -> None:
        self.counts["dropped_ticks"] += 1
        self._close_segment()

    def _on_instruction(self, t: float, msg) -> None:
        instruction = (msg.id or msg.text, msg.text)
        if self._instruction is None or instruction[0] != self._instruction[0]:
            self._end_episode()
            self._instruction = instruction
            self._start_episode(t)

    def _on_task(self, t: float, msg) -> None:
        json.loads(msg.task_json or "null")  # a malformed status raises ValueError before it counts
        key = (msg.task_json, int(msg.seed))
        if key != self._task_key or msg.elapsed < self._task_elapsed:
            self._end_episode()
            self._task_key = key
            self._start_episode(t)
        self._task_elapsed = msg.elapsed
        self._success |= self._task_success.update(msg.task_json, msg.success)

    def _end_episode(self) -> None:
        """Keep what the episode has so far; frames still waiting for their command go."""
        self._close_segment()
        self._pending.clear()

    def _start_episode(self, t: float) -> None:
        self._task_success.reset()
        self._success = False
        self._episode_start = t if self._instruction is not None else None
        self._next_tick = t

    def _close_segment(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        if len(segment.images) < self.options.min_frames:
            self.counts["short_episodes"] += 1
            return
        text = self._instruction[1]
        sim_task = json.loads(self._task_key[0]) if self._task_key and self._task_key[0] else None
        task = sim_task or vocabulary.parse_instruction(text) or {}
        self._finished.append(dataset.Episode(
            np.stack(segment.images), np.stack(segment.states).astype(np.float32),
            np.stack(segment.actions).astype(np.float32), text, task, self._success,
            self._task_key[1] if sim_task else -1,
            {"source": self.source, "start_time": round(segment.start, 3), "instruction_id": self._instruction[0]},
            wrist_images=np.stack(segment.wrist_images) if self._wrist_image is not None else None))
        self.counts["episodes"] += 1
        self.counts["frames"] += len(segment.images)


def pick_topic(recorded: dict[str, dict], wanted: str, candidates: tuple[str, ...], what: str) -> str:
    """`wanted` if given, else the first of `candidates` with messages in the recording."""
    from vla_ros.recording import RecordingError

    if wanted:
        if recorded.get(wanted, {}).get("messages", 0) == 0:
            raise RecordingError(f"the recording has no messages on {wanted} ({what})")
        return wanted
    for topic in candidates:
        if recorded.get(topic, {}).get("messages", 0) > 0:
            return topic
    raise RecordingError(f"the recording has no {what}: none of {', '.join(candidates)} has messages")


def convert(recordings: list[str | Path], out: str | Path, options: ConversionOptions | None = None,
            progress: bool = True) -> dict:
    """Append the episodes of `recordings` to the dataset at `out` (created when missing); a summary."""
    from tqdm import tqdm

    from vla_ros.recording import read_messages, topic_summary

    options = options or ConversionOptions()
    root = Path(out)
    dataset.write_info(root, fps=options.fps, image_size=(options.image_size, options.image_size),
                       wrist_image=options.wrist_camera)
    done = dataset.complete_shards(root)
    dataset.truncate_to_shards(root, done)
    next_shard = max(done) + 1 if done else 0
    next_episode = len(dataset.read_episodes(root)) if done else 0
    buffered: list[dataset.Episode] = []
    summary = {"recordings": [], "episodes": 0, "frames": 0}

    def flush() -> None:
        nonlocal next_shard, next_episode
        if buffered:
            dataset.write_shard(root, next_shard, buffered, next_episode)
            next_shard, next_episode = next_shard + 1, next_episode + len(buffered)
            buffered.clear()

    for path in map(Path, recordings):
        recorded = topic_summary(path)
        chosen = ConversionOptions(**{**vars(options),
                                      "image_topic": pick_topic(recorded, options.image_topic, IMAGE_TOPICS, "images"),
                                      "action_topic": pick_topic(recorded, options.action_topic, ACTION_TOPICS,
                                                                 "commands")})
        if options.wrist_camera:
            chosen.wrist_image_topic = pick_topic(recorded, options.wrist_image_topic, WRIST_IMAGE_TOPICS,
                                                  "hand camera images")
        pick_topic(recorded, "", (JOINT_STATES_TOPIC,), "joint states")
        pick_topic(recorded, "", (INSTRUCTION_TOPIC,), "instructions")
        topics = [chosen.image_topic, chosen.action_topic, JOINT_STATES_TOPIC, INSTRUCTION_TOPIC, TASK_TOPIC]
        topics += [chosen.wrist_image_topic] if chosen.wrist_camera else []
        builder = EpisodeBuilder(chosen, source=path.name)
        total = sum(recorded.get(topic, {}).get("messages", 0) for topic in topics)
        for topic, log_time, msg in tqdm(read_messages(path, topics), total=total, desc=path.name, unit="msg",
                                         disable=not progress):
            builder.feed(topic, log_time * 1e-9, msg)
            buffered.extend(builder.take_finished())
            # Shards hold whole episodes; write one whenever enough frames wait.
            if sum(len(e.images) for e in buffered) >= SHARD_FRAMES:
                flush()
        buffered.extend(builder.finish())
        summary["recordings"].append({"file": str(path), "image_topic": chosen.image_topic,
                                      **({"wrist_image_topic": chosen.wrist_image_topic} if chosen.wrist_camera else {}),
                                      "action_topic": chosen.action_topic, **builder.counts})
        summary["episodes"] += builder.counts["episodes"]
        summary["frames"] += builder.counts["frames"]
    flush()
    return summary
