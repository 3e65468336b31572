"""MLflow tracking of a study: one run per trial, logged from the Tune driver.

Logging happens in the driver (a Tune ``Callback``), not in the trials, so a local SQLite store works
on a cluster too (only the driver writes to it). Each run holds the trial's params (flattened, within
MLflow's limits), its per-iteration metrics (step = env steps), its final checkpoint (artefact path
``checkpoint``, loadable with ``load_policy("runs:/RUN_ID/checkpoint")``) and a curve plot.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ray.tune import Callback

from mahppo.algorithms.runs.tracking import Tracker, client, experiment_id
from mahppo.tune_configs.study import flat_config, trial_experiment
from mahppo.tune_configs.sweeps import SWEEP_TAG, trial_tags

TRIAL_TAG = "tune_trial_id"
RESULT_KEYS_SKIPPED = ("training_iteration", "timestamp", "pid", "done", "time_this_iter_s", "time_since_restore",
                       "iterations_since_restore", "timesteps_total", "episodes_total", "env_steps")


def trial_name(cfg: dict[str, Any]) -> str:
    """``beta=0.1_seed2``: the MLflow run name of a trial."""
    vary = str(cfg.get("vary"))
    return f"{vary}={cfg.get(vary)}_seed{cfg.get('seed')}"


class MlflowTrialCallback(Callback):
    """Tune callback: one ``Tracker`` (MLflow run) per trial in the study's experiment, logged from the
    driver; params are ``Experiment.flat()`` names, metrics ``algorithms.run.METRICS`` names."""

    def __init__(self, uri: str, experiment: str, sweep: dict[str, str] | None = None):
        self.uri = uri
        self.experiment = experiment
        self.sweep = sweep  # the invocation's parent run (tune_configs.sweeps); trials nest under it
        self._runs: dict[str, Tracker] = {}
        self._checkpoints: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks with the experiment state
        from mahppo.algorithms.runs.tracking import redact_uri  # no password in tuner.pkl (see remember_uri)

        return {"uri": redact_uri(self.uri), "experiment": self.experiment, "sweep": self.sweep, "_runs": {},
                "_checkpoints": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"sweep": None, **state})

    def tracker(self, trial: Any) -> Tracker:
        """The trial's run: an unfinished run of the same trial is continued (retry, ``--resume``)."""
        tid = trial.trial_id
        if tid not in self._runs:
            cl = client(self.uri)
            where = f"tags.{TRIAL_TAG} = '{tid}'" + (f" and tags.{SWEEP_TAG} = '{self.sweep['id']}'"
                                                     if self.sweep else "")
            found = cl.search_runs([experiment_id(cl, self.experiment)], filter_string=where, max_results=1)
            cfg = flat_config(trial.config)
            if found:
                self._runs[tid] = Tracker.start(self.uri, self.experiment, "", run_id=found[0].info.run_id)
            else:
                self._runs[tid] = Tracker.start(
                    self.uri, self.experiment, trial_name(cfg), params=trial_experiment(trial.config).flat(),
                    tags={TRIAL_TAG: tid, "study": str(cfg.get("study", "")),
                          "point": f"{cfg.get('vary')}={cfg.get(str(cfg.get('vary')))}", **trial_tags(self.sweep)})
        return self._runs[tid]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        step = int(result.get("env_steps", result.get("training_iteration", 0)))
        self.tracker(trial).log_metrics({k: v for k, v in result.items() if k not in RESULT_KEYS_SKIPPED},
                                        step=step)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        self._checkpoints[trial.trial_id] = checkpoint

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        t = self.tracker(trial)
        tags = t.client.get_run(t.run_id).data.tags
        t.set_tag("retries", str(int(tags.get("retries", "0")) + 1))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        t = self.tracker(trial)
        t.set_tag("error", str(getattr(trial, "error_file", "") or "see the Tune trial log"))
        t.end(status="FAILED")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Interrupted (Ctrl-C): runs of unfinished trials are marked KILLED until ``--resume``."""
        for trial in trials:
            if trial.trial_id in self._runs and trial.status not in ("TERMINATED", "ERROR"):
                self._runs[trial.trial_id].end(status="KILLED")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        t = self.tracker(trial)
        log_final_artifacts(t, self._checkpoints.get(trial.trial_id) or trial.checkpoint)
        t.end()


def log_final_artifacts(t: Tracker, checkpoint: Any) -> None:
    """The trial's final policy (a Tune ``Checkpoint``'s weights-only export and sidecar, no pickles;
    artefact path ``checkpoint``) and its curves (``plots/``)."""
    from mahppo.algorithms.acting.policy import find_checkpoint
    from mahppo.algorithms.runs.checkpoints import copy_for_acting

    if checkpoint is not None:
        with checkpoint.as_directory() as local, tempfile.TemporaryDirectory() as tmp:
            t.log_artifacts(copy_for_acting(find_checkpoint(local), Path(tmp) / "checkpoint"),
                            artifact_path="checkpoint")
        t.set_tag("tune_checkpoint", str(checkpoint.path))
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "curves.png"
        if plot_run_curves(t.client, t.run_id, png):
            t.log_artifacts(png, artifact_path="plots")


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
