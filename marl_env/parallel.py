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
from pettingzoo import ParallelEnv

from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.core import DONE, FRONT, IDLE, SENDING, FrameResult, MECSystem, frame_reward
from mahppo.marl_env.observations import (
    agent_observations,
    distance_tokens,
    dnn_descriptor,
    frame_key,
    new_frame_key,
    obs_size,
    tokens_for,
)
from mahppo.marl_env.profiles import resolve_profile
from mahppo.marl_env.view import SystemView

KEY_STREAM = 0x6B6579  # the frame keys' stream of a seeded reset (apart from the episode's own draws)


class CollabInferenceEnv(ParallelEnv):
    """N UEs splitting DNN inference with one edge server over C shared channels.

    **Agents**: ``possible_agents = ["ue_0", ..., "ue_{N-1}"]``; with ``num_ues_range=(lo, hi)`` each
    episode draws N in ``[lo, hi]`` (and, with ``dnn_pool``, each UE's DNN, or in a share ``one_dnn_share``
    of the episodes one DNN for all) and ``agents`` is the first N of the ``hi`` possible agents.

    **Observations** (``obs_mode``):

    - ``"global"`` (the paper, Sec. 4.3; default): every agent observes the global state ``[4N]``,
      per UE ``[k / K_n, l / t_local, n / f_raw, (d - d_min) / (d_max - d_min)]``, UEs concatenated.
    - ``"agent"``: agent ``i`` observes its own 4 state features, its rank token (its load rank,
      recomputed every frame: by local work left, most first; ties by distance, then at random per
      episode), its DNN's descriptor and its local work left (``work_left_s()`` / 10 s), then the
      frame key that every agent of the frame shares (``marl_env.observations``): one layout of
      ``F + 2`` numbers for any N, any UE order and any mix of DNNs; a set model pools the frame.

    ``state()`` is always the global state ``[4N]`` of the current cell.

    **Actions**: ``Tuple(Discrete(B_n + 2), Discrete(C), Box(0, p_max, (1,)))`` per agent (with a DNN
    pool, ``Discrete`` of the largest ``B_n + 2``; a point beyond the UE's own DNN is rejected).
    **Reward**: Eq. 12, shared by all agents. **Termination**: every UE finished its tasks.
    **Truncation**: ``max_frames``.
    """

    metadata = {"name": "collab_inference_v0", "render_modes": ["ansi", "human"], "is_parallelizable": True}

    def __init__(self, config: EnvConfig | None = None, **kwargs: Any):
        if config is None:
            config = EnvConfig.from_kwargs(**kwargs)
        elif kwargs:
            config = config.with_updates(**kwargs)
        self.config = config
        self.render_mode = config.render_mode
        self.possible_agents = [f"ue_{i}" for i in range(config.num_ues)]
        self.agents: list[str] = []
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self._rng = np.random.default_rng()
        # frame keys only (marl_env.observations): its own stream, seeded from reset's seed, never the episode's
        self._key_rng = np.random.default_rng()
        self._episode_key = new_frame_key(self._key_rng)
        self._cells: dict[tuple[str, ...], tuple[EnvConfig, MECSystem, np.ndarray]] = {}
        self._use_cell(config)
        self._last: FrameResult | None = None
        self._state = np.zeros(4 * self.system.n, dtype=np.float32)
        self.tokens = np.zeros(self.system.n)
        width = max(p.num_actions for p in self._nominal_profiles())
        self._act_spaces = {
            a: spaces.Tuple((
                spaces.Discrete(width if config.varies else int(self.system.num_actions[i])),
                spaces.Discrete(config.num_channels),
                spaces.Box(0.0, config.p_max_w, shape=(1,), dtype=np.float32),
            ))
            for i, a in enumerate(self.possible_agents)
        }
        if config.obs_mode == "agent":
            self._obs_space = spaces.Box(0.0, np.inf, shape=(obs_size(),), dtype=np.float32)
        else:
            self._obs_space = spaces.Box(0.0, self._obs_high(), dtype=np.float32)
        self._state_space = spaces.Box(0.0, np.inf, shape=(4 * config.num_ues,), dtype=np.float32)

    def _nominal_profiles(self):
        pool = [resolve_profile(d, self.config.profile_file) for d in self.config.dnn_pool or ()]
        return [*self.config.profiles, *pool]

    def _use_cell(self, cell: EnvConfig) -> None:
        """Switch to the system of ``cell`` (cached per DNN list: an episode's draw costs one lookup)."""
        key = tuple(s.dnn for s in cell.specs)
        entry = self._cells.get(key)
        if entry is None:
            if len(self._cells) > 512:
                self._cells.clear()
            entry = (cell, MECSystem(cell), self._descriptors(cell) if self.config.obs_mode == "agent" else None)
            self._cells[key] = entry
        self.cell, self.system, self._desc = entry
        self._point_limits = [int(k) for k in self.system.num_actions]

    @staticmethod
    def _descriptors(cell: EnvConfig) -> np.ndarray:
        return np.stack([dnn_descriptor(p, cell.frame_s, cell.bandwidth_hz, cell.p_max_w) for p in cell.profiles])

    def descriptors(self) -> np.ndarray:
        """Each current UE's DNN descriptor ``[N, D]`` (``marl_env.observations``)."""
        if self._desc is None:
            self._desc = self._descriptors(self.cell)
            key = tuple(s.dnn for s in self.cell.specs)
            self._cells[key] = (self.cell, self.system, self._desc)
        return self._desc

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
        return self._state_space

    def state(self) -> np.ndarray:
        """The global state ``[k, l, n, d]`` per UE, concatenated (Sec. 4.3, Fig. 3)."""
        return self._state.copy()

    def observation_matrix(self) -> np.ndarray:
        """Every current agent's observation, one row per agent in ``agents`` order."""
        if self.config.obs_mode == "agent":
            return agent_observations(self._state, self.tokens, self._desc, self.work_left_s(), self.system.fade,
                                      frame_key(self._episode_key, self.system.frame))
        return np.broadcast_to(self._state, (len(self._state) // 4, len(self._state))).copy()

    def work_left_s(self) -> np.ndarray:
        """Each UE's local work left: tasks left x its full local latency (s) (the load rank's key)."""
        return self.system.tasks_left * self.system.l_scale

    def _observations(self) -> dict[str, np.ndarray]:
        agents = self.agents
        if self.config.obs_mode == "agent":
            rows = self.observation_matrix()
            return {a: rows[i] for i, a in enumerate(agents)}
        return {a: self._state.copy() for a in agents}

    @property
    def last_frame(self) -> FrameResult | None:
        """What the last ``step`` did, per UE (``None`` right after ``reset``)."""
        return self._last

    def snapshot(self) -> dict[str, Any]:
        """The episode's state now (the system's, the observation's, the agents'): ``restore`` returns to it.
        A planner simulates ahead on a second env of the same cell (``marl_env.lookahead``)."""
        return {"system": self.system.snapshot(), "state": self._state.copy(), "tokens": self.tokens.copy(),
                "agents": list(self.agents), "last": self._last}

    def restore(self, snap: dict[str, Any]) -> None:
        """Return to a ``snapshot`` of this env or of another env of the same cell."""
        self.system.restore(snap["system"])
        self._state = snap["state"].copy()
        self.tokens = snap["tokens"].copy()
        self.agents = list(snap["agents"])
        self._last = snap["last"]

    def load_state(self, tasks_left: Any, local_time_left_s: Any, bits_left: Any, point_in_flight: Any = None,
                   channel_in_flight: Any = None, distance_m: Any = None, total_tasks: Any = None,
                   tokens: Any = None, fading: Any = None, frame: int = 0) -> None:
        """Put this episode's cell in a given state, as at the end of a frame: a decision-maker's picture of
        a real cell (a Serve request) made simulable, e.g. for ``marl_env.lookahead``. Call after ``reset``.

        Per UE (the names of a Serve request's ``UEState``): ``tasks_left`` (k), ``local_time_left_s`` (l: the
        front part still to run) and ``bits_left`` (n: the feature or input still to send) of the task in
        flight, and the partition point and channel that task runs with (``point_in_flight``, ``channel_in_flight``:
        needed for a UE with a task in flight). The phase follows (the kernel's own states at a frame's end): no
        task left, done; front time left, running its front part; else bits left, sending; else idle.
        Optionally ``distance_m``, ``total_tasks`` (K_n) and the rank ``tokens``' tie-break (default: by
        distance, then by index), and ``fading``: each UE's current fading power gain h (gain = d^-l h; default
        1, no fading); ``frame``: frames of the episode so far (a horizon's backlog charge depends on it). A bad
        value raises ``StateError`` naming the UE and the field."""
        sys_, n = self.system, self.system.n
        k = _per_ue(tasks_left, n, "tasks_left", np.int64)
        t = _per_ue(local_time_left_s, n, "local_time_left_s", np.float64)
        b = _per_ue(bits_left, n, "bits_left", np.float64)
        d = sys_.distance.copy() if distance_m is None else _per_ue(distance_m, n, "distance_m", np.float64)
        total = sys_.total_tasks.copy() if total_tasks is None else _per_ue(total_tasks, n, "total_tasks", np.int64)
        h = np.ones(n) if fading is None else _per_ue(fading, n, "fading", np.float64)
        pts = np.full(n, -1, dtype=np.int64) if point_in_flight is None else _per_ue(
            point_in_flight, n, "point_in_flight", np.int64, missing=-1)
        chs = np.full(n, -1, dtype=np.int64) if channel_in_flight is None else _per_ue(
            channel_in_flight, n, "channel_in_flight", np.int64, missing=-1)
        phase = np.where(k == 0, DONE, np.where(t > 0, FRONT, np.where(b > 0, SENDING, IDLE)))
        local, c = sys_.last_point, self.config.num_channels
        for i in range(n):
            for field, v, ok in (("tasks_left", k[i], 0 <= k[i] <= total[i]),
                                 ("local_time_left_s", t[i], t[i] >= 0),
                                 ("bits_left", b[i], b[i] >= 0), ("distance_m", d[i], d[i] > 0),
                                 ("fading", h[i], h[i] >= 0)):
                if not ok:
                    raise StateError(i, field, f"{v.item()!r} is out of range" + (
                        f" (total_tasks = {total[i]})" if field == "tasks_left" else ""))
            if phase[i] not in (FRONT, SENDING):
                pts[i], chs[i] = local[i], 0  # nothing in flight: the next decision sets both
                continue
            what = "running its front part" if phase[i] == FRONT else "sending"
            if not 0 <= pts[i] <= local[i]:
                raise StateError(i, "point_in_flight", f"{_shown(pts[i])}: the UE is {what}, so the point of its "
                                 f"task in flight is needed (0..{local[i]})")
            if phase[i] == FRONT and pts[i] == 0:
                raise StateError(i, "point_in_flight", "0 sends the raw input and has no front part, but "
                                 f"time_left_s = {t[i]:g}")
            if phase[i] == SENDING and pts[i] == local[i]:
                raise StateError(i, "point_in_flight", f"{local[i]} runs the whole model locally and sends "
                                 f"nothing, but bits_left = {b[i]:g}")
            if pts[i] != local[i] and not 0 <= chs[i] < c:
                raise StateError(i, "channel_in_flight", f"{_shown(chs[i])}: the UE is {what}, so the channel of "
                                 f"its task in flight is needed (0..{c - 1})")
            if t[i] > sys_.lat2d[i, pts[i]] * (1 + 1e-9):
                raise StateError(i, "local_time_left_s", f"{t[i]:g} s is more than the front part at point {pts[i]} "
                                 f"takes ({sys_.lat2d[i, pts[i]]:g} s)")
            if b[i] > sys_.bits2d[i, pts[i]] * (1 + 1e-9):
                raise StateError(i, "bits_left", f"{b[i]:g} is more than point {pts[i]} sends "
                                 f"({sys_.bits2d[i, pts[i]]:g} bits)")
        sys_.set_state(phase=phase, tasks_left=k, total_tasks=total, point=pts, channel=np.maximum(chs, 0),
                       distance=d, fade=h, time_left=t, bits_left=b)
        sys_.frame = int(frame)
        self.tokens = (distance_tokens(d, np.arange(n)) if tokens is None
                       else _per_ue(tokens, n, "tokens", np.float64))
        self.agents = self.possible_agents[:n]
        self._last = None
        self._state = sys_.state()

    def view(self) -> SystemView:
        """The read-only view of the system that policies may use (``marl_env.view``)."""
        return SystemView(self)

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode. The cell is fixed when the env is built: ``options`` naming an env option (such as
        ``ue_specs`` or ``num_ues``) raise ``ValueError`` (build a new env with ``parallel_env(...)``); other keys
        are ignored, as Gymnasium does (PettingZoo's ``api_test`` passes one)."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
            raise ValueError(f"reset: seed = {seed!r} must be an integer >= 0 or None")
        _check_reset_options(options)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._key_rng = np.random.default_rng([seed, KEY_STREAM])
        self._episode_key = new_frame_key(self._key_rng)
        if self.config.varies:
            self._use_cell(self.config.draw_cell(self._rng))
        self.system.reset(self._rng)
        # rank tokens (marl_env.observations): rank by distance, equal distances by keys drawn at random
        # per episode, for "agent" observations; the paper's global observation has none (ranks of the
        # ids, so its random stream stays the paper's)
        n = self.system.n
        self.tokens = (distance_tokens(self.system.distance, self._rng.permutation(n))
                       if self.config.obs_mode == "agent" else tokens_for(self.possible_agents[:n]))
        self.agents = self.possible_agents[:self.system.n]
        self._last = None
        self._state = self.system.state()
        infos = {a: {} for a in self.agents}
        return self._observations(), infos

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        points, channels, powers = self.parse_actions(actions)
        return self.step_arrays(points, channels, powers)

    def step_arrays(self, points: np.ndarray, channels: np.ndarray, powers: np.ndarray):
        """``step`` with validated per-UE arrays in ``agents`` order (what baselines and fast loops use)."""
        sys_ = self.system
        r = self.advance(points, channels, powers)
        res = self._last
        terminated = sys_.episode_over
        truncated = (not terminated and self.config.max_frames is not None
                     and sys_.frame >= self.config.max_frames)
        agents = self.agents
        obs = self._observations()
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

    def advance(self, points: np.ndarray, channels: np.ndarray, powers: np.ndarray) -> float:
        """Simulate one frame of validated per-UE decisions; return its reward (Eq. 12). No PettingZoo
        dicts and no end-of-episode bookkeeping: what ``step_arrays`` builds on, and what planners use."""
        sys_ = self.system
        sys_.set_actions(points, channels, powers)
        self._last = sys_.step()
        self._state = sys_.state()
        r = frame_reward(self.config.frame_s, self.config.beta, sys_.n, sys_.frame_completed, sys_.frame_energy)
        if self.config.dynamics.horizon_frames is not None:
            r += sys_.backlog_charge()  # the horizon's charge for the tasks left (0 before it)
        return r

    def parse_actions(self, actions: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validate a PettingZoo action dict into per-UE arrays (errors name agent and field)."""
        n = self.system.n
        agents = self.possible_agents[:n]
        if len(actions) != n or any(a not in self._index for a in actions):
            for agent in actions:
                if agent not in self._index or self._index[agent] >= n:
                    raise ValueError(f"actions: unknown agent {agent!r}")
        points = [0] * n
        channels = [0] * n
        powers = [0.0] * n
        for i, agent in enumerate(agents):
            try:
                action = actions[agent]
            except KeyError:
                raise ValueError(f"actions: no action for agent {agent!r}") from None
            points[i], channels[i], powers[i] = _unpack(agent, action)
        return self.check_arrays(np.array(points, dtype=np.int64), np.array(channels, dtype=np.int64),
                                 np.array(powers, dtype=np.float64))

    def check_arrays(self, points: np.ndarray, channels: np.ndarray, powers: np.ndarray):
        """Validate per-UE action arrays (``agents`` order): shapes, point and channel ranges, no NaN
        power. Errors name the agent and the field; powers are left for the simulator to clip."""
        s = self.system
        points, channels = _int_array(points, "partition point"), _int_array(channels, "channel")
        powers = np.asarray(powers, dtype=np.float64)
        if points.shape != (s.n,) or channels.shape != (s.n,) or powers.shape != (s.n,):
            raise ValueError(f"actions of shapes {points.shape}, {channels.shape}, {powers.shape}; "
                             f"expected ({s.n},) each")
        bad = (points < 0) | (points >= s.num_actions)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"ue_{i}: partition point = {points[i]} is out of range 0..{s.num_actions[i] - 1}")
        c = self.config.num_channels
        bad = (channels < 0) | (channels >= c)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"ue_{i}: channel = {channels[i]} is out of range 0..{c - 1}")
        if np.isnan(powers).any():
            raise ValueError(f"ue_{int(np.argmax(np.isnan(powers)))}: power = nan is not a number")
        return points.astype(np.int64, copy=False), channels.astype(np.int64, copy=False), powers

    def render(self) -> str | None:
        s = self.system
        names = {0: "idle", 1: "front", 2: "sending", DONE: "done"}
        lines = [f"frame {s.frame}  t = {s.frame * self.config.frame_s:.1f} s"]
        lines.append(" ue   dnn          d(m)  tasks  phase    b  c  p(W)    rate(Mb/s)")
        for i, spec in enumerate(self.cell.specs):
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


class StateError(ValueError):
    """A bad per-UE value given to ``load_state``: ``index`` is the UE, ``field`` the value's name."""

    def __init__(self, index: int, field: str, message: str):
        super().__init__(f"ue {index}: {field} {message}")
        self.index, self.field, self.message = index, field, message


def _shown(v: int) -> str:
    return "missing" if v < 0 else f"= {v}"


def _per_ue(values: Any, n: int, field: str, dtype: Any, missing: int | None = None) -> np.ndarray:
    """One finite value per UE (``None`` entries become ``missing`` where allowed)."""
    vals = list(values) if not isinstance(values, np.ndarray) else values.tolist()
    if len(vals) != n:
        raise StateError(0, field, f"has {len(vals)} values for {n} UEs")
    out = np.empty(n, dtype=dtype)
    for i, v in enumerate(vals):
        if v is None and missing is not None:
            out[i] = missing
            continue
        integer = np.dtype(dtype).kind == "i"
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not np.isfinite(v) \
                or (integer and float(v) != int(v)):
            raise StateError(i, field, f"= {v!r} must be a finite {'integer' if integer else 'number'}")
        out[i] = v
    return out


def _unpack(agent: str, action: Any) -> tuple[int, int, float]:
    try:
        b, c, p = action
    except (TypeError, ValueError):
        raise ValueError(f"{agent}: action = {action!r} must be (partition point, channel, power)") from None
    return _as_int(agent, "partition point", b), _as_int(agent, "channel", c), _as_float(agent, p)


_INT_TYPES = frozenset({int, np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint16, np.uint32, np.uint64})


def _int_array(values: Any, field: str) -> np.ndarray:
    """Per-UE integers as int64; a value beyond int64 is a ``ValueError`` naming the UE and the field."""
    try:
        return np.asarray(values, dtype=np.int64) if not isinstance(values, np.ndarray) else values
    except (OverflowError, TypeError, ValueError):
        for i, v in enumerate(np.asarray(values, dtype=object).reshape(-1)):
            try:
                np.int64(v)
            except (OverflowError, TypeError, ValueError):
                raise ValueError(f"ue_{i}: {field} = {v!r} is not an integer in range") from None
        raise ValueError(f"{field}s = {values!r} must be integers") from None


def _as_int(agent: str, field: str, v: Any) -> int:
    if isinstance(v, np.ndarray) and v.size == 1:
        return _as_int(agent, field, v.reshape(-1)[0])
    if type(v) in _INT_TYPES or isinstance(v, float | np.floating) and float(v).is_integer():
        if not -(2**63) <= int(v) < 2**63:  # the env's arrays are int64
            raise ValueError(f"{agent}: {field} = {v!r} is out of range")
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


def _check_reset_options(options: dict | None) -> None:
    if not options:
        return
    if not isinstance(options, dict):
        raise ValueError(f"reset options = {options!r} must be a dict")
    fixed = sorted(set(options) & EnvConfig.option_names())
    if fixed:
        raise ValueError(f"reset(options={{{fixed[0]!r}: ...}}): {fixed[0]} is fixed when the env is built; build a "
                         f"new env with parallel_env({fixed[0]}=...)")
