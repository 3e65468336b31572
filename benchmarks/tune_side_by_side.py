"""How much running trials side by side buys: a tiny study (4 trials, N = 3, ~2 iterations each) with
one trial at a time vs as many as the CPUs allow. Prints one JSON line.

    .venv/bin/python benchmarks/tune_side_by_side.py [--steps 500] [--trials 4]
"""

from __future__ import annotations

import json
import os
import tempfile

from _harness import context, parse, parser, run, start_ray, timer

from mahppo.tune_configs.runner import run_study
from mahppo.tune_configs.study import parse_study


def main() -> None:
    ap = parser(__doc__, quick={"trials": 2, "steps": 200})
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--trials", type=int, default=4)
    args = parse(ap)
    start_ray()
    out = {"cpus": os.cpu_count(), "trials": args.trials, "steps": args.steps}
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        for label, conc in (("one_at_a_time_s", 1), ("side_by_side_s", 0)):
            study = parse_study({"name": f"bench{conc}", "grid": {"lr": [1e-4 * (i + 1) for i in range(args.trials)]},
                                 "fixed": {"num_ues": 3, "memory_size": 256, "batch_size": 64, "reuse_time": 1},
                                 "seeds": 1, "steps": args.steps, "eval_every": 2})
            with timer() as t:
                run_study(study, uri=f"sqlite:///{tmp}/mlflow.db", max_concurrent=conc, register=None, verbose=0)
            out[label] = round(t.wall, 1)
    out["speedup"] = round(out["one_at_a_time_s"] / out["side_by_side_s"], 2)
    print(json.dumps({**out, "load_average": context()["load_average"]}))


if __name__ == "__main__":
    run(main)
