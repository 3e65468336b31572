"""Figs. 10-11: MAHPPO for N = 3..10 UEs (C = 2): latency and energy per task vs Local.

Writes ``ue_study.png`` (Fig. 11 style) and ``ue_study.md``; also the peak resident memory of the
driver and Ray workers while training (the N = 10 memory target).

Run: ``python benchmarks/ue_study.py --num-ues 3 4 5 6 7 8 9 10 --steps 50000 --out bench_out/ues``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

from fig8_convergence import peak_rss_watcher

from mahppo.algorithms.params import PAPER_LR


def main() -> None:
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.train import train

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--num-ues", type=int, nargs="+", default=list(range(3, 11)))
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dnn", default="resnet18")
    ap.add_argument("--out", default="bench_out/ues")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = []
    for n in args.num_ues:
        stop, box = threading.Event(), [0.0]
        watcher = threading.Thread(target=peak_rss_watcher, args=(stop, box), daemon=True)
        watcher.start()
        summary = train(Experiment().with_flat({"actor": "per-ue", "num_ues": n, "steps": args.steps,
                                                "seed": args.seed, "dnn": args.dnn,
                                                "checkpoint_every": 10, **PAPER_LR}),  # the paper's lr, as in Fig. 10
                        out / f"n{n}", overwrite=True)
        stop.set()
        ev = summary["evaluation"]
        rows.append({"num_ues": n, "trained": ev["trained"], "local": ev["local"], "static": ev["static-search"],
                     "wall_time_s": summary["wall_time_s"], "peak_rss_gib": box[0] / 2**30})
    (out / "ue_study.json").write_text(json.dumps(rows, indent=2, default=float))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["num_ues"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "frame_latency_per_task_s", "latency per task (s)"),
                           (axes[1], "energy_per_task_j", "energy per task (J)")):
        ax.plot(ns, [r["trained"][key] for r in rows], "o-", label="MAHPPO")
        ax.plot(ns, [r["static"][key] for r in rows], "s:", label="static-search")
        ax.plot(ns, [r["local"][key] for r in rows], "k--", label="Local")
        ax.set_xlabel("number of UEs N")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Fig. 11 reproduction: {args.dnn}, C = 2, {args.steps} env steps, seed {args.seed}")
    fig.tight_layout()
    fig.savefig(out / "ue_study.png", dpi=120)
    lines = ["| N | latency/task (s) | x Local | energy/task (J) | x Local | reward | static-search reward | "
             "wall (s) | peak RSS (GiB) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["trained"]
        lines.append(f"| {r['num_ues']} | {t['frame_latency_per_task_s']:.4f} | {t['latency_vs_local']:.2f} | "
                     f"{t['energy_per_task_j']:.4f} | {t['energy_vs_local']:.2f} | {t['reward']:.3f} | "
                     f"{r['static']['reward']:.3f} | {r['wall_time_s']:.0f} | {r['peak_rss_gib']:.2f} |")
    (out / "ue_study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    from mahppo.runtime.hashseed import restart_with_fixed_hash_seed

    restart_with_fixed_hash_seed(sys.argv)  # the same seed, the same run (runtime/hashseed.py)
    main()
