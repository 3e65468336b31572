"""Lookahead isolation under load: many concurrent worst-case ``"lookahead": true`` requests against one
replica, while a plain client measures ``/v1/decide`` latency (issue 27's target: plain p99 < 100 ms and no
503 for plain requests; every admitted lookahead request answered within its budget).

    .venv/bin/python benchmarks/lookahead_isolation.py --lookahead 230 --seconds 30

The worst-case request: 16 idle UEs 50 m away with ``--tasks`` tasks each, on a shared policy (untrained
weights of the trained shape; the cost per request is what matters here). The worst case is a cell that
finishes just inside the planner's horizon (100 frames): the issue's trained policy did at 150 tasks; this
untrained policy does not finish 150 within the horizon (one rollout, then its own decisions) but does at 30,
the default. ``--lookahead 0`` measures the plain client alone (the control). Prints one JSON line and the
load average.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from _harness import load_average, parse, parser, run, timer, write_json

MAX_UES = 16


def shared_checkpoint(out: Path, max_ues: int = MAX_UES) -> Path:
    """A checkpoint of a freshly initialised shared actor (``--actor shared``, ``max_ues`` UEs at most)."""
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.checkpoints import write_untrained_checkpoint

    experiment = Experiment().with_flat({"num_ues": 3, "max_ues": max_ues, "actor": "shared"})
    return write_untrained_checkpoint(experiment, out / f"untrained-shared-{max_ues}")


WORST_TASKS = 30


def worst_case_body(n: int = MAX_UES, tasks: int = WORST_TASKS) -> bytes:
    return json.dumps({"ues": [{"ue_id": f"ue_{i}", "tasks_left": tasks, "total_tasks": 150, "local_time_left_s": 0.0,
                                "bits_left": 0.0, "distance_m": 50.0} for i in range(n)],
                       "lookahead": True}).encode()


def plain_body(n: int = 3) -> bytes:
    return json.dumps({"ues": [{"ue_id": f"ue_{i}", "tasks_left": 120, "total_tasks": 200,
                                "local_time_left_s": 0.0, "bits_left": 0.0, "distance_m": 50.0}
                               for i in range(n)]}).encode()


async def post(host: str, port: int, body: bytes, timeout_s: float = 120.0) -> tuple[int, dict, float, dict]:
    """One request on a fresh connection: (status, headers, seconds, JSON reply)."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    try:
        reply = json.loads(payload)
    except ValueError:
        reply = {}
    return status, headers, time.perf_counter() - t0, reply


async def load(host: str, port: int, lookahead: int, seconds: float, plain_rate: float,
               tasks: int = WORST_TASKS) -> dict:
    """``lookahead`` clients posting the worst case in a loop (honouring Retry-After), one plain client at
    ``plain_rate`` requests/s, for ``seconds``."""
    stop = time.monotonic() + seconds
    la: list[tuple[int, float, bool]] = []  # status, seconds, fell back
    plain: list[tuple[int, float]] = []
    body_la, body_plain = worst_case_body(tasks=tasks), plain_body()

    async def looker():
        while time.monotonic() < stop:
            status, headers, dt, reply = await post(host, port, body_la)
            la.append((status, dt, "lookahead_fallback" in reply))
            if status == 503:
                await asyncio.sleep(float(headers.get("retry-after", 1)))

    async def plain_client():
        while time.monotonic() < stop:
            t0 = time.monotonic()
            status, _, dt, _ = await post(host, port, body_plain)
            plain.append((status, dt))
            await asyncio.sleep(max(0.0, 1 / plain_rate - (time.monotonic() - t0)))

    await asyncio.gather(plain_client(), *(looker() for _ in range(lookahead)))
    ok = np.array([dt for s, dt in plain if s == 200]) * 1000
    admitted = [(dt, fb) for s, dt, fb in la if s == 200]
    return {"plain_requests": len(plain), "plain_503": sum(s == 503 for s, _ in plain),
            "plain_other_errors": sum(s not in (200, 503) for s, _ in plain),
            "plain_p50_ms": float(np.percentile(ok, 50)) if len(ok) else None,
            "plain_p99_ms": float(np.percentile(ok, 99)) if len(ok) else None,
            "plain_max_ms": float(ok.max()) if len(ok) else None,
            "lookahead_requests": len(la), "lookahead_answered": len(admitted),
            "lookahead_503": sum(s == 503 for s, _, _ in la),
            "lookahead_other": sum(s not in (200, 503) for s, _, _ in la),
            "lookahead_fell_back": sum(fb for _, fb in admitted),
            "lookahead_max_s": max((dt for dt, _ in admitted), default=None)}


def main() -> int:
    ap = parser(__doc__, out="/tmp/lookahead_isolation")
    ap.add_argument("--lookahead", type=int, default=230, help="concurrent worst-case lookahead clients")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--plain-rate", type=float, default=20.0, help="plain requests per second")
    ap.add_argument("--budget", type=float, default=2.0, help="the server's lookahead budget, seconds")
    ap.add_argument("--tasks", type=int, default=WORST_TASKS, help="tasks per UE of the lookahead request")
    args = parse(ap)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import ray
    from ray import serve

    from mahppo.serve.app import QUIET_LOGGING, build_app
    from mahppo.serve.client import free_port
    from mahppo.serve.lifecycle import run_app
    from mahppo.serve.proxy import enable_for_local_ray

    enable_for_local_ray(10.0)
    ckpt = shared_checkpoint(Path(args.out))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=QUIET_LOGGING)
        run_app(build_app({"checkpoint": str(ckpt), "lookahead_budget_s": args.budget}), name="mahppo",
                route_prefix="/", logging_config=QUIET_LOGGING)
        with timer() as t:
            one = asyncio.run(post("127.0.0.1", port, worst_case_body(tasks=args.tasks)))
        print(f"one worst-case lookahead request alone: {one[0]} in {t.wall:.2f} s "
              f"({one[3].get('lookahead_fallback', 'the lookahead chose')})", file=sys.stderr)
        result = asyncio.run(load("127.0.0.1", port, args.lookahead, args.seconds, args.plain_rate, args.tasks))
        from mahppo.serve.client import DecisionClient

        result["healthz_lookahead"] = DecisionClient(f"http://127.0.0.1:{port}").health()["lookahead"]
    finally:
        serve.shutdown()
        ray.shutdown()
    result.update(budget_s=args.budget, clients=args.lookahead, tasks=args.tasks, seconds=args.seconds,
                  loadavg=load_average())
    write_json(Path(args.out) / "lookahead_isolation.json", result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    run(main)
