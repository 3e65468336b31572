"""A warm start from a rule teacher: the shared actor imitates ``rotate``, the critic learns its returns.

PPO from random weights finds the rotation of ``marl_env.policies.RotatePolicy`` (the C UEs with the
most local work left offload, one per channel, the others run locally) only partly in 50k env steps,
and not on every seed (docs/results.md). With ``algo.warm_start = "rotate"`` a run first plays
``warm_start_episodes`` episodes of its own training env with the teacher and fits, before the first
PPO iteration:

- the shared actor by behaviour cloning: the point and channel branches by cross-entropy on the teacher's
  choice, smoothed by ``LABEL_SMOOTHING`` (so PPO still explores), the power mean by squared error in
  units of ``p_max`` (its std is left as initialised); the channel and the power are fitted only on the
  rows where the teacher offloads (a local UE's channel and power change nothing);
- the critic by regression on the teacher's discounted returns (Eq. 15, ``gamma``), so PPO's first
  advantages (Eq. 18) measure deviations from the teacher rather than noise.

The teacher's one partition point and power are searched on the training distribution, never on the
test scenario. Its frames count as env steps of the run (``Run.env_steps``). PPO then runs as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.parallel import CollabInferenceEnv
from mahppo.marl_env.policies import Policy, RotatePolicy

LABEL_SMOOTHING = 0.05  # teacher's choice gets 1 - eps (+ its share of eps): ~5 % exploration per branch
BATCH = 512  # rows per behaviour-cloning / critic update (whole frames: about BATCH / N of them)
LR = 1e-3


@dataclass
class TeacherData:
    """One row per agent per frame of the teacher's episodes."""

    obs: np.ndarray  # [rows, obs_dim]
    agent: np.ndarray  # [rows] the agent's index in its cell
    points: np.ndarray
    channels: np.ndarray
    powers: np.ndarray
    offload: np.ndarray  # [rows] bool: the teacher sends features (point before Local)
    returns: np.ndarray  # [rows] discounted return from this frame on (Eq. 15)
    frames: int  # env steps played
    episode_returns: np.ndarray | None = None  # [episodes] each played episode's return (sum of Eq. 12)


def teacher_for(config: EnvConfig, seed: int, episodes: int = 8) -> RotatePolicy:
    """``rotate`` with its point and power searched on ``config``'s own (training) distribution."""
    search = RotatePolicy(search_episodes=episodes, seed=seed)
    point, power = search.search(config.with_updates(max_frames=None, render_mode=None))
    return RotatePolicy(point=int(point), power_w=float(power))


def collect(config: EnvConfig, teacher: Policy, episodes: int, seed: int, gamma: float,
            student: Policy | None = None) -> TeacherData:
    """Play ``episodes`` episodes of ``config`` (as training does: its cut, its draws), labelling every
    frame with ``teacher``'s decisions; ``student`` (default: the teacher) decides the frames that are
    played, so that the rows are the student's own states (DAgger: ``algorithms/acting/expert.py``).
    The returns are those of the frames played. ``config`` gives the shared actor's agent-centric
    observations."""
    if config.obs_mode != "agent":
        raise ValueError(f"obs_mode = {config.obs_mode!r}: the teacher's data is for the shared actor "
                         "(obs_mode 'agent')")
    env = CollabInferenceEnv(config.with_updates(render_mode=None))
    view = env.view()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "agent", "points", "channels", "powers", "returns")}
    frames = 0
    totals = []
    for e in range(episodes):
        env.reset(seed=seed + e)
        for policy in (teacher,) if student is None else (teacher, student):
            policy.reset(view, seed=seed + e)
        rewards: list[float] = []
        while True:
            obs = env.observation_matrix()
            pts, chs, pws = (np.asarray(a) for a in teacher.act(view))
            played = (pts, chs, pws) if student is None else student.act(view)
            _, rew, terms, truncs, _ = env.step_arrays(*env.check_arrays(*played))
            for key, value in (("obs", obs), ("agent", np.arange(len(pts))), ("points", pts), ("channels", chs),
                               ("powers", pws)):
                parts[key].append(value)
            rewards.append(float(next(iter(rew.values()))))
            frames += 1
            if any(terms.values()) or any(truncs.values()):
                break
        totals.append(sum(rewards))
        ret = discounted_returns(np.asarray(rewards), gamma)
        parts["returns"].extend(np.full(len(a), r) for a, r in zip(parts["agent"][-len(rewards):], ret, strict=True))
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    offload = cat["points"] < _local_points(cat["obs"])
    return TeacherData(obs=cat["obs"].astype(np.float32), agent=cat["agent"], points=cat["points"].astype(np.int64),
                       channels=cat["channels"].astype(np.int64), powers=cat["powers"].astype(np.float64),
                       offload=offload, returns=cat["returns"].astype(np.float32), frames=frames,
                       episode_returns=np.asarray(totals))


def merge(parts: list[TeacherData]) -> TeacherData:
    """The rows of several collections as one (DAgger's aggregate)."""
    cols = {k: np.concatenate([getattr(p, k) for p in parts])
            for k in ("obs", "agent", "points", "channels", "powers", "offload", "returns")}
    totals = [p.episode_returns for p in parts if p.episode_returns is not None]
    return TeacherData(**cols, frames=sum(p.frames for p in parts), episode_returns=np.concatenate(totals))


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma G_{t+1}`` of one episode (Eq. 15), ``G`` after its last frame 0."""
    out = np.zeros(len(rewards))
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = float(rewards[t]) + gamma * acc
        out[t] = acc
    return out


def _local_points(obs: np.ndarray) -> np.ndarray:
    """Each row's Local point (``B_n + 1``), read from its agent-centric valid-point mask."""
    from mahppo.marl_env.observations import POINT_MASK

    return (obs[:, POINT_MASK] > 0.5).sum(-1) - 1


def _frame_batches(data: TeacherData, rng: np.random.Generator):
    """Row indices of random whole frames, about ``BATCH`` rows each (the set modules pool per frame)."""
    from mahppo.algorithms.rllib.lean_learner import frame_units
    from mahppo.marl_env.observations import frame_ids

    frames = frame_units(frame_ids(data.obs))
    per = max(1, round(min(BATCH, len(data.obs)) * len(frames) / max(1, len(data.obs))))
    while True:
        yield torch.as_tensor(frames.rows(rng.integers(0, len(frames), size=per)))


def fit_actor(module: Any, data: TeacherData, updates: int, rng: np.random.Generator) -> float:
    """Behaviour cloning of the shared actor on every row of ``data`` (minibatches of whole frames);
    returns the last loss."""
    head = module.head
    batches = _frame_batches(data, rng)
    opt = torch.optim.Adam(module.parameters(), lr=LR)
    obs = torch.as_tensor(data.obs)
    pts = torch.as_tensor(data.points, dtype=torch.long)
    chs = torch.as_tensor(data.channels, dtype=torch.long)
    pws = torch.as_tensor(data.powers, dtype=torch.float32) / head.p_max
    off = torch.as_tensor(data.offload, dtype=torch.float32)
    loss = torch.zeros(())
    for _ in range(updates):
        idx = next(batches)
        x = module.dist_inputs(obs[idx])
        n, c = head.n_points, head.n_channels
        point_ce = _smoothed_ce(x[:, :n], pts[idx])
        channel_ce = _smoothed_ce(x[:, n:n + c], chs[idx])
        power_se = (x[:, n + c] / head.p_max - pws[idx]) ** 2
        w = off[idx]
        loss = point_ce.mean() + ((channel_ce + power_se) * w).sum() / w.sum().clamp(min=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def _smoothed_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against ``1 - eps`` on ``target`` and ``eps`` spread over the valid (unmasked) choices."""
    logp = torch.log_softmax(logits, dim=-1)
    valid = (logits > -1e8).to(logp.dtype)
    soft = LABEL_SMOOTHING * valid / valid.sum(-1, keepdim=True)
    soft = soft + (1 - LABEL_SMOOTHING) * torch.nn.functional.one_hot(target, logits.shape[-1]).to(logp.dtype)
    return -(soft * torch.where(valid > 0, logp, torch.zeros_like(logp))).sum(-1)


def fit_critic(module: Any, data: TeacherData, updates: int, rng: np.random.Generator) -> float:
    """Regression of the critic on the teacher's discounted returns (Eq. 16's loss), one value per frame
    (minibatches of whole frames); the last loss."""
    opt = torch.optim.Adam(module.parameters(), lr=LR)
    obs, target = torch.as_tensor(data.obs), torch.as_tensor(data.returns)
    batches = _frame_batches(data, rng)
    loss = torch.zeros(())
    for _ in range(updates):
        idx = next(batches)
        values, pool = module.frame_values(obs[idx])
        first = pool.first_rows()
        # the frame of each first row, in frame order: its return
        returns = torch.zeros_like(values).index_copy_(0, pool.index[first], target[idx][first])
        loss = ((values - returns) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def warm_start(algo: Any, experiment: Any) -> dict[str, float]:
    """Fit ``algo``'s shared actor and set critic to the teacher (see the module doc); push the weights
    to the learners and the samplers. Returns what it did (frames played, final losses)."""
    from mahppo.algorithms.rllib.modules import CRITIC_ID, SHARED_ID

    params, env, seed = experiment.algo, experiment.env, experiment.run.seed
    teacher = teacher_for(env, seed=10_000 + seed)
    data = collect(env, teacher, params.warm_start_episodes, seed=20_000 + seed, gamma=params.gamma)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    group = algo.learner_group
    modules = algo.config.rl_module_spec.build()
    modules.set_state(group.get_weights())
    updates = params.warm_start_updates
    stats: dict[str, float] = {"teacher_frames": float(data.frames), "teacher_point": float(teacher.point),
                               "teacher_power_w": float(teacher.power_w)}
    stats["bc_loss"] = fit_actor(modules[SHARED_ID], data, updates, rng)
    stats["critic_loss"] = fit_critic(modules[CRITIC_ID], data, updates, rng)
    group.set_weights(modules.get_state())
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=group, inference_only=True)
    return stats
