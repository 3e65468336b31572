"""``mahppo tune``: run a study (Ray Tune + MLflow) and ``mahppo tune report STUDY``: draw its figure."""

from __future__ import annotations

import argparse

from mahppo.commands._args import emit_json
from mahppo.commands._args import positive_float as _positive_float
from mahppo.commands._args import positive_int as _positive_int


def _cmd_tune(args: argparse.Namespace) -> int:
    if args.action == "report":
        return _cmd_report(args)
    study_spec = args.study or args.target
    if not study_spec:
        raise ValueError("give a study: --study lr|reuse|memory|ues|beta|FILE")
    from mahppo.tune_configs.study import load_study

    study = load_study(study_spec).with_overrides(samples=args.samples, steps=args.steps,
                                                     scenario=args.scenario)  # before Ray starts

    from mahppo.algorithms.runs.tracking import check_reachable, redact_uri, remember_uri, tracking_uri, ui_command
    from mahppo.tune_configs.runner import run_study

    uri = remember_uri(tracking_uri(args.mlflow_uri))  # a resumed study's state holds it redacted
    check_reachable(uri)  # before Ray starts
    if args.resume and (args.samples or args.steps):
        print("note: --resume keeps the seeds and the budget the study started with")
    n = len(study.points) * len(study.seeds)
    print(f"study {study.name}: {len(study.points)} points x {len(study.seeds)} seeds = {n} trials, "
          f"{study.steps} env steps each; MLflow experiment {study.experiment!r} in {redact_uri(uri)}")
    print(f"  watch it: {ui_command(uri)}")
    from mahppo.serve.mlflow_model import register_champion  # the app layer wires Tune to the Serve model

    summary = run_study(study, storage=args.storage, uri=uri, address=args.address, resume=args.resume,
                        register=register_champion,
                        export=args.export, scheduler=args.scheduler, cpus_per_trial=args.cpus_per_trial,
                        max_concurrent=args.max_concurrent, max_failures=args.max_failures,
                        verbose=0 if args.json else 1)
    summary["next"] = _next_steps(args, study_spec, summary)
    if args.json:
        emit_json(summary)
        return 130 if summary.get("unfinished") else 1 if summary["winner"] is None else 0
    for t in summary["trials"]:
        status = f"error: {t['error']}" if t["error"] else f"test reward {t['test_reward']:.4f}" \
            if t["test_reward"] is not None else "no result"
        print(f"  {study.vary}={t['point']} seed {t['seed']}: {status}")
    w = summary["winner"]
    hint = summary["next"]
    if summary.get("unfinished"):
        print(f"interrupted with {summary['unfinished']} trial(s) unfinished; continue with: {hint['resume']}")
        return 130
    if w is None:
        print("no trial finished with a test-scenario reward: nothing exported")
        return 1
    print(f"sweep {summary['sweep']}: winner {study.vary}={w['point'][study.vary]} seed {w['seed']} "
          f"(test reward {w['metrics'].get('test_reward', float('nan')):.4f})")
    print(f"  exported to {w['export']}  ->  {hint['evaluate']}")
    if w.get("model_uri"):
        print(f"  registered as {w['model_uri']} ({w.get('model_version_uri')})  ->  {hint['serve']}")
    print(f"MLflow: {ui_command(uri)}")
    print(f"figure: {hint['report']}")
    return 0


def _next_steps(args: argparse.Namespace, study_spec: str, summary: dict) -> dict[str, str]:
    """The commands to run next, exactly as they work from this directory (printed, and in --json)."""
    import shlex

    store = ["--mlflow-uri", args.mlflow_uri] if args.mlflow_uri else []
    storage = ["--storage", args.storage] if args.storage else []
    env = f"MLFLOW_TRACKING_URI={shlex.quote(summary['tracking_uri'])} " if args.mlflow_uri else ""
    out = {"resume": shlex.join(["mahppo", "tune", "--study", study_spec, "--resume", *storage, *store]),
           "report": shlex.join(["mahppo", "tune", "report", study_spec, *store])}
    w = summary.get("winner")
    if w:
        out["evaluate"] = shlex.join(["mahppo", "evaluate", "--policy", w["export"]])
        if w.get("model_uri"):
            out["serve"] = shlex.join(["mahppo", "serve", "--model-uri", w["model_uri"], *store])
            out["evaluate_model"] = env + shlex.join(["mahppo", "evaluate", "--policy", w["model_uri"]])
    return out


def _cmd_report(args: argparse.Namespace) -> int:
    study_spec = args.target or args.study
    if not study_spec:
        raise ValueError("give a study: mahppo tune report lr|reuse|memory|ues|beta|FILE")
    from mahppo.tune_configs.report import draw_report
    from mahppo.tune_configs.study import load_study

    try:
        study = load_study(study_spec)
    except ValueError:  # not a shipped study: a study run from a file elsewhere, as the store recorded it
        from mahppo.tune_configs.sweeps import study_from_store

        study = study_from_store(study_spec, args.mlflow_uri, args.sweep)
        if study is None:
            raise
    out = args.out or f"tune_{study.name}.png"
    info = draw_report(study, out, uri=args.mlflow_uri, sweep=args.sweep)
    if args.json:
        emit_json({"study": study.name, **info})
    else:
        print(f"{out}: {info['runs']} runs over {info['points']} values of {study.vary}"
              + (f" (sweep {info['sweep']})" if info.get("sweep") else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune", help="Ray Tune sweeps of MAHPPO tracked in MLflow (the paper's Figs. 9-12)",
        description="Run a study (a YAML file of grids, seeds and a budget) with Ray Tune; every trial is an "
        "MLflow run; the best trial by test-scenario reward is exported and registered. "
        "`mahppo tune report STUDY` draws the study's figure from the tracked runs.")
    p.add_argument("action", nargs="?", choices=["run", "report"], default="run",
                   help="run (default) or report: draw the study's figure from MLflow")
    p.add_argument("target", nargs="?", metavar="STUDY", help="study for `report` (same as --study)")
    p.add_argument("--study", default=None, help="lr, reuse, memory, ues, beta or a study YAML file")
    p.add_argument("--samples", type=_positive_int, default=None, help="seeds per point (default: the study's)")
    p.add_argument("--steps", type=_positive_int, default=None, help="env steps per trial (default: the study's)")
    p.add_argument("--scenario", choices=["train", "dynamic"], default=None,
                   help="dynamic: every trial trains on the dynamic cell (docs/environment-dynamics.md) "
                   "(default: the study's, train)")
    p.add_argument("--address", default=None, help="Ray cluster (auto or HOST:PORT; default $RAY_ADDRESS or local)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study (finished trials stay)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="where the winner's checkpoint goes (default tune_runs/tune-STUDY/winner)")
    p.add_argument("--scheduler", choices=["fifo", "asha"], default=None,
                   help="asha: stop weak trials early (large grids)")
    p.add_argument("--storage", default=None, help="Tune storage (default ./tune_runs; shared path or URI on a "
                   "multi-node cluster)")
    p.add_argument("--cpus-per-trial", type=_positive_float, default=1.0, help="CPUs each trial reserves (1)")
    p.add_argument("--max-concurrent", type=int, default=0, help="trials at once (0: as many as CPUs allow)")
    p.add_argument("--max-failures", type=int, default=2, help="retries of a crashed trial (2)")
    p.add_argument("--mlflow-uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or "
                   "sqlite:///mlflow.db)")
    p.add_argument("--out", default=None, help="report: the PNG to write (default tune_STUDY.png)")
    p.add_argument("--sweep", default=None, metavar="ID",
                   help="report: which sweep (one `mahppo tune` invocation) to draw (default: the latest)")
    p.add_argument("--json", action="store_true",
                   help="write one JSON document to stdout (the summary; logs go to stderr)")
    p.set_defaults(handler=_cmd_tune)
