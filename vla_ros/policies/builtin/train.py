"""Behaviour cloning of the built-in policy from an episode dataset (vla_ros.dataset), on the CPU.

Seeded, resumable (a training-state file beside the checkpoint), with periodic
validation loss and, when an evaluator is given, in-simulator success. Writes
loss.png and success.png beside the checkpoint.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vla_ros.camera.preprocess import policy_frame
from vla_ros.collection import STEPS_AFTER_SUCCESS
from vla_ros.dataset import WRIST_IMAGE, DatasetError, EpisodeDataset
from vla_ros.policies.builtin.action_space import chunk_offsets, tcp_poses
from vla_ros.policies.builtin.config import VLAConfig
from vla_ros.policies.builtin.grounding import dataset_grounding, object_at_start
from vla_ros.policies.builtin.language import LanguageEncoder
from vla_ros.policies.builtin.model import NAMED_DIM, VLAModel
from vla_ros.policies.builtin.policy import BuiltinPolicy, Normalization, image_tensor
from vla_ros.policies.builtin.vision_pretrain import pretrain_named_positions, pretrain_vision

# Training images are loaded once into memory, filled in place (no second copy); a training set
# above this many bytes of images is refused before anything is read.
_IN_MEMORY_LIMIT = 10 * 1024**3


@dataclass
class TrainingData:
    images: np.ndarray  # (N, S, S, 3) uint8 at the policy's image size
    wrist_images: np.ndarray | None  # the same for the hand camera (config.wrist_camera), else None
    states: np.ndarray  # (N, 8)
    offsets: np.ndarray  # (N, K, action_dim): future targets as offsets from the current state (action_space.py)
    instruction_ids: np.ndarray  # (N,) index into instructions
    instructions: list[str]
    episode_of_frame: np.ndarray  # (N,) position of the frame's episode in dataset.episodes
    kind_of_frame: np.ndarray  # (N,) index of the frame's task kind (pick, home, ...), for balance_tasks
    # Per episode (E, 4): where its named objects were, and which exist (only with grounding_weight > 0)
    grounding: np.ndarray | None = None
    grounding_mask: np.ndarray | None = None
    object_at_start: np.ndarray | None = None  # (N,) grounding.object_at_start (with grounding)
    tcp: np.ndarray | None = None  # (N, 2) the tool centre point's table (x, y), m (with config.needs_tcp)


def load_training_data(datasets: list[EpisodeDataset], config: VLAConfig) -> TrainingData:
    """Every frame of `datasets` (e.g. expert demonstrations plus DAgger rollouts) as one training set."""
    states, offsets, instruction_ids, episode_of_frame, kind_of_frame = [], [], [], [], []
    at_start = []
    instructions: dict[str, int] = {}
    kinds: dict[str, int] = {}
    if config.wrist_camera:
        lacking = [str(d.root) for d in datasets if WRIST_IMAGE not in d.features]
        if lacking:
            raise DatasetError(f"the config uses the wrist camera; these datasets have no {WRIST_IMAGE} "
                               f"(collect with --wrist-camera): {', '.join(lacking)}")
    episodes = [(d, training_range(r, e, config), e) for d in datasets for r, e in zip(d.episode_ranges(), d.episodes)]
    num_frames = sum(end - start for _, (start, end), _ in episodes)
    frame_shape = (config.image_size, config.image_size, 3)
    cameras = 2 if config.wrist_camera else 1
    if num_frames * cameras * np.prod(frame_shape) > _IN_MEMORY_LIMIT:
        raise MemoryError(f"{num_frames} frames at {config.image_size}px exceed the in-memory limit "
                          f"({_IN_MEMORY_LIMIT / 1024**3:.0f} GiB of images); train on a smaller image size "
                          "or fewer episodes")
    images = np.empty((num_frames, *frame_shape), np.uint8)
    wrist_images = np.empty((num_frames, *frame_shape), np.uint8) if config.wrist_camera else None
    row = 0
    for position, (dataset, (start, end), episode) in enumerate(episodes):
        episode_states = dataset.read("observation.state", start, end).astype(np.float32)
        episode_actions = dataset.read("action", start, end).astype(np.float32)
        states.append(episode_states)
        offsets.append(chunk_offsets(episode_states, episode_actions, config.chunk_size, config.action_space))
        text = episode["language_instruction"]
        instruction_ids.append(np.full(end - start, instructions.setdefault(text, len(instructions))))
        episode_of_frame.append(np.full(end - start, position))
        kind_of_frame.append(np.full(end - start, kinds.setdefault((episode.get("task") or {}).get("task", "unknown"), len(kinds))))
        if config.grounding_weight > 0:
            at_start.append(object_at_start(episode_states[:, 7], episode.get("task")))
        images[row:row + end - start] = _policy_frames(dataset, "observation.image", start, end, config.image_size)
        if wrist_images is not None:
            wrist_images[row:row + end - start] = _policy_frames(dataset, WRIST_IMAGE, start, end, config.image_size)
        row += end - start
    grounding = dataset_grounding([e for _, _, e in episodes]) if config.grounding_weight > 0 else (None, None)
    return TrainingData(
        images=images,
        wrist_images=wrist_images,
        states=np.concatenate(states),
        offsets=np.concatenate(offsets).astype(np.float32),
        instruction_ids=np.concatenate(instruction_ids),
        instructions=list(instructions),
        episode_of_frame=np.concatenate(episode_of_frame),
        kind_of_frame=np.concatenate(kind_of_frame),
        grounding=grounding[0],
        grounding_mask=grounding[1],
        object_at_start=np.concatenate(at_start) if config.grounding_weight > 0 else None,
        tcp=tcp_poses(np.concatenate(states))[0][:, :2].astype(np.float32) if config.needs_tcp else None,
    )


RELEASING_KINDS = ("place", "stack")  # tasks that end by letting go of the object


def training_range(frames: tuple[int, int], episode: dict, config: VLAConfig) -> tuple[int, int]:
    """The (start, end) frames of an episode that train: all, or with config.drop_retreats
    not those a successful place or stack recorded after its success."""
    start, end = frames
    if config.drop_retreats and episode.get("success") and (episode.get("task") or {}).get("task") in RELEASING_KINDS:
        end = max(start + 1, end - STEPS_AFTER_SUCCESS)
    return start, end


def _policy_frames(dataset: EpisodeDataset, feature: str, start: int, end: int, size: int) -> np.ndarray:
    return np.stack([policy_frame(frame, size) for frame in dataset.read(feature, start, end)])


def task_balanced_weights(kind_of_frame: np.ndarray) -> np.ndarray:
    """Sampling weight per frame such that every task kind is drawn equally often."""
    return 1.0 / np.bincount(kind_of_frame)[kind_of_frame]


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """DrQ-style augmentation: shift each image by up to `pad` pixels (edge-replicated)."""
    if pad == 0:
        return images
    b, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


class Trainer:
    """Owns the model, optimiser and data of one training run."""

    def __init__(self, data: TrainingData, config: VLAConfig, normalization: Normalization,
                 language: LanguageEncoder, train_frames: np.ndarray, val_frames: np.ndarray):
        torch.manual_seed(config.seed)
        self.config = config
        self.data = data
        self.normalization = normalization
        self.model = VLAModel(config)
        if config.freeze_vision:
            self.model.vision.requires_grad_(False)
        if config.named_positions:  # trained on rendered scenes before behaviour cloning
            self.model.named_positions.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.5 * (1 + np.cos(np.pi * min(step, config.steps) / config.steps)))
        self.generator = torch.Generator().manual_seed(config.seed)
        self.train_frames, self.val_frames = train_frames, val_frames
        self.frame_weights = (torch.from_numpy(task_balanced_weights(data.kind_of_frame[train_frames]))
                              if config.balance_tasks else None)
        tokens, masks = language.encode_many(data.instructions, phrases=config.language_phrases)
        self.tokens, self.masks = torch.from_numpy(tokens), torch.from_numpy(masks)
        self.states_norm = torch.from_numpy((data.states - normalization.state_mean) / normalization.state_std)
        self.targets_norm = torch.from_numpy((data.offsets - normalization.offset_mean) / normalization.offset_std)
        self.tcp = torch.from_numpy(data.tcp) if data.tcp is not None else None
        self.grounding = None
        if data.grounding is not None:
            # Standardised per coordinate over the episodes that have it (training-only targets).
            mask = data.grounding_mask.astype(bool)
            present = np.where(mask, data.grounding, np.nan)
            self.grounding_mean = np.nan_to_num(np.nanmean(present, axis=0)).astype(np.float32)
            self.grounding_std = np.nan_to_num(np.nanstd(present, axis=0), nan=1.0).clip(1e-3).astype(np.float32)
            self.grounding = torch.from_numpy(np.where(mask, (data.grounding - self.grounding_mean) / self.grounding_std, 0.0)
                                              .astype(np.float32))
            self.grounding_mask = torch.from_numpy(data.grounding_mask)
            # The object's start position is its label only while it is still there.
            self.object_at_start = torch.from_numpy(data.object_at_start.astype(np.float32))
        self.step = 0
        self.history: dict[str, list] = {"loss": [], "val_loss": [], "success": []}

    def batch(self, frames: np.ndarray, augment: bool) -> tuple[dict[str, torch.Tensor | None], torch.Tensor]:
        """(the model's inputs by keyword, the normalised target chunks) of `frames`."""
        ids = torch.from_numpy(self.data.instruction_ids[frames])
        index = torch.from_numpy(frames)
        inputs = {"image": self._images(self.data.images, frames, augment), "state": self.states_norm[index],
                  "tokens": self.tokens[ids], "mask": self.masks[ids],
                  "wrist": (self._images(self.data.wrist_images, frames, augment)
                            if self.data.wrist_images is not None else None),
                  "tcp": self.tcp[index] if self.tcp is not None else None}
        return inputs, self.targets_norm[index]

    def _images(self, images: np.ndarray, frames: np.ndarray, augment: bool) -> torch.Tensor:
        batch = image_tensor(images[frames])
        return random_shift(batch, self.config.shift_augmentation, self.generator) if augment else batch

    def grounding_batch(self, frames: np.ndarray) -> dict[str, torch.Tensor | None]:
        """The grounding targets and mask of `frames` by keyword (None without grounding)."""
        if self.grounding is None:
            return {"grounding": None, "grounding_mask": None}
        episodes = torch.from_numpy(self.data.episode_of_frame[frames])
        mask = self.grounding_mask[episodes].clone()
        mask[:, :2] *= self.object_at_start[torch.from_numpy(frames)].unsqueeze(1)
        return {"grounding": self.grounding[episodes], "grounding_mask": mask}

    def train_step(self) -> float:
        self.model.train()
        if self.frame_weights is None:
            picks = torch.randint(0, len(self.train_frames), (self.config.batch_size,), generator=self.generator)
        else:
            picks = torch.multinomial(self.frame_weights, self.config.batch_size, replacement=True,
                                      generator=self.generator)
        frames = self.train_frames[picks.numpy()]
        inputs, target = self.batch(frames, augment=True)
        loss = self.model.loss(**inputs, target=target, **self.grounding_batch(frames))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.optimizer.step()
        self.schedule.step()
        self.step += 1
        return loss.item()

    @torch.no_grad()
    def validation_loss(self, max_frames: int = 2048) -> float:
        self.model.eval()
        frames = self.val_frames[:max_frames]
        losses = []
        torch.manual_seed(self.config.seed)  # the flow head samples noise in its loss
        for start in range(0, len(frames), 256):
            inputs, target = self.batch(frames[start : start + 256], augment=False)
            losses.append(float(self.model.loss(**inputs, target=target)))
        return float(np.mean(losses)) if losses else float("nan")

    @torch.no_grad()
    def validation_grounding_error(self, max_frames: int = 2048) -> float:
        """Mean distance (m) between the grounding head's object/target positions and the truth."""
        self.model.eval()
        frames = self.val_frames[:max_frames]
        errors = []
        for start in range(0, len(frames), 256):
            chunk = frames[start : start + 256]
            inputs, _ = self.batch(chunk, augment=False)
            truth = self.grounding_batch(chunk)
            truth, present = truth["grounding"], truth["grounding_mask"]
            _, scene = self.model.encode(**inputs)
            predicted = self.model.grounding(scene).numpy() * self.grounding_std + self.grounding_mean
            actual = truth.numpy() * self.grounding_std + self.grounding_mean
            distance = np.linalg.norm((predicted - actual).reshape(-1, 2, 2), axis=2)
            errors.extend(distance[present.numpy().reshape(-1, 2, 2)[:, :, 0] > 0].tolist())
        return float(np.mean(errors)) if errors else float("nan")

    def policy(self, language: LanguageEncoder, metadata: dict) -> BuiltinPolicy:
        return BuiltinPolicy(self.config, self.model, self.normalization, metadata, language)

    def state_dict(self) -> dict:
        return {"step": self.step, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(), "history": json.dumps(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.history = json.loads(state["history"])


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask over episodes: True for validation."""
    rng = np.random.default_rng(seed)
    val = np.zeros(num_episodes, dtype=bool)
    count = int(round(num_episodes * val_fraction)) if num_episodes > 1 else 0
    val[rng.choice(num_episodes, size=count, replace=False)] = True
    return val


def _load_vision(model: VLAModel, source: BuiltinPolicy) -> None:
    """Copy the vision encoder and keypoints of `source` into `model`; their shapes must match."""
    for name in ("vision", "keypoints"):
        try:
            getattr(model, name).load_state_dict(getattr(source.model, name).state_dict())
        except RuntimeError as err:
            raise ValueError(f"the vision policy's {name} does not match the training config: {err}") from err


def _load_initial_weights(model: VLAModel, init: BuiltinPolicy) -> None:
    """Start `model` from `init`'s weights. Only parts `init` was trained without may start fresh:
    a grounding head, an action head of another kind (on `init`'s trunk), and named positions,
    whose new trunk inputs start at zero weight so that the fine-tune starts from `init`'s actions.
    Named positions from another frame keep their locator, and their trunk inputs restart at zero
    weight: the same answers, measured from elsewhere."""
    state = dict(init.model.state_dict())
    fresh = ("grounding.",)
    if model.config.head != init.config.head:
        fresh += ("head.",)
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    weight = state.get("trunk.0.weight")
    if model.config.named_positions and not init.config.named_positions:
        fresh += ("named_positions.",)
        if weight is not None:
            state["trunk.0.weight"] = torch.cat([weight, weight.new_zeros(len(weight), NAMED_DIM)], dim=1)
    elif model.config.named_positions and init.config.named_frame != model.config.named_frame and weight is not None:
        state["trunk.0.weight"] = torch.cat([weight[:, :-NAMED_DIM], weight.new_zeros(len(weight), NAMED_DIM)], dim=1)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ValueError(f"the initial policy's architecture does not match the training config: {err}") from err
    unexpected_missing = [k for k in missing if not k.startswith(fresh)]
    if unexpected_missing or unexpected:
        raise ValueError("the initial policy's architecture does not match the training config: "
                         f"missing {unexpected_missing}, unexpected {unexpected}")


def train(data_dirs: str | Path | list[str | Path], config: VLAConfig, out: str | Path, *, resume: bool = False,
          init: BuiltinPolicy | None = None, vision_from: BuiltinPolicy | None = None,
          evaluate: Callable[[BuiltinPolicy], float] | None = None, eval_every: int = 0,
          val_every: int = 500, val_fraction: float = 0.05, progress: bool = True) -> BuiltinPolicy:
    """Train the policy on one dataset directory or several and save it to `out`; returns the trained policy.

    With `init`, training starts from that policy's weights and keeps its normalisation
    (fine-tuning, e.g. on demonstrations plus DAgger rollouts); its architecture must
    match `config`, except for a grounding head or named positions it lacks and an action head of
    another kind, which start fresh. With `vision_from`, only the vision encoder and keypoints come from
    that policy (no vision pretraining) and everything else starts fresh: how heads or
    fusions are compared on one perception.
    """
    if init is not None and vision_from is not None:
        raise ValueError("give init (fine-tune everything) or vision_from (reuse the vision), not both")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if isinstance(data_dirs, (str, Path)):
        data_dirs = [data_dirs]
    datasets = [EpisodeDataset(d) for d in data_dirs]
    data = load_training_data(datasets, config)
    num_episodes = sum(len(d.episodes) for d in datasets)
    is_val_episode = split_episodes(num_episodes, val_fraction, config.seed)
    val_mask = is_val_episode[data.episode_of_frame]
    normalization = (init.normalization if init is not None
                     else Normalization.from_data(data.states[~val_mask], data.offsets[~val_mask]))
    language = LanguageEncoder(config.max_tokens)
    trainer = Trainer(data, config, normalization, language,
                      np.flatnonzero(~val_mask), np.flatnonzero(val_mask))
    state_path = out.with_name(out.name + ".train_state")
    resume_state = resume and state_path.is_file()
    if resume_state:
        trainer.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=False))
    elif vision_from is not None:
        _load_vision(trainer.model, vision_from)
    elif init is None and config.vision_pretrain_steps > 0:
        trainer.history["vision_pretrain"] = pretrain_vision(trainer.model, config, progress)
        trainer.history["elapsed"] = trainer.history["vision_pretrain"]["seconds"]  # counted in train_seconds
    elif init is not None:
        _load_initial_weights(trainer.model, init)
    if config.named_positions and not resume_state and not (init is not None and init.config.named_positions):
        trainer.history["named_pretrain"] = pretrain_named_positions(trainer.model, config, language, progress)
        trainer.history["elapsed"] = trainer.history.get("elapsed", 0.0) + trainer.history["named_pretrain"]["seconds"]
    metadata = {
        "trained_on": {"datasets": [str(Path(d).resolve()) for d in data_dirs], "episodes": num_episodes,
                       "frames": len(data.states), "validation_episodes": int(is_val_episode.sum()),
                       "instructions": len(data.instructions)},
        "train_seed": config.seed,
        "trained_instructions": data.instructions,  # what InstructionMatcher reads new phrasings as
    }
    if init is not None:
        metadata["initialised_from"] = {"trained_on": init.metadata.get("trained_on"),
                                        "train_seconds": init.metadata.get("train_seconds")}
    if vision_from is not None:
        metadata["vision_from"] = {"trained_on": vision_from.metadata.get("trained_on"),
                                   "train_seconds": vision_from.metadata.get("train_seconds")}
    started = time.monotonic() - trainer.history.get("elapsed", 0.0)  # resumed runs keep counting
    bar = tqdm(total=config.steps, initial=trainer.step, desc="train", disable=not progress, unit="step")
    running = []
    log_every = max(1, min(50, config.steps // 10))
    while trainer.step < config.steps:
        running.append(trainer.train_step())
        bar.update(1)
        last = trainer.step == config.steps
        if trainer.step % log_every == 0 or last:
            trainer.history["loss"].append([trainer.step, float(np.mean(running))])
            bar.set_postfix(loss=f"{np.mean(running):.4f}")
            running = []
        if (val_every and trainer.step % val_every == 0) or last:
            trainer.history["val_loss"].append([trainer.step, trainer.validation_loss()])
            if trainer.grounding is not None:
                trainer.history.setdefault("val_grounding_error_m", []).append(
                    [trainer.step, trainer.validation_grounding_error()])
            trainer.history["elapsed"] = time.monotonic() - started
            torch.save(trainer.state_dict(), state_path)
        if evaluate is not None and ((eval_every and trainer.step % eval_every == 0) or last):
            trainer.history["success"].append([trainer.step, evaluate(trainer.policy(language, metadata))])
    bar.close()
    metadata["train_seconds"] = round(time.monotonic() - started, 1)
    metadata["history"] = trainer.history
    policy = trainer.policy(language, metadata)
    policy.save(out)
    plot_history(trainer.history, out.parent)
    return policy


def plot_history(history: dict, directory: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    for name, series, ylabel in (("loss.png", ("loss", "val_loss"), "loss"), ("success.png", ("success",), "success")):
        if not any(history.get(s) for s in series):
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key in series:
            if history.get(key):
                steps, values = zip(*history[key])
                ax.plot(steps, values, label=key.replace("_", " "))
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(directory / name, dpi=100)
        plt.close(fig)
