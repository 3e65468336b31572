"""A short real training run on a local Ray (the session's tiny run): checkpoints, evaluate, restore, resume,
the IPPO ablation."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from mahppo.algorithms.acting.policy import find_checkpoint, live_policy, load_policy
from mahppo.algorithms.experiment import Experiment
from mahppo.algorithms.params import PAPER_LR
from mahppo.algorithms.runs.train import train
from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.evaluation import evaluate

pytestmark = pytest.mark.slow
TINY = {"memory_size": 256, "batch_size": 64, "reuse_time": 2, "num_envs_per_env_runner": 4}


@pytest.fixture(scope="module")
def trained(ray_session, trained_run):
    return trained_run


def test_training_writes_checkpoints_curve_evaluation_and_plot(trained):
    out, experiment, summary = trained
    assert summary["env_steps"] >= experiment.run.steps
    ckpt = find_checkpoint(out)
    assert (ckpt / "mahppo_policy.json").is_file()
    assert (out / "training_curve.png").stat().st_size > 1000
    table = json.loads((out / "evaluation.json").read_text())
    baselines = {"local", "edge", "random", "greedy", "static-search", "rotate", "maxweight", "myopic"}
    if table["trained"]["truncated_episodes"]:  # no lookahead for a policy that does not finish the episode
        assert set(table) == {"trained"} | baselines
    else:
        assert set(table) == {"trained", "trained+lookahead"} | baselines
        assert table["trained+lookahead"]["reward"] >= table["trained"]["reward"] - 1e-9
    assert table["local"]["energy_vs_local"] == pytest.approx(1.0)
    rows = (out / "curve.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,env_steps") and len(rows) >= 3


def test_evaluate_cli_accepts_the_train_out_dir(trained):
    out, _, _ = trained
    res = subprocess.run([sys.executable, "-m", "mahppo", "evaluate", "--policy", str(out), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["tasks_completed"] == 2 * 200  # the policy's own N = 2, test scenario


def test_restored_policy_acts_like_the_trained_one(trained, ray_session):
    out, experiment, _ = trained
    from ray.rllib.algorithms.algorithm import Algorithm

    ckpt = find_checkpoint(out)
    algo = Algorithm.from_checkpoint(str(ckpt))
    try:
        live = live_policy(algo, experiment)
        loaded = load_policy(ckpt)
        states = np.random.default_rng(0).uniform(0, 1, size=(32, 8)).astype(np.float32)
        for a, b in zip(live.act_batch(states), loaded.act_batch(states), strict=True):
            np.testing.assert_allclose(a, b)
    finally:
        algo.stop()
    config = EnvConfig.from_kwargs(num_ues=2, scenario="test")
    assert evaluate(load_policy(ckpt), config) == evaluate(load_policy(out), config)


def test_resume_continues_from_the_latest_checkpoint(trained, tmp_path):
    out, experiment, summary = trained
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = json.loads((find_checkpoint(copy) / "mahppo_policy.json").read_text())["iteration"]
    longer = experiment.replace(run=replace(experiment.run, steps=summary["env_steps"] + 100))  # one iteration
    resumed = train(longer, copy, resume=True, progress=False, final_eval=False)
    after = json.loads((find_checkpoint(copy) / "mahppo_policy.json").read_text())["iteration"]
    assert after == before + 1 and resumed["env_steps"] > summary["env_steps"]


def test_ippo_ablation_trains_and_evaluates_from_a_relative_out_dir(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the paper's lr: after 300 steps its policy still finishes the test episode within the frame cap
    experiment = Experiment().with_flat({"num_ues": 2, "steps": 300, "algo": "ippo", **TINY, **PAPER_LR})
    train(experiment, "runs/ippo", progress=False, final_eval=False)
    m = evaluate(load_policy("runs/ippo"), EnvConfig.from_kwargs(num_ues=2, scenario="test"))
    assert m["tasks_completed"] == 400


def test_policy_refuses_an_env_with_another_number_of_ues(trained):
    out, _, _ = trained
    with pytest.raises(ValueError, match="trained for 2 UEs"):
        evaluate(load_policy(out), EnvConfig.from_kwargs(num_ues=3, scenario="test"))


def test_policy_refuses_an_env_with_other_channels(trained):
    out, _, _ = trained
    with pytest.raises(ValueError, match=r"ue_0 was trained for \(points, channels, p_max\) = \(6, 2, 1.0\)"):
        evaluate(load_policy(out), EnvConfig.from_kwargs(num_ues=2, num_channels=3, scenario="test"))


def test_a_corrupted_run_json_names_the_bad_key():
    with pytest.raises(ValueError, match="unknown env option .num_uez."):
        Experiment.from_dict({"env": {"num_uez": 3}})
    with pytest.raises(ValueError, match="algo: unknown field 'learning_rate'"):
        Experiment.from_dict({"algo": {"learning_rate": 1e-3}})


def _learner_lr(run) -> float:
    learner = run.algo.learner_group._learner
    rates = {learner.get_optimizer(mid).param_groups[0]["lr"] for mid in learner.module.keys()}
    assert len(rates) == 1  # actors and critic share one schedule
    return rates.pop()


def test_a_restored_run_continues_the_linear_lr_schedule_where_it_stopped(ray_session, tmp_path):
    from mahppo.algorithms.runs.run import Run

    experiment = Experiment().with_flat({"num_ues": 2, "steps": 1024, "eval_every": 100, "lr": 3e-4,
                                         "lr_schedule": "linear", **TINY})
    schedule = lambda steps: 3e-4 * (1 - 0.99 * steps / 1024)  # noqa: E731  [[0, lr], [steps, lr / 100]]
    first = Run(experiment)
    try:
        first.step()
        first.step()
        first.save(tmp_path / "ckpt")
    finally:
        first.stop()
    second = Run(experiment)
    try:
        second.restore(tmp_path / "ckpt")
        steps_before = second.env_steps
        second.step()
        assert second.env_steps > steps_before > 0
        # the update of this iteration used the lifetime step count (restored), not a fresh schedule
        assert _learner_lr(second) == pytest.approx(schedule(second.env_steps), rel=0.02)
        assert _learner_lr(second) < schedule(second.env_steps - steps_before) * 0.9
    finally:
        second.stop()


def test_no_lookahead_row_above_its_cell_size_cap(trained, monkeypatch, caplog):
    from mahppo.algorithms.runs import report

    out, experiment, _ = trained
    monkeypatch.setattr(report, "LOOKAHEAD_MAX_UES", 1)  # the run's cell has 2 UEs
    caplog.set_level("INFO", logger="mahppo")
    table = report.compare_with_baselines(out, experiment)
    assert "trained+lookahead" not in table and "trained" in table
    printed = caplog.text
    assert ("N = 2 > 1" in printed) if not table["trained"]["truncated_episodes"] else ("does not finish" in printed)
