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

import json
from pathlib import Path

import numpy as np
from _harness import (
    BENCH_BASELINES,
    cell_key,
    cell_order,
    figure,
    markdown_table,
    mean_std,
    parse,
    parser,
    progress,
    read_json,
    run,
    save_reward_vs_n,
    start_ray,
    test_cell,
    timer,
    write_json,
    write_markdown,
)

MIXED_CELL = ("resnet18", "resnet18", "vgg11", "vgg11", "mobilenetv2")
DNN_POOL = ("resnet18", "vgg11", "mobilenetv2")


def baselines(cell: str) -> dict[str, dict[str, float]]:
    from mahppo.marl_env.evaluation import evaluate
    from mahppo.marl_env.policies import make_baseline

    return {name: evaluate(make_baseline(name), test_cell(cell)) for name in BENCH_BASELINES}


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


def evaluate_on(run_dir: Path, cell: str) -> dict[str, float]:
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.marl_env.evaluation import evaluate

    policy = load_policy(run_dir)
    return evaluate(policy, test_cell(cell, policy.env))


def main() -> None:
    ap = parser(__doc__, out="bench_out/any_cell", seeds=[0, 1, 2],
                quick={"study": "n3", "seeds": [0], "steps": 1024, "out": "bench_out/any_cell_quick"})
    ap.add_argument("--study", choices=["n3", "per-n", "mixed"], default=None)
    ap.add_argument("--actors", nargs="+", default=["shared"], choices=["shared", "per-ue"])
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
    ap.add_argument("--replot", action="store_true")
    ap.add_argument("--only", nargs="*", default=[], metavar="STUDY",
                    help="report only these studies (e.g. n3-lin3e-4 per-n-lin3e-4 mixed-rankfeat)")
    ap.add_argument("--label", nargs="*", default=[], metavar="STUDY=TEXT",
                    help="the plot's line for these studies (studies with one label share a line)")
    ap.add_argument("--include", nargs="*", default=[], metavar="DIR",
                    help="also report the runs of these benchmark folders (e.g. a study run apart)")
    args = parse(ap)
    out = Path(args.out)
    path = out / "results.json"  # runs are appended as they finish: a rerun resumes
    data = read_json(path, {"runs": [], "baselines": {}})

    def save() -> None:
        write_json(path, data)

    def base_for(key: str) -> dict:
        if any(b not in data["baselines"].get(key, {}) for b in BENCH_BASELINES):  # e.g. a cache before rotate
            data["baselines"][key] = {**baselines(key), **data["baselines"].get(key, {})}
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
        start_ray()
        study = args.study + (f"-{args.tag}" if args.tag else "")
        jobs = []
        if args.study == "n3":
            jobs = [(a, s, 3, None) for a in args.actors for s in args.seeds]
        elif args.study == "per-n":
            jobs = [(a, s, n, None) for a in args.actors for n in args.num_ues for s in args.seeds]
        else:
            jobs = [(a, s, None, tuple(args.range)) for a in args.actors for s in args.seeds]
        for actor, seed, n, rng in progress(jobs, desc=study):
            if done(study=study, actor=actor, seed=seed, train_ues=n, train_range=list(rng) if rng else None):
                continue
            with timer() as total:
                run_dir = train_one(study, actor, seed, args.steps, out, num_ues=n, num_range=rng, lr=args.lr,
                                    extra=extra, pool=tuple(args.pool))
                wall = json.loads((run_dir / "wall.json").read_text())["wall_time_s"]
                cells = [cell_key(k) for k in ([n] if n else args.eval_ues)] + ([cell_key(None, MIXED_CELL)]
                                                                                if rng else [])
                evals = {}
                for cell in cells:
                    m = evaluate_on(run_dir, cell)
                    b = base_for(cell)
                    evals[cell] = {
                        "reward": m["reward"], "frame_latency_per_task_s": m["frame_latency_per_task_s"],
                        "energy_per_task_j": m["energy_per_task_j"],
                        "latency_vs_local": m["frame_latency_per_task_s"] / b["local"]["frame_latency_per_task_s"],
                        "energy_vs_local": m["energy_per_task_j"] / b["local"]["energy_per_task_j"]}
            data["runs"].append({"study": study, "actor": actor, "seed": seed, "train_ues": n,
                                 "train_range": list(rng) if rng else None, "steps": args.steps, "lr": args.lr,
                                 "set": extra, "pool": args.pool if rng else None,
                                 "wall_time_s": wall, "total_s": total.wall, "evals": evals,
                                 "dir": str(run_dir)})
            save()
            print(f"{study} {actor} seed {seed} N={n or rng}: " + ", ".join(
                f"{c}: {e['reward']:.3f}" for c, e in evals.items()), flush=True)
    for other in args.include:
        extra = read_json(Path(other) / "results.json")
        data = {"runs": data["runs"] + extra["runs"], "baselines": {**extra["baselines"], **data["baselines"]}}
    if args.only:
        data["runs"] = [r for r in data["runs"] if r["study"] in args.only]
    for cell in {c for r in data["runs"] for c in r["evals"]}:  # baselines a cache predates (e.g. rotate)
        have = data["baselines"].get(cell, {})
        if any(b not in have for b in BENCH_BASELINES):
            data["baselines"][cell] = {**baselines(cell), **have}
    labels = {}
    for item in args.label:
        study, sep, text = item.partition("=")
        if not sep or not text:
            ap.error(f"--label {item!r}: expected STUDY=TEXT")
        labels[study] = text
    report(data, out, labels)


def report(data: dict, out: Path, labels: dict[str, str] | None = None) -> None:
    """The table (per study, actor and evaluated cell: mean ± std over seeds) and the reward-vs-N figure
    (a line per actor and kind of study, or per ``labels[study]``)."""
    groups: dict[tuple, list[dict]] = {}
    for r in data["runs"]:
        for cell, e in r["evals"].items():
            groups.setdefault((r["study"], r["actor"], cell), []).append({**e, "wall": r["wall_time_s"]})
    rows_out = []
    for (study, actor, cell), rows in sorted(groups.items(), key=lambda item: (*item[0][:2], cell_order(item[0][2]))):
        b = data["baselines"].get(cell, {})
        ss = b.get("static-search", {}).get("reward", float("nan"))
        rot = b.get("rotate", {}).get("reward", float("nan"))
        lo = b.get("local", {}).get("reward", float("nan"))
        rows_out.append([study, actor, cell, len(rows), mean_std([r["reward"] for r in rows]), f"{ss:.3f}",
                         f"{rot:.3f}", f"{lo:.3f}", mean_std([r["latency_vs_local"] for r in rows], 2),
                         mean_std([r["energy_vs_local"] for r in rows], 2),
                         f"{sum(r['reward'] > ss for r in rows)}/{len(rows)}",
                         f"{sum(r['reward'] > rot for r in rows)}/{len(rows)}", mean_std([r["wall"] for r in rows], 0)])
    write_markdown(out / "any_cell.md", markdown_table(
        ["study", "actor", "cell", "seeds", "reward", "static-search", "rotate", "Local", "latency x Local",
         "energy x Local", "better than static-search", "better than rotate", "wall (s)"], rows_out))
    fig, ax = figure()
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


if __name__ == "__main__":
    run(main)
