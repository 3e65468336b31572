"""Decision-time lookahead (``marl_env.lookahead``) on the "any cell" benchmark's trained policies.

Re-evaluates the policies of ``benchmarks/any_cell.py`` folders (their ``results.json``: every run, its
folder and the cells it was evaluated on) on the same test cells, each with and without the lookahead,
and ``static-search`` and ``rotate`` with and without it (the lookahead improves any base policy, so the
baselines get it too). No training: the runs are the ones the any-cell commands made. Writes
``OUT/results.json``, ``OUT/lookahead.md`` (mean ± std over seeds) and ``OUT/lookahead.png``.

    python benchmarks/lookahead.py --runs bench_out/dd3_a bench_out/dd3_b bench_out/dd5 --out bench_out/lookahead
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from any_cell import (  # noqa: E402
    BENCH_BASELINES,
    _fmt,
    load_results,
    save_results,
    save_reward_vs_n,
    write_table,
)

LOOKAHEAD_BASES = ("static-search", "rotate")


def cell_config(cell: str, defaults: dict | None = None):
    from mahppo.marl_env.config import EnvConfig

    kw = {"num_ues": int(cell[1:])} if cell.startswith("n") else {"ue_specs": cell[4:].split(",")}
    base = {k: v for k, v in (defaults or {}).items() if k not in ("num_ues", "ue_specs")}
    return EnvConfig.from_kwargs(**{**base, **kw, "scenario": "test"})


def measure(policy, config) -> dict[str, float]:
    """The policy alone and with the lookahead on ``config``: reward, latency, energy, decision time."""
    from mahppo.marl_env.evaluation import evaluate
    from mahppo.marl_env.lookahead import Lookahead

    plain = evaluate(policy, config)
    la = Lookahead(policy)
    t0 = time.perf_counter()
    ahead = evaluate(la, config)
    wall = time.perf_counter() - t0
    keys = ("reward", "frame_latency_per_task_s", "energy_per_task_j")
    return {**{k: plain[k] for k in keys}, **{f"{k}_la": ahead[k] for k in keys},
            "ms_per_frame_la": 1000 * wall / max(la.frames, 1), "frames_la": la.frames, "rollouts_la": la.rollouts,
            "deviations_la": la.deviations}


def _run_dir(folder: Path, recorded: str) -> Path:
    """A run's folder: as recorded, else under ``FOLDER/runs/`` (a benchmark folder moved or made elsewhere)."""
    path = Path(recorded)
    return path if path.is_dir() else folder / "runs" / path.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="any_cell.py output folders")
    ap.add_argument("--only", nargs="*", default=[], metavar="STUDY", help="only these studies")
    ap.add_argument("--out", default="bench_out/lookahead")
    args = ap.parse_args()
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.algorithms.runs.run import set_torch_threads
    from mahppo.marl_env.evaluation import evaluate
    from mahppo.marl_env.policies import make_baseline

    set_torch_threads(1)
    out = Path(args.out)
    path, data = load_results(out)

    def save() -> None:
        save_results(path, data)

    runs = [{**r, "dir": str(_run_dir(Path(d), r["dir"]))}
            for d in args.runs for r in json.loads((Path(d) / "results.json").read_text())["runs"]
            if not args.only or r["study"] in args.only]
    for r in runs:
        if any(x["dir"] == r["dir"] for x in data["runs"]):
            continue
        policy = load_policy(Path(r["dir"]))
        evals = {}
        for cell in sorted(r["evals"], key=lambda c: (not c.startswith("n"), int(c[1:]) if c[0] == "n" else 0)):
            config = cell_config(cell, policy.env_defaults)
            evals[cell] = measure(policy, config)
            if cell not in data["baselines"]:
                data["baselines"][cell] = {
                    **{name: measure(make_baseline(name), cell_config(cell)) for name in LOOKAHEAD_BASES},
                    **{name: evaluate(make_baseline(name), cell_config(cell))
                       for name in BENCH_BASELINES if name not in LOOKAHEAD_BASES}}
            e = evals[cell]
            print(f"{r['study']} seed {r['seed']} {cell}: {e['reward']:.3f} -> {e['reward_la']:.3f} "
                  f"({e['ms_per_frame_la']:.0f} ms per frame)", flush=True)
        data["runs"].append({k: r[k] for k in ("study", "actor", "seed", "dir")} | {"evals": evals})
        save()
    report(data, out)


def report(data: dict, out: Path) -> None:
    groups: dict[tuple, list[dict]] = {}
    for r in data["runs"]:
        for cell, e in r["evals"].items():
            groups.setdefault((r["study"], cell), []).append(e)
    lines = ["| study | cell | seeds | reward | + lookahead | better than static-search: alone / + lookahead | "
             "static-search / + lookahead | rotate / + lookahead | Local | latency x Local (+ lookahead) | "
             "energy x Local (+ lookahead) | ms per frame (+ lookahead) |", "|" + "---|" * 12]

    def order(item: tuple) -> tuple:
        (study, cell), _ = item
        return (study, int(cell[1:]) if cell.startswith("n") else 10**6)

    for (study, cell), rows in sorted(groups.items(), key=order):
        b = data["baselines"][cell]
        ss, rot, lo = b["static-search"], b["rotate"], b["local"]
        wins = sum(e["reward"] > ss["reward"] for e in rows)
        wins_la = sum(e["reward_la"] > ss["reward"] for e in rows)
        lat = [e["frame_latency_per_task_s_la"] / lo["frame_latency_per_task_s"] for e in rows]
        en = [e["energy_per_task_j_la"] / lo["energy_per_task_j"] for e in rows]
        lines.append(
            f"| {study} | {cell} | {len(rows)} | {_fmt([e['reward'] for e in rows])} | "
            f"{_fmt([e['reward_la'] for e in rows])} | {wins}/{len(rows)} / {wins_la}/{len(rows)} | "
            f"{ss['reward']:.3f} / {ss['reward_la']:.3f} | {rot['reward']:.3f} / {rot['reward_la']:.3f} | "
            f"{lo['reward']:.3f} | {_fmt(lat, 2)} | {_fmt(en, 2)} | {_fmt([e['ms_per_frame_la'] for e in rows], 0)} |")
    fig, ax = write_table(lines, out / "lookahead.md")
    series: dict[str, list[tuple[int, list[float], list[float]]]] = {}
    for (study, cell), rows in groups.items():
        if cell.startswith("n"):
            name = "one policy for N in 2..10" if study.startswith("mixed") else "one policy per N"
            series.setdefault(name, []).append((int(cell[1:]), [e["reward"] for e in rows],
                                                [e["reward_la"] for e in rows]))
    for (name, pts), color in zip(sorted(series.items()), ("C0", "C1", "C2", "C3"), strict=False):
        pts.sort()
        x = [n for n, _, _ in pts]
        ax.errorbar(x, [np.mean(v) for _, v, _ in pts], yerr=[np.std(v) for _, v, _ in pts], fmt="--o", capsize=3,
                    color=color, alpha=0.6, label=f"{name}, alone")
        ax.errorbar(x, [np.mean(v) for _, _, v in pts], yerr=[np.std(v) for _, _, v in pts], fmt="-o", capsize=3,
                    color=color, label=f"{name} + lookahead")
    ns = sorted({int(c[1:]) for (_, c) in groups if c.startswith("n")})
    for name, key, style in (("static-search", "reward", "k:"), ("rotate", "reward", "k-."),
                             ("rotate + lookahead", "reward_la", "g-."), ("local", "reward", "k--")):
        base = name.split(" ")[0]
        pts = [(n, data["baselines"][f"n{n}"][base][key]) for n in ns]
        ax.plot(*zip(*pts, strict=True), style, marker="_", markersize=14, label=name)
    save_reward_vs_n(fig, ax, out / "lookahead.png")

if __name__ == "__main__":
    main()
