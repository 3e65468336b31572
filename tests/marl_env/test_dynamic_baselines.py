"""The classical decision-makers that see what a learned policy sees (``maxweight``, ``myopic``, the lookahead
with sampled futures), each on a hand-checked 2-UE frame."""

from __future__ import annotations

import numpy as np
import pytest

from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.lookahead import Lookahead
from mahppo.marl_env.parallel import CollabInferenceEnv
from mahppo.marl_env.policies import BASELINES, RotatePolicy, make_baseline
from mahppo.marl_env.rules import offload_costs

B, NOISE, BETA = 1e6, 1e-9, 0.47


def _cell(tasks, distance, h=(1.0, 1.0), channels=1, **dyn) -> CollabInferenceEnv:
    cfg = EnvConfig.from_kwargs(num_ues=2, num_channels=channels,
                                dynamics=dyn or {"fading": "rayleigh", "horizon_frames": 60})
    env = CollabInferenceEnv(cfg)
    env.reset(seed=0)
    env.load_state(tasks, [0.0, 0.0], [0.0, 0.0], distance_m=distance, total_tasks=[max(tasks)] * 2, fading=h)
    return env


def test_the_new_rules_are_baselines_by_name():
    assert {"rotate", "maxweight", "myopic"} <= set(BASELINES)
    assert make_baseline("maxweight").name == "maxweight" and make_baseline("myopic").name == "myopic"


def test_the_one_frame_estimate_prices_a_task_by_eq_12s_weights():
    env = _cell([10, 10], [10.0, 10.0])
    pts, pws, cost, local = offload_costs(env.view(), powers=(1.0,))
    # ResNet18 at 10 m, 1 W alone on a channel: rate = B log2(1 + 1e-3 / 1e-9) ~ 19.93 Mb/s
    rate = B * np.log2(1 + 1.0 * 10.0**-3 / NOISE)
    prof = env.cell.profiles[0]
    t = prof.front_latency_s[:-1] + prof.bits[:-1] / rate
    e = prof.front_energy_j[:-1] + 1.0 * prof.bits[:-1] / rate
    assert cost[0] == pytest.approx(np.min(t + BETA * e)) and pts[0] == int(np.argmin(t + BETA * e))
    assert local[0] == pytest.approx(prof.local_latency_s + BETA * prof.front_energy_j[-1])


def test_maxweight_offloads_the_ue_with_the_larger_backlog_times_rate_on_the_one_channel():
    # equal backlogs: the nearer UE (higher rate) offloads, the far one runs locally
    env = _cell([10, 10], [10.0, 40.0])
    pts, chs, _ = make_baseline("maxweight").act(env.view())
    assert pts[0] < 5 and pts[1] == 5
    # ue 1's backlog x rate now wins: 200 tasks at 40 m vs 10 tasks at 10 m
    rate = lambda d: np.log2(1 + d**-3.0 / NOISE)  # noqa: E731
    assert 200 * rate(40.0) > 10 * rate(10.0)
    pts, chs, _ = make_baseline("maxweight").act(_cell([10, 200], [10.0, 40.0]).view())
    assert pts[0] == 5 and pts[1] < 5 and chs[1] == 0


def test_maxweight_sees_this_frames_fading():
    # the same distances, but ue 0's channel is in a deep fade this frame: ue 1 offloads instead
    pts, _, _ = make_baseline("maxweight").act(_cell([10, 10], [10.0, 12.0], h=(0.01, 1.0)).view())
    assert pts[0] == 5 and pts[1] < 5


def test_myopic_plays_the_best_joint_action_of_its_candidates_for_this_frame():
    env = _cell([30, 30], [10.0, 15.0], channels=1)
    view = env.view()
    pol = make_baseline("myopic")
    pol.reset(view)
    chosen = pol.act(view)
    snap = view.snapshot()
    pts, pws, cost, _ = offload_costs(view)
    per_ue = [[(5, 0, 1.0), (int(pts[i]), 0, float(pws[i]))] for i in range(2)]
    values = {}
    for a in per_ue[0]:  # all four joint candidates, by hand
        for b in per_ue[1]:
            acts = (np.array([a[0], b[0]]), np.array([a[1], b[1]]), np.array([a[2], b[2]]))
            values[(a, b)] = pol.frame_reward(snap, acts)
    assert pol.frame_reward(snap, chosen) == pytest.approx(max(values.values()))
    # both offloading on the one channel interfere: not the best here; one offloading beats both local
    assert max(values.values()) > values[(per_ue[0][0], per_ue[1][0])]


def test_the_sampled_lookahead_scores_every_candidate_on_the_same_futures():
    env = _cell([40, 40], [10.0, 20.0], channels=1, arrivals="poisson", arrival_rate=12.0, fading="rayleigh",
                horizon_frames=60)
    view = env.view()
    la = Lookahead(RotatePolicy(point=1, power_w=0.3), samples=3, depth=4)
    la.reset(view, seed=0)
    assert la.sampled
    base = la.base.act(view)
    snap = view.snapshot()
    seeds = [11, 12, 13]
    same = la.sampled_returns(snap, [base, base], seeds)
    assert same[0] == same[1]  # common random numbers: the same decision, the same value
    assert la.sampled_returns(snap, [base], seeds)[0] == same[0]  # and again, from the same snapshot
    first = la.act(view)
    vals = la.sampled_returns(snap, [base, first], [int(s) for s in np.random.default_rng(0).integers(0, 2**63, 3)])
    assert vals[1] >= vals[0]  # it plays the base's decisions or a better one on its futures


def test_the_sampled_lookahead_keeps_its_time_budget_too():
    env = _cell([40, 40], [10.0, 20.0], channels=1, arrivals="poisson", arrival_rate=12.0, fading="rayleigh",
                horizon_frames=60)
    view = env.view()
    la = Lookahead(RotatePolicy(point=1, power_w=0.3), samples=3, depth=4, budget_s=1e-9)
    la.reset(view, seed=0)
    for got, want in zip(la.act(view), la.base.act(view), strict=True):
        np.testing.assert_array_equal(got, want)
    assert la.fallbacks == 1 and "time budget" in la.last_fallback
