"""Sweeps: each ``mahppo tune`` invocation is one sweep of its study.

A sweep is a parent MLflow run (tag ``role = sweep``) in the study's experiment; every trial of the
sweep is a nested run under it (``mlflow.parentRunId``, the MLflow UI's nesting) carrying the same
``sweep`` tag. Running a study twice gives two sweeps side by side; ``mahppo tune report`` and the
winner use the latest one unless a sweep id is given. ``--resume`` continues the interrupted sweep
(its id is kept in ``<tune dir>/sweep.json``).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

SWEEP_TAG = "sweep"  # the sweep id, on the parent run and on every trial run
ROLE_TAG = "role"  # "sweep" on the parent run
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag
SWEEP_FILE = "sweep.json"
STUDY_ARTIFACT = "study.json"  # the study as the sweep ran it, an artefact of the sweep's run


def new_sweep_id() -> str:
    """``20261129-2104-3fa2``: sortable by start time, unique enough for one study."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]


def start_sweep(uri: str, study: Any) -> dict[str, str]:
    """A new parent run for one invocation of ``study``: ``{"id": ..., "run_id": ...}``."""
    from mahppo.algorithms.runs.tracking import Tracker

    sweep_id = new_sweep_id()
    spec = study.to_json()
    params = {"study": study.name, "vary": study.vary, "steps": study.steps, "seeds": spec["seeds"],
              "points": spec["points"], "fixed": spec["fixed"]}
    t = Tracker.start(uri, study.experiment, f"sweep {sweep_id}", params=params,
                      tags={SWEEP_TAG: sweep_id, ROLE_TAG: "sweep", "study": study.name})
    t.client.log_dict(t.run_id, spec, STUDY_ARTIFACT)  # the study as run: `tune report NAME` reads it back
    return {"id": sweep_id, "run_id": t.run_id}


def study_from_store(name: str, uri: str | None = None, sweep: str | None = None) -> Any:
    """The ``Study`` a sweep of ``tune-<name>`` ran (its latest sweep, or ``sweep``), read back from the
    tracking store: ``mahppo tune report NAME`` works for a study run from any file. None if the store
    has no such sweep."""
    import tempfile

    from mahppo.algorithms.runs.tracking import client
    from mahppo.tune_configs.study import Study

    cl = client(uri)
    exp = cl.get_experiment_by_name(f"tune-{name}")
    if exp is None:
        return None
    where = f"tags.{ROLE_TAG} = 'sweep'" + (f" and tags.{SWEEP_TAG} = '{sweep}'" if sweep else "")
    runs = cl.search_runs([exp.experiment_id], filter_string=where, order_by=["attributes.start_time DESC"],
                          max_results=1)
    if not runs:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = cl.download_artifacts(runs[0].info.run_id, STUDY_ARTIFACT, tmp)
        except Exception:  # an older sweep without the artefact
            return None
        return Study(**json.loads(Path(path).read_text()))


def trial_tags(sweep: dict[str, str] | None) -> dict[str, str]:
    """The tags that put a trial's run into its sweep (nested under the sweep's run)."""
    if not sweep:
        return {}
    return {SWEEP_TAG: sweep["id"], PARENT_TAG: sweep["run_id"]}


def write_sweep(exp_dir: str, sweep: dict[str, str]) -> None:
    if "://" not in exp_dir:
        Path(exp_dir).mkdir(parents=True, exist_ok=True)
        (Path(exp_dir) / SWEEP_FILE).write_text(json.dumps(sweep))


def read_sweep(exp_dir: str) -> dict[str, str] | None:
    """The sweep an interrupted study was running (None for a study started before sweeps existed)."""
    path = Path(exp_dir) / SWEEP_FILE
    if "://" in exp_dir or not path.is_file():
        return None
    return json.loads(path.read_text())


def finish_sweep(uri: str, sweep: dict[str, str] | None, summary: dict[str, Any]) -> None:
    """Close the parent run: FINISHED with the winner's metrics and run id, or KILLED if interrupted."""
    if not sweep:
        return
    from mahppo.algorithms.runs.tracking import Tracker, client

    t = Tracker(client(uri), sweep["run_id"])
    winner = summary.get("winner")
    if winner:
        t.log_metrics({f"winner.{k}": v for k, v in winner.get("metrics", {}).items()}, step=0)
        if winner.get("mlflow_run_id"):
            t.set_tag("winner_run_id", str(winner["mlflow_run_id"]))
        if winner.get("model_uri"):
            t.set_tag("winner_model_uri", str(winner["model_uri"]))
    t.set_tag("trials", str(len(summary.get("trials", []))))
    t.end(status="KILLED" if summary.get("unfinished") else "FINISHED")


def latest_sweep(cl: Any, experiment_id: str) -> str | None:
    """The id of the experiment's most recently started sweep (None: no sweep runs, an older store)."""
    runs = cl.search_runs([experiment_id], filter_string=f"tags.{ROLE_TAG} = 'sweep'",
                          order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].data.tags.get(SWEEP_TAG) if runs else None


def sweep_ids(cl: Any, experiment_id: str) -> list[str]:
    """Every sweep of the experiment, oldest first."""
    runs = cl.search_runs([experiment_id], filter_string=f"tags.{ROLE_TAG} = 'sweep'",
                          order_by=["attributes.start_time ASC"], max_results=1000)
    return [r.data.tags[SWEEP_TAG] for r in runs if SWEEP_TAG in r.data.tags]


def trial_filter(sweep_id: str | None) -> str:
    """The MLflow filter for a sweep's finished trial runs (all finished trials when ``sweep_id`` is
    None), never the sweep's own parent run."""
    base = "attributes.status = 'FINISHED'"
    return base + (f" and tags.{SWEEP_TAG} = '{sweep_id}'" if sweep_id else "")
