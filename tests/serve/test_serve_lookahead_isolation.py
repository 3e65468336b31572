"""A real Serve under lookahead load (issue 27): lookahead requests have their own small limit (503 +
Retry-After beyond it) and never take the plain decisions' slots, each is answered within its time budget
(then the policy's own decisions, marked so), a client that goes away stops its work, /healthz counts it;
a body declared over the limit gets 413 at once."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from mahppo.serve.client import DecisionClient, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from lookahead_isolation import load, plain_body, post, shared_checkpoint, worst_case_body  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")]
BUDGET_S = 1.0


@pytest.fixture(scope="module")
def serve_lookahead(tmp_path_factory):
    """(port, deploy(**args)): one Ray + Serve with the hardened proxy and a 16-UE shared policy, deployed
    with a lookahead budget of ``BUDGET_S`` (a test that deploys other arguments puts these back after)."""
    import ray
    from ray import serve

    from mahppo.serve.app import QUIET_LOGGING, build_app
    from mahppo.serve.lifecycle import run_app
    from mahppo.serve.proxy import CALLBACK_ENV, MAX_BODY_ENV, READ_TIMEOUT_ENV, enable_for_local_ray

    if ray.is_initialized():
        ray.shutdown()
    saved = {k: os.environ.get(k) for k in (CALLBACK_ENV, READ_TIMEOUT_ENV, MAX_BODY_ENV)}
    enable_for_local_ray(10.0)
    ckpt = shared_checkpoint(tmp_path_factory.mktemp("shared"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()

    def deploy(**args):
        run_app(build_app({"checkpoint": str(ckpt), **args}), name="mahppo", route_prefix="/",
                logging_config=QUIET_LOGGING)

    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=QUIET_LOGGING)
        deploy(lookahead_budget_s=BUDGET_S)
        yield port, deploy
    finally:
        serve.shutdown()
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_lookahead_load_never_turns_plain_decisions_away_and_each_answer_keeps_its_budget(serve_lookahead):
    port, _ = serve_lookahead
    result = asyncio.run(load("127.0.0.1", port, lookahead=30, seconds=6, plain_rate=10))
    assert result["plain_requests"] > 10 and result["plain_503"] == 0 and result["plain_other_errors"] == 0
    assert result["lookahead_answered"] >= 1 and result["lookahead_503"] >= 1 and result["lookahead_other"] == 0
    assert result["lookahead_fell_back"] <= result["lookahead_answered"]  # done in time, or the policy's own
    assert result["lookahead_max_s"] < BUDGET_S + 2.0  # its budget, plus the trip through the proxy (2 loaded cores)
    health = DecisionClient(f"http://127.0.0.1:{port}").health()["lookahead"]
    assert health["limit"] == 1 and health["rejected"] >= result["lookahead_503"]


def test_a_turned_away_lookahead_request_gets_503_with_retry_after(serve_lookahead):
    port, _ = serve_lookahead

    async def two():
        return await asyncio.gather(post("127.0.0.1", port, worst_case_body()),
                                    post("127.0.0.1", port, worst_case_body()))

    statuses = sorted((s, h.get("retry-after"), r.get("field")) for s, h, _, r in asyncio.run(two()))
    assert statuses[0][0] == 200 and statuses[1] == (503, "1", "request")


def test_a_declared_100_mb_body_gets_413_at_once(serve_lookahead):
    port, _ = serve_lookahead
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        t0 = time.monotonic()
        s.sendall(b"POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: 100000000\r\n\r\n")
        try:
            s.sendall(b"x" * (1 << 20))
        except OSError:
            pass  # the server answered and closed first
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413") and time.monotonic() - t0 < 3


def test_a_client_that_goes_away_stops_its_lookahead_and_healthz_counts_it_until_then(serve_lookahead):
    port, deploy = serve_lookahead
    deploy(lookahead_budget_s=60.0)
    client = DecisionClient(f"http://127.0.0.1:{port}")
    body = worst_case_body()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: %d\r\n\r\n%s" % (len(body), body))
        deadline = time.monotonic() + 20
        while client.health()["lookahead"]["in_flight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.health()["lookahead"]["in_flight"] == 1
    t0 = time.monotonic()  # the client left: its worker stops at its next simulated frame
    while client.health()["lookahead"]["in_flight"] and time.monotonic() - t0 < 15:
        time.sleep(0.2)
    health = client.health()["lookahead"]
    assert health["in_flight"] == 0 and health["cancelled"] == 1, health
    assert time.monotonic() - t0 < 10
    status, reply = client.request("POST", "/v1/decide", plain_body())
    assert status == 200
    deploy(lookahead_budget_s=BUDGET_S)
