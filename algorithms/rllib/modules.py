"""MAHPPO's networks as RLlib ``RLModule`` s (Sec. 5.1, Fig. 3; sizes of Sec. 6.3.1).

- ``HybridActorModule``: one per UE (its own ``theta_n``). Shared trunk 256-128 on the global state,
  then three branches of 64 units: partition-point logits (``B_n + 2``, Eq. 13), channel logits
  (``C``, Eq. 13) and the transmit power as a Gaussian (Eq. 14); ``codec.HybridHead`` owns the layout.
- ``CentralCriticModule``: one critic 256-128-64-1 on the global state, shared by all actors; it
  lives only on the learner (``learner_only=True``) and is not needed to act or to serve.
- ``SharedActorModule`` / ``SetCriticModule``: one actor for every UE of any cell and a critic over the
  set of UEs, on the agent-centric observations of ``marl_env.observations``.

Interface of the set modules (agreed with the env's feature work; keep it when adding features):

- an observation row is ``[feature row (observations.FEATURES) | frame key (observations.KEY_SIZE)]``;
  every size and offset is read from ``marl_env.observations`` (``FEATURES``, ``TOKEN``, ``POINT_MASK``,
  ``KEY``, ``obs_size()``), never written here as a number, so a feature added there (with its
  ``FEATURES``) changes only the first layers' widths;
- a batch given to ``dist_inputs`` / ``compute_values`` holds every row of each of its frames (the rows
  that share a key); the modules pool per frame (``FramePool``): cost linear in the rows, no ``max_ues``;
- the learner keeps frames whole (``lean_learner.IndexedMiniBatches``: minibatches by frames).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from torch import nn

from mahppo.algorithms.rllib.codec import HybridHead

CRITIC_ID = "critic"
LOSS_ROWS = "loss_rows"  # batch column: the rows of a minibatch the actor's loss takes (lean_learner)
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

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        """Training: with a ``LOSS_ROWS`` column (the learner's per-frame sample of UEs, ``lean_learner``),
        only those rows' outputs (every row of the batch still pools into the others' summaries)."""
        rows = batch.get(LOSS_ROWS)
        if rows is None:
            return self._forward(batch, **kwargs)
        return {Columns.ACTION_DIST_INPUTS: self.dist_inputs(batch[Columns.OBS], rows=rows)}

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

    def dist_inputs(self, obs: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The codec's row ``[point logits | channel logits | power mean, power log-std]`` per state
        (of the ``rows`` only, when given)."""
        h = self.trunk(obs if rows is None else obs[rows])
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


class FramePool:
    """The frames of a batch of agent-centric rows (``marl_env.observations.frame_ids``) and pooling over
    them, each frame once: a sum over a frame is one ``index_add``, and "the others" of a row are its
    frame's total minus the row itself, so the cost is linear in the rows, whatever N is."""

    def __init__(self, obs: torch.Tensor):
        from mahppo.marl_env.observations import frame_ids

        ids = frame_ids(obs)
        _, self.index = torch.unique(ids, return_inverse=True)
        self.frames = int(self.index.max().item()) + 1 if ids.numel() else 0
        self.size = torch.zeros(self.frames, dtype=obs.dtype, device=obs.device).index_add_(
            0, self.index, torch.ones_like(ids, dtype=obs.dtype))
        self.n = self.size[self.index].unsqueeze(-1)  # [R, 1] UEs in each row's frame

    def total(self, h: torch.Tensor) -> torch.Tensor:
        """``[R, H]`` -> per-frame sums ``[G, H]``."""
        return torch.zeros(self.frames, h.shape[-1], dtype=h.dtype, device=h.device).index_add_(0, self.index, h)

    def top(self, h: torch.Tensor) -> torch.Tensor:
        """Per-frame maxima ``[G, H]`` of non-negative rows (0 for an empty frame)."""
        out = torch.zeros(self.frames, h.shape[-1], dtype=h.dtype, device=h.device)
        return out.scatter_reduce(0, self.index.unsqueeze(-1).expand_as(h), h, reduce="amax", include_self=True)

    def mean_max(self, h: torch.Tensor) -> torch.Tensor:
        """The frame's masked mean and max of ``h >= 0`` per frame ``[G, 2H]``."""
        return torch.cat([self.total(h) / self.size.clamp(min=1.0).unsqueeze(-1), self.top(h)], dim=-1)

    def others_mean_max(self, h: torch.Tensor) -> torch.Tensor:
        """For each row, the mean and max of ``h >= 0`` over the OTHER rows of its frame ``[R, 2H]`` (0
        for a UE alone): mean = (frame sum - own) / (n - 1); max = the frame's max, or its second largest
        value where the row itself is the one largest."""
        mean = (self.total(h)[self.index] - h) / (self.n - 1.0).clamp(min=1.0)
        first = self.top(h)[self.index]
        is_top = h >= first
        ties = self.total(is_top.to(h.dtype))[self.index]
        second = self.top(torch.where(is_top, torch.zeros_like(h), h))[self.index]
        top = torch.where(is_top & (ties < 1.5), second, first)
        return torch.cat([mean, top], dim=-1)

    def first_rows(self) -> torch.Tensor:
        """A mask of one row per frame (its first)."""
        rows = torch.arange(self.index.shape[0], device=self.index.device)
        first = torch.full((self.frames,), self.index.shape[0], dtype=rows.dtype, device=rows.device)
        first = first.scatter_reduce(0, self.index, rows, reduce="amin", include_self=True)
        mask = torch.zeros(self.index.shape[0], dtype=torch.bool, device=rows.device)
        mask[first] = True
        return mask


def count_feature(n: torch.Tensor) -> torch.Tensor:
    """The cell size as an input, ``log(n) / log(16)`` (0 for a UE alone, 1 at 16 UEs; grows slowly beyond)."""
    return torch.log(n) / math.log(16.0)


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

    Input: the agent-centric rows of ``marl_env.observations`` (own features + DNN descriptor + the frame
    key). The own row is embedded; the other UEs of the frame are embedded by a second network and
    pooled (mean and max over the others, ``FramePool``: the frame's sum minus the UE's own term, so
    the decision does not depend on their order, permuting the UEs permutes the decisions, and a frame
    of N UEs costs N embeddings, not N^2); then a trunk and the paper's three branches. Point logits
    beyond the UE's own ``B_n + 2`` are masked, so UEs with different DNNs share the network.
    """

    frame_batched = True  # pools each frame's rows: batches hold whole frames (lean_learner)

    def setup(self) -> None:
        from mahppo.marl_env.observations import FEATURES, obs_size

        cfg = self.model_config or {}
        width = self.observation_space.shape[0] if self.observation_space is not None else obs_size()
        if width != obs_size():
            raise ValueError(f"observation of {width} numbers; this version's agent-centric layout has "
                             f"{obs_size()} ({FEATURES} features per UE and the frame key: marl_env.observations). "
                             "A policy trained on an older layout must be retrained (`mahppo train --actor shared`)")
        hidden = int(cfg.get("embed", 128))
        trunk = list(cfg.get("trunk", [256, 128]))
        branch = int(cfg.get("branch", 64))
        self.head = HybridHead.for_space(self.action_space)
        self.n_points, self.n_channels, self.p_max = self.head.n_points, self.head.n_channels, self.head.p_max
        self.own = nn.Sequential(_mlp([FEATURES, hidden, hidden]), nn.ReLU())
        self.others = nn.Sequential(_mlp([FEATURES, hidden, hidden]), nn.ReLU())
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

    def dist_inputs(self, obs: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The codec's row per UE of ``obs`` (whole frames), or of the ``rows`` only (indices or a mask):
        every UE of a frame pools into the others' summary, only those rows go through the trunk."""
        from mahppo.marl_env.observations import FEATURES, POINT_MASK, TOKEN

        pool = FramePool(obs)
        others = pool.others_mean_max(self.others(obs[..., :FEATURES]))
        n = pool.n
        if rows is not None:
            obs, others, n = obs[rows], others[rows], n[rows]
        own = obs[..., :FEATURES]
        parts = [self.own(own), others, count_feature(n)]
        if self.token_freqs:
            rank = token_features(own[..., TOKEN:TOKEN + 1], self.token_freqs)
            h = torch.cat([self.trunk(torch.cat([*parts, rank], dim=-1)), rank], dim=-1)
        else:
            h = self.trunk(torch.cat(parts, dim=-1))
        valid = own[..., POINT_MASK][..., :self.n_points] > 0.5
        points = self.point_head(h).masked_fill(~valid, -1e9)
        c = self.n_channels
        load_rank = (own[..., TOKEN] * n[..., 0]).long()  # 0..N-1 (token = (rank + 0.5) / N)
        slot = torch.remainder(load_rank, c)
        channels = self.channel_head(h) + self.channel_prior * nn.functional.one_hot(slot, c).to(h.dtype)
        return self.head.encode(points, channels, self.power_head(h))


class SetCriticModule(TorchRLModule, ValueFunctionAPI):
    """``V_phi(s_t)`` over the set of UEs (Eq. 16), for any N: every UE's feature row is embedded and the
    frame's rows are pooled (``FramePool``), then one MLP per frame; each row gets its frame's value (the
    same for every agent of a frame, independent of the UE order). Learner only."""

    per_agent_obs = True
    frame_batched = True

    def setup(self) -> None:
        from mahppo.marl_env.observations import FEATURES

        cfg = self.model_config or {}
        hidden = int(cfg.get("embed", 128))
        self.cells = nn.Sequential(_mlp([FEATURES, hidden, hidden]), nn.ReLU())
        self.net = _mlp([2 * hidden + 1, *list(cfg.get("hidden", [256, 128, 64])), 1])

    def frame_values(self, obs: torch.Tensor) -> tuple[torch.Tensor, FramePool]:
        """One value per frame ``[G]`` and the frames."""
        from mahppo.marl_env.observations import FEATURES

        pool = FramePool(obs)
        summary = pool.mean_max(self.cells(obs[..., :FEATURES]))
        count = count_feature(pool.size.clamp(min=1.0)).unsqueeze(-1)
        return self.net(torch.cat([summary, count], dim=-1)).squeeze(-1), pool

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        values, pool = self.frame_values(batch[Columns.OBS])
        return values[pool.index]

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.VF_PREDS: self.compute_values(batch)}

    def frame_rows(self, obs: torch.Tensor) -> torch.Tensor:
        """A mask of one row per frame. Every agent of a frame sees the same set of UEs, so its value
        (Eq. 16) is every agent's: the critic's loss counts this row alone
        (``algorithms.connectors.CentralizedGAE``), not N copies of it."""
        return FramePool(obs).first_rows()
