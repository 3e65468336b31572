"""MAHPPO (Sec. 5, Alg. 1) on RLlib, grouped by job:

- ``experiment`` / ``params``: the typed config every entry point shares (``Experiment(env, algo, run)``);
- ``rllib/``: the RLlib algorithm (config, RLModules, action codec, learner, connectors, sampler);
- ``runs/``: a training run's life (run, train, checkpoints, export, tracking, report);
- ``acting/``: deciding with a trained policy (``TrainedPolicy``) and the warm-start teacher.

The public names load lazily, so ``import mahppo.algorithms`` stays free of Ray and torch:

>>> from mahppo.algorithms import Experiment, MAHPPOConfig, RLlibCollabEnv, load_policy, train
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_PUBLIC = {
    "Experiment": "mahppo.algorithms.experiment",
    "RunSettings": "mahppo.algorithms.experiment",
    "MAHPPOParams": "mahppo.algorithms.params",
    "MAHPPOConfig": "mahppo.algorithms.rllib.mahppo",
    "module_setup": "mahppo.algorithms.rllib.mahppo",
    "MAHPPO": "mahppo.algorithms.rllib.mahppo",
    "RLlibCollabEnv": "mahppo.algorithms.rllib.mahppo",
    "build_config": "mahppo.algorithms.rllib.mahppo",
    "train": "mahppo.algorithms.runs.train",
    "Run": "mahppo.algorithms.runs.run",
    "load_policy": "mahppo.algorithms.acting.policy",
    "TrainedPolicy": "mahppo.algorithms.acting.policy",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'mahppo.algorithms' has no attribute {name!r}")
