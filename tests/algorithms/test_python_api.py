"""The Python API without the CLI: MAHPPOConfig from the environment alone, a policy in a PettingZoo loop."""

import numpy as np
import pytest

from mahppo.algorithms import MAHPPOConfig, RLlibCollabEnv, TrainedPolicy, module_setup
from mahppo.algorithms.params import MAHPPOParams
from mahppo.marl_env import EnvConfig, parallel_env


def _validated(config: MAHPPOConfig) -> MAHPPOConfig:
    config.validate()
    return config


def test_config_given_only_the_env_maps_every_agent_to_the_shared_actor_with_the_agent_observation():
    config = _validated(MAHPPOConfig().environment(RLlibCollabEnv, env_config={"num_ues": 3}))
    assert set(config.policies) == {"shared"} and config.policy_mapping_fn("ue_2", None) == "shared"
    assert set(config.rl_module_spec.rl_module_specs) == {"shared", "critic"}
    assert config.env_config["obs_mode"] == "agent" and config.env_config["num_ues"] == 3


def test_config_with_per_ue_actors_builds_one_module_per_ue_on_the_global_state():
    config = _validated(MAHPPOConfig().environment(RLlibCollabEnv, env_config={"num_ues": 3}).mahppo(actor="per-ue"))
    assert set(config.rl_module_spec.rl_module_specs) == {"ue_0", "ue_1", "ue_2", "critic"}
    assert config.policy_mapping_fn("ue_1", None) == "ue_1" and config.env_config["obs_mode"] == "global"


def test_config_refuses_an_observation_the_actor_cannot_take():
    config = MAHPPOConfig().environment(RLlibCollabEnv, env_config={"num_ues": 3, "obs_mode": "global"})
    with pytest.raises(ValueError, match="obs_mode = 'global': actor = 'shared' needs obs_mode = 'agent'"):
        config.validate()


def test_actor_modules_carry_the_env_config_they_take():
    cell = EnvConfig(num_ues=3, obs_mode="agent").validated()
    spec, ids, _ = module_setup(cell)
    actor = spec.rl_module_specs["shared"].build()
    env = parallel_env(**actor.model_config["env"])
    obs, _ = env.reset(seed=0)
    assert ids == ["shared"] and obs["ue_0"].shape == actor.observation_space.shape


def _fresh_policy(cell: EnvConfig, actor: str) -> TrainedPolicy:
    spec, ids, _ = module_setup(cell, MAHPPOParams(actor=actor))
    return TrainedPolicy({m: spec.rl_module_specs[m].build() for m in ids},
                         {"experiment": {"env": cell.to_dict()}})


@pytest.mark.parametrize("actor,obs_mode", [("shared", "agent"), ("per-ue", "global")])
def test_act_dict_returns_a_pettingzoo_action_dict_that_steps_the_env(actor, obs_mode):
    cell = EnvConfig(num_ues=3, obs_mode=obs_mode, max_frames=5).validated()
    policy = _fresh_policy(cell, actor)
    env = parallel_env(**cell.to_dict())
    policy.reset(env)  # the env itself
    policy.reset(env.view())  # or its view
    obs, _ = env.reset(seed=0)
    actions = policy.act_dict(obs)
    assert set(actions) == {"ue_0", "ue_1", "ue_2"}
    assert all(env.action_space(a).contains(actions[a]) for a in actions)
    points, channels, powers = policy.act(env)
    assert [actions[a][0] for a in env.agents] == points.tolist()
    assert np.allclose([actions[a][2][0] for a in env.agents], powers)
    env.step(actions)


def test_act_dict_names_the_observation_it_takes_when_given_another():
    policy = _fresh_policy(EnvConfig(num_ues=3, obs_mode="agent").validated(), "shared")
    obs, _ = parallel_env(num_ues=3, obs_mode="global").reset(seed=0)
    with pytest.raises(ValueError, match="agent-centric observations of .* numbers"):
        policy.act_dict(obs)
