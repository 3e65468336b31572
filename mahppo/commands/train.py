"""``mahppo train``: MAHPPO (or ``--algo ippo``) on the embedded defaults or your own system."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mahppo.commands._args import positive_int


def add_param_arguments(p: argparse.ArgumentParser) -> None:
    """The paper's hyperparameters as options (defaults: Sec. 6.3.1)."""
    g = p.add_argument_group("MAHPPO hyperparameters (Sec. 6.3.1)")
    g.add_argument("--lr", type=float, default=None, help="learning rate (1e-4)")
    g.add_argument("--memory-size", type=int, default=None, help="transitions per update |M| (1024)")
    g.add_argument("--batch-size", type=int, default=None, help="minibatch size B (256)")
    g.add_argument("--reuse-time", type=int, default=None, help="sample reuse time K (10)")
    g.add_argument("--clip-eps", type=float, default=None, help="clipping epsilon (0.2)")
    g.add_argument("--clip-mode", choices=["per_branch", "joint"], default=None)
    g.add_argument("--zeta", type=float, default=None, help="entropy bonus per branch (0.001)")


def params_from_args(args: argparse.Namespace):
    from dataclasses import replace

    from mahppo.algorithms.mahppo import MAHPPOParams

    changes = {k: getattr(args, k) for k in ("lr", "memory_size", "batch_size", "reuse_time", "clip_eps",
                                             "clip_mode", "zeta") if getattr(args, k, None) is not None}
    return replace(MAHPPOParams(), **changes).validate()


def _cmd_train(args: argparse.Namespace) -> int:
    from mahppo.algorithms.train import TrainSettings, train

    if args.resume:
        run = Path(args.resume) / "run.json"
        if not run.is_file():
            raise FileNotFoundError(f"--resume {args.resume}: no run.json (not a `mahppo train --out` dir)")
        settings = TrainSettings.from_json(json.loads(run.read_text()))
        if args.steps is not None:
            settings.steps = args.steps
        out = Path(args.resume)
    else:
        settings = TrainSettings(
            num_ues=args.num_ues or 3, num_channels=args.num_channels or 2, dnn=args.dnn or "resnet18",
            profile_file=args.profile, beta=0.47 if args.beta is None else args.beta,
            steps=args.steps or 50_000, seed=args.seed, algo=args.algo, params=params_from_args(args),
            num_env_runners=args.num_env_runners, num_envs_per_env_runner=args.envs_per_runner,
            num_learners=args.num_learners, address=args.address, mlflow=args.mlflow or bool(args.mlflow_uri),
            mlflow_uri=args.mlflow_uri,
        )
        out = Path(args.out or f"runs/{settings.algo}-n{settings.num_ues}-seed{settings.seed}")
    summary = train(settings, out, resume=bool(args.resume), progress=not args.json)
    if args.json:
        print(json.dumps(summary, default=float))
    else:
        print(f"env steps: {summary['env_steps']}  wall time: {summary['wall_time_s']:.1f} s  "
              f"({summary['env_steps_per_s']:.0f} env steps/s)")
        print(f"checkpoint: {summary['checkpoint']}\ncurve: {out / 'training_curve.png'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from mahppo.commands._args import add_env_arguments

    p = sub.add_parser("train", help="train MAHPPO (or the IPPO ablation) with RLlib",
                       description="Train on a local Ray (or --address), checkpoint every few iterations, "
                       "then compare with every baseline on the test scenario.")
    add_env_arguments(p, scenario=False)
    p.add_argument("--steps", type=positive_int, default=None, help="env steps (frames) to train (50000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--algo", choices=["mahppo", "ippo"], default="mahppo",
                   help="ippo: RLlib's stock PPO with independent per-UE value functions (ablation)")
    p.add_argument("--out", default=None, help="output directory (default runs/ALGO-nN-seedS)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    p.add_argument("--num-env-runners", type=int, default=0, help="remote samplers (0: sample in the driver)")
    p.add_argument("--envs-per-runner", type=positive_int, default=8, help="vectorised envs per sampler")
    p.add_argument("--num-learners", type=int, default=0, help="remote learners (0: learn in the driver)")
    p.add_argument("--mlflow", action="store_true", help="track in MLflow (default store: ./mlflow.db)")
    p.add_argument("--mlflow-uri", default=None, help="MLflow tracking URI (implies --mlflow)")
    p.add_argument("--json", action="store_true", help="print one JSON summary, no progress bar")
    add_param_arguments(p)
    p.set_defaults(handler=_cmd_train)
