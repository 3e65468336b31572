"""One decision-maker for any cell: agent-centric observations, the shared actor and the set critic."""

import json
import re

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

import mahppo.marl_env as marl_env
from mahppo.algorithms.rllib.mahppo import shared_action_space
from mahppo.algorithms.rllib.modules import SetCriticModule, SharedActorModule
from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.observations import FEATURES, KEY, POINT_MASK, TOKEN, obs_size, split_observation


def _modules(num_channels: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    cfg = EnvConfig.from_kwargs(num_ues=2, obs_mode="agent", num_channels=num_channels)
    env = marl_env.parallel_env(**{**cfg.to_dict(), "num_ues": 2})
    space, obs = shared_action_space(cfg), env.observation_space("ue_0")
    actor = RLModuleSpec(module_class=SharedActorModule, observation_space=obs, action_space=space,
                         model_config={"token_freqs": 8}).build()  # as build_config
    critic = RLModuleSpec(module_class=SetCriticModule, observation_space=obs, action_space=space,
                          model_config={}).build()
    return actor, critic


def _cell_obs(n: int, dnn="resnet18", seed: int = 0, specs=None):
    kw = {"ue_specs": specs} if specs else {"num_ues": n, "dnn": dnn}
    env = marl_env.parallel_env(obs_mode="agent", **kw)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(3):  # move the cell away from its first state
        obs, *_ = env.step({a: (int(rng.integers(0, 6 if not specs else 3)), int(rng.integers(0, 2)),
                                float(rng.uniform(0.1, 1))) for a in env.agents})
    return env, np.stack([obs[a] for a in env.agents])


def test_agent_observation_layout_is_the_own_row_then_the_frame_key():
    env, obs = _cell_obs(3)
    assert obs.shape == (3, obs_size()) == (3, FEATURES + 2)
    own, frames = split_observation(obs)
    np.testing.assert_allclose(own[:, :4], env.state().reshape(3, 4))
    assert len(set(frames)) == 1  # one frame: one key for every agent
    assert np.all(own[:, POINT_MASK][:, :6] == 1) and np.all(own[:, POINT_MASK][:, 6:] == 0)
    assert len(set(own[:, TOKEN])) == 3  # identical UEs (all at 50 m) get different rank tokens
    _, again = split_observation(env.observation_matrix())
    assert again[0] == frames[0]  # the same frame: the same key
    env.step_arrays(np.full(3, 5), np.zeros(3, int), np.ones(3))
    _, next_frame = split_observation(env.observation_matrix())
    assert next_frame[0] != frames[0]  # the next frame: another key


def test_the_rank_token_is_the_load_rank_most_local_work_first_then_nearest():
    from mahppo.marl_env.observations import WORK, WORK_SCALE_S

    # 4 ResNet18 UEs: ue_1 and ue_3 hold the most work (equal), ue_3 is nearer; ue_2 has the least
    env = marl_env.parallel_env(obs_mode="agent", ue_specs=[
        {"distance_m": 30, "num_tasks": 120}, {"distance_m": 80, "num_tasks": 200},
        {"distance_m": 10, "num_tasks": 40}, {"distance_m": 20, "num_tasks": 200}])
    obs, _ = env.reset(seed=0)
    own = np.stack([obs[a] for a in env.agents])[:, :FEATURES]
    np.testing.assert_allclose(own[:, TOKEN], [(2 + 0.5) / 4, (1 + 0.5) / 4, (3 + 0.5) / 4, (0 + 0.5) / 4])
    # the work feature: tasks left x the full local latency of ResNet18 on the Nano (45.887 ms), in 10 s
    np.testing.assert_allclose(own[:, WORK], np.array([120, 200, 40, 200]) * 0.045887 / WORK_SCALE_S, rtol=1e-4)


def test_the_load_rank_follows_the_work_left_from_frame_to_frame():
    env = marl_env.parallel_env(obs_mode="agent", num_ues=3, scenario="test")
    obs, _ = env.reset(seed=0)
    local = {a: (5, 0, 1.0) for a in env.agents}
    obs, *_ = env.step({**local, "ue_0": (1, 0, 1.0), "ue_1": (1, 1, 1.0)})  # ue_0, ue_1 offload, ue_2 local
    left = env.system.tasks_left
    assert left[2] > max(left[0], left[1])  # offloading drained ue_0 and ue_1 faster than Local
    assert obs["ue_2"][TOKEN] == pytest.approx(0.5 / 3)  # so ue_2 now ranks first (most work left)


def test_a_shared_actor_for_an_older_observation_layout_is_refused_with_a_clear_error():
    import gymnasium as gym

    cfg = EnvConfig.from_kwargs(num_ues=3, obs_mode="agent")
    old = gym.spaces.Box(0.0, np.inf, shape=(16 * FEATURES + 15,), dtype=np.float32)  # the padded set of 16 UEs
    with pytest.raises(ValueError, match="older layout must be retrained"):
        RLModuleSpec(module_class=SharedActorModule, observation_space=old, action_space=shared_action_space(cfg),
                     model_config={"token_freqs": 8}).build()


def test_the_shared_actor_gives_permuted_decisions_for_a_permuted_ue_order():
    actor, _ = _modules()
    env, obs = _cell_obs(5, seed=3)
    perm = [3, 0, 4, 1, 2]
    env2, _ = _cell_obs(5, seed=3)
    state, tokens, desc, work = env.state().reshape(5, 4), env.tokens, env.descriptors(), env.work_left_s()
    from mahppo.marl_env.observations import agent_observations

    permuted = agent_observations(state[perm], tokens[perm], desc[perm], work[perm])
    with torch.no_grad():
        a = actor.dist_inputs(torch.as_tensor(obs))
        b = actor.dist_inputs(torch.as_tensor(permuted))
    torch.testing.assert_close(a[perm], b, rtol=1e-5, atol=1e-5)


def test_one_shared_module_decides_a_3_ue_and_a_7_ue_cell():
    actor, _ = _modules()
    for n in (3, 7):
        _, obs = _cell_obs(n)
        out = actor.forward_inference({Columns.OBS: torch.as_tensor(obs)})[Columns.ACTION_DIST_INPUTS]
        b, c, p = actor.get_inference_action_dist_cls().from_logits(out).to_deterministic().sample()
        assert b.shape == (n,) and c.shape == (n,) and p.shape == (n, 1)


def test_masked_points_are_never_chosen(tmp_path):
    profile = tmp_path / "p.json"
    pts = [{"raw_bits": 1000, "compression_rate": 1, "front_latency_s": 0, "front_power_w": 0, "front_energy_j": 0},
           {"raw_bits": 6400, "compression_rate": 64, "front_latency_s": 0.01, "front_power_w": 2,
            "front_energy_j": 0.02},
           {"raw_bits": 0, "compression_rate": 1, "front_latency_s": 0.03, "front_power_w": 2, "front_energy_j": 0.06}]
    from importlib import resources

    shipped = json.loads((resources.files("mahppo.marl_env") / "data" / "jetson_nano_profiles.json").read_text())
    profile.write_text(json.dumps({"models": {"tiny": pts, **shipped["models"]}}))
    actor, _ = _modules()
    env = marl_env.parallel_env(obs_mode="agent", ue_specs=["tiny", "resnet18", "tiny"],
                                profile_file=str(profile))
    obs, _ = env.reset(seed=0)
    x = torch.as_tensor(np.stack([obs[a] for a in env.agents])).repeat(400, 1)
    with torch.no_grad():
        out = actor.dist_inputs(x)
        b, _, _ = actor.head.dist(out).sample()
    b = b.reshape(400, 3)
    assert int(b[:, [0, 2]].max()) <= 2  # the tiny DNN has B + 2 = 3 choices
    assert int(b[:, 1].max()) > 2  # ResNet18's 6 choices are all open


def test_the_set_critic_value_does_not_depend_on_the_ue_order_or_on_the_agent():
    _, critic = _modules()
    env, obs = _cell_obs(4, seed=1)
    with torch.no_grad():
        v = critic.compute_values({Columns.OBS: torch.as_tensor(obs)})
    np.testing.assert_allclose(v.numpy(), np.full(4, float(v[0])), rtol=1e-5)  # every agent, one V(s)
    from mahppo.marl_env.observations import agent_observations

    perm = [2, 0, 3, 1]
    permuted = agent_observations(env.state().reshape(4, 4)[perm], env.tokens[perm], env.descriptors()[perm],
                                  env.work_left_s()[perm])
    with torch.no_grad():
        w = critic.compute_values({Columns.OBS: torch.as_tensor(permuted)})
    np.testing.assert_allclose(w.numpy(), v.numpy(), rtol=1e-5)


@pytest.mark.parametrize("n", [2, 3, 7])
def test_the_set_critic_counts_one_row_per_frame_and_values_each_frame_once(n):
    _, critic = _modules()
    _, obs = _cell_obs(n, seed=2)
    other = obs[::-1].copy()
    other[:, KEY] += 1.0  # a second frame: the same cell in reverse UE order, another key
    rows = torch.as_tensor(np.concatenate([obs, other]))
    keep = critic.frame_rows(rows).numpy()
    assert keep[:n].sum() == 1 and keep[n:].sum() == 1
    with torch.no_grad():
        values, pool = critic.frame_values(rows)
    assert values.shape == (2,) and pool.frames == 2
    assert float(values[0]) == pytest.approx(float(values[1]), rel=1e-5)  # the order of the UEs does not matter


def test_an_env_with_a_range_of_n_draws_the_cell_per_episode():
    env = marl_env.parallel_env(num_ues_range=(2, 5), dnn_pool=["resnet18", "vgg11", "mobilenetv2"],
                                obs_mode="agent")
    assert env.possible_agents == [f"ue_{i}" for i in range(5)]
    sizes, dnns = set(), set()
    for seed in range(30):
        obs, _ = env.reset(seed=seed)
        sizes.add(len(env.agents))
        dnns |= {s.dnn for s in env.view().config.specs}
        assert set(obs) == set(env.agents) == set(env.possible_agents[:len(env.agents)])
    assert sizes == {2, 3, 4, 5} and dnns == {"resnet18", "vgg11", "mobilenetv2"}


def test_one_dnn_share_makes_that_share_of_cells_run_one_dnn_on_every_ue():
    cfg = EnvConfig.from_kwargs(num_ues_range=(3, 6), dnn_pool=["resnet18", "vgg11", "mobilenetv2"],
                                one_dnn_share=0.5, obs_mode="agent")
    rng = np.random.default_rng(0)
    cells = [cfg.draw_cell(rng) for _ in range(400)]
    one = [c for c in cells if len({s.dnn for s in c.specs}) == 1]
    assert 0.4 < len(one) / len(cells) < 0.6  # mixed draws of 3-6 UEs are one-DNN only 1-11 % of the time
    assert {c.specs[0].dnn for c in one} == {"resnet18", "vgg11", "mobilenetv2"}
    assert all(c.one_dnn_share == 0 and c.dnn_pool is None for c in cells)  # a drawn cell is a fixed one


def test_pettingzoo_parallel_api_holds_for_agent_observations_and_varying_n():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(marl_env.parallel_env(num_ues_range=(2, 4), obs_mode="agent", max_frames=30),
                      num_cycles=40)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_ues_range": (2, 4)}, "needs obs_mode = 'agent'"),
    ({"num_ues_range": (4, 2), "obs_mode": "agent"}, "num_ues_range = (4, 2)"),
    ({"num_ues": 20, "obs_mode": "agent", "max_ues": 16}, "num_ues = 20 exceeds max_ues = 16"),
    ({"num_ues": 300, "obs_mode": "agent"}, "num_ues = 300 is above the maximum of 256"),
    ({"dnn_pool": ["resnet18"], "ue_specs": ["vgg11"]}, "dnn_pool: give either"),
    ({"obs_mode": "both"}, "obs_mode = 'both'"),
    ({"dnn_pool": ["resnet18"], "one_dnn_share": 1.5}, "one_dnn_share = 1.5 must be a number in [0, 1]"),
    ({"one_dnn_share": 0.5}, "one_dnn_share = 0.5 needs a DNN pool"),
])
def test_bad_cell_options_are_rejected_by_name(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        EnvConfig.from_kwargs(**kwargs)


def test_a_ue_added_through_ue_specs_is_decided_by_the_same_policy():
    from mahppo.algorithms.acting.policy import TrainedPolicy
    from mahppo.algorithms.rllib.modules import SHARED_ID
    from mahppo.marl_env.evaluation import evaluate

    actor, _ = _modules()
    policy = TrainedPolicy({SHARED_ID: actor}, {"experiment": {"env": EnvConfig(
        num_ues=3, obs_mode="agent").validated().to_dict()}})
    for specs in (["resnet18"] * 3, ["resnet18", "resnet18", "resnet18", {"dnn": "vgg11", "distance_m": 20}]):
        m = evaluate(policy, EnvConfig.from_kwargs(ue_specs=specs, scenario="test", obs_mode="agent",
                                                    max_frames=50))
        assert m["tasks_completed"] > 0
    capped = TrainedPolicy({SHARED_ID: actor}, {"experiment": {"env": EnvConfig(
        num_ues=3, obs_mode="agent", max_ues=8).validated().to_dict()}})
    with pytest.raises(ValueError, match="at most max_ues = 8"):
        evaluate(capped, EnvConfig.from_kwargs(num_ues=9, scenario="test", max_frames=5))


def test_rank_tokens_order_the_ues_by_distance_nearest_first():
    env = marl_env.parallel_env(obs_mode="agent", ue_specs=[
        {"distance_m": 80.0}, {"distance_m": 10.0}, {"distance_m": 45.0}, {"distance_m": 99.0}])
    env.reset(seed=0)
    np.testing.assert_allclose(env.tokens, [(2 + 0.5) / 4, (0 + 0.5) / 4, (1 + 0.5) / 4, (3 + 0.5) / 4])


def test_equal_distances_are_ranked_by_a_random_tie_break_per_episode():
    env = marl_env.parallel_env(obs_mode="agent", num_ues=4, scenario="test")  # all at 50 m
    orders = set()
    for seed in range(6):
        env.reset(seed=seed)
        assert sorted(env.tokens) == [0.125, 0.375, 0.625, 0.875]
        orders.add(tuple(np.argsort(env.tokens)))
    assert len(orders) > 1  # not the UEs' index order every time


def test_the_server_ranks_by_distance_then_by_the_ids_hash():
    from mahppo.marl_env.observations import tokens_for

    near_far = tokens_for(["phone-a", "phone-b", "phone-c"], np.array([90.0, 5.0, 40.0]))
    np.testing.assert_allclose(near_far, [5 / 6, 1 / 6, 3 / 6])
    tied = tokens_for(["phone-a", "phone-b", "phone-c"], np.array([50.0, 50.0, 50.0]))
    assert sorted(tied) == pytest.approx([1 / 6, 3 / 6, 5 / 6])
    # an id keeps its place among equals whatever the request order
    again = tokens_for(["phone-c", "phone-a", "phone-b"], np.array([50.0, 50.0, 50.0]))
    np.testing.assert_allclose(again, [tied[2], tied[0], tied[1]])


def test_ranks_reach_the_shared_actor_as_fourier_features_that_tell_them_apart():
    from mahppo.algorithms.rllib.modules import token_features

    tokens = torch.tensor([[1 / 6], [3 / 6], [5 / 6]])  # a 3-UE cell
    f = token_features(tokens, 8)
    assert f.shape == (3, 16) and float(f.abs().max()) <= 1.0
    gaps = torch.cdist(f, f)[~torch.eye(3, dtype=torch.bool)]
    assert float(gaps.min()) > 1.0  # scalars 1/3 apart become vectors far apart
    actor, _ = _modules()
    assert actor.trunk[0][0].in_features == 3 * 128 + 1 + 16 and actor.point_head[0].in_features == 128 + 16


def test_act_many_gives_every_cell_the_decisions_act_gives_it():
    from mahppo.algorithms.acting.policy import TrainedPolicy
    from mahppo.algorithms.rllib.modules import SHARED_ID

    actor, _ = _modules()
    policy = TrainedPolicy({SHARED_ID: actor}, {"experiment": {"env": EnvConfig(
        num_ues=3, obs_mode="agent").validated().to_dict()}})
    envs = []
    for n, seed in ((2, 0), (5, 1), (3, 2)):  # cells of different sizes in one forward pass
        env = marl_env.parallel_env(num_ues=n, obs_mode="agent")
        env.reset(seed=seed)
        envs.append(env)
    many = policy.act_many([e.view() for e in envs])
    assert policy.act_many([]) == []
    for env, got in zip(envs, many, strict=True):
        want = policy.act(env.view())
        assert len(got[0]) == env.system.n
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5)


def test_the_lookahead_on_a_shared_policy_is_never_worse_than_the_policy():
    from mahppo.algorithms.acting.policy import TrainedPolicy
    from mahppo.algorithms.rllib.modules import SHARED_ID
    from mahppo.marl_env.evaluation import evaluate
    from mahppo.marl_env.lookahead import Lookahead

    actor, _ = _modules(seed=3)  # untrained: its decisions leave much to improve
    policy = TrainedPolicy({SHARED_ID: actor}, {"experiment": {"env": EnvConfig(
        num_ues=3, obs_mode="agent").validated().to_dict()}})
    cfg = EnvConfig.from_kwargs(num_ues=3, scenario="test", obs_mode="agent", max_frames=60)
    plain, ahead = evaluate(policy, cfg), evaluate(Lookahead(policy), cfg)
    assert ahead["reward"] >= plain["reward"] - 1e-9
    assert ahead["tasks_completed"] >= plain["tasks_completed"]


@pytest.mark.parametrize("n", [1, 17, 64])
def test_one_module_decides_cells_of_any_n_without_a_max_ues(n):
    actor, critic = _modules()
    _, obs = _cell_obs(n)
    with torch.no_grad():
        out = actor.dist_inputs(torch.as_tensor(obs))
        values = critic.compute_values({Columns.OBS: torch.as_tensor(obs)})
    assert out.shape == (n, actor.head.width) and torch.isfinite(out).all()
    assert values.shape == (n,) and torch.allclose(values, values[0].expand(n))


def test_64_permuted_ues_get_the_same_decisions_permuted():
    from mahppo.algorithms.acting.policy import TrainedPolicy
    from mahppo.algorithms.rllib.modules import SHARED_ID
    from mahppo.marl_env.observations import agent_observations

    actor, _ = _modules(seed=5)
    policy = TrainedPolicy({SHARED_ID: actor}, {"experiment": {"env": EnvConfig(
        num_ues=3, obs_mode="agent").validated().to_dict()}})
    env, obs = _cell_obs(64, seed=4)
    perm = np.random.default_rng(0).permutation(64)
    state, tokens, desc, work = env.state().reshape(64, 4), env.tokens, env.descriptors(), env.work_left_s()
    permuted = agent_observations(state[perm], tokens[perm], desc[perm], work[perm])
    a, b = policy.act_batch(obs), policy.act_batch(permuted)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x[perm], y, rtol=1e-5, atol=1e-6)


def test_the_pooled_summary_of_the_others_equals_pooling_each_ue_s_others_one_by_one():
    from mahppo.algorithms.rllib.modules import FramePool

    rng = np.random.default_rng(0)
    sizes = [1, 2, 5, 3]
    obs = np.zeros((sum(sizes), obs_size()), np.float32)
    obs[:, KEY] = np.repeat(np.arange(len(sizes)), sizes)[rng.permutation(sum(sizes))]  # frames interleaved
    h = torch.as_tensor(rng.uniform(0, 1, size=(sum(sizes), 6)).round(1), dtype=torch.float32)  # ties too
    got = FramePool(torch.as_tensor(obs)).others_mean_max(h)
    for i in range(len(obs)):
        others = [j for j in range(len(obs)) if j != i and obs[j, KEY] == obs[i, KEY]]
        want = torch.cat([h[others].mean(0), h[others].amax(0)]) if others else torch.zeros(12)
        torch.testing.assert_close(got[i], want, rtol=1e-6, atol=1e-6)
