"""Run a policy on the env and report the metrics of ``marl_env.metrics`` (means over episodes).

Evaluation episodes: on the paper's scenarios, ``episodes`` episodes seeded ``0, 1, ...`` (the test cell is
deterministic: one suffices). On ``scenario="dynamic"`` (``EnvConfig.dynamics``), the fixed set of seeded
evaluation episodes ``EVAL_SEED_BASE + e`` for ``e < DYNAMIC_EPISODES`` (32): every command that evaluates a
policy there (``mahppo evaluate``, ``simulate --via``, ``benchmarks/dynamic.py``, a training run's report)
sees the same episodes (the seed fixes the cell's draws and every arrival, gain and move). Training env
seeds are the run's ``--seed`` plus the env copy's index, far below ``EVAL_SEED_BASE``.
"""

from __future__ import annotations

import time

import numpy as np

from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.metrics import EpisodeMetrics, mean_metrics
from mahppo.marl_env.parallel import CollabInferenceEnv
from mahppo.marl_env.policies import Policy

# Evaluation runs episodes to completion (as the authors do); this cap stops a policy that never
# finishes (e.g. offloading at a vanishing power). Such episodes are reported as truncated.
EVAL_MAX_FRAMES = 20000
EVAL_SEED_BASE = 1_000_000  # the dynamic scenario's evaluation episodes: seeds EVAL_SEED_BASE + 0, 1, ...
DYNAMIC_EPISODES = 32  # how many of them by default


def default_episodes(config: EnvConfig) -> int:
    """``DYNAMIC_EPISODES`` on the dynamic scenario, else 1."""
    return DYNAMIC_EPISODES if config.scenario == "dynamic" else 1


def default_seed(config: EnvConfig) -> int:
    """The first evaluation seed: ``EVAL_SEED_BASE`` on the dynamic scenario, else 0."""
    return EVAL_SEED_BASE if config.scenario == "dynamic" else 0


def evaluation_seeds(config: EnvConfig, episodes: int | None = None, seed: int | None = None) -> list[int]:
    """The seeds of the evaluation episodes (module doc)."""
    n = default_episodes(config) if episodes is None else episodes
    s = default_seed(config) if seed is None else seed
    return [s + e for e in range(n)]


def run_episode(env: CollabInferenceEnv, policy: Policy, seed: int | None = None,
                decision_ms: list[float] | None = None) -> dict[str, float]:
    """One episode of ``policy`` (it sees ``env.view()``, the read-only system view); ``decision_ms``: a list
    that gets the wall time of each frame's ``policy.act`` (ms)."""
    env.reset(seed=seed)
    view = env.view()
    policy.reset(view, seed=seed)
    m = EpisodeMetrics(num_ues=env.system.n, frame_s=env.config.frame_s)
    limit = env.config.max_frames or EVAL_MAX_FRAMES
    truncated = False
    while True:
        t0 = time.perf_counter()
        actions = policy.act(view)
        if decision_ms is not None:
            decision_ms.append((time.perf_counter() - t0) * 1e3)
        _, rewards, terms, truncs, _ = env.step_arrays(*env.check_arrays(*actions))
        res = env.last_frame
        assert res is not None
        m.add_frame(res.completed, res.latency_s, res.energy_j, next(iter(rewards.values())))
        if next(iter(terms.values())):
            break
        if next(iter(truncs.values())) or m.frames >= limit:
            truncated = True
            break
    # with arrivals the queues empty and refill: the episode's span is its horizon, not the last emptying
    done_at = None if truncated or env.config.dynamics.arrivals else float(env.system.finish_time.max())
    out = m.finish(done_at)
    out["truncated"] = float(truncated)
    out["tasks_left"] = float(env.system.tasks_left.sum())
    return out


def episode_metrics(policy: Policy, config: EnvConfig, episodes: int | None = None,
                    seed: int | None = None, decision_ms: list[float] | None = None) -> list[dict[str, float]]:
    """Each evaluation episode's metrics (``evaluation_seeds``), in seed order (``decision_ms``: see
    ``run_episode``)."""
    env = CollabInferenceEnv(config)
    return [run_episode(env, policy, seed=s, decision_ms=decision_ms) for s in evaluation_seeds(config, episodes, seed)]


def evaluate(policy: Policy, config: EnvConfig, episodes: int | None = None, seed: int | None = None,
             decision_ms: list[float] | None = None) -> dict[str, float]:
    """Mean metrics of ``policy`` over the evaluation episodes (``evaluation_seeds``: by default 1 episode
    seeded 0 on the paper's scenarios, the 32 fixed episodes on the dynamic scenario); ``decision_ms``: see
    ``run_episode``."""
    return mean_metrics(episode_metrics(policy, config, episodes, seed, decision_ms))


def decision_times(decision_ms: list[float]) -> dict[str, float | None]:
    """``decision_ms_p50`` and ``decision_ms_p99``: percentiles of the per-frame decision times (ms)."""
    if not decision_ms:
        return {"decision_ms_p50": None, "decision_ms_p99": None}
    p50, p99 = np.percentile(np.asarray(decision_ms), [50, 99])
    return {"decision_ms_p50": float(p50), "decision_ms_p99": float(p99)}
