"""The vectorised sampler and the lean learner step produce what RLlib's own code produces."""

import copy

import numpy as np
import pytest
import torch
import tree
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import Learner
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.learner.training_data import TrainingData
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator

from mahppo.algorithms.experiment import Experiment
from mahppo.algorithms.rllib.lean_learner import IndexedMiniBatches
from mahppo.algorithms.rllib.learner import MAHPPOTorchLearner
from mahppo.algorithms.rllib.mahppo import build_config
from mahppo.algorithms.rllib.sampler import VectorEnvRunner, fast_path_blockers
from mahppo.marl_env.observations import frame_ids


def _config(*, shared: bool = False, algo: str = "mahppo", num_ues: int = 3, runners: int = 0,
            minibatch_unit: str = "rows"):
    # short episodes (max 7 frames) on 4 copies: done episodes, cut chunks with RLlib's lookback and
    # next-step auto-resets all occur within a few rollouts
    flat = {"num_ues": num_ues, "max_frames": 7, "memory_size": 128, "batch_size": 32, "reuse_time": 3,
            "num_envs_per_env_runner": 4, "num_env_runners": runners, "seed": 5, "algo": algo,
            "minibatch_unit": minibatch_unit}
    if shared:  # the shared actor: one module for every agent, N drawn per episode, DNNs mixed
        flat.update(actor="shared", obs_mode="agent", num_ues_range=(2, 4), num_ues=4,
                    dnn_pool=("resnet18", "vgg11"))
    else:  # the paper's per-UE actors
        flat.update(actor="per-ue")
    return build_config(Experiment().with_flat(flat))


def _same(a, b, what):
    fa, fb = tree.flatten(a), tree.flatten(b)
    assert len(fa) == len(fb), what
    for x, y in zip(fa, fb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, (what, x.dtype, y.dtype, x.shape, y.shape)
        np.testing.assert_array_equal(x, y, err_msg=what)


def _assert_same_episodes(ours, theirs):
    assert len(ours) == len(theirs)
    for x, y in zip(ours, theirs, strict=True):
        assert (len(x), x.env_t_started, x.env_t, x.is_terminated, x.is_truncated) == \
            (len(y), y.env_t_started, y.env_t, y.is_terminated, y.is_truncated)
        assert sorted(x.agent_episodes) == sorted(y.agent_episodes)
        for aid, p in x.agent_episodes.items():
            q = y.agent_episodes[aid]
            assert (p.module_id, p.t_started, p.t, p.is_terminated, p.is_truncated) == \
                (q.module_id, q.t_started, q.t, q.is_terminated, q.is_truncated)
            for name in ("observations", "actions", "rewards", "infos"):
                assert getattr(p, name).lookback == getattr(q, name).lookback, name
                _same(getattr(p, name).data, getattr(q, name).data, f"{aid} {name}")
            assert sorted(p.extra_model_outputs) == sorted(q.extra_model_outputs)
            for key, buf in p.extra_model_outputs.items():  # action_logp, action_dist_inputs, weights_seq_no
                assert buf.lookback == q.extra_model_outputs[key].lookback
                _same(buf.data, q.extra_model_outputs[key].data, f"{aid} {key}")
            assert x.env_t_to_agent_t[aid].data == y.env_t_to_agent_t[aid].data


def _sample_both(cfg, rollouts: int = 6):
    ours, theirs = VectorEnvRunner(config=cfg), MultiAgentEnvRunner(config=cfg)
    ours.module.set_state(theirs.module.get_state())  # fixed policy weights
    out = []
    for r in range(rollouts):
        steps = (12, 40, 8, 8, 8, 80)[r]  # short and long rollouts: whole episodes and cut ones
        torch.manual_seed(100 + r)
        a = ours.sample(num_timesteps=steps)
        torch.manual_seed(100 + r)
        out.append((a, theirs.sample(num_timesteps=steps)))
    return out, ours.get_metrics(), theirs.get_metrics()


@pytest.mark.parametrize("layout", ["one actor per UE", "one shared actor, N drawn per episode"])
def test_vector_sampler_gives_rllibs_episodes_draw_for_draw(layout):
    rollouts, ours_m, theirs_m = _sample_both(_config(shared=layout.startswith("one shared")))
    for ours, theirs in rollouts:
        _assert_same_episodes(ours, theirs)
    kinds = {(e.is_done, e.env_t_started > 0) for ours, _ in rollouts for e in ours}
    assert kinds == {(True, False), (True, True), (False, False), (False, True)}  # every kind of chunk
    for key in ("episode_return_mean", "episode_len_mean", "num_env_steps_sampled", "num_episodes",
                "num_agent_steps_sampled", "num_module_steps_sampled"):
        assert tree.map_structure(lambda s: s.peek(), ours_m[key]) == \
            tree.map_structure(lambda s: s.peek(), theirs_m[key]), key


def test_vector_sampler_gives_rllibs_episodes_on_a_dynamic_cell():
    # arrivals, fading and moving UEs (docs/environment-dynamics.md) with a 5-frame horizon: episodes end
    # terminated at the horizon (the backlog charged), before the 7-frame cut
    dyn = {"arrivals": "poisson", "load": 1.3, "fading": "rayleigh", "mobility": "walk", "horizon_frames": 5}
    cfg = build_config(Experiment().with_flat({"num_ues": 3, "max_frames": 7, "memory_size": 128, "batch_size": 32,
                                               "reuse_time": 3, "num_envs_per_env_runner": 4, "seed": 5,
                                               "actor": "per-ue", "dynamics": dyn}))
    rollouts, _, _ = _sample_both(cfg, rollouts=3)
    for ours, theirs in rollouts:
        _assert_same_episodes(ours, theirs)
    assert any(e.is_terminated for ours, _ in rollouts for e in ours)


def test_vector_sampler_serves_rllibs_stock_ppo_modules_too():
    rollouts, _, _ = _sample_both(_config(algo="ippo", num_ues=2), rollouts=2)
    for ours, theirs in rollouts:
        _assert_same_episodes(ours, theirs)


def test_unsupported_settings_fall_back_to_rllibs_loop_and_say_why():
    cfg = _config()
    assert fast_path_blockers(cfg) == []
    cfg.environment(normalize_actions=True)
    cfg.callbacks(on_episode_step=lambda **kw: None)
    assert fast_path_blockers(cfg) == ["normalize_actions / clip_actions (the env clips power itself)",
                                       "a on_episode_step callback"]
    runner = VectorEnvRunner(config=cfg)
    episodes = runner.sample()
    assert sum(len(e) for e in episodes) >= 12


def test_a_cell_whose_n_is_drawn_per_episode_keeps_the_vector_sampler():
    # RLlib's PettingZoo wrapper knows only the agents of its first (unseeded) reset; ours knows all
    # possible agents, so a first draw of N = 2 of 4 does not push sampling onto RLlib's own loop
    from mahppo.algorithms.rllib.mahppo import RLlibCollabEnv
    from mahppo.marl_env.observations import obs_size

    cfg = _config(shared=True)
    for _ in range(4):
        env = RLlibCollabEnv(cfg.env_config)
        assert env.possible_agents == ["ue_0", "ue_1", "ue_2", "ue_3"]
        assert all(env.get_observation_space(a).shape == (obs_size(),) for a in env.possible_agents)
    runner = VectorEnvRunner(config=cfg)
    assert runner._blockers == []


def test_build_config_picks_the_sampler():
    assert build_config(Experiment()).env_runner_cls is VectorEnvRunner  # the default (shared) actor
    assert build_config(Experiment().with_flat({"actor": "per-ue"})).env_runner_cls is VectorEnvRunner
    assert build_config(Experiment().with_flat({"sampler": "rllib"})).env_runner_cls is None
    with pytest.raises(ValueError, match="sampler = 'fast' must be one of"):
        Experiment().with_flat({"sampler": "fast"}).validate()


class _RLlibStep(MAHPPOTorchLearner):
    """MAHPPO's learner with RLlib's own optimizer set-up, gradient step and minibatch iterator."""

    configure_optimizers_for_module = TorchLearner.configure_optimizers_for_module
    apply_gradients = TorchLearner.apply_gradients
    _create_iterator_if_necessary = Learner._create_iterator_if_necessary


def _learner(cls, cfg, runner):
    learner = cls(config=cfg, module_spec=cfg.get_multi_rl_module_spec(spaces=runner.get_spaces(),
                                                                     inference_only=False))
    learner.build()
    return learner


def test_lean_minibatches_are_rllibs_minibatches():
    cfg = _config()
    runner = VectorEnvRunner(config=cfg)
    learner = _learner(MAHPPOTorchLearner, cfg, runner)
    batch = learner._make_batch_if_necessary(training_data=TrainingData(episodes=runner.sample() + runner.sample()))
    np.random.seed(0)
    theirs = list(MiniBatchCyclicIterator(copy.deepcopy(batch), num_epochs=3, minibatch_size=32,
                                          shuffle_batch_per_epoch=True))
    np.random.seed(0)
    ours = list(IndexedMiniBatches(batch, num_epochs=3, minibatch_size=32, shuffle=True))
    assert len(ours) == len(theirs) >= 3 * len(batch.policy_batches["ue_0"]) // 32
    for a, b in zip(ours, theirs, strict=True):
        for mid, mb in a.policy_batches.items():
            for col, value in mb.items():
                for x, y in zip(tree.flatten(value), tree.flatten(b.policy_batches[mid][col]), strict=True):
                    assert torch.equal(x, y), (mid, col)


@pytest.mark.slow  # learner updates
@pytest.mark.parametrize("unit", ["rows", "frames"])
def test_minibatch_unit_sets_how_many_updates_the_shared_actor_makes(unit):
    # rows (default): 32 rows of the shared actor per minibatch, so it (2-4 UEs' rows per frame) makes N
    # times the updates of a per-UE actor, and the set critic (one row per frame) takes its rows in
    # proportion; frames: each module's rows of 32 frames, K |M| / B updates
    cfg = _config(shared=True, minibatch_unit=unit)
    runner = VectorEnvRunner(config=cfg)
    learner = _learner(MAHPPOTorchLearner, cfg, runner)
    batch = learner._make_batch_if_necessary(training_data=TrainingData(episodes=runner.sample() + runner.sample()))
    steps, rows = batch.env_steps(), {mid: len(b) for mid, b in batch.policy_batches.items()}
    assert set(rows) == {"shared", "critic"} and rows["shared"] >= 2 * steps  # 2-4 UEs per frame
    minibatches = list(learner._create_iterator_if_necessary(
        training_data=TrainingData(batch=batch), num_epochs=3, minibatch_size=32, shuffle_batch_per_epoch=True))
    per_frame = unit == "frames"
    critic = batch.policy_batches["critic"]  # the set critic: every row, its loss one row per frame
    assert int(critic[Columns.LOSS_MASK].sum()) == steps and rows["critic"] == rows["shared"]
    frames = {mid: frame_ids(b[Columns.OBS].numpy()) for mid, b in batch.policy_batches.items()}
    count = len(np.unique(frames["shared"]))  # minibatches of whole frames (the set modules pool each frame)
    size = round(32 * count / (steps if per_frame else rows["shared"]))
    assert abs(len(minibatches) - 3 * count / size) <= 1
    for mb in minibatches:
        got = frame_ids(mb.policy_batches["shared"][Columns.OBS].numpy())
        ids, n = np.unique(got, return_counts=True)
        assert len(ids) <= size
        for i, k in zip(ids, n, strict=True):
            assert k % (frames["shared"] == i).sum() == 0  # a frame comes whole
    seen = torch.cat([mb.policy_batches["shared"][Columns.OBS] for mb in minibatches])[:rows["shared"]]
    assert sorted(frame_ids(seen.numpy())) == sorted(frames["shared"])  # the first pass takes every frame once


@pytest.mark.slow  # learner updates
def test_lean_update_matches_rllibs_update():
    # Step by step: from the lean learner's weights before each of its minibatch steps, RLlib's own step
    # (its Adam loop, NaN checks) on the same minibatch lands on the same weights. Over a whole update
    # the two float32 paths may drift apart after a ReLU flips on a rounding difference (seen on some
    # draws), so the steps are compared one at a time, each from the same weights.
    cfg = _config()
    runner = VectorEnvRunner(config=cfg)
    lean, stock = _learner(MAHPPOTorchLearner, cfg, runner), _learner(_RLlibStep, cfg, runner)
    stock.module.set_state(lean.module.get_state())
    episodes = runner.sample() + runner.sample()
    steps, lean_step = [], lean._update

    def recorded(batch):
        before = copy.deepcopy(lean.module.get_state())
        out = lean_step(batch)
        steps.append((before, batch, copy.deepcopy(lean.module.get_state())))
        return out

    lean._update = recorded
    np.random.seed(1)
    lean.update(episodes=copy.deepcopy(episodes), timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 80},
                num_epochs=3, minibatch_size=32, shuffle_batch_per_epoch=True)
    assert len(steps) >= 3  # 3 passes over the rows, 32 at a time
    moved = 0.0
    for before, batch, after in steps:
        stock.module.set_state(before)
        stock._update(batch)
        theirs = stock.module.get_state()
        for mid in after:
            for name, w in after[mid].items():
                np.testing.assert_allclose(w, theirs[mid][name], rtol=1e-5, atol=1e-6, err_msg=f"{mid} {name}")
                moved = max(moved, float(np.abs(w - before[mid][name]).max()))
    assert moved > 1e-6  # the steps did change the weights


@pytest.mark.slow
def test_default_training_samples_with_the_vector_runner_locally_and_remotely(ray_session, tmp_path):
    from ray.rllib.algorithms.algorithm import Algorithm

    cfg = _config(num_ues=2, runners=1)
    cfg.env_runners(num_cpus_per_env_runner=0)
    algo = cfg.build_algo()
    try:
        kinds = algo.env_runner_group.foreach_env_runner(lambda r: type(r).__name__, local_env_runner=False)
        assert kinds == ["VectorEnvRunner"]
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled"] >= 128
        algo.save_to_path(str(tmp_path / "ckpt"))
    finally:
        algo.stop()
    restored = Algorithm.from_checkpoint(str(tmp_path / "ckpt"))
    try:
        assert restored.config.env_runner_cls is VectorEnvRunner
        assert restored.train()["training_iteration"] == 2
    finally:
        restored.stop()
