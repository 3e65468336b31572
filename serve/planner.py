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
        self._envs: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def _env(self, dnns: tuple[str, ...]) -> Any:
        from mahppo.marl_env.parallel import CollabInferenceEnv

        if dnns not in self._envs:
            self._envs[dnns] = CollabInferenceEnv(self.env, ue_specs=list(dnns))
            while len(self._envs) > MAX_CELLS:
                self._envs.popitem(last=False)
        self._envs.move_to_end(dnns)
        return self._envs[dnns]

    def decide(self, request: DecideRequest) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``plan``'s decisions without a time budget."""
        return self.plan(request, budget_s=None)[0]

    def plan(self, request: DecideRequest, budget_s: float | None = DEFAULT_BUDGET_S, cancel: Any = None,
             started: float | None = None) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], str | None]:
        """The next frame's decisions for the request's UEs, in request order (the request is already checked
        by the normaliser: ids, N, DNNs, ranges), and why they are the policy's own (``None``: the lookahead
        chose them). ``budget_s`` counts from ``started`` (``time.monotonic()`` at the request's arrival;
        default now); ``cancel``: a ``threading.Event`` that stops the search."""
        from mahppo.marl_env.observations import tokens_for
        from mahppo.marl_env.parallel import StateError

        if not request.deterministic:
            raise RequestError("deterministic", "false: the lookahead plays the policy's deterministic "
                               "decisions; send true (the default) with lookahead")
        ues = request.ues
        state = {name: [getattr(u, name) for u in ues] for name in STATE_FIELDS}
        tokens = tokens_for([u.ue_id for u in ues], np.asarray(state["distance_m"], dtype=np.float64))
        started = time.monotonic() if started is None else started
        with self._lock:
            left = None if budget_s is None else budget_s - (time.monotonic() - started)
            env = self._env(tuple(u.dnn or self.env.dnn for u in ues))
            env.reset(seed=0)
            try:
                env.load_state(**state, tokens=tokens)
            except StateError as exc:  # named as the request names it
                raise RequestError(f"ues[{exc.index}].{exc.field}", exc.message) from None
            view = env.view()
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
    same steps as the Serve app, with a batch of one."""
    inputs, pos = normalizer.inputs(request.ues)
    fallback = None
    if request.lookahead:
        actions, fallback = planner_for(policy).plan(request, budget_s=budget_s)
    else:
        (actions,) = act_on(policy, [inputs], request.deterministic)
    return decision_body(request.ues, pos, actions, policy.name, p_max_w, lookahead=request.lookahead,
                         fallback=fallback)
