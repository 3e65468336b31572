"""``mahppo evaluate``: run a baseline or a trained policy on the env and report the metrics."""

from __future__ import annotations

import argparse
import sys

from mahppo.commands._args import (
    add_env_arguments,
    add_signing_key_argument,
    cell_from_args,
    emit_json,
    natural_int,
    non_negative_float,
    positive_int,
    resolve_policy,
)
from mahppo.marl_env.lookahead import DEFAULT_BUDGET_S
from mahppo.marl_env.metrics import format_cell, format_table
from mahppo.marl_env.policies import BASELINES


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from mahppo.marl_env.evaluation import decision_times, evaluate

    policy = resolve_policy(args.policy)
    trained = getattr(policy, "env", None)  # a trained policy brings its own N, C, DNN, beta
    config = cell_from_args(args, trained.to_dict() if trained is not None else None)
    name = args.policy
    decision_ms: list[float] = []
    if not args.lookahead:
        metrics = evaluate(policy, config, episodes=args.episodes, seed=args.seed, decision_ms=decision_ms)
        extra: dict = {}
    else:
        from tqdm import tqdm

        from mahppo.marl_env.lookahead import Lookahead

        look = Lookahead(policy, budget_s=args.lookahead_budget or None)
        name = f"{args.policy} + lookahead"
        with tqdm(unit="frame", desc=name, dynamic_ncols=True, disable=args.json) as bar:
            metrics = evaluate(_Progress(look, bar), config, episodes=args.episodes, seed=args.seed,
                               decision_ms=decision_ms)
        extra = {"lookahead_frames": look.frames, "lookahead_fallbacks": look.fallbacks}
        if look.fallbacks:
            print(f"note: {look.fallbacks} of {look.frames} frames got {args.policy}'s own decisions: the "
                  f"lookahead's time budget of {args.lookahead_budget:g} s per frame was spent (--lookahead-budget)",
                  file=sys.stderr)
    times = decision_times(decision_ms)
    if args.json:
        emit_json({"policy": args.policy, "lookahead": args.lookahead, **metrics, **times, **extra})
    else:
        print(format_table({name: metrics}))
        print(f"decision time per frame: p50 {format_cell(times['decision_ms_p50'], '.3g')} ms, "
              f"p99 {format_cell(times['decision_ms_p99'], '.3g')} ms ({len(decision_ms)} frames)")
    return 0


class _Progress:
    """A policy that ticks a progress bar once per frame it decides (``evaluate --lookahead``: seconds a frame)."""

    def __init__(self, policy, bar):
        self.policy, self.bar = policy, bar
        self.name = policy.name

    def reset(self, view, seed=None) -> None:
        self.policy.reset(view, seed)

    def act(self, view):
        out = self.policy.act(view)
        self.bar.update(1)
        self.bar.set_postfix(deviations=self.policy.deviations, fallbacks=self.policy.fallbacks, refresh=False)
        return out


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
    p.add_argument("--lookahead-budget", type=non_negative_float, default=DEFAULT_BUDGET_S, metavar="S",
                   help="with --lookahead: seconds of search per frame, then POLICY's own decisions for the frame "
                   f"(as Serve does per request; the result then depends on the machine's speed; 0: no budget) "
                   f"(default {DEFAULT_BUDGET_S:g})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_signing_key_argument(p, writes=False)
    p.set_defaults(handler=_cmd_evaluate)
