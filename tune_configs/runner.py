"""Run a study with ``ray.tune.Tuner``, track it in MLflow, export and register the winner.

Layout under ``storage`` (default ``./tune_runs``; on a multi-node cluster a shared path or a cloud
URI such as ``s3://bucket/tune_runs``)::

    tune-<study>/              the Tune experiment (what ``--resume`` restores)
    tune-<study>/study.json    the study as it was started (grid, seeds, budget)
    tune-<study>/winner/       the default ``--export`` directory
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mahppo.tune_configs.study import Study, flat_config
from mahppo.tune_configs.sweeps import finish_sweep, read_sweep, start_sweep, write_sweep

WINNER_METRIC = "test_reward"
WINNER_FILE = "winner.json"
DEFAULT_STORAGE = "tune_runs"


def storage_root(storage: str | None) -> str:
    s = storage or DEFAULT_STORAGE
    return s if "://" in s else str(Path(s).resolve())


def experiment_dir(study_name: str, storage: str | None = None) -> str:
    return f"{storage_root(storage).rstrip('/')}/tune-{study_name}"


def _trial_name(trial: Any) -> str:
    from mahppo.tune_configs.tracking import trial_name

    return trial_name(flat_config(trial.config))


def _trial_dirname(trial: Any) -> str:
    return f"{_trial_name(trial)}_{trial.trial_id}"


def build_tuner(study: Study, *, storage: str | None = None, uri: str, cpus_per_trial: float = 1,
                max_concurrent: int = 0, max_failures: int = 2, scheduler: str | None = None,
                resume: bool = False, extra_config: dict[str, Any] | None = None,
                callbacks: list | None = None, verbose: int = 1, sweep: dict[str, str] | None = None):
    """A new ``Tuner`` for ``study``, or (``resume``) the restored one of its interrupted run; the
    trials' MLflow runs are nested under ``sweep``'s run (``tune_configs.sweeps``)."""
    from ray import tune

    from mahppo.tune_configs import trainable as trainable_module
    from mahppo.tune_configs.tracking import MlflowTrialCallback

    trainable = tune.with_resources(trainable_module.MAHPPOTrainable, {"cpu": cpus_per_trial})
    path = experiment_dir(study.name, storage)
    if resume:
        if not tune.Tuner.can_restore(path):
            raise FileNotFoundError(f"--resume: no interrupted study at {path} (run it without --resume first)")
        return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    sched = None
    if scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        sched = ASHAScheduler(time_attr="env_steps", max_t=study.steps, grace_period=max(1, study.steps // 8),
                              reduction_factor=3)
    elif scheduler not in (None, "none", "fifo"):
        raise ValueError(f"--scheduler {scheduler!r} must be 'asha' or 'fifo'")
    space = study.param_space()
    space.update(extra_config or {})
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(metric=WINNER_METRIC, mode="max", scheduler=sched,
                                    max_concurrent_trials=max_concurrent or None,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(
            name=f"tune-{study.name}", storage_path=storage_root(storage),
            stop={"env_steps": study.steps},
            callbacks=[MlflowTrialCallback(uri, study.experiment, sweep=sweep), *(callbacks or [])],
            failure_config=tune.FailureConfig(max_failures=max_failures),
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=study.checkpoint_every,
                                                    checkpoint_at_end=True, num_to_keep=2),
            verbose=verbose,
        ),
    )


def run_study(study: Study, *, storage: str | None = None, uri: str | None = None, address: str | None = None,
              resume: bool = False, export: str | Path | None = None,
              register: Callable[..., dict] | None = None,
              scheduler: str | None = None, cpus_per_trial: float = 1, max_concurrent: int = 0,
              max_failures: int = 2, extra_config: dict[str, Any] | None = None, callbacks: list | None = None,
              verbose: int = 1) -> dict[str, Any]:
    """Run (or resume) ``study``; returns a summary with the trials and the winner."""
    from mahppo.algorithms.runs.run import init_ray
    from mahppo.algorithms.runs.tracking import check_reachable, redact_uri, remember_uri, tracking_uri

    uri = remember_uri(tracking_uri(uri))  # the restored callback's redacted URI resolves to it
    check_reachable(uri)  # before Ray starts
    exp_dir = experiment_dir(study.name, storage)
    if resume and "://" not in exp_dir and (Path(exp_dir) / "study.json").is_file():
        study = Study(**json.loads((Path(exp_dir) / "study.json").read_text()))  # the study as started
    if resume and "://" not in exp_dir and not (Path(exp_dir) / "tuner.pkl").is_file():
        raise FileNotFoundError(f"--resume: no interrupted study at {exp_dir} (run it without --resume first)")
    init_ray(address)
    sweep = read_sweep(exp_dir) if resume else start_sweep(uri, study)  # this invocation's parent run
    tuner = build_tuner(study, storage=storage, uri=uri, cpus_per_trial=cpus_per_trial,
                        max_concurrent=max_concurrent, max_failures=max_failures, scheduler=scheduler,
                        resume=resume, extra_config=extra_config, callbacks=callbacks, verbose=verbose,
                        sweep=sweep)
    if not resume:
        write_sweep(exp_dir, sweep)
    if not resume and "://" not in exp_dir:
        Path(exp_dir).mkdir(parents=True, exist_ok=True)
        (Path(exp_dir) / "study.json").write_text(json.dumps(study.to_json(), indent=2))
    grid = tuner.fit()
    trials = []
    for res in grid:
        cfg = flat_config(res.config or {})
        trials.append({"trial": res.path.rsplit("/", 1)[-1], "point": cfg.get(study.vary), "seed": cfg.get("seed"),
                       "error": str(res.error).splitlines()[0] if res.error else None,
                       "env_steps": (res.metrics or {}).get("env_steps"),
                       WINNER_METRIC: (res.metrics or {}).get(WINNER_METRIC)})
    # Tune creates grid trials lazily: an interrupted study may not even list its later trials.
    unfinished = max(len(grid), len(study.points) * len(study.seeds)) - grid.num_terminated - grid.num_errors
    summary: dict[str, Any] = {"study": study.name, "experiment": study.experiment, "tune_dir": exp_dir,
                               "tracking_uri": redact_uri(uri), "sweep": sweep["id"] if sweep else None,
                               "trials": trials, "errors": grid.num_errors, "unfinished": unfinished, "winner": None}
    ok = [r for r in grid if r.error is None and r.checkpoint is not None
          and (r.metrics or {}).get(WINNER_METRIC) is not None]
    if ok and not unfinished:  # interrupted (Ctrl-C): no winner until `--resume` has finished the rest
        best = max(ok, key=lambda r: r.metrics[WINNER_METRIC])
        summary["winner"] = export_winner(study, best, export or f"{exp_dir}/winner", uri, register=register,
                                          sweep=sweep)
    finish_sweep(uri, sweep, summary)
    return summary


def _safe_to_replace(dest: Path) -> bool:
    return not dest.exists() or (dest.is_dir() and (not any(dest.iterdir()) or (dest / WINNER_FILE).is_file()))


def export_winner(study: Study, result: Any, export: str | Path, uri: str,
                  register: Callable[..., dict] | None = None,
                  sweep: dict[str, str] | None = None) -> dict[str, Any]:
    """Copy the winner's checkpoint into ``export`` (loadable by ``load_policy``/``mahppo evaluate
    --policy``), write ``winner.json`` there and, with ``register`` (``mahppo tune`` passes
    ``serve.mlflow_model.register_champion``: the app layer wires the two), register the run's policy as an
    MLflow pyfunc model with the alias ``champion``: ``models:/mahppo-<study>@champion``. Registering the
    same run again (``--resume`` of a finished study) adds no version."""
    from mahppo.algorithms.acting.policy import find_checkpoint
    from mahppo.algorithms.runs.checkpoints import copy_for_acting
    from mahppo.algorithms.runs.tracking import client, redact_uri
    from mahppo.tune_configs.tracking import TRIAL_TAG

    cfg = flat_config(result.config)
    metrics = {k: float(v) for k, v in result.metrics.items()
               if (k.startswith("test_") or k in ("env_steps", "vf_loss", "train_return_per_ue"))
               and isinstance(v, int | float)}
    trial_id = result.metrics.get("trial_id")
    cl = client(uri)
    exp = cl.get_experiment_by_name(study.experiment)
    runs = cl.search_runs([exp.experiment_id], filter_string=f"tags.{TRIAL_TAG} = '{trial_id}'") if exp else []
    run_id = runs[0].info.run_id if runs else None
    dest = Path(export).resolve()
    if not _safe_to_replace(dest):
        raise ValueError(f"--export {dest}: exists and is not an earlier export (no {WINNER_FILE}); pick another")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with result.checkpoint.as_directory() as local:
        copy_for_acting(find_checkpoint(local), tmp)  # the weights-only export: no pickles
    info: dict[str, Any] = {"study": study.name, "sweep": sweep["id"] if sweep else None,
                            "point": {study.vary: cfg.get(study.vary)}, "seed": cfg.get("seed"),
                            "config": {k: v for k, v in cfg.items() if not k.startswith("_")},
                            "metrics": metrics, "mlflow_run_id": run_id, "tracking_uri": redact_uri(uri),
                            "export": str(dest)}
    if register is not None and run_id:
        reg = register(uri, f"mahppo-{study.name}", run_id, tmp,
                                tags={f"metric.{k}": f"{v:.6g}" for k, v in metrics.items()},
                                description=f"winner of study {study.name}: {study.vary}={cfg.get(study.vary)} "
                                            f"seed {cfg.get('seed')}")
        info["model_uri"], info["model_version_uri"] = reg["model_uri"], reg["version_uri"]
    (tmp / WINNER_FILE).write_text(json.dumps(info, indent=2, default=str))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.replace(dest)
    return info
