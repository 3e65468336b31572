"""Multi-agent collaborative inference environment (PettingZoo), baselines and metrics.

PettingZoo's conventions (``marl_env.creators``): ``parallel_env(...)`` (the native ``ParallelEnv``, explicit
keywords), ``raw_env`` (the AEC environment class) and ``env(...)`` (``raw_env`` in PettingZoo's
order-enforcing wrapper).

>>> from mahppo.marl_env import env, parallel_env
>>> par = parallel_env(num_ues=3, scenario="test")
>>> obs, infos = par.reset(seed=0)
>>> aec = env(num_ues=3)
>>> aec.reset(seed=0)
"""

from __future__ import annotations

from mahppo.marl_env.config import EnvConfig, UESpec
from mahppo.marl_env.creators import env, parallel_env, raw_env
from mahppo.marl_env.parallel import CollabInferenceEnv
from mahppo.marl_env.profiles import DNNProfile, default_profiles, load_profile_file

__all__ = [
    "CollabInferenceEnv",
    "DNNProfile",
    "EnvConfig",
    "UESpec",
    "default_profiles",
    "env",
    "load_profile_file",
    "parallel_env",
    "raw_env",
]
