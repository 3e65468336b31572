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
from typing import Any

import numpy as np
from gymnasium import spaces
from mahppo.marl_env.config import MIN_POWER_W, EnvConfig
from mahppo.marl_env.core import DONE, FrameResult, MECSystem, frame_reward
from pettingzoo import ParallelEnv


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
        self._point_limits = [int(k) for k in self.system.num_actions]
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
        r = frame_reward(self.config.frame_s, self.config.beta, sys_.n, sys_.frame_completed, sys_.frame_energy)
        terminated = sys_.all_done
        truncated = (not terminated and self.config.max_frames is not None
                     and sys_.frame >= self.config.max_frames)
        agents = self.agents
        obs = {a: self._state.copy() for a in agents}
        rewards = dict.fromkeys(agents, r)
        terms = dict.fromkeys(agents, terminated)
        truncs = dict.fromkeys(agents, truncated)
        done_l, lat_l, en_l, left_l = (res.completed.tolist(), res.latency_s.tolist(), res.energy_j.tolist(),
                                       sys_.tasks_left.tolist())
        infos = {
            a: {"completed_tasks": done_l[i], "latency_s": lat_l[i], "energy_j": en_l[i], "tasks_left": left_l[i]}
            for i, a in enumerate(agents)
        }
        if terminated or truncated:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def parse_actions(self, actions: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validate a PettingZoo action dict into per-UE arrays (errors name agent and field)."""
        n = self.system.n
        if len(actions) != n or any(a not in self._index for a in actions):
            for agent in actions:
                if agent not in self._index:
                    raise ValueError(f"actions: unknown agent {agent!r}")
        points = [0] * n
        channels = [0] * n
        powers = [0.0] * n
        limits = self._point_limits
        n_channels = self.config.num_channels
        for i, agent in enumerate(self.possible_agents):
            try:
                action = actions[agent]
            except KeyError:
                raise ValueError(f"actions: no action for agent {agent!r}") from None
            b, c, p = _unpack(agent, action)
            if not 0 <= b < limits[i]:
                raise ValueError(f"{agent}: partition point = {b} is out of range 0..{limits[i] - 1}")
            if not 0 <= c < n_channels:
                raise ValueError(f"{agent}: channel = {c} is out of range 0..{n_channels - 1}")
            if p != p:
                raise ValueError(f"{agent}: power = nan is not a number")
            points[i], channels[i], powers[i] = b, c, p
        return (np.array(points, dtype=np.int64), np.array(channels, dtype=np.int64),
                np.clip(np.array(powers), MIN_POWER_W, self.config.p_max_w))

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
    return _as_int(agent, "partition point", b), _as_int(agent, "channel", c), _as_float(agent, p)


_INT_TYPES = frozenset({int, np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint16, np.uint32, np.uint64})


def _as_int(agent: str, field: str, v: Any) -> int:
    if type(v) in _INT_TYPES:
        return int(v)
    if isinstance(v, np.ndarray) and v.size == 1:
        return _as_int(agent, field, v.reshape(-1)[0])
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return int(v)
    raise ValueError(f"{agent}: {field} = {v!r} must be an integer")


def _as_float(agent: str, p: Any) -> float:
    if type(p) is float:
        return p
    if isinstance(p, np.ndarray):
        if p.size != 1:
            raise ValueError(f"{agent}: power = {p!r} must be one number")
        p = p.reshape(-1)[0]
    if isinstance(p, bool) or not isinstance(p, int | float | np.integer | np.floating):
        raise ValueError(f"{agent}: power = {p!r} must be a number")
    return float(p)


def parallel_env(**config: Any) -> CollabInferenceEnv:
    """Build the env from keyword options (see ``marl_env.config.EnvConfig``)."""
    return CollabInferenceEnv(**config)
