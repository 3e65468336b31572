"""The env speaks PettingZoo's parallel API, for any number of UEs and mixed DNNs."""

import functools

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

import mahppo.marl_env as marl_env

CONFIGS = {
    "N=1": {"num_ues": 1},
    "N=5": {"num_ues": 5},
    "N=50": {"num_ues": 50, "max_frames": 40},
    "mixed": {"ue_specs": ["resnet18", "vgg11", "mobilenetv2", {"dnn": "vgg11", "distance_m": 10.0}]},
}


@pytest.mark.parametrize("kwargs", CONFIGS.values(), ids=CONFIGS.keys())
def test_parallel_api_test_passes(kwargs):
    parallel_api_test(marl_env.parallel_env(**kwargs), num_cycles=200)


@pytest.mark.parametrize("kwargs", CONFIGS.values(), ids=CONFIGS.keys())
def test_parallel_seed_test_passes(kwargs):
    parallel_seed_test(functools.partial(marl_env.parallel_env, **kwargs), num_cycles=100)


def test_agents_are_named_ue_i_and_share_the_global_state():
    env = marl_env.parallel_env(num_ues=3)
    obs, _ = env.reset(seed=1)
    assert env.possible_agents == ["ue_0", "ue_1", "ue_2"]
    for a in env.agents:
        np.testing.assert_array_equal(obs[a], env.state())
    assert env.state().shape == (12,)


def test_each_ue_action_space_follows_its_own_number_of_points():
    env = marl_env.parallel_env(ue_specs=["resnet18", "vgg11"], num_channels=3)
    for a in env.possible_agents:
        b, c, p = env.action_space(a).spaces
        assert b.n == 6 and c.n == 3 and p.high[0] == pytest.approx(1.0)


def test_adding_a_spec_adds_an_agent():
    specs = [{"dnn": "resnet18"}, {"dnn": "mobilenetv2"}]
    env = marl_env.parallel_env(ue_specs=specs + [{"dnn": "vgg11", "distance_m": 20.0, "num_tasks": 3}])
    env.reset(seed=0)
    assert env.possible_agents[-1] == "ue_2"
    assert env.system.distance[2] == 20.0 and env.system.tasks_left[2] == 3


def test_state_is_normalised_to_about_unit_range():
    env = marl_env.parallel_env(num_ues=5)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(30):
        if not env.agents:
            env.reset()
        acts = {a: env.action_space(a).sample() for a in env.agents}
        obs, *_ = env.step(acts)
        for o in obs.values():
            assert np.all(o >= 0) and np.all(o <= 1.0001)
    del rng


def test_test_scenario_fixes_distance_50m_and_200_tasks():
    env = marl_env.parallel_env(num_ues=4, scenario="test")
    env.reset(seed=123)
    assert np.all(env.system.distance == 50.0)
    assert np.all(env.system.tasks_left == 200)
    s = env.state().reshape(4, 4)
    np.testing.assert_allclose(s[:, 3], (50 - 1) / 99, rtol=1e-6)


def test_training_episodes_are_truncated_after_max_frames():
    env = marl_env.parallel_env(num_ues=2, max_frames=3)
    env.reset(seed=0)
    for _ in range(3):
        _, _, terms, truncs, _ = env.step({a: (5, 0, 1.0) for a in env.agents})
    assert all(truncs.values()) and not any(terms.values())
    assert env.agents == []


def test_render_ansi_shows_every_ue():
    env = marl_env.parallel_env(num_ues=3, render_mode="ansi")
    env.reset(seed=0)
    env.step({a: (1, 0, 0.5) for a in env.agents})
    text = env.render()
    assert "frame 1" in text and len(text.splitlines()) == 2 + 3
