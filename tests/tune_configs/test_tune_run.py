"""Tiny studies on a real local Ray (2 CPUs) with a temporary SQLite MLflow store."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import ray
from ray import tune

from mahppo.serve.mlflow_model import register_champion
from mahppo.tune_configs.study import parse_study

pytestmark = pytest.mark.slow

TINY = {"grid": {"lr": [1.0e-4, 1.0e-3]},
        "fixed": {"num_ues": 3, "memory_size": 256, "batch_size": 64, "reuse_time": 1},
        "seeds": 1, "steps": 500, "eval_every": 3, "checkpoint_every": 1}  # 2 iterations; the 2nd evaluated at the end


def fail_once(monkeypatch, marker):
    """Fault injection by monkeypatching: the trainable's first attempt crashes (then Tune retries)."""
    import sys

    from mahppo.tune_configs import trainable

    class FailOnce(trainable.MAHPPOTrainable):
        def step(self):
            from pathlib import Path

            if not Path(marker).exists():
                Path(marker).write_text("failed once\n")
                raise RuntimeError("injected failure (first attempt of this trial)")
            return super().step()

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this module
    monkeypatch.setattr(trainable, "MAHPPOTrainable", FailOnce)


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from mahppo.algorithms.runs.run import set_torch_threads

    set_torch_threads(1)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # never a shared one
    yield
    ray.shutdown()


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _runs(uri: str, experiment: str, role: str | None = None) -> list:
    """The experiment's trial runs (``role="sweep"``: the sweeps' parent runs instead)."""
    from mlflow.tracking import MlflowClient

    cl = MlflowClient(uri)
    exp = cl.get_experiment_by_name(experiment)
    runs = cl.search_runs([exp.experiment_id]) if exp else []
    return [r for r in runs if r.data.tags.get("role") == role]


def test_tiny_study_tracks_retries_and_exports_the_winner(local_ray, store, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.marl_env.config import EnvConfig
    from mahppo.marl_env.evaluation import evaluate
    from mahppo.tune_configs.runner import WINNER_FILE, run_study

    study = parse_study({"name": "tiny", **TINY})
    marker = tmp_path / "failed_once"
    fail_once(monkeypatch, str(marker))
    summary = run_study(study, register=register_champion, uri=store, export=tmp_path / "winner", verbose=0)
    assert marker.exists(), "the injected failure did not fire"
    assert summary["errors"] == 0 and summary["unfinished"] == 0
    assert len(summary["trials"]) == 2 and all(t["env_steps"] >= 500 for t in summary["trials"])

    runs = _runs(store, "tune-tiny")
    assert len(runs) == 2
    cl = MlflowClient(store)
    assert sorted(r.data.tags.get("retries", "0") for r in runs) == ["0", "1"]  # one trial crashed, retried
    for r in runs:
        assert r.info.status == "FINISHED"
        assert {"algo.lr", "env.num_ues", "run.seed", "algo.memory_size", "algo.clip_eps"} <= set(r.data.params)
        assert {"test_reward", "test_energy_per_task_j", "vf_loss", "entropy_point", "entropy_channel",
                "entropy_power", "train_return_per_ue"} <= set(r.data.metrics)
        assert len(cl.get_metric_history(r.info.run_id, "test_reward")) >= 2  # per iteration
        arts = {a.path for a in cl.list_artifacts(r.info.run_id)}
        assert {"checkpoint", "plots"} <= arts
        assert "checkpoint/mahppo_policy.json" in {a.path for a in cl.list_artifacts(r.info.run_id, "checkpoint")}

    w = summary["winner"]
    best = max(runs, key=lambda r: r.data.metrics["test_reward"])
    assert w["mlflow_run_id"] == best.info.run_id
    assert (tmp_path / "winner" / WINNER_FILE).is_file()
    assert w["model_uri"] == "models:/mahppo-tiny@champion" and w["model_version_uri"] == "models:/mahppo-tiny/1"
    (sweep,) = _runs(store, "tune-tiny", role="sweep")  # one invocation, one sweep; its trials nest under it
    assert sweep.info.status == "FINISHED" and sweep.data.tags["sweep"] == summary["sweep"]
    assert all(r.data.tags["mlflow.parentRunId"] == sweep.info.run_id for r in runs)
    assert all(r.data.tags["sweep"] == summary["sweep"] for r in runs)
    assert {"mlflow.source.git.commit", "mahppo.version"} <= set(runs[0].data.tags)
    for spec in (tmp_path / "winner", w["model_uri"]):
        policy = load_policy(spec)
        assert policy.agents == ["ue_0", "ue_1", "ue_2"]
        m = evaluate(policy, EnvConfig.from_kwargs(num_ues=3, scenario="test"))
        assert m["tasks_completed"] == 600
        assert np.isclose(m["reward"], w["metrics"]["test_reward"])  # the same deterministic policy


class _InterruptAfterFirstTrial(tune.Callback):
    """Ctrl-C as soon as the first trial has finished (Tune saves the state and returns)."""

    def on_trial_complete(self, iteration, trials, trial, **info):
        os.kill(os.getpid(), signal.SIGINT)


def test_resume_does_not_rerun_finished_trials(local_ray, store, tmp_path):
    from mahppo.tune_configs.runner import run_study

    study = parse_study({"name": "resumable", **TINY, "steps": 250})  # 1 iteration per trial
    first = run_study(study, register=register_champion, uri=store, max_concurrent=1, verbose=0,
                      callbacks=[_InterruptAfterFirstTrial()])
    assert first["unfinished"] == 1 and first["winner"] is None
    runs = _runs(store, "tune-resumable")
    done = [r for r in runs if r.info.status == "FINISHED"]
    assert len(done) == 1
    iters_before = done[0].data.metrics["iteration"]

    second = run_study(study, register=register_champion, uri=store, resume=True, verbose=0)
    assert second["unfinished"] == 0 and second["errors"] == 0 and second["winner"] is not None
    runs = _runs(store, "tune-resumable")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    again = next(r for r in runs if r.info.run_id == done[0].info.run_id)
    from mlflow.tracking import MlflowClient

    hist = MlflowClient(store).get_metric_history(again.info.run_id, "iteration")
    assert len(hist) == iters_before, "the finished trial was trained again"
    assert second["sweep"] == first["sweep"] and len(_runs(store, "tune-resumable", role="sweep")) == 1

    # resuming a finished study: nothing new
    third = run_study(study, register=register_champion, uri=store, resume=True, verbose=0)
    assert third["winner"]["model_version_uri"] == second["winner"]["model_version_uri"] == \
        "models:/mahppo-resumable/1"
    assert len(MlflowClient(store).search_model_versions("name = 'mahppo-resumable'")) == 1


def test_each_invocation_is_a_sweep_and_the_report_reads_the_latest(local_ray, store, tmp_path):
    from mahppo.tune_configs.report import collect_runs, draw_report
    from mahppo.tune_configs.runner import run_study

    study = parse_study({"name": "twice", **TINY, "grid": {"lr": [1.0e-4]}, "steps": 250})
    first = run_study(study, register=register_champion, uri=store, verbose=0, export=tmp_path / "w1")
    second = run_study(study, register=register_champion, uri=store, verbose=0, export=tmp_path / "w2")
    assert first["sweep"] != second["sweep"]
    assert len(_runs(store, "tune-twice")) == 2 and len(_runs(store, "tune-twice", role="sweep")) == 2
    latest = collect_runs(study, store)
    assert [r.data.tags["sweep"] for runs in latest.values() for r in runs] == [second["sweep"]]
    older = collect_runs(study, store, sweep=first["sweep"])
    assert [r.data.tags["sweep"] for runs in older.values() for r in runs] == [first["sweep"]]
    info = draw_report(study, tmp_path / "fig.png", uri=store)
    assert info["runs"] == 1 and info["sweep"] == second["sweep"]
    with pytest.raises(ValueError, match="--sweep 'nope': no such sweep"):
        collect_runs(study, store, sweep="nope")
