"""serve/ hardening without Ray: read deadline, bearer key, training range, health probe, proxy buffer."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request

from mahppo.marl_env.config import EnvConfig
from mahppo.serve.schema import DecideRequest, RequestError, StateNormalizer

pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
ROOT = Path(__file__).resolve().parents[2]
AGENTS = ["ue_0", "ue_1", "ue_2"]
ENV = EnvConfig.from_kwargs(num_ues=3, num_channels=2, dnn="resnet18", beta=0.47)
KEY = "k" * 12 + "-test-key-0123"


def untrained_checkpoint(out: Path, num_ues: int = 3, nan: bool = False) -> Path:
    """Freshly initialised per-UE actors of the trained shape, optionally NaN."""
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.checkpoints import write_untrained_checkpoint

    ckpt = write_untrained_checkpoint(Experiment().with_flat({"num_ues": num_ues, "actor": "per-ue"}),
                                      out / f"untrained-n{num_ues}")
    if not nan:
        return ckpt
    import torch

    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.algorithms.runs.checkpoints import write_acting_checkpoint

    policy = load_policy(ckpt)
    with torch.no_grad():
        for module in policy.modules.values():
            for p in module.parameters():
                p.fill_(float("nan"))
    meta = {k: v for k, v in policy.meta.items() if k != "checkpoint"}
    return write_acting_checkpoint(policy.modules, out / "nan-weights", meta)


def broken_checkpoint(out: Path) -> Path:
    """A checkpoint whose sidecar is there but whose weights are gone."""
    import shutil

    from mahppo.algorithms.runs.checkpoints import EXPORT_DIR

    ckpt = untrained_checkpoint(out / "broken")
    shutil.rmtree(ckpt / EXPORT_DIR)
    return ckpt


def _app(**state) -> FastAPI:
    from starlette.exceptions import HTTPException

    from mahppo.serve.app import BodyLimitMiddleware, _on_http_error
    from mahppo.serve.guards import ApiKeyMiddleware

    app = FastAPI()
    app.add_exception_handler(HTTPException, _on_http_error)  # as the served app answers errors
    app.state.max_body_bytes = 1000
    app.state.api_key = None
    for k, v in state.items():
        setattr(app.state, k, v)

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"n": len(await request.body())}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    app.add_middleware(BodyLimitMiddleware, state=app.state)
    app.add_middleware(ApiKeyMiddleware, state=app.state)
    return app


def _run(app: FastAPI, fn):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await fn(c)

    return asyncio.run(go())


def test_a_body_that_stalls_gets_408_within_the_read_timeout():
    app = _app(read_timeout_s=0.3)

    async def stalled():
        yield b"{"
        await asyncio.sleep(5)
        yield b"}"

    async def fn(c):
        t0 = asyncio.get_running_loop().time()
        slow = await c.post("/echo", content=stalled())
        return slow, asyncio.get_running_loop().time() - t0, await c.post("/echo", content=b"{}")

    slow, took, after = _run(app, fn)
    assert slow.status_code == 408 and slow.json()["field"] == "body", slow.text
    assert slow.headers["connection"] == "close"
    assert 0.25 < took < 2
    assert after.json() == {"n": 2}


def test_bearer_key_on_every_route_but_healthz():
    app = _app(api_key=KEY)

    async def fn(c):
        return [await c.post("/echo", content=b"{}"),
                await c.post("/echo", content=b"{}", headers={"Authorization": "Bearer wrong"}),
                await c.post("/echo", content=b"{}", headers={"Authorization": f"Basic {KEY}"}),
                await c.post("/echo", content=b"{}", headers={"Authorization": f"Bearer {KEY}"}),
                await c.get("/healthz"), await c.get("/docs")]

    missing, wrong, basic, good, health, docs = _run(app, fn)
    for r in (missing, wrong, basic, docs):
        assert r.status_code == 401 and r.json()["field"] == "authorization", r.text
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert good.json() == {"n": 2} and health.status_code == 200


def test_route_path_strips_the_route_prefix():
    from mahppo.serve.guards import route_path

    assert route_path({"path": "/cell7/healthz", "root_path": "/cell7"}) == "/healthz"
    assert route_path({"path": "/cell7", "root_path": "/cell7"}) == "/"
    assert route_path({"path": "/healthz", "root_path": ""}) == "/healthz"


@pytest.mark.parametrize("text, match", [
    ("short", "at least 16"), ("has a space inside the key", "without spaces"), ("", "at least 16")])
def test_bad_key_files_are_named(tmp_path, text, match):
    from mahppo.serve.guards import load_api_key

    f = tmp_path / "key"
    f.write_text(text)
    with pytest.raises(ValueError, match=f"--api-key-file {f}: .*{match}"):
        load_api_key(f)
    with pytest.raises(ValueError, match="cannot read it"):
        load_api_key(tmp_path / "missing")
    f.write_text(f"  {KEY}\n")
    assert load_api_key(f) == KEY


def _norm() -> StateNormalizer:
    return StateNormalizer.for_env(AGENTS, ENV)


def _pool(**changes) -> list:
    ues = [{"ue_id": a, "tasks_left": 120, "local_time_left_s": 0.01, "bits_left": 50176, "distance_m": 50.0}
           for a in AGENTS]
    ues[1].update(changes)
    return DecideRequest.model_validate({"ues": ues}).ues


@pytest.mark.parametrize("change, field, words", [
    ({"distance_m": 0.0}, "ues[1].distance_m", "0 m is outside [1, 100] m"),
    ({"distance_m": 0.999}, "ues[1].distance_m", "outside [1, 100] m"),
    ({"distance_m": 1e12}, "ues[1].distance_m", "outside [1, 100] m"),
    ({"bits_left": 1_204_225}, "ues[1].bits_left", "above 1.20422e+06 bits, the largest feature or input ue_1"),
    ({"local_time_left_s": 5.0}, "ues[1].local_time_left_s", "the longest front part ue_1 runs"),
])
def test_states_outside_the_training_range_get_422_naming_the_field(change, field, words):
    with pytest.raises(RequestError) as exc:
        _norm().state(_pool(**change))
    assert exc.value.field == field and exc.value.status == 422
    assert words in exc.value.message


def test_the_bounds_themselves_are_accepted():
    norm = _norm()
    for change in ({"distance_m": 1.0}, {"distance_m": 100.0}, {"bits_left": float(norm.max_bits[1])},
                   {"local_time_left_s": float(norm.max_time_s[1])}):
        norm.state(_pool(**change))


def test_every_state_the_env_produces_is_in_range():
    from mahppo.marl_env.parallel import CollabInferenceEnv
    from mahppo.serve.client import state_pool

    norm = _norm()
    rng = np.random.default_rng(0)
    for scenario in ("train", "test"):
        env = CollabInferenceEnv(ENV, scenario=scenario)
        env.reset(seed=1)
        for _ in range(40):
            s = env.system
            ues = DecideRequest.model_validate({"ues": state_pool(s.tasks_left, s.total_tasks, s.time_left,
                                                                  s.bits_left, s.distance)}).ues
            norm.state(ues)  # no RequestError
            acts = {a: (int(rng.integers(0, 6)), int(rng.integers(0, 2)), float(rng.uniform(0.01, 1)))
                    for a in env.agents}
            _, _, terms, truncs, _ = env.step(acts)
            if not env.agents:
                break


def test_policy_problem_finds_nan_weights(tmp_path):
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.serve.guards import policy_problem
    from mahppo.serve.schema import normalizer_for

    good = load_policy(untrained_checkpoint(tmp_path / "good"))
    assert policy_problem(good, normalizer_for(good), good.agents) is None
    bad = load_policy(untrained_checkpoint(tmp_path / "bad", nan=True))
    assert "ue_0: non-finite weights in" in policy_problem(bad, normalizer_for(bad), bad.agents)


def test_preflight_names_the_problem_in_seconds(tmp_path):
    from mahppo.serve.lifecycle import preflight

    with pytest.raises(ValueError, match="the policy's outputs are not finite"):
        preflight(str(untrained_checkpoint(tmp_path / "bad", nan=True)))
    broken = broken_checkpoint(tmp_path)
    with pytest.raises(ValueError, match=f"cannot serve {broken}: CheckpointError: .*ue_0.safetensors: missing"):
        preflight(str(broken))


def test_replica_error_is_the_last_exception_line():
    from mahppo.serve.lifecycle import replica_error

    msg = ("The deployment failed to start 2 times in a row. Error:\n\x1b[36mray::ServeReplica\x1b[39m\n"
           "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    g()\n"
           "RuntimeError: Traceback (most recent call last):\n  File \"policy.py\", line 9\n"
           "FileNotFoundError: [Errno 2] No such file or directory: '/ckpt/rl_module'")
    assert replica_error(msg) == "FileNotFoundError: [Errno 2] No such file or directory: '/ckpt/rl_module'"


def test_proxy_buffers_the_whole_body_before_forwarding():
    from mahppo.serve.proxy import BufferedBodyMiddleware

    seen: list = []

    async def app(scope, receive, send):
        seen.append([await receive(), await receive()])

    async def go(messages):
        queue = list(messages)

        async def receive():
            if queue:
                return queue.pop(0)
            await asyncio.sleep(3600)

        seen.clear()
        await BufferedBodyMiddleware(app, limit=10)({"type": "http"}, receive, None)
        return list(seen)

    chunks = [{"type": "http.request", "body": b"ab", "more_body": True},
              {"type": "http.request", "body": b"cd", "more_body": False}]
    assert asyncio.run(go(chunks)) == [chunks]  # the app got it all, in order
    gone = [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}]
    assert asyncio.run(go(gone)) == []  # a client that left (or was timed out) never reaches the app
    big = [{"type": "http.request", "body": b"x" * 11, "more_body": True},
           {"type": "http.request", "body": b"y", "more_body": False}]
    assert asyncio.run(go(big)) == [big]  # past the limit it streams on (the replica answers 413)


def test_decisions_never_take_every_replica_slot():
    import yaml

    from mahppo.serve.app import DEFAULT_MAX_CONCURRENT_DECISIONS, MAX_ONGOING_REQUESTS, AppArgs

    assert DEFAULT_MAX_CONCURRENT_DECISIONS < MAX_ONGOING_REQUESTS
    app = yaml.safe_load((ROOT / "serve" / "config.yaml").read_text())["applications"][0]
    args = AppArgs.model_validate(app["args"])
    assert args.max_batch_size <= args.max_concurrent_decisions < app["deployments"][0]["max_ongoing_requests"]


def test_a_declared_body_over_the_limit_gets_413_before_any_byte_is_read():
    from mahppo.serve.proxy import BufferedBodyMiddleware

    sent: list = []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("forwarded")

    async def receive():
        raise AssertionError("the body was read")

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "headers": [(b"content-length", str(100 * 10**6).encode())]}
    asyncio.run(BufferedBodyMiddleware(app, limit=(1 << 20) + 1, max_body=1 << 20)(scope, receive, send))
    start, body = sent
    assert start["status"] == 413 and (b"connection", b"close") in start["headers"]
    assert json.loads(body["body"])["field"] == "body" and b"1048576 bytes" in body["body"]


def test_the_lookahead_gate_admits_its_limit_and_counts_the_rest():
    from mahppo.serve.guards import LookaheadGate

    gate = LookaheadGate(limit=2, budget_s=1.5)
    assert gate.try_enter() and gate.try_enter() and not gate.try_enter()
    assert gate.health()["in_flight"] == 2 and gate.rejected == 1 and gate.retry_after_s == 2
    gate.leave("the lookahead's time budget of 1.5 s was spent")
    gate.leave(None, cancelled=True)  # a worker counts in flight until it has stopped, even after its client left
    assert gate.health() == {"in_flight": 0, "limit": 2, "budget_s": 1.5, "answered": 1, "fallbacks": 1,
                             "cancelled": 1, "rejected": 1}
    assert gate.try_enter()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_the_reaper_kills_the_marked_processes_of_a_sigkilled_parent_even_respawned_ones(tmp_path):
    """A parent that started the reaper, then marked children (one of which respawns a child when it loses
    it, as Ray does with its agents), is SIGKILLed: nothing marked is left after a few seconds."""
    import os
    import signal
    import subprocess
    import time

    parent_code = f"""
import subprocess, sys, time
from mahppo.serve.lifecycle import start_reaper
start_reaper()
respawner = "import subprocess, time\\nwhile True:\\n    p = subprocess.Popen(['sleep', '600'])\\n    p.wait()"
subprocess.Popen([sys.executable, "-c", respawner])
subprocess.Popen(["sleep", "600"])
open({str(tmp_path / "ready")!r}, "w").close()
time.sleep(600)
"""
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    marker = f"MAHPPO_RAY_OWNER={parent.pid}".encode()

    def marked() -> list[int]:
        out = []
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if marker in f.read().split(b"\0") and int(pid) != parent.pid:
                        out.append(int(pid))
            except (OSError, ValueError):
                continue
        return out

    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        assert len(marked()) >= 4  # the reaper, the respawner, its sleep, the other sleep
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    t0 = time.monotonic()
    while marked() and time.monotonic() - t0 < 10:
        time.sleep(0.2)
    assert marked() == [] and time.monotonic() - t0 < 6
