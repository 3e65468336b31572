"""A real Serve on 127.0.0.1 under attack: stalled clients, no key, bad inputs, NaN weights, failures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_serve_guards import KEY, untrained_checkpoint

from mahppo.serve.client import free_port

pytestmark = [pytest.mark.slow,  # one Ray + Serve for the module
              pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")]
READ_TIMEOUT_S = 2.0
APP = "mahppo"


@pytest.fixture(scope="module")
def serve_env(tmp_path_factory):
    """(port, checkpoints dir, deploy(**args)): one Ray + Serve with the hardened proxy, shut down after."""
    import ray
    from ray import serve

    from mahppo.serve.app import QUIET_LOGGING, build_app
    from mahppo.serve.lifecycle import run_app
    from mahppo.serve.proxy import CALLBACK_ENV, READ_TIMEOUT_ENV, enable_for_local_ray

    if ray.is_initialized():
        ray.shutdown()  # the proxy callback is read from the environment the Ray processes start with
    saved = {k: os.environ.get(k) for k in (CALLBACK_ENV, READ_TIMEOUT_ENV)}
    enable_for_local_ray(READ_TIMEOUT_S)
    out = tmp_path_factory.mktemp("ckpts")
    good, nan = untrained_checkpoint(out / "good"), untrained_checkpoint(out / "nan", nan=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()

    def deploy(**args):
        run_app(build_app({"checkpoint": str(good), "read_timeout_s": READ_TIMEOUT_S, **args}), name=APP,
                route_prefix="/", logging_config=QUIET_LOGGING)

    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=QUIET_LOGGING)
        yield port, {"good": good, "nan": nan, "root": out}, deploy
    finally:
        serve.shutdown()
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _body(**change) -> bytes:
    ues = [{"ue_id": f"ue_{i}", "tasks_left": 120, "local_time_left_s": 0.01, "bits_left": 50176.0,
            "distance_m": 50.0} for i in range(3)]
    ues[0].update(change)
    return json.dumps({"ues": ues}).encode()


def _timed(client, method: str, path: str, body: bytes | None = None):
    t0 = time.perf_counter()
    status, reply = client.request(method, path, body)
    return status, reply, time.perf_counter() - t0


def test_100_stalled_clients_neither_block_health_nor_decisions_and_are_dropped(serve_env):
    from mahppo.serve.client import DecisionClient

    port, _, deploy = serve_env
    deploy()
    client = DecisionClient(f"http://127.0.0.1:{port}")
    assert client.request("POST", "/v1/decide", _body())[0] == 200  # warm
    socks = []
    for i in range(100):  # half stop inside the body (Content-Length: 100, one byte), half inside the headers
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + (b"Content-Length: 100\r\n\r\n{" if i % 2 == 0 else b"X-Slow: 1"))
        socks.append(s)
    t_open = time.monotonic()
    time.sleep(0.3)
    try:
        for _ in range(3):
            status, reply, took = _timed(client, "GET", "/healthz")
            assert status == 200 and took < 1.0, (status, took)
            status, reply, took = _timed(client, "POST", "/v1/decide", _body())
            assert status == 200 and len(reply["decisions"]) == 3 and took < 1.0, (status, took)
        answers = []
        for s in socks:  # every stalled client is answered 408 and dropped after the read deadline
            s.settimeout(max(0.1, t_open + READ_TIMEOUT_S + 3 - time.monotonic()))
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            answers.append(data.split(b"\r\n", 1)[0])
        assert time.monotonic() - t_open < READ_TIMEOUT_S + 3
        assert set(answers) == {b"HTTP/1.1 408 Request Timeout"}, set(answers)
    finally:
        for s in socks:
            s.close()
    assert client.health()["status"] == "ok"


def test_bearer_key(serve_env, tmp_path):
    from mahppo.serve.client import DecisionClient

    port, _, deploy = serve_env
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    deploy(api_key_file=str(key_file))
    try:
        anon = DecisionClient(f"http://127.0.0.1:{port}")
        wrong = DecisionClient(f"http://127.0.0.1:{port}", api_key="x" * 20)
        good = DecisionClient(f"http://127.0.0.1:{port}", api_key=KEY)
        for c in (anon, wrong):
            for method, path, body in (("POST", "/v1/decide", _body()), ("GET", "/v1/model", None),
                                       ("GET", "/openapi.json", None)):
                status, reply = c.request(method, path, body)
                assert status == 401 and reply["field"] == "authorization", (path, status, reply)
        assert anon.request("GET", "/healthz")[0] == 200
        assert len(good.decide(json.loads(_body())["ues"])) == 3
    finally:
        deploy()  # the next tests talk without a key


def test_decisions_beyond_the_limit_get_503_while_health_answers(serve_env):
    import threading

    from mahppo.serve.client import DecisionClient

    port, _, deploy = serve_env
    deploy(max_concurrent_decisions=1, batch_wait_timeout_s=1.0, max_batch_size=8)  # a decision waits ~1 s
    try:
        url = f"http://127.0.0.1:{port}"
        first: list = []
        t = threading.Thread(target=lambda: first.append(DecisionClient(url).request("POST", "/v1/decide", _body())))
        t.start()
        time.sleep(0.4)  # the first decision is in flight, waiting for its batch to fill
        client = DecisionClient(url)
        status, reply = client.request("POST", "/v1/decide", _body())
        assert status == 503 and reply["field"] == "request" and "retry" in reply["detail"], reply
        status, reply, took = _timed(client, "GET", "/healthz")
        assert status == 200 and reply["deciding"] == 1 and reply["rejected"] >= 1 and took < 1.0
        t.join(30)
        assert first[0][0] == 200
    finally:
        deploy()


@pytest.mark.parametrize("change, field", [({"distance_m": 0.0}, "ues[0].distance_m"),
                                           ({"distance_m": 1e12}, "ues[0].distance_m"),
                                           ({"bits_left": 5e7}, "ues[0].bits_left")])
def test_inputs_outside_the_training_range_get_422(serve_env, change, field):
    from mahppo.serve.client import DecisionClient

    client = DecisionClient(f"http://127.0.0.1:{serve_env[0]}")
    status, reply = client.request("POST", "/v1/decide", _body(**change))
    assert status == 422 and reply["field"] == field, reply
    assert client.request("POST", "/v1/decide", _body())[0] == 200


def test_nan_weights_make_healthz_503(serve_env):
    from mahppo.serve.client import DecisionClient

    port, ckpts, deploy = serve_env
    deploy(checkpoint=str(ckpts["nan"]))
    try:
        client = DecisionClient(f"http://127.0.0.1:{port}")
        status, reply = client.request("GET", "/healthz")
        assert status == 503 and reply["status"] == "unhealthy", reply
        assert "non-finite weights" in reply["problem"]
        assert client.request("POST", "/v1/decide", _body())[0] == 500
    finally:
        deploy()


def test_failed_deployment_reports_the_replicas_error(serve_env):
    import shutil

    from mahppo.algorithms.runs.checkpoints import EXPORT_DIR
    from mahppo.serve.app import QUIET_LOGGING, build_app
    from mahppo.serve.lifecycle import run_app

    port, ckpts, deploy = serve_env
    ckpt = untrained_checkpoint(ckpts["root"] / "vanishing")
    app = build_app({"checkpoint": str(ckpt)})  # checked here in the driver ...
    shutil.rmtree(ckpt / EXPORT_DIR)  # ... and gone by the time the replica loads it
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"deploying broken failed: DecisionMaker: .*CheckpointError: "
                       r".*ue_0.safetensors: missing"):
        run_app(app, name="broken", route_prefix="/broken", logging_config=QUIET_LOGGING)
    assert time.monotonic() - t0 < 60


def test_cli_refuses_a_nan_policy_before_starting_ray(serve_env, capsys):
    from mahppo.cli import main

    _, ckpts, _ = serve_env
    t0 = time.monotonic()
    assert main(["serve", "--checkpoint", str(ckpts["nan"]), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "the policy's outputs are not finite (ue_0: non-finite weights" in err
    assert time.monotonic() - t0 < 20


def _owned(pid: int) -> list[int]:
    marker = f"MAHPPO_RAY_OWNER={pid}".encode()
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if marker in (p / "environ").read_bytes().split(b"\0"):
                    out.append(int(p.name))
            except OSError:
                pass
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_sigkill_of_mahppo_serve_leaves_no_ray_processes(serve_env, tmp_path):
    from mahppo.serve.client import DecisionClient

    _, ckpts, _ = serve_env
    port = free_port()
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    key_file.chmod(0o600)
    proc = subprocess.Popen([sys.executable, "-m", "mahppo", "serve", "--checkpoint", str(ckpts["good"]),
                             "--port", str(port), "--api-key-file", str(key_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        line = proc.stdout.readline().decode()
        deadline = time.monotonic() + 120
        while "serving" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline().decode()
        assert "serving" in line, line
        anon = DecisionClient(f"http://127.0.0.1:{port}")
        assert anon.health()["status"] == "ok"  # /healthz needs no key ...
        assert anon.request("GET", "/v1/model")[0] == 401  # ... everything else does
        assert DecisionClient(f"http://127.0.0.1:{port}", api_key=KEY).model()["num_ues"] == 3
        assert len(_owned(proc.pid)) >= 3  # raylet, GCS, Serve's controller, proxy and replica, ...
    finally:
        proc.kill()
        proc.wait()
    t0 = time.monotonic()
    while _owned(proc.pid) and time.monotonic() - t0 < 15:
        time.sleep(0.5)
    assert _owned(proc.pid) == [], f"still running {time.monotonic() - t0:.0f} s after kill -9"
