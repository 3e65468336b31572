"""Argument types and option groups shared by the ``mahppo`` subcommands (the app layer only)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mahppo.marl_env.policies import BASELINES


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
    from mahppo.marl_env.policies import make_baseline

    if spec in BASELINES or spec.startswith("fixed:"):
        return make_baseline(spec)
    if Path(spec).exists() or spec.startswith(("models:/", "runs:/", "mlflow-artifacts:/")):
        from mahppo.algorithms.policy import load_policy

        return load_policy(spec)
    raise ValueError(f"--policy {spec!r}: not a baseline ({', '.join(BASELINES)}, fixed:B,C,P) "
                     "and no such directory")


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return v
