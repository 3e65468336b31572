"""MAHPPO's pieces, without a Ray cluster: networks, the per-branch loss, centralized GAE, validation."""

import json
import math

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.evaluation.postprocessing import Postprocessing

import mahppo.marl_env as marl_env
from mahppo.algorithms.params import PAPER_LR
from mahppo.algorithms.rllib.codec import HybridDistribution
from mahppo.algorithms.rllib.connectors import CentralizedGAE
from mahppo.algorithms.rllib.learner import clipped_surrogate
from mahppo.algorithms.rllib.mahppo import MAHPPOConfig, MAHPPOParams
from mahppo.algorithms.rllib.modules import CentralCriticModule, HybridActorModule


def tiny_profile(tmp_path):
    pts = [
        {"raw_bits": 1000, "compression_rate": 1, "front_latency_s": 0, "front_power_w": 0, "front_energy_j": 0},
        {"raw_bits": 6400, "compression_rate": 64, "front_latency_s": 0.01, "front_power_w": 2,
         "front_energy_j": 0.02},
        {"raw_bits": 0, "compression_rate": 1, "front_latency_s": 0.03, "front_power_w": 2, "front_energy_j": 0.06},
    ]
    doc = {"models": {"tiny": pts, **_defaults()}}
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(doc))
    return path


def _defaults():
    from importlib import resources

    return json.loads((resources.files("mahppo.marl_env") / "data" / "jetson_nano_profiles.json").read_text())["models"]


def build_actor(env, agent):
    return RLModuleSpec(module_class=HybridActorModule, observation_space=env.observation_space(agent),
                        action_space=env.action_space(agent)).build()


def test_actor_outputs_follow_each_ues_own_points_for_mixed_dnns(tmp_path):
    env = marl_env.parallel_env(ue_specs=["resnet18", "tiny", "vgg11"], num_channels=3,
                                profile_file=str(tiny_profile(tmp_path)))
    obs, _ = env.reset(seed=0)
    x = torch.as_tensor(np.stack([obs["ue_0"]] * 5))
    for agent, n_points in (("ue_0", 6), ("ue_1", 3), ("ue_2", 6)):
        actor = build_actor(env, agent)
        out = actor.forward_exploration({Columns.OBS: x})[Columns.ACTION_DIST_INPUTS]
        assert out.shape == (5, n_points + 3 + 2)
        b, c, p = actor.get_exploration_action_dist_cls().from_logits(out).sample()
        assert b.shape == (5,) and int(b.max()) < n_points and int(c.max()) < 3 and p.shape == (5, 1)


def test_actor_has_the_paper_layer_sizes():
    env = marl_env.parallel_env(num_ues=5)
    actor = build_actor(env, "ue_0")
    sizes = [m.out_features for m in actor.trunk.modules() if isinstance(m, torch.nn.Linear)]
    assert sizes == [256, 128]
    for head, out in ((actor.point_head, 6), (actor.channel_head, 2), (actor.power_head, 2)):
        assert [m.out_features for m in head if isinstance(m, torch.nn.Linear)] == [64, out]
    critic = RLModuleSpec(module_class=CentralCriticModule, observation_space=env.observation_space("ue_0"),
                          action_space=env.action_space("ue_0")).build()
    assert [m.out_features for m in critic.net if isinstance(m, torch.nn.Linear)] == [256, 128, 64, 1]


def test_power_mean_stays_within_zero_and_pmax():
    env = marl_env.parallel_env(num_ues=2, p_max_w=0.5)
    actor = build_actor(env, "ue_0")
    out = actor.dist_inputs(torch.randn(100, 8) * 10)
    mean = out[:, 6 + 2]
    assert torch.all(mean >= 0) and torch.all(mean <= 0.5)


def test_per_branch_clipped_surrogate_matches_a_hand_computed_value():
    adv = torch.tensor([1.0, -2.0])
    # ratios: point (1.5, 0.5), channel (1.0, 1.0), power (0.9, 1.3)
    old = [torch.zeros(2)] * 3
    new = [torch.log(torch.tensor([1.5, 0.5])), torch.zeros(2), torch.log(torch.tensor([0.9, 1.3]))]
    got = clipped_surrogate(new, old, adv, clip_eps=0.2, clip_mode="per_branch")
    # sample 0 (A=1):  min(1.5, 1.2) + min(1, 1) + min(0.9, 0.9)          = 1.2 + 1 + 0.9 = 3.1
    # sample 1 (A=-2): min(-1.0, -1.6) + min(-2, -2) + min(-2.6, -2.4)    = -1.6 - 2 - 2.6 = -6.2
    torch.testing.assert_close(got, torch.tensor([3.1, -6.2]))
    joint = clipped_surrogate(new, old, adv, clip_eps=0.2, clip_mode="joint")
    # joint ratio: 1.35 -> clipped 1.2; 0.65 -> min(-1.3, -1.6) = -1.6
    torch.testing.assert_close(joint, torch.tensor([1.2, -1.6]))


def test_power_log_prob_uses_the_unclipped_gaussian_sample():
    inputs = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.8, math.log(0.1)]])  # 2 points, 2 channels, N(0.8, 0.1)
    lp = HybridDistribution(inputs, 2, 2).branch_logps((torch.tensor([0]), torch.tensor([1]), torch.tensor([[1.3]])))
    expected = torch.distributions.Normal(0.8, 0.1).log_prob(torch.tensor(1.3))  # not the clipped 1.0
    torch.testing.assert_close(lp[2], expected.reshape(1))
    torch.testing.assert_close(lp[0], torch.log(torch.tensor([0.5])))


def test_linear_lr_schedule_decays_to_one_percent_over_the_run():
    from mahppo.algorithms.experiment import Experiment

    run = Experiment().with_flat({"lr": 3e-4, "lr_schedule": "linear", "steps": 50_000})
    assert run.lr_schedule() == [[0, 3e-4], [50_000, pytest.approx(3e-6)]]
    assert run.with_flat(PAPER_LR).lr_schedule() == 1e-4  # the paper: constant


class FixedCritic(torch.nn.Module):
    """V(s) = 10 * s[0]: predictable values."""

    def compute_values(self, batch):
        return 10.0 * batch[Columns.OBS][:, 0]


def test_advantages_come_from_the_one_shared_critic_for_every_actor():
    obs = torch.tensor([[0.1, 0.0], [0.2, 0.0], [0.3, 0.0], [0.3, 0.0]])
    rewards = torch.tensor([-1.0, -2.0, -0.5, 0.0])
    term = torch.tensor([False, False, True, False])
    trunc = torch.zeros(4, dtype=torch.bool)
    actor_batch = {Columns.OBS: obs, Columns.REWARDS: rewards, Columns.TERMINATEDS: term,
                   Columns.TRUNCATEDS: trunc, Columns.LOSS_MASK: torch.tensor([True, True, True, False])}
    batch = {"ue_0": dict(actor_batch), "ue_1": dict(actor_batch)}
    gae = CentralizedGAE(gamma=0.95, lambda_=0.95, critic_id="critic", normalize_advantages=False)
    out = gae(rl_module={"critic": FixedCritic()}, episodes=[], batch=batch)
    v = np.array([1.0, 2.0, 3.0, 3.0])
    # episode of 3 steps ending in a terminal: delta_t = r_t + gamma V(s_t+1) - V(s_t), V after end = 0
    d = [-1 + 0.95 * 2 - 1, -2 + 0.95 * 3 - 2, -0.5 - 3]
    a2 = d[2]
    a1 = d[1] + 0.95 * 0.95 * a2
    a0 = d[0] + 0.95 * 0.95 * a1
    np.testing.assert_allclose(out["ue_0"][Postprocessing.ADVANTAGES][:3].numpy(), [a0, a1, a2], rtol=1e-5)
    torch.testing.assert_close(out["ue_0"][Postprocessing.ADVANTAGES], out["ue_1"][Postprocessing.ADVANTAGES])
    np.testing.assert_allclose(out["critic"][Postprocessing.VALUE_TARGETS][:3].numpy(),
                               np.array([a0, a1, a2]) + v[:3], rtol=1e-5)
    assert torch.equal(out["critic"][Columns.OBS], obs)


def _gae_of_last_step(term: bool, trunc: bool) -> tuple[float, float]:
    """Value target and advantage of the last real step of a 2-step episode (RLlib's batch: the episode's
    rows, then its appended bootstrap row holding the final observation, V = 10 obs[0])."""
    obs = torch.tensor([[0.1, 0.0], [0.2, 0.0], [0.5, 0.0]])  # V = 1, 2, then V(s_T) = 5
    batch = {"ue_0": {Columns.OBS: obs, Columns.REWARDS: torch.tensor([-1.0, -2.0, 0.0]),
                      Columns.TERMINATEDS: torch.tensor([False, term, False]),
                      Columns.TRUNCATEDS: torch.tensor([False, trunc, False]),
                      Columns.LOSS_MASK: torch.tensor([True, True, False])}}
    gae = CentralizedGAE(gamma=0.95, lambda_=0.95, critic_id="critic", normalize_advantages=False)
    out = gae(rl_module={"critic": FixedCritic()}, episodes=[], batch=batch)
    return (float(out["critic"][Postprocessing.VALUE_TARGETS][1]), float(out["ue_0"][Postprocessing.ADVANTAGES][1]))


def test_gae_bootstraps_the_critics_value_at_the_max_frames_cut():
    # RLlib flags an episode cut by max_frames as terminated AND truncated: it is a truncation
    target, adv = _gae_of_last_step(term=True, trunc=True)
    assert target == pytest.approx(-2.0 + 0.95 * 5.0)  # r_T + gamma V(s_T)
    assert adv == pytest.approx(-2.0 + 0.95 * 5.0 - 2.0)


def test_gae_takes_no_value_after_a_true_termination():
    target, adv = _gae_of_last_step(term=True, trunc=False)
    assert target == pytest.approx(-2.0)  # every task done: nothing after
    assert adv == pytest.approx(-2.0 - 2.0)


@pytest.mark.parametrize("changes, message", [
    ({"batch_size": 2048}, "batch_size = 2048 must be <= memory_size = 1024"),
    ({"reuse_time": 0}, "reuse_time = 0"),
    ({"lr": -1e-4}, "lr = -0.0001"),
    ({"clip_mode": "both"}, "clip_mode = 'both'"),
    ({"gamma": 1.5}, "gamma = 1.5"),
    ({"gamma": True}, "gamma = True must be a number"),
    ({"grad_clip": -1.0}, "grad_clip = -1.0 must be a finite number > 0 (or null: no clipping)"),
    ({"grad_clip": float("nan")}, "grad_clip = nan"),
    ({"normalize_advantages": "no"}, "normalize_advantages = 'no' must be true or false"),
    ({"normalize_advantages": 0}, "normalize_advantages = 0 must be true or false"),
    ({"zeta": True}, "zeta = True"),
    ({"lr_schedule": "cosine"}, "lr_schedule = 'cosine' must be one of ('constant', 'linear')"),
    ({"warm_start": "greedy"}, "warm_start = 'greedy' must be one of ('auto', 'none', 'rotate', 'expert')"),
    ({"expert_iterations": -1}, "expert_iterations = -1 must be an integer >= 0"),
    ({"expert_updates": 0}, "expert_updates = 0 must be an integer > 0"),
    ({"warm_start_episodes": 0}, "warm_start_episodes = 0 must be an integer > 0"),
])
def test_validate_rejects_bad_hyperparameters_by_name(changes, message):
    config = MAHPPOConfig().mahppo(**changes)
    with pytest.raises(ValueError) as exc:
        config.validate()
    assert message in str(exc.value)


def test_unknown_hyperparameter_is_rejected():
    with pytest.raises(ValueError, match="unknown MAHPPO hyperparameter 'reuse'"):
        MAHPPOConfig().mahppo(reuse=3)


def test_paper_defaults_map_onto_rllib():
    p = MAHPPOParams(**PAPER_LR)
    cfg = MAHPPOConfig().mahppo(**PAPER_LR)
    assert (p.lr, p.memory_size, p.batch_size, p.reuse_time, p.clip_eps, p.zeta) == (1e-4, 1024, 256, 10, 0.2, 0.001)
    assert cfg.train_batch_size_per_learner == 1024 and cfg.minibatch_size == 256 and cfg.num_epochs == 10
    assert cfg.gamma == 0.95 and cfg.lambda_ == 0.95 and p.updates_per_iteration == 40


def test_fused_actor_forward_matches_each_actor_alone(tmp_path):
    from mahppo.algorithms.acting.policy import TrainedPolicy

    env = marl_env.parallel_env(ue_specs=["resnet18", "tiny", "vgg11", "tiny"], num_channels=3,
                                profile_file=str(tiny_profile(tmp_path)))
    modules = {a: build_actor(env, a) for a in env.possible_agents}
    fused = TrainedPolicy(modules, env=env.config)
    plain = TrainedPolicy(modules, env=env.config)
    plain._fused, plain._fused_agents = [], set()
    states = np.random.default_rng(1).uniform(0, 1, size=(16, 16)).astype(np.float32)
    (bf, cf, pf), (bp, cp, pp) = fused.act_batch(states), plain.act_batch(states)
    assert len(fused._fused) == 2  # (6 points, 3 channels) and (3 points, 3 channels)
    np.testing.assert_array_equal(bf, bp)
    np.testing.assert_array_equal(cf, cp)
    np.testing.assert_allclose(pf, pp, atol=1e-6)
