"""Expert iteration (``algorithms/acting/expert.py``) against the other starts, per seed, on the test cell.

Each variant is a set of ``mahppo train`` options (flat keys); every (variant, seed) run trains
``--steps`` env steps (the teacher's frames included) and its learned policy alone is evaluated on the
paper's test scenario (d = 50 m, K = 200; deterministic, one fixed episode), beside ``rotate``,
``static-search`` and Local. Each finished run is appended to ``OUT/results.json`` (a crash loses
nothing; a rerun skips what is there). Prints per-seed rewards, the mean, the IQM with a 95 %
stratified-bootstrap interval (``rliable``) and the wall time of each run.

    python benchmarks/expert_iteration.py --variants default expert --seeds 0 1 2 3 4 --steps 50000
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
from _harness import parse, parser, read_json, run, start_ray, timer, write_json

VARIANTS: dict[str, dict] = {
    "default": {},  # what `mahppo train` gives
    "none": {"warm_start": "none"},
    "rotate": {"warm_start": "rotate"},
    "expert": {"warm_start": "expert"},
    "expert-bc": {"warm_start": "expert", "expert_iterations": 0},
    "expert-lr3": {"warm_start": "expert", "lr": 3e-4},
}
BASELINES = ("local", "static-search", "rotate")


def run_one(variant: str, flat: dict, num_ues: int, seed: int, steps: int, out: Path) -> dict:
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.run import test_scenario
    from mahppo.algorithms.runs.train import train
    from mahppo.marl_env.evaluation import evaluate

    exp = Experiment().with_flat({"num_ues": num_ues, "seed": seed, "steps": steps, "checkpoint_every": 10_000,
                                  "eval_every": 4, **flat})
    run_dir = out / "runs" / f"{variant}-n{num_ues}-s{seed}"
    load0 = os.getloadavg()[0]
    summary = train(exp, run_dir, progress=False, final_eval=False, overwrite=True)
    alone = evaluate(load_policy(run_dir), test_scenario(exp.env))
    with (run_dir / "curve.csv").open() as f:
        curve = [(float(r["env_steps"]), float(r["test_reward"])) for r in csv.DictReader(f) if r.get("test_reward")]
    return {"variant": variant, "flat": flat, "num_ues": num_ues, "seed": seed, "steps": steps,
            "warm_start": exp.warm_start, "reward": alone["reward"], "wall_time_s": summary["wall_time_s"],
            "env_steps": summary["env_steps"], "warm_start_stats": summary.get("warm_start", {}),
            "first_test_reward": curve[0][1] if curve else None, "curve": curve,
            "load_before": load0, "load_after": os.getloadavg()[0]}


def baselines(num_ues: int) -> dict[str, float]:
    from mahppo.marl_env.config import EnvConfig
    from mahppo.marl_env.evaluation import evaluate
    from mahppo.marl_env.policies import make_baseline

    cfg = EnvConfig.from_kwargs(num_ues=num_ues, scenario="test")
    return {name: evaluate(make_baseline(name), cfg)["reward"] for name in BASELINES}


def iqm_ci(values: list[float], reps: int = 2000) -> tuple[float, float, float]:
    """IQM and its 95 % stratified-bootstrap interval (rliable) of one variant's per-seed rewards."""
    from _rliable import library, metrics

    rly = library()
    scores = {"x": np.asarray(values, dtype=float).reshape(-1, 1)}
    point, ci = rly.get_interval_estimates(scores, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=reps)
    return float(point["x"][0]), float(ci["x"][0, 0]), float(ci["x"][1, 0])


def report(results: list[dict], base: dict[str, dict[str, float]]) -> None:
    keys = sorted({(r["variant"], r["num_ues"], r["steps"]) for r in results})
    for variant, n, steps in keys:
        rows = sorted((r for r in results if (r["variant"], r["num_ues"], r["steps"]) == (variant, n, steps)),
                      key=lambda r: r["seed"])
        vals = [r["reward"] for r in rows]
        b = {k: base.get(str(n), {}).get(k, float("nan")) for k in BASELINES}
        iqm, lo, hi = iqm_ci(vals) if len(vals) >= 3 else (float("nan"),) * 3
        beats = {k: sum(v > b[k] for v in vals) for k in ("rotate", "static-search")}
        wall = np.mean([r["wall_time_s"] for r in rows])
        load = np.mean([r["load_before"] for r in rows])
        print(f"N={n} {variant} {steps} steps ({rows[0]['warm_start']}): seeds "
              + ", ".join(f"{r['seed']}: {r['reward']:.3f}" for r in rows)
              + f" | mean {np.mean(vals):.3f}, IQM {iqm:.3f} [{lo:.3f}, {hi:.3f}]"
              + f" | better than rotate ({b['rotate']:.3f}) {beats['rotate']}/{len(vals)}, than static-search "
              + f"({b['static-search']:.3f}) {beats['static-search']}/{len(vals)}, Local {b['local']:.3f}"
              + f" | wall {wall:.0f} s (load {load:.1f})")


def main() -> None:
    ap = parser(__doc__, out="bench_out/expert_iteration", seeds=[0, 1, 2, 3, 4])
    ap.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS))
    ap.add_argument("--num-ues", nargs="+", type=int, default=[3])
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--set", nargs="*", default=[], help="extra KEY=JSON options for every variant")
    ap.add_argument("--tag", default="", help="suffix of the variant names (with --set)")
    ap.add_argument("--report", action="store_true", help="print the table of OUT/results.json only")
    args = parse(ap)
    args.out = Path(args.out)
    path = args.out / "results.json"
    data = read_json(path, {"baselines": {}, "runs": []})
    for n in args.num_ues:
        if str(n) not in data["baselines"]:
            data["baselines"][str(n)] = baselines(n)
    if not args.report:
        start_ray()
        extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
        for n in args.num_ues:
            for seed in args.seeds:
                for variant in args.variants:
                    name = variant + args.tag
                    if any(r["variant"] == name and r["seed"] == seed and r["num_ues"] == n and r["steps"] == args.steps
                           for r in data["runs"]):
                        continue
                    with timer() as t:
                        row = run_one(name, {**VARIANTS[variant], **extra}, n, seed, args.steps, args.out)
                    data["runs"].append(row)
                    write_json(path, data)
                    print(f"{name} N={n} seed {seed}: {row['reward']:.3f} (first eval {row['first_test_reward']}, "
                          f"{t.wall:.0f} s, load {row['load_before']:.1f}-{row['load_after']:.1f})",
                          flush=True)
    report(data["runs"], data["baselines"])


if __name__ == "__main__":
    run(main)  # the same seed, the same run (a fixed string-hash seed)
