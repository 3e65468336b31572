"""Cost of a verified checkpoint with its weights-only export (a built, untrained N = 3 MAHPPO):
save, size, full verification, and loading the policy from the export.

    python benchmarks/checkpoint_cost.py [--num-ues N]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _harness import load_average, parse, parser, run, start_ray, stop_ray, timer


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--num-ues", type=int, default=3)
    args = parse(ap)
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.rllib.mahppo import build_config
    from mahppo.algorithms.runs import checkpoints as ck

    start_ray()
    exp = Experiment().with_flat({"actor": "per-ue", "num_ues": args.num_ues})  # the paper's actors
    algo = build_config(exp).build_algo()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            meta = {"policy_id": "cost", "iteration": 1, "env_steps": 0, "experiment": exp.to_dict()}
            with timer() as t_save:
                ckpt = ck.save(algo, Path(tmp), meta)
            size = sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file())
            export = sum(p.stat().st_size for p in (ckpt / ck.EXPORT_DIR).rglob("*"))
            with timer() as t_verify:
                ck.verify(ckpt, for_resume=True)
            with timer() as t_load:
                load_policy(tmp)
        print(f"N = {args.num_ues}: checkpoint {size / 1e6:.2f} MB (export {export / 1e6:.2f} MB); save with export, "
              f"manifest, verification and record {t_save.wall:.2f} s; full verify {t_verify.wall * 1e3:.0f} ms; "
              f"load_policy from the export {t_load.wall * 1e3:.0f} ms (load average {load_average()})")
    finally:
        algo.stop()
        stop_ray()


if __name__ == "__main__":
    run(main)
