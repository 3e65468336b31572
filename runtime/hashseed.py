"""One string-hash seed for every training process, so that a seed gives the same run twice.

RLlib batches an episode's agents in the order of a Python set of their ids, which follows the process's
string-hash seed; with an unset ``PYTHONHASHSEED`` which random draw goes to which UE changes from process
to process (docs/training.md, "Reproducible runs"). Commands and benchmarks that train call
``restart_with_fixed_hash_seed`` first: it restarts the process once with ``PYTHONHASHSEED=0`` (Ray
workers started by it inherit the variable). Set ``PYTHONHASHSEED`` yourself (e.g. to ``random``) to opt out.
"""

from __future__ import annotations

import os
import sys


def restart_with_fixed_hash_seed(argv: list[str]) -> None:
    """If ``PYTHONHASHSEED`` is unset: set it to 0 and replace this process by ``python *argv`` (the same PID
    and arguments). Otherwise return at once."""
    if "PYTHONHASHSEED" in os.environ:
        return
    os.environ["PYTHONHASHSEED"] = "0"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *argv])
