"""The baseline table of docs/results.md: every marl_env baseline on the test scenario, N = 3 and 5.

Run: ``python benchmarks/baselines_table.py [--dnn resnet18] [--beta 0.47]``.
"""

from __future__ import annotations

import argparse
import time

from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.evaluation import evaluate
from mahppo.marl_env.metrics import format_table
from mahppo.marl_env.policies import BASELINES, make_baseline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dnn", default="resnet18")
    ap.add_argument("--beta", type=float, default=0.47)
    ap.add_argument("--num-ues", type=int, nargs="+", default=[3, 5])
    args = ap.parse_args()
    for n in args.num_ues:
        config = EnvConfig.from_kwargs(num_ues=n, dnn=args.dnn, beta=args.beta, scenario="test")
        rows, times = {}, {}
        for name in BASELINES:
            t = time.perf_counter()
            rows[name] = evaluate(make_baseline(name), config)
            times[name] = time.perf_counter() - t
        print(f"\nN = {n}, C = 2, {args.dnn}, beta = {args.beta}, test scenario (d = 50 m, K = 200)\n")
        print(format_table(rows))
        print("\npolicy time (s): " + ", ".join(f"{k} {v:.2f}" for k, v in times.items()))


if __name__ == "__main__":
    main()
