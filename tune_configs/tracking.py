"""MLflow tracking of a study: one run per trial, logged from the Tune driver.

Logging happens in the driver (a Tune ``Callback``), not in the trials, so a local SQLite store works
on a cluster too (only the driver writes to it). Each run holds the trial's params (flattened, within
MLflow's limits), its per-iteration metrics (step = env steps), its final checkpoint (artefact path
``checkpoint``, loadable with ``load_policy("runs:/RUN_ID/checkpoint")``) and a curve plot.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from mahppo.tune_configs.study import flat_config
from mahppo.tune_configs.trainable import FAIL_ONCE_KEY
from ray.tune import Callback

TRIAL_TAG = "tune_trial_id"
RESULT_KEYS_SKIPPED = ("training_iteration", "timestamp", "pid", "done", "time_this_iter_s", "time_since_restore",
                       "iterations_since_restore", "timesteps_total", "episodes_total", "time_total_s")


def resolved_uri(uri: str) -> str:
    """A relative ``sqlite:///file`` made absolute (so the printed UI command works from anywhere)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on this store."""
    return f"mlflow ui --backend-store-uri {uri}"


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(cl: Any, name: str) -> str:
    exp = cl.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            cl.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    return cl.create_experiment(name)


def trial_params(config: dict[str, Any]) -> dict[str, Any]:
    """The params an MLflow run records: every MAHPPO hyperparameter (defaults filled in) and the
    trial's compact config, test hooks left out."""
    from dataclasses import asdict

    from mahppo.algorithms.mahppo import MAHPPOParams

    cfg = {k: v for k, v in flat_config(config).items() if k != FAIL_ONCE_KEY}
    return {**asdict(MAHPPOParams()), **cfg}


def point_label(cfg: dict[str, Any]) -> str:
    vary = str(cfg.get("vary"))
    return f"{vary}={cfg.get(vary)}"


def trial_name(cfg: dict[str, Any]) -> str:
    """``beta=0.1_seed2``: the MLflow run name of a trial."""
    return f"{point_label(cfg)}_seed{cfg.get('seed')}"


class MlflowTrialCallback(Callback):
    """Tune callback: an MLflow run per trial in the study's experiment."""

    def __init__(self, uri: str, experiment: str):
        self.uri = uri
        self.experiment = experiment
        self._runs: dict[str, str] = {}
        self._checkpoints: dict[str, str] = {}
        self._client: Any = None
        self._exp_id: str | None = None

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks with the experiment state
        return {"uri": self.uri, "experiment": self.experiment, "_runs": {}, "_checkpoints": {},
                "_client": None, "_exp_id": None}

    @property
    def cl(self) -> Any:
        if self._client is None:
            self._client = client(self.uri)
            self._exp_id = experiment_id(self._client, self.experiment)
        return self._client

    def run_id(self, trial: Any) -> str:
        """The trial's run: an unfinished run of the same trial is continued (retry, ``--resume``)."""
        tid = trial.trial_id
        if tid in self._runs:
            return self._runs[tid]
        cl = self.cl
        found = cl.search_runs([self._exp_id], filter_string=f"tags.{TRIAL_TAG} = '{tid}'", max_results=1)
        if found:
            run_id = found[0].info.run_id
            if found[0].info.status != "RUNNING":
                cl.update_run(run_id, status="RUNNING")
        else:
            from mahppo.algorithms.tracking import flatten_params
            from mlflow.entities import Param

            cfg = trial_params(trial.config)
            params = flatten_params(cfg)
            run = cl.create_run(self._exp_id, run_name=trial_name(cfg), tags={
                TRIAL_TAG: tid, "study": str(cfg.get("study", "")), "point": point_label(cfg)})
            run_id = run.info.run_id
            items = [Param(k, v) for k, v in params.items()]
            for i in range(0, len(items), 100):
                cl.log_batch(run_id, params=items[i:i + 100])
        self._runs[tid] = run_id
        return run_id

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.run_id(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        from mlflow.entities import Metric

        run_id = self.run_id(trial)
        step = int(result.get("env_steps", result.get("training_iteration", 0)))
        ts = int(time.time() * 1000)
        metrics = [Metric(k, float(v), ts, step) for k, v in result.items()
                   if k not in RESULT_KEYS_SKIPPED and isinstance(v, int | float) and not isinstance(v, bool)
                   and v == v]
        metrics.append(Metric("iteration", float(result.get("training_iteration", 0)), ts, step))
        if "time_total_s" in result:
            metrics.append(Metric("time_total_s", float(result["time_total_s"]), ts, step))
        self.cl.log_batch(run_id, metrics=metrics)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        self._checkpoints[trial.trial_id] = checkpoint

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        cl = self.cl
        run_id = self.run_id(trial)
        tags = cl.get_run(run_id).data.tags
        cl.set_tag(run_id, "retries", str(int(tags.get("retries", "0")) + 1))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.run_id(trial)
        self.cl.set_tag(run_id, "error", str(getattr(trial, "error_file", "") or "see the Tune trial log"))
        self.cl.set_terminated(run_id, status="FAILED")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Interrupted (Ctrl-C): runs of unfinished trials are marked KILLED until ``--resume``."""
        for trial in trials:
            if trial.trial_id in self._runs and trial.status not in ("TERMINATED", "ERROR"):
                self.cl.set_terminated(self._runs[trial.trial_id], status="KILLED")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.run_id(trial)
        ckpt = self._checkpoints.get(trial.trial_id) or trial.checkpoint
        log_final_artifacts(self.cl, run_id, ckpt)
        self.cl.set_terminated(run_id, status="FINISHED")


def log_final_artifacts(cl: Any, run_id: str, checkpoint: Any) -> None:
    """The trial's final checkpoint (a Tune ``Checkpoint``; artefact path ``checkpoint``) and its
    curves (``plots/``)."""
    from mahppo.algorithms.policy import find_checkpoint

    if checkpoint is not None:
        with checkpoint.as_directory() as local:
            ckpt = find_checkpoint(local)
            cl.log_artifacts(run_id, str(ckpt), artifact_path="checkpoint")
        cl.set_tag(run_id, "tune_checkpoint", str(checkpoint.path))
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "curves.png"
        if plot_run_curves(cl, run_id, png):
            cl.log_artifact(run_id, str(png), artifact_path="plots")


def plot_run_curves(cl: Any, run_id: str, out: Path) -> bool:
    """Test-scenario reward, training return and value loss of one run vs env steps."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    panels = [("test_reward", "test-scenario reward"), ("train_return_per_ue", "training return per UE"),
              ("vf_loss", "value loss")]
    hist = {k: sorted((m.step, m.value) for m in cl.get_metric_history(run_id, k)) for k, _ in panels}
    if not any(hist.values()):
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(12, 3.2))
    for ax, (key, label) in zip(axes, panels, strict=True):
        pts = hist[key]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 20 else None)
        ax.set_xlabel("env steps")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return True


def register_winner(uri: str, model_name: str, run_id: str, metrics: dict[str, float],
                    description: str = "") -> str:
    """Register ``runs:/RUN_ID/checkpoint`` as a new version of ``model_name``; returns ``models:/NAME/V``."""
    from mlflow.exceptions import MlflowException

    cl = client(uri)
    try:
        cl.create_registered_model(model_name, description="MAHPPO policies picked by `mahppo tune`")
    except MlflowException as exc:
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
    run = cl.get_run(run_id)
    source = f"{run.info.artifact_uri.rstrip('/')}/checkpoint"
    tags = {f"metric.{k}": f"{v:.6g}" for k, v in metrics.items()}
    mv = cl.create_model_version(model_name, source=source, run_id=run_id, tags=tags, description=description)
    return f"models:/{model_name}/{mv.version}"
