"""Property tests: conservation of tasks, non-negative time and energy, termination, determinism."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import mahppo.marl_env as marl_env
from mahppo.marl_env.core import DONE

configs = st.fixed_dictionaries({
    "num_ues": st.integers(1, 6),
    "num_channels": st.integers(1, 3),
    "dnn": st.sampled_from(["resnet18", "vgg11", "mobilenetv2"]),
    "task_rate": st.floats(1.0, 30.0),
})


def random_actions(env, rng):
    s = env.system
    return (rng.integers(0, s.num_actions), rng.integers(0, env.config.num_channels, size=s.n),
            rng.uniform(0.05, 1.0, size=s.n))


@settings(max_examples=40, deadline=None)
@given(cfg=configs, seed=st.integers(0, 2**31 - 1))
def test_tasks_are_conserved_and_time_and_energy_are_never_negative(cfg, seed):
    env = marl_env.parallel_env(**cfg)
    env.reset(seed=seed)
    total = env.system.tasks_left.copy()
    done = np.zeros_like(total)
    rng = np.random.default_rng(seed)
    for _ in range(400):
        _, _, terms, _, infos = env.step_arrays(*random_actions(env, rng))
        res = env._last
        assert np.all(res.energy_j >= 0) and np.all(res.latency_s >= 0) and np.all(res.completed >= 0)
        assert np.all(env.system.time_left >= 0) and np.all(env.system.bits_left >= -1e-6)
        done += res.completed
        np.testing.assert_array_equal(done + env.system.tasks_left, total)
        if all(terms.values()):
            break
    else:
        raise AssertionError("episode did not end")
    # the episode ends exactly when all tasks are done
    assert np.all(env.system.tasks_left == 0) and np.all(env.system.phase == DONE)
    assert env.agents == []


@settings(max_examples=20, deadline=None)
@given(cfg=configs, seed=st.integers(0, 2**31 - 1))
def test_the_same_seed_gives_the_same_trajectory(cfg, seed):
    def trajectory():
        env = marl_env.parallel_env(**cfg)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        out = [env.state()]
        for _ in range(30):
            _, r, terms, _, _ = env.step_arrays(*random_actions(env, rng))
            out.append(env.state())
            out.append(np.array([r["ue_0"]]))
            if all(terms.values()):
                break
        return np.concatenate(out)

    np.testing.assert_array_equal(trajectory(), trajectory())


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_train_scenario_draws_distances_and_tasks_from_the_paper_ranges(seed):
    env = marl_env.parallel_env(num_ues=20)
    env.reset(seed=seed)
    assert np.all((env.system.distance >= 1) & (env.system.distance <= 100))
    assert np.all(env.system.tasks_left >= 1)
