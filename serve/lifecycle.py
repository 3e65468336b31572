"""Starting and stopping the decision-maker: check a policy before deploying it, report a replica's
real error when a deployment fails, and take the local Ray down with ``mahppo serve`` even when that
process is killed with SIGKILL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def preflight(source: str) -> None:
    """Load the policy the replica will load (``source``: a checkpoint path or model URI) and probe it,
    in this process and in seconds: ``ValueError`` naming the problem, instead of a failed deployment."""
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.serve.app import _model_info
    from mahppo.serve.guards import policy_problem
    from mahppo.serve.schema import normalizer_for

    try:
        policy = load_policy(source)
        normalizer = normalizer_for(policy)
        agents = _model_info(policy)["agents"]
    except Exception as exc:  # noqa: BLE001 - whatever the loader raises, name it in one line
        raise ValueError(f"cannot serve {source}: {type(exc).__name__}: {first_line(exc)}") from None
    problem = policy_problem(policy, normalizer, agents)
    if problem:
        raise ValueError(f"cannot serve {source}: the policy's outputs are not finite ({problem})")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def replica_error(message: str) -> str:
    """The exception line at the end of a replica's traceback in Serve's deployment status message."""
    lines = [ln.rstrip() for ln in _ANSI.sub("", message or "").splitlines() if ln.strip()]
    for line in reversed(lines):
        if not line[0].isspace() and re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", line):
            return line
    return lines[-1] if lines else "unknown error"


def deployment_errors(app_name: str) -> list[str]:
    """``DEPLOYMENT: error`` for every deployment of ``app_name`` that failed (from ``serve.status()``)."""
    from ray import serve

    try:
        app = serve.status().applications.get(app_name)
    except Exception:  # noqa: BLE001 - the controller may be gone too
        return []
    if app is None:
        return []
    out = [f"{name}: {replica_error(d.message)}" for name, d in app.deployments.items()
           if "FAIL" in str(d.status) or "UNHEALTHY" in str(d.status)]
    if not out and app.message:
        out.append(replica_error(app.message))
    return out


def run_app(application: Any, name: str, **kwargs: Any) -> Any:
    """``serve.run`` that, when the deployment fails, raises ``RuntimeError`` with the replica's error."""
    from ray import serve

    try:
        return serve.run(application, name=name, **kwargs)
    except RuntimeError as exc:
        errors = deployment_errors(name)
        if not errors:
            raise
        raise RuntimeError(f"deploying {name} failed: {'; '.join(errors)}") from exc


REAPER = r"""
import os, select, signal, sys, time
parent, marker = int(sys.argv[1]), sys.argv[2].encode()
me = os.getpid()
while os.getppid() == parent:  # reparented: the parent is gone, however it died (SIGKILL included)
    ready, _, _ = select.select([sys.stdin], [], [], 0.25)
    if ready and not os.read(sys.stdin.fileno(), 4096):  # EOF: the parent shut Ray down itself
        time.sleep(1.0)  # a clean shutdown needs no help
        break

def owned():
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in (me, parent):
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    out.append(int(pid))
        except OSError:
            continue
    return out

quiet, deadline = 0, time.monotonic() + 30
while quiet < 3 and time.monotonic() < deadline:  # again until nothing is left: Ray restarts agents it loses
    pids = owned()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    quiet = 0 if pids else quiet + 1
    time.sleep(0.2)
"""


def start_reaper() -> subprocess.Popen | None:
    """A watcher process that, once this process has died however it died (it polls its parent four times a
    second; a clean exit closes its stdin), kills the processes of the Ray it started (every process whose
    environment says ``MAHPPO_RAY_OWNER=<our pid>``), scanning again until three scans in a row find none:
    Ray's own agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) otherwise outlive a SIGKILLed driver
    for a minute or more. Call before ``ray.init``. Linux only; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    os.environ["MAHPPO_RAY_OWNER"] = str(os.getpid())  # inherited by every process of the local Ray
    return subprocess.Popen([sys.executable, "-c", REAPER, str(os.getpid()), f"MAHPPO_RAY_OWNER={os.getpid()}"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
