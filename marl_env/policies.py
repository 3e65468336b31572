"""Baseline policies (usable wherever a trained policy is) and the policy interface.

A policy gets the read-only ``SystemView`` (``marl_env.view``) in ``reset(view, seed)`` and in every
``act(view)``, and returns per-UE arrays ``(points, channels, powers)`` in ``view.agents`` order: the
same shape a trained MAHPPO policy produces.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mahppo.marl_env.core import frame_reward
from mahppo.marl_env.rules import MaxWeightPolicy, MyopicPolicy

if TYPE_CHECKING:
    from mahppo.marl_env.config import EnvConfig
    from mahppo.marl_env.parallel import CollabInferenceEnv
    from mahppo.marl_env.view import SystemView

Actions = tuple[np.ndarray, np.ndarray, np.ndarray]
BASELINES = ("local", "edge", "random", "greedy", "static-search", "rotate", "maxweight", "myopic")


class Policy(Protocol):
    name: str

    def reset(self, view: SystemView, seed: int | None = None) -> None: ...

    def act(self, view: SystemView) -> Actions: ...


class FixedPolicy:
    """One ``(b, c, p)`` per UE for the whole episode (``fixed:B,C,P`` or ``B,C,P;B,C,P;...``)."""

    def __init__(self, triples: list[tuple[int, int, float]], name: str = "fixed"):
        if not triples:
            raise ValueError("fixed policy: at least one B,C,P triple is needed")
        self.triples = triples
        self.name = name
        self._acts: Actions | None = None

    def reset(self, view: SystemView, seed: int | None = None) -> None:
        n = view.num_ues
        if len(self.triples) not in (1, n):
            raise ValueError(f"{self.name}: {len(self.triples)} triples given for {n} UEs (give 1 or {n})")
        t = self.triples * n if len(self.triples) == 1 else self.triples
        self._acts = (np.array([b for b, _, _ in t], dtype=np.int64), np.array([c for _, c, _ in t], dtype=np.int64),
                      np.array([p for _, _, p in t], dtype=np.float64))

    def decide(self, view: SystemView) -> Actions:
        """This policy's actions for the cell of ``view`` (the same every frame)."""
        self.reset(view)
        assert self._acts is not None
        return self._acts

    def act(self, view: SystemView) -> Actions:
        if self._acts is None:
            raise RuntimeError(f"{self.name}: call reset(view) first")
        return self._acts


class LocalPolicy(FixedPolicy):
    """The paper's Local baseline: every task runs fully on its UE (b = B_n + 1)."""

    def __init__(self) -> None:
        super().__init__([(0, 0, 1.0)], name="local")

    def reset(self, view: SystemView, seed: int | None = None) -> None:
        n = view.num_ues
        self._acts = (np.asarray(view.num_actions) - 1, np.zeros(n, dtype=np.int64), np.full(n, view.config.p_max_w))


class EdgePolicy(FixedPolicy):
    """Offload the raw input (b = 0) at p_max; channels round-robin."""

    def __init__(self) -> None:
        super().__init__([(0, 0, 1.0)], name="edge")

    def reset(self, view: SystemView, seed: int | None = None) -> None:
        n, c = view.num_ues, view.config.num_channels
        self._acts = (np.zeros(n, dtype=np.int64), np.arange(n) % c, np.full(n, view.config.p_max_w))


class GreedyPolicy(FixedPolicy):
    """Each UE picks the point best for itself alone (no interference) at p_max, channels round-robin.

    Per-task cost ``t + beta * e`` with Eqs. 6-9 and the interference-free rate of Eq. 5.
    """

    def __init__(self) -> None:
        super().__init__([(0, 0, 1.0)], name="greedy")

    def reset(self, view: SystemView, seed: int | None = None) -> None:
        cfg, n = view.config, view.num_ues
        p = cfg.p_max_w
        rate = cfg.bandwidth_hz * np.log2(1.0 + p * view.gain / cfg.noise_w)
        pts = np.empty(n, dtype=np.int64)
        for i in range(n):
            k = view.num_actions[i]
            t_t = view.bits[i, :k] / rate[i]
            lat = view.front_latency_s[i, :k] + t_t
            energy = view.front_latency_s[i, :k] * view.front_power_w[i, :k] + p * t_t
            pts[i] = int(np.argmin(lat + cfg.beta * energy))
        self._acts = (pts, np.arange(n) % cfg.num_channels, np.full(n, p))


class RandomPolicy:
    """Uniform random (b, c, p) for every UE, every frame."""

    name = "random"

    def reset(self, view: SystemView, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self._k = np.asarray(view.num_actions)
        self._c = view.config.num_channels
        self._p = view.config.p_max_w

    def act(self, view: SystemView) -> Actions:
        n = len(self._k)
        return (self._rng.integers(0, self._k), self._rng.integers(0, self._c, size=n),
                self._rng.uniform(0.0, self._p, size=n))


class StaticSearchPolicy(FixedPolicy):
    """Per-UE fixed ``(b, c, p)`` found by simulating the scenario (a strong non-learning bar).

    The candidates per UE are every point x every channel x ``powers`` (fractions of p_max). When the
    joint grid has at most ``exhaustive_limit`` combinations it is searched exhaustively; otherwise
    coordinate descent (one UE at a time, all its candidates, others held) runs from the greedy
    start and from ``restarts`` random starts. The objective is the episode reward (sum of Eq. 12),
    averaged over ``search_episodes`` seeds (one suffices on the deterministic test scenario).
    """

    def __init__(self, powers: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0), restarts: int = 3,
                 exhaustive_limit: int = 2000, search_episodes: int | None = None, seed: int = 0,
                 max_frames: int = 4000):
        super().__init__([(0, 0, 1.0)], name="static-search")
        self.powers = powers
        self.restarts = restarts
        self.exhaustive_limit = exhaustive_limit
        self.search_episodes = search_episodes
        self.seed = seed
        self.max_frames = max_frames
        self._cache: dict[tuple, Actions] = {}
        self.evaluations = 0

    def reset(self, view: SystemView, seed: int | None = None) -> None:
        key = (view.config, )
        if key not in self._cache:
            self._cache[key] = self._search(view.config)
        self._acts = self._cache[key]

    def _search(self, config: EnvConfig) -> Actions:
        from mahppo.marl_env.parallel import CollabInferenceEnv

        sim = CollabInferenceEnv(config.with_updates(max_frames=None, render_mode=None))
        n, c, pmax = sim.system.n, config.num_channels, config.p_max_w
        episodes = self.search_episodes or (1 if config.scenario == "test" else 4)
        seeds = [self.seed + e for e in range(episodes)]
        cands = [[(b, ch, f * pmax) for b in range(int(sim.system.num_actions[i])) for ch in range(c)
                  for f in self.powers] for i in range(n)]

        best_val = -np.inf

        def score(choice: list[tuple[int, int, float]]) -> float:
            nonlocal best_val
            pts = np.array([x[0] for x in choice])
            chs = np.array([x[1] for x in choice])
            pws = np.array([x[2] for x in choice], dtype=np.float64)
            total = 0.0
            for s in seeds:
                total += _episode_return(sim, lambda _: (pts, chs, pws), s, self.max_frames,
                                         floor=best_val * len(seeds) - total)
            self.evaluations += 1
            return total / len(seeds)

        grid = int(np.prod([float(len(x)) for x in cands]))
        best: list[tuple[int, int, float]]
        if grid <= self.exhaustive_limit:
            best, best_val = [], -np.inf
            for combo in itertools.product(*cands):
                v = score(list(combo))
                if v > best_val:
                    best, best_val = list(combo), v
        else:
            rng = np.random.default_rng(self.seed)
            g = GreedyPolicy().decide(_reset(sim, seeds[0]).view())
            starts = [[(int(g[0][i]), int(g[1][i]), pmax) for i in range(n)]]
            for _ in range(self.restarts):
                starts.append([cands[i][rng.integers(len(cands[i]))] for i in range(n)])
            best, best_val = starts[0], score(starts[0])
            for start in starts:
                cur, cur_val = list(start), score(start)
                improved = True
                while improved:
                    improved = False
                    for i in range(n):
                        for cand in cands[i]:
                            if cand == cur[i]:
                                continue
                            trial = cur[:i] + [cand] + cur[i + 1:]
                            v = score(trial)
                            if v > cur_val + 1e-12:
                                cur, cur_val, improved = trial, v, True
                if cur_val > best_val:
                    best, best_val = cur, cur_val
        self.best_reward = best_val
        return (np.array([x[0] for x in best], dtype=np.int64), np.array([x[1] for x in best], dtype=np.int64),
                np.array([x[2] for x in best], dtype=np.float64))


def rotate_actions(work_left: np.ndarray, num_actions: np.ndarray, num_channels: int, point: int,
                   power_w: float) -> Actions:
    """One frame of the rotation: the ``C`` UEs with the most work left offload at ``point`` (or their
    last point before Local) and ``power_w``, one per channel; the others run locally (b = B_n + 1).
    Ties go to the lower index; a UE with no work left stays local."""
    n = len(work_left)
    local = np.asarray(num_actions, dtype=np.int64) - 1
    pts, chs = local.copy(), np.zeros(n, dtype=np.int64)
    pws = np.full(n, float(power_w))
    order = np.argsort(-np.asarray(work_left, dtype=np.float64), kind="stable")[:num_channels]
    for ch, i in enumerate(order):
        if work_left[i] > 0:
            pts[i], chs[i] = min(point, local[i] - 1), ch
    return pts, chs, pws


class RotatePolicy:
    """A dynamic rule (no learning): every frame the ``C`` UEs with the most local work left (tasks left
    x full local latency) offload, one per channel, at one partition point and power; the others run
    locally. Who offloads rotates as work drains, so no two UEs share a channel (no interference in
    Eq. 5) and every UE's queue shrinks faster than Local's. The point and power are searched like
    ``static-search``'s (best episode reward on the scenario, cached per cell); ``point`` / ``power_w``
    fix them instead."""

    name = "rotate"

    def __init__(self, point: int | None = None, power_w: float | None = None,
                 powers: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0), search_episodes: int | None = None,
                 seed: int = 0, max_frames: int = 4000):
        if point is not None and (isinstance(point, bool) or not isinstance(point, int) or point < 0):
            raise ValueError(f"rotate: point = {point!r} must be an integer >= 0")
        if power_w is not None and (isinstance(power_w, bool) or not isinstance(power_w, int | float)
                                    or not 0 < power_w < float("inf")):
            raise ValueError(f"rotate: power_w = {power_w!r} must be a number > 0 (W)")
        self.point, self.power_w = point, power_w
        self.powers, self.search_episodes, self.seed, self.max_frames = powers, search_episodes, seed, max_frames
        self._cache: dict[EnvConfig, tuple[int, float]] = {}
        self._choice: tuple[int, float] | None = None

    def reset(self, view: SystemView, seed: int | None = None) -> None:
        if self.point is not None and self.power_w is not None:
            self._choice = (int(self.point), float(self.power_w))
            return
        if view.config not in self._cache:
            self._cache[view.config] = self.search(view.config)
        self._choice = self._cache[view.config]

    def act(self, view: SystemView) -> Actions:
        if self._choice is None:
            raise RuntimeError(f"{self.name}: call reset(view) first")
        work = np.asarray(view.tasks_left, dtype=np.float64) * _local_latency(view)
        return rotate_actions(work, view.num_actions, view.config.num_channels, *self._choice)

    def search(self, config: EnvConfig) -> tuple[int, float]:
        """The ``(point, power_w)`` with the best mean episode reward on ``config`` (its own draws of
        cells, distances and tasks; ``search_episodes`` episodes, 1 on the test scenario)."""
        from mahppo.marl_env.parallel import CollabInferenceEnv

        sim = CollabInferenceEnv(config.with_updates(max_frames=None, render_mode=None))
        episodes = self.search_episodes or (1 if config.scenario == "test" else 4)
        points = range(int(np.max(sim.system.num_actions)) - 1)
        best, best_val = (0, config.p_max_w), -np.inf
        for b in points:
            for f in self.powers:
                choice = (b, f * config.p_max_w)

                def decide(sys_: Any, choice: tuple[int, float] = choice) -> Actions:
                    # l_scale: each UE's full local latency (the cell's own, when episodes draw their cells)
                    return rotate_actions(sys_.tasks_left * sys_.l_scale, sys_.num_actions, config.num_channels,
                                          *choice)

                val = np.mean([_episode_return(sim, decide, self.seed + e, self.max_frames) for e in range(episodes)])
                if val > best_val:
                    best, best_val = choice, float(val)
        self.best_reward = best_val
        return best


def _local_latency(view: SystemView) -> np.ndarray:
    """Each UE's full local inference latency per task (its Local point's front latency)."""
    lat = np.asarray(view.front_latency_s)
    return lat[np.arange(view.num_ues), np.asarray(view.num_actions) - 1]


def _reset(env: CollabInferenceEnv, seed: int) -> CollabInferenceEnv:
    env.reset(seed=seed)
    return env


def _episode_return(env: CollabInferenceEnv, decide: Callable[[Any], Actions], seed: int, max_frames: int,
                    floor: float = -np.inf) -> float:
    """Return of one episode whose frames are decided by ``decide(system)`` (a fixed choice or a rule);
    stops early once below ``floor`` (it only falls); ``-inf`` if the episode never finishes."""
    env.reset(seed=seed)
    sys_, cfg = env.system, env.config
    total = 0.0
    for _ in range(max_frames):
        sys_.set_actions(*decide(sys_))
        sys_.step()
        total += frame_reward(cfg.frame_s, cfg.beta, sys_.n, sys_.frame_completed, sys_.frame_energy)
        total += sys_.backlog_charge()  # a dynamic cell's horizon (0 otherwise)
        if sys_.episode_over or total < floor:
            return total
    return -np.inf  # never finishes: worst possible


def parse_fixed(spec: str) -> FixedPolicy:
    """``B,C,P`` for every UE, or ``B,C,P;B,C,P;...`` one per UE."""
    triples = []
    for part in spec.split(";"):
        fields = part.split(",")
        if len(fields) != 3:
            raise ValueError(f"policy fixed:{spec}: {part!r} must be B,C,P (point, channel, power)")
        try:
            triples.append((int(fields[0]), int(fields[1]), float(fields[2])))
        except ValueError:
            raise ValueError(f"policy fixed:{spec}: {part!r} must be integers B,C and a number P") from None
    return FixedPolicy(triples, name=f"fixed:{spec}")


def make_baseline(name: str) -> Policy:
    """Build a baseline by name: local, edge, random, greedy, static-search, rotate, maxweight, myopic,
    fixed:B,C,P[;...]."""
    if name.startswith("fixed:"):
        return parse_fixed(name[len("fixed:"):])
    table = {"local": LocalPolicy, "edge": EdgePolicy, "random": RandomPolicy, "greedy": GreedyPolicy,
             "static-search": StaticSearchPolicy, "rotate": RotatePolicy, "maxweight": MaxWeightPolicy,
             "myopic": MyopicPolicy}
    if name not in table:
        raise ValueError(f"policy = {name!r} is not a baseline ({', '.join(BASELINES)}, fixed:B,C,P)")
    return table[name]()
