"""The `mahppo` command: one subcommand per job, gathered from the five packages.

Data flows compression -> profiles -> marl_env -> algorithms -> tune_configs -> serve; each package
contributes its subcommands through a ``register(subparsers)`` function in its ``cli`` module.
"""

from mahppo.runtime import package_version

__version__ = package_version()
