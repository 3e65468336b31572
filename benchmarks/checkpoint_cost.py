"""Cost of a verified checkpoint with its weights-only export (a built, untrained N = 3 MAHPPO):
save, size, full verification, and loading the policy from the export.

    python benchmarks/checkpoint_cost.py [--num-ues N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--num-ues", type=int, default=3)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import ray

    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.rllib.mahppo import build_config
    from mahppo.algorithms.runs import checkpoints as ck

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    exp = Experiment().with_flat({"actor": "per-ue", "num_ues": args.num_ues})  # the paper's actors
    algo = build_config(exp).build_algo()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            meta = {"policy_id": "cost", "iteration": 1, "env_steps": 0, "experiment": exp.to_dict()}
            ckpt, t_save = timed(lambda: ck.save(algo, Path(tmp), meta))
            size = sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file())
            export = sum(p.stat().st_size for p in (ckpt / ck.EXPORT_DIR).rglob("*"))
            _, t_verify = timed(lambda: ck.verify(ckpt, for_resume=True))
            _, t_load = timed(lambda: load_policy(tmp))
        print(f"N = {args.num_ues}: checkpoint {size / 1e6:.2f} MB (export {export / 1e6:.2f} MB); save with export, "
              f"manifest, verification and record {t_save:.2f} s; full verify {t_verify * 1e3:.0f} ms; "
              f"load_policy from the export {t_load * 1e3:.0f} ms")
    finally:
        algo.stop()
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
