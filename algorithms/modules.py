"""MAHPPO's networks as RLlib ``RLModule`` s (Sec. 5.1, Fig. 3; sizes of Sec. 6.3.1).

- ``HybridActorModule``: one per UE (its own ``theta_n``). Shared trunk 256-128 on the global state,
  then three branches of 64 units: partition-point logits (``B_n + 2``, Eq. 13), channel logits
  (``C``, Eq. 13) and the transmit power as a Gaussian (Eq. 14: mean ``p_max * sigmoid``, standard
  deviation ``softplus``, as in the authors' code).
- ``CentralCriticModule``: one critic 256-128-64-1 on the global state, shared by all actors; it
  lives only on the learner (``learner_only=True``) and is not needed to act or to serve.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import (
    TorchCategorical,
    TorchDiagGaussian,
    TorchMultiDistribution,
)
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from torch import nn

CRITIC_ID = "critic"
MIN_STD = 1e-3


def hybrid_space_sizes(space: gym.spaces.Tuple) -> tuple[int, int, float]:
    """``(B_n + 2, C, p_max)`` of a UE's ``Tuple(Discrete, Discrete, Box)`` action space."""
    if not (isinstance(space, gym.spaces.Tuple) and len(space.spaces) == 3):
        raise ValueError(f"action space {space} must be Tuple(Discrete(B+2), Discrete(C), Box(0, p_max))")
    b, c, p = space.spaces
    return int(b.n), int(c.n), float(p.high.reshape(-1)[0])


def hybrid_dist_cls(space: gym.spaces.Tuple):
    """RLlib's multi-distribution over [categorical point, categorical channel, Gaussian power]."""
    n_points, n_channels, _ = hybrid_space_sizes(space)
    return TorchMultiDistribution.get_partial_dist_cls(
        space=space,
        child_distribution_cls_struct=(TorchCategorical, TorchCategorical, TorchDiagGaussian),
        input_lens=[n_points, n_channels, 2],
    )


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class HybridActorModule(TorchRLModule):
    """One UE's actor with three output branches over a shared trunk."""

    def setup(self) -> None:
        # torch.distributions checks every argument and sample by default; RLlib builds several
        # distributions per env step and per minibatch, and on 2 cores the checks cost ~25 % of an
        # iteration. They are a debugging aid: switch them off in every process that builds actors.
        torch.distributions.Distribution.set_default_validate_args(False)
        cfg = self.model_config or {}
        trunk = list(cfg.get("trunk", [256, 128]))
        branch = int(cfg.get("branch", 64))
        self.n_points, self.n_channels, self.p_max = hybrid_space_sizes(self.action_space)
        obs_dim = int(self.observation_space.shape[0])
        self.trunk = nn.Sequential(_mlp([obs_dim, *trunk]), nn.ReLU())
        self.point_head = _mlp([trunk[-1], branch, self.n_points])
        self.channel_head = _mlp([trunk[-1], branch, self.n_channels])
        self.power_head = _mlp([trunk[-1], branch, 2])
        self.action_dist_cls = hybrid_dist_cls(self.action_space)

    def dist_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """``[point logits | channel logits | power mean, power log-std]`` (one row per state)."""
        h = self.trunk(obs)
        power = self.power_head(h)
        mean = self.p_max * torch.sigmoid(power[..., :1])
        log_std = torch.log(nn.functional.softplus(power[..., 1:]) + MIN_STD)
        return torch.cat([self.point_head(h), self.channel_head(h), mean, log_std], dim=-1)

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self.dist_inputs(batch[Columns.OBS])}

    def get_inference_action_dist_cls(self):
        return self.action_dist_cls

    def get_exploration_action_dist_cls(self):
        return self.action_dist_cls

    def get_train_action_dist_cls(self):
        return self.action_dist_cls


class CentralCriticModule(TorchRLModule, ValueFunctionAPI):
    """``V_phi(s_t)`` on the global state (Eq. 16); trained on the learner only."""

    def setup(self) -> None:
        cfg = self.model_config or {}
        hidden = list(cfg.get("hidden", [256, 128, 64]))
        self.net = _mlp([int(self.observation_space.shape[0]), *hidden, 1])

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        return self.net(batch[Columns.OBS]).squeeze(-1)

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.VF_PREDS: self.compute_values(batch)}
