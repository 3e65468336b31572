"""Clean shutdown after SIGKILL: how long Ray's processes outlive a killed ``mahppo serve`` that has served
for a while (issue 27's target: a few seconds).

    .venv/bin/python benchmarks/serve_shutdown.py --trials 3 --run-s 90

Each trial starts ``mahppo serve`` on an untrained 3-UE policy, sends decisions for ``--run-s`` seconds,
sends SIGKILL, and measures until no process of its Ray is left: those whose environment carries its
``MAHPPO_RAY_OWNER`` marker, and those whose command line names its Ray session directory (so a process
that lost the marker still counts). Prints one JSON line per trial, then the load average.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from _harness import load_average, parse, parser, run, write_json


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def ray_processes(owner: int, sessions: set[bytes]) -> dict[int, str]:
    """pid -> full command line of every process of ``owner``'s Ray (marker, or its session directory as a
    whole path component: another Ray's session is never matched by a prefix)."""
    marker = f"MAHPPO_RAY_OWNER={owner}".encode()
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        cmd = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ")
        env = _read(f"/proc/{pid}/environ")
        if marker in env.split(b"\0") or sessions & set(_SESSION.findall(cmd)):
            out[int(pid)] = cmd.decode(errors="replace")
    return out


_SESSION = re.compile(rb"/tmp/ray/session_[0-9_\-]+(?=[/ ,=]|$)")


def sessions_of(procs: dict[int, str]) -> set[bytes]:
    return {m for cmd in procs.values() for m in _SESSION.findall(cmd.encode())}


def trial(ckpt: Path, run_s: float, port: int) -> dict:
    from mahppo.serve.client import DecisionClient, example_pool

    proc = subprocess.Popen([sys.executable, "-m", "mahppo", "serve", "--checkpoint", str(ckpt), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t_start = time.monotonic()
    line = b""
    while b"serving" not in line and proc.poll() is None and time.monotonic() - t_start < 300:
        line = proc.stdout.readline()
    if b"serving" not in line:
        proc.kill()
        raise RuntimeError(f"mahppo serve did not start: {line!r}")
    client = DecisionClient(f"http://127.0.0.1:{port}")
    pool = example_pool(client.model())
    served = 0
    t_serving = time.monotonic()
    while time.monotonic() - t_serving < run_s:
        client.decide(pool)
        served += 1
        time.sleep(0.05)
    procs = ray_processes(proc.pid, set())
    sessions = sessions_of(procs)
    procs = ray_processes(proc.pid, sessions)
    names = sorted({re.sub(r"\s.*", "", c)[-60:] for c in procs.values()})
    os.kill(proc.pid, signal.SIGKILL)
    t_kill = time.monotonic()
    proc.wait()
    left = procs
    while left and time.monotonic() - t_kill < 180:
        time.sleep(0.25)
        left = ray_processes(proc.pid, sessions)
    return {"served_s": round(time.monotonic() - t_serving, 1), "decisions": served, "ray_processes": len(procs),
            "kinds": names, "gone_after_s": round(time.monotonic() - t_kill, 2),
            "sessions": sorted(x.decode() for x in sessions),
            "left_after_180_s": sorted(c[:120] for c in left.values())}


def main() -> int:
    ap = parser(__doc__, out="/tmp/serve_shutdown")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--run-s", type=float, default=90.0, help="seconds each server serves before SIGKILL")
    args = parse(ap)
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.checkpoints import write_untrained_checkpoint

    ckpt = write_untrained_checkpoint(Experiment().with_flat({"num_ues": 3, "actor": "per-ue"}),
                                      Path(args.out) / "untrained-n3")
    from mahppo.serve.client import free_port

    trials = []
    for i in range(args.trials):
        trials.append({"trial": i + 1, **trial(ckpt, args.run_s, free_port())})
        print(json.dumps(trials[-1]), flush=True)
        write_json(Path(args.out) / "serve_shutdown.json", trials)  # a crash keeps the finished trials
    print(f"load average: {' '.join(f'{x:.2f}' for x in load_average())}")
    return 0


if __name__ == "__main__":
    run(main)
