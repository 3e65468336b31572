"""``mahppo deploy CONFIG`` and ``mahppo status``: Ray's ``serve deploy`` / ``serve status`` against a running
cluster (``ray start --head``), with its token authentication handled as ``--address`` does elsewhere
(``runtime/cluster.py``): a token in ``~/.ray/auth_token`` (or ``$RAY_AUTH_TOKEN[_PATH]``) is used without
setting ``RAY_AUTH_MODE``."""

from __future__ import annotations

import argparse
import os

DEFAULT_DASHBOARD = "http://127.0.0.1:8265"


def _serve_cli(argv: list[str]) -> int:
    from mahppo.runtime.cluster import enable_token_auth_if_available

    enable_token_auth_if_available()  # before Ray reads its config
    from ray.serve.scripts import cli

    cli.main(args=argv, prog_name="serve", standalone_mode=False)
    return 0


def _address(args: argparse.Namespace) -> str:
    return args.address or os.environ.get("RAY_DASHBOARD_ADDRESS") or DEFAULT_DASHBOARD


def _cmd_deploy(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml

    try:  # a one-line error for a missing or broken file, before Ray's
        yaml.safe_load(Path(args.config).read_text())
    except OSError as exc:
        raise FileNotFoundError(f"{args.config}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{args.config}: not YAML ({exc})") from None
    return _serve_cli(["deploy", args.config, "--address", _address(args)])


def _cmd_status(args: argparse.Namespace) -> int:
    return _serve_cli(["status", "--address", _address(args), *(["--name", args.name] if args.name else [])])


def register(sub: argparse._SubParsersAction) -> None:
    help_address = f"the head's dashboard (default $RAY_DASHBOARD_ADDRESS or {DEFAULT_DASHBOARD})"
    p = sub.add_parser("deploy", help="serve deploy a Serve config (serve/config.yaml) to a running Ray cluster",
                       description=__doc__)
    p.add_argument("config", help="a Serve config file (serve/config.yaml; absolute checkpoint paths)")
    p.add_argument("--address", "-a", default=None, help=help_address)
    p.set_defaults(handler=_cmd_deploy)
    s = sub.add_parser("status", help="serve status of a running Ray cluster", description=__doc__)
    s.add_argument("--address", "-a", default=None, help=help_address)
    s.add_argument("--name", "-n", default=None, help="one application's status")
    s.set_defaults(handler=_cmd_status)
