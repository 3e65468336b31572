"""PettingZoo ``ParallelEnv`` of multi-agent collaborative inference (Sec. 3-4 of the paper).

One agent per UE (``"ue_0"``, ``"ue_1"``, ...). Every agent observes the same global state
(``state()``, the centralized critic's input) and receives the same team reward (Eq. 12).

Actions, per agent: ``(b, c, p)`` = (partition point in ``{0..B_n+1}``, channel in ``{0..C-1}``,
transmit power). An out-of-range point or channel, or a NaN power, raises ``ValueError`` naming
the agent and the field. A power outside ``(0, p_max]`` is clipped into ``[1e-10 W, p_max]``
(as in the authors' code). Power takes effect at once; point and channel when the UE starts its
next task (Sec. 4.3); the first task of an episode starts with the first frame's decision.

All agents stay in the episode until every UE has finished its tasks (then all terminate), or the
episode is truncated after ``max_frames`` frames. A UE with no tasks left idles.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl_env.config import MIN_POWER_W, EnvConfig
from marl_env.core import DONE, FrameResult, MECSystem, reward


class CollabInferenceEnv(ParallelEnv):
    """N UEs splitting DNN inference with one edge server over C shared channels."""

    metadata = {"name": "collab_inference_v0", "render_modes": ["ansi", "human"], "is_parallelizable": True}

    def __init__(self, config: EnvConfig | None = None, **kwargs: Any):
        if config is None:
            config = EnvConfig.from_kwargs(**kwargs)
        elif kwargs:
            config = config.with_updates(**kwargs)
        self.config = config
        self.render_mode = config.render_mode
        self.system = MECSystem(config)
        self.possible_agents = [f"ue_{i}" for i in range(self.system.n)]
        self.agents: list[str] = []
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self._rng = np.random.default_rng()
        self._last: FrameResult | None = None
        self._state = np.zeros(4 * self.system.n, dtype=np.float32)
        high = self._obs_high()
        self._obs_space = spaces.Box(0.0, high, dtype=np.float32)
        self._act_spaces = {
            a: spaces.Tuple((
                spaces.Discrete(int(self.system.num_actions[i])),
                spaces.Discrete(config.num_channels),
                spaces.Box(0.0, config.p_max_w, shape=(1,), dtype=np.float32),
            ))
            for i, a in enumerate(self.possible_agents)
        }

    def _obs_high(self) -> np.ndarray:
        s, cfg = self.system, self.config
        high = np.ones((s.n, 4), dtype=np.float32)
        high[:, 1] = np.maximum(1.0, s.lat2d.max(axis=1) / s.l_scale)
        high[:, 2] = np.maximum(1.0, s.bits2d.max(axis=1) / s.n_scale)
        span = cfg.d_max_m - cfg.d_min_m
        for i, spec in enumerate(cfg.specs):
            if spec.distance_m is not None and span > 0:
                high[i, 3] = max(1.0, (spec.distance_m - cfg.d_min_m) / span)
        return (high * np.float32(1.0001)).reshape(-1)

    # --- PettingZoo API -------------------------------------------------------------------------
    @functools.cache  # noqa: B019 - the spaces are fixed per env
    def observation_space(self, agent: str) -> spaces.Box:
        self._check_agent(agent)
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Tuple:
        self._check_agent(agent)
        return self._act_spaces[agent]

    @property
    def state_space(self) -> spaces.Box:
        return self._obs_space

    def state(self) -> np.ndarray:
        """The global state ``[k, l, n, d]`` per UE, concatenated (Sec. 4.3, Fig. 3)."""
        return self._state.copy()

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.system.reset(self._rng)
        self.agents = list(self.possible_agents)
        self._last = None
        self._state = self.system.state()
        obs = {a: self._state.copy() for a in self.agents}
        infos = {a: {} for a in self.agents}
        return obs, infos

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        points, channels, powers = self.parse_actions(actions)
        return self.step_arrays(points, channels, powers)

    def step_arrays(self, points: np.ndarray, channels: np.ndarray, powers: np.ndarray):
        """``step`` with validated per-UE arrays (what baselines and fast loops use)."""
        sys_ = self.system
        sys_.set_actions(points, channels, powers)
        res = sys_.step()
        self._last = res
        self._state = sys_.state()
        r = reward(self.config.frame_s, self.config.beta, res.completed, res.energy_j)
        terminated = sys_.all_done
        truncated = (not terminated and self.config.max_frames is not None
                     and sys_.frame >= self.config.max_frames)
        agents = self.agents
        obs = {a: self._state.copy() for a in agents}
        rewards = dict.fromkeys(agents, r)
        terms = dict.fromkeys(agents, terminated)
        truncs = dict.fromkeys(agents, truncated)
        infos = {
            a: {
                "completed_tasks": int(res.completed[i]),
                "latency_s": float(res.latency_s[i]),
                "energy_j": float(res.energy_j[i]),
                "tasks_left": int(sys_.tasks_left[i]),
            }
            for i, a in enumerate(agents)
        }
        if terminated or truncated:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def parse_actions(self, actions: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validate a PettingZoo action dict into per-UE arrays (errors name agent and field)."""
        n = self.system.n
        points = np.empty(n, dtype=np.int64)
        channels = np.empty(n, dtype=np.int64)
        powers = np.empty(n, dtype=np.float64)
        for agent in actions:
            if agent not in self._index:
                raise ValueError(f"actions: unknown agent {agent!r}")
        for i, agent in enumerate(self.possible_agents):
            if agent not in actions:
                raise ValueError(f"actions: no action for agent {agent!r}")
            b, c, p = _unpack(agent, actions[agent])
            if not 0 <= b < self.system.num_actions[i]:
                raise ValueError(
                    f"{agent}: partition point = {b} is out of range 0..{self.system.num_actions[i] - 1}")
            if not 0 <= c < self.config.num_channels:
                raise ValueError(f"{agent}: channel = {c} is out of range 0..{self.config.num_channels - 1}")
            if math.isnan(p):
                raise ValueError(f"{agent}: power = nan is not a number")
            points[i], channels[i], powers[i] = b, c, p
        return points, channels, np.clip(powers, MIN_POWER_W, self.config.p_max_w)

    def render(self) -> str | None:
        s = self.system
        names = {0: "idle", 1: "front", 2: "sending", DONE: "done"}
        lines = [f"frame {s.frame}  t = {s.frame * self.config.frame_s:.1f} s"]
        lines.append(" ue   dnn          d(m)  tasks  phase    b  c  p(W)    rate(Mb/s)")
        for i, spec in enumerate(self.config.specs):
            lines.append(
                f"{i:3d}   {spec.dnn:11s} {s.distance[i]:5.1f} {s.tasks_left[i]:6d}  "
                f"{names[int(s.phase[i])]:8s} {s.point[i]:1d}  {s.channel[i]:1d}  {s.power[i]:.3f}   "
                f"{s.rate[i] / 1e6:8.2f}")
        text = "\n".join(lines)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        pass

    def _check_agent(self, agent: str) -> None:
        if agent not in self._index:
            raise ValueError(f"unknown agent {agent!r} (agents: {', '.join(self.possible_agents)})")


def _unpack(agent: str, action: Any) -> tuple[int, int, float]:
    try:
        b, c, p = action
    except (TypeError, ValueError):
        raise ValueError(f"{agent}: action = {action!r} must be (partition point, channel, power)") from None
    p_arr = np.asarray(p, dtype=np.float64).reshape(-1)
    if p_arr.size != 1:
        raise ValueError(f"{agent}: power = {p!r} must be one number")
    for field, v in (("partition point", b), ("channel", c)):
        if isinstance(v, float | np.floating) and not float(v).is_integer():
            raise ValueError(f"{agent}: {field} = {v!r} must be an integer")
        if isinstance(v, bool) or not isinstance(v, int | np.integer | float | np.floating | np.ndarray):
            raise ValueError(f"{agent}: {field} = {v!r} must be an integer")
    return int(np.asarray(b).item()), int(np.asarray(c).item()), float(p_arr[0])


def parallel_env(**config: Any) -> CollabInferenceEnv:
    """Build the env from keyword options (see ``marl_env.config.EnvConfig``)."""
    return CollabInferenceEnv(**config)
