"""Decision-time lookahead (``marl_env.lookahead``) on the "any cell" benchmark's trained policies.

Re-evaluates the policies of ``benchmarks/any_cell.py`` folders (their ``results.json``: every run, its
folder and the cells it was evaluated on) on the same test cells, each with and without the lookahead,
and ``static-search`` and ``rotate`` with and without it (the lookahead improves any base policy, so the
baselines get it too). No training: the runs are the ones the any-cell commands made. Writes
``OUT/results.json``, ``OUT/lookahead.md`` (mean ± std over seeds) and ``OUT/lookahead.png``.

    python benchmarks/lookahead.py --runs bench_out/dd3_a bench_out/dd3_b bench_out/dd5 --out bench_out/lookahead
"""

from __future__ import annotations

from pathlib import Path

import _harness as bench
import numpy as np

LOOKAHEAD_BASES = ("static-search", "rotate")


def measure(policy, config) -> dict[str, float]:
    """The policy alone and with the lookahead on ``config``: reward, latency, energy, decision time."""
    from mahppo.marl_env.evaluation import evaluate
    from mahppo.marl_env.lookahead import Lookahead

    plain = evaluate(policy, config)
    la = Lookahead(policy)
    with bench.timer() as t:
        ahead = evaluate(la, config)
    keys = ("reward", "frame_latency_per_task_s", "energy_per_task_j")
    return {**{k: plain[k] for k in keys}, **{f"{k}_la": ahead[k] for k in keys},
            "ms_per_frame_la": 1000 * t.wall / max(la.frames, 1), "frames_la": la.frames, "rollouts_la": la.rollouts,
            "deviations_la": la.deviations}


def _run_dir(folder: Path, recorded: str) -> Path:
    """A run's folder: as recorded, else under ``FOLDER/runs/`` (a benchmark folder moved or made elsewhere)."""
    path = Path(recorded)
    return path if path.is_dir() else folder / "runs" / path.name


def main() -> None:
    ap = bench.parser(__doc__, out="bench_out/lookahead")
    ap.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="any_cell.py output folders")
    ap.add_argument("--only", nargs="*", default=[], metavar="STUDY", help="only these studies")
    args = bench.parse(ap)
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.algorithms.runs.run import set_torch_threads
    from mahppo.marl_env.evaluation import evaluate
    from mahppo.marl_env.policies import make_baseline

    set_torch_threads(1)
    out = Path(args.out)
    path = out / "results.json"  # runs are appended as they finish: a rerun resumes
    data = bench.read_json(path, {"runs": [], "baselines": {}})

    runs = [{**r, "dir": str(_run_dir(Path(d), r["dir"]))}
            for d in args.runs for r in bench.read_json(Path(d) / "results.json")["runs"]
            if not args.only or r["study"] in args.only]
    for r in bench.progress(runs, desc="policies"):
        if any(x["dir"] == r["dir"] for x in data["runs"]):
            continue
        policy = load_policy(Path(r["dir"]))
        evals = {}
        for cell in sorted(r["evals"], key=bench.cell_order):
            evals[cell] = measure(policy, bench.test_cell(cell, policy.env))
            if cell not in data["baselines"]:
                data["baselines"][cell] = {
                    **{name: measure(make_baseline(name), bench.test_cell(cell)) for name in LOOKAHEAD_BASES},
                    **{name: evaluate(make_baseline(name), bench.test_cell(cell))
                       for name in bench.BENCH_BASELINES if name not in LOOKAHEAD_BASES}}
            e = evals[cell]
            print(f"{r['study']} seed {r['seed']} {cell}: {e['reward']:.3f} -> {e['reward_la']:.3f} "
                  f"({e['ms_per_frame_la']:.0f} ms per frame)", flush=True)
        data["runs"].append({k: r[k] for k in ("study", "actor", "seed", "dir")} | {"evals": evals})
        bench.write_json(path, data)
    report(data, out)


def report(data: dict, out: Path) -> None:
    groups: dict[tuple, list[dict]] = {}
    for r in data["runs"]:
        for cell, e in r["evals"].items():
            groups.setdefault((r["study"], cell), []).append(e)
    rows_out = []
    for (study, cell), rows in sorted(groups.items(), key=lambda item: (item[0][0], bench.cell_order(item[0][1]))):
        b = data["baselines"][cell]
        ss, rot, lo = b["static-search"], b["rotate"], b["local"]
        wins = sum(e["reward"] > ss["reward"] for e in rows)
        wins_la = sum(e["reward_la"] > ss["reward"] for e in rows)
        lat = [e["frame_latency_per_task_s_la"] / lo["frame_latency_per_task_s"] for e in rows]
        en = [e["energy_per_task_j_la"] / lo["energy_per_task_j"] for e in rows]
        rows_out.append([study, cell, len(rows), bench.mean_std([e["reward"] for e in rows]),
                         bench.mean_std([e["reward_la"] for e in rows]), f"{wins}/{len(rows)} / {wins_la}/{len(rows)}",
                         f"{ss['reward']:.3f} / {ss['reward_la']:.3f}", f"{rot['reward']:.3f} / {rot['reward_la']:.3f}",
                         f"{lo['reward']:.3f}", bench.mean_std(lat, 2), bench.mean_std(en, 2),
                         bench.mean_std([e["ms_per_frame_la"] for e in rows], 0)])
    bench.write_markdown(out / "lookahead.md", bench.markdown_table(
        ["study", "cell", "seeds", "reward", "+ lookahead", "better than static-search: alone / + lookahead",
         "static-search / + lookahead", "rotate / + lookahead", "Local", "latency x Local (+ lookahead)",
         "energy x Local (+ lookahead)", "ms per frame (+ lookahead)"], rows_out))
    fig, ax = bench.figure()
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
    bench.save_reward_vs_n(fig, ax, out / "lookahead.png")


if __name__ == "__main__":
    bench.run(main)
