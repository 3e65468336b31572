"""MAHPPO's loss on RLlib's PPO learner (Eqs. 16, 19, 20)."""

from __future__ import annotations

from typing import Any

import torch
import tree
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.learner import GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.evaluation.postprocessing import Postprocessing

from mahppo.algorithms.rllib.codec import BRANCHES
from mahppo.algorithms.rllib.connectors import CentralizedGAE
from mahppo.algorithms.rllib.lean_learner import LeanTorchLearner
from mahppo.algorithms.rllib.modules import CRITIC_ID, LOSS_ROWS


def clipped_surrogate(logp_new: list[torch.Tensor], logp_old: list[torch.Tensor], adv: torch.Tensor,
                      clip_eps: float, clip_mode: str) -> torch.Tensor:
    """Eq. 19 per sample: clipped per branch (the authors' choice, summed) or one joint ratio."""
    if clip_mode == "joint":
        ratios = [torch.exp(sum(logp_new) - sum(logp_old))]
    else:
        ratios = [torch.exp(n - o) for n, o in zip(logp_new, logp_old, strict=True)]
    return sum(torch.min(r * adv, torch.clamp(r, 1 - clip_eps, 1 + clip_eps) * adv) for r in ratios)


class MAHPPOTorchLearner(LeanTorchLearner, PPOTorchLearner):
    """PPO's learner with a centralized critic and per-branch clipping of the hybrid actors.

    ``minibatch_unit``: "rows" (default): B rows of each actor per minibatch, so the shared actor (every
    UE's rows) makes N times the updates of a per-UE actor, and the set critic (one row per frame) takes
    its rows in proportion, B / N; "frames": every module's rows of B frames (env steps), so every actor
    makes ``K |M| / B`` updates (Alg. 1). Per-UE actors: the same either way."""

    def build(self) -> None:
        super().build()
        opts = self.config.learner_config_dict
        self.minibatch_per_env_step = opts.get("minibatch_unit", "rows") == "frames"
        self.frame_ues = opts.get("frame_ues")
        if self._learner_connector is not None and self.config.add_default_connectors_to_learner_pipeline:
            self._learner_connector.remove(GeneralAdvantageEstimation)
            self._learner_connector.append(CentralizedGAE(
                gamma=self.config.gamma, lambda_=self.config.lambda_, critic_id=CRITIC_ID,
                normalize_advantages=opts.get("normalize_advantages", True)))

    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        return []  # actors have no value function; the critic is a module of its own

    def compute_loss_for_module(self, *, module_id: str, config, batch: dict[str, Any],
                                fwd_out: dict[str, Any]) -> torch.Tensor:
        mask = batch.get(Columns.LOSS_MASK)

        def mean(x: torch.Tensor) -> torch.Tensor:
            return x.mean() if mask is None else x[mask].sum() / mask.sum().clamp(min=1)

        if module_id == CRITIC_ID:  # Eq. 16
            vf_loss = mean((fwd_out[Columns.VF_PREDS] - batch[Postprocessing.VALUE_TARGETS]) ** 2)
            self.metrics.log_value((module_id, VF_LOSS_KEY), vf_loss.detach(), window=1)
            return vf_loss

        opts = config.learner_config_dict
        rows = batch.get(LOSS_ROWS)
        if rows is not None:  # the minibatch's per-frame sample of UEs (lean_learner): their rows only
            batch = {k: batch[k] if k == Columns.ACTIONS else batch[k][rows] for k in
                     (Columns.ACTIONS, Columns.ACTION_DIST_INPUTS, Postprocessing.ADVANTAGES)
                     if k in batch} | ({Columns.LOSS_MASK: mask[rows]} if mask is not None else {})
            batch[Columns.ACTIONS] = tuple(a[rows] for a in tree.flatten(batch[Columns.ACTIONS]))
            mask = batch.get(Columns.LOSS_MASK)
        head = self.module[module_id].unwrapped().head
        new = head.dist(fwd_out[Columns.ACTION_DIST_INPUTS])
        with torch.no_grad():
            logp_old = head.dist(batch[Columns.ACTION_DIST_INPUTS]).branch_logps(batch[Columns.ACTIONS])
        logp_new = new.branch_logps(batch[Columns.ACTIONS])
        surrogate = clipped_surrogate(logp_new, logp_old, batch[Postprocessing.ADVANTAGES],
                                      config.clip_param, opts.get("clip_mode", "per_branch"))
        entropies = new.branch_entropies()
        zeta = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        loss = mean(-surrogate - zeta * sum(entropies))  # Eq. 20, one actor's share
        stats = {POLICY_LOSS_KEY: mean(-surrogate).detach(), ENTROPY_KEY: mean(sum(entropies)).detach()}
        for name, ent in zip(BRANCHES, entropies, strict=True):
            stats[f"entropy_{name}"] = mean(ent).detach()
        self.metrics.log_dict(stats, key=module_id, window=1)
        return loss
