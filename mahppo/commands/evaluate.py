"""``mahppo evaluate``: run a baseline or a trained policy on the env and report the metrics."""

from __future__ import annotations

import argparse

from mahppo.commands._args import (
    add_env_arguments,
    add_signing_key_argument,
    cell_from_args,
    emit_json,
    natural_int,
    positive_int,
    resolve_policy,
)
from mahppo.marl_env.metrics import format_cell, format_table
from mahppo.marl_env.policies import BASELINES


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from mahppo.marl_env.evaluation import decision_times, evaluate

    policy = resolve_policy(args.policy)
    trained = getattr(policy, "env", None)  # a trained policy brings its own N, C, DNN, beta
    config = cell_from_args(args, trained.to_dict() if trained is not None else None)
    name = args.policy
    if args.lookahead:
        from mahppo.marl_env.lookahead import Lookahead

        policy, name = Lookahead(policy), f"{args.policy} + lookahead"
    decision_ms: list[float] = []
    metrics = evaluate(policy, config, episodes=args.episodes, seed=args.seed, decision_ms=decision_ms)
    times = decision_times(decision_ms)
    if args.json:
        emit_json({"policy": args.policy, "lookahead": args.lookahead, **metrics, **times})
    else:
        print(format_table({name: metrics}))
        print(f"decision time per frame: p50 {format_cell(times['decision_ms_p50'], '.3g')} ms, "
              f"p99 {format_cell(times['decision_ms_p99'], '.3g')} ms ({len(decision_ms)} frames)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a baseline or a trained policy on the env",
                       description="Run POLICY on the environment and print the metrics "
                       "(means over episodes).")
    p.add_argument("--policy", required=True,
                   help=f"{' | '.join(BASELINES)} | fixed:B,C,P[;B,C,P...] | a trained policy directory")
    add_env_arguments(p)
    p.add_argument("--episodes", type=positive_int, default=None,
                   help="episodes to average over (default 1; --scenario dynamic: its 32 evaluation episodes)")
    p.add_argument("--seed", type=natural_int, default=None, help="seed of the first episode (and of random baselines) "
                   "(default 0; --scenario dynamic: 1000000, its evaluation episodes)")
    p.add_argument("--lookahead", action="store_true",
                   help="decide every frame by rollouts of POLICY on the cell's own simulator: its decisions or a "
                   "better single-UE deviation (marl_env/lookahead.py; never worse than POLICY, docs/environment.md)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_signing_key_argument(p, writes=False)
    p.set_defaults(handler=_cmd_evaluate)
