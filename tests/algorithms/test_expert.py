"""Expert iteration (algorithms/acting/expert.py): its teacher, its DAgger data, and a tiny run through the CLI."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mahppo.algorithms.acting.expert import EpisodeRotate, expert_teacher
from mahppo.algorithms.acting.teacher import collect, merge
from mahppo.algorithms.experiment import Experiment
from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.evaluation import evaluate
from mahppo.marl_env.observations import FEATURES
from mahppo.marl_env.policies import LocalPolicy, RotatePolicy

TEST_CELL = EnvConfig.from_kwargs(num_ues=3, scenario="test")
TRAIN_CELL = EnvConfig.from_kwargs(num_ues=3, obs_mode="agent", max_frames=60)


def test_episode_rotate_finds_the_test_cells_own_point_and_power_from_its_first_state():
    tuned = EpisodeRotate()
    assert evaluate(tuned, TEST_CELL)["reward"] == pytest.approx(evaluate(RotatePolicy(), TEST_CELL)["reward"])
    assert tuned._choice == (1, 0.1)  # rotate's search on the test cell: point 1 at 0.1 W


def test_the_teacher_improves_on_the_tuned_rotation_it_rolls_out():
    assert evaluate(expert_teacher(), TEST_CELL)["reward"] > evaluate(EpisodeRotate(), TEST_CELL)["reward"]


def test_dagger_rows_are_the_students_states_labelled_by_the_teacher():
    teacher = RotatePolicy(point=1, power_w=0.5)
    data = collect(TRAIN_CELL, teacher, episodes=1, seed=0, gamma=0.95, student=LocalPolicy())
    local = collect(TRAIN_CELL, LocalPolicy(), episodes=1, seed=0, gamma=0.95)
    np.testing.assert_array_equal(data.obs[:, :FEATURES], local.obs[:, :FEATURES])  # Local decided the frames...
    np.testing.assert_allclose(data.returns, local.returns)  # ...and earned the returns
    assert data.offload.reshape(-1, 3).sum(1).max() == 2  # ...while the labels are rotate's: C = 2 offload
    both = merge([data, local])
    assert len(both.obs) == 2 * len(data.obs) and both.frames == 2 * data.frames
    assert len(both.episode_returns) == 2


def test_expert_iteration_refuses_a_dynamic_cell_by_name():
    with pytest.raises(ValueError, match="algo.warm_start = 'expert' needs a cell without dynamics"):
        Experiment().with_flat({"scenario": "dynamic", "warm_start": "expert"})


@pytest.mark.slow
def test_a_tiny_expert_iteration_run_through_the_cli_counts_its_teacher_frames(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--num-ues", "3", "--steps", "600", "--memory-size", "256", "--batch-size", "128",
            "--reuse-time", "1", "--warm-start", "expert", "--expert-iterations", "1", "--expert-episodes", "3",
            "--expert-updates", "20", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    res = subprocess.run([sys.executable, "-m", "mahppo", *args], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    stats = summary["warm_start"]
    assert stats["teacher_frames"] > 6  # 3 teacher + 3 student episodes of the 60-frame training cell
    assert "student_return_1" in stats and stats["teacher_return"] < 0
    with (out / "curve.csv").open() as f:
        first = next(csv.DictReader(f))
    assert float(first["env_steps"]) >= stats["teacher_frames"] + 256  # the teacher's frames, then |M| of PPO
    assert 600 <= summary["env_steps"] < 600 + 256 + 100  # training stops once --steps (teacher's included) is spent
    assert "trained" in summary["evaluation"]
