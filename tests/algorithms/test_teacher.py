"""The warm start from the rotate teacher (algorithms/acting/teacher.py): its data, its returns, and that the
cloned policy decides as the teacher does."""

import numpy as np
import pytest

from mahppo.algorithms.acting.teacher import collect, discounted_returns, teacher_for
from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.observations import WORK, WORK_SCALE_S
from mahppo.marl_env.policies import RotatePolicy, rotate_actions


def test_discounted_returns_follow_eq_15_backwards_from_the_last_frame():
    g = discounted_returns(np.array([-0.1, -0.2, -0.6]), gamma=0.95)
    np.testing.assert_allclose(g, [-0.1 + 0.95 * (-0.2 + 0.95 * -0.6), -0.2 + 0.95 * -0.6, -0.6])


def test_the_teacher_is_searched_on_the_training_distribution_not_the_test_cell():
    train = EnvConfig.from_kwargs(num_ues=3, obs_mode="agent", max_frames=60)
    teacher = teacher_for(train, seed=10_000)
    assert (teacher.point, teacher.power_w) == (1, 0.75)  # the test cell's best is (1, 0.1 W)
    test_best = RotatePolicy(search_episodes=1)
    assert test_best.search(train.with_updates(scenario="test", max_frames=None)) == (1, 0.1)


def test_teacher_data_holds_every_ues_row_with_the_rotate_decision_and_its_return():
    cfg = EnvConfig.from_kwargs(num_ues=3, obs_mode="agent", max_frames=60)
    data = collect(cfg, RotatePolicy(point=1, power_w=0.5), episodes=2, seed=0, gamma=0.95)
    assert len(data.obs) == 3 * data.frames and data.frames > 2
    first = data.obs[:3]
    work = first[:, WORK] * WORK_SCALE_S  # the work feature is what rotate ranks by
    pts, chs, _ = rotate_actions(work, np.full(3, 6), 2, 1, 0.5)
    np.testing.assert_array_equal(data.points[:3], pts)
    np.testing.assert_array_equal(data.channels[:3], chs)
    assert data.offload[:3].sum() == 2  # C = 2 UEs offload, one runs locally
    assert np.all(data.returns < 0) and np.all(data.returns[:3] == data.returns[0])  # one team return


@pytest.mark.slow
def test_the_warm_started_shared_actor_decides_the_test_cell_as_its_teacher(ray_session):
    from mahppo.algorithms.acting.teacher import warm_start
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.run import Run
    from mahppo.marl_env.evaluation import evaluate

    exp = Experiment().with_flat({"num_ues": 3, "warm_start": "rotate", "warm_start_episodes": 100, "steps": 2048})
    run = Run(exp)
    try:
        stats = warm_start(run.algo, run.experiment)
        learned = run.evaluate()
        taught = evaluate(RotatePolicy(point=int(stats["teacher_point"]), power_w=stats["teacher_power_w"]),
                          exp.env.with_updates(scenario="test", max_frames=None), episodes=1, seed=0)
        assert learned["reward"] == pytest.approx(taught["reward"], abs=0.02)
        assert learned["frame_latency_per_task_s"] == pytest.approx(taught["frame_latency_per_task_s"])
        row = run.step()  # the teacher's frames count as env steps of the run
        assert row["env_steps"] == run.env_steps and run.teacher_steps == stats["teacher_frames"] > 0
        assert 1024 <= run.env_steps - run.teacher_steps < 1100  # |M| = 1024 env steps of PPO sampling
    finally:
        run.stop()
