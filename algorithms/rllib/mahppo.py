"""MAHPPO (Sec. 5, Alg. 1) as a custom RLlib algorithm on the new API stack.

``MAHPPOConfig`` subclasses RLlib's ``PPOConfig`` and adds one builder method, ``.mahppo(...)``,
taking the paper's hyperparameters by their names (``MAHPPOParams``). Alg. 1 maps onto RLlib:

- memory ``M`` of ``memory_size`` transitions  -> ``train_batch_size_per_learner`` (env steps)
- ``batch_size`` samples per update             -> ``minibatch_size`` (rows per module, or with
  ``minibatch_unit="frames"`` every module's rows of B env steps: ``learner.py``)
- sample reuse time ``K``                       -> ``num_epochs``: ``K * |M| / B`` minibatch updates
- ``clip_eps`` (Eq. 19), ``zeta`` (Eq. 20), ``gamma`` and ``lam`` (Eqs. 15, 18)
"""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

from mahppo.algorithms.params import ACTOR_LR, CLIP_MODES, MAHPPOParams  # noqa: F401 (re-exported)
from mahppo.algorithms.rllib.learner import MAHPPOTorchLearner
from mahppo.algorithms.rllib.modules import (
    CRITIC_ID,
    SHARED_ID,
    CentralCriticModule,
    HybridActorModule,
    SetCriticModule,
    SharedActorModule,
)
from mahppo.algorithms.rllib.sampler import use_sampler
from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.observations import MAX_POINTS
from mahppo.marl_env.parallel import CollabInferenceEnv

if TYPE_CHECKING:
    from mahppo.algorithms.experiment import Experiment


class RLlibCollabEnv(ParallelPettingZooEnv):
    """The ``marl_env`` PettingZoo env through RLlib's PettingZoo wrapper, built from ``EnvConfig.to_dict()``."""

    def __init__(self, config: dict | None = None):
        super().__init__(CollabInferenceEnv(**dict(config or {})))
        # RLlib's wrapper takes the agents (and their spaces) of its first reset; a cell whose N is
        # drawn per episode may later have more: every possible agent is known from the start.
        possible = list(self.par_env.possible_agents)
        self._agent_ids = set(possible)
        self.possible_agents = possible
        self.observation_spaces = {a: self.par_env.observation_space(a) for a in possible}
        self.action_spaces = {a: self.par_env.action_space(a) for a in possible}
        self.observation_space = gym.spaces.Dict(self.observation_spaces)
        self.action_space = gym.spaces.Dict(self.action_spaces)


class MAHPPOConfig(PPOConfig):
    """``PPOConfig`` plus ``.mahppo(...)``; the learner is ``MAHPPOTorchLearner``."""

    def __init__(self, algo_class: type | None = None):
        super().__init__(algo_class=algo_class or MAHPPO)
        self.mahppo_params = MAHPPOParams()
        self.mahppo()
        # the simulator clips the power itself (marl_env.core.clip_power); sample in the driver (2-core default)
        self.environment(normalize_actions=False, clip_actions=False)
        self.env_runners(num_env_runners=0)

    def get_default_learner_class(self):
        return MAHPPOTorchLearner

    def mahppo(self, **changes: Any) -> MAHPPOConfig:
        """Set the paper's hyperparameters (see ``MAHPPOParams``); unknown names are rejected.

        The learning rate (``lr``, ``lr_schedule``: its default depends on the actor and the cell, and a linear
        schedule on the run's env steps) is RLlib's ``lr``, set by ``build_config`` from
        ``Experiment.lr_schedule()``."""
        known = {f.name for f in fields(MAHPPOParams)}
        for key in changes:
            if key not in known:
                raise ValueError(f"unknown MAHPPO hyperparameter {key!r} (known: {', '.join(sorted(known))})")
        p = replace(self.mahppo_params, **changes)
        self.mahppo_params = p
        self.training(**ppo_training(p))
        self.learner_config_dict = {**(self.learner_config_dict or {}), "clip_mode": p.clip_mode,
                                    "normalize_advantages": p.normalize_advantages,
                                    "minibatch_unit": p.minibatch_unit, "frame_ues": p.frame_ues}
        return self

    def validate(self) -> None:
        self.mahppo_params.validate()
        self._derive_modules()
        super().validate()

    def _derive_modules(self) -> None:
        """``.environment(RLlibCollabEnv, env_config=...)`` alone: the modules, module ids and the agent -> module
        mapping follow from the env config and ``mahppo_params.actor`` (``module_setup``, as ``build_config``);
        the learning rate, unless set, is ``lr`` or the actor's constant default (``ACTOR_LR``)."""
        if self._rl_module_spec is not None or self.env is not RLlibCollabEnv or self.is_multi_agent:
            return
        p = self.mahppo_params
        env_config = env_config_for(p.actor, self.env_config)
        spec, modules, mapping = module_setup(env_config, p)
        self.environment(env_config=env_config.to_dict())
        self.rl_module(rl_module_spec=spec)
        self.multi_agent(policies=modules, policy_mapping_fn=mapping)
        if self.lr == PPOConfig().lr:
            self.training(lr=p.lr if p.lr is not None else ACTOR_LR[p.actor])


def ppo_training(p: MAHPPOParams) -> dict[str, Any]:
    """The paper's hyperparameters as ``PPOConfig.training`` arguments (the mapping above), but the learning
    rate; MAHPPO's and the IPPO ablation's."""
    return {"train_batch_size_per_learner": p.memory_size, "minibatch_size": p.batch_size, "num_epochs": p.reuse_time,
            "clip_param": p.clip_eps, "entropy_coeff": p.zeta, "gamma": p.gamma, "lambda_": p.lam,
            "use_kl_loss": False, "grad_clip": p.grad_clip, "grad_clip_by": "global_norm"}


class MAHPPO(PPO):
    """PPO's training step with MAHPPO's modules and learner (Alg. 1)."""

    @classmethod
    def get_default_config(cls) -> MAHPPOConfig:
        return MAHPPOConfig()


def env_spaces(env_config: EnvConfig):
    env = CollabInferenceEnv(env_config)
    agents = list(env.possible_agents)
    return env, agents, env.observation_space(agents[0]), {a: env.action_space(a) for a in agents}


def module_setup(env_config: EnvConfig, params: MAHPPOParams | None = None, algo: str = "mahppo"):
    """The modules and the agent -> module mapping for ``env_config``: ``(MultiRLModuleSpec, module ids, mapping)``.

    ``algo = "mahppo"`` with ``params.actor = "shared"``: one ``SharedActorModule`` (id ``"shared"``, every
    agent maps to it) and the learner-only ``SetCriticModule`` (id ``"critic"``); with ``"per-ue"``: one
    ``HybridActorModule`` per UE (ids ``"ue_0"``, ``"ue_1"``, ...) and the ``CentralCriticModule``
    (Sec. 5.1, Fig. 3). ``algo = "ippo"``: RLlib's stock PPO modules, one per UE (the ablation). Used by
    ``build_config`` and by ``MAHPPOConfig`` when only the environment is given. Each actor's
    ``model_config["env"]`` is ``env_config``: ``parallel_env(**model_config["env"])`` makes its observations.
    """
    params = params or MAHPPOParams()
    _, agents, obs_space, act_spaces = env_spaces(env_config)
    env = {"env": env_config.to_dict()}
    if algo == "mahppo" and params.actor == "shared":
        space = shared_action_space(env_config)
        sizes = {"embed": 128}
        spec = MultiRLModuleSpec(rl_module_specs={
            SHARED_ID: RLModuleSpec(module_class=SharedActorModule, observation_space=obs_space, action_space=space,
                                    model_config={**sizes, **env, "trunk": [256, 128], "branch": 64,
                                                  "token_freqs": 8}),
            CRITIC_ID: RLModuleSpec(module_class=SetCriticModule, observation_space=obs_space, action_space=space,
                                    learner_only=True, model_config={**sizes, "hidden": [256, 128, 64]}),
        })
        return spec, [SHARED_ID], _every_agent_is_shared
    if algo == "mahppo":
        specs: dict[str, RLModuleSpec] = {
            a: RLModuleSpec(module_class=HybridActorModule, observation_space=obs_space,
                            action_space=act_spaces[a], model_config={**env, "trunk": [256, 128], "branch": 64})
            for a in agents
        }
        specs[CRITIC_ID] = RLModuleSpec(module_class=CentralCriticModule, observation_space=obs_space,
                                        action_space=act_spaces[agents[0]], learner_only=True,
                                        model_config={"hidden": [256, 128, 64]})
        return MultiRLModuleSpec(rl_module_specs=specs), list(agents), _agent_is_module
    return MultiRLModuleSpec(rl_module_specs={
        a: RLModuleSpec(observation_space=obs_space, action_space=act_spaces[a],
                        model_config={"fcnet_hiddens": [256, 128, 64], "vf_share_layers": False})
        for a in agents}), list(agents), _agent_is_module


def env_config_for(actor: str, env_config: dict | None) -> EnvConfig:
    """The ``EnvConfig`` of an RLlib ``env_config`` dict for ``actor``: the shared actor takes the agent-centric
    observation, the per-UE actors the global state (unset ``obs_mode`` follows the actor; a contradicting one
    raises ``ValueError`` naming it)."""
    data = dict(env_config or {})
    wanted = "agent" if actor == "shared" else "global"
    data.setdefault("obs_mode", wanted)
    if data["obs_mode"] != wanted:
        raise ValueError(f"env_config obs_mode = {data['obs_mode']!r}: actor = {actor!r} needs obs_mode = {wanted!r}")
    return EnvConfig.from_dict(data)


def build_config(experiment: Experiment) -> PPOConfig:
    """The RLlib config that trains ``experiment`` on ``marl_env``.

    ``run.algo = "mahppo"``: hybrid actors + one centralized critic. ``"ippo"``: RLlib's stock PPO
    modules, one independent value function per UE (the ablation).
    """
    env_config, params, run = experiment.env, experiment.algo, experiment.run
    if run.algo == "mahppo":
        config: PPOConfig = MAHPPOConfig().mahppo(**asdict(params))
    else:
        config = PPOConfig().training(**ppo_training(params))
    spec, modules, mapping = module_setup(env_config, params, run.algo)
    config.rl_module(rl_module_spec=spec)
    # The sampled power goes to the env unchanged (and unclipped into the learner's log-probs); only the
    # simulator clips it (marl_env.core.clip_power), so RLlib's per-step clipping connector is skipped.
    config.environment(RLlibCollabEnv, env_config=env_config.to_dict(), normalize_actions=False,
                       clip_actions=False)
    config.multi_agent(policies=modules, policy_mapping_fn=mapping)
    config.env_runners(num_env_runners=run.num_env_runners, num_envs_per_env_runner=run.num_envs_per_env_runner,
                       rollout_fragment_length="auto", num_cpus_per_env_runner=1)
    use_sampler(config, run.sampler)  # "vector": algorithms/rllib/sampler.py; "rllib": RLlib's own loop
    config.training(lr=experiment.lr_schedule())
    config.learners(num_learners=run.num_learners, num_gpus_per_learner=run.num_gpus_per_learner)
    config.debugging(seed=run.seed)
    config.reporting(metrics_num_episodes_for_smoothing=20)
    return config


def _agent_is_module(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    return agent_id


def _every_agent_is_shared(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    return SHARED_ID


def shared_action_space(env_config: EnvConfig) -> gym.spaces.Tuple:
    """The shared actor's action space: ``MAX_POINTS`` point choices (masked per UE), C channels, power."""
    return gym.spaces.Tuple((gym.spaces.Discrete(MAX_POINTS), gym.spaces.Discrete(env_config.num_channels),
                             gym.spaces.Box(0.0, env_config.p_max_w, shape=(1,), dtype=np.float32)))
