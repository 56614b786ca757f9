"""Configuration of the built-in policy: one dataclass, plus the named configs `vla-ros train --config` takes."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from vla_ros.policies.builtin.action_space import ACTION_DIMS, ACTION_SPACES
from vla_ros.policies.chunking import AGGREGATION_MODES

FUSIONS = ("film", "cross_attention", "concat")
HEADS = ("continuous", "tokens", "flow")
FRAMES = ("table", "tcp")  # where positions are measured from: the table, or the tool centre point


@dataclass(frozen=True)
class VLAConfig:
    # Observation
    image_size: int = 96  # square RGB input; frames are resized to it
    state_dim: int = 8  # arm.COMMANDED_JOINTS positions
    # A second image from the camera on the hand (Observation.wrist_image), through its own
    # CNN: near an object it shows the offset between fingers and object large.
    wrist_camera: bool = False
    # Language: all-MiniLM-L6-v2 token embeddings, pooled by learned attention
    max_tokens: int = 16
    language_dim: int = 128
    # Encode the action, the object and the target of an instruction apart (language.
    # instruction_phrases), each pooled by its own query: "yellow cube" then reads the same
    # whether it is to be pushed or picked, which unseen compositions ask for.
    language_phrases: bool = False
    # Give the trunk where on the table the object and target phrases' objects are
    # (model.NamedPositions), located from the frozen vision by an MLP first trained on
    # named_pretrain_scenes freshly rendered scenes for named_pretrain_steps (vision_pretrain.py).
    # Needs language_phrases and freeze_vision. named_frame "tcp" gives them to the trunk as
    # offsets from the tool centre point's (x, y): in a carry, nearly the move a tcp action asks for.
    named_positions: bool = False
    named_frame: str = "table"
    named_pretrain_scenes: int = 8000
    named_pretrain_steps: int = 6000
    # Read a new phrasing as the trained instruction it means (language.InstructionMatcher)
    match_instructions: bool = True
    # Vision: a small CNN trained from scratch, spatial-softmax keypoints
    channels: tuple[int, ...] = (32, 64, 64, 64)
    keypoints: int = 64
    fusion: str = "film"  # film | cross_attention | concat
    hidden_dim: int = 512
    # Actions: K future targets at the control period, predicted as normalised offsets
    # from the current state: of the joints, or of the tool pose (action_space.py).
    chunk_size: int = 10
    action_space: str = "joints"  # joints | tcp
    action_dim: int = 8  # ACTION_DIMS[action_space]
    head: str = "continuous"  # continuous | tokens | flow
    token_bins: int = 256  # tokens head: bins per dimension over +-token_range std
    token_range: float = 4.0
    flow_steps: int = 10  # flow head: Euler integration steps at inference
    # Execution (vla_ros.policies.chunking): query every n_action_steps control steps and
    # blend overlapping chunks with this aggregation mode
    n_action_steps: int = 1
    aggregation: str = "ensemble"  # ensemble | latest | average
    temporal_ensemble_decay: float = 0.1  # ACT's m: weight exp(-m * i), i = 0 for the oldest prediction
    # Execute each chunk from its entry lead_steps on, that many control steps early. The
    # expert's next target closes only ~1/6 of the remaining distance, so an error b in the
    # predicted next target settles the arm ~6 b off; a target further ahead shrinks that
    # gain (docs/POLICY.md: seen 79/200 at 7 against 66/200 at 0).
    lead_steps: int = 7
    # Training
    batch_size: int = 64
    learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    steps: int = 20000
    shift_augmentation: int = 4  # pixels of random image shift
    balance_tasks: bool = False  # draw every task kind equally often (home is ~4% of the expert's episodes)
    # Leave out the frames a successful place or stack recorded after its success
    # (collection.STEPS_AFTER_SUCCESS): the expert lifts its open hand off the object it let
    # go of, which looks like the descent onto an object before a grasp (docs/POLICY.md).
    drop_retreats: bool = False
    grounding_weight: float = 0.0  # > 0: auxiliary loss on where the named objects are (grounding.py)
    # Before behaviour cloning, teach the vision to locate every object on that many freshly
    # rendered scenes (vision_pretrain.py); freeze_vision then keeps its convolutions fixed.
    vision_pretrain_scenes: int = 0
    vision_pretrain_steps: int = 0
    # What the vision learns to find: each object's table (x, y), or its (x, y) from the tool
    # centre point, with the arm posed over the objects as in episodes ("tcp"): camera jitter
    # moves hand and object alike in the image, so the offset a grasp needs survives it.
    vision_pretrain_frame: str = "table"
    freeze_vision: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.action_space not in ACTION_SPACES:
            raise ValueError(f"action_space must be one of {ACTION_SPACES}, got {self.action_space!r}")
        if self.action_dim != ACTION_DIMS[self.action_space]:
            raise ValueError(f"action space {self.action_space!r} has {ACTION_DIMS[self.action_space]} values per "
                             f"target, got action_dim {self.action_dim}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(f"n_action_steps must be in [1, chunk_size={self.chunk_size}], got {self.n_action_steps}")
        if not 0 <= self.lead_steps < self.chunk_size:
            raise ValueError(f"lead_steps must be in [0, chunk_size={self.chunk_size}), got {self.lead_steps}")
        if self.aggregation not in AGGREGATION_MODES:
            raise ValueError(f"aggregation must be one of {AGGREGATION_MODES}, got {self.aggregation!r}")
        if not self.temporal_ensemble_decay >= 0:
            raise ValueError(f"temporal_ensemble_decay must be >= 0, got {self.temporal_ensemble_decay}")
        if self.named_positions and not (self.language_phrases and self.freeze_vision):
            raise ValueError("named_positions needs language_phrases (the object and target phrases apart) and "
                             "freeze_vision (it reads the vision as it was when its locator was trained)")
        if self.named_positions and (self.named_pretrain_scenes < 2 or self.named_pretrain_steps < 1):
            raise ValueError("named_positions needs named_pretrain_scenes >= 2 and named_pretrain_steps >= 1 "
                             f"(got {self.named_pretrain_scenes}, {self.named_pretrain_steps})")
        if self.named_frame not in FRAMES:
            raise ValueError(f"named_frame must be one of {FRAMES}, got {self.named_frame!r}")
        if not self.grounding_weight >= 0:
            raise ValueError(f"grounding_weight must be >= 0, got {self.grounding_weight}")
        if self.vision_pretrain_steps < 0 or (self.vision_pretrain_steps > 0 and self.vision_pretrain_scenes < 2):
            raise ValueError("vision pretraining needs vision_pretrain_steps >= 0 and, when > 0, "
                             f"vision_pretrain_scenes >= 2 (got {self.vision_pretrain_steps}, {self.vision_pretrain_scenes})")
        if self.vision_pretrain_frame not in FRAMES:
            raise ValueError(f"vision_pretrain_frame must be one of {FRAMES}, got {self.vision_pretrain_frame!r}")
        if self.image_size < 32 or self.chunk_size < 1:
            raise ValueError("image_size must be >= 32 and chunk_size >= 1")

    @property
    def needs_tcp(self) -> bool:
        """Whether the model takes the tool centre point's (x, y) as an input (named_frame "tcp")."""
        return self.named_positions and self.named_frame == "tcp"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VLAConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown VLAConfig fields: {', '.join(unknown)}")
        values = dict(data)
        if "channels" in values:
            values["channels"] = tuple(values["channels"])
        return cls(**values)


DEFAULT = VLAConfig()

# Vision pretrained to locate objects, then frozen; no image shifts, which would move
# every object by up to 4 px (~3 cm on the table) against the action labels.
LOCALISED = replace(DEFAULT, vision_pretrain_scenes=8000, vision_pretrain_steps=2500, freeze_vision=True,
                    shift_augmentation=0)
# The localised vision, predicting tool-pose moves that IK turns into joint targets. Its
# chunks execute from entry 4 (docs/POLICY.md: seen 98/200 at 4, 96 at 0, 92 at 7).
TCP = replace(LOCALISED, action_space="tcp", action_dim=ACTION_DIMS["tcp"], lead_steps=4)

# Named configs for `vla-ros train --config NAME`.
CONFIGS: dict[str, VLAConfig] = {
    "default": DEFAULT,
    "tokens": replace(DEFAULT, head="tokens"),
    "flow": replace(DEFAULT, head="flow"),
    "cross_attention": replace(DEFAULT, fusion="cross_attention"),
    "concat": replace(DEFAULT, fusion="concat"),
    "grounded": replace(DEFAULT, grounding_weight=0.5),
    "localised": LOCALISED,
    "tcp": TCP,
    # As tcp, with the vision pretrained to find objects from the hand, not on the table
    # (session 12: worse than tcp, docs/POLICY.md "Grasp precision").
    "tcp_relative": replace(TCP, vision_pretrain_frame="tcp", vision_pretrain_scenes=16000, vision_pretrain_steps=6000),
    # As tcp, plus the hand camera's image through a second CNN (datasets collected with
    # --wrist-camera; docs/POLICY.md "Wrist camera").
    "tcp_wrist": replace(TCP, wrist_camera=True),
    # As tcp_wrist, with the action, object and target phrases of an instruction encoded apart.
    "tcp_phrases": replace(TCP, wrist_camera=True, language_phrases=True),
    # As tcp_phrases, plus where on the table the named object and target are.
    "tcp_named": replace(TCP, wrist_camera=True, language_phrases=True, named_positions=True),
    # As tcp_named, the named positions given from the hand.
    "tcp_named_hand": replace(TCP, wrist_camera=True, language_phrases=True, named_positions=True, named_frame="tcp"),
    # For tests and smoke runs: small and fast.
    "tiny": replace(DEFAULT, image_size=48, channels=(8, 16, 16, 16), keypoints=8, hidden_dim=64, language_dim=32,
                    chunk_size=4, lead_steps=2, steps=200, batch_size=16, learning_rate=1e-3),
}


def named_config(name: str) -> VLAConfig:
    if name not in CONFIGS:
        raise ValueError(f"unknown policy config {name!r}; choose from {', '.join(CONFIGS)}")
    return CONFIGS[name]
