"""Load figures of the served decision-maker: p50/p99 latency, decisions per second, errors and the replica's
resident memory at 1, 8, 32 and 128 concurrent clients, for plain requests, lookahead requests and a mix
(one client in eight asks for the lookahead: the plain clients' latency shows whether it starves them).

    .venv/bin/python benchmarks/serve_load.py                  # untrained shared actor, N = 5
    .venv/bin/python benchmarks/serve_load.py --checkpoint runs/mahppo-n5-seed0 --num-ues 5
    .venv/bin/python benchmarks/serve_load.py --actor per-ue --num-ues 5 50 --modes plain

Starts its own Ray and Serve on 127.0.0.1 (a free port), one replica, and runs a bounded number of
requests per level from keep-alive connections (asyncio, one connection per concurrent client).
Latency and throughput do not depend on the weights, so by default each N gets freshly initialised
MAHPPO actors (the trained networks' shapes) written as a checkpoint to a temporary directory.
A non-200 reply counts as an error (the level goes on).
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _harness import markdown_table, parse, parser, run, start_ray, stop_ray, write_json, write_markdown


def untrained_checkpoint(num_ues: int, out: Path, actor: str = "shared") -> Path:
    """A checkpoint of freshly initialised actors (same shapes as a trained policy): the shared actor, or the
    paper's per-UE actors."""
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.checkpoints import write_untrained_checkpoint

    experiment = Experiment().with_flat({"num_ues": num_ues, "actor": actor})
    return write_untrained_checkpoint(experiment, out / f"untrained-{actor}-n{num_ues}")


def example_body(agents: list[str], rng: np.random.Generator, lookahead: bool = False) -> bytes:
    """A state pool of the cell; with ``lookahead``, at a frame boundary (no task in flight, so the body needs
    no ``point_in_flight``)."""
    ues = [{"ue_id": a, "tasks_left": int(rng.integers(1, 201)), "local_time_left_s": float(rng.uniform(0, 0.045)),
            "bits_left": float(rng.uniform(0, 2e5)), "distance_m": float(rng.uniform(1, 100))} for a in agents]
    if lookahead:
        for ue in ues:
            ue["local_time_left_s"] = ue["bits_left"] = 0.0
    return json.dumps({"ues": ues, "lookahead": lookahead}).encode()


class Conn:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams (so the load generator stays cheap)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        data = await self.reader.readexactly(length)
        return int(status_line.split()[1]), data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


MODES = ("plain", "lookahead", "mixed")
MIX_EVERY = 8  # "mixed": every 8th client asks for the lookahead


async def run_level(host: str, port: int, bodies: dict[bool, list[bytes]], concurrency: int, requests: int,
                    warmup: int, mode: str = "plain") -> dict[str, Any]:
    """``requests`` measured requests (after ``warmup``) from ``concurrency`` keep-alive clients; latency
    percentiles of the plain requests (all requests in mode "lookahead")."""
    conns = [Conn(host, port) for _ in range(concurrency)]
    lat: dict[bool, list[float]] = {False: [], True: []}
    counter = {"sent": 0, "errors": 0}
    first_error: list[str] = []

    def wants_lookahead(i: int) -> bool:
        return mode == "lookahead" or (mode == "mixed" and i % MIX_EVERY == MIX_EVERY - 1)

    async def client(i: int, c: Conn, budget: int, record: bool) -> None:
        la = wants_lookahead(i)
        while counter["sent"] < budget:
            counter["sent"] += 1
            body = bodies[la][counter["sent"] % len(bodies[la])]
            t = time.perf_counter()
            try:
                status, data = await c.post("/v1/decide", body)
            except (OSError, asyncio.IncompleteReadError) as exc:
                status, data, c.writer = 0, repr(exc).encode(), None
            if status != 200:
                counter["errors"] += record
                if not first_error:
                    first_error.append(f"HTTP {status}: {data[:200]!r}")
            elif record:
                lat[la].append(time.perf_counter() - t)

    await asyncio.gather(*(client(i, c, warmup, False) for i, c in enumerate(conns)))
    counter["sent"] = 0
    t0 = time.perf_counter()
    await asyncio.gather(*(client(i, c, requests, True) for i, c in enumerate(conns)))
    wall = time.perf_counter() - t0
    for c in conns:
        c.close()
    ms = np.array(lat[mode == "lookahead"] or [float("nan")]) * 1e3
    la_ms = np.array(lat[True] or [float("nan")]) * 1e3
    done = len(lat[False]) + len(lat[True])
    return {"requests": done, "errors": counter["errors"], "first_error": first_error[0] if first_error else None,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
            "lookahead_requests": len(lat[True]), "lookahead_p99_ms": float(np.percentile(la_ms, 99)),
            "requests_per_s": done / wall, "wall_s": wall}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = parser(__doc__, out="bench_out/serve_load",
               quick={"num_ues": [3], "concurrency": [1, 4], "requests": 40, "warmup": 5, "lookahead_requests": 4})
    p.add_argument("--num-ues", type=int, nargs="+", default=[5])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                   help="plain, lookahead (every request) and mixed (one client in eight asks for the lookahead)")
    p.add_argument("--actor", choices=["shared", "per-ue"], default="shared",
                   help="the untrained policy's actor (the lookahead needs the shared one)")
    p.add_argument("--requests", type=int, default=1200, help="measured requests per level (bounded)")
    p.add_argument("--lookahead-requests", type=int, default=60,
                   help="measured requests per level in mode lookahead (each rolls out the cell: ~0.2 s of CPU)")
    p.add_argument("--warmup", type=int, default=60)
    p.add_argument("--checkpoint", default=None, help="serve this policy (needs a single --num-ues)")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-wait-ms", type=float, default=1.0)
    args = parse(p)
    if args.checkpoint and len(args.num_ues) != 1:
        p.error("--checkpoint needs exactly one --num-ues")
    if args.actor == "per-ue" and set(args.modes) != {"plain"}:
        p.error("--actor per-ue takes --modes plain (the lookahead needs the shared actor)")

    from ray import serve

    from mahppo.serve.app import QUIET_LOGGING, build_app
    from mahppo.serve.client import DecisionClient

    host, port = "127.0.0.1", _free_port()
    start_ray()
    rows: list[dict[str, Any]] = []
    try:
        serve.start(http_options={"host": host, "port": port}, logging_config=QUIET_LOGGING)
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.num_ues:
                ckpt = args.checkpoint or str(untrained_checkpoint(n, Path(tmp), args.actor))
                serve.run(build_app({"checkpoint": ckpt, "max_batch_size": args.max_batch_size,
                                     "batch_wait_timeout_s": args.batch_wait_ms / 1000}),
                          name="mahppo", route_prefix="/", logging_config=QUIET_LOGGING)
                client = DecisionClient(f"http://{host}:{port}")
                info = client.model()
                if info["num_ues"] != n:
                    raise SystemExit(f"--checkpoint serves N={info['num_ues']}, not {n}")
                rng = np.random.default_rng(0)
                agents = info.get("agents") or [f"ue_{i}" for i in range(n)]
                bodies = {la: [example_body(agents, rng, la) for _ in range(64)] for la in (False, True)}
                for mode, conc in [(m, c) for m in args.modes for c in args.concurrency]:
                    h0 = client.health()
                    budget = min(args.requests, args.lookahead_requests) if mode == "lookahead" else args.requests
                    warm = min(args.warmup, conc) if mode == "lookahead" else args.warmup
                    res = asyncio.run(run_level(host, port, bodies, conc, budget, warm, mode))
                    h1 = client.health()
                    batches = h1["batches"] - h0["batches"]
                    row = {"num_ues": n, "mode": mode, "concurrency": conc, **res,
                           "decisions_per_s": res["requests_per_s"] * n,
                           "mean_batch": (h1["requests"] - h0["requests"]) / batches if batches else float("nan"),
                           "replica_cpu_ms_per_request": 1e3 * (h1["cpu_s"] - h0["cpu_s"])
                           / max(h1["requests"] - h0["requests"], 1),
                           "replica_rss_mb": h1["rss_bytes"] / 2**20}
                    rows.append(row)
                    print(f"N={n:3d} {mode:9s} c={conc:3d}: p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  "
                          f"{row['requests_per_s']:7.1f} req/s  {row['decisions_per_s']:8.0f} decisions/s  "
                          f"errors {row['errors']}  batch {row['mean_batch']:4.1f}  "
                          f"CPU {row['replica_cpu_ms_per_request']:.2f} ms/req  RSS {row['replica_rss_mb']:.0f} MiB"
                          + (f"  first error: {row['first_error']}" if row["errors"] else ""), flush=True)
                client.close()
    finally:
        serve.shutdown()
        stop_ray()
    write_markdown(f"{args.out}/serve_load.md", markdown_table(
        ["N", "mode", "clients", "p50 ms", "p99 ms", "lookahead p99 ms", "requests/s", "decisions/s", "errors",
         "mean batch", "replica CPU ms/request", "replica RSS MiB"],
        [[r["num_ues"], r["mode"], r["concurrency"], f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
          f"{r['lookahead_p99_ms']:.1f}", f"{r['requests_per_s']:.0f}", f"{r['decisions_per_s']:.0f}", r["errors"],
          f"{r['mean_batch']:.1f}", f"{r['replica_cpu_ms_per_request']:.2f}", f"{r['replica_rss_mb']:.0f}"]
         for r in rows]))
    write_json(f"{args.out}/serve_load.json", rows)


if __name__ == "__main__":
    run(main)
