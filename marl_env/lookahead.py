"""Decision-time lookahead: one step of policy improvement by rollouts on the cell's own simulator.

``Lookahead(base)`` wraps any policy (a trained MAHPPO policy, a baseline). Every frame it scores

- the base policy's decisions for the frame, and
- every single-UE deviation from them: another partition point (Sec. 4.3's ``b``), another channel ``c``,
  another transmit power from a grid (``powers`` x ``p_max``); channel and power only for a UE that sends,

by simulating the rest of the episode (to its end, or to the cell's ``max_frames`` cut) on a private env
of the same cell, restored to the real episode's state (``SystemView.snapshot``), with the base policy
deciding every later frame; it plays the best. The system of Sec. 3 is deterministic given the decisions
(path loss only, no fading: Eq. 5), so each rollout is the exact return (the sum of Eq. 12) the base
policy would then get, and the lookahead's episode return is never below the base policy's (rollout
policies improve on their base policy: Bertsekas, *Rollout Algorithms*; tested). Eq. 12's frame rewards
are all negative, so a rollout stops as soon as its sum falls below the best so far.

Why it is here: Eq. 12 divides a frame's cost by the tasks it completes (at least 0.8 per UE), so an
episode whose last frame completes only a few tasks loses as much as all its other frames together. A
policy learned by MAHPPO rotates the UEs well but does not plan that last frame from the ones before it;
the rollouts do (docs/results.md, "Decision-time lookahead").

A base policy that does not finish the episode within ``max_frames`` from some frame gets its own
decisions from then on, until ``reset`` (no rollout can be scored against it, and a policy that never
finishes would otherwise cost a ``max_frames`` rollout every frame).

``deviators`` prunes the search for large cells: only that many UEs deviate, those whose decision
matters most (the UEs the base decision has sending, which share the channels, then the UEs with the
most local work left, which set the makespan and the costly last frame); with at most ``deviators``
UEs (8 by default) every UE deviates, as before.

A time budget (``budget_s``, ``DEFAULT_BUDGET_S`` in ``mahppo evaluate --lookahead`` and in Serve, per frame)
and a cancel flag (``cancel``, a ``threading.Event``: Serve sets it when the client goes away) stop the
search: the frame then gets the base policy's own decisions, counted in ``fallbacks`` and said in
``last_fallback``. A budget makes the result depend on the machine's speed; ``budget_s=None`` has none.

``rounds`` repeats the search from the best decisions so far (improving one UE at a time) while it
improves. Cost: up to ``rounds (min(N, deviators) (B + 1 + C - 1 + len(powers)))`` rollouts per frame,
each to the end of the episode; all rollouts of a round advance together, with one batched decision per simulated frame
when the base policy has ``act_many`` (a trained policy). Measured time per frame: ``benchmarks/lookahead.py``.

**Sampled futures** (a cell with ``EnvConfig.dynamics``: arrivals, fading or mobility). The future is not
known, so each candidate is scored by the mean over ``samples`` (K, default ``SAMPLES`` = 4) sampled futures
of arrivals, gains and moves, drawn afresh every frame: every candidate sees the same K futures (common
random numbers: the simulator's dynamics reseeded with the same K seeds), so the comparison is between
decisions, not draws. Each rollout looks ``depth`` frames ahead (default ``DEPTH`` = 5, or to the episode's
end) and is then charged its backlog as at the horizon (``core.backlog_charge``); one round of deviations.
The current frame's gains are the observed ones; only later frames are sampled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from mahppo.marl_env.core import backlog_charge
from mahppo.marl_env.parallel import CollabInferenceEnv
from mahppo.marl_env.policies import Actions, Policy

if TYPE_CHECKING:
    from mahppo.marl_env.config import EnvConfig
    from mahppo.marl_env.view import SystemView

POWERS = (0.1, 0.3, 1.0)  # the power grid of the deviations, x p_max (rotate's best powers span 0.1-1 W)
MAX_FRAMES = 500  # a rollout not finished by then scores -inf (the test cell's Local takes 19 frames)
DEVIATORS = 8  # the most UEs that deviate per round (module doc): rollouts per frame bounded in N
DEFAULT_BUDGET_S = 2.0  # per frame (per Serve request): then the base policy's own decisions


class _Stop(Exception):
    """The search of one frame stopped (budget spent or cancelled); ``reason`` says which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
SAMPLES = 4  # sampled futures per candidate on a dynamic cell (module doc)
DEPTH = 5  # frames a sampled rollout looks ahead


class Lookahead:
    """The rollout policy of ``base`` (module doc): the base's decisions or the best single-UE deviation."""

    def __init__(self, base: Policy, powers: tuple[float, ...] = POWERS, rounds: int = 3,
                 max_frames: int = MAX_FRAMES, deviators: int | None = DEVIATORS,
                 budget_s: float | None = None, samples: int = SAMPLES, depth: int = DEPTH):
        if not powers or any(isinstance(q, bool) or not isinstance(q, int | float) or not 0 < q <= 1
                             for q in powers):
            raise ValueError(f"lookahead: powers = {powers!r} must be fractions of p_max in (0, 1]")
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
            raise ValueError(f"lookahead: max_frames = {max_frames!r} must be an integer >= 1")
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"lookahead: rounds = {rounds!r} must be an integer >= 1")
        if deviators is not None and (isinstance(deviators, bool) or not isinstance(deviators, int) or deviators < 1):
            raise ValueError(f"lookahead: deviators = {deviators!r} must be an integer >= 1 (or None: every UE)")
        self.deviators = deviators
        if budget_s is not None and (isinstance(budget_s, bool) or not isinstance(budget_s, int | float)
                                     or not 0 < budget_s < float("inf")):
            raise ValueError(f"lookahead: budget_s = {budget_s!r} must be a number of seconds > 0, or None")
        self.base, self.powers, self.rounds, self.max_frames = base, tuple(float(q) for q in powers), rounds, max_frames
        self.budget_s = budget_s
        self.cancel: Any = None  # a threading.Event: set, the current search stops (the client went away)
        self._deadline: float | None = None
        self.fallbacks = 0  # frames whose search was stopped (budget, cancel): the base's own decisions
        self.last_fallback: str | None = None  # why the last frame got the base's own decisions, or None
        for name, v in (("samples", samples), ("depth", depth)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"lookahead: {name} = {v!r} must be an integer >= 1")
        self.samples, self.depth = samples, depth
        self._rng = np.random.default_rng(0)
        self.name = f"{base.name}+lookahead"
        self._cell: EnvConfig | None = None  # the cell the simulators below are of
        self._sims: list[CollabInferenceEnv] = []  # one per rollout of a batch, reused frame to frame
        self._views: list[SystemView] = []
        self.frames = 0  # frames decided since reset
        self.rollouts = 0  # rollouts simulated since reset
        self.deviations = 0  # frames where a deviation beat the base's decisions
        self.gave_up = False  # the base did not finish within max_frames: its own decisions from then on

    def reset(self, view: SystemView, seed: int | None = None) -> None:
        self.base.reset(view, seed)
        cell = view.config.with_updates(render_mode=None)  # its max_frames too: rollouts end where the episode does
        if cell != self._cell:
            self._cell, self._sims, self._views = cell, [], []
        self.frames = self.rollouts = self.deviations = self.fallbacks = 0
        self.gave_up = False
        self.last_fallback = None
        self._rng = np.random.default_rng(seed)  # the sampled futures' seeds (a dynamic cell)

    @property
    def sampled(self) -> bool:
        """Whether the cell's future is random (arrivals, fading or mobility): sampled futures (module doc)."""
        d = self._cell.dynamics if self._cell is not None else None
        return bool(d and (d.arrivals or d.fading or d.mobility))

    def act(self, view: SystemView) -> Actions:
        if self._cell is None:
            raise RuntimeError(f"{self.name}: call reset(view) first")
        self._deadline = None if self.budget_s is None else time.monotonic() + self.budget_s
        base = tuple(np.array(a, copy=True) for a in self.base.act(view))
        self.frames += 1
        self.last_fallback = None
        if self.gave_up and not self.sampled:
            self.last_fallback = f"the base policy does not finish within {self.max_frames} frames"
            return base  # type: ignore[return-value]
        try:
            if self.sampled:
                return self._act_sampled(view, base)  # type: ignore[arg-type]
            return self._search(view, base)  # type: ignore[arg-type]
        except _Stop as stop:
            self.fallbacks += 1
            self.last_fallback = stop.reason
            return base  # type: ignore[return-value]

    def _search(self, view: SystemView, base: Actions) -> Actions:
        snap = view.snapshot()
        best, best_val = base, float(self.returns(snap, [base])[0])  # type: ignore[list-item]
        if not np.isfinite(best_val):  # the base does not finish from here: nothing to compare with
            self.gave_up = True
            self.last_fallback = f"the base policy does not finish within {self.max_frames} frames"
            return best  # type: ignore[return-value]
        for _ in range(self.rounds):  # from the best so far, again: improving one UE at a time
            start = best
            cands = list(self.candidates(view, start))  # type: ignore[arg-type]
            if not cands:
                break
            vals = self.returns(snap, cands, floor=best_val)
            j = int(np.argmax(vals))
            if vals[j] > best_val + 1e-9:
                best, best_val = cands[j], float(vals[j])
            if best is start:
                break
        self.deviations += best is not base
        return best  # type: ignore[return-value]

    def _act_sampled(self, view: SystemView, base: Actions) -> Actions:
        snap = view.snapshot()
        seeds = [int(x) for x in self._rng.integers(0, 2**63, size=self.samples)]
        cands = [base, *self.candidates(view, base)]
        vals = self.sampled_returns(snap, cands, seeds)
        j = int(np.argmax(vals))
        if vals[j] <= vals[0] + 1e-9:
            return base
        self.deviations += 1
        return cands[j]

    def sampled_returns(self, snap: dict, firsts: list[Actions], seeds: list[int]) -> np.ndarray:
        """Each first decision's mean return over the sampled futures ``seeds`` (the same for every candidate):
        that decision this frame, the base policy's for up to ``depth - 1`` more frames, then the backlog charge."""
        k = len(seeds)
        sims = self._pool(len(firsts) * k)
        actions: list[Actions] = []
        for j, first in enumerate(firsts):
            for s, seed in enumerate(seeds):
                sim = sims[j * k + s]
                sim.restore(snap)
                sim.system.reseed(seed)
                actions.append(first)
        self.rollouts += len(sims)
        totals = np.zeros(len(sims))
        live = list(range(len(sims)))
        for step in range(self.depth):
            self._check()
            still = []
            for r, action in zip(live, actions, strict=True):
                sys_ = sims[r].system
                totals[r] += sims[r].advance(*action)
                if not sys_.episode_over:
                    still.append(r)
            live = still
            if not live or step == self.depth - 1:
                break
            actions = self._decide([self._views[r] for r in live])
        for r in live:  # cut before the episode's end: charged as at the horizon
            s = sims[r].system
            totals[r] += _charge(s)
        return totals.reshape(len(firsts), k).mean(axis=1)

    def candidates(self, view: SystemView, base: Actions) -> Iterator[Actions]:
        """Every single-UE deviation from ``base`` (module doc), UE by UE, of the ``deviators`` UEs that matter
        most."""
        pts, chs, pws = base
        local = np.asarray(view.num_actions) - 1
        p_max = view.config.p_max_w
        for i in self.deviating(view, base):
            for b in range(int(local[i]) + 1):
                if b != pts[i]:
                    yield _with(base, i, point=b)
            if pts[i] == local[i]:
                continue  # a local UE sends nothing: its channel and power change nothing
            for c in range(view.config.num_channels):
                if c != chs[i]:
                    yield _with(base, i, channel=c)
            for q in self.powers:
                if abs(q * p_max - pws[i]) > 1e-6 * p_max:
                    yield _with(base, i, power=q * p_max)

    def deviating(self, view: SystemView, base: Actions) -> list[int]:
        """The UEs that deviate (module doc): all, or the ``deviators`` whose decision matters most: the ones
        ``base`` has sending, then by local work left (most first)."""
        n = view.num_ues
        if self.deviators is None or n <= self.deviators:
            return list(range(n))
        sending = np.asarray(base[0]) < np.asarray(view.num_actions) - 1
        order = np.lexsort((np.arange(n), -np.asarray(view.work_left_s()), ~sending))
        return sorted(int(i) for i in order[:self.deviators])

    def returns(self, snap: dict, firsts: list[Actions], floor: float = -np.inf) -> np.ndarray:
        """Each rollout's return from the snapshot: its first decisions this frame, the base policy's after
        (every rollout's frame decided in one ``act_many`` call when the base has one). A rollout stops once
        below ``floor`` or below a finished rollout (Eq. 12's rewards only lower a sum): it cannot win."""
        sims = self._pool(len(firsts))
        for sim in sims:
            sim.restore(snap)
        self.rollouts += len(firsts)
        totals = np.zeros(len(firsts))
        finished = np.zeros(len(firsts), dtype=bool)
        live, actions = list(range(len(firsts))), list(firsts)
        cut = self._cell.max_frames if self._cell is not None and self._cell.max_frames else None
        for _ in range(self.max_frames):
            self._check()
            still = []
            for j, action in zip(live, actions, strict=True):
                totals[j] += sims[j].advance(*action)
                if sims[j].system.episode_over or (cut is not None and sims[j].system.frame >= cut):
                    finished[j] = True
                    floor = max(floor, totals[j])
                else:
                    still.append(j)
            live = [j for j in still if totals[j] > floor]
            if not live:
                break
            actions = self._decide([self._views[j] for j in live])
        return np.where(finished | (totals <= floor), totals, -np.inf)

    def _check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Stop("cancelled")
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise _Stop(f"the lookahead's time budget of {self.budget_s:g} s was spent")

    def _decide(self, views: list[SystemView]) -> list[Actions]:
        many = getattr(self.base, "act_many", None)
        return many(views) if many is not None else [self.base.act(v) for v in views]

    def _pool(self, k: int) -> list[CollabInferenceEnv]:
        assert self._cell is not None
        while len(self._sims) < k:
            sim = CollabInferenceEnv(self._cell)
            self._sims.append(sim)
            self._views.append(sim.view())
        return self._sims[:k]


def _charge(system) -> float:
    cfg = system.config
    return backlog_charge(system.tasks_left, system.l_scale, system.local_energy_j, cfg.frame_s, cfg.beta)


def _with(base: Actions, i: int, point: int | None = None, channel: int | None = None,
          power: float | None = None) -> Actions:
    pts, chs, pws = (a.copy() for a in base)
    if point is not None:
        pts[i] = point
    if channel is not None:
        chs[i] = channel
    if power is not None:
        pws[i] = power
    return pts, chs, pws
