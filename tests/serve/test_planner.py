"""``"lookahead": true`` without Ray: a state pool made simulable (``serve.planner``) decides as the env would."""

import numpy as np
import pytest
import torch
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

import mahppo.marl_env as marl_env
from mahppo.algorithms.acting.policy import TrainedPolicy
from mahppo.algorithms.rllib.mahppo import shared_action_space
from mahppo.algorithms.rllib.modules import SHARED_ID, SharedActorModule
from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.lookahead import Lookahead
from mahppo.marl_env.observations import tokens_for
from mahppo.marl_env.policies import rotate_actions
from mahppo.serve.planner import decide, planner_for
from mahppo.serve.schema import DecideRequest, RequestError, normalizer_for

IDS = ["phone-a", "cam-7", "phone-b", "tablet"]


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    cfg = EnvConfig.from_kwargs(num_ues=2, obs_mode="agent")
    env = marl_env.parallel_env(**cfg.to_dict())
    actor = RLModuleSpec(module_class=SharedActorModule, observation_space=env.observation_space("ue_0"),
                         action_space=shared_action_space(cfg), model_config={"token_freqs": 8}).build()
    return TrainedPolicy({SHARED_ID: actor}, {"experiment": {"env": cfg.validated().to_dict()}})


def _busy_cell():
    env = marl_env.parallel_env(num_ues=4, scenario="train", obs_mode="agent")
    env.reset(seed=5)
    for _ in range(3):
        env.step_arrays(*rotate_actions(env.work_left_s(), env.system.num_actions, 2, 2, 0.3))
    s = env.system
    env.tokens = tokens_for(IDS, s.distance)  # the server's tie-break
    busy = (s.time_left > 0) | (s.bits_left > 0)
    ues = [{"ue_id": IDS[i], "tasks_left": int(s.tasks_left[i]), "total_tasks": int(s.total_tasks[i]),
            "local_time_left_s": float(s.time_left[i]), "bits_left": float(s.bits_left[i]),
            "distance_m": float(s.distance[i]),
            **({"point_in_flight": int(s.point[i]), "channel_in_flight": int(s.channel[i])} if busy[i] else {})}
           for i in range(4)]
    return env, ues


def test_the_planner_decides_a_state_pool_as_the_lookahead_decides_the_env(policy):
    env, ues = _busy_cell()
    la = Lookahead(policy)
    la.reset(env.view())
    want = la.act(env.view())
    got = planner_for(policy).decide(DecideRequest.model_validate({"ues": ues, "lookahead": True}))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b)
    assert planner_for(policy) is planner_for(policy)  # one planner per policy


def test_a_lookahead_reply_says_so(policy):
    _, ues = _busy_cell()
    body = decide(policy, normalizer_for(policy), DecideRequest.model_validate({"ues": ues, "lookahead": True}), 1.0)
    plain = decide(policy, normalizer_for(policy), DecideRequest.model_validate({"ues": ues}), 1.0)
    assert body["lookahead"] is True and plain["lookahead"] is False
    assert [d["ue_id"] for d in body["decisions"]] == IDS


def test_a_busy_ue_without_its_point_in_flight_is_a_422_naming_it(policy):
    _, ues = _busy_cell()
    k = next(i for i, u in enumerate(ues) if "point_in_flight" in u)
    del ues[k]["point_in_flight"]
    with pytest.raises(RequestError) as info:
        planner_for(policy).decide(DecideRequest.model_validate({"ues": ues, "lookahead": True}))
    assert info.value.field == f"ues[{k}].point_in_flight" and info.value.status == 422


def test_lookahead_wants_the_deterministic_policy(policy):
    _, ues = _busy_cell()
    with pytest.raises(RequestError) as info:
        planner_for(policy).decide(DecideRequest.model_validate({"ues": ues, "lookahead": True,
                                                                  "deterministic": False}))
    assert info.value.field == "deterministic"


def test_a_cell_beyond_the_planning_horizon_gets_the_policy_s_own_decisions_quickly(policy):
    import time

    from mahppo.serve.planner import PLAN_FRAMES

    ues = [{"ue_id": f"u{i}", "tasks_left": 10**6, "total_tasks": 10**6, "local_time_left_s": 0.0,
            "bits_left": 0.0, "distance_m": 40.0} for i in range(3)]  # thousands of frames to go
    request = DecideRequest.model_validate({"ues": ues, "lookahead": True})
    planner = planner_for(policy)
    t0 = time.perf_counter()
    got = planner.decide(request)
    assert time.perf_counter() - t0 < 10
    assert planner.lookahead.rollouts == 1 and PLAN_FRAMES == planner.lookahead.max_frames  # only the policy's
    want = decide(policy, normalizer_for(policy), DecideRequest.model_validate({"ues": ues}), 1.0)["decisions"]
    assert [d["partition_point"] for d in want] == list(got[0])


def test_a_spent_budget_gives_the_policy_s_own_decisions_marked_so(policy):
    _, ues = _busy_cell()
    request = DecideRequest.model_validate({"ues": ues, "lookahead": True})
    body = decide(policy, normalizer_for(policy), request, 1.0, budget_s=1e-9)
    plain = decide(policy, normalizer_for(policy), DecideRequest.model_validate({"ues": ues}), 1.0)
    assert body["decisions"] == plain["decisions"]
    assert body["lookahead"] is False and "time budget" in body["lookahead_fallback"]
    assert "policy's own decisions" in body["lookahead_fallback"]


def test_a_budget_spent_waiting_for_the_planner_counts(policy):
    import time

    _, ues = _busy_cell()
    request = DecideRequest.model_validate({"ues": ues, "lookahead": True})
    _, fallback = planner_for(policy).plan(request, budget_s=5.0, started=time.monotonic() - 10)
    assert fallback is not None and "time budget" in fallback


def test_a_cancelled_plan_stops_with_the_policy_s_own_decisions(policy):
    import threading

    _, ues = _busy_cell()
    cancel = threading.Event()
    cancel.set()
    actions, fallback = planner_for(policy).plan(DecideRequest.model_validate({"ues": ues, "lookahead": True}),
                                                 cancel=cancel)
    plain = decide(policy, normalizer_for(policy), DecideRequest.model_validate({"ues": ues}), 1.0)["decisions"]
    assert fallback == "cancelled" and list(actions[0]) == [d["partition_point"] for d in plain]
