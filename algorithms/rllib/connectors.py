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


def true_terminations(terminateds: np.ndarray, truncateds: np.ndarray) -> np.ndarray:
    """Terminations with the ``max_frames`` cut taken out: a step flagged truncated is not terminal.

    The env truncates (``max_frames``) or terminates (every task done), never both at once
    (``CollabInferenceEnv.step_arrays``). RLlib's ``MultiAgentEpisode.add_env_step`` marks an episode
    whose agents are all done as terminated, truncated ones included, and the vector sampler keeps that
    flag (RLlib's batch, draw for draw): taken as is, GAE (Eq. 18) would count the value after the
    cut as 0, as if the 60th frame ended the work. Read as the env said it: at a truncated last step
    ``delta_T = r_T + gamma V(s_{T+1}) - V(s_T)`` (RLlib's appended bootstrap row holds ``s_{T+1}``),
    at a terminated one ``r_T - V(s_T)``."""
    terms = np.asarray(terminateds)
    return np.where(np.asarray(truncateds).astype(bool), np.zeros_like(terms), terms)


def separate_bootstrap_frames(batch: dict[str, Any]) -> None:
    """Give the rows RLlib adds at the end of each episode chunk (its last observation again, masked out of
    the loss: ``AddOneTsToEpisodesAndTruncate``) a frame key of their own, ``-(key + 1)``: the next chunk of
    the same episode starts with that observation, key and all, and a set model must not pool the two as one
    frame (``marl_env.observations``)."""
    from mahppo.marl_env.observations import KEY

    mask = batch.get(Columns.LOSS_MASK)
    if mask is None or bool(mask.all()):
        return
    obs = batch[Columns.OBS].clone()
    obs[~mask, KEY] = -(obs[~mask, KEY] + 1.0)
    batch[Columns.OBS] = obs


class CentralizedGAE(ConnectorV2):
    """Replaces RLlib's per-module GAE: the one centralized critic serves every actor.

    The paper's actors (one per UE) all observe the same global state, receive the same team reward
    and act in every frame, so each actor's batch holds the same rows in the same order: the critic
    runs once on them and its GAE advantages (``gamma``, ``lambda``) go to every actor. With the shared
    actor, one module holds every agent's rows (agent-centric observations) and the set critic values
    each frame once (the same value for all agents of a frame), and its loss counts one row per frame
    (``SetCriticModule.frame_rows``). A batch entry for the critic carries the rows and value targets of
    its squared-error loss (Eq. 16).
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
        critic = rl_module[self.critic_id]
        module = critic.unwrapped() if hasattr(critic, "unwrapped") else critic
        if getattr(module, "per_agent_obs", False):
            groups = [[mid] for mid in actor_ids]  # a set critic: values of every agent's own rows
            for mid in actor_ids:
                separate_bootstrap_frames(batch[mid])
        else:
            groups = [actor_ids]  # the paper's: one global state, the same rows for every actor
            obs = batch[actor_ids[0]][Columns.OBS]
            for mid in actor_ids[1:]:
                if batch[mid][Columns.OBS].shape != obs.shape:
                    raise RuntimeError(
                        f"centralized critic: module {mid} has {batch[mid][Columns.OBS].shape[0]} rows, "
                        f"{actor_ids[0]} has {obs.shape[0]}; every UE must act in every frame")
        parts = []
        for group in groups:
            ref = batch[group[0]]
            with torch.no_grad():
                values = convert_to_numpy(critic.compute_values({Columns.OBS: ref[Columns.OBS]}))
            truncateds = convert_to_numpy(ref[Columns.TRUNCATEDS])
            targets = compute_value_targets(
                values=values,
                rewards=convert_to_numpy(ref[Columns.REWARDS]),
                terminateds=true_terminations(convert_to_numpy(ref[Columns.TERMINATEDS]), truncateds),
                truncateds=truncateds,
                gamma=self.gamma,
                lambda_=self.lambda_,
            )
            parts.append((group, ref, values, targets))
        adv_all = np.concatenate([t - v for _, _, v, t in parts])
        mean, std = float(adv_all.mean()), max(1e-4, float(adv_all.std()))
        critic_rows: dict[str, list] = {Columns.OBS: [], Postprocessing.VALUE_TARGETS: [], Columns.LOSS_MASK: []}
        for group, ref, values, targets in parts:
            adv = targets - values
            if self.normalize_advantages:
                adv = (adv - mean) / std
            device = ref[Columns.OBS].device
            adv_t = torch.as_tensor(adv.astype(np.float32), device=device)
            targets_t = torch.as_tensor(targets.astype(np.float32), device=device)
            for mid in group:
                batch[mid][Postprocessing.ADVANTAGES] = adv_t
                batch[mid][Postprocessing.VALUE_TARGETS] = targets_t
            mask = ref.get(Columns.LOSS_MASK)
            rows = {Columns.OBS: ref[Columns.OBS], Postprocessing.VALUE_TARGETS: targets_t,
                    Columns.LOSS_MASK: mask if mask is not None else torch.ones(len(targets_t), dtype=torch.bool,
                                                                             device=device)}
            if hasattr(module, "frame_rows"):  # a set critic: its loss counts one row per frame, not one per
                # agent; it keeps every row (it pools each frame's rows: FramePool)
                rows[Columns.LOSS_MASK] = rows[Columns.LOSS_MASK] & module.frame_rows(ref[Columns.OBS])
            for k, v in rows.items():
                critic_rows[k].append(v)
        batch[self.critic_id] = {k: torch.cat(v) for k, v in critic_rows.items()}
        return batch
