"""MAHPPO's networks as RLlib ``RLModule`` s (Sec. 5.1, Fig. 3; sizes of Sec. 6.3.1).

- ``HybridActorModule``: one per UE (its own ``theta_n``). Shared trunk 256-128 on the global state,
  then three branches of 64 units: partition-point logits (``B_n + 2``, Eq. 13), channel logits
  (``C``, Eq. 13) and the transmit power as a Gaussian (Eq. 14); ``codec.HybridHead`` owns the layout.
- ``CentralCriticModule``: one critic 256-128-64-1 on the global state, shared by all actors; it
  lives only on the learner (``learner_only=True``) and is not needed to act or to serve.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from torch import nn

from mahppo.algorithms.rllib.codec import HybridHead

CRITIC_ID = "critic"
SHARED_ID = "shared"  # the module every agent maps to with --actor shared


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _HybridActor(TorchRLModule):
    """What every hybrid actor shares: ``dist_inputs(obs)`` (the codec's row) is its forward pass, and
    the codec's distribution class serves inference, exploration and training."""

    def dist_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self.dist_inputs(batch[Columns.OBS])}

    def get_inference_action_dist_cls(self):
        return self.action_dist_cls

    def get_exploration_action_dist_cls(self):
        return self.action_dist_cls

    def get_train_action_dist_cls(self):
        return self.action_dist_cls


class HybridActorModule(_HybridActor):
    """One UE's actor with three output branches over a shared trunk."""

    def setup(self) -> None:
        cfg = self.model_config or {}
        trunk = list(cfg.get("trunk", [256, 128]))
        branch = int(cfg.get("branch", 64))
        self.head = HybridHead.for_space(self.action_space)
        self.n_points, self.n_channels, self.p_max = self.head.n_points, self.head.n_channels, self.head.p_max
        obs_dim = int(self.observation_space.shape[0])
        self.trunk = nn.Sequential(_mlp([obs_dim, *trunk]), nn.ReLU())
        self.point_head = _mlp([trunk[-1], branch, self.n_points])
        self.channel_head = _mlp([trunk[-1], branch, self.n_channels])
        self.power_head = _mlp([trunk[-1], branch, 2])
        self.action_dist_cls = self.head.dist_cls

    def dist_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """The codec's row ``[point logits | channel logits | power mean, power log-std]`` per state."""
        h = self.trunk(obs)
        return self.head.encode(self.point_head(h), self.channel_head(h), self.power_head(h))



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


def _used_slots(own: torch.Tensor, others: torch.Tensor, mask: torch.Tensor):
    """Drop the padding slots no row of the batch uses (the others are packed at the front of the
    set), so a 3-UE cell costs 2 slots, not ``max_ues - 1``; the result is exactly the same."""
    k = int(mask.sum(-1).max().item()) if mask.numel() else 0
    return own, others[..., :max(k, 1), :], mask[..., :max(k, 1)]


class SetEncoder(nn.Module):
    """A permutation-invariant summary of a padded set of UE feature rows: masked mean and max of
    a per-UE embedding (``[..., S, F]``, mask ``[..., S]`` -> ``[..., 2 H]``). With ``context``, each
    row is embedded together with it (pairwise: "this other UE, seen from me"), so the summary can
    hold relations such as how many others have a smaller token or a nearer distance."""

    def __init__(self, features: int, hidden: int, context: int = 0):
        super().__init__()
        self.embed = nn.Sequential(_mlp([features + context, hidden, hidden]), nn.ReLU())

    def forward(self, rows: torch.Tensor, mask: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is not None:
            rows = torch.cat([rows, context.unsqueeze(-2).expand(*rows.shape[:-1], context.shape[-1])], dim=-1)
        h = self.embed(rows)
        m = mask.unsqueeze(-1)
        count = m.sum(-2).clamp(min=1.0)
        mean = (h * m).sum(-2) / count
        top = torch.where(m > 0, h, torch.zeros_like(h)).amax(-2)  # embeddings are >= 0 (ReLU)
        return torch.cat([mean, top], dim=-1)


def token_features(token: torch.Tensor, freqs: int) -> torch.Tensor:
    """``[sin(pi j t), cos(pi j t)]`` for ``j = 1..freqs`` of rank tokens ``t`` in (0, 1) (``[..., 1]``).

    Fed as one scalar among the UE's features, the rank was not used: the shared actor's channel
    entropy stayed at its prior's and every UE got nearly the same decision; as Fourier features the
    network tells ranks apart at once, so UEs can take different roles (``benchmarks/any_cell.py``)."""
    j = torch.arange(1, freqs + 1, dtype=token.dtype, device=token.device)
    angle = torch.pi * token * j
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


class SharedActorModule(_HybridActor):
    """One actor for every UE of any cell (``--actor shared``): parameter sharing over agents.

    Input: the agent-centric observation of ``marl_env.observations`` (own features + DNN descriptor,
    the other UEs as a padded set). The own row is embedded, the others are pooled by a ``SetEncoder``
    (so the decision does not depend on their order: permuting the UEs permutes the decisions), then a
    trunk and the paper's three branches. Point logits beyond the UE's own ``B_n + 2`` are masked, so
    UEs with different DNNs share the network.
    """

    def setup(self) -> None:
        from mahppo.marl_env.observations import FEATURES, obs_size

        cfg = self.model_config or {}
        self.max_ues = int(cfg["max_ues"])
        width = self.observation_space.shape[0] if self.observation_space is not None else obs_size(self.max_ues)
        if width != obs_size(self.max_ues):
            raise ValueError(f"observation of {width} numbers; this version's agent-centric layout has "
                             f"{obs_size(self.max_ues)} for max_ues = {self.max_ues} ({FEATURES} per UE, with the "
                             "load rank and the work left: marl_env.observations). A policy trained on an older "
                             "layout must be retrained (`mahppo train --actor shared`)")
        hidden = int(cfg.get("embed", 128))
        trunk = list(cfg.get("trunk", [256, 128]))
        branch = int(cfg.get("branch", 64))
        self.head = HybridHead.for_space(self.action_space)
        self.n_points, self.n_channels, self.p_max = self.head.n_points, self.head.n_channels, self.head.p_max
        self.own = nn.Sequential(_mlp([FEATURES, hidden, hidden]), nn.ReLU())
        self.others = SetEncoder(FEATURES, hidden, context=FEATURES)
        # the rank token as Fourier features, into the trunk and beside it into the three branches
        self.token_freqs = int(cfg.get("token_freqs", 0))
        f = 2 * self.token_freqs
        self.trunk = nn.Sequential(_mlp([3 * hidden + 1 + f, *trunk]), nn.ReLU())
        self.point_head = _mlp([trunk[-1] + f, branch, self.n_points])
        self.channel_head = _mlp([trunk[-1] + f, branch, self.n_channels])
        self.power_head = _mlp([trunk[-1] + f, branch, 2])
        # a learnable prior that spreads UEs over the channels by their load rank (round robin: the C UEs
        # with the most work left get distinct channels);
        # the network learns how much to follow it (see marl_env.observations)
        self.channel_prior = nn.Parameter(torch.tensor(float(cfg.get("channel_prior", 1.0))))
        self.action_dist_cls = self.head.dist_cls

    def dist_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        from mahppo.marl_env.observations import POINT_MASK, TOKEN, split_observation

        own, others, mask = _used_slots(*split_observation(obs, self.max_ues))
        count = mask.sum(-1, keepdim=True) / max(1, self.max_ues - 1)
        parts = [self.own(own), self.others(others, mask, context=own), count]
        if self.token_freqs:
            rank = token_features(own[..., TOKEN:TOKEN + 1], self.token_freqs)
            h = torch.cat([self.trunk(torch.cat([*parts, rank], dim=-1)), rank], dim=-1)
        else:
            h = self.trunk(torch.cat(parts, dim=-1))
        valid = own[..., POINT_MASK][..., :self.n_points] > 0.5
        points = self.point_head(h).masked_fill(~valid, -1e9)
        c = self.n_channels
        load_rank = (own[..., TOKEN] * (mask.sum(-1) + 1)).long()  # 0..N-1 (token = (rank + 0.5) / N)
        slot = torch.remainder(load_rank, c)
        channels = self.channel_head(h) + self.channel_prior * nn.functional.one_hot(slot, c).to(h.dtype)
        return self.head.encode(points, channels, self.power_head(h))



class SetCriticModule(TorchRLModule, ValueFunctionAPI):
    """``V_phi(s_t)`` over the set of UEs (Eq. 16), for any N: every UE's row (taken from an
    agent-centric observation: its own row plus the others) is embedded and pooled, so the value is
    the same for every agent of a frame and does not depend on the UE order. Learner only."""

    per_agent_obs = True

    def setup(self) -> None:
        from mahppo.marl_env.observations import FEATURES

        cfg = self.model_config or {}
        self.max_ues = int(cfg["max_ues"])
        hidden = int(cfg.get("embed", 128))
        self.cells = SetEncoder(FEATURES, hidden)
        self.net = _mlp([2 * hidden + 1, *list(cfg.get("hidden", [256, 128, 64])), 1])

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        from mahppo.marl_env.observations import split_observation

        own, others, mask = _used_slots(*split_observation(batch[Columns.OBS], self.max_ues))
        rows = torch.cat([own.unsqueeze(-2), others], dim=-2)
        full = torch.cat([torch.ones_like(mask[..., :1]), mask], dim=-1)
        count = full.sum(-1, keepdim=True) / self.max_ues
        return self.net(torch.cat([self.cells(rows, full), count], dim=-1)).squeeze(-1)

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.VF_PREDS: self.compute_values(batch)}

    def frame_rows(self, obs: torch.Tensor) -> torch.Tensor:
        """A mask of one row per frame: the row of the UE of load rank 0. Every agent of a frame sees the
        same set of UEs, so its value (Eq. 16) is every agent's: the critic trains on this row alone
        (``algorithms.connectors.CentralizedGAE``), not on N copies of it."""
        from mahppo.marl_env.observations import TOKEN, split_observation

        own, _, mask = split_observation(obs, self.max_ues)
        return own[..., TOKEN] * (mask.sum(-1) + 1) < 1.0  # token = (rank + 0.5) / N
