"""The edge decision-maker as a Ray Serve application (FastAPI ingress, OpenAPI docs at ``/docs``).

``build_app`` is the application builder that ``serve run``, ``serve deploy serve/config.yaml`` and
``mahppo serve`` use::

    serve run mahppo.serve.app:build_app checkpoint=runs/mahppo-n3-seed0

One replica holds the per-UE actor networks (no critic). Requests are batched with ``@serve.batch``:
the global states of up to ``max_batch_size`` concurrent requests go through each actor in one
forward pass (``TrainedPolicy.act_batch``).
"""

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve
from ray.serve import Application
from starlette.exceptions import HTTPException as StarletteHTTPException

from mahppo.marl_env.lookahead import DEFAULT_BUDGET_S
from mahppo.serve.docs import docs_page
from mahppo.serve.guards import (
    DEFAULT_MAX_CONCURRENT_LOOKAHEAD,
    ApiKeyMiddleware,
    LookaheadGate,
    api_key_file,
    load_api_key,
    policy_problem,
)
from mahppo.serve.planner import BASELINE_PREFIX, ServedRule, load_served, planner_for
from mahppo.serve.schema import (
    DecideRequest,
    DecideResponse,
    RequestError,
    act_on,
    decision_body,
    format_loc,
    normalizer_for,
)

DEPLOYMENT_NAME = "DecisionMaker"
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_BATCH_WAIT_S = 0.001
DEFAULT_READ_TIMEOUT_S = 10.0  # the whole body must arrive within this (stalled clients get 408)
# Replica slots (Serve's max_ongoing_requests) and how many of them decisions may take: the rest stay
# free for /healthz and /v1/model however busy the replica is (decisions beyond get 503 + Retry-After).
MAX_ONGOING_REQUESTS = 256
DEFAULT_MAX_CONCURRENT_DECISIONS = 224

app = FastAPI(
    title="mahppo edge decision-maker",
    version="1",
    description="Per-frame decisions (partition point, channel, transmit power) for every UE of a cell, "
    "from a trained MAHPPO policy. POST the state pool to /v1/decide.",
    docs_url=None,  # FastAPI's pages load their JavaScript from a CDN: /docs is served locally below
    redoc_url=None,
)
app.state.max_body_bytes = DEFAULT_MAX_BODY_BYTES
app.state.read_timeout_s = DEFAULT_READ_TIMEOUT_S
app.state.api_key = None


@app.get("/docs", include_in_schema=False)
async def _docs() -> HTMLResponse:
    """The API documentation, self-contained (no CDN; works on an offline edge server)."""
    return HTMLResponse(docs_page(app.title))


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"body: request body exceeds the limit of {limit} bytes")


class _Busy(StarletteHTTPException):
    def __init__(self, message: str, retry_after_s: int):
        super().__init__(503, f"request: {message}", headers={"retry-after": str(retry_after_s)})


def _busy(message: str, retry_after_s: int) -> JSONResponse:
    response = _error(503, "request", message)
    response.headers["retry-after"] = str(retry_after_s)
    return response


class _BodyTooSlow(StarletteHTTPException):
    def __init__(self, timeout_s: float):
        super().__init__(408, f"body: the request body did not arrive within {timeout_s:g} s",
                         headers={"connection": "close"})


def _error(status: int, field: str, message: str, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": f"{field}: {message}", "field": field}
    body["errors"] = errors or [{"field": field, "message": message}]
    return JSONResponse(status_code=status, content=body)


class BodyLimitMiddleware:
    """ASGI middleware: 413 for a body over ``state.max_body_bytes``, declared or streamed; 408 when the
    whole body has not arrived ``state.read_timeout_s`` after the request reached the replica (a stalled
    client must not hold a replica slot)."""

    def __init__(self, inner: Any, state: Any):
        self.inner = inner
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        limit = int(self.state.max_body_bytes)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit or declared < 0:
                    msg = f"request body exceeds the limit of {limit} bytes" if declared > limit \
                        else "invalid Content-Length"
                    await _error(413 if declared > limit else 400, "body", msg)(scope, receive, send)
                    return
        seen = 0
        timeout_s = float(getattr(self.state, "read_timeout_s", DEFAULT_READ_TIMEOUT_S))
        deadline = time.monotonic() + timeout_s
        body_done = False

        async def limited_receive() -> dict:
            nonlocal seen, body_done
            if body_done:  # after the body only a disconnect can come: no deadline on waiting for it
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                raise _BodyTooSlow(timeout_s) from None
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(limit)
            return message

        await self.inner(scope, limited_receive, send)


app.add_middleware(BodyLimitMiddleware, state=app.state)
app.add_middleware(ApiKeyMiddleware, state=app.state)  # added last: runs first, before any body is read


@app.exception_handler(RequestValidationError)
async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for e in exc.errors():
        field = format_loc(e.get("loc", ()))
        msg = str(e.get("msg", "invalid"))
        if e.get("type") == "json_invalid":
            return _error(400, "body", f"not valid JSON ({e.get('ctx', {}).get('error', msg)})")
        errors.append({"field": field, "message": msg, "type": e.get("type")})
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return _error(422, first["field"], first["message"], errors)


@app.exception_handler(RequestError)
async def _on_request_error(request: Request, exc: RequestError) -> JSONResponse:
    return _error(exc.status, exc.field, exc.message)


@app.exception_handler(StarletteHTTPException)
async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = str(exc.detail)
    field, _, message = detail.partition(": ") if ": " in detail else ("request", "", detail)
    response = _error(exc.status_code, field, message or detail)
    response.headers.update(exc.headers or {})
    return response


def _rss_bytes() -> int:
    """Resident memory of this process (Linux ``/proc``; else the peak from ``getrusage``)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _model_info(policy: Any) -> dict[str, Any]:
    if isinstance(policy, ServedRule):
        return policy.model_info()
    cfg = policy.env
    meta = policy.meta
    experiment = meta.get("experiment", {})
    return {
        "policy_id": policy.name,
        "algo": experiment.get("run", {}).get("algo"),
        "actor": experiment.get("algo", {}).get("actor"),
        "num_ues": len(policy.agents) if not policy.shared else cfg.num_ues,
        "max_ues": policy.max_ues,
        "num_channels": cfg.num_channels,
        "agents": policy.agents if not policy.shared else [f"ue_{i}" for i in range(cfg.num_ues)],
        "dnn": [s.dnn for s in cfg.specs],
        "points_per_ue": [p.num_actions for p in cfg.profiles],
        "beta": cfg.beta,
        "p_max_w": cfg.p_max_w,
        "trained_at": meta.get("trained_at"),
        "iteration": meta.get("iteration"),
        "env_steps": meta.get("env_steps"),
        "env_config": cfg.to_dict(),
        "experiment": experiment,
    }


# Per-request access logs are written (and flushed) by the replica and by the proxy; they halve the
# throughput on 2 cores. Pass this to serve.start / serve.run (config.yaml: `logging_config`).
QUIET_LOGGING = {"enable_access_log": False, "log_level": "WARNING"}


@serve.deployment(name=DEPLOYMENT_NAME, max_ongoing_requests=MAX_ONGOING_REQUESTS, ray_actor_options={"num_cpus": 1},
                  max_constructor_retry_count=2)  # a bad checkpoint fails the same way every time
@serve.ingress(app)
class DecisionMaker:
    """One replica: the policy's actors, the env's state scales and a request batcher."""

    def __init__(self, source: str, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_S,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, tracking_uri: str | None = None,
                 read_timeout_s: float = DEFAULT_READ_TIMEOUT_S, api_key_file: str | None = None,
                 max_concurrent_decisions: int = DEFAULT_MAX_CONCURRENT_DECISIONS,
                 max_concurrent_lookahead: int = DEFAULT_MAX_CONCURRENT_LOOKAHEAD,
                 lookahead_budget_s: float = DEFAULT_BUDGET_S, cell: dict[str, Any] | None = None):
        os.environ["OMP_NUM_THREADS"] = "1"
        if tracking_uri:
            os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
        import torch

        torch.set_num_threads(1)
        self.policy = load_served(source, cell)  # a trained policy, or a rule on `cell` (baseline:NAME)
        self.rule = isinstance(self.policy, ServedRule)
        self.normalizer = normalizer_for(self.policy)
        self.model_info = _model_info(self.policy)
        self.problem = None if self.rule else policy_problem(self.policy, self.normalizer,
                                                             self.model_info["agents"])  # None: finite
        app.state.max_body_bytes = int(max_body_bytes)
        app.state.read_timeout_s = float(read_timeout_s)
        app.state.api_key = load_api_key(api_key_file) if api_key_file is not None else None
        self.max_concurrent_decisions = int(max_concurrent_decisions)
        self.deciding = 0
        self.rejected = 0
        self.lookahead_gate = LookaheadGate(max_concurrent_lookahead, lookahead_budget_s)
        self._act.set_max_batch_size(int(max_batch_size))
        self._act.set_batch_wait_timeout_s(float(batch_wait_timeout_s))
        self.max_batch_size = int(max_batch_size)
        self.requests = 0
        self.batches = 0
        self.started = time.time()

    @app.get("/healthz", responses={503: {"description": "the policy's outputs are not finite (`problem`)"}})
    async def healthz(self) -> Response:
        """Health (503 when the policy cannot give finite decisions), plus counters: requests decided,
        forward batches run, decisions in flight and turned away, lookahead requests (in flight until their
        worker stops, answered, fallen back to the policy's own decisions, cancelled, turned away), the
        replica's CPU time and RSS."""
        body = {"status": "unhealthy" if self.problem else "ok", "policy_id": self.policy.name,
                "requests": self.requests, "batches": self.batches, "max_batch_size": self.max_batch_size,
                "deciding": self.deciding, "rejected": self.rejected, "lookahead": self.lookahead_gate.health(),
                "uptime_s": round(time.time() - self.started, 3), "cpu_s": time.process_time(),
                "rss_bytes": _rss_bytes()}
        if self.problem:
            body["problem"] = self.problem
        return JSONResponse(status_code=503 if self.problem else 200, content=body)

    @app.get("/v1/model")
    async def model(self) -> dict[str, Any]:
        """What is served: policy id, N, C, DNN and partition points per UE, beta, when trained."""
        return self.model_info

    @app.post("/v1/decide", response_model=DecideResponse, responses={
        400: {"description": "body is not JSON"}, 413: {"description": "body too large"},
        422: {"description": "a field is missing, of the wrong type, out of range, or the UEs do not "
              "match the policy's; `field` names it"}})
    async def decide(self, request: DecideRequest) -> Response:
        """The next frame's decision for every UE of the state pool."""
        started = time.monotonic()
        if request.lookahead:  # a full lookahead gate turns it away before any work on the state
            self._lookahead_admissible()
        state, pos = self.normalizer.inputs(request.ues)
        fallback = None
        if request.lookahead:
            pts, chs, pws, fallback = await self._lookahead(request, started)  # never a decision slot
        else:
            if self.deciding >= self.max_concurrent_decisions:  # keep slots free for /healthz
                self.rejected += 1
                return _busy(f"the replica is deciding {self.deciding} requests, its limit; retry", 1)
            self.deciding += 1
            try:
                if self.rule:  # the rule on a simulator of the cell, off the event loop
                    pts, chs, pws = await asyncio.to_thread(self.policy.decide, request)
                else:
                    pts, chs, pws = await self._act((state, request.deterministic))
            finally:
                self.deciding -= 1
        self.requests += 1
        if not np.all(np.isfinite(pws)):  # a broken checkpoint, never the request's fault
            self.problem = self.problem or f"non-finite transmit power for a request (policy {self.policy.name})"
        body = decision_body(request.ues, pos, (pts, chs, pws), self.policy.name, self.model_info["p_max_w"],
                             lookahead=request.lookahead, fallback=fallback)
        # already the shape of DecideResponse (the documented schema): skip re-validating it
        return Response(json.dumps(body).encode(), media_type="application/json")

    async def _lookahead(self, request: DecideRequest, started: float) -> tuple[Any, Any, Any, str | None]:
        """The lookahead's decisions in a worker thread, admitted by ``lookahead_gate`` (else ``_Busy``: 503 +
        Retry-After); within the gate's time budget from ``started``; stopped (cancel flag) when the client
        goes away (Serve cancels this coroutine); counted in flight until the worker has stopped."""
        planner = planner_for(self.policy)  # 422 for a per-UE policy
        gate = self.lookahead_gate
        if not gate.try_enter():
            self._lookahead_admissible(full=True)
        cancel = threading.Event()

        def work() -> tuple[Any, str | None]:
            fallback = None
            try:
                actions, fallback = planner.plan(request, budget_s=gate.budget_s, cancel=cancel, started=started)
                return actions, fallback
            finally:  # only now does it leave the gate: a cancelled request counts until its worker stops
                gate.leave(fallback, cancelled=cancel.is_set())

        try:
            (pts, chs, pws), fallback = await asyncio.to_thread(work)
        except asyncio.CancelledError:
            cancel.set()  # the client went away: the worker stops at its next simulated frame
            raise
        return pts, chs, pws, fallback

    def _lookahead_admissible(self, full: bool = False) -> None:
        """422 for a per-UE policy or when the lookahead is off; 503 + Retry-After when the gate is full
        (``full``: it just was)."""
        planner_for(self.policy)  # 422 for a per-UE policy (made once, then cached)
        gate = self.lookahead_gate
        if gate.limit == 0:
            raise RequestError("lookahead", "true: the lookahead is off on this server (max_concurrent_lookahead = 0)")
        if full or gate.in_flight >= gate.limit:
            if not full:
                gate.reject()
            raise _Busy(f"lookahead: {gate.in_flight} lookahead requests in flight, the replica's limit "
                        f"(plain decisions are not limited by it); retry", gate.retry_after_s)

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S)
    async def _act(self, items: list[tuple[np.ndarray, bool]]) -> list[tuple[np.ndarray, ...]]:
        """One forward for every request of the batch (two if modes are mixed): per-UE policies stack
        the global states; a shared policy concatenates every request's UE rows."""
        out: list[Any] = [None] * len(items)
        for mode in (True, False):
            idx = [i for i, (_, det) in enumerate(items) if det is mode]
            if not idx:
                continue
            for i, actions in zip(idx, act_on(self.policy, [items[i][0] for i in idx], mode), strict=True):
                out[i] = actions
            self.batches += 1
        return out

    def rss_bytes(self) -> int:
        """For a ``DeploymentHandle`` caller (the load benchmark)."""
        return _rss_bytes()


class AppArgs(BaseModel):
    """Arguments of ``build_app`` (``args:`` in serve/config.yaml, ``key=value`` after ``serve run``)."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(default=None, description="a `mahppo train --out` dir or a checkpoint dir")
    model_uri: str | None = Field(default=None, description="an MLflow URI: models:/NAME/VER, runs:/ID/checkpoint")
    baseline: str | None = Field(default=None, description="serve a classical rule by name instead of a trained "
                                 "policy (rotate, maxweight, myopic, static-search, local, ...) on `env`'s cell")
    env: dict[str, Any] | None = Field(default=None, description="with baseline: the cell (EnvConfig.to_dict(); "
                                       "default the test scenario's cell, as every command's)")
    max_batch_size: int = Field(default=DEFAULT_MAX_BATCH_SIZE, ge=1, le=1024)
    batch_wait_timeout_s: float = Field(default=DEFAULT_BATCH_WAIT_S, ge=0, le=1)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    read_timeout_s: float = Field(default=DEFAULT_READ_TIMEOUT_S, gt=0, le=3600,
                                  description="the request body must arrive within this (else 408)")
    api_key_file: str | None = Field(default=None, description="a file holding the bearer key every route but "
                                     "/healthz requires (default $MAHPPO_API_KEY_FILE; an empty path or file is an "
                                     "error: no_auth is the one way to serve without a key)")
    no_auth: bool = Field(default=False, description="serve without a key even when $MAHPPO_API_KEY_FILE is set")
    max_concurrent_decisions: int = Field(default=DEFAULT_MAX_CONCURRENT_DECISIONS, ge=1, description="decisions "
                                          "in flight per replica (keep below max_ongoing_requests; beyond: 503)")
    max_concurrent_lookahead: int = Field(default=DEFAULT_MAX_CONCURRENT_LOOKAHEAD, ge=0, le=64,
                                          description="lookahead requests in flight per replica, apart from the "
                                          "decisions' slots (beyond: 503 + Retry-After; 0: lookahead off)")
    lookahead_budget_s: float = Field(default=DEFAULT_BUDGET_S, gt=0, le=60, description="a lookahead request's "
                                      "time from its arrival; then the policy's own decisions, marked so")
    tracking_uri: str | None = Field(default=None, description="MLflow tracking URI for model_uri")
    num_replicas: int | None = Field(default=None, ge=1, description="default 1 (or the config file's)")

    @model_validator(mode="after")
    def _one_source(self) -> "AppArgs":
        if sum(x is not None for x in (self.checkpoint, self.model_uri, self.baseline)) != 1:
            raise ValueError("give exactly one of checkpoint, model_uri or baseline")
        if self.env is not None and self.baseline is None:
            raise ValueError("env is the cell of a served baseline: give it with baseline only")
        return self


def resolve_source(args: AppArgs) -> tuple[str, str | None]:
    """The policy source as the replica loads it (absolute path, URI or ``baseline:NAME``) and the tracking URI."""
    if args.baseline is not None:
        from mahppo.marl_env.policies import make_baseline

        make_baseline(args.baseline)  # an unknown name fails here, not in the replica
        return BASELINE_PREFIX + args.baseline, None
    if args.checkpoint is not None:
        from mahppo.algorithms.acting.policy import find_checkpoint

        return str(find_checkpoint(Path(args.checkpoint).expanduser().resolve())), None
    from mahppo.algorithms.runs.tracking import tracking_uri

    uri = tracking_uri(args.tracking_uri)
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri[len(prefix):]).resolve())
    return str(args.model_uri), uri


def build_app(args: AppArgs | dict[str, Any]) -> Application:
    """The application builder (``import_path: mahppo.serve.app:build_app``)."""
    if not isinstance(args, AppArgs):
        args = AppArgs.model_validate(args)
    source, tracking = resolve_source(args)
    key_file = api_key_file(args.api_key_file, args.no_auth)
    if key_file is not None:
        load_api_key(key_file)  # a bad or empty key file (or path) fails here, not in the replica
    deployment = DecisionMaker if args.num_replicas is None else DecisionMaker.options(num_replicas=args.num_replicas)
    return deployment.bind(source, max_batch_size=args.max_batch_size,
                           batch_wait_timeout_s=args.batch_wait_timeout_s,
                           max_body_bytes=args.max_body_bytes, tracking_uri=tracking,
                           read_timeout_s=args.read_timeout_s, api_key_file=key_file,
                           max_concurrent_decisions=args.max_concurrent_decisions,
                           max_concurrent_lookahead=args.max_concurrent_lookahead,
                           lookahead_budget_s=args.lookahead_budget_s, cell=args.env)
