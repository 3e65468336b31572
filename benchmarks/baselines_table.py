"""The baseline table of docs/results.md: every marl_env baseline on the test scenario, N = 3 and 5.

Run: ``python benchmarks/baselines_table.py [--dnn resnet18] [--beta 0.47] [--out bench_out/baselines]``.
"""

from __future__ import annotations

from _harness import parse, parser, run, timer, write_json, write_markdown

from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.evaluation import evaluate
from mahppo.marl_env.metrics import format_table
from mahppo.marl_env.policies import BASELINES, make_baseline


def main() -> None:
    ap = parser(__doc__, out="bench_out/baselines", quick={"num_ues": [2]})
    ap.add_argument("--dnn", default="resnet18")
    ap.add_argument("--beta", type=float, default=0.47)
    ap.add_argument("--num-ues", type=int, nargs="+", default=[3, 5])
    args = parse(ap)
    results, tables = {}, []
    for n in args.num_ues:
        config = EnvConfig.from_kwargs(num_ues=n, dnn=args.dnn, beta=args.beta, scenario="test")
        rows, times = {}, {}
        for name in BASELINES:
            with timer() as t:
                rows[name] = evaluate(make_baseline(name), config)
            times[name] = t.wall
        results[f"n{n}"] = {"metrics": rows, "policy_time_s": times}
        tables.append(f"N = {n}, C = 2, {args.dnn}, beta = {args.beta}, test scenario (d = 50 m, K = 200)\n\n"
                      + format_table(rows) + "\n\npolicy time (s): "
                      + ", ".join(f"{k} {v:.2f}" for k, v in times.items()))
    write_markdown(f"{args.out}/baselines.md", "\n\n".join(tables))
    write_json(f"{args.out}/baselines.json", results)


if __name__ == "__main__":
    run(main)
