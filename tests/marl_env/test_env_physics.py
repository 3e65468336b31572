"""The simulator reproduces Eqs. 5-9 and 12 of the paper with real values from Sec. 6."""

import math

import numpy as np
import pytest

import mahppo.marl_env as marl_env
from mahppo.marl_env.core import reward
from mahppo.marl_env.evaluation import run_episode
from mahppo.marl_env.policies import FixedPolicy
from mahppo.marl_env.profiles import default_profiles

W, SIGMA = 1e6, 1e-9


def eq5_rate(p, d, interference=0.0):
    return W * math.log2(1 + p * d ** -3 / (SIGMA + interference))


def test_uplink_rate_of_eq5_for_a_ue_at_50m():
    # p = 1 W at 50 m: SNR = 50^-3 / 1e-9 = 8000, r = 1 MHz * log2(8001) = 12.966 Mb/s
    assert eq5_rate(1.0, 50.0) == pytest.approx(12.966e6, rel=1e-4)
    env = marl_env.parallel_env(num_ues=1, num_channels=1, scenario="test")
    env.reset(seed=0)
    env.step({"ue_0": (0, 0, 1.0)})
    assert env.system.rate[0] == pytest.approx(eq5_rate(1.0, 50.0), rel=1e-12)


@pytest.mark.parametrize("power", [1.0, 0.3])
@pytest.mark.parametrize("point", range(6))
def test_single_ue_latency_and_energy_per_task_follow_eqs_6_to_9(point, power):
    prof = default_profiles()["resnet18"]
    env = marl_env.parallel_env(num_ues=1, num_channels=1, scenario="test")
    m = run_episode(env, FixedPolicy([(point, 0, power)]), seed=0)
    f = prof.bits[point]
    t_t = f / eq5_rate(power, 50.0)
    assert m["tasks_completed"] == 200
    assert m["latency_per_task_s"] == pytest.approx(prof.front_latency_s[point] + t_t, rel=1e-9)
    assert m["energy_per_task_j"] == pytest.approx(prof.front_energy_j[point] + power * t_t, rel=1e-9)


def test_local_point_sends_nothing_and_costs_the_full_local_run():
    prof = default_profiles()["resnet18"]
    env = marl_env.parallel_env(num_ues=1, scenario="test")
    m = run_episode(env, FixedPolicy([(5, 0, 1.0)]), seed=0)
    assert m["latency_per_task_s"] == pytest.approx(0.045887)
    assert m["energy_per_task_j"] == pytest.approx(0.098446)
    assert m["makespan_s"] == pytest.approx(200 * 0.045887)
    assert prof.bits[5] == 0


def test_two_ues_on_one_channel_interfere_as_in_eq5():
    env = marl_env.parallel_env(num_ues=2, num_channels=2, scenario="test")
    env.reset(seed=0)
    env.step({"ue_0": (0, 0, 0.5), "ue_1": (0, 0, 0.5)})
    # both send raw input at the same power from 50 m: each is the other's interference
    expected = eq5_rate(0.5, 50.0, interference=0.5 * 50.0 ** -3)
    np.testing.assert_allclose(env.system.rate, [expected, expected], rtol=1e-12)
    assert expected == pytest.approx(1e6, rel=1e-3)  # SINR ~ 1 -> ~1 bit/s/Hz


def test_two_ues_on_different_channels_do_not_interfere():
    env = marl_env.parallel_env(num_ues=2, num_channels=2, scenario="test")
    env.reset(seed=0)
    env.step({"ue_0": (0, 0, 0.5), "ue_1": (0, 1, 0.5)})
    np.testing.assert_allclose(env.system.rate, eq5_rate(0.5, 50.0), rtol=1e-12)


def test_a_ue_running_locally_causes_no_interference():
    env = marl_env.parallel_env(num_ues=2, num_channels=1, scenario="test")
    env.reset(seed=0)
    env.step({"ue_0": (0, 0, 1.0), "ue_1": (5, 0, 1.0)})
    assert env.system.rate[0] == pytest.approx(eq5_rate(1.0, 50.0), rel=1e-12)


def test_power_takes_effect_at_once_point_and_channel_at_the_next_task():
    env = marl_env.parallel_env(num_ues=1, num_channels=2, scenario="test")
    env.reset(seed=0)
    env.step({"ue_0": (0, 0, 1e-6)})  # raw input at a tiny power: the task spans frames
    assert env.system.point[0] == 0 and env.system.tasks_left[0] == 200
    env.step({"ue_0": (5, 1, 1.0)})  # new power now; point 5 / channel 1 only for the next task
    assert env.system.power[0] == 1.0
    assert env.system.next_point[0] == 5 and env.system.next_channel[0] == 1
    assert env.system.tasks_left[0] < 200 and env.system.point[0] == 5


def test_reward_is_eq12_with_the_authors_floor():
    # 2 UEs completed 3 and 1 tasks using 0.2 J and 0.1 J: K = 2, E = 0.15
    assert reward(0.5, 0.47, np.array([3, 1]), np.array([0.2, 0.1])) == pytest.approx(-(0.5 + 0.47 * 0.15) / 2)
    # no task completed: divide by 0.8
    assert reward(0.5, 0.47, np.array([0, 0]), np.array([0.1, 0.1])) == pytest.approx(-(0.5 + 0.047) / 0.8)


def test_every_agent_gets_the_same_team_reward_and_its_own_info():
    env = marl_env.parallel_env(num_ues=3, scenario="test")
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({a: (5, 0, 1.0) for a in env.agents})
    assert len(set(rewards.values())) == 1
    for info in infos.values():
        assert info["completed_tasks"] == 10  # 0.5 s / 45.887 ms = 10.9 local runs
        assert info["energy_j"] == pytest.approx(0.5 * 0.098446 / 0.045887)
        assert info["latency_s"] == pytest.approx(10 * 0.045887)
