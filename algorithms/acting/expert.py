"""Expert iteration: the decision-time lookahead as teacher on the learned policy's own states (DAgger).

``algo.warm_start = "expert"`` runs, before the first PPO iteration (``Run.step``):

1. the teacher plays ``expert_episodes`` episodes of the training env; every frame is labelled with its
   decisions (``teacher.collect``);
2. ``expert_iterations`` times: the shared actor is fitted to every row gathered so far (behaviour cloning,
   ``teacher.fit_actor``), then the actor itself (deterministic: what is evaluated) plays
   ``expert_episodes`` new episodes while the teacher labels the states it visits; the rows are added
   to the aggregate (DAgger: Ross et al., 2011, with beta = 1 in the first iteration, 0 after);
3. a last fit of the actor on the aggregate, and of the critic on the discounted returns (Eq. 15) of the
   actor's own last episodes (the policy PPO starts from), so PPO's first advantages (Eq. 18) measure
   deviations from it.

The teacher is ``Lookahead(EpisodeRotate())`` (``marl_env.lookahead``): every frame it scores rotate's
decisions and every single-UE deviation from them (another point, channel or power) by exact rollouts on
a simulator of the episode's cell, rotate deciding the later frames; rotate's one point and power are
searched for each episode at its start, by exact rollouts from its first state (``EpisodeRotate``). The
cells of ``marl_env`` are deterministic given the decisions, so the teacher's labels are exact one-step
improvements of a rotation tuned to the episode. The rollouts run on the teacher's own simulator and are
not env steps; every frame played in the training env (teacher's and actor's) counts as an env step of the
run (``Run.env_steps``), within its ``--steps``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mahppo.algorithms.acting.teacher import LR, TeacherData, collect, fit_actor, fit_critic, merge
from mahppo.marl_env.lookahead import Lookahead
from mahppo.marl_env.parallel import CollabInferenceEnv
from mahppo.marl_env.policies import RotatePolicy, rotate_actions

MAX_FRAMES = 500  # a rotate rollout not finished by then is not a candidate (as the lookahead's)

__all__ = ["LR", "EpisodeRotate", "expert_start", "expert_teacher"]


class EpisodeRotate(RotatePolicy):
    """``rotate`` whose point and power are searched, at every ``reset``, by exact rollouts of the episode
    from its first state (on a simulator of its cell; ``RotatePolicy.search`` draws new episodes instead)."""

    name = "rotate-episode"

    def __init__(self, powers: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0)):
        super().__init__(powers=powers)
        self._sim: CollabInferenceEnv | None = None

    def reset(self, view: Any, seed: int | None = None) -> None:
        cell = view.config.with_updates(render_mode=None)
        if self._sim is None or self._sim.config != cell:
            self._sim = CollabInferenceEnv(cell)
        snap = view.snapshot()
        cut = cell.max_frames or MAX_FRAMES
        best, best_val = None, -np.inf
        for b in range(int(np.max(view.num_actions)) - 1):
            for q in self.powers:
                val = _rotate_return(self._sim, snap, b, q * cell.p_max_w, best_val, cut)
                if val > best_val:
                    best, best_val = (b, q * cell.p_max_w), val
        self._choice = best if best is not None else (0, cell.p_max_w)


def _rotate_return(sim: CollabInferenceEnv, snap: dict, point: int, power_w: float, floor: float, cut: int) -> float:
    """The return of rotate at ``(point, power_w)`` from ``snap``; stops (-inf) once below ``floor``."""
    sim.restore(snap)
    sys_ = sim.system
    total = 0.0
    while not sys_.episode_over and sys_.frame < cut:
        total += sim.advance(*rotate_actions(sim.work_left_s(), sys_.num_actions, sim.config.num_channels,
                                             point, power_w))
        if total <= floor:
            return -np.inf
    return total


def expert_teacher() -> Lookahead:
    """The teacher of expert iteration: the lookahead around ``EpisodeRotate`` (module doc)."""
    return Lookahead(EpisodeRotate())


def expert_start(algo: Any, experiment: Any) -> dict[str, float]:
    """Expert iteration (module doc) on ``algo``'s shared actor and set critic; the weights are pushed to
    the learners and the samplers. Returns what it did: env frames played, rollouts, each iteration's mean
    episode return of the actor on its own episodes, the last losses."""
    from mahppo.algorithms.acting.policy import TrainedPolicy
    from mahppo.algorithms.rllib.modules import CRITIC_ID, SHARED_ID

    params, env, seed = experiment.algo, experiment.env, experiment.run.seed
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    group = algo.learner_group
    modules = algo.config.rl_module_spec.build()
    modules.set_state(group.get_weights())
    actor, episodes = modules[SHARED_ID], params.expert_episodes
    teacher = expert_teacher()
    base = 30_000 + 1_000 * seed
    parts: list[TeacherData] = [collect(env, teacher, episodes, seed=base, gamma=params.gamma)]
    stats: dict[str, float] = {"teacher_return": float(np.mean(parts[0].episode_returns))}
    for i in range(1, params.expert_iterations + 1):
        stats[f"bc_loss_{i}"] = fit_actor(actor, merge(parts), params.expert_updates, rng)
        student = TrainedPolicy({SHARED_ID: actor}, env=env)
        parts.append(collect(env, teacher, episodes, seed=base + i * episodes, gamma=params.gamma, student=student))
        actor.train()
        stats[f"student_return_{i}"] = float(np.mean(parts[-1].episode_returns))
    stats["bc_loss"] = fit_actor(actor, merge(parts), params.expert_updates, rng)
    stats["critic_loss"] = fit_critic(modules[CRITIC_ID], parts[-1], params.expert_updates, rng)
    stats["teacher_frames"] = float(sum(p.frames for p in parts))  # every frame played: env steps of the run
    stats["rows"] = float(sum(len(p.obs) for p in parts))
    stats["rollouts"] = float(teacher.rollouts)  # of the last episode only (reset per episode)
    group.set_weights(modules.get_state())
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=group, inference_only=True)
    return stats
