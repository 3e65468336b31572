"""Entry point of the ``mahppo`` console script.

Every job is a module of ``mahppo.commands`` (the app layer) with a ``register(subparsers)`` function;
heavy imports (torch, Ray) happen inside the handlers, so ``mahppo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# In data-flow order: compression -> env -> algorithm -> Tune -> Serve, then the demo.
_COMMAND_MODULES = (
    "mahppo.commands.compress",
    "mahppo.commands.evaluate",
    "mahppo.commands.train",
    "mahppo.commands.tune",
    "mahppo.commands.reproduce",
    "mahppo.commands.serve",
    "mahppo.commands.deploy",
    "mahppo.commands.demo",
)


class UsageError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from mahppo import __version__
    from mahppo.runtime.logs import DEFAULT_LEVEL, LEVEL_ENV, LEVELS

    parser = argparse.ArgumentParser(
        prog="mahppo",
        description="Multi-agent collaborative inference at the edge (MAHPPO on Ray).",
    )
    parser.add_argument("--version", action="version", version=f"mahppo {__version__}",
                        help="print the version and exit")
    parser.add_argument("--log-level", default=None, type=str.upper, choices=LEVELS,
                        help="our messages' level, and Ray's, Serve's and MLflow's (at least WARNING unless DEBUG); "
                        f"default ${LEVEL_ENV} or {DEFAULT_LEVEL}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


# Commands whose results should repeat for a given --seed: they restart once with PYTHONHASHSEED=0
# (runtime/hashseed.py) when it is unset.
SEEDED_COMMANDS = ("train", "tune", "reproduce", "demo")


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not a global option or its value)."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and command_of(sys.argv[1:]) in SEEDED_COMMANDS:  # run as a command, not called from Python
        from mahppo.runtime.hashseed import restart_with_fixed_hash_seed

        # before the parser is built: building it imports the env (numba, PettingZoo), which the restart repeats
        restart_with_fixed_hash_seed(["-m", "mahppo", *sys.argv[1:]])
    from mahppo.commands._args import apply_signing_key, json_output
    from mahppo.runtime.logs import configure

    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # our level and Ray's, Serve's, MLflow's; known-harmless messages dropped (runtime/logs.py)
        configure(args.log_level, handler=True)
    except ValueError as exc:  # a bad $MAHPPO_LOG_LEVEL
        parser.error(str(exc))
    try:
        with json_output(getattr(args, "json", False)):  # --json: stdout holds the one JSON document
            apply_signing_key(getattr(args, "signing_key_file", None))  # a bad key file: an error before any work
            return int(args.handler(args) or 0)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        print(f"mahppo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mahppo {args.command}: interrupted", file=sys.stderr)
        return 130
