"""The network of the built-in policy: vision, language, fusion and three interchangeable action heads.

Inputs are already normalised (see policy.py): images in [0, 1], state and action
offsets standardised with the dataset's statistics. With config.wrist_camera the
hand camera's image goes through a second CNN of the same shape, keypoints of
both images go to the trunk. With config.named_positions the table (x, y) of the objects
the instruction's object and target phrases name join them (NamedPositions), with
named_frame "tcp" as offsets from the tool centre point's (x, y), an input then. All heads predict a chunk of
`chunk_size` x `action_dim` normalised offsets.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from vla_ros.policies.builtin.config import VLAConfig
from vla_ros.policies.builtin.grounding import GROUNDING_DIM
from vla_ros.policies.builtin.language import EMBEDDING_DIM, PHRASES


class LanguagePooling(nn.Module):
    """Learned-query attention over MiniLM token embeddings -> one instruction vector.

    With `phrases` > 1 the tokens come as that many equal runs (LanguageEncoder.encode with phrases),
    each pooled by its own query; the pooled phrases are joined by the output layer.
    """

    def __init__(self, dim: int, phrases: int = 1):
        super().__init__()
        self.phrases = phrases
        self.project = nn.Linear(EMBEDDING_DIM, dim)
        # (dim,) for one phrase: the shape checkpoints before language_phrases were saved with
        shape = (dim,) if phrases == 1 else (phrases, dim)
        self.query = nn.Parameter(torch.randn(shape) / math.sqrt(dim))
        self.out = nn.Sequential(nn.LayerNorm(phrases * dim), nn.Linear(phrases * dim, dim), nn.GELU())

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, _ = tokens.shape
        keys = self.project(tokens)  # (B, T, D)
        runs = keys.view(b, self.phrases, t // self.phrases, -1)  # (B, P, T/P, D)
        query = self.query.view(self.phrases, -1)
        scores = torch.einsum("bptd,pd->bpt", runs, query) / math.sqrt(keys.shape[-1])
        scores = scores.masked_fill(~mask.view(b, self.phrases, -1), float("-inf"))
        weights = torch.softmax(scores, dim=-1).unsqueeze(-1)
        return self.out((weights * runs).sum(dim=2).flatten(1))


class SpatialSoftmax(nn.Module):
    """Feature map -> expected (x, y) image coordinates of `keypoints` learned keypoints."""

    def __init__(self, in_channels: int, keypoints: int):
        super().__init__()
        self.to_keypoints = nn.Conv2d(in_channels, keypoints, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        maps = self.to_keypoints(features)
        b, k, h, w = maps.shape
        attention = torch.softmax(maps.flatten(2), dim=-1).view(b, k, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=maps.device)
        xs = torch.linspace(-1.0, 1.0, w, device=maps.device)
        x = (attention.sum(dim=2) * xs).sum(dim=-1)
        y = (attention.sum(dim=3) * ys).sum(dim=-1)
        return torch.cat([x, y], dim=1)  # (B, 2K)


class NamedPositions(nn.Module):
    """Where on the table the object and the target phrase's objects are: an MLP from the scene
    keypoints of the vision without FiLM (what vision pretraining taught to locate objects)
    and a phrase's mean MiniLM token embedding to that object's (x, y). Trained on freshly
    rendered scenes before behaviour cloning (vision_pretrain.pretrain_named_positions), then
    frozen. (B, 2K) keypoints + (B, P * T, 384) phrase tokens and mask -> (B, 4): object x, y,
    target x, y, standardised (x 0.2 m + `mean`: metres). An empty phrase (no target) reads
    as a zero embedding; the trunk learns to ignore its answer from the action phrase."""

    NAMED = (PHRASES.index("object"), PHRASES.index("target"))
    SCALE = 0.2  # m: the table's scale

    def __init__(self, keypoint_dim: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(keypoint_dim + EMBEDDING_DIM, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 2))
        self.register_buffer("mean", torch.zeros(2))

    def standardised(self, xy: torch.Tensor) -> torch.Tensor:
        """(B, 2) table (x, y) in metres -> the standardised units locate() answers in."""
        return (xy - self.mean) / self.SCALE

    def locate(self, keypoints: torch.Tensor, phrase: torch.Tensor) -> torch.Tensor:
        """(B, 2K) keypoints, (B, 384) phrase embeddings -> (B, 2) standardised (x, y)."""
        return self.net(torch.cat([keypoints, phrase], dim=1))

    @staticmethod
    def phrase_embedding(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(..., T, 384) token embeddings and (..., T) mask -> (..., 384): their masked mean."""
        weights = mask.float().unsqueeze(-1)
        return (tokens * weights).sum(dim=-2) / weights.sum(dim=-2).clamp(min=1.0)

    def forward(self, keypoints: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b = len(tokens)
        phrases = self.phrase_embedding(tokens.view(b, len(PHRASES), -1, EMBEDDING_DIM)[:, self.NAMED],
                                        mask.view(b, len(PHRASES), -1)[:, self.NAMED])  # (B, 2, 384)
        return torch.cat([self.locate(keypoints, phrases[:, i]) for i in range(len(self.NAMED))], dim=1)


class VisionEncoder(nn.Module):
    """Small CNN with coordinate channels; its last two blocks are FiLM-modulated when fusion == 'film'."""

    def __init__(self, config: VLAConfig):
        super().__init__()
        c = config.channels
        self.blocks = nn.ModuleList(
            [
                nn.Conv2d(3 + 2, c[0], 5, stride=2, padding=2),
                nn.Conv2d(c[0], c[1], 3, stride=2, padding=1),
                nn.Conv2d(c[1], c[2], 3, stride=1, padding=1),
                nn.Conv2d(c[2], c[3], 3, stride=1, padding=1),
            ]
        )
        self.norms = nn.ModuleList([nn.GroupNorm(min(8, ch), ch) for ch in c])
        self.film_blocks = (2, 3) if config.fusion == "film" else ()
        self.out_channels = c[3]

    def forward(self, image: torch.Tensor, film: list[tuple[torch.Tensor, torch.Tensor]] | None) -> torch.Tensor:
        """With `film` None the modulated blocks are left as they are (FiLM's identity)."""
        b, _, h, w = image.shape
        ys = torch.linspace(-1.0, 1.0, h, device=image.device).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1.0, 1.0, w, device=image.device).view(1, 1, 1, w).expand(b, 1, h, w)
        x = torch.cat([image, xs, ys], dim=1)
        for i, (conv, norm) in enumerate(zip(self.blocks, self.norms)):
            x = norm(conv(x))
            if film is not None and i in self.film_blocks:
                gamma, beta = film[self.film_blocks.index(i)]
                x = x * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]
            x = F.relu(x)
        return x


class CrossAttentionFusion(nn.Module):
    """Language tokens query the image feature map; returns the attended features, flattened."""

    def __init__(self, channels: int, language_dim: int, queries: int = 4):
        super().__init__()
        self.queries = queries
        self.to_query = nn.Linear(language_dim, queries * channels)
        self.attention = nn.MultiheadAttention(channels, num_heads=4, batch_first=True)
        self.out_dim = queries * channels

    def forward(self, features: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = features.shape
        tokens = F.adaptive_avg_pool2d(features, 12).flatten(2).transpose(1, 2)  # (B, 144, C)
        query = self.to_query(language).view(b, self.queries, c)
        attended, _ = self.attention(query, tokens, tokens, need_weights=False)
        return attended.flatten(1)


class ContinuousHead(nn.Module):
    """ACT-style regression of the whole chunk (L1)."""

    def __init__(self, config: VLAConfig):
        super().__init__()
        self.shape = (config.chunk_size, config.action_dim)
        self.linear = nn.Linear(config.hidden_dim, config.chunk_size * config.action_dim)

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self.linear(features).view(-1, *self.shape), target)

    def predict(self, features: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.linear(features).view(-1, *self.shape)


class TokenHead(nn.Module):
    """RT-2/OpenVLA-style discrete actions: `token_bins` bins per dimension, cross-entropy."""

    def __init__(self, config: VLAConfig, slot_dim: int = 32):
        super().__init__()
        self.shape = (config.chunk_size, config.action_dim)
        self.bins = config.token_bins
        self.range = config.token_range
        slots = config.chunk_size * config.action_dim
        self.to_slots = nn.Linear(config.hidden_dim, slots * slot_dim)
        self.slot_embedding = nn.Parameter(torch.zeros(slots, slot_dim))
        self.to_logits = nn.Linear(slot_dim, self.bins)
        self.register_buffer("centres", torch.linspace(-self.range, self.range, self.bins))

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        slots = self.to_slots(features).view(features.shape[0], -1, self.slot_embedding.shape[1])
        return self.to_logits(F.gelu(slots + self.slot_embedding))  # (B, slots, bins)

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        scaled = (target.clamp(-self.range, self.range) + self.range) / (2 * self.range)
        labels = (scaled * (self.bins - 1)).round().long().flatten(1)
        return F.cross_entropy(self._logits(features).transpose(1, 2), labels)

    def predict(self, features: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        tokens = self._logits(features).argmax(dim=-1)
        return self.centres[tokens].view(-1, *self.shape)


class FlowHead(nn.Module):
    """Flow matching over the chunk (as in pi0): learn the velocity from noise to actions, integrate with Euler."""

    def __init__(self, config: VLAConfig):
        super().__init__()
        self.shape = (config.chunk_size, config.action_dim)
        self.steps = config.flow_steps
        size = config.chunk_size * config.action_dim
        self.velocity = nn.Sequential(
            nn.Linear(size + 32 + config.hidden_dim, config.hidden_dim),
            nn.GELU(),
            nn.Linear(config.hidden_dim, config.hidden_dim),
            nn.GELU(),
            nn.Linear(config.hidden_dim, size),
        )

    @staticmethod
    def _time_embedding(t: torch.Tensor) -> torch.Tensor:
        frequencies = torch.exp(torch.linspace(0.0, math.log(100.0), 16, device=t.device))
        angles = t[:, None] * frequencies[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    def _v(self, x: torch.Tensor, t: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.velocity(torch.cat([x, self._time_embedding(t), features], dim=1))

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x1 = target.flatten(1)
        x0 = torch.randn_like(x1)
        t = torch.rand(x1.shape[0], device=x1.device)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        return F.mse_loss(self._v(xt, t, features), x1 - x0)

    def predict(self, features: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b = features.shape[0]
        x = torch.randn(b, self.shape[0] * self.shape[1], generator=generator, device=features.device)
        dt = 1.0 / self.steps
        for i in range(self.steps):
            t = torch.full((b,), i * dt, device=features.device)
            x = x + dt * self._v(x, t, features)
        return x.view(-1, *self.shape)


NAMED_DIM = 4  # NamedPositions: object x, y, target x, y

HEAD_CLASSES = {"continuous": ContinuousHead, "tokens": TokenHead, "flow": FlowHead}


class VLAModel(nn.Module):
    """image (B,3,H,W) in [0,1], state (B,8) normalised, language tokens (B,T,384) + mask, with
    config.wrist_camera the wrist image (B,3,H,W), and with config.needs_tcp the tool centre
    point's table (x, y) in metres (B,2) -> chunk features."""

    def __init__(self, config: VLAConfig):
        super().__init__()
        self.config = config
        d = config.language_dim
        self.language = LanguagePooling(d, len(PHRASES) if config.language_phrases else 1)
        self.vision = VisionEncoder(config)
        c = self.vision.out_channels
        if config.fusion == "film":
            self.film = self._film_layers()
        self.keypoints = SpatialSoftmax(c, config.keypoints)
        fused_dim = 2 * config.keypoints + config.state_dim + d
        if config.wrist_camera:
            self.wrist_vision = VisionEncoder(config)
            if config.fusion == "film":
                self.wrist_film = self._film_layers()
            self.wrist_keypoints = SpatialSoftmax(c, config.keypoints)
            fused_dim += 2 * config.keypoints
        if config.fusion == "cross_attention":
            self.cross_attention = CrossAttentionFusion(c, d)
            fused_dim += self.cross_attention.out_dim
        if config.named_positions:
            self.named_positions = NamedPositions(2 * config.keypoints)
            fused_dim += NAMED_DIM
        self.trunk = nn.Sequential(
            nn.Linear(fused_dim, config.hidden_dim),
            nn.GELU(),
            nn.Linear(config.hidden_dim, config.hidden_dim),
            nn.GELU(),
        )
        self.head = HEAD_CLASSES[config.head](config)
        if config.grounding_weight > 0:  # training only: where the named objects are (grounding.py)
            self.grounding = nn.Sequential(nn.Linear(2 * config.keypoints + d, config.hidden_dim // 2), nn.GELU(),
                                           nn.Linear(config.hidden_dim // 2, GROUNDING_DIM))

    def _film_layers(self) -> nn.ModuleList:
        """Instruction -> (scale, shift) of each FiLM-modulated block of a vision encoder."""
        return nn.ModuleList([nn.Linear(self.config.language_dim, 2 * self.config.channels[i])
                              for i in self.vision.film_blocks])

    def encode(self, image, state, tokens, mask, wrist=None, tcp=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(features for the action head, language-conditioned keypoints + language for the
        grounding head; None without one, so inference does not build it)."""
        language = self.language(tokens, mask)
        feature_map = self.vision(image, self._film(self.film if self.config.fusion == "film" else None, language))
        keypoints = self.keypoints(feature_map)
        scene = torch.cat([keypoints, language], dim=1) if self.config.grounding_weight > 0 else None
        parts = [keypoints, state, language]  # (the order the shipped checkpoint was trained with)
        if self.config.fusion == "cross_attention":
            parts.append(self.cross_attention(feature_map, language))
        if self.config.wrist_camera:
            if wrist is None:
                raise ValueError("this model was trained with the wrist camera: it needs the wrist image")
            film = self._film(self.wrist_film if self.config.fusion == "film" else None, language)
            parts.append(self.wrist_keypoints(self.wrist_vision(wrist, film)))
        if self.config.named_positions:  # last: a fine-tune that adds them extends the trunk's input (train.py)
            parts.append(self.named_inputs(image, tokens, mask, tcp))
        return self.trunk(torch.cat(parts, dim=1)), scene

    def named_inputs(self, image, tokens, mask, tcp=None) -> torch.Tensor:
        """(B, NAMED_DIM) standardised object and target (x, y): on the table, or from the tool
        centre point `tcp` with config.needs_tcp."""
        named = self.named_positions(self.plain_keypoints(image), tokens, mask)
        if not self.config.needs_tcp:
            return named
        if tcp is None:
            raise ValueError("this model gives the named positions from the hand: it needs the tool centre point's (x, y)")
        # The offsets keep the standardised scale; the mean cancels.
        return named - self.named_positions.standardised(tcp).repeat(1, NAMED_DIM // 2)

    def plain_keypoints(self, image: torch.Tensor) -> torch.Tensor:
        """The scene keypoints without FiLM: what vision pretraining located objects from."""
        return self.keypoints(self.vision(image, None))

    @staticmethod
    def _film(layers: nn.ModuleList | None, language: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """FiLM (scale, shift) pairs for a vision encoder's modulated blocks, from the instruction."""
        return None if layers is None else [tuple(layer(language).chunk(2, dim=1)) for layer in layers]

    def features(self, image, state, tokens, mask, wrist=None, tcp=None) -> torch.Tensor:
        return self.encode(image, state, tokens, mask, wrist, tcp)[0]

    def loss(self, image, state, tokens, mask, target, grounding=None, grounding_mask=None, wrist=None,
             tcp=None) -> torch.Tensor:
        """The action head's loss; with `grounding` targets (normalised, masked) plus
        grounding_weight x the mean squared error of the grounding head."""
        features, scene = self.encode(image, state, tokens, mask, wrist, tcp)
        loss = self.head.loss(features, target)
        if grounding is not None and self.config.grounding_weight > 0:
            loss = loss + self.config.grounding_weight * self.grounding_error(scene, grounding, grounding_mask)
        return loss

    def grounding_error(self, scene, grounding, grounding_mask) -> torch.Tensor:
        squared = (self.grounding(scene) - grounding) ** 2 * grounding_mask
        return squared.sum() / grounding_mask.sum().clamp(min=1.0)

    def predict(self, image, state, tokens, mask, generator: torch.Generator | None = None, wrist=None,
                tcp=None) -> torch.Tensor:
        return self.head.predict(self.features(image, state, tokens, mask, wrist, tcp), generator)
