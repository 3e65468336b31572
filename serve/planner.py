"""``"lookahead": true`` in ``/v1/decide``: a request's state pool made simulable, then the lookahead.

The request carries each UE's state at the end of a frame (tasks, front time and bits left, distance, DNN)
and, for a UE with a task in flight, that task's point and channel (``point_in_flight``,
``channel_in_flight``). ``CellPlanner`` loads that into a ``marl_env`` env of the cell
(``CollabInferenceEnv.load_state``, with the rank tie-break the policy alone gets from the server) and asks
``marl_env.lookahead.Lookahead`` around the served policy for the next frame's decisions: the policy's own or
a better single-UE deviation, by rollouts of the policy on that simulator (docs/results.md, "Decision-time
lookahead"). With the in-flight point and channel the simulated cell is the env's own state exactly
(tested against the env). The rollouts look at most ``PLAN_FRAMES`` frames ahead: a cell whose policy needs
longer to finish gets the policy's own decisions, which bounds what one request can cost; so does a time
budget per request (``DEFAULT_BUDGET_S`` from the request's arrival, queueing included) and a cancel flag
(the Serve replica sets it when the client goes away). Either way the reply carries the policy's own
decisions, ``"lookahead": false`` and ``lookahead_fallback`` saying why. Pure Python, no Ray: the Serve
replica runs it in a worker thread.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np

from mahppo.marl_env.lookahead import DEFAULT_BUDGET_S
from mahppo.serve.schema import (
    CellNormalizer,
    DecideRequest,
    RequestError,
    StateNormalizer,
    act_on,
    decision_body,
)

# a UE's state as the request gives it (``UEState``) and ``load_state`` takes it: the same names
STATE_FIELDS = ("tasks_left", "local_time_left_s", "bits_left", "point_in_flight", "channel_in_flight", "distance_m",
                "total_tasks", "fading")
MAX_CELLS = 16  # simulators kept per replica, one per list of DNNs (least recently used dropped)
# How far a request's rollouts may look (frames): the test cells finish in 5-20 frames; a cell that needs
# longer gets the policy's own decisions, so one request costs at most rounds x candidates x this many frames
PLAN_FRAMES = 100


class CellSimulator:
    """A request's state pool made simulable: a ``CollabInferenceEnv`` of ``cell`` in the pool's state
    (``load_state``, with the rank tie-break the policy alone gets from the server). One per decider; the
    caller holds ``lock`` from ``load`` until it is done with the view."""

    def __init__(self, cell: Any):
        self.cell = cell
        self._envs: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self.lock = threading.Lock()

    def _env(self, dnns: tuple[str, ...]) -> Any:
        from mahppo.marl_env.parallel import CollabInferenceEnv

        if dnns not in self._envs:
            own = not self.cell.varies and dnns == tuple(s.dnn for s in self.cell.specs)
            # the cell itself when the pool is its own UEs (a rule then sees the very config `evaluate` gives it)
            self._envs[dnns] = CollabInferenceEnv(self.cell) if own else CollabInferenceEnv(self.cell,
                                                                                               ue_specs=list(dnns))
            while len(self._envs) > MAX_CELLS:
                self._envs.popitem(last=False)
        self._envs.move_to_end(dnns)
        return self._envs[dnns]

    def load(self, request: DecideRequest) -> Any:
        """The ``SystemView`` of the cell in the request's state (UEs in request order); ``RequestError``
        naming ``ues[i].FIELD`` for a state the cell cannot be in. Call with ``lock`` held."""
        from mahppo.marl_env.observations import tokens_for
        from mahppo.marl_env.parallel import StateError

        ues = request.ues
        state = {name: [getattr(u, name) for u in ues] for name in STATE_FIELDS}
        tokens = tokens_for([u.ue_id for u in ues], np.asarray(state["distance_m"], dtype=np.float64))
        env = self._env(tuple(u.dnn or self.cell.dnn for u in ues))
        env.reset(seed=0)
        try:
            env.load_state(**state, tokens=tokens, frame=request.frame)
        except StateError as exc:  # named as the request names it
            raise RequestError(f"ues[{exc.index}].{exc.field}", exc.message) from None
        return env.view()


class CellPlanner:
    """The lookahead for one served (shared) policy; one request at a time (a lock)."""

    def __init__(self, policy: Any):
        from mahppo.marl_env.lookahead import Lookahead

        if not getattr(policy, "shared", False):
            raise RequestError("lookahead", "needs a shared policy (`mahppo train --actor shared`); this one has "
                               "one actor per UE")
        self.policy = policy
        # the served cell on the test scenario, the shared actor's observation, no episode cut
        self.env = policy.env.with_updates(scenario="test", obs_mode="agent", max_ues=policy.max_ues, max_frames=None)
        self.lookahead = Lookahead(policy, max_frames=PLAN_FRAMES)
        self.cells = CellSimulator(self.env)

    def decide(self, request: DecideRequest) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``plan``'s decisions without a time budget."""
        return self.plan(request, budget_s=None)[0]

    def plan(self, request: DecideRequest, budget_s: float | None = DEFAULT_BUDGET_S, cancel: Any = None,
             started: float | None = None) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], str | None]:
        """The next frame's decisions for the request's UEs, in request order (the request is already checked
        by the normaliser: ids, N, DNNs, ranges), and why they are the policy's own (``None``: the lookahead
        chose them). ``budget_s`` counts from ``started`` (``time.monotonic()`` at the request's arrival;
        default now); ``cancel``: a ``threading.Event`` that stops the search."""
        if not request.deterministic:
            raise RequestError("deterministic", "false: the lookahead plays the policy's deterministic "
                               "decisions; send true (the default) with lookahead")
        started = time.monotonic() if started is None else started
        with self.cells.lock:
            left = None if budget_s is None else budget_s - (time.monotonic() - started)
            view = self.cells.load(request)
            self.lookahead.reset(view)
            if left is not None and left <= 0:  # spent waiting for the lock
                left = 1e-9
            self.lookahead.budget_s, self.lookahead.cancel = left, cancel
            try:
                actions = self.lookahead.act(view)
            finally:
                self.lookahead.cancel = None
            fallback = self.lookahead.last_fallback
        if fallback is not None and fallback.startswith("the lookahead's time budget"):
            fallback = f"the lookahead's time budget of {budget_s:g} s from the request's arrival was spent"
        return actions, fallback


class ServedRule:
    """A classical decision-maker served by name (``mahppo serve --baseline NAME``): each request's state pool
    is loaded into a simulator of ``cell`` (``CellSimulator``, as for the lookahead) and the rule decides that
    cell as it decides the env in ``mahppo evaluate`` (``reset(view)`` then ``act(view)``; a rule's own search,
    e.g. ``rotate``'s point and power, is cached per cell and run once at start for the served cell). Any N up
    to ``max_ues``, any DNN of the profile file, like a shared policy; looks like one to the Serve app
    (``shared``, ``env``, ``max_ues``, ``name``) and to ``marl_env`` (``reset``/``act``: the lookahead runs
    around it)."""

    shared = True

    def __init__(self, name: str, cell: Any):
        from mahppo.marl_env.config import MAX_UES
        from mahppo.marl_env.parallel import CollabInferenceEnv
        from mahppo.marl_env.policies import make_baseline

        self.rule = make_baseline(name)
        self.name = name
        self.env = cell.validated()
        self.max_ues = self.env.max_ues or MAX_UES
        self.cells = CellSimulator(self.env)
        warm = CollabInferenceEnv(self.env)
        warm.reset(seed=0)
        self.rule.reset(warm.view())  # the rule's search for the served cell, before the first request

    def reset(self, view: Any, seed: int | None = None) -> None:
        self.rule.reset(view, seed)

    def act(self, view: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.rule.act(view)

    def decide(self, request: DecideRequest) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rule's decisions for the request's UEs, in request order (the request already checked by the
        normaliser)."""
        with self.cells.lock:
            view = self.cells.load(request)
            self.rule.reset(view)
            return tuple(np.asarray(a).copy() for a in self.rule.act(view))  # type: ignore[return-value]

    def model_info(self) -> dict[str, Any]:
        """``GET /v1/model`` for the rule: its name and the served cell."""
        cfg = self.env
        return {"policy_id": self.name, "rule": self.name, "algo": None, "actor": None, "num_ues": cfg.num_ues,
                "max_ues": self.max_ues, "num_channels": cfg.num_channels,
                "agents": [f"ue_{i}" for i in range(cfg.num_ues)], "dnn": [s.dnn for s in cfg.specs],
                "points_per_ue": [p.num_actions for p in cfg.profiles], "beta": cfg.beta, "p_max_w": cfg.p_max_w,
                "env_config": cfg.to_dict()}


BASELINE_PREFIX = "baseline:"  # a replica's source naming a rule: ``baseline:NAME``


def load_served(source: str, cell: dict[str, Any] | None = None) -> Any:
    """What a replica serves: ``baseline:NAME`` -> ``ServedRule`` on ``cell`` (``EnvConfig.to_dict()``; default
    the commands' default cell, the paper's test scenario), else the trained policy at ``source`` (a checkpoint
    path or model URI)."""
    if source.startswith(BASELINE_PREFIX):
        from mahppo.marl_env.config import EnvConfig

        return ServedRule(source[len(BASELINE_PREFIX):], EnvConfig.from_dict(cell or {"scenario": "test"}))
    from mahppo.algorithms.acting.policy import load_policy

    return load_policy(source)


_PLANNERS: weakref.WeakKeyDictionary[Any, CellPlanner] = weakref.WeakKeyDictionary()


def planner_for(policy: Any) -> CellPlanner:
    """The policy's planner, made on first use (one per policy object; the planner refers to its policy, so
    both stay for the life of the process: a replica serves one policy)."""
    planner = _PLANNERS.get(policy)
    if planner is None:
        planner = _PLANNERS[policy] = CellPlanner(policy)
    return planner


def decide(policy: Any, normalizer: StateNormalizer | CellNormalizer, request: DecideRequest,
           p_max_w: float, budget_s: float | None = DEFAULT_BUDGET_S) -> dict[str, Any]:
    """One state pool -> the ``/v1/decide`` reply, in process (the MLflow pyfunc model's ``predict``): the
    same steps as the Serve app, with a batch of one (``policy``: a trained policy or a ``ServedRule``)."""
    inputs, pos = normalizer.inputs(request.ues)
    fallback = None
    if request.lookahead:
        actions, fallback = planner_for(policy).plan(request, budget_s=budget_s)
    elif isinstance(policy, ServedRule):
        actions = policy.decide(request)
    else:
        (actions,) = act_on(policy, [inputs], request.deterministic)
    return decision_body(request.ues, pos, actions, policy.name, p_max_w, lookahead=request.lookahead,
                         fallback=fallback)
