"""The Tune trainable: a thin wrapper over ``algorithms.run.Run`` (the same run path as ``mahppo train``).

Each trial builds the ``Experiment`` of its config (``study.trial_experiment``), so N, C, beta and the
hyperparameters may differ per trial. One CPU per trial (sampling and learning in the trial's actor,
one torch thread): a machine or cluster with C CPUs runs C trials side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune

from mahppo.tune_configs.study import trial_experiment


class MAHPPOTrainable(tune.Trainable):
    """One ``step`` = one ``Run.step`` (metrics named as in ``algorithms.run.METRICS``)."""

    def setup(self, config: dict[str, Any]) -> None:
        from mahppo.algorithms.runs.run import Run

        self.run = Run(trial_experiment(config))

    def step(self) -> dict[str, float]:
        return self.run.step()

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        self.run.save(Path(checkpoint_dir))

    def load_checkpoint(self, checkpoint: str | dict | None) -> None:
        self.run.restore(checkpoint)  # type: ignore[arg-type]  # verified complete before RLlib reads it

    def cleanup(self) -> None:
        self.run.stop()
