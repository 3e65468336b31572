"""The hybrid action codec: one place that knows the layout of an actor's output (Eqs. 13-14).

An actor emits one row per UE::

    [ point logits (P) | channel logits (C) | power mean | power log-std ]

- ``HybridDistribution`` (an RLlib ``Distribution``) reads that row: a categorical over partition
  points, a categorical over channels and a Gaussian over the transmit power. It samples ``(b, c, p)``,
  gives per-branch log-probabilities and entropies (the learner clips each branch, Eq. 19) and their
  sums (what RLlib's sampler records). Its torch distributions skip argument validation (RLlib builds
  several per step; the checks cost ~25 % of an iteration), without touching any process-wide default.
- ``HybridHead`` turns raw network outputs into that row (mean ``p_max * sigmoid``, std ``softplus``,
  as in the authors' code) and takes the mode. The module, the learner, ``TrainedPolicy`` and the
  fused forward all use it. The power sample is left unclipped: only the simulator clips it
  (``marl_env.core.clip_power``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import gymnasium as gym
import torch
from ray.rllib.core.distribution.distribution import Distribution
from torch.distributions import Categorical, Normal

MIN_STD = 1e-3
BRANCHES = ("point", "channel", "power")


def hybrid_space_sizes(space: gym.spaces.Tuple) -> tuple[int, int, float]:
    """``(B_n + 2, C, p_max)`` of a UE's ``Tuple(Discrete, Discrete, Box)`` action space."""
    if not (isinstance(space, gym.spaces.Tuple) and len(space.spaces) == 3):
        raise ValueError(f"action space {space} must be Tuple(Discrete(B+2), Discrete(C), Box(0, p_max))")
    b, c, p = space.spaces
    return int(b.n), int(c.n), float(p.high.reshape(-1)[0])


class HybridDistribution(Distribution):
    """Point x channel x power, independent given the state (Eqs. 13-14)."""

    def __init__(self, dist_inputs: torch.Tensor, n_points: int, n_channels: int):
        super().__init__()
        self.n_points, self.n_channels = n_points, n_channels
        self.point = Categorical(logits=dist_inputs[..., :n_points], validate_args=False)
        self.channel = Categorical(logits=dist_inputs[..., n_points:n_points + n_channels], validate_args=False)
        rest = dist_inputs[..., n_points + n_channels:]
        self.power = Normal(rest[..., 0], torch.exp(rest[..., 1]), validate_args=False)
        self.branches = (self.point, self.channel, self.power)

    @classmethod
    def from_logits(cls, logits: torch.Tensor, n_points: int = 0, n_channels: int = 0, **kwargs) -> HybridDistribution:
        return cls(logits, n_points, n_channels)

    @staticmethod
    def required_input_dim(space: gym.Space, **kwargs) -> int:
        n_points, n_channels, _ = hybrid_space_sizes(space)
        return n_points + n_channels + 2

    def sample(self, *, sample_shape: tuple[int, ...] = (), **kwargs) -> tuple[torch.Tensor, ...]:
        """``(b, c, p)``; ``p`` has a trailing axis of 1 (the env's ``Box(shape=(1,))``)."""
        shape = torch.Size(sample_shape or ())
        return self.point.sample(shape), self.channel.sample(shape), self.power.sample(shape).unsqueeze(-1)

    def rsample(self, *, sample_shape: tuple[int, ...] = (), **kwargs):
        raise NotImplementedError("categorical branches have no reparameterised sample")

    @staticmethod
    def split_actions(actions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, c, p = actions
        return b.reshape(-1).long(), c.reshape(-1).long(), p.reshape(-1)

    def branch_logps(self, actions) -> list[torch.Tensor]:
        """Per-branch log-probabilities of ``(b, c, p)`` (``p`` the unclipped Gaussian sample)."""
        b, c, p = self.split_actions(actions)
        return [self.point.log_prob(b), self.channel.log_prob(c), self.power.log_prob(p)]

    def logp(self, value, **kwargs) -> torch.Tensor:
        return sum(self.branch_logps(value))

    def branch_entropies(self) -> list[torch.Tensor]:
        return [d.entropy() for d in self.branches]

    def entropy(self, **kwargs) -> torch.Tensor:
        return sum(self.branch_entropies())

    def kl(self, other: HybridDistribution, **kwargs) -> torch.Tensor:
        return sum(torch.distributions.kl_divergence(a, b) for a, b in zip(self.branches, other.branches, strict=True))

    def mode(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.point.logits.argmax(-1), self.channel.logits.argmax(-1), self.power.mean.unsqueeze(-1)

    def to_deterministic(self) -> HybridMode:
        return HybridMode(self)


class HybridMode(Distribution):
    """The mode of each branch, as RLlib's inference path asks for (``to_deterministic``)."""

    def __init__(self, dist: HybridDistribution):
        super().__init__()
        self.dist = dist

    def sample(self, **kwargs):
        return self.dist.mode()

    def rsample(self, **kwargs):
        return self.dist.mode()

    def logp(self, value, **kwargs):
        return self.dist.logp(value)

    def entropy(self, **kwargs):
        return torch.zeros_like(self.dist.power.mean)

    def kl(self, other, **kwargs):
        raise NotImplementedError

    @staticmethod
    def required_input_dim(space: gym.Space, **kwargs) -> int:
        return HybridDistribution.required_input_dim(space)

    @classmethod
    def from_logits(cls, logits, **kwargs):
        return cls(HybridDistribution.from_logits(logits, **kwargs))

    def to_deterministic(self):
        return self


@dataclass(frozen=True)
class HybridHead:
    """The codec of one action space: ``P`` points, ``C`` channels, power in ``(0, p_max]``."""

    n_points: int
    n_channels: int
    p_max: float

    @classmethod
    def for_space(cls, space: gym.spaces.Tuple) -> HybridHead:
        return cls(*hybrid_space_sizes(space))

    @property
    def width(self) -> int:
        return self.n_points + self.n_channels + 2

    @cached_property
    def dist_cls(self) -> type[HybridDistribution]:
        """The RLlib distribution class with this layout bound (what connectors call ``from_logits`` on)."""
        return HybridDistribution.get_partial_dist_cls(n_points=self.n_points, n_channels=self.n_channels)

    def encode(self, point_logits: torch.Tensor, channel_logits: torch.Tensor, power_raw: torch.Tensor,
               p_max: torch.Tensor | float | None = None) -> torch.Tensor:
        """Raw branch outputs -> the distribution row; ``power_raw[..., 0]`` -> mean ``p_max * sigmoid``,
        ``power_raw[..., 1]`` -> ``log(softplus + MIN_STD)``."""
        p_max = self.p_max if p_max is None else p_max
        mean = p_max * torch.sigmoid(power_raw[..., :1])
        log_std = torch.log(torch.nn.functional.softplus(power_raw[..., 1:2]) + MIN_STD)
        return torch.cat([point_logits, channel_logits, mean, log_std], dim=-1)

    def dist(self, dist_inputs: torch.Tensor) -> HybridDistribution:
        return HybridDistribution(dist_inputs, self.n_points, self.n_channels)

    def mode(self, dist_inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(b, c, p)`` modes, each ``[...]`` (no trailing axis)."""
        n, c = self.n_points, self.n_channels
        return (dist_inputs[..., :n].argmax(-1), dist_inputs[..., n:n + c].argmax(-1), dist_inputs[..., n + c])
