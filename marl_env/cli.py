"""``mahppo evaluate``: run a baseline or a trained policy on the env and report the metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from marl_env.metrics import METRIC_NAMES
from marl_env.policies import BASELINES


def add_env_arguments(p: argparse.ArgumentParser, *, scenario: bool = True) -> None:
    """Env options shared by evaluate, train and simulate (one definition)."""
    if scenario:
        p.add_argument("--scenario", choices=["test", "train"], default="test",
                       help="test: d = 50 m and K = 200 for every UE (Sec. 6.3.1); train: random")
    p.add_argument("--num-ues", type=positive_int, default=None, help="N (default 5)")
    p.add_argument("--num-channels", type=positive_int, default=None, help="C (default 2)")
    p.add_argument("--dnn", default=None, help="resnet18 | vgg11 | mobilenetv2 | a name in --profile")
    p.add_argument("--profile", default=None, help="profile JSON file (default: Jetson Nano profiles)")
    p.add_argument("--beta", type=float, default=None, help="energy weight of Eq. 12 (default 0.47)")


def env_kwargs(args: argparse.Namespace) -> dict:
    out: dict = {}
    for arg, key in (("num_ues", "num_ues"), ("num_channels", "num_channels"), ("dnn", "dnn"),
                     ("profile", "profile_file"), ("beta", "beta"), ("scenario", "scenario")):
        v = getattr(args, arg, None)
        if v is not None:
            out[key] = v
    return out


def resolve_policy(spec: str, env_overrides: dict | None = None):
    """A baseline name, ``fixed:B,C,P``, or a trained policy directory (``mahppo train --out``)."""
    from marl_env.policies import make_baseline

    if spec in BASELINES or spec.startswith("fixed:"):
        return make_baseline(spec)
    if Path(spec).exists() or spec.startswith(("models:/", "runs:/", "mlflow-artifacts:/")):
        from algorithms.policy import load_policy

        return load_policy(spec)
    raise ValueError(f"--policy {spec!r}: not a baseline ({', '.join(BASELINES)}, fixed:B,C,P) "
                     "and no such directory")


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown table of policies x metrics (the same layout everywhere)."""
    cols = ["policy", *METRIC_NAMES]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, m in rows.items():
        cells = [name] + [f"{m[k]:.4g}" if k != "tasks_completed" else f"{m[k]:.0f}" for k in METRIC_NAMES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return v


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from marl_env.config import EnvConfig
    from marl_env.evaluation import evaluate

    policy = resolve_policy(args.policy)
    kwargs = env_kwargs(args)
    defaults = getattr(policy, "env_defaults", {})  # a trained policy brings its own N, C, DNN, beta
    config = EnvConfig.from_kwargs(**{**defaults, **kwargs})
    metrics = evaluate(policy, config, episodes=args.episodes, seed=args.seed)
    if args.json:
        print(json.dumps({"policy": args.policy, **metrics}))
    else:
        print(format_table({args.policy: metrics}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a baseline or a trained policy on the env",
                       description="Run POLICY on the environment and print the metrics "
                       "(means over episodes).")
    p.add_argument("--policy", required=True,
                   help=f"{' | '.join(BASELINES)} | fixed:B,C,P[;B,C,P...] | a trained policy directory")
    add_env_arguments(p)
    p.add_argument("--episodes", type=positive_int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_evaluate)
