"""Every policy on the same evaluation episodes of ``--scenario dynamic`` (docs/dynamic.md, docs/dynamic.png).

Cells: N = 5, 10, 20 (``--ues``), C = 2, each with ResNet18 on every UE and with a mixed-DNN pool (each UE's
DNN drawn per episode from ResNet18, VGG11, MobileNetV2); the dynamic scenario's fixed evaluation episodes
(``marl_env.evaluation``: seeds 1000000 + e, ``--episodes``, default 32). Policies: the learned runs given by
``--runs DIR ...`` (each a ``mahppo train --scenario dynamic --actor shared`` folder; several seeds of one
configuration: give them as ``NAME=DIR,DIR,...``), every classical rule (``rotate``, ``maxweight``,
``myopic``), ``static-search`` (reduced search on the dynamic cell, below; ResNet18 cells only: a pool draws
a new cell per episode), Local; ``--lookahead`` adds the sampled lookahead around ``maxweight`` at N <= 5.

Cost = minus the episode return (the sum of Eq. 12 over the 60 frames plus the horizon's backlog charge);
lower is better. Per cell: the mean cost, the interquartile mean (IQM) with its 95 % stratified-bootstrap
interval, and the probability of improvement (PoI) over the best classical rule of the cell (the lowest mean
cost of rotate, maxweight and myopic), with ``rliable`` (each evaluation episode x training seed one "run"
of the cell's one task).

    .venv/bin/python benchmarks/dynamic.py                  # baselines only
    .venv/bin/python benchmarks/dynamic.py --runs learned=runs/dyn-s0,runs/dyn-s1
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import _harness as bench
import numpy as np

CLASSICAL = ("rotate", "maxweight", "myopic")
POOL = ("resnet18", "vgg11", "mobilenetv2")


def cells(ues: list[int], pools: list[str]) -> list[tuple[str, dict]]:
    out = []
    for n in ues:
        for pool in pools:
            if pool == "resnet18":
                out.append((f"N={n} resnet18", {"num_ues": n, "dnn": "resnet18"}))
            else:
                out.append((f"N={n} mixed", {"num_ues": n, "dnn_pool": POOL, "obs_mode": "agent"}))
    return out


def policies(args, label: str, kw: dict) -> dict[str, list]:
    """Name -> the policies to evaluate (one per training seed for a learned run)."""
    from mahppo.marl_env.lookahead import Lookahead
    from mahppo.marl_env.policies import StaticSearchPolicy, make_baseline

    out: dict[str, list] = {}
    for spec in args.runs:
        from mahppo.algorithms.acting.policy import load_policy

        name, _, dirs = spec.rpartition("=")
        paths = dirs.split(",")
        out[name or Path(paths[0]).name] = [load_policy(p) for p in paths]
    for name in (*CLASSICAL, "local"):
        out[name] = [make_baseline(name)]
    if "dnn_pool" not in kw and not args.no_static_search:
        out["static-search"] = [StaticSearchPolicy(powers=(0.25, 1.0), restarts=0, search_episodes=2)]
    if args.lookahead and kw["num_ues"] <= 5:
        out["maxweight+lookahead"] = [Lookahead(make_baseline("maxweight"))]
    return out


def interval_estimates(costs: dict[str, np.ndarray], reps: int) -> dict[str, tuple[float, float, float]]:
    """rliable's IQM and its 95 % stratified-bootstrap interval, per policy (costs: ``[runs]``)."""
    from _rliable import library, metrics

    scores = {k: v.reshape(-1, 1) for k, v in costs.items()}
    est, ci = library().get_interval_estimates(scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps,
                                               random_state=np.random.RandomState(0))
    return {k: (float(est[k][0]), float(ci[k][0, 0]), float(ci[k][1, 0])) for k in costs}


def improvement(costs: dict[str, np.ndarray], best: str) -> dict[str, float]:
    """P(policy's cost < the best classical rule's), rliable's probability of improvement (on minus the cost)."""
    from _rliable import metrics

    ref = -costs[best].reshape(-1, 1)
    return {k: float(metrics.probability_of_improvement(-v.reshape(-1, 1), ref)) for k, v in costs.items()}


def main() -> int:
    ap = bench.parser(__doc__, out="docs", quick={"episodes": 4, "ues": [5], "reps": 200})
    ap.add_argument("--runs", nargs="*", default=[], metavar="[NAME=]DIR[,DIR...]",
                    help="learned runs (a name and one folder per training seed)")
    ap.add_argument("--ues", type=int, nargs="+", default=[5, 10, 20], help="N of each cell (default 5 10 20)")
    ap.add_argument("--pools", nargs="+", default=["resnet18", "mixed"], choices=["resnet18", "mixed"])
    ap.add_argument("--episodes", type=int, default=32, help="evaluation episodes per cell (default 32)")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    ap.add_argument("--lookahead", action="store_true", help="add maxweight + the sampled lookahead at N <= 5")
    ap.add_argument("--no-static-search", action="store_true", help="leave static-search out (its search is slow)")
    ap.add_argument("--redraw", action="store_true", help="rewrite the page and the PNG from OUT/dynamic.json")
    args = bench.parse(ap)
    if args.redraw:
        data = json.loads((Path(args.out) / "dynamic.json").read_text())
        write(args, data["results"], data["context"])
        return 0
    from mahppo.marl_env.config import EnvConfig
    from mahppo.marl_env.evaluation import episode_metrics

    results: dict[str, dict] = {}
    for label, kw in cells(args.ues, args.pools):
        cfg = EnvConfig.from_kwargs(**kw, scenario="dynamic")
        costs, wall, left = {}, {}, {}
        for name, pols in policies(args, label, kw).items():
            t0 = time.perf_counter()
            runs = [m for p in pols for m in episode_metrics(p, cfg, episodes=args.episodes)]
            wall[name] = time.perf_counter() - t0
            costs[name] = -np.array([m["reward"] for m in runs])
            left[name] = float(np.mean([m["tasks_left"] for m in runs]))
            print(f"{label:16s} {name:20s} mean cost {costs[name].mean():8.3f}  ({wall[name]:.0f} s)", flush=True)
        best = min(CLASSICAL, key=lambda k: costs[k].mean())
        iqm = interval_estimates(costs, args.reps)
        poi = improvement(costs, best)
        results[label] = {"best_classical": best, "policies": {
            k: {"mean_cost": float(costs[k].mean()), "iqm": iqm[k][0], "iqm_ci": [iqm[k][1], iqm[k][2]],
                "poi_vs_best": poi[k], "tasks_left": left[k], "wall_s": wall[k], "costs": costs[k].tolist()}
            for k in costs}}
    write(args, results)
    return 0


def write(args, results: dict[str, dict], ctx: dict | None = None) -> None:
    ctx = ctx or {**bench.context(), "episodes": args.episodes}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dynamic.json").write_text(json.dumps({"context": ctx, "results": results}, indent=1))
    rows = []
    for label, r in results.items():
        best = r["best_classical"]
        ref = r["policies"][best]["mean_cost"]
        for k, m in sorted(r["policies"].items(), key=lambda kv: kv[1]["mean_cost"]):
            lo, hi = m["iqm_ci"]
            rows.append([label, k + (" (best rule)" if k == best else ""), f"{m['mean_cost']:.3f}",
                         f"{100 * (ref - m['mean_cost']) / ref:+.1f} %", f"{m['iqm']:.3f} [{lo:.3f}, {hi:.3f}]",
                         f"{m['poi_vs_best']:.2f}", f"{m['tasks_left']:.0f}"])
    table = bench.markdown_table(["cell", "policy", "mean cost", "cost below the best rule", "IQM [95 % CI]",
                                  "P(better than best rule)", "tasks left at the horizon"], rows)
    text = (f"# Dynamic cells: every policy on the same evaluation episodes\n\n`{ctx['command']}` (load average "
            f"{ctx['load_average']}, {ctx['cpus']} CPUs, {ctx['time_utc']}; {ctx['episodes']} evaluation episodes "
            f"per cell, seeds 1000000 + e). The full table (N = 5, 10, 20; 32 episodes): `"
            f".venv/bin/python benchmarks/dynamic.py`; with learned runs: `--runs NAME=DIR,DIR,...`.\n\n"
            "The dynamic scenario (docs/environment-dynamics.md): Poisson arrivals at 1.3 x each UE's local "
            "capacity, i.i.d. Rayleigh fading, a 2 m random walk per frame, 60-frame episodes, C = 2, "
            "beta = 0.47. Cost: minus the episode return (Eq. 12 summed over the frames, plus the backlog "
            "charge at the horizon); lower is better. IQM and its 95 % stratified-bootstrap interval, and the "
            "probability that a policy's episode cost is below the best classical rule's (rotate, maxweight, "
            "myopic: the lowest mean cost of the cell), from `rliable`. static-search: per-UE fixed decisions "
            "searched on 2 episodes of the cell (powers 0.25 and 1 W, no restarts), ResNet18 cells only.\n\n"
            + table + "\n\n![IQM cost per cell](dynamic.png)\n")
    (out / "dynamic.md").write_text(text)
    print(text)
    plot(results, out / "dynamic.png")


def plot(results: dict[str, dict], path: Path) -> None:
    fig, axes = bench.figure(figsize=(4.2 * len(results) ** 0.5 + 6, 4.6))
    labels = list(results)
    names = sorted({k for r in results.values() for k in r["policies"]},
                   key=lambda k: (k in ("local", "static-search"), k))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        xs, ys, lo, hi = [], [], [], []
        for i, label in enumerate(labels):
            m = results[label]["policies"].get(name)
            if m is None:
                continue
            ref = results[label]["policies"][results[label]["best_classical"]]["iqm"]
            xs.append(i + (j - len(names) / 2) * width)
            ys.append(m["iqm"] / ref)
            lo.append((m["iqm"] - m["iqm_ci"][0]) / ref)
            hi.append((m["iqm_ci"][1] - m["iqm"]) / ref)
        axes.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=name)
    axes.axhline(1.0, color="k", lw=0.8, ls="--")
    axes.set_xticks(range(len(labels)), labels, rotation=20)
    axes.set_ylabel("IQM episode cost / best rule's IQM (lower is better)")
    axes.set_ylim(0, 3)
    axes.legend(fontsize=8, ncols=2)
    bench.save_figure(fig, path)


if __name__ == "__main__":
    bench.run(main)
