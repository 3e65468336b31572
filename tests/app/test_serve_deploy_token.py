"""``mahppo deploy`` / ``mahppo status`` (Ray's ``serve deploy`` / ``serve status``) against a real token-auth
``ray start --head`` on 127.0.0.1 with no ``RAY_AUTH_MODE`` set: the token in ``~/.ray/auth_token`` is used.

The head runs with its own temp dir, ports and token file and is stopped by ending its ``--block`` process
(never ``ray stop``). The clients run as subprocesses with their own HOME."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from mahppo.serve.client import free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _untrained_checkpoint(out: Path) -> Path:
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.rllib.mahppo import module_setup
    from mahppo.algorithms.runs.checkpoints import write_acting_checkpoint
    from mahppo.marl_env.config import EnvConfig

    env = EnvConfig(num_ues=3, obs_mode="agent").validated()
    spec, ids, _ = module_setup(env)
    meta = {"policy_id": "untrained-n3", "iteration": 0, "env_steps": 0, "trained_at": "2026-01-01T00:00:00+00:00",
            "experiment": Experiment(env=env).to_dict()}
    return write_acting_checkpoint({m: spec.rl_module_specs[m].build() for m in ids}, out, meta)


@pytest.fixture(scope="module")
def head():
    tmp = Path(tempfile.mkdtemp(prefix="rdep", dir="/tmp"))
    token = secrets.token_hex(32)
    (tmp / "token").write_text(token)
    port, dash = free_port(), free_port()
    ports = []
    for flag in ("--node-manager-port", "--object-manager-port", "--ray-client-server-port",
                 "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
                 "--metrics-export-port"):
        ports += [flag, str(free_port())]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "RAY_DASHBOARD"))}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(tmp / "token"), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard", "true",
                             "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
                             "--disable-usage-stats", "--temp-dir", str(tmp / "r"), *ports],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{dash}/", timeout=2)
                break
            except urllib.error.HTTPError:  # answers (401 without the token): up
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
                time.sleep(1)
        home = tmp / "home"
        (home / ".ray").mkdir(parents=True)
        (home / ".ray" / "auth_token").write_text(token)  # where `ray start` on the head would have put it
        yield {"dashboard": f"http://127.0.0.1:{dash}", "home": home, "tmp": tmp}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _mahppo(head: dict, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "RAY_DASHBOARD"))}
    env["HOME"] = str(head["home"])
    return subprocess.run([str(BIN / "mahppo"), *argv, "--address", head["dashboard"]], env=env,
                          capture_output=True, text=True, timeout=240)


def test_deploy_and_status_work_on_a_token_head_without_ray_auth_mode(head):
    ckpt = _untrained_checkpoint(head["tmp"] / "policy")
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "serve" / "config.yaml").read_text())
    port = free_port()
    config["http_options"]["port"] = port
    app = config["applications"][0]
    app["args"]["checkpoint"] = str(ckpt)
    app["deployments"][0]["ray_actor_options"]["num_cpus"] = 0.5
    path = head["tmp"] / "serve.yaml"
    path.write_text(yaml.safe_dump(config))

    deployed = _mahppo(head, "deploy", str(path))
    assert deployed.returncode == 0, deployed.stderr[-2000:]
    deadline = time.monotonic() + 240
    while True:
        status = _mahppo(head, "status")
        assert status.returncode == 0, status.stderr[-2000:]
        if "RUNNING" in status.stdout and "DEPLOYING" not in status.stdout:
            break
        assert "DEPLOY_FAILED" not in status.stdout and time.monotonic() < deadline, status.stdout
        time.sleep(3)
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read())
    assert health["status"] == "ok" and health["policy_id"] == "untrained-n3"
