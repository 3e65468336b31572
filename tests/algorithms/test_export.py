"""The weights-only export: modules round-trip exactly, classes only from the allow-list, every file
checked against its digest, and a crafted pickle in place of any file never runs."""

import json
import os
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from mahppo.algorithms.rllib.modules import CentralCriticModule, HybridActorModule
from mahppo.algorithms.runs.export import (
    ARCH_FILE,
    MODULE_KINDS,
    ExportError,
    read_export,
    sha256_file,
    space_from_json,
    space_to_json,
    write_export,
)

OBS = gym.spaces.Box(0.0, 1.0, (8,), np.float32)
ACT = gym.spaces.Tuple([gym.spaces.Discrete(6), gym.spaces.Discrete(2), gym.spaces.Box(0.0, 1.0, (1,), np.float32)])


def actor(seed: int = 0) -> HybridActorModule:
    torch.manual_seed(seed)
    return RLModuleSpec(module_class=HybridActorModule, observation_space=OBS, action_space=ACT,
                        model_config={"trunk": [32, 16], "branch": 8}).build()


class Marker:
    """Unpickling this writes a marker file: the proof that a pickle ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def crafted_pickle(marker) -> bytes:
    return pickle.dumps(Marker(str(marker)))


def test_hybrid_actors_round_trip_exactly(tmp_path):
    mods = {"ue_0": actor(0), "ue_1": actor(1)}
    digests = write_export(mods, tmp_path)
    assert set(digests) == {"ue_0.safetensors", "ue_1.safetensors", ARCH_FILE}
    back = read_export(tmp_path, digests)
    x = torch.rand(5, 8)
    for mid in mods:
        assert type(back[mid]) is HybridActorModule and back[mid].model_config == {"trunk": [32, 16], "branch": 8}
        torch.testing.assert_close(back[mid].dist_inputs(x), mods[mid].dist_inputs(x), rtol=0, atol=0)


def test_stock_ppo_module_round_trips(tmp_path):
    torch.manual_seed(3)
    spec = RLModuleSpec(module_class=MODULE_KINDS["ppo_default"], observation_space=OBS, action_space=ACT,
                        model_config={"fcnet_hiddens": [16, 16], "vf_share_layers": False})
    mod = spec.build()
    back = read_export(tmp_path, write_export({"ue_0": mod}, tmp_path))["ue_0"]
    x = torch.rand(4, 8)
    a = mod.forward_inference({Columns.OBS: x})[Columns.ACTION_DIST_INPUTS]
    b = back.forward_inference({Columns.OBS: x})[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_critic_exports_too(tmp_path):
    critic = RLModuleSpec(module_class=CentralCriticModule, observation_space=OBS, action_space=ACT,
                          learner_only=True, model_config={"hidden": [16, 8]}).build()
    back = read_export(tmp_path, write_export({"critic": critic}, tmp_path))["critic"]
    x = torch.rand(3, 8)
    torch.testing.assert_close(back.compute_values({Columns.OBS: x}), critic.compute_values({Columns.OBS: x}))


def test_a_class_outside_the_allow_list_is_not_exported(tmp_path):
    class Custom(HybridActorModule):
        pass

    mod = RLModuleSpec(module_class=Custom, observation_space=OBS, action_space=ACT,
                       model_config={"trunk": [8], "branch": 4}).build()
    with pytest.raises(ExportError, match="Custom is not in MODULE_KINDS"):
        write_export({"ue_0": mod}, tmp_path)


def test_a_modified_weights_file_is_refused_by_its_digest(tmp_path):
    digests = write_export({"ue_0": actor()}, tmp_path)
    w = tmp_path / "ue_0.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ExportError, match="ue_0.safetensors: SHA-256 differs"):
        read_export(tmp_path, digests)


def test_an_arch_file_naming_another_kind_is_refused_even_with_matching_digests(tmp_path):
    digests = write_export({"ue_0": actor()}, tmp_path)
    arch = json.loads((tmp_path / ARCH_FILE).read_text())
    arch["modules"]["ue_0"]["kind"] = "os.system"
    (tmp_path / ARCH_FILE).write_text(json.dumps(arch))
    digests[ARCH_FILE] = sha256_file(tmp_path / ARCH_FILE)  # an attacker who also rewrites the sidecar
    with pytest.raises(ExportError, match="kind = 'os.system' is not an allowed module kind"):
        read_export(tmp_path, digests)


def test_weights_of_another_shape_are_refused(tmp_path):
    digests = write_export({"ue_0": actor()}, tmp_path)
    arch = json.loads((tmp_path / ARCH_FILE).read_text())
    arch["modules"]["ue_0"]["model_config"]["branch"] = 9
    (tmp_path / ARCH_FILE).write_text(json.dumps(arch))
    digests[ARCH_FILE] = sha256_file(tmp_path / ARCH_FILE)
    with pytest.raises(ExportError, match="has shape"):
        read_export(tmp_path, digests)


@pytest.mark.parametrize("victim", ["ue_0.safetensors", ARCH_FILE])
def test_a_crafted_pickle_in_place_of_an_export_file_never_runs(tmp_path, victim):
    export = tmp_path / "policy"
    digests = write_export({"ue_0": actor()}, export)
    marker = tmp_path / "PWNED"
    (export / victim).write_bytes(crafted_pickle(marker))
    digests[victim] = sha256_file(export / victim)  # even with the digest forged to match
    with pytest.raises(ExportError):
        read_export(export, digests)
    assert not marker.exists()


def test_spaces_round_trip_through_json_with_infinite_bounds():
    inner = gym.spaces.Tuple([gym.spaces.Discrete(4, start=1), gym.spaces.MultiDiscrete([2, 3])])
    space = gym.spaces.Dict({"a": gym.spaces.Box(-np.inf, np.inf, (2, 3), np.float32), "b": inner})
    back = space_from_json(json.loads(json.dumps(space_to_json(space))))
    assert back == space


def test_a_malformed_space_names_where():
    with pytest.raises(ExportError, match=r"modules.ue_0.action_space\[1\]: malformed space"):
        space_from_json({"type": "Tuple", "spaces": [{"type": "Discrete", "n": 2}, {"type": "Box"}]},
                        "modules.ue_0.action_space")


def test_the_shared_actor_and_set_critic_round_trip(tmp_path):
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.rllib.mahppo import build_config

    specs = build_config(Experiment().with_flat({"actor": "shared", "num_ues": 3})).rl_module_spec.rl_module_specs
    torch.manual_seed(0)
    mods = {mid: spec.build() for mid, spec in specs.items()}
    back = read_export(tmp_path, write_export(mods, tmp_path))
    assert {mid: type(m).__name__ for mid, m in back.items()} == {"shared": "SharedActorModule",
                                                                  "critic": "SetCriticModule"}
    x = torch.as_tensor(specs["shared"].observation_space.sample()[None, :])
    torch.testing.assert_close(back["shared"].dist_inputs(x), mods["shared"].dist_inputs(x), rtol=0, atol=0)
    torch.testing.assert_close(back["critic"].compute_values({Columns.OBS: x}),
                               mods["critic"].compute_values({Columns.OBS: x}), rtol=0, atol=0)


def test_an_inflated_architecture_is_refused_before_anything_is_allocated(tmp_path):
    digests = write_export({"ue_0": actor()}, tmp_path)
    arch = json.loads((tmp_path / ARCH_FILE).read_text())
    arch["modules"]["ue_0"]["model_config"]["trunk"] = [1 << 20, 1 << 20]  # 4 TiB of float32 if built
    (tmp_path / ARCH_FILE).write_text(json.dumps(arch))
    digests[ARCH_FILE] = sha256_file(tmp_path / ARCH_FILE)
    with pytest.raises(ExportError, match=r"ue_0.safetensors: tensor .* has shape .*, the architecture .*1048576"):
        read_export(tmp_path, digests)
