"""``mahppo train``: an ``Experiment`` trained by a ``Run`` into an output directory, with a progress
bar, checkpoints, a final comparison against every baseline, a training-curve PNG and MLflow tracking.

Output directory::

    run.json                 the Experiment (what --resume reads)
    curve.csv                one row per iteration (``run.METRICS``)
    checkpoints.json         the run's record of its verified checkpoints (the newest is read from it)
    checkpoints/iter_NNNNNN  RLlib state + weights-only export (policy/) + sidecar (``algorithms.checkpoints``)
    evaluation.json / .md    the trained policy against every baseline on the test scenario
    training_curve.png       Fig. 8 style: test-scenario episode reward vs env steps, baselines as lines
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from mahppo.algorithms.experiment import Experiment
from mahppo.algorithms.runs import checkpoints as ck
from mahppo.algorithms.runs.run import METRICS, Run, read_meta
from mahppo.runtime.logs import ensure_configured

log = logging.getLogger(__name__)

KEEP_CHECKPOINTS = ck.KEEP_CHECKPOINTS


def read_experiment(out: Path) -> Experiment:
    """The ``run.json`` of a training directory (errors name the file and the field)."""
    f = Path(out) / "run.json"
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no run.json (not a `mahppo train --out` dir)")
    try:
        data = json.loads(f.read_text())
    except ValueError as exc:
        raise ValueError(f"{f}: not valid JSON ({exc})") from None
    return Experiment.from_dict(data, where=str(f))


def plan(experiment: Experiment) -> str:
    """What ``--steps`` buys, printed before a run starts: the warm start's teacher episodes (their frames
    count as env steps) and PPO iterations of ``memory_size`` env steps until ``steps`` in all; the
    iteration that reaches it runs to its end."""
    run, algo, env = experiment.run, experiment.algo, experiment.env
    ppo = f"PPO iterations of memory_size = {algo.memory_size} env steps until {run.steps} env steps in all " \
          f"(the last one runs to its end: up to {algo.memory_size - 1} steps more)"
    if experiment.warm_start == "none":
        return f"plan: {ppo}"
    cut = f", at most {env.max_frames} frames each" if env.max_frames else ""
    return (f"plan: warm start ({experiment.warm_start} teacher): {algo.warm_start_episodes} training episodes{cut}, "
            f"counted in the env steps; then {ppo}, at least one (a warm start longer than --steps is not cut: "
            "lower --warm-start-episodes, or --warm-start none)")


def checkpoints(out: Path) -> list[Path]:
    """The recorded checkpoints of a run (``checkpoints.json``), oldest first."""
    return [ck.checkpoint_path(out, e) for e in ck.read_record(out) or []]


def save_checkpoint(run: Run, out: Path) -> Path:
    """``run.save`` as ``checkpoints/iter_N``: verified, recorded, then older ones pruned."""
    return ck.save_into_run(out, run.iteration, run.save, env_steps=run.env_steps, keep=KEEP_CHECKPOINTS)


def _read_curve(path: Path, upto: int) -> list[dict[str, float]]:
    if not path.exists():
        return []
    rows = []
    i = 0
    try:
        with path.open() as f:
            for i, row in enumerate(csv.DictReader(f)):
                try:
                    r = {k: float(v) for k, v in row.items() if k in METRICS and v not in ("", None)}
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{path}: row {i + 1} is not numeric ({exc})") from None
                if r.get("iteration", upto + 1) <= upto:
                    rows.append(r)
    except (UnicodeDecodeError, csv.Error) as exc:  # not text, or not CSV
        raise ValueError(f"{path}: not a curve file after row {i} ({exc}); fix or delete it") from None
    return rows


def _write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRICS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def train(experiment: Experiment, out: str | Path, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True, final_eval: bool = True) -> dict[str, Any]:
    """Train until ``experiment.run.steps`` env steps; returns a summary (everything is also in ``out``).

    ``out`` must be new or empty, unless ``resume`` (continue it from its newest complete checkpoint)
    or ``overwrite`` (replace it)."""
    from tqdm import tqdm

    from mahppo.algorithms.runs.tracking import Tracker

    ensure_configured()
    experiment = experiment.validate()
    out = ck.claim_run_dir(out, resume=resume, overwrite=overwrite)
    run = Run(experiment)
    rows: list[dict[str, float]] = []
    tracker = None
    run_id_file = out / "mlflow_run_id"
    try:
        if resume:  # the newest complete checkpoint (saying so when it skips one), or a one-line refusal
            if ck.resume_from(out, run.restore) is not None:
                rows = _read_curve(out / "curve.csv", run.iteration)
            elif _read_curve(out / "curve.csv", 1 << 62):
                raise ck.CheckpointError(f"--resume {out}: curve.csv has iterations but the run has no "
                                         "checkpoint; start again with --overwrite")
            else:
                log.info(f"note: {out} has no checkpoint yet; starting at iteration 1")
        ck.write_json_atomic(out / ck.RUN_FILE, experiment.to_dict())  # after a refusal, run.json stays as it was
        log.info(plan(experiment))  # after the folder and resume checks: a refusal stays one line
        if experiment.run.tracked:
            prev = run_id_file.read_text().strip() if resume and run_id_file.exists() else None
            tracker = Tracker.start(experiment.run.mlflow_uri, experiment.run.mlflow_experiment, out.name,
                                    params=experiment.flat(), run_id=prev)
            run_id_file.write_text(tracker.run_id)
        total = experiment.run.steps
        bar = tqdm(total=total, initial=min(run.env_steps, total), unit="step", disable=not progress,
                   desc=f"{experiment.run.algo} N={experiment.env.num_ues}", dynamic_ncols=True)
        last_ckpt = run.iteration
        while not run.done:
            before = run.env_steps
            try:
                row = run.step()
            except KeyboardInterrupt:  # Ctrl-C: keep everything up to the last finished iteration
                bar.close()
                if run.iteration > last_ckpt:
                    _write_curve(out / "curve.csv", rows)
                    save_checkpoint(run, out)
                log.warning(f"interrupted: checkpoint of iteration {run.iteration} kept; continue with "
                            f"`mahppo train --resume {out}`")
                raise
            rows.append(row)
            bar.update(min(run.env_steps, total) - min(before, total))
            bar.set_postfix(reward=f"{row.get('test_reward', float('nan')):.3f}",
                            lat=f"{row.get('test_frame_latency_per_task_s', float('nan')):.4f}",
                            energy=f"{row.get('test_energy_per_task_j', float('nan')):.4f}")
            if tracker is not None:
                tracker.log_metrics({k: v for k, v in row.items() if k != "env_steps"}, step=run.env_steps)
            if run.iteration % experiment.run.checkpoint_every == 0:
                _write_curve(out / "curve.csv", rows)
                save_checkpoint(run, out)
                last_ckpt = run.iteration
        bar.close()
        _write_curve(out / "curve.csv", rows)
        if last_ckpt != run.iteration or not checkpoints(out):
            save_checkpoint(run, out)
        wall = run.elapsed_s
        summary: dict[str, Any] = {"out": str(out), "algo": experiment.run.algo, "env_steps": run.env_steps,
                                   "iterations": run.iteration, "wall_time_s": wall,
                                   "env_steps_per_s": run.env_steps / wall if wall > 0 else None,
                                   "checkpoint": str(ck.find_for_acting(out))}
        if run.warm_start_stats:  # the teacher's share of env_steps and the fits' last losses
            summary["warm_start"] = run.warm_start_stats
        if final_eval:
            from mahppo.algorithms.runs.report import compare_with_baselines, plot_training_curve

            table = compare_with_baselines(out, experiment)
            summary["evaluation"] = table
            plot_training_curve(out, rows, table, experiment)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        if tracker is not None:
            if "evaluation" in summary:
                tracker.log_metrics({f"final_{k}": v for k, v in summary["evaluation"]["trained"].items()
                                     if isinstance(v, int | float)}, step=run.env_steps)
            for name in ("evaluation.json", "evaluation.md", "training_curve.png", "curve.csv", "summary.json"):
                tracker.log_artifacts(out / name)
            with tempfile.TemporaryDirectory() as tmp:  # the weights-only export: no pickles in the store
                tracker.log_artifacts(ck.copy_for_acting(summary["checkpoint"], Path(tmp) / "checkpoint"),
                                      artifact_path="checkpoint")
            tracker.end()
            tracker = None
        return summary
    except BaseException:
        if tracker is not None:
            tracker.end(status="KILLED")
        raise
    finally:
        run.stop()


__all__ = ["plan", "checkpoints", "read_experiment", "read_meta", "save_checkpoint", "train"]
