"""The `mahppo` command: one subcommand per job, gathered from the five packages.

Data flows compression -> profiles -> marl_env -> algorithms -> tune_configs -> serve; each package
contributes its subcommands through a ``register(subparsers)`` function in its ``cli`` module.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mahppo")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
