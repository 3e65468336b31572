"""Run a policy on the env and report the metrics of ``marl_env.metrics`` (means over episodes)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.env import CollabInferenceEnv
from mahppo.marl_env.metrics import EpisodeMetrics, mean_metrics
from mahppo.marl_env.policies import Policy

# Evaluation runs episodes to completion (as the authors do); this cap stops a policy that never
# finishes (e.g. offloading at a vanishing power). Such episodes are reported as truncated.
EVAL_MAX_FRAMES = 20000


def run_episode(env: CollabInferenceEnv, policy: Policy, seed: int | None = None,
                act: Callable[[np.ndarray], tuple] | None = None) -> dict[str, float]:
    """One episode; ``act`` (state -> arrays) overrides ``policy.act`` (e.g. a remote decision-maker)."""
    env.reset(seed=seed)
    policy.reset(env, seed=seed)
    decide = act or policy.act
    m = EpisodeMetrics(num_ues=env.system.n, frame_s=env.config.frame_s)
    limit = env.config.max_frames or EVAL_MAX_FRAMES
    truncated = False
    while True:
        pts, chs, pws = decide(env.state())
        _, rewards, terms, truncs, infos = env.step_arrays(
            *_validated(env, np.asarray(pts), np.asarray(chs), np.asarray(pws, dtype=np.float64)))
        res = env._last
        assert res is not None
        m.add_frame(res.completed, res.latency_s, res.energy_j, next(iter(rewards.values())))
        if next(iter(terms.values())):
            break
        if next(iter(truncs.values())) or m.frames >= limit:
            truncated = True
            break
    out = m.finish(None if truncated else float(env.system.finish_time.max()))
    out["truncated"] = float(truncated)
    return out


def _validated(env: CollabInferenceEnv, pts: np.ndarray, chs: np.ndarray, pws: np.ndarray):
    s = env.system
    if pts.shape != (s.n,) or chs.shape != (s.n,) or pws.shape != (s.n,):
        raise ValueError(f"policy returned actions of shapes {pts.shape}, {chs.shape}, {pws.shape}; "
                         f"expected ({s.n},) each")
    if np.any(pts < 0) or np.any(pts >= s.num_actions):
        i = int(np.argmax((pts < 0) | (pts >= s.num_actions)))
        raise ValueError(f"ue_{i}: partition point = {pts[i]} is out of range 0..{s.num_actions[i] - 1}")
    if np.any(chs < 0) or np.any(chs >= env.config.num_channels):
        i = int(np.argmax((chs < 0) | (chs >= env.config.num_channels)))
        raise ValueError(f"ue_{i}: channel = {chs[i]} is out of range 0..{env.config.num_channels - 1}")
    if np.any(np.isnan(pws)):
        raise ValueError(f"ue_{int(np.argmax(np.isnan(pws)))}: power = nan is not a number")
    return pts, chs, pws


def evaluate(policy: Policy, config: EnvConfig, episodes: int = 1, seed: int = 0) -> dict[str, float]:
    """Mean metrics of ``policy`` over ``episodes`` episodes seeded ``seed, seed+1, ...``."""
    env = CollabInferenceEnv(config)
    runs = [run_episode(env, policy, seed=seed + e) for e in range(episodes)]
    return mean_metrics(runs)
