"""Multi-agent collaborative inference environment (PettingZoo), baselines and metrics.

>>> import marl_env
>>> env = marl_env.parallel_env(num_ues=3, scenario="test")
>>> obs, infos = env.reset(seed=0)
"""

from mahppo.marl_env.config import EnvConfig, UESpec
from mahppo.marl_env.parallel import CollabInferenceEnv, parallel_env
from mahppo.marl_env.profiles import DNNProfile, default_profiles, load_profile_file

__all__ = [
    "CollabInferenceEnv",
    "DNNProfile",
    "EnvConfig",
    "UESpec",
    "default_profiles",
    "load_profile_file",
    "parallel_env",
]
