"""Fig. 8: convergence of MAHPPO vs the IPPO ablation vs Local, and the headline numbers (Sec. 6.4.1).

Trains each algorithm for ``--steps`` env steps per seed (test scenario evaluated every 2 iterations,
deterministic policy), then writes ``fig8_convergence.png`` and ``fig8_convergence.md`` (final
test-scenario metrics as mean +- std over seeds, ratios to Local, wall time, env steps/s, peak RSS).

Run: ``python benchmarks/fig8_convergence.py --seeds 0 1 2 --steps 50000 --num-ues 3 --out bench_out/fig8``
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from _harness import (
    figure,
    markdown_table,
    mean_std,
    parse,
    parser,
    peak_memory,
    read_json,
    run,
    save_figure,
    start_ray,
    timer,
    write_json,
    write_markdown,
)


def _curve(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "curve.csv").open() as f:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def train_one(algo: str, seed: int, args: argparse.Namespace, out: Path) -> dict:
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.train import train

    kind = {"ippo": {"algo": "ippo"}, "shared": {"actor": "shared"}}.get(algo, {"actor": "per-ue"})  # the paper's
    settings = Experiment().with_flat({"num_ues": args.num_ues, "steps": args.steps, "seed": seed, "dnn": args.dnn,
                                       "beta": args.beta, "eval_every": 2, "checkpoint_every": 10, "lr": args.lr,
                                       "reuse_time": args.reuse_time, "lr_schedule": args.lr_schedule, **kind})
    run_dir = out / f"{algo}-seed{seed}"
    with timer() as t, peak_memory() as mem:
        summary = train(settings, run_dir, progress=not args.quiet, overwrite=True)  # a rerun replaces its runs
    return {**summary, "wall_s_total": t.wall, "peak_rss_gib": mem.gib, "curve": _curve(run_dir)}


def load(algo: str, seed: int, out: Path) -> dict:
    """A finished run's summary and curve (for ``--replot``)."""
    run_dir = out / f"{algo}-seed{seed}"
    summary = json.loads((run_dir / "summary.json").read_text())
    prev = read_json(out / "fig8_results.json")[algo]
    extra = next((r for r in prev if r["out"] == summary["out"]), {})
    return {**summary, "peak_rss_gib": extra.get("peak_rss_gib", float("nan")), "curve": _curve(run_dir)}


def main() -> None:
    ap = parser(__doc__, out="bench_out/fig8", seeds=[0, 1, 2],
                quick={"seeds": [0], "steps": 1024, "algos": ["mahppo"], "out": "bench_out/fig8_quick"})
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--num-ues", type=int, default=3)
    ap.add_argument("--dnn", default="resnet18")
    ap.add_argument("--beta", type=float, default=0.47)
    ap.add_argument("--algos", nargs="+", default=["mahppo", "ippo"], choices=["mahppo", "shared", "ippo"],
                    help="mahppo: per-UE actors (the paper); shared: the shared actor; ippo: the ablation")
    ap.add_argument("--lr", type=float, default=1e-4, help="learning rate (paper: 1e-4)")
    ap.add_argument("--lr-schedule", default="constant", choices=["constant", "linear"],
                    help="constant (the paper) or linear decay (mahppo train's default)")
    ap.add_argument("--reuse-time", type=int, default=10, help="K (paper: 10)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--replot", action="store_true", help="redraw the figure and table from finished runs")
    args = parse(ap)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.replot:
        start_ray()

    results: dict[str, list[dict]] = {a: [load(a, s, out) if args.replot else train_one(a, s, args, out)
                                          for s in args.seeds] for a in args.algos}
    base = results[args.algos[0]][0]["evaluation"]

    fig, ax = figure((7, 4.2))
    grid = np.linspace(0, args.steps, 60)
    for algo, runs in results.items():
        ys = []
        for r in runs:
            pts = [(c["env_steps"], c["test_reward"]) for c in r["curve"] if "test_reward" in c]
            x, y = np.array(pts).T
            ys.append(np.interp(grid, x, y))
        ys = np.array(ys)
        ax.plot(grid, ys.mean(0), label=f"{algo.upper()} (mean of {len(runs)} seeds)")
        ax.fill_between(grid, ys.mean(0) - ys.std(0), ys.mean(0) + ys.std(0), alpha=0.2)
    for name, style in (("local", "--"), ("static-search", ":")):
        ax.axhline(base[name]["reward"], ls=style, color="gray" if name == "local" else "black", label=name)
    ax.set_ylim(4 * base["local"]["reward"], 0)  # early random policies score far below; show the race
    ax.set_xlabel("env steps (frames)")
    ax.set_ylabel("test-scenario episode reward")
    ax.set_title(f"Fig. 8 reproduction: N={args.num_ues}, C=2, {args.dnn}, beta={args.beta}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, out / "fig8_convergence.png", dpi=120)

    def fmt(vals: list[float], digits: int = 4) -> str:
        return mean_std(vals, digits, "g", ".2g")

    rows = []
    for algo, runs in results.items():
        ev = [r["evaluation"]["trained"] for r in runs]
        rows.append([algo, fmt([e["frame_latency_per_task_s"] for e in ev]),
                     fmt([e["latency_vs_local"] for e in ev], 3), fmt([e["energy_per_task_j"] for e in ev]),
                     fmt([e["energy_vs_local"] for e in ev], 3), fmt([e["reward"] for e in ev]),
                     fmt([r["wall_time_s"] for r in runs], 3), fmt([r["env_steps_per_s"] for r in runs], 3),
                     fmt([r["peak_rss_gib"] for r in runs], 3)])
    for name in ("local", "static-search", "greedy", "random", "edge"):
        b = base[name]
        rows.append([name, f"{b['frame_latency_per_task_s']:.4g}", f"{b['latency_vs_local']:.3g}",
                     f"{b['energy_per_task_j']:.4g}", f"{b['energy_vs_local']:.3g}", f"{b['reward']:.4g}", "", "", ""])
    write_markdown(out / "fig8_convergence.md", markdown_table(
        ["policy", "frame latency / task (s)", "x Local", "energy / task (J)", "x Local", "episode reward",
         "wall time (s)", "env steps/s", "peak RSS (GiB)"], rows),
        note=f"N = {args.num_ues}, {args.dnn}, C = 2, beta = {args.beta}, lr = {args.lr}, K = {args.reuse_time}, "
             f"{args.steps} env steps, seeds {args.seeds}; test scenario (d = 50 m, K = 200), deterministic policy.")
    write_json(out / "fig8_results.json",
               {a: [{k: v for k, v in r.items() if k != "curve"} for r in runs] for a, runs in results.items()})


if __name__ == "__main__":
    run(main)
