"""Cost against the cell size N, for the default shared actor: training seconds per iteration and the
peak resident memory of the run (Ray's workers included), and the decision time per frame of the policy
alone, inside the decision-time lookahead, and through Serve's ``POST /v1/decide`` (sequential requests),
at N = 3, 10, 50, 100, 200. One table (markdown) and one log-log PNG (cost against N).

Training: ``mahppo train``'s own ``Run`` (the defaults, a local Ray, one torch thread): one iteration to
warm up (it holds the warm start, the rotate teacher, at N >= 5), then ``--iterations`` timed ones (1024
env steps each). Decisions: the policy those iterations trained, on the test scenario's first frames
(``--frames`` of them; the lookahead's on its first ``--lookahead-frames``); Serve: an acting checkpoint of
that policy, one request per frame for a cell of N UEs, ``--requests`` of them.

    python benchmarks/scale.py --out docs/scale
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _harness import (
    load_average,
    markdown_table,
    parse,
    parser,
    peak_memory,
    run,
    start_ray,
    stop_ray,
    timer,
    write_json,
    write_markdown,
)


def _percentiles(ms: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(ms), [50, 99])
    return float(p50), float(p99)


def train(n: int, iterations: int) -> tuple[dict[str, float], Any]:
    """``(row, run)``: s/iteration after one warm-up iteration, the warm-up's time, peak memory."""
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.run import Run

    experiment = Experiment().with_flat({"num_ues": n, "steps": 10**9, "eval_every": 10**6})
    with peak_memory() as mem:
        r = Run(experiment)
        with timer() as first:
            r.step()
        with timer() as t:
            for _ in range(iterations):
                r.step()
    return {"first_s": first.wall, "s_per_iter": t.wall / iterations, "rss_gib": mem.gib}, r


def decide_times(policy: Any, n: int, frames: int, lookahead_frames: int) -> dict[str, float]:
    """Per-frame decision time (ms) of ``policy`` alone and inside the lookahead on the test scenario."""
    from mahppo.marl_env.config import EnvConfig
    from mahppo.marl_env.lookahead import Lookahead
    from mahppo.marl_env.parallel import CollabInferenceEnv

    env = CollabInferenceEnv(EnvConfig.from_kwargs(num_ues=n, scenario="test", obs_mode="agent"))
    out: dict[str, float] = {}
    for name, who, k in (("alone", policy, frames), ("lookahead", Lookahead(policy), lookahead_frames)):
        env.reset(seed=0)
        who.reset(env.view(), seed=0)
        ms = []
        for _ in range(k):
            t0 = time.perf_counter()
            actions = who.act(env.view())
            ms.append((time.perf_counter() - t0) * 1e3)
            if env.system.all_done:
                break
            env.step_arrays(*env.check_arrays(*actions))
        out[f"{name}_p50_ms"], out[f"{name}_p99_ms"] = _percentiles(ms)
    return out


def serve_times(checkpoint: Path, sizes: list[int], requests: int) -> dict[int, tuple[float, float]]:
    """``/v1/decide`` latency (p50, p99 ms) for cells of each size, sequential requests, one Serve app."""
    from ray import serve

    from mahppo.serve.app import QUIET_LOGGING, build_app
    from mahppo.serve.client import DecisionClient, check_port_free
    from mahppo.serve.lifecycle import run_app

    host, port = "127.0.0.1", 8799
    check_port_free(host, port)
    serve.start(http_options={"host": host, "port": port}, logging_config=QUIET_LOGGING)
    out = {}
    try:
        run_app(build_app({"checkpoint": str(checkpoint)}), name="mahppo-scale", route_prefix="/",
                logging_config=QUIET_LOGGING)
        client = DecisionClient(f"http://{host}:{port}")
        for n in sizes:
            pool = [{"ue_id": f"ue-{i}", "tasks_left": 200, "total_tasks": 200, "local_time_left_s": 0.0,
                     "bits_left": 0.0, "distance_m": float(1 + 99 * i / max(1, n - 1))} for i in range(n)]
            client.decide(pool)  # warm-up
            ms = []
            for _ in range(requests):
                t0 = time.perf_counter()
                client.decide(pool)
                ms.append((time.perf_counter() - t0) * 1e3)
            out[n] = _percentiles(ms)
        client.close()
    finally:
        serve.shutdown()
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["num_ues"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (("s_per_iter", "training s / iteration (1024 env steps)"),
                       ("rss_gib", "peak memory of the run (GiB)")):
        a.plot(ns, [r[key] for r in rows], marker="o", label=label)
    a.set_title("training")
    for key, label in (("alone_p50_ms", "policy alone, p50"), ("lookahead_p50_ms", "with the lookahead, p50"),
                       ("serve_p99_ms", "Serve /v1/decide, p99 (sequential)")):
        pts = [(r["num_ues"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            b.plot(*zip(*pts, strict=True), marker="o", label=label)
    b.axhline(500, linestyle=":", color="gray", label="T0 = 500 ms (one frame)")
    b.set_title("decision time per frame (ms)")
    for ax in (a, b):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("UEs in the cell (N)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = parser(__doc__, out="bench_out/scale", quick={"num_ues": [3, 10], "iterations": 1, "frames": 5,
                                                         "lookahead_frames": 1, "requests": 5})
    ap.add_argument("--num-ues", type=int, nargs="+", default=[3, 10, 50, 100, 200])
    ap.add_argument("--iterations", type=int, default=2, help="timed training iterations per N (after 1 warm-up)")
    ap.add_argument("--frames", type=int, default=30, help="frames timed for the policy alone")
    ap.add_argument("--lookahead-frames", type=int, default=3, help="frames timed with the lookahead")
    ap.add_argument("--requests", type=int, default=50, help="sequential /v1/decide requests per N")
    args = parse(ap)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start_ray()
    before = load_average()
    print(f"load average before: {before}", flush=True)
    rows, checkpoint = [], None
    tmp = Path(tempfile.mkdtemp(prefix="scale"))
    for n in args.num_ues:
        row, r = train(n, args.iterations)
        policy = r.policy()
        row.update(decide_times(policy, n, args.frames, args.lookahead_frames))
        if checkpoint is None:
            checkpoint = r.save(tmp / f"n{n}")
        r.algo.stop()
        rows.append({"num_ues": n, **row})
        print(json.dumps(rows[-1]), flush=True)
        write_json(out / "scale.json", {"rows": rows, "load_average_before": before})  # so far
    for n, (p50, p99) in serve_times(checkpoint, args.num_ues, args.requests).items():
        row = next(r for r in rows if r["num_ues"] == n)
        row.update(serve_p50_ms=p50, serve_p99_ms=p99)
    after = load_average()
    print(f"load average after: {after}")
    stop_ray()
    table = markdown_table(
        ["N", "training s/iteration", "first iteration s (warm start)", "peak memory GiB", "policy alone ms p50 / p99",
         "with the lookahead ms p50 / p99", "Serve /v1/decide ms p50 / p99"],
        [[r["num_ues"], f"{r['s_per_iter']:.1f}", f"{r['first_s']:.1f}", f"{r['rss_gib']:.2f}",
          f"{r['alone_p50_ms']:.2f} / {r['alone_p99_ms']:.2f}",
          f"{r['lookahead_p50_ms']:.0f} / {r['lookahead_p99_ms']:.0f}",
          f"{r['serve_p50_ms']:.1f} / {r['serve_p99_ms']:.1f}"] for r in rows])
    write_markdown(out / "scale.md", table)
    write_json(out / "scale.json", {"rows": rows, "load_average_before": before, "load_average_after": after})
    plot(rows, out / "scale.png")


if __name__ == "__main__":
    run(main)
