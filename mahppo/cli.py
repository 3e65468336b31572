"""Entry point of the ``mahppo`` console script.

Every job is a module of ``mahppo.commands`` (the app layer) with a ``register(subparsers)`` function;
heavy imports (torch, Ray) happen inside the handlers, so ``mahppo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# In data-flow order: compression -> env -> algorithm -> Tune -> Serve, then the demo.
_COMMAND_MODULES = (
    "mahppo.commands.compress",
    "mahppo.commands.evaluate",
    "mahppo.commands.train",
    "mahppo.commands.tune",
    "mahppo.commands.serve",
    "mahppo.commands.demo",
)


class UsageError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from mahppo import __version__

    parser = argparse.ArgumentParser(
        prog="mahppo",
        description="Multi-agent collaborative inference at the edge (MAHPPO on Ray).",
    )
    parser.add_argument("--version", action="version", version=f"mahppo {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


# Commands whose results should repeat for a given --seed. RLlib batches an episode's agents in the order of
# a Python set of their ids, which follows the process's string-hash seed, so an unset PYTHONHASHSEED makes
# which random draw goes to which UE change from process to process (README, "Wall time, now"). These
# commands restart themselves once with PYTHONHASHSEED=0 (Ray workers started by this process inherit it);
# set PYTHONHASHSEED yourself (e.g. to "random") to opt out.
SEEDED_COMMANDS = ("train", "tune", "demo")


def _restart_with_fixed_hash_seed() -> None:
    """Replace this process by the same command with ``PYTHONHASHSEED=0`` (same PID, same arguments)."""
    os.environ["PYTHONHASHSEED"] = "0"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "mahppo", *sys.argv[1:]])


def main(argv: Sequence[str] | None = None) -> int:
    from mahppo import quiet
    from mahppo.commands._args import json_output

    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and args.command in SEEDED_COMMANDS and "PYTHONHASHSEED" not in os.environ:
        _restart_with_fixed_hash_seed()
    quiet.install()  # known-harmless Ray/RLlib/MLflow messages (listed in mahppo/quiet.py)
    try:
        with json_output(getattr(args, "json", False)):  # --json: stdout holds the one JSON document
            return int(args.handler(args) or 0)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        print(f"mahppo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mahppo {args.command}: interrupted", file=sys.stderr)
        return 130
