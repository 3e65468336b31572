"""Figs. 10-11: MAHPPO for N = 3..10 UEs (C = 2): latency and energy per task vs Local.

Writes ``ue_study.png`` (Fig. 11 style) and ``ue_study.md``; also the peak resident memory of the
driver and Ray workers while training (the N = 10 memory target).

Run: ``python benchmarks/ue_study.py --num-ues 3 4 5 6 7 8 9 10 --steps 50000 --out bench_out/ues``
"""

from __future__ import annotations

from pathlib import Path

from _harness import (
    figure,
    markdown_table,
    parse,
    parser,
    peak_memory,
    run,
    save_figure,
    start_ray,
    write_json,
    write_markdown,
)

from mahppo.algorithms.params import PAPER_LR


def main() -> None:
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.train import train

    ap = parser(__doc__, out="bench_out/ues", seeds=[0], quick={"num_ues": [2], "steps": 1024})
    ap.add_argument("--num-ues", type=int, nargs="+", default=list(range(3, 11)))
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--dnn", default="resnet18")
    args = parse(ap)
    out = Path(args.out)
    start_ray()
    rows = []
    seed = args.seeds[0]
    for n in args.num_ues:
        with peak_memory() as mem:
            summary = train(Experiment().with_flat({"actor": "per-ue", "num_ues": n, "steps": args.steps,
                                                    "seed": seed, "dnn": args.dnn,
                                                    "checkpoint_every": 10, **PAPER_LR}),  # the paper's lr (Fig. 10)
                            out / f"n{n}", overwrite=True)
        ev = summary["evaluation"]
        rows.append({"num_ues": n, "trained": ev["trained"], "local": ev["local"], "static": ev["static-search"],
                     "wall_time_s": summary["wall_time_s"], "peak_rss_gib": mem.gib})
    write_json(out / "ue_study.json", rows)

    ns = [r["num_ues"] for r in rows]
    fig, axes = figure((10, 4), ncols=2)
    for ax, key, label in ((axes[0], "frame_latency_per_task_s", "latency per task (s)"),
                           (axes[1], "energy_per_task_j", "energy per task (J)")):
        ax.plot(ns, [r["trained"][key] for r in rows], "o-", label="MAHPPO")
        ax.plot(ns, [r["static"][key] for r in rows], "s:", label="static-search")
        ax.plot(ns, [r["local"][key] for r in rows], "k--", label="Local")
        ax.set_xlabel("number of UEs N")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Fig. 11 reproduction: {args.dnn}, C = 2, {args.steps} env steps, seed {seed}")
    save_figure(fig, out / "ue_study.png", dpi=120)
    write_markdown(out / "ue_study.md", markdown_table(
        ["N", "latency/task (s)", "x Local", "energy/task (J)", "x Local", "reward", "static-search reward",
         "wall (s)", "peak RSS (GiB)"],
        [[r["num_ues"], f"{r['trained']['frame_latency_per_task_s']:.4f}", f"{r['trained']['latency_vs_local']:.2f}",
          f"{r['trained']['energy_per_task_j']:.4f}", f"{r['trained']['energy_vs_local']:.2f}",
          f"{r['trained']['reward']:.3f}", f"{r['static']['reward']:.3f}", f"{r['wall_time_s']:.0f}",
          f"{r['peak_rss_gib']:.2f}"] for r in rows]))


if __name__ == "__main__":
    run(main)
