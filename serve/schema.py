"""The HTTP API's bodies and the check-then-normalise step from a state pool to the network input.

Pure Python (pydantic + numpy): no Ray here, so the validation is unit-testable on its own. The
normalisation is ``marl_env.core.normalize_state``, the very function the env uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mahppo.marl_env.config import TEST_NUM_TASKS, EnvConfig
from mahppo.marl_env.core import normalize_state

MAX_UES = 10_000  # a hard cap on the list length, before the policy's own N is checked
MAX_COUNT = 10**9  # tasks_left / total_tasks
MAX_VALUE = 1e12  # seconds, bits, metres: anything larger is a client bug


class UEState(BaseModel):
    """One UE's raw state at the end of a frame (one entry of the state pool)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "ue_id": "ue_0", "tasks_left": 120, "local_time_left_s": 0.01, "bits_left": 50176,
        "distance_m": 50.0}]})

    ue_id: str = Field(description="the UE's id: ue_0 .. ue_{N-1} for a per-UE policy; any unique string "
                       "for a shared policy", max_length=64)
    dnn: str | None = Field(default=None, max_length=64,
                            description="the UE's DNN (a name in the policy's profile file); default: the DNN "
                            "the policy was trained with")
    tasks_left: int = Field(ge=0, le=MAX_COUNT, description="tasks the UE still has to finish (k)")
    local_time_left_s: float = Field(ge=0, le=MAX_VALUE, allow_inf_nan=False,
                                     description="time left of the current front part on the UE (l), seconds")
    bits_left: float = Field(ge=0, le=MAX_VALUE, allow_inf_nan=False,
                             description="bits of the current feature / input still to send (n)")
    distance_m: float = Field(ge=0, le=MAX_VALUE, allow_inf_nan=False,
                              description="distance to the edge server (d), metres")
    total_tasks: int = Field(default=TEST_NUM_TASKS, ge=1, le=MAX_COUNT,
                             description="the UE's task count at the start of its episode (K_n; k is "
                             f"normalised by it). Default {TEST_NUM_TASKS}, the test scenario's K")
    fading: float = Field(default=1.0, ge=0, le=MAX_VALUE, allow_inf_nan=False,
                          description="this frame's fading power gain h of the UE's channel (the gain of Eq. 5 is "
                          "d^-l h; mean 1 under Rayleigh fading). Default 1.0: no fading (the paper's static "
                          "channel)")
    point_in_flight: int | None = Field(default=None, ge=0, le=MAX_COUNT,
                                        description="with lookahead: the partition point the UE's task in flight "
                                        "runs with (the decision in force when it started); needed while "
                                        "local_time_left_s or bits_left > 0")
    channel_in_flight: int | None = Field(default=None, ge=0, le=MAX_COUNT,
                                          description="with lookahead: the channel the task in flight sends on; "
                                          "needed while it has a front part or bits left and does not run locally")


class DecideRequest(BaseModel):
    """The state pool: every UE of the cell, once (a shared policy takes any N up to its ``max_ues``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ues: list[UEState] = Field(min_length=1, max_length=MAX_UES)
    deterministic: bool = Field(default=True, description="true: the mode of each branch; false: sample")
    lookahead: bool = Field(default=False, description="true: the decision-time lookahead (a shared policy, "
                            "deterministic): rollouts of the policy on a simulator of this cell choose between its "
                            "decisions and every single-UE deviation (marl_env.lookahead); needs each busy UE's "
                            "point_in_flight and channel_in_flight")
    frame: int = Field(default=0, ge=0, le=MAX_COUNT, description="frames of the episode so far: on a cell with a "
                       "horizon (the dynamic scenario) the horizon's backlog charge comes after frame horizon - 1, "
                       "which a served rule (myopic) and the lookahead price; default 0")


class Decision(BaseModel):
    ue_id: str
    partition_point: int = Field(description="0: send the raw input; B_n + 1: run the whole DNN locally")
    channel: int
    power_w: float


class DecideResponse(BaseModel):
    decisions: list[Decision] = Field(description="one per UE, in the order of the request")
    policy_id: str
    lookahead: bool = Field(default=False, description="whether the lookahead chose these decisions")
    lookahead_fallback: str | None = Field(default=None, description="with lookahead requested: why these are "
                                           "the policy's own decisions (its time budget was spent, the request "
                                           "was cancelled, the cell needs more frames than the lookahead looks "
                                           "ahead); absent when the lookahead chose them")


class RequestError(ValueError):
    """A request that passed the schema but not the policy's checks; ``field`` names the culprit."""

    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


class StateNormalizer:
    """Checks a state pool against one policy's UEs and turns it into the global state ``[4N]``."""

    def __init__(self, agents: list[str], l_scale: np.ndarray, n_scale: np.ndarray, d_min_m: float,
                 d_max_m: float, max_bits: np.ndarray | None = None, max_time_s: np.ndarray | None = None):
        self.agents = list(agents)
        self.index = {a: i for i, a in enumerate(self.agents)}
        self.l_scale = np.asarray(l_scale, dtype=np.float64)
        self.n_scale = np.asarray(n_scale, dtype=np.float64)
        self.d_min_m = float(d_min_m)
        self.d_max_m = float(d_max_m)
        # the training range per UE (None: not checked): its largest feature or input, its longest front part
        self.max_bits = None if max_bits is None else np.asarray(max_bits, dtype=np.float64)
        self.max_time_s = None if max_time_s is None else np.asarray(max_time_s, dtype=np.float64)

    @classmethod
    def for_env(cls, agents: list[str], env: EnvConfig) -> StateNormalizer:
        """The scales of the cell the policy was trained on (its N, DNNs, profile, distances)."""
        from mahppo.marl_env.core import MECSystem

        system = MECSystem(env)
        if system.n != len(agents):
            raise ValueError(f"policy has {len(agents)} actors but its env config has {system.n} UEs")
        norm = cls(agents, system.l_scale, system.n_scale, system.config.d_min_m, system.config.d_max_m,
                   max_bits=system.bits2d.max(axis=1), max_time_s=system.lat2d.max(axis=1))
        norm.dnns = [s.dnn for s in system.config.specs]
        return norm

    dnns: list[str] | None = None

    def order(self, ues: list[UEState]) -> list[int]:
        """Position of each request entry in the policy's UE order; raises ``RequestError``."""
        n = len(self.agents)
        seen: dict[str, int] = {}
        pos = []
        for j, ue in enumerate(ues):
            if ue.ue_id not in self.index:
                raise RequestError(f"ues[{j}].ue_id", f"unknown UE {ue.ue_id!r} (this policy serves "
                                   f"{self.agents[0]} .. {self.agents[-1]})")
            if ue.ue_id in seen:
                raise RequestError(f"ues[{j}].ue_id", f"duplicate UE {ue.ue_id!r} (also ues[{seen[ue.ue_id]}])")
            seen[ue.ue_id] = j
            pos.append(self.index[ue.ue_id])
            if ue.dnn is not None and self.dnns is not None and ue.dnn != self.dnns[pos[-1]]:
                raise RequestError(f"ues[{j}].dnn", f"{ue.dnn!r}: this per-UE policy was trained with "
                                   f"{self.dnns[pos[-1]]!r} for {ue.ue_id} (a shared policy takes any DNN)")
        if len(ues) != n:
            missing = [a for a in self.agents if a not in seen]
            raise RequestError("ues", f"expected {n} UEs ({self.agents[0]} .. {self.agents[-1]}), got "
                               f"{len(ues)}; missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        return pos

    def state(self, ues: list[UEState]) -> tuple[np.ndarray, list[int]]:
        """The normalised global state (float32 ``[4N]``) of a state pool, and ``order(ues)``."""
        pos = self.order(ues)
        n = len(self.agents)
        raw = np.empty((5, n), dtype=np.float64)
        for k, (j, ue) in enumerate(zip(pos, ues, strict=True)):
            if ue.tasks_left > ue.total_tasks:
                raise RequestError(f"ues[{k}].tasks_left", f"{ue.tasks_left} must be <= total_tasks = "
                                   f"{ue.total_tasks} (the UE's task count at the start; default {TEST_NUM_TASKS})")
            raw[:, j] = (ue.tasks_left, ue.total_tasks, ue.local_time_left_s, ue.bits_left, ue.distance_m)
            check_training_range(k, ue, self.d_min_m, self.d_max_m,
                                 None if self.max_bits is None else float(self.max_bits[j]),
                                 None if self.max_time_s is None else float(self.max_time_s[j]))
        state = normalize_state(raw[0], raw[1], raw[2], raw[3], raw[4], self.l_scale, self.n_scale,
                                self.d_min_m, self.d_max_m)
        _check_finite(state, pos)
        return state, pos

    inputs = state


class CellNormalizer:
    """A shared policy's input for any state pool: every UE's agent-centric observation.

    Any ``ue_id`` strings (unique), any N up to ``max_ues``, each UE's DNN from its ``dnn`` field (a
    name in the policy's profile file; default the DNN it was trained with). The state features and
    the observation are ``marl_env``'s own functions, the very ones the env uses; a UE's rank token is
    its load rank in the pool (by local work left: ``tasks_left`` x its DNN's local latency), ties ranked
    by distance, then by its ``ue_id``'s hash (``marl_env.observations.tokens_for``).
    """

    def __init__(self, env: EnvConfig, max_ues: int):
        self.base = env  # the trained cell's channels, profile file, distances and default DNN
        self.max_ues = int(max_ues)
        self._dnn: dict[str, tuple[float, float, np.ndarray]] = {}
        self._range: dict[str, tuple[float, float]] = {}  # DNN -> (largest feature or input, longest front part)

    def _profile(self, j: int, name: str) -> tuple[float, float, np.ndarray]:
        if name not in self._dnn:
            from mahppo.marl_env.observations import dnn_descriptor
            from mahppo.marl_env.profiles import resolve_profile

            b = self.base
            try:
                prof = resolve_profile(name, b.profile_file)
                desc = dnn_descriptor(prof, b.frame_s, b.bandwidth_hz, b.p_max_w)
            except ValueError as exc:
                raise RequestError(f"ues[{j}].dnn", str(exc)) from None
            self._dnn[name] = (prof.local_latency_s, float(prof.bits[0]), desc)
            self._range[name] = (float(np.max(prof.bits)), float(np.max(prof.front_latency_s)))
        return self._dnn[name]

    def inputs(self, ues: list[UEState]) -> tuple[np.ndarray, list[int]]:
        """``[n, obs]`` observations (rows in request order) and positions ``0..n-1``."""
        from mahppo.marl_env.observations import agent_observations, tokens_for

        n = len(ues)
        if n > self.max_ues:
            raise RequestError("ues", f"{n} UEs: this policy decides at most max_ues = {self.max_ues} at once")
        seen: dict[str, int] = {}
        raw = np.empty((7, n), dtype=np.float64)
        fading = np.array([ue.fading for ue in ues], dtype=np.float64)
        desc = []
        for j, ue in enumerate(ues):
            if ue.ue_id in seen:
                raise RequestError(f"ues[{j}].ue_id", f"duplicate UE {ue.ue_id!r} (also ues[{seen[ue.ue_id]}])")
            seen[ue.ue_id] = j
            if ue.tasks_left > ue.total_tasks:
                raise RequestError(f"ues[{j}].tasks_left", f"{ue.tasks_left} must be <= total_tasks = "
                                   f"{ue.total_tasks} (the UE's task count at the start; default {TEST_NUM_TASKS})")
            l_scale, n_scale, d = self._profile(j, ue.dnn or self.base.dnn)
            check_training_range(j, ue, self.base.d_min_m, self.base.d_max_m, *self._range[ue.dnn or self.base.dnn])
            desc.append(d)
            raw[:, j] = (ue.tasks_left, ue.total_tasks, ue.local_time_left_s, ue.bits_left, ue.distance_m,
                         l_scale, n_scale)
        state = normalize_state(*raw, self.base.d_min_m, self.base.d_max_m)
        _check_finite(state, list(range(n)))
        tokens = tokens_for([ue.ue_id for ue in ues], raw[4])
        return agent_observations(state, tokens, np.stack(desc), raw[0] * raw[5], fading), list(range(n))


TOLERANCE = 1e-9  # relative: the env's own states sit exactly on the bounds


def _above(value: float, bound: float) -> bool:
    return value > bound * (1 + TOLERANCE)


def check_training_range(k: int, ue: UEState, d_min_m: float, d_max_m: float, max_bits: float | None,
                         max_time_s: float | None) -> None:
    """422 (``RequestError`` naming ``ues[k].FIELD``) for a state outside what the policy was trained on:
    a distance outside ``[d_min, d_max]``, more bits left than the largest feature or input the UE's DNN
    sends, more front-part time left than its longest front part. Not clamped: a decision for a state
    the policy never saw is a guess, and the caller should know."""
    d = ue.distance_m
    if d < d_min_m * (1 - TOLERANCE) or _above(d, d_max_m):
        raise RequestError(f"ues[{k}].distance_m", f"{d:g} m is outside [{d_min_m:g}, {d_max_m:g}] m, the "
                           "distances the policy was trained on")
    if max_bits is not None and _above(ue.bits_left, max_bits):
        raise RequestError(f"ues[{k}].bits_left", f"{ue.bits_left:g} is above {max_bits:g} bits, the largest "
                           f"feature or input {ue.ue_id} sends")
    if max_time_s is not None and _above(ue.local_time_left_s, max_time_s):
        raise RequestError(f"ues[{k}].local_time_left_s", f"{ue.local_time_left_s:g} s is above {max_time_s:g} s, "
                           f"the longest front part {ue.ue_id} runs")


def _check_finite(state: np.ndarray, pos: list[int]) -> None:
    if not np.all(np.isfinite(state)):
        bad = int(np.argmin(np.isfinite(state)))
        field = ("tasks_left", "local_time_left_s", "bits_left", "distance_m")[bad % 4]
        raise RequestError(f"ues[{pos.index(bad // 4)}].{field}", "too large for the policy's input")


def normalizer_for(policy: Any) -> StateNormalizer | CellNormalizer:
    """The request -> network-input step of a ``TrainedPolicy`` (per-UE or shared)."""
    if getattr(policy, "shared", False):
        return CellNormalizer(policy.env, policy.max_ues)
    return StateNormalizer.for_env(policy.agents, policy.env)


def act_on(policy: Any, inputs: list[np.ndarray], deterministic: bool) -> list[tuple[np.ndarray, ...]]:
    """One forward pass for several requests' network inputs (``normalizer.inputs``), one mode: per-UE
    policies stack the global states; a shared policy concatenates every request's UE rows. Returns each
    request's ``(points, channels, powers)``."""
    if getattr(policy, "shared", False):
        from mahppo.marl_env.observations import stamp_frames

        pts, chs, pws = policy.act_batch(stamp_frames(inputs), deterministic=deterministic)
        bounds = np.cumsum([0, *(len(x) for x in inputs)])
        return [(pts[a:b, 0], chs[a:b, 0], pws[a:b, 0]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    pts, chs, pws = policy.act_batch(np.stack(inputs), deterministic=deterministic)
    return [(pts[r], chs[r], pws[r]) for r in range(len(inputs))]


def decision_body(ues: list[UEState], pos: list[int], actions: tuple[np.ndarray, ...], policy_id: str,
                  p_max_w: float, lookahead: bool = False, fallback: str | None = None) -> dict[str, Any]:
    """The ``/v1/decide`` reply (``DecideResponse``'s shape) from one state pool's actions (indexed by
    ``pos``); powers as the UE applies them (the simulator's clip). A non-finite power is the policy's
    fault (500), never the request's."""
    from mahppo.marl_env.core import clip_power

    pts, chs, pws = actions
    if not np.all(np.isfinite(pws)):
        raise RequestError("policy", f"{policy_id} produced a non-finite power", status=500)
    pws = clip_power(pws, p_max_w)
    body = {"decisions": [{"ue_id": ue.ue_id, "partition_point": int(pts[p]), "channel": int(chs[p]),
                           "power_w": float(pws[p])} for ue, p in zip(ues, pos, strict=True)],
            "policy_id": policy_id, "lookahead": lookahead and fallback is None}
    if lookahead and fallback is not None:
        body["lookahead_fallback"] = f"{fallback}: the policy's own decisions"
    return body


def format_loc(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "ues", 0, "tasks_left")`` -> ``"ues[0].tasks_left"``."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "body"


def parse_request(body: str | bytes | dict[str, Any]) -> DecideRequest:
    """A ``/v1/decide`` body checked as the server checks it (the same JSON-mode validation of
    ``DecideRequest``: unknown keys, strings for booleans and NaN refused, nesting bounded), for every
    entry point that is not the server (``mahppo query``, the MLflow model). ``RequestError`` naming the
    first bad field, with the server's message (its 422; 400 for a body that is not JSON). A dict is
    never changed."""
    import json

    from pydantic import ValidationError

    if isinstance(body, dict):
        try:
            body = json.dumps(body, allow_nan=True)
        except (TypeError, ValueError, RecursionError) as exc:
            raise RequestError("body", f"not JSON-serialisable ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200]})", status=400) from None
    elif not isinstance(body, str | bytes):
        raise RequestError("body", f"expected a JSON object, got {type(body).__name__}", status=400)
    try:
        return DecideRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            raise RequestError("body", f"not valid JSON ({first.get('ctx', {}).get('error', first['msg'])})",
                               status=400) from None
        raise RequestError(format_loc(first.get("loc", ())), str(first.get("msg", "invalid"))) from None
