"""How much running trials side by side buys: a tiny study (4 trials, N = 3, ~2 iterations each) with
one trial at a time vs as many as the CPUs allow. Prints one JSON line.

    .venv/bin/python benchmarks/tune_side_by_side.py [--steps 500] [--trials 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from mahppo.tune_configs.runner import run_study
from mahppo.tune_configs.study import parse_study


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--trials", type=int, default=4)
    args = ap.parse_args()
    from mahppo.algorithms.runs.run import init_ray, set_torch_threads

    set_torch_threads(1)
    init_ray()
    out = {"cpus": os.cpu_count(), "trials": args.trials, "steps": args.steps}
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        for label, conc in (("one_at_a_time_s", 1), ("side_by_side_s", 0)):
            study = parse_study({"name": f"bench{conc}", "grid": {"lr": [1e-4 * (i + 1) for i in range(args.trials)]},
                                 "fixed": {"num_ues": 3, "memory_size": 256, "batch_size": 64, "reuse_time": 1},
                                 "seeds": 1, "steps": args.steps, "eval_every": 2})
            t0 = time.perf_counter()
            run_study(study, uri=f"sqlite:///{tmp}/mlflow.db", max_concurrent=conc, register=None, verbose=0)
            out[label] = round(time.perf_counter() - t0, 1)
    out["speedup"] = round(out["one_at_a_time_s"] / out["side_by_side_s"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    from mahppo.runtime.hashseed import restart_with_fixed_hash_seed

    restart_with_fixed_hash_seed(sys.argv)  # the same seed, the same run (runtime/hashseed.py)
    main()
