"""Load figures of the served decision-maker: p50/p99 latency, decisions per second and the replica's
resident memory at concurrency 1, 8 and 32, for N = 5 and N = 50, on loopback.

    .venv/bin/python benchmarks/serve_load.py                  # untrained actors of the right shape
    .venv/bin/python benchmarks/serve_load.py --checkpoint runs/mahppo-n5-seed0 --num-ues 5

Starts its own Ray and Serve on 127.0.0.1 (a free port), one replica, and runs a bounded number of
requests per level from keep-alive connections (asyncio, one connection per concurrent client).
Latency and throughput do not depend on the weights, so by default each N gets freshly initialised
MAHPPO actors (the trained networks' shapes) written as a checkpoint to a temporary directory.
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


def untrained_checkpoint(num_ues: int, out: Path) -> Path:
    """A checkpoint of freshly initialised per-UE actors (the paper's, same shapes as a trained policy)."""
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.checkpoints import write_untrained_checkpoint

    experiment = Experiment().with_flat({"num_ues": num_ues, "actor": "per-ue"})
    return write_untrained_checkpoint(experiment, out / f"untrained-n{num_ues}")


def example_body(agents: list[str], rng: np.random.Generator) -> bytes:
    ues = [{"ue_id": a, "tasks_left": int(rng.integers(1, 201)), "local_time_left_s": float(rng.uniform(0, 0.045)),
            "bits_left": float(rng.uniform(0, 2e5)), "distance_m": float(rng.uniform(1, 100))} for a in agents]
    return json.dumps({"ues": ues}).encode()


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


async def run_level(host: str, port: int, bodies: list[bytes], concurrency: int, requests: int,
                    warmup: int) -> dict[str, float]:
    conns = [Conn(host, port) for _ in range(concurrency)]
    lat: list[float] = []
    counter = {"sent": 0}

    async def client(c: Conn, budget: int, record: bool) -> None:
        while counter["sent"] < budget:
            counter["sent"] += 1
            body = bodies[counter["sent"] % len(bodies)]
            t = time.perf_counter()
            status, data = await c.post("/v1/decide", body)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {data[:200]!r}")
            if record:
                lat.append(time.perf_counter() - t)

    await asyncio.gather(*(client(c, warmup, False) for c in conns))
    counter["sent"] = 0
    t0 = time.perf_counter()
    await asyncio.gather(*(client(c, requests, True) for c in conns))
    wall = time.perf_counter() - t0
    for c in conns:
        c.close()
    ms = np.array(lat) * 1e3
    return {"requests": len(lat), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "requests_per_s": len(lat) / wall, "wall_s": wall}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = parser(__doc__, out="bench_out/serve_load",
               quick={"num_ues": [3], "concurrency": [1, 4], "requests": 40, "warmup": 5})
    p.add_argument("--num-ues", type=int, nargs="+", default=[5, 50])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--requests", type=int, default=600, help="measured requests per level (bounded)")
    p.add_argument("--warmup", type=int, default=60)
    p.add_argument("--checkpoint", default=None, help="serve this policy (needs a single --num-ues)")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-wait-ms", type=float, default=1.0)
    args = parse(p)
    if args.checkpoint and len(args.num_ues) != 1:
        p.error("--checkpoint needs exactly one --num-ues")

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
                ckpt = args.checkpoint or str(untrained_checkpoint(n, Path(tmp)))
                serve.run(build_app({"checkpoint": ckpt, "max_batch_size": args.max_batch_size,
                                     "batch_wait_timeout_s": args.batch_wait_ms / 1000}),
                          name="mahppo", route_prefix="/", logging_config=QUIET_LOGGING)
                client = DecisionClient(f"http://{host}:{port}")
                info = client.model()
                if info["num_ues"] != n:
                    raise SystemExit(f"--checkpoint serves N={info['num_ues']}, not {n}")
                rng = np.random.default_rng(0)
                bodies = [example_body(info["agents"], rng) for _ in range(64)]
                for conc in args.concurrency:
                    h0 = client.health()
                    res = asyncio.run(run_level(host, port, bodies, conc, args.requests, args.warmup))
                    h1 = client.health()
                    batches = h1["batches"] - h0["batches"]
                    row = {"num_ues": n, "concurrency": conc, **res,
                           "decisions_per_s": res["requests_per_s"] * n,
                           "mean_batch": (h1["requests"] - h0["requests"]) / max(batches, 1),
                           "replica_cpu_ms_per_request": 1e3 * (h1["cpu_s"] - h0["cpu_s"])
                           / max(h1["requests"] - h0["requests"], 1),
                           "replica_rss_mb": h1["rss_bytes"] / 2**20}
                    rows.append(row)
                    print(f"N={n:3d} c={conc:2d}: p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  "
                          f"{row['requests_per_s']:7.1f} req/s  {row['decisions_per_s']:8.0f} decisions/s  "
                          f"batch {row['mean_batch']:4.1f}  CPU {row['replica_cpu_ms_per_request']:.2f} ms/req  "
                          f"RSS {row['replica_rss_mb']:.0f} MiB", flush=True)
                client.close()
    finally:
        serve.shutdown()
        stop_ray()
    write_markdown(f"{args.out}/serve_load.md", markdown_table(
        ["N", "concurrency", "p50 ms", "p99 ms", "requests/s", "decisions/s", "mean batch", "replica CPU ms/request",
         "replica RSS MiB"],
        [[r["num_ues"], r["concurrency"], f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['requests_per_s']:.0f}",
          f"{r['decisions_per_s']:.0f}", f"{r['mean_batch']:.1f}", f"{r['replica_cpu_ms_per_request']:.2f}",
          f"{r['replica_rss_mb']:.0f}"] for r in rows]))
    write_json(f"{args.out}/serve_load.json", rows)


if __name__ == "__main__":
    run(main)
