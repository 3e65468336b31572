"""Bad actions, bad configs and bad profile files give errors that name what is wrong."""

import json

import numpy as np
import pytest

import mahppo.marl_env as marl_env
from mahppo.marl_env.profiles import load_profile_file


@pytest.fixture
def env():
    e = marl_env.parallel_env(num_ues=2, scenario="test")
    e.reset(seed=0)
    return e


def ok(env):
    return {a: (1, 0, 0.5) for a in env.agents}


@pytest.mark.parametrize("action, field", [
    ((6, 0, 0.5), "partition point = 6"),
    ((-1, 0, 0.5), "partition point = -1"),
    ((1, 2, 0.5), "channel = 2"),
    ((1, 0, float("nan")), "power = nan"),
    ((1, 0), "must be (partition point, channel, power)"),
])
def test_bad_action_raises_value_error_naming_agent_and_field(env, action, field):
    acts = ok(env)
    acts["ue_1"] = action
    with pytest.raises(ValueError) as exc:
        env.step(acts)
    assert "ue_1" in str(exc.value) and field in str(exc.value)


@pytest.mark.parametrize("point", [2**70, -(2**70), 1e300])
def test_a_point_beyond_int64_is_a_value_error_naming_the_agent(env, point):
    acts = ok(env)
    acts["ue_0"] = (point, 0, 0.5)
    with pytest.raises(ValueError, match=r"ue_0: partition point = .* is out of range"):
        env.step(acts)


@pytest.mark.parametrize("seed", [1.5, -1, True, "0"])
def test_reset_with_a_seed_that_is_not_a_natural_number_names_seed(seed):
    env = marl_env.parallel_env(num_ues=2)
    with pytest.raises(ValueError, match=r"reset: seed = .* must be an integer >= 0"):
        env.reset(seed=seed)


def test_bad_action_leaves_the_state_intact(env):
    before = env.state()
    with pytest.raises(ValueError):
        env.step({"ue_0": (1, 0, 0.5), "ue_1": (9, 0, 0.5)})
    np.testing.assert_array_equal(env.state(), before)
    env.step(ok(env))  # and the env still works


@pytest.mark.parametrize("power, effective", [(5.0, 1.0), (-1.0, 1e-10), (0.0, 1e-10)])
def test_power_outside_0_pmax_is_clipped(env, power, effective):
    env.step({"ue_0": (1, 0, power), "ue_1": (1, 1, 0.5)})
    assert env.system.power[0] == pytest.approx(effective)


def test_unknown_and_missing_agents_are_rejected(env):
    with pytest.raises(ValueError, match="unknown agent 'ue_7'"):
        env.step({**ok(env), "ue_7": (1, 0, 0.5)})
    with pytest.raises(ValueError, match="no action for agent 'ue_1'"):
        env.step({"ue_0": (1, 0, 0.5)})


@pytest.mark.parametrize("kwargs, message", [
    ({"num_ues": 0}, "num_ues = 0"),
    ({"num_channels": 0}, "num_channels = 0"),
    ({"beta": -1.0}, "beta = -1.0"),
    ({"frame_s": float("nan")}, "frame_s = nan"),
    ({"scenario": "eval"}, "scenario = 'eval'"),
    ({"dnn": "alexnet"}, "dnn = 'alexnet'"),
    ({"num_ue": 3}, "unknown env option 'num_ue'"),
    ({"ue_specs": [{"dnn": "vgg11", "distance_m": -3}]}, "ue_specs[0].distance_m = -3"),
    ({"ue_specs": [{"dnn": "vgg11", "tasks": 3}]}, "unknown field 'tasks'"),
    ({"d_min_m": 50.0, "d_max_m": 10.0}, "d_max_m = 10.0"),
    ({"ue_specs": [{"distance_m": 1e300}]}, "ue_specs[0].distance_m = 1e+300 is above d_max_m = 100.0"),
    ({"ue_specs": [{"distance_m": 100.5}]}, "ue_specs[0].distance_m = 100.5 is above d_max_m"),
    ({"d_max_m": 1e300}, "d_max_m = 1e+300 is above"),
])
def test_bad_config_raises_value_error_naming_the_field(kwargs, message):
    with pytest.raises(ValueError) as exc:
        marl_env.parallel_env(**kwargs)
    assert message in str(exc.value)


def write(tmp_path, doc):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def good_points():
    return [
        {"raw_bits": 1000, "compression_rate": 1, "front_latency_s": 0, "front_power_w": 0, "front_energy_j": 0},
        {"raw_bits": 6400, "compression_rate": 64, "front_latency_s": 0.01, "front_power_w": 2,
         "front_energy_j": 0.02},
        {"raw_bits": 0, "compression_rate": 1, "front_latency_s": 0.03, "front_power_w": 2, "front_energy_j": 0.06},
    ]


def test_a_valid_custom_profile_drives_the_env(tmp_path):
    path = write(tmp_path, {"source": "test", "models": {"tiny": good_points()}})
    prof = load_profile_file(path)["tiny"]
    assert prof.num_points == 1 and list(prof.bits) == [1000, 100, 0]
    env = marl_env.parallel_env(dnn="tiny", profile_file=str(path), num_ues=2)
    env.reset(seed=0)
    assert env.action_space("ue_0").spaces[0].n == 3


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p[1].update(front_latency_s="fast"), "models.tiny[1].front_latency_s = 'fast'"),
    (lambda p: p[1].pop("raw_bits"), "models.tiny[1].raw_bits = None: missing"),
    (lambda p: p[1].update(compression_rate=0), "models.tiny[1].compression_rate = 0"),
    (lambda p: p[2].update(raw_bits=10), "models.tiny[2].raw_bits = 10"),
    (lambda p: p[0].update(front_energy_j=-1), "models.tiny[0].front_energy_j = -1"),
])
def test_malformed_profile_error_names_file_field_and_value(tmp_path, mutate, message):
    points = good_points()
    mutate(points)
    path = write(tmp_path, {"models": {"tiny": points}})
    with pytest.raises(ValueError) as exc:
        load_profile_file(path)
    assert str(path) in str(exc.value) and message in str(exc.value)


def test_profile_that_is_not_json_names_the_file(tmp_path):
    path = write(tmp_path, "{not json")
    with pytest.raises(ValueError, match="p.json: not valid JSON"):
        load_profile_file(path)


def test_missing_profile_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        marl_env.parallel_env(profile_file=str(tmp_path / "nope.json"))
