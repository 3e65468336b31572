"""MLflow tracking: the embedded default is a local SQLite store (no server)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MAX_PARAM_LEN = 500  # MLflow's limit on a param value (6000 on newer servers; stay safe)
MAX_KEY_LEN = 250


def tracking_uri(explicit: str | None = None) -> str:
    """``explicit``, else ``$MLFLOW_TRACKING_URI``, else the local SQLite store ``./mlflow.db``."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts -> ``a.b.c`` keys with string values trimmed to MLflow's length limits."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, prefix=f"{name}."))
            continue
        text = str(value)
        if len(text) > MAX_PARAM_LEN:
            text = text[: MAX_PARAM_LEN - 3] + "..."
        out[name[:MAX_KEY_LEN]] = text
    return out


def flatten_metrics(result: Mapping[str, Any], keys: Mapping[str, tuple[str, ...]]) -> dict[str, float]:
    """Pick numeric metrics out of a nested result by path: ``{"name": ("a", "b")}``."""
    out: dict[str, float] = {}
    for name, path in keys.items():
        node: Any = result
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                node = None
                break
            node = node[part]
        try:
            value = float(node)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if value == value:  # skip NaN
            out[name] = value
    return out


class MlflowRun:
    """A thin wrapper around one MLflow run (params once, metrics per step, artefacts at the end)."""

    def __init__(self, experiment: str, run_name: str, params: Mapping[str, Any], uri: str | None = None,
                 run_id: str | None = None):
        import mlflow

        self._mlflow = mlflow
        self.uri = tracking_uri(uri)
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_experiment(experiment)
        self.run = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name)
        self.run_id = self.run.info.run_id
        if run_id is None:
            flat = flatten_params(params)
            items = list(flat.items())
            for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
                mlflow.log_params(dict(items[i:i + 100]))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if metrics:
            self._mlflow.log_metrics(dict(metrics), step=step)

    def log_artifacts(self, path: str | Path, artifact_path: str | None = None) -> None:
        p = Path(path)
        if p.is_dir():
            self._mlflow.log_artifacts(str(p), artifact_path=artifact_path)
        elif p.is_file():
            self._mlflow.log_artifact(str(p), artifact_path=artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        self._mlflow.end_run(status=status)
