"""Checkpoints of a real RLlib MAHPPO run (the session's tiny training run): saved with a verified manifest,
recorded, pruned only after a newer one verifies, found from the record, and refused or skipped when
incomplete; acting reads the weights-only export and never a pickle. (Resuming from a truncated newest
checkpoint, a deleted module folder or missing sidecars: ``test_run_hygiene.py``.)"""

import json
import shutil

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from test_export import crafted_pickle

from mahppo.algorithms.acting.policy import live_policy, load_policy
from mahppo.algorithms.experiment import Experiment
from mahppo.algorithms.rllib.mahppo import build_config
from mahppo.algorithms.runs import checkpoints as ck

pytestmark = pytest.mark.slow


def meta(experiment: Experiment, iteration: int) -> dict:
    return {"policy_id": f"test-it{iteration}", "iteration": iteration, "env_steps": 128 * iteration,
            "experiment": experiment.to_dict()}


@pytest.fixture(scope="module")
def run(trained_run):
    """The session's run (N = 2, per-UE actors): checkpoints at iterations 1-4, the first pruned (3 kept).
    Read only."""
    return trained_run[0]


@pytest.fixture(scope="module")
def experiment(trained_run):
    return trained_run[1]


@pytest.fixture(scope="module")
def algo(ray_session, run, experiment):
    """The run's algorithm, restored from its newest checkpoint (iteration 4)."""
    a = build_config(experiment).build_algo()
    ck.restore(a, run)
    yield a
    a.stop()


def test_save_records_verified_checkpoints_and_keeps_the_newest_three(run):
    record = ck.read_record(run)
    assert [e["name"] for e in record] == ["iter_000002", "iter_000003", "iter_000004"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter_000002", "iter_000003", "iter_000004"]
    side = ck.verify(run / "checkpoints" / "iter_000004", for_resume=True)
    assert side["modules"] == ["critic", "ue_0", "ue_1"] and side["iteration"] == 4
    assert set(side["export"]["sha256"]) == {"arch.json", "ue_0.safetensors", "ue_1.safetensors"}  # no critic
    assert "learner_group/learner/rl_module/ue_1/module_state.pkl" in side["files"]


def test_the_newest_comes_from_the_record_not_from_directory_names(copy):
    shutil.copytree(copy / "checkpoints" / "iter_000003", copy / "checkpoints" / "iter_999999")
    found, _ = ck.latest(copy, for_resume=True)
    assert found.name == "iter_000004"
    assert ck.find_for_acting(copy).name == "iter_000004"


def test_acting_modules_come_from_the_export_and_act_like_the_live_ones(algo, run, experiment):
    ckpt = run / "checkpoints" / "iter_000004"
    modules, side = ck.load_acting_modules(ckpt)
    assert sorted(modules) == ["ue_0", "ue_1"] and side["iteration"] == 4
    x = torch.rand(16, 8)
    for mid, m in modules.items():  # the fixture's algo still holds iteration 4's weights
        torch.testing.assert_close(m.forward_inference({Columns.OBS: x})[Columns.ACTION_DIST_INPUTS],
                                   algo.get_module(mid).forward_inference({Columns.OBS: x})[Columns.ACTION_DIST_INPUTS])
    states = np.random.default_rng(0).uniform(0, 1, (8, 8)).astype(np.float32)
    for a, b in zip(load_policy(run).act_batch(states), live_policy(algo, experiment).act_batch(states),
                    strict=True):
        np.testing.assert_allclose(a, b)


def test_a_missing_record_beside_checkpoints_refuses_instead_of_restarting(copy):
    (copy / ck.RECORD_FILE).unlink()
    with pytest.raises(ck.CheckpointError, match="checkpoints.json: missing, but .* is not empty"):
        ck.latest(copy, for_resume=True)


def test_a_garbage_record_is_one_line_naming_it(copy):
    (copy / ck.RECORD_FILE).write_text("{not json")
    with pytest.raises(ck.CheckpointError, match="checkpoints.json: not a valid checkpoint record"):
        ck.find_for_acting(copy)
    (copy / ck.RECORD_FILE).write_text(json.dumps({"checkpoints": [{"name": "../../etc", "iteration": 1}]}))
    with pytest.raises(ck.CheckpointError, match=r"checkpoints\[0\].name = '../../etc'"):
        ck.read_record(copy)


def test_a_save_that_does_not_verify_is_not_recorded_and_prunes_nothing(algo, experiment, copy, monkeypatch):
    real = algo.save_to_path

    def save_without_learner_state(path, **kw):
        real(path, **kw)
        (ck.Path(path) / "learner_group" / "learner" / "state.pkl").unlink()

    monkeypatch.setattr(algo, "save_to_path", save_without_learner_state)
    with pytest.raises(ck.CheckpointError, match="learner/state.pkl: not in the checkpoint's manifest"):
        ck.save(algo, copy, meta(experiment, 5))
    assert [e["name"] for e in ck.read_record(copy)] == ["iter_000002", "iter_000003", "iter_000004"]
    assert (copy / "checkpoints" / "iter_000002").is_dir()


def test_restore_refuses_a_checkpoint_with_other_modules(experiment, copy):
    other = build_config(experiment.with_flat({"num_ues": 3})).build_algo()
    try:
        with pytest.raises(ck.CheckpointError, match=r"modules \['critic', 'ue_0', 'ue_1'\], but this run builds "
                                                     r"\['critic', 'ue_0', 'ue_1', 'ue_2'\]"):
            ck.restore(other, copy)
    finally:
        other.stop()


def test_restore_after_a_fallback_drops_the_skipped_newer_entry(algo, experiment, copy):
    (copy / "checkpoints" / "iter_000004" / "algorithm_state.pkl").write_bytes(b"")
    side = ck.restore(algo, copy, report=lambda m: None)
    assert side["iteration"] == 3
    assert [e["name"] for e in ck.read_record(copy)] == ["iter_000002", "iter_000003"]
    ck.save(algo, copy, meta(experiment, 4))  # the run goes on and replaces the broken one
    assert ck.latest(copy, for_resume=True)[0].name == "iter_000004"


def test_a_crafted_pickle_in_any_file_of_a_checkpoint_never_runs_when_acting(run, tmp_path):
    src = run / "checkpoints" / "iter_000004"
    files = sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file())
    assert len(files) > 25
    marker = tmp_path / "PWNED"
    for rel in files:
        dst = tmp_path / "victim"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
        (dst / rel).write_bytes(crafted_pickle(marker))
        try:
            load_policy(dst)
        except (ValueError, FileNotFoundError):  # the export's digest, the sidecar's JSON: refused as data
            pass
        assert not marker.exists(), f"unpickled {rel}"


def test_copy_for_acting_holds_no_pickle_and_loads(run, tmp_path):
    dest = ck.copy_for_acting(run / "checkpoints" / "iter_000004", tmp_path / "model")
    assert not [p for p in dest.rglob("*.pkl")]
    assert load_policy(dest).agents == ["ue_0", "ue_1"]


def test_a_shared_actor_checkpoint_exports_only_the_actor_and_acts_like_the_live_one(ray_session, experiment,
                                                                                   tmp_path):
    shared = experiment.with_flat({"actor": "shared"})
    algo = build_config(shared).build_algo()
    try:
        ck.save(algo, tmp_path, meta(shared, 1))
        side = ck.verify(tmp_path / "checkpoints" / "iter_000001", for_resume=True)
        assert side["modules"] == ["critic", "shared"] and set(side["export"]["sha256"]) == {"arch.json",
                                                                                           "shared.safetensors"}
        loaded, live = load_policy(tmp_path), live_policy(algo, shared)
        obs = np.stack([algo.get_module("shared").observation_space.sample() for _ in range(6)])
        for a, b in zip(loaded.act_batch(obs), live.act_batch(obs), strict=True):
            np.testing.assert_allclose(a, b)
    finally:
        algo.stop()
