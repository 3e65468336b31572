"""Baselines act everywhere a trained policy does, and the CLI reports them."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.evaluation import evaluate
from mahppo.marl_env.policies import make_baseline

TEST3 = EnvConfig.from_kwargs(num_ues=3, scenario="test")


def test_local_baseline_reproduces_the_jetson_nano_full_local_run():
    m = evaluate(make_baseline("local"), TEST3)
    assert m["latency_per_task_s"] == pytest.approx(0.045887)
    assert m["energy_per_task_j"] == pytest.approx(0.098446)
    # 200 tasks x 45.887 ms = 9.18 s -> 19 frames of 0.5 s
    assert m["frame_latency_per_task_s"] == pytest.approx(19 * 0.5 * 3 / 600)
    assert m["tasks_completed"] == 600


def test_edge_baseline_sends_raw_input_at_pmax():
    env_policy = make_baseline("edge")
    from mahppo.marl_env.parallel import CollabInferenceEnv

    env = CollabInferenceEnv(TEST3)
    env.reset(seed=0)
    env_policy.reset(env.view())
    pts, chs, pws = env_policy.act(env.view())
    assert list(pts) == [0, 0, 0] and list(chs) == [0, 1, 0] and np.all(pws == 1.0)


def test_static_search_beats_every_simple_baseline_on_reward():
    rewards = {b: evaluate(make_baseline(b), TEST3)["reward"] for b in
               ("local", "edge", "random", "greedy", "static-search")}
    assert rewards["static-search"] == max(rewards.values())


def test_rotate_gives_the_channels_to_the_ues_with_most_work_left_and_keeps_the_rest_local():
    from mahppo.marl_env.policies import rotate_actions

    # 4 ResNet18 UEs (B + 2 = 6 choices, Local = 5), 2 channels: UEs 1 and 3 hold the most work
    pts, chs, pws = rotate_actions(np.array([10.0, 50.0, 0.0, 40.0]), np.array([6, 6, 6, 6]), 2, 1, 0.5)
    assert list(pts) == [5, 1, 5, 1] and chs[1] != chs[3] and np.all(pws == 0.5)
    # equal work: the lower indices go first; a UE with nothing left stays local
    pts, chs, _ = rotate_actions(np.array([0.0, 7.0, 7.0]), np.array([6, 6, 6]), 2, 3, 1.0)
    assert list(pts) == [5, 3, 3] and sorted(chs[1:]) == [0, 1]


@pytest.mark.parametrize("kwargs, message", [({"point": -1}, "point = -1"), ({"power_w": 0.0}, "power_w = 0.0"),
                                             ({"power_w": "1"}, "power_w = '1'")])
def test_rotate_rejects_a_bad_point_or_power_naming_it(kwargs, message):
    from mahppo.marl_env.policies import RotatePolicy

    with pytest.raises(ValueError, match=re.escape(message)):
        RotatePolicy(**kwargs)


def test_rotate_switches_ues_between_offloading_and_local_from_frame_to_frame():
    from mahppo.marl_env.parallel import CollabInferenceEnv

    env = CollabInferenceEnv(TEST3)
    env.reset(seed=0)
    policy = make_baseline("rotate")
    policy.reset(env.view())
    offloading = []
    for _ in range(6):
        pts, chs, pws = policy.act(env.view())
        offloading.append(tuple(int(p) < 5 for p in pts))
        env.step_arrays(pts, chs, pws)
    assert all(sum(f) == 2 for f in offloading)  # C = 2 channels, one UE each
    assert len(set(offloading)) > 1  # who offloads rotates


@pytest.mark.parametrize("num_ues", [3, 8])
def test_rotate_beats_static_search_and_local_latency_on_the_test_scenario(num_ues):
    # the dynamic rule beats the best fixed configuration, and at N = 8 stays below Local's 19 frames,
    # which no fixed configuration does (static-search with beta = 0 matches Local there)
    cfg = EnvConfig.from_kwargs(num_ues=num_ues, scenario="test")
    rot, static, local = (evaluate(make_baseline(b), cfg) for b in ("rotate", "static-search", "local"))
    assert rot["reward"] > static["reward"]
    assert rot["frame_latency_per_task_s"] < 0.9 * local["frame_latency_per_task_s"]
    assert rot["energy_per_task_j"] < local["energy_per_task_j"]


def test_static_search_uses_coordinate_descent_when_the_grid_is_large():
    policy = make_baseline("static-search")
    policy.restarts = 1
    m = evaluate(policy, EnvConfig.from_kwargs(num_ues=4, scenario="test"))
    assert m["reward"] >= evaluate(make_baseline("local"), EnvConfig.from_kwargs(num_ues=4, scenario="test"))[
        "reward"]
    assert policy.evaluations < 60 ** 4


def test_fixed_policy_one_triple_per_ue():
    m = evaluate(make_baseline("fixed:5,0,1;5,0,1;1,1,0.5"), TEST3)
    assert m["tasks_completed"] == 600


@pytest.mark.parametrize("spec, message", [
    ("fixed:1,0", "must be B,C,P"),
    ("fixed:1,0,1;1,0,1", "2 triples given for 3 UEs"),
    ("fixed:9,0,1", "partition point = 9"),
    ("gready", "not a baseline"),
])
def test_bad_policy_specs_are_rejected(spec, message):
    with pytest.raises(ValueError, match=message):
        evaluate(make_baseline(spec), TEST3)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mahppo", *args], capture_output=True, text=True, timeout=120)


def test_cli_evaluate_local_json_reports_the_local_baseline():
    out = run_cli("evaluate", "--policy", "local", "--num-ues", "3", "--json")
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    assert m["energy_per_task_j"] == pytest.approx(0.098446)
    assert m["frame_latency_per_task_s"] == pytest.approx(0.0475)


@pytest.mark.parametrize("args, message", [
    (["--policy", "local", "--num-ues", "zero"], "--num-ues"),
    (["--policy", "local", "--dnn", "alexnet"], "dnn = 'alexnet'"),
    (["--policy", "nope"], "not a baseline"),
    (["--policy", "local", "--beta", "-2"], "beta = -2.0"),
])
def test_cli_wrong_arguments_give_one_line_and_exit_2(args, message):
    out = run_cli("evaluate", *args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
