"""Run a policy on the env and report the metrics of ``marl_env.metrics`` (means over episodes)."""

from __future__ import annotations

from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.metrics import EpisodeMetrics, mean_metrics
from mahppo.marl_env.parallel import CollabInferenceEnv
from mahppo.marl_env.policies import Policy

# Evaluation runs episodes to completion (as the authors do); this cap stops a policy that never
# finishes (e.g. offloading at a vanishing power). Such episodes are reported as truncated.
EVAL_MAX_FRAMES = 20000


def run_episode(env: CollabInferenceEnv, policy: Policy, seed: int | None = None) -> dict[str, float]:
    """One episode of ``policy`` (it sees ``env.view()``, the read-only system view)."""
    env.reset(seed=seed)
    view = env.view()
    policy.reset(view, seed=seed)
    m = EpisodeMetrics(num_ues=env.system.n, frame_s=env.config.frame_s)
    limit = env.config.max_frames or EVAL_MAX_FRAMES
    truncated = False
    while True:
        _, rewards, terms, truncs, _ = env.step_arrays(*env.check_arrays(*policy.act(view)))
        res = env.last_frame
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


def evaluate(policy: Policy, config: EnvConfig, episodes: int = 1, seed: int = 0) -> dict[str, float]:
    """Mean metrics of ``policy`` over ``episodes`` episodes seeded ``seed, seed+1, ...``."""
    env = CollabInferenceEnv(config)
    runs = [run_episode(env, policy, seed=seed + e) for e in range(episodes)]
    return mean_metrics(runs)
