"""``--address`` against a token-authenticated cluster: a real ``ray start --head`` on 127.0.0.1.

The head runs with its own temp dir, ports and token file, and is stopped by ending its ``--block``
process (never ``ray stop``, which would stop every Ray of this user on the machine). Clients run in
subprocesses with their own HOME, so the token "where Ray keeps it" is under our control.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CLIENT = """
import sys, time
import ray
from mahppo.algorithms.runs.run import init_ray
t0 = time.monotonic()  # the connection alone (imports take long on a busy machine)
try:
    init_ray(sys.argv[1])
except ValueError as exc:
    print("ERROR", exc, round(time.monotonic() - t0, 1))
    raise SystemExit(2)
print("CPU", ray.cluster_resources().get("CPU"), round(time.monotonic() - t0, 1))
ray.shutdown()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _procs_with(text: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if text.encode() in (p / "cmdline").read_bytes():
                    out.append(int(p.name))
            except OSError:
                pass
    return out


def _ray_node(tmp: Path, env: dict, *args: str) -> subprocess.Popen:
    """A ``ray start --block`` node on 127.0.0.1 with its own free ports (stopped by ``_stop_nodes``)."""
    ports = []
    for flag in ("--node-manager-port", "--object-manager-port", "--ray-client-server-port",
                 "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
                 "--metrics-export-port"):
        ports += [flag, str(_free_port())]
    return subprocess.Popen([str(BIN / "ray"), "start", "--block", "--node-ip-address", "127.0.0.1",
                             "--disable-usage-stats", *args, *ports],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _stop_nodes(nodes: list[subprocess.Popen], tmp: Path) -> None:
    for node in reversed(nodes):
        node.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            node.kill()
    time.sleep(1)
    for pid in _procs_with(str(tmp)):  # anything of these nodes still there (only ours: their temp dir)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _start_cluster(workers: int = 0, dashboard: bool = False):
    """(address, token, tmp, nodes): a one-CPU head with token authentication on (with its dashboard: Ray's
    state API), and ``workers`` one-CPU worker nodes joined to it."""
    tmp = Path(tempfile.mkdtemp(prefix="rtok", dir="/tmp"))  # short: Ray's socket paths must fit
    token = secrets.token_hex(32)
    (tmp / "token").write_text(token)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(tmp / "token"))
    board = (["--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(_free_port())]
             if dashboard else ["--include-dashboard", "false"])
    nodes = [_ray_node(tmp, env, "--head", "--port", str(port), "--num-cpus", "1", *board,
                       "--temp-dir", str(tmp / "r"))]
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert nodes[0].poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
                time.sleep(0.5)
        for _ in range(workers):
            nodes.append(_ray_node(tmp, env, "--address", f"127.0.0.1:{port}", "--num-cpus", "1"))
    except BaseException:
        _stop_nodes(nodes, tmp)
        raise
    return f"127.0.0.1:{port}", token, tmp, nodes


@pytest.fixture(scope="module")
def token_cluster():
    """(address, token): a one-CPU head with token authentication on, stopped afterwards."""
    address, token, tmp, nodes = _start_cluster()
    try:
        yield address, token
    finally:
        _stop_nodes(nodes, tmp)


def _client(address: str, home: Path, token: str | None = None, **env_extra: str) -> tuple[int, str]:
    ray_dir = home / ".ray"
    ray_dir.mkdir(parents=True, exist_ok=True)
    if token is not None:
        (ray_dir / "auth_token").write_text(token)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    env.update(HOME=str(home), **env_extra)
    r = subprocess.run([sys.executable, "-c", CLIENT, address], env=env, capture_output=True, text=True, timeout=180)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(("CPU", "ERROR"))]
    return r.returncode, (lines[-1] if lines else r.stdout[-500:] + r.stderr[-1500:])


@pytest.mark.slow
def test_the_token_in_the_default_place_is_used_out_of_the_box(token_cluster, tmp_path):
    address, token = token_cluster
    rc, out = _client(address, tmp_path / "home", token)  # ~/.ray/auth_token, RAY_AUTH_MODE unset
    assert rc == 0 and out.startswith("CPU 1.0"), out


@pytest.mark.slow
def test_no_token_fails_in_seconds_saying_what_to_set(token_cluster, tmp_path):
    address, _ = token_cluster
    rc, out = _client(address, tmp_path / "home")
    assert rc == 2, out
    assert f"--address {address}: the cluster uses token authentication and no token was found here:" in out
    assert "~/.ray/auth_token" in out and "RAY_AUTH_TOKEN_PATH" in out
    assert float(out.rsplit(" ", 1)[1]) < 10


@pytest.mark.slow
def test_a_wrong_token_is_named(token_cluster, tmp_path):
    address, _ = token_cluster
    rc, out = _client(address, tmp_path / "home", "0" * 64)
    assert rc == 2 and "is not its token" in out and str(tmp_path / "home" / ".ray" / "auth_token") in out, out


@pytest.mark.slow
def test_auth_mode_disabled_is_named(token_cluster, tmp_path):
    address, token = token_cluster
    rc, out = _client(address, tmp_path / "home", token, RAY_AUTH_MODE="disabled")
    assert rc == 2 and "RAY_AUTH_MODE is set to disabled here" in out, out


@pytest.mark.slow  # a Ray driver process (about 9 s)
def test_nothing_at_the_address_fails_in_seconds(tmp_path):
    rc, out = _client(f"127.0.0.1:{_free_port()}", tmp_path / "home")
    assert rc == 2 and "no Ray cluster answers there" in out, out
    assert float(out.rsplit(" ", 1)[1]) < 10


PLACED = """
import json, sys, time
import ray
from ray.util.state import list_actors
from mahppo.algorithms.experiment import Experiment
from mahppo.algorithms.runs.run import Run, init_ray
init_ray(sys.argv[1])
deadline = time.monotonic() + 120
while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
    time.sleep(1)  # the worker node joins
run = Run(Experiment().with_flat({"num_ues": 3, "steps": 256, "memory_size": 256, "batch_size": 64,
                                   "num_env_runners": 2, "warm_start": "none", "address": sys.argv[1]}))
run.step()
actors = list_actors(address=sys.argv[1], detail=True, raise_on_missing_output=False)
runners = [a for a in actors if "EnvRunner" in a.class_name and a.state == "ALIVE"]
nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
print("PLACED", json.dumps({"runners": sorted(a.node_id for a in runners), "nodes": sorted(nodes),
                            "env_steps": run.env_steps}))
"""


@pytest.mark.slow
def test_env_runners_spread_over_both_nodes_of_a_two_node_cluster(tmp_path):
    address, token, tmp, nodes = _start_cluster(workers=1, dashboard=True)
    try:
        home = tmp_path / "home"
        (home / ".ray").mkdir(parents=True)
        (home / ".ray" / "auth_token").write_text(token)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
        env.update(HOME=str(home))
        r = subprocess.run([sys.executable, "-c", PLACED, address], env=env, capture_output=True, text=True,
                           timeout=400)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("PLACED")]
        assert r.returncode == 0 and line, r.stdout[-500:] + r.stderr[-2000:]
        placed = json.loads(line[-1].split(" ", 1)[1])
        assert len(placed["nodes"]) == 2 and len(placed["runners"]) == 2
        assert set(placed["runners"]) == set(placed["nodes"])  # one env runner on each node (Ray's state API)
        assert placed["env_steps"] >= 256
    finally:
        _stop_nodes(nodes, tmp)
