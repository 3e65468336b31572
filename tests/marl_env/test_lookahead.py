"""Decision-time lookahead: snapshots of the simulator and rollouts of a base policy (``marl_env.lookahead``)."""

import json
import re

import numpy as np
import pytest

import mahppo.marl_env as marl_env
from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.evaluation import evaluate
from mahppo.marl_env.lookahead import Lookahead
from mahppo.marl_env.observations import FEATURES
from mahppo.marl_env.policies import make_baseline, rotate_actions


def _rotate(env):
    return rotate_actions(env.work_left_s(), env.system.num_actions, env.config.num_channels, 1, 0.1)


def _play(env, frames):
    out = []
    for _ in range(frames):
        obs, rew, *_ = env.step_arrays(*_rotate(env))
        out.append((next(iter(rew.values())), env.state(), env.observation_matrix()[:, :FEATURES]))  # not the key
    return out


def test_restoring_a_snapshot_replays_the_same_frames():
    env = marl_env.parallel_env(num_ues=3, scenario="test", obs_mode="agent")
    env.reset(seed=0)
    _play(env, 2)
    snap = env.snapshot()
    first = _play(env, 3)
    env.restore(snap)
    again = _play(env, 3)
    for (r1, s1, o1), (r2, s2, o2) in zip(first, again, strict=True):
        assert r1 == r2
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(o1, o2)


def test_a_snapshot_moves_the_episode_to_a_second_env_of_the_same_cell():
    env = marl_env.parallel_env(num_ues=4, scenario="train", obs_mode="agent")
    env.reset(seed=3)  # random distances and task counts
    _play(env, 2)
    twin = marl_env.parallel_env(num_ues=4, scenario="train", obs_mode="agent")
    twin.reset(seed=99)  # another draw: everything below comes from the snapshot
    twin.restore(env.snapshot())
    assert [r for r, *_ in _play(env, 4)] == [r for r, *_ in _play(twin, 4)]


def test_a_snapshot_of_another_cell_is_refused():
    small = marl_env.parallel_env(num_ues=2, scenario="test")
    small.reset(seed=0)
    big = marl_env.parallel_env(num_ues=3, scenario="test")
    big.reset(seed=0)
    with pytest.raises(ValueError, match="snapshot of 2 UEs / 2 channels does not fit this system"):
        big.restore(small.snapshot())


@pytest.mark.parametrize("name", ["static-search", "rotate", "local", "fixed:1,0,0.5"])
@pytest.mark.parametrize("n", [3, 4])
def test_the_lookahead_is_never_worse_than_its_base_policy(name, n):
    cfg = EnvConfig.from_kwargs(num_ues=n, scenario="test")
    base = evaluate(make_baseline(name), cfg)["reward"]
    ahead = evaluate(Lookahead(make_baseline(name)), cfg)["reward"]
    assert ahead >= base - 1e-9


def test_the_lookahead_plans_static_search_s_last_frames_better_at_n3():
    # static-search's one (b, c, p) per UE leaves the test episode's end to chance (Eq. 12 divides the last
    # frame's cost by its few tasks); a deviation in the last frames, found by rollouts, finishes it better
    cfg = EnvConfig.from_kwargs(num_ues=3, scenario="test")
    base = evaluate(make_baseline("static-search"), cfg)
    la = Lookahead(make_baseline("static-search"))
    ahead = evaluate(la, cfg)
    assert base["reward"] == pytest.approx(-0.3734, abs=1e-3)  # the README's static-search at N = 3
    assert ahead["reward"] > base["reward"] + 0.005
    assert ahead["tasks_completed"] == 600
    assert 0 < la.deviations < la.frames and la.rollouts > la.frames


def test_the_lookahead_leaves_the_real_episode_untouched():
    env = marl_env.parallel_env(num_ues=3, scenario="test", obs_mode="agent")
    env.reset(seed=0)
    _play(env, 3)
    before = (env.state(), env.observation_matrix()[:, :FEATURES], env.snapshot())
    la = Lookahead(make_baseline("rotate"))
    la.reset(env.view(), seed=0)
    la.act(env.view())
    np.testing.assert_array_equal(before[0], env.state())
    np.testing.assert_array_equal(before[1], env.observation_matrix()[:, :FEATURES])
    after = env.snapshot()["system"]
    for key, value in before[2]["system"].items():
        np.testing.assert_array_equal(value, after[key])


def test_the_lookahead_decides_a_cell_drawn_from_a_varying_env():
    env = marl_env.parallel_env(num_ues=5, num_ues_range=(2, 5), dnn_pool=("resnet18", "vgg11"),
                                obs_mode="agent", max_frames=30)
    env.reset(seed=1)
    la = Lookahead(make_baseline("rotate"))
    la.reset(env.view(), seed=1)
    pts, chs, pws = la.act(env.view())
    assert len(pts) == len(chs) == len(pws) == env.system.n
    assert np.all(pts < env.system.num_actions)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"powers": ()}, "powers = () must be fractions of p_max in (0, 1]"),
    ({"powers": (0.5, 1.5)}, "powers = (0.5, 1.5) must be fractions of p_max in (0, 1]"),
    ({"powers": (0.0,)}, "powers = (0.0,) must be fractions"),
    ({"rounds": 0}, "rounds = 0 must be an integer >= 1"),
    ({"max_frames": 0}, "max_frames = 0 must be an integer >= 1"),
    ({"budget_s": 0}, "budget_s = 0 must be a number of seconds > 0"),
    ({"budget_s": float("inf")}, "budget_s = inf must be"),
])
def test_bad_lookahead_settings_are_rejected_by_name(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Lookahead(make_baseline("rotate"), **kwargs)


def test_the_lookahead_needs_reset_before_act():
    env = marl_env.parallel_env(num_ues=2, scenario="test")
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="call reset"):
        Lookahead(make_baseline("local")).act(env.view())


def test_mahppo_evaluate_lookahead_reports_the_better_episode(capsys):
    from mahppo.cli import main

    assert main(["evaluate", "--policy", "static-search", "--num-ues", "3", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--policy", "static-search", "--num-ues", "3", "--lookahead", "--json"]) == 0
    ahead = json.loads(capsys.readouterr().out)
    assert ahead["lookahead"] is True and plain["lookahead"] is False
    assert ahead["reward"] > plain["reward"] + 0.005


@pytest.mark.parametrize("lookahead", [[], ["--lookahead"]])
def test_mahppo_evaluate_json_reports_the_decision_time_per_frame(capsys, lookahead):
    from mahppo.cli import main

    assert main(["evaluate", "--policy", "rotate", "--num-ues", "3", "--json", *lookahead]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 < out["decision_ms_p50"] <= out["decision_ms_p99"]


def test_a_base_policy_that_never_finishes_keeps_its_own_decisions():
    env = marl_env.parallel_env(num_ues=2, scenario="test")
    env.reset(seed=0)
    base = make_baseline("fixed:0,0,1e-10")  # the raw input at a vanishing power: never sent
    la = Lookahead(base, max_frames=5)
    la.reset(env.view(), seed=0)
    pts, chs, pws = la.act(env.view())
    np.testing.assert_array_equal(pts, [0, 0])
    np.testing.assert_allclose(pws, [1e-10, 1e-10])
    assert la.rollouts == 1 and la.deviations == 0  # only the base's own rollout, unscored
    env.step_arrays(pts, chs, pws)
    la.act(env.view())
    assert la.rollouts == 1 and la.gave_up and la.frames == 2  # no more rollouts in this episode
    la.reset(env.view(), seed=0)
    assert not la.gave_up


def test_evaluate_lookahead_on_a_policy_that_never_finishes_stops_at_the_cap_quickly(capsys):
    import time

    from mahppo.cli import main

    t0 = time.perf_counter()
    assert main(["evaluate", "--policy", "fixed:0,0,1e-9", "--num-ues", "2", "--lookahead", "--json"]) == 0
    assert time.perf_counter() - t0 < 60
    assert json.loads(capsys.readouterr().out)["truncated_episodes"] == 1


def test_a_spent_time_budget_gives_the_base_policy_s_own_decisions_and_says_so():
    cfg = EnvConfig.from_kwargs(num_ues=3, scenario="test")
    base = evaluate(make_baseline("static-search"), cfg)
    la = Lookahead(make_baseline("static-search"), budget_s=1e-9)
    assert evaluate(la, cfg) == base
    assert la.fallbacks == la.frames > 0 and "time budget of 1e-09 s" in la.last_fallback


def test_a_cancelled_search_stops_at_once_with_the_base_policy_s_decisions():
    import threading

    env = marl_env.parallel_env(num_ues=3, scenario="test")
    env.reset(seed=0)
    la = Lookahead(make_baseline("static-search"))
    la.cancel = threading.Event()
    la.cancel.set()
    la.reset(env.view(), seed=0)
    want = make_baseline("static-search")
    want.reset(env.view(), seed=0)
    for got, base in zip(la.act(env.view()), want.act(env.view()), strict=True):
        np.testing.assert_array_equal(got, base)
    assert la.rollouts == 1 and la.last_fallback == "cancelled"  # stopped inside the base's own rollout


def test_evaluate_lookahead_shows_progress_and_the_frames_past_their_budget(capsys):
    from mahppo.cli import main

    assert main(["evaluate", "--policy", "static-search", "--num-ues", "3", "--lookahead",
                 "--lookahead-budget", "1e-9"]) == 0
    err = capsys.readouterr().err
    assert "frame" in err and "it/s" not in err  # tqdm's bar, counted in frames
    assert re.search(r"note: (\d+) of \1 frames got static-search's own decisions", err)
    assert "--lookahead-budget" in err


def _busy_env(seed=5):
    env = marl_env.parallel_env(num_ues=4, scenario="train", obs_mode="agent")
    env.reset(seed=seed)
    for _ in range(3):  # UEs mid-task: some running a front part, some sending
        env.step_arrays(*rotate_actions(env.work_left_s(), env.system.num_actions, 2, 2, 0.3))
    return env


def test_load_state_rebuilds_a_running_episode_exactly():
    env = _busy_env()
    s = env.system
    twin = marl_env.parallel_env(num_ues=4, scenario="test", obs_mode="agent")
    twin.reset(seed=0)  # 50 m, 200 tasks: everything below comes from load_state
    twin.load_state(s.tasks_left, s.time_left, s.bits_left, s.point, s.channel, s.distance, s.total_tasks,
                    env.tokens)
    np.testing.assert_array_equal(twin.observation_matrix()[:, :FEATURES], env.observation_matrix()[:, :FEATURES])
    for _ in range(4):
        actions = rotate_actions(env.work_left_s(), env.system.num_actions, 2, 1, 0.5)
        assert env.step_arrays(*actions)[1] == twin.step_arrays(*actions)[1]
        np.testing.assert_array_equal(twin.state(), env.state())


def test_load_state_names_what_a_busy_ue_is_missing():
    env = _busy_env()
    s = env.system
    busy = int(np.flatnonzero(s.time_left > 0)[0])
    points = [int(p) for p in s.point]
    points[busy] = None
    with pytest.raises(ValueError, match=rf"ue {busy}: point_in_flight missing: the UE is running its front part"):
        env.load_state(s.tasks_left, s.time_left, s.bits_left, points, s.channel)
    with pytest.raises(ValueError, match=r"ue 0: tasks_left 300 is out of range \(total_tasks = 200\)"):
        env.load_state([300, 1, 1, 1], [0] * 4, [0] * 4, total_tasks=[200] * 4)
    with pytest.raises(ValueError, match="local_time_left_s = nan must be a finite number"):
        env.load_state([1] * 4, [float("nan")] * 4, [0] * 4)


def test_in_a_large_cell_only_the_ues_that_matter_most_deviate():
    env = marl_env.parallel_env(num_ues=12, scenario="train")
    env.reset(seed=1)
    view = env.view()
    base = make_baseline("rotate")
    base.reset(view)
    decision = base.act(view)
    la = Lookahead(base, deviators=4)
    chosen = la.deviating(view, decision)
    sending = set(np.flatnonzero(decision[0] < view.num_actions - 1).tolist())
    assert len(chosen) == 4 and sending <= set(chosen)  # the senders first (rotate: one per channel)
    rest = [i for i in range(12) if i not in chosen and i not in sending]
    assert min(view.work_left_s()[[i for i in chosen if i not in sending]]) >= max(view.work_left_s()[rest])
    assert {i for c in la.candidates(view, decision) for i in np.flatnonzero(
        (c[0] != decision[0]) | (c[1] != decision[1]) | (c[2] != decision[2]))} <= set(chosen)


def test_a_pruned_lookahead_is_still_never_worse_than_its_base():
    cfg = EnvConfig.from_kwargs(num_ues=10, scenario="test")
    plain = evaluate(make_baseline("local"), cfg)
    ahead = evaluate(Lookahead(make_baseline("local"), deviators=2, rounds=1), cfg)
    assert ahead["reward"] >= plain["reward"] - 1e-9
