"""Cell dynamics (``EnvConfig.dynamics``): off by default (the paper's rewards to the last bit); online arrivals,
block fading and mobility with the statistics they promise; the dynamic scenario's fixed evaluation episodes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from mahppo.marl_env.config import DYNAMIC, Dynamics, EnvConfig
from mahppo.marl_env.core import DONE, IDLE, MECSystem, backlog_charge, frame_reward
from mahppo.marl_env.evaluation import EVAL_SEED_BASE, evaluation_seeds
from mahppo.marl_env.observations import FADING, FEATURES
from mahppo.marl_env.parallel import CollabInferenceEnv
from mahppo.marl_env.policies import RotatePolicy, parse_fixed


def _rewards(cfg: EnvConfig, policy, seed: int) -> list[float]:
    env = CollabInferenceEnv(cfg)
    env.reset(seed=seed)
    view = env.view()
    policy.reset(view, seed=seed)
    out = []
    while True:
        _, r, term, trunc, _ = env.step_arrays(*env.check_arrays(*policy.act(view)))
        out.append(next(iter(r.values())))
        if next(iter(term.values())) or next(iter(trunc.values())):
            return out


# Computed on main before the dynamics existed (the same episodes, the same policies).
@pytest.mark.parametrize("kwargs, policy, seed, frames, total, first", [
    (dict(num_ues=3, scenario="test"), lambda: parse_fixed("1,0,0.5;3,1,1.0;0,0,0.2"), 0, 67,
     -18.877755060750978, -0.09014742167188837),
    (dict(num_ues=4, scenario="train", max_frames=60), lambda: RotatePolicy(point=1, power_w=0.3), 7, 9,
     -0.6790794759549879, -0.030570261109247345),
    (dict(num_ues_range=(2, 5), dnn_pool=("resnet18", "vgg11"), obs_mode="agent", max_frames=60),
     lambda: RotatePolicy(point=1, power_w=0.3), 3, 16, -2.0809569598189777, -0.05617187682484528),
])
def test_dynamics_off_gives_the_paper_scenarios_rewards_to_the_last_bit(kwargs, policy, seed, frames, total, first):
    rewards = _rewards(EnvConfig.from_kwargs(**kwargs), policy(), seed)
    assert (len(rewards), sum(rewards), rewards[0]) == (frames, total, first)


def test_dynamics_round_trip_through_the_env_config_dict():
    cfg = EnvConfig.from_kwargs(num_ues=3, dynamics={"arrivals": "onoff", "arrival_rate": [4.0, 6.0, 8.0],
                                                     "fading": "gauss-markov", "rho": 0.7, "horizon_frames": 30})
    data = json.loads(json.dumps(cfg.to_dict()))
    assert EnvConfig.from_dict(data) == cfg
    assert data["dynamics"]["arrival_rate"] == [4.0, 6.0, 8.0]
    assert EnvConfig.from_dict({k: v for k, v in data.items() if k != "dynamics"}).dynamics == Dynamics()


def test_the_dynamic_scenario_is_the_documented_preset():
    cfg = EnvConfig.from_kwargs(num_ues=5, scenario="dynamic")
    assert cfg.dynamics == DYNAMIC
    assert (DYNAMIC.arrivals, DYNAMIC.fading, DYNAMIC.mobility, DYNAMIC.horizon_frames) == (
        "poisson", "rayleigh", "walk", 60)


@pytest.mark.parametrize("dyn, message", [
    ({"fading": "ricean"}, r"dynamics.fading = 'ricean' must be None or one of"),
    ({"arrivals": "poisson"}, r"dynamics.arrivals = 'poisson' needs dynamics.horizon_frames"),
    ({"rho": 1.5}, r"dynamics.rho = 1.5 must be a number in \[0, 1\]"),
    ({"arrival_rate": -1.0, "arrivals": "poisson", "horizon_frames": 5}, r"dynamics.arrival_rate = -1.0 must be"),
    ({"arrival_rate": [1.0, 2.0]}, r"dynamics.arrival_rate has 2 rates for num_ues = 3"),
    ({"speed": 1.0}, r"dynamics: unknown field 'speed'"),
])
def test_a_bad_dynamics_field_is_named_with_its_value(dyn, message):
    with pytest.raises(ValueError, match=message):
        EnvConfig.from_kwargs(num_ues=3, dynamics=dyn)


def _system(**dyn) -> MECSystem:
    s = MECSystem(EnvConfig.from_kwargs(num_ues=4, dynamics=dyn))
    s.reset(np.random.default_rng(0))
    return s


def _frames(s: MECSystem, frames: int) -> None:
    s.set_actions(s.last_point, np.zeros(s.n, dtype=np.int64), np.ones(s.n))
    for _ in range(frames):
        s.step()


def test_poisson_arrivals_average_the_rate_over_many_frames():
    s = _system(arrivals="poisson", arrival_rate=[2.0, 5.0, 9.0, 0.5], horizon_frames=10**6)
    counts = []
    s.set_actions(s.last_point, np.zeros(4, dtype=np.int64), np.ones(4))
    for _ in range(4000):
        s.step()
        counts.append(s.arrived.copy())
    rate = np.array([2.0, 5.0, 9.0, 0.5])
    assert np.all(np.abs(np.mean(counts, axis=0) - rate) < 4 * np.sqrt(rate / 4000))  # 4 standard errors


def test_on_off_arrivals_average_the_stationary_rate():
    s = _system(arrivals="onoff", arrival_rate=10.0, arrival_rate_off=0.0, p_on_off=0.2, p_off_on=0.1,
                horizon_frames=10**6)
    counts = []
    s.set_actions(s.last_point, np.zeros(4, dtype=np.int64), np.ones(4))
    for _ in range(6000):
        s.step()
        counts.append(s.arrived.sum())
    assert np.mean(counts) / 4 == pytest.approx(10.0 * 0.1 / 0.3, rel=0.06)  # on a third of the frames


def test_a_ue_with_an_empty_queue_idles_and_starts_again_when_tasks_arrive():
    s = _system(arrivals="poisson", arrival_rate=[0.0, 0.0, 0.0, 0.0], horizon_frames=100)
    s.tasks_left[:] = 0
    s.phase[:] = DONE
    s.n_done = 4
    s.dyn_rng = np.random.default_rng(1)
    _frames(s, 1)
    assert s.completed.sum() == 0 and (s.phase == DONE).all()
    s.tasks_left[0] = 3  # three tasks arrive for ue 0 (as _advance_dynamics queues them)
    s.phase[0] = IDLE
    s.n_done = 3
    _frames(s, 1)
    assert s.completed[0] == 3 and s.phase[0] == DONE  # 3 x 0.046 s of local runs fit in the 0.5 s frame


@pytest.mark.parametrize("fading", ["rayleigh", "gauss-markov"])
def test_the_mean_power_gain_under_fading_is_the_path_loss(fading):
    s = _system(fading=fading, rho=0.8, horizon_frames=10**6)
    path = s.distance ** -3.0
    gains = []
    _frames(s, 0)
    for _ in range(5000):
        s.step()
        gains.append(s.gain / path)
    np.testing.assert_allclose(np.mean(gains, axis=0), 1.0, rtol=0.08)


def test_gauss_markov_fading_is_correlated_frame_to_frame_by_rho_squared():
    s = _system(fading="gauss-markov", rho=0.8, horizon_frames=10**6)
    _frames(s, 0)
    h = []
    for _ in range(6000):
        s.step()
        h.append(s.fade.copy())
    h = np.array(h)
    corr = np.mean([np.corrcoef(h[:-1, i], h[1:, i])[0, 1] for i in range(4)])
    assert corr == pytest.approx(0.64, abs=0.05)  # the power gain's lag-1 correlation is rho^2


@pytest.mark.parametrize("mobility", ["walk", "waypoint"])
def test_moving_ues_stay_within_d_min_and_d_max(mobility):
    s = _system(mobility=mobility, speed_m=7.0, horizon_frames=10**6)
    start = s.distance.copy()
    _frames(s, 0)
    seen = []
    for _ in range(2000):
        s.step()
        seen.append(s.distance.copy())
    seen = np.array(seen)
    assert seen.min() >= 1.0 and seen.max() <= 100.0
    assert not np.allclose(seen[-1], start)
    np.testing.assert_allclose(s.gain, s.distance ** -3.0)  # no fading: the gain follows the distance


def test_the_horizon_charges_the_backlog_as_finishing_it_locally():
    # one task of 0.045887 s left on one of 2 UEs: one frame completing 1 task (below Eq. 12's floor)
    e = 0.3
    assert backlog_charge([1, 0], [0.045887, 0.045887], [e, e], 0.5, 0.47) == frame_reward(0.5, 0.47, 2, 1, e)
    assert backlog_charge([0, 0], [0.05, 0.05], [e, e], 0.5, 0.47) == 0.0
    # 26 tasks of 0.04 s each (2.5 W while busy): done at 0.04 j s, so 12 in the first frame (by 0.48 s),
    # 13 in the second (by 1.0 s), 1 in the third
    c = backlog_charge([26], [0.04], [0.1], 0.5, 0.47)
    assert c == pytest.approx(frame_reward(0.5, 0.47, 1, 12, 1.25) + frame_reward(0.5, 0.47, 1, 13, 1.25)
                              + frame_reward(0.5, 0.47, 1, 1, 0.1))


def test_a_dynamic_episode_ends_at_the_horizon_with_the_backlog_charged():
    cfg = EnvConfig.from_kwargs(num_ues=3, scenario="dynamic")
    env = CollabInferenceEnv(cfg)
    env.reset(seed=5)
    local = env.system.last_point.copy()
    for t in range(60):
        _, r, term, trunc, _ = env.step_arrays(local, np.zeros(3, dtype=np.int64), np.ones(3))
        assert next(iter(term.values())) == (t == 59) and not next(iter(trunc.values()))
    s = env.system
    expected = frame_reward(0.5, 0.47, 3, s.frame_completed, s.frame_energy) + backlog_charge(
        s.tasks_left, s.l_scale, s.local_energy_j, 0.5, 0.47)
    assert s.tasks_left.sum() > 0 and next(iter(r.values())) == expected  # Local falls behind at load 1.3


def test_the_observation_carries_this_frames_fading_gain():
    env = CollabInferenceEnv(EnvConfig.from_kwargs(num_ues=3, scenario="dynamic", obs_mode="agent"))
    obs, _ = env.reset(seed=2)
    own = np.stack([obs[a][:FEATURES] for a in env.agents])
    np.testing.assert_allclose(own[:, FADING], env.system.fade, rtol=1e-6)
    np.testing.assert_allclose(env.system.gain, env.system.distance ** -3.0 * env.system.fade)


def test_the_dynamic_env_passes_pettingzoos_parallel_api_test():
    parallel_api_test(CollabInferenceEnv(EnvConfig.from_kwargs(num_ues=3, scenario="dynamic", obs_mode="agent")),
                      num_cycles=80)


def test_evaluation_episodes_are_the_documented_seeds():
    cfg = EnvConfig.from_kwargs(num_ues=3, scenario="dynamic")
    assert evaluation_seeds(cfg) == list(range(EVAL_SEED_BASE, EVAL_SEED_BASE + 32))
    assert evaluation_seeds(EnvConfig.from_kwargs(num_ues=3, scenario="test")) == [0]


_PROBE = """
import json, numpy as np
from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.evaluation import episode_metrics
from mahppo.marl_env.policies import RotatePolicy
cfg = EnvConfig.from_kwargs(num_ues=4, scenario="dynamic")
print(json.dumps([m["reward"] for m in episode_metrics(RotatePolicy(point=1, power_w=0.3), cfg, episodes=3)]))
"""


def test_seeded_evaluation_episodes_are_identical_across_processes():
    runs = [subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(h), "PATH": ""}).stdout for h in (1, 2)]
    assert runs[0] == runs[1] and len(json.loads(runs[0])) == 3
