"""``mahppo train``: MAHPPO (or ``--algo ippo``) on the embedded defaults or your own cell.

Every option maps to a field of the one ``Experiment`` config (``env`` / ``algo`` / ``run``); the
defaults shown by ``--help`` are the dataclasses' own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mahppo.commands._args import (
    add_dataclass_arguments,
    add_env_arguments,
    add_signing_key_argument,
    dataclass_updates,
    emit_json,
    env_updates,
)


def experiment_from_args(args: argparse.Namespace):
    """The ``Experiment`` of the command line: the defaults, then every option the user gave."""
    from mahppo.algorithms.experiment import Experiment, RunSettings
    from mahppo.algorithms.params import MAHPPOParams

    updates = {**env_updates(args), **dataclass_updates(args, MAHPPOParams), **dataclass_updates(args, RunSettings)}
    if updates.get("mlflow_uri"):
        updates["mlflow"] = True
    return Experiment().with_flat(updates, where="settings")


def _cmd_train(args: argparse.Namespace) -> int:
    if args.resume and args.out is not None and \
            Path(args.out).expanduser().resolve() != Path(args.resume).expanduser().resolve():
        raise ValueError(f"--out {args.out} with --resume {args.resume}: a resumed run continues in its own "
                         f"folder and rewrites its files there; to keep {args.resume} as it is, copy it first "
                         f"(cp -r {args.resume} {args.out}) and --resume {args.out}")
    from dataclasses import replace

    from mahppo.algorithms.runs.tracking import check_reachable, remember_uri, tracking_uri
    from mahppo.algorithms.runs.train import read_experiment, train

    remember_uri(getattr(args, "mlflow_uri", None))  # run.json keeps it without credentials (--resume)
    if args.resume:
        out = Path(args.resume)
        experiment = read_experiment(out)
        if args.steps is not None:
            experiment = experiment.replace(run=replace(experiment.run, steps=args.steps))
    else:
        experiment = experiment_from_args(args)
        run = experiment.run
        out = Path(args.out or f"runs/{run.algo}-n{experiment.env.num_ues}-seed{run.seed}")
    if experiment.run.tracked:
        check_reachable(tracking_uri(experiment.run.mlflow_uri))  # seconds, not MLflow's minutes of retries
    summary = train(experiment, out, resume=bool(args.resume), overwrite=args.overwrite, progress=not args.json)
    if args.json:
        emit_json(summary)
    else:
        if "evaluation" in summary:
            print((out / "evaluation.md").read_text().rstrip())
        print(f"env steps: {summary['env_steps']}  wall time: {summary['wall_time_s']:.1f} s  "
              f"({summary['env_steps_per_s']:.0f} env steps/s)")
        print(f"checkpoint: {summary['checkpoint']}\ncurve: {out / 'training_curve.png'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from mahppo.algorithms.experiment import RunSettings
    from mahppo.algorithms.params import MAHPPOParams

    p = sub.add_parser("train", help="train MAHPPO (or the IPPO ablation) with RLlib",
                       description="Train on a local Ray (or --address), checkpoint every few iterations, "
                       "then compare with every baseline on the test scenario.")
    add_env_arguments(p, scenario=False)
    p.add_argument("--out", default=None, help="output directory (default runs/ALGO-nN-seedS; with --resume: "
                   "the resumed run's own folder or nothing: a resumed run is never moved or rewritten elsewhere)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue a run from its newest complete checkpoint (only runs you trust: resuming "
                   "reads RLlib's pickles)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out (default: refuse)")
    p.add_argument("--json", action="store_true", help="print one JSON summary, no progress bar")
    add_signing_key_argument(p, writes=True)
    add_dataclass_arguments(p, RunSettings, "the run")
    add_dataclass_arguments(p, MAHPPOParams, "MAHPPO hyperparameters (Sec. 6.3.1)")
    p.set_defaults(handler=_cmd_train)
