"""The "any cell" benchmark: the learned decision-maker against static-search, rotate and Local, per N and seed.

Studies (each run is appended to ``OUT/results.json`` as it finishes, so an interrupted benchmark
resumes where it stopped; ``--replot`` redraws from that file):

- ``n3``: N = 3 (the paper's headline cell), each ``--actors`` kind, ``--steps`` env steps per seed;
- ``per-n``: one policy per N in ``--num-ues`` (``--steps`` each);
- ``mixed``: one shared policy trained on N drawn from ``--range`` per episode (each UE's DNN drawn from
  ``--pool``), evaluated at every N of ``--eval-ues`` (N it never saw included; ResNet18 UEs) and on a
  mixed-DNN cell (2 ResNet18, 2 VGG11, 1 MobileNetV2);

every policy evaluated on the test scenario (d = 50 m, K = 200; ResNet18, C = 2, beta = 0.47), with
the deterministic policy. Prints the table (mean +- std over seeds) and writes ``any_cell.png``.

    python benchmarks/any_cell.py --study n3 --actors shared per-ue --seeds 0 1 2 --steps 50000
    python benchmarks/any_cell.py --study per-n --num-ues 5 7 10 --steps 100000
    python benchmarks/any_cell.py --study mixed --range 2 10 --steps 150000 --eval-ues 2 3 4 5 6 7 8 9 10 11 12
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

MIXED_CELL = ("resnet18", "resnet18", "vgg11", "vgg11", "mobilenetv2")
DNN_POOL = ("resnet18", "vgg11", "mobilenetv2")
BENCH_BASELINES = ("local", "static-search", "rotate")


def baselines(num_ues: int | None, specs: tuple[str, ...] | None = None) -> dict[str, dict[str, float]]:
    from mahppo.marl_env.config import EnvConfig
    from mahppo.marl_env.evaluation import evaluate
    from mahppo.marl_env.policies import make_baseline

    kw = {"ue_specs": list(specs)} if specs else {"num_ues": num_ues}
    cfg = EnvConfig.from_kwargs(scenario="test", **kw)
    return {name: evaluate(make_baseline(name), cfg) for name in BENCH_BASELINES}


def cell_key(num_ues: int | None, specs: tuple[str, ...] | None) -> str:
    return "mix:" + ",".join(specs) if specs else f"n{num_ues}"


def train_one(study: str, actor: str, seed: int, steps: int, out: Path, *, num_ues: int | None = None,
              num_range: tuple[int, int] | None = None, lr: float | None = None,
              extra: dict | None = None, pool: tuple[str, ...] = DNN_POOL) -> Path:
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.train import train

    updates: dict = {"actor": actor, "seed": seed, "steps": steps, "checkpoint_every": 10_000, "eval_every": 10}
    if num_range:
        updates.update(num_ues_range=num_range, dnn_pool=tuple(pool))
    else:
        updates["num_ues"] = num_ues
    if lr:
        updates["lr"] = lr
    updates.update(extra or {})
    cell = f"r{num_range[0]}-{num_range[1]}" if num_range else f"n{num_ues}"
    run_dir = out / "runs" / f"{study}-{actor}-{cell}-s{seed}"
    summary = train(Experiment().with_flat(updates), run_dir, progress=False, final_eval=False, overwrite=True)
    (run_dir / "wall.json").write_text(json.dumps({"wall_time_s": summary["wall_time_s"]}))
    return run_dir


def evaluate_on(run_dir: Path, num_ues: int | None, specs: tuple[str, ...] | None = None) -> dict[str, float]:
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.marl_env.config import EnvConfig
    from mahppo.marl_env.evaluation import evaluate

    policy = load_policy(run_dir)
    base = {k: v for k, v in policy.env_defaults.items() if k not in ("num_ues", "ue_specs")}
    kw = {"ue_specs": list(specs)} if specs else {"num_ues": num_ues}
    return evaluate(policy, EnvConfig.from_kwargs(**{**base, **kw, "scenario": "test"}))


def load_results(out: Path) -> tuple[Path, dict]:
    """``OUT/results.json`` and what it holds so far (runs are appended as they finish: a rerun resumes)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    return path, (json.loads(path.read_text()) if path.exists() else {"runs": [], "baselines": {}})


def save_results(path: Path, data: dict) -> None:
    """Replace ``results.json`` atomically (an interrupted write leaves the previous one)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", choices=["n3", "per-n", "mixed"], default=None)
    ap.add_argument("--actors", nargs="+", default=["shared"], choices=["shared", "per-ue"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--num-ues", nargs="+", type=int, default=[5, 7, 10])
    ap.add_argument("--range", nargs=2, type=int, default=[2, 10])
    ap.add_argument("--eval-ues", nargs="+", type=int, default=list(range(2, 13)))
    ap.add_argument("--lr", type=float, default=None,
                    help="override the default lr (params.ACTOR_LR: 3e-4 per-ue, 6e-4 shared, decaying linearly)")
    ap.add_argument("--pool", nargs="+", default=list(DNN_POOL), metavar="DNN",
                    help="mixed study: the DNNs drawn per UE (uniformly; repeat a name to weight it)")
    ap.add_argument("--tag", default="", help="suffix of the study name (e.g. lr3e-4)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="flat Experiment overrides (e.g. lr_schedule=linear zeta=0.01); JSON values")
    ap.add_argument("--out", default="bench_out/any_cell")
    ap.add_argument("--replot", action="store_true")
    ap.add_argument("--only", nargs="*", default=[], metavar="STUDY",
                    help="report only these studies (e.g. n3-lin3e-4 per-n-lin3e-4 mixed-rankfeat)")
    ap.add_argument("--label", nargs="*", default=[], metavar="STUDY=TEXT",
                    help="the plot's line for these studies (studies with one label share a line)")
    ap.add_argument("--include", nargs="*", default=[], metavar="DIR",
                    help="also report the runs of these benchmark folders (e.g. a study run apart)")
    args = ap.parse_args()
    out = Path(args.out)
    path, data = load_results(out)

    def save() -> None:
        save_results(path, data)

    def base_for(n: int | None, specs: tuple[str, ...] | None = None) -> dict:
        key = cell_key(n, specs)
        if any(b not in data["baselines"].get(key, {}) for b in BENCH_BASELINES):  # e.g. a cache before rotate
            data["baselines"][key] = {**baselines(n, specs), **data["baselines"].get(key, {})}
            save()
        return data["baselines"][key]

    def done(**match) -> bool:
        return any(all(r.get(k) == v for k, v in match.items()) for r in data["runs"])

    extra = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set {item!r}: expected KEY=VALUE")
        try:
            extra[key] = json.loads(value)
        except ValueError:
            extra[key] = value
    if not args.replot and args.study:
        from mahppo.algorithms.runs.run import init_ray, set_torch_threads

        set_torch_threads(1)
        init_ray()
        study = args.study + (f"-{args.tag}" if args.tag else "")
        jobs = []
        if args.study == "n3":
            jobs = [(a, s, 3, None) for a in args.actors for s in args.seeds]
        elif args.study == "per-n":
            jobs = [(a, s, n, None) for a in args.actors for n in args.num_ues for s in args.seeds]
        else:
            jobs = [(a, s, None, tuple(args.range)) for a in args.actors for s in args.seeds]
        for actor, seed, n, rng in jobs:
            if done(study=study, actor=actor, seed=seed, train_ues=n, train_range=list(rng) if rng else None):
                continue
            t0 = time.perf_counter()
            run_dir = train_one(study, actor, seed, args.steps, out, num_ues=n, num_range=rng, lr=args.lr,
                                extra=extra, pool=tuple(args.pool))
            wall = json.loads((run_dir / "wall.json").read_text())["wall_time_s"]
            cells = [(k, None) for k in ([n] if n else args.eval_ues)] + ([(None, MIXED_CELL)] if rng else [])
            evals = {}
            for k, specs in cells:
                m = evaluate_on(run_dir, k, specs)
                b = base_for(k, specs)
                evals[cell_key(k, specs)] = {
                    "reward": m["reward"], "frame_latency_per_task_s": m["frame_latency_per_task_s"],
                    "energy_per_task_j": m["energy_per_task_j"],
                    "latency_vs_local": m["frame_latency_per_task_s"] / b["local"]["frame_latency_per_task_s"],
                    "energy_vs_local": m["energy_per_task_j"] / b["local"]["energy_per_task_j"]}
            data["runs"].append({"study": study, "actor": actor, "seed": seed, "train_ues": n,
                                 "train_range": list(rng) if rng else None, "steps": args.steps, "lr": args.lr,
                                 "set": extra, "pool": args.pool if rng else None,
                                 "wall_time_s": wall, "total_s": time.perf_counter() - t0, "evals": evals,
                                 "dir": str(run_dir)})
            save()
            print(f"{study} {actor} seed {seed} N={n or rng}: " + ", ".join(
                f"{c}: {e['reward']:.3f}" for c, e in evals.items()), flush=True)
    for other in args.include:
        extra = json.loads((Path(other) / "results.json").read_text())
        data = {"runs": data["runs"] + extra["runs"], "baselines": {**extra["baselines"], **data["baselines"]}}
    if args.only:
        data["runs"] = [r for r in data["runs"] if r["study"] in args.only]
    for cell in {c for r in data["runs"] for c in r["evals"]}:  # baselines a cache predates (e.g. rotate)
        have = data["baselines"].get(cell, {})
        if any(b not in have for b in BENCH_BASELINES):
            n, specs = (int(cell[1:]), None) if cell.startswith("n") else (None, tuple(cell[4:].split(",")))
            data["baselines"][cell] = {**baselines(n, specs), **have}
    labels = {}
    for item in args.label:
        study, sep, text = item.partition("=")
        if not sep or not text:
            ap.error(f"--label {item!r}: expected STUDY=TEXT")
        labels[study] = text
    report(data, out, labels)


def _fmt(vals: list[float], digits: int = 3) -> str:
    a = np.asarray(vals, dtype=float)
    return f"{a.mean():.{digits}f} ± {a.std():.{digits}f}" if len(a) > 1 else f"{a.mean():.{digits}f}"


def report(data: dict, out: Path, labels: dict[str, str] | None = None) -> None:
    """The table (per study, actor and evaluated cell: mean ± std over seeds) and the reward-vs-N figure
    (a line per actor and kind of study, or per ``labels[study]``)."""
    groups: dict[tuple, list[dict]] = {}
    for r in data["runs"]:
        for cell, e in r["evals"].items():
            groups.setdefault((r["study"], r["actor"], cell), []).append({**e, "wall": r["wall_time_s"]})
    lines = ["| study | actor | cell | seeds | reward | static-search | rotate | Local | latency x Local | "
             "energy x Local | better than static-search | better than rotate | wall (s) |", "|" + "---|" * 13]
    def order(item: tuple) -> tuple:
        (study, actor, cell), _ = item
        return (study, actor, int(cell[1:]) if cell.startswith("n") else 10**6)

    for (study, actor, cell), rows in sorted(groups.items(), key=order):
        b = data["baselines"].get(cell, {})
        ss = b.get("static-search", {}).get("reward", float("nan"))
        rot = b.get("rotate", {}).get("reward", float("nan"))
        lo = b.get("local", {}).get("reward", float("nan"))
        wins = sum(r["reward"] > ss for r in rows)
        wins_rot = sum(r["reward"] > rot for r in rows)
        lines.append(f"| {study} | {actor} | {cell} | {len(rows)} | {_fmt([r['reward'] for r in rows])} | {ss:.3f} | "
                     f"{rot:.3f} | {lo:.3f} | {_fmt([r['latency_vs_local'] for r in rows], 2)} | "
                     f"{_fmt([r['energy_vs_local'] for r in rows], 2)} | {wins}/{len(rows)} | {wins_rot}/{len(rows)} | "
                     f"{_fmt([r['wall'] for r in rows], 0)} |")
    fig, ax = write_table(lines, out / "any_cell.md")
    ns = sorted({int(c[1:]) for (_, _, c) in groups if c.startswith("n")})
    series: dict[str, list[tuple[int, list[float]]]] = {}
    for (study, actor, cell), rows in groups.items():  # per-N studies of one actor form one line
        if cell.startswith("n"):
            kind = "one policy for N in 2..10" if study.startswith("mixed") else "one policy per N"
            name = (labels or {}).get(study, f"{actor} actor: {kind}")
            series.setdefault(name, []).append((int(cell[1:]), [r["reward"] for r in rows]))
    for name, pts in sorted(series.items()):
        pts.sort()
        x = [n for n, _ in pts]
        ax.errorbar(x, [np.mean(v) for _, v in pts], yerr=[np.std(v) for _, v in pts], fmt="-o", capsize=3,
                    label=name)
    for name, style in (("static-search", "k:"), ("rotate", "k-."), ("local", "k--")):
        pts = [(n, data["baselines"][f"n{n}"][name]["reward"]) for n in ns
               if name in data["baselines"].get(f"n{n}", {})]
        if pts:
            ax.plot(*zip(*pts, strict=True), style, marker="_", markersize=14, label=name)
    save_reward_vs_n(fig, ax, out / "any_cell.png")


def write_table(lines: list[str], path: Path):
    """Write and print a Markdown table; return a new figure and axes for its plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = "\n".join(lines)
    path.write_text(table + "\n")
    print(table)
    return plt.subplots(figsize=(8, 4.4))


def save_reward_vs_n(fig, ax, path: Path) -> None:
    """Label, scale and save a reward-vs-N figure (this benchmark's and ``lookahead.py``'s)."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ax.set_xlabel("N (UEs in the cell, test scenario)")
    ax.set_ylabel("episode reward (sum of Eq. 12)")
    ax.set_yscale("symlog", linthresh=1.0)  # rewards from about -0.1 to -20: linear above -1
    lo, hi = ax.get_ylim()
    ax.set_yticks([t for t in (-0.1, -0.25, -0.5, -1, -2, -5, -10, -20, -50, -100) if lo <= t <= hi])
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    from mahppo.runtime.hashseed import restart_with_fixed_hash_seed

    restart_with_fixed_hash_seed(sys.argv)  # the same seed, the same run (runtime/hashseed.py)
    main()
