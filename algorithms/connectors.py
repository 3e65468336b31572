"""Learner connector: GAE from the one centralized critic on the shared team reward (Eqs. 15, 18)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.numpy import convert_to_numpy
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets


class CentralizedGAE(ConnectorV2):
    """Replaces RLlib's per-module GAE: one critic pass on the global state serves every actor.

    Every UE observes the same global state and receives the same team reward, and all UEs act in
    every frame, so each actor's batch holds the same rows in the same order. The critic runs once
    on those states; its GAE advantages (``gamma``, ``lambda``) go to every actor, and a batch entry
    for the critic carries the states and value targets for its squared-error loss (Eq. 16).
    """

    def __init__(self, input_observation_space=None, input_action_space=None, *, gamma: float,
                 lambda_: float, critic_id: str, normalize_advantages: bool = True):
        super().__init__(input_observation_space, input_action_space)
        self.gamma = gamma
        self.lambda_ = lambda_
        self.critic_id = critic_id
        self.normalize_advantages = normalize_advantages

    def __call__(self, *, rl_module, episodes, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        actor_ids = sorted(mid for mid in batch if mid != self.critic_id)
        if not actor_ids:
            return batch
        ref = batch[actor_ids[0]]
        obs = ref[Columns.OBS]
        for mid in actor_ids[1:]:
            if batch[mid][Columns.OBS].shape != obs.shape:
                raise RuntimeError(
                    f"centralized critic: module {mid} has {batch[mid][Columns.OBS].shape[0]} rows, "
                    f"{actor_ids[0]} has {obs.shape[0]}; every UE must act in every frame")
        critic = rl_module[self.critic_id]
        with torch.no_grad():
            values = convert_to_numpy(critic.compute_values({Columns.OBS: obs}))
        targets = compute_value_targets(
            values=values,
            rewards=convert_to_numpy(ref[Columns.REWARDS]),
            terminateds=convert_to_numpy(ref[Columns.TERMINATEDS]),
            truncateds=convert_to_numpy(ref[Columns.TRUNCATEDS]),
            gamma=self.gamma,
            lambda_=self.lambda_,
        )
        adv = targets - values
        if self.normalize_advantages:
            adv = (adv - adv.mean()) / max(1e-4, float(adv.std()))
        device = obs.device
        adv_t = torch.as_tensor(adv.astype(np.float32), device=device)
        targets_t = torch.as_tensor(targets.astype(np.float32), device=device)
        for mid in actor_ids:
            batch[mid][Postprocessing.ADVANTAGES] = adv_t
            batch[mid][Postprocessing.VALUE_TARGETS] = targets_t
        critic_batch = {Columns.OBS: obs, Postprocessing.VALUE_TARGETS: targets_t}
        if Columns.LOSS_MASK in ref:
            critic_batch[Columns.LOSS_MASK] = ref[Columns.LOSS_MASK]
        batch[self.critic_id] = critic_batch
        return batch
