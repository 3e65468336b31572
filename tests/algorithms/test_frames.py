"""The set modules' learner works per frame: whole-frame minibatches, one pooled summary per frame."""

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

import mahppo.marl_env as marl_env
from mahppo.algorithms.experiment import Experiment
from mahppo.algorithms.rllib.lean_learner import IndexedMiniBatches
from mahppo.algorithms.rllib.mahppo import RLlibCollabEnv, build_config
from mahppo.algorithms.rllib.modules import CRITIC_ID, SHARED_ID
from mahppo.marl_env.observations import frame_ids


def _frames(sizes, seed=0):
    """Rows of several frames of cells of the given sizes, interleaved (as a shuffled batch is)."""
    rng = np.random.default_rng(seed)
    blocks = []
    for i, n in enumerate(sizes):
        env = marl_env.parallel_env(num_ues=n, obs_mode="agent")
        env.reset(seed=seed + i)
        for _ in range(2):
            env.step_arrays(rng.integers(0, 6, n), rng.integers(0, 2, n), rng.uniform(0.1, 1, n))
        blocks.append(env.observation_matrix())
    obs = np.concatenate(blocks)
    return obs[rng.permutation(len(obs))]


@pytest.fixture(scope="module")
def learner():
    exp = Experiment().with_flat({"actor": "shared", "num_ues": 3, "steps": 1024})
    cfg = build_config(exp)
    lrn = cfg.build_learner(env=RLlibCollabEnv(cfg.env_config))
    lrn.build()
    return lrn


def test_the_per_frame_loss_equals_the_loss_of_each_row_computed_on_its_own_frame(learner):
    obs = torch.as_tensor(_frames([3, 5, 1, 4]))
    module = learner.module[SHARED_ID]
    rng = np.random.default_rng(1)
    r = len(obs)
    with torch.no_grad():
        old = module.dist_inputs(obs) + torch.as_tensor(rng.normal(0, 0.1, (r, module.head.width)), dtype=torch.float32)
    actions = module.head.dist(old).sample()
    batch = {Columns.OBS: obs, Columns.ACTIONS: actions, Columns.ACTION_DIST_INPUTS: old,
             Postprocessing.ADVANTAGES: torch.as_tensor(rng.normal(size=r), dtype=torch.float32)}
    per_frame = module.dist_inputs(obs)  # every frame pooled once
    ids = frame_ids(obs)
    per_row = torch.stack([module.dist_inputs(obs[ids == ids[i]])[int((ids[:i] == ids[i]).sum())]
                           for i in range(r)])  # each row on its own frame's rows alone
    loss = [learner.compute_loss_for_module(module_id=SHARED_ID, config=learner.config, batch=batch,
                                            fwd_out={Columns.ACTION_DIST_INPUTS: x}) for x in (per_frame, per_row)]
    assert float(loss[0].detach()) == pytest.approx(float(loss[1].detach()), abs=1e-5)
    critic = learner.module[CRITIC_ID]
    values = critic.compute_values({Columns.OBS: obs})
    alone = torch.stack([critic.compute_values({Columns.OBS: obs[ids == ids[i]]})[0] for i in range(r)])
    torch.testing.assert_close(values, alone, rtol=1e-5, atol=1e-5)


def test_minibatches_of_a_set_module_hold_whole_frames():
    obs = torch.as_tensor(_frames([3, 5, 2, 4, 3, 6], seed=2))
    rows = {Columns.OBS: obs, "row": torch.arange(len(obs))}
    batch = MultiAgentBatch({SHARED_ID: SampleBatch(rows)}, env_steps=6)
    it = IndexedMiniBatches(batch, num_epochs=3, minibatch_size=2, shuffle=True, per_env_step=True,
                            framed={SHARED_ID: 0})
    ids = frame_ids(obs.numpy())
    size = {i: int((ids == i).sum()) for i in set(ids.tolist())}
    seen = 0
    for mb in it:
        got = frame_ids(mb.policy_batches[SHARED_ID][Columns.OBS].numpy())
        for i in set(got.tolist()):
            assert (got == i).sum() % size[i] == 0  # a frame comes whole (twice at a pass boundary)
        seen += 1
    assert seen == 9  # 3 passes over 6 frames, 2 frames per minibatch


def test_a_frame_ues_sample_takes_that_many_ues_of_each_frame_and_their_rows_loss(learner):
    from mahppo.algorithms.rllib.modules import LOSS_ROWS

    obs = torch.as_tensor(_frames([6, 2, 5], seed=3))
    rows = {Columns.OBS: obs, "row": torch.arange(len(obs))}
    batch = MultiAgentBatch({SHARED_ID: SampleBatch(rows)}, env_steps=3)
    it = IndexedMiniBatches(batch, num_epochs=1, minibatch_size=3, shuffle=False, per_env_step=True,
                            framed={SHARED_ID: 3})
    mb = next(iter(it)).policy_batches[SHARED_ID]
    picked = frame_ids(mb[Columns.OBS][mb[LOSS_ROWS]].numpy())
    assert sorted(np.unique(picked, return_counts=True)[1].tolist()) == [2, 3, 3]  # at most 3 per frame
    module = learner.module[SHARED_ID]
    full = module.dist_inputs(mb[Columns.OBS])
    some = module._forward_train({Columns.OBS: mb[Columns.OBS], LOSS_ROWS: mb[LOSS_ROWS]})[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(some, full[mb[LOSS_ROWS]], rtol=1e-5, atol=1e-5)
