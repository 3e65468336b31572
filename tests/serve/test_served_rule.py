"""``mahppo serve --baseline NAME`` without Ray: a classical rule decides a request's state pool (loaded into a
simulator of the cell, ``serve.planner.ServedRule``) as it decides the env in that state."""

import numpy as np
import pytest

import mahppo.marl_env as marl_env
from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.policies import make_baseline, rotate_actions
from mahppo.serve.client import view_request
from mahppo.serve.planner import ServedRule, decide, load_served
from mahppo.serve.schema import DecideRequest, RequestError, normalizer_for

CELL = EnvConfig.from_kwargs(num_ues=2, num_channels=1, scenario="test")  # the paper's test cell, N = 2, C = 1


@pytest.fixture(scope="module")
def rules():
    return {name: ServedRule(name, CELL) for name in ("rotate", "maxweight", "myopic", "local")}


def _request(ues):
    return DecideRequest.model_validate({"ues": ues})


# ue_0 sends the feature of point 2 on channel 0 (bits left), ue_1 waits with more tasks left
POOL = [{"ue_id": "ue_0", "tasks_left": 40, "total_tasks": 200, "local_time_left_s": 0.0, "bits_left": 20000.0,
         "distance_m": 50.0, "point_in_flight": 2, "channel_in_flight": 0},
        {"ue_id": "ue_1", "tasks_left": 150, "total_tasks": 200, "local_time_left_s": 0.0, "bits_left": 0.0,
         "distance_m": 80.0}]


def test_rotate_served_offloads_the_ue_with_the_most_work_at_its_searched_point_and_power(rules):
    pts, chs, pws = rules["rotate"].decide(_request(POOL))
    point, power = make_baseline("rotate").search(CELL)  # what `mahppo evaluate --policy rotate` uses here
    local = marl_env.parallel_env(**CELL.to_dict()).system.num_actions - 1
    assert pts[0] == local[0]  # 40 tasks: runs locally
    assert (pts[1], chs[1], pws[1]) == (min(point, local[1] - 1), 0, power)  # 150 tasks: the one channel


def test_a_hand_written_pool_is_decided_as_the_rule_decides_the_env_in_that_state(rules):
    env = marl_env.parallel_env(**CELL.to_dict())
    env.reset(seed=0)
    env.load_state(tasks_left=[40, 150], local_time_left_s=[0.0, 0.0], bits_left=[20000.0, 0.0],
                   point_in_flight=[2, -1], channel_in_flight=[0, -1], distance_m=[50.0, 80.0], total_tasks=[200, 200])
    for name, served in rules.items():
        rule = make_baseline(name)
        rule.reset(env.view())
        want = rule.act(env.view())
        for got, expected in zip(served.decide(_request(POOL)), want, strict=True):
            np.testing.assert_array_equal(got, expected, err_msg=name)


def test_a_pool_from_an_episode_is_decided_as_the_rule_decides_that_episode(rules):
    env = marl_env.parallel_env(**CELL.to_dict())
    env.reset(seed=0)
    for _ in range(4):  # tasks in flight: a front part running or bits being sent
        env.step_arrays(*rotate_actions(env.work_left_s(), env.system.num_actions, 1, 3, 0.4))
    view = env.view()
    busy = (view.time_left_s > 0) | (view.bits_left > 0)
    assert busy.any()
    ues = [{"ue_id": f"ue_{i}", "tasks_left": int(view.tasks_left[i]), "total_tasks": int(view.total_tasks[i]),
            "local_time_left_s": float(view.time_left_s[i]), "bits_left": float(view.bits_left[i]),
            "distance_m": float(view.distance_m[i]),
            **({"point_in_flight": int(view.point_in_flight[i]), "channel_in_flight": int(view.channel_in_flight[i])}
               if busy[i] else {})} for i in range(2)]
    for name, served in rules.items():
        rule = make_baseline(name)
        rule.reset(view)
        want = rule.act(view)
        for got, expected in zip(served.decide(_request(ues)), want, strict=True):
            np.testing.assert_array_equal(got, expected, err_msg=name)


def test_the_reply_names_the_rule_in_the_decide_response_shape(rules):
    served = rules["rotate"]
    body = decide(served, normalizer_for(served), _request(POOL[::-1]), CELL.p_max_w)
    assert body["policy_id"] == "rotate" and body["lookahead"] is False
    assert [d["ue_id"] for d in body["decisions"]] == ["ue_1", "ue_0"]  # request order
    assert body["decisions"][1]["partition_point"] == int(rules["rotate"].decide(_request(POOL))[0][0])


def test_a_busy_ue_without_its_point_in_flight_is_a_422_naming_it(rules):
    ues = [{k: v for k, v in POOL[0].items() if k != "point_in_flight"}, POOL[1]]
    with pytest.raises(RequestError) as info:
        rules["maxweight"].decide(_request(ues))
    assert info.value.field == "ues[0].point_in_flight" and info.value.status == 422


def test_model_info_says_which_rule_and_which_cell(rules):
    info = rules["myopic"].model_info()
    assert info["policy_id"] == info["rule"] == "myopic"
    assert EnvConfig.from_dict(info["env_config"]) == CELL and info["num_channels"] == 1


def test_a_replica_source_naming_a_rule_loads_it_on_the_cell_given():
    served = load_served("baseline:local", CELL.to_dict())
    assert isinstance(served, ServedRule) and served.env == CELL
    with pytest.raises(ValueError, match="is not a baseline"):
        load_served("baseline:nope", CELL.to_dict())


class _ViaServedRule:
    """A policy asking a ``ServedRule`` with the state pool ``mahppo simulate --via`` sends (``view_pool``)."""

    def __init__(self, served: ServedRule):
        self.served, self.name = served, served.name

    def reset(self, view, seed=None) -> None:
        pass

    def act(self, view):
        return self.served.decide(DecideRequest.model_validate(view_request(view)))


def test_the_requests_simulate_sends_give_evaluate_s_episodes_on_a_dynamic_cell():
    from mahppo.marl_env.evaluation import evaluate

    cell = EnvConfig.from_kwargs(scenario="dynamic", num_ues=3)  # arrivals, Rayleigh fading, moving UEs
    for name in ("maxweight", "myopic"):  # myopic prices the horizon's charge in the last frame: it needs `frame`
        via = evaluate(_ViaServedRule(ServedRule(name, cell)), cell, episodes=2)
        assert via == evaluate(make_baseline(name), cell, episodes=2), name


def test_the_lookahead_runs_around_a_served_rule_as_around_the_rule_on_the_env(rules):
    from mahppo.marl_env.lookahead import Lookahead
    from mahppo.serve.planner import planner_for

    env = marl_env.parallel_env(**CELL.to_dict())
    env.reset(seed=0)
    env.load_state(tasks_left=[40, 150], local_time_left_s=[0.0, 0.0], bits_left=[20000.0, 0.0],
                   point_in_flight=[2, -1], channel_in_flight=[0, -1], distance_m=[50.0, 80.0], total_tasks=[200, 200])
    look = Lookahead(make_baseline("rotate"))
    look.reset(env.view())
    want = look.act(env.view())
    got = planner_for(rules["rotate"]).decide(DecideRequest.model_validate({"ues": POOL, "lookahead": True}))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
