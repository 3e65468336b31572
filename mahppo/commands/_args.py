"""Argument types and option groups shared by the ``mahppo`` subcommands (the app layer only).

Options are generated from the config dataclasses (``EnvConfig``, ``MAHPPOParams``, ``RunSettings``):
their defaults are the dataclasses' own (shown in ``--help``), never a second copy in argparse; an
option the user does not give stays ``None`` and the dataclass default applies.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from mahppo.marl_env.config import MAX_UES
from mahppo.marl_env.policies import BASELINES

_json_stream: Any = None  # where emit_json writes while a --json command runs (the real stdout)


@contextlib.contextmanager
def json_output(enabled: bool):
    """With ``--json``: everything printed goes to stderr, except ``emit_json``'s one document."""
    global _json_stream
    if not enabled:
        yield
        return
    _json_stream = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _json_stream = None


def emit_json(document: Any) -> None:
    """Write the command's one JSON document to stdout (the real one under ``json_output``)."""
    stream = _json_stream if _json_stream is not None else sys.stdout
    stream.write(json.dumps(document, default=_json_default) + "\n")
    stream.flush()


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _int_at_least(text: str, lo: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < lo:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= {lo}")
    return v


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1)


def natural_int(text: str) -> int:
    """An integer >= 0 (seeds)."""
    return _int_at_least(text, 0)


def num_ues_arg(text: str) -> int | tuple[int, int]:
    """``N`` or ``LO-HI`` (a range drawn per episode)."""
    if "-" in text.strip("-"):
        lo, _, hi = text.partition("-")
        a, b = positive_int(lo), positive_int(hi)
        if a > b:
            raise argparse.ArgumentTypeError(f"{text!r}: LO must be <= HI")
        return (a, b)
    return positive_int(text)


def dnn_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME or NAME,NAME,... (no empty names)")
    return names


def add_env_arguments(p: argparse.ArgumentParser, *, scenario: bool = True) -> None:
    """The cell's options (evaluate, train, simulate), each showing the one default cell (``EnvConfig``'s)."""
    from mahppo.marl_env.config import EnvConfig as d  # the dataclass's defaults

    g = p.add_argument_group("the cell (Sec. 3, 6.3.1)")
    if scenario:
        g.add_argument("--scenario", choices=["test", "train", "dynamic"], default=None,
                       help="test: d = 50 m and K = 200 for every UE (Sec. 6.3.1); train: random; dynamic: online "
                       "arrivals, Rayleigh fading and moving UEs, on 32 fixed evaluation episodes "
                       "(docs/environment-dynamics.md) (default: test)")
    else:
        g.add_argument("--scenario", choices=["train", "dynamic"], default=None,
                       help="train: the paper's random cells (default); dynamic: online arrivals, Rayleigh fading "
                       "and moving UEs in 60-frame episodes (docs/environment-dynamics.md)")
    g.add_argument("--num-ues", type=num_ues_arg, default=None, metavar="N|LO-HI",
                   help=f"N UEs, or a range drawn per episode (needs --actor shared) (default: {d.num_ues})")
    g.add_argument("--num-channels", type=positive_int, default=None, help=f"C channels (default: {d.num_channels})")
    g.add_argument("--dnn", type=dnn_list, default=None, metavar="NAME[,NAME...]",
                   help="resnet18 | vgg11 | mobilenetv2 | a name in --profile; a list gives one per UE, or with "
                        f"--num-ues LO-HI the pool each UE's DNN is drawn from (default: {d.dnn})")
    g.add_argument("--one-dnn-share", type=float, default=None, metavar="S",
                   help="with a DNN pool: the share of episodes whose UEs all run one DNN from it "
                        f"(default: {d.one_dnn_share})")
    g.add_argument("--profile", default=None, help="profile JSON file (default: the Jetson Nano profiles)")
    g.add_argument("--beta", type=float, default=None, help=f"energy weight of Eq. 12 (default: {d.beta})")
    g.add_argument("--max-ues", type=positive_int, default=None,
                   help=f"optional cap on the UEs of a shared actor's cells (default: none; any N up to {MAX_UES})")


def cell_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None):
    """The cell a command runs a policy on: the policy's own cell ``base`` (a trained policy's
    ``env.to_dict()``, a served one's ``env_config``; none for a baseline: the defaults) with the options
    the user gave, on the test scenario unless ``--scenario`` says otherwise."""
    from mahppo.marl_env.config import EnvConfig

    kwargs = {"scenario": "test", **env_updates(args)}
    defaults = dict(base or {})
    if "num_ues" in kwargs or "ue_specs" in kwargs:
        defaults.pop("ue_specs", None)
    if "ue_specs" in kwargs:  # a --dnn list sets N (one UE per name): the policy's own N does not apply
        defaults.pop("num_ues", None)
    return EnvConfig.from_kwargs(**{**defaults, **kwargs})


def env_updates(args: argparse.Namespace) -> dict[str, Any]:
    """The ``EnvConfig`` fields the user gave (flat ``Experiment`` keys)."""
    out: dict[str, Any] = {}
    n = getattr(args, "num_ues", None)
    if isinstance(n, tuple):
        out["num_ues_range"] = n
    elif n is not None:
        out["num_ues"] = n
    for arg, key in (("num_channels", "num_channels"), ("profile", "profile_file"), ("beta", "beta"),
                     ("scenario", "scenario"), ("max_ues", "max_ues"), ("one_dnn_share", "one_dnn_share")):
        v = getattr(args, arg, None)
        if v is not None:
            out[key] = v
    if "profile_file" in out:  # workers and trials run elsewhere: an absolute path
        out["profile_file"] = str(Path(out["profile_file"]).expanduser().resolve())
    dnns = getattr(args, "dnn", None)
    if dnns:
        if len(dnns) == 1:
            out["dnn"] = dnns[0]
        elif isinstance(n, tuple):
            out["dnn_pool"] = tuple(dnns)
        elif n is None or n == len(dnns):
            out["ue_specs"] = [{"dnn": x} for x in dnns]
        else:
            raise ValueError(f"--dnn {','.join(dnns)}: {len(dnns)} DNNs for --num-ues {n}; give one per UE, "
                             "one for all, or a pool with --num-ues LO-HI")
    return out


def _arg_type(f: Any) -> Any:
    t = f.type if not isinstance(f.type, str) else eval(f.type, {"float": float, "int": int, "str": str,
                                                                 "bool": bool, "None": None})
    args = typing.get_args(t) if isinstance(t, types.UnionType) else ()
    return next((a for a in args if a is not type(None)), t)


def add_dataclass_arguments(p: argparse.ArgumentParser, cls: type, title: str, *, skip: tuple[str, ...] = (),
                            defaults: Any = None) -> None:
    """One ``--option`` per field of ``cls`` (help and choices from the field's metadata)."""
    g = p.add_argument_group(title)
    d = defaults if defaults is not None else cls()
    for f in fields(cls):
        if f.name in skip or f.name.startswith("_") or f.default is MISSING and f.default_factory is MISSING:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(d, f.name)
        help_ = f"{f.metadata.get('help', f.name)} (default: {f.metadata.get('default_help', default)})"
        kind = _arg_type(f)
        if kind is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            g.add_argument(flag, type=kind, default=None, choices=f.metadata.get("choices"), help=help_)


def dataclass_updates(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}


def resolve_policy(spec: str):
    """A baseline name, ``fixed:B,C,P``, a trained policy directory (``mahppo train --out``) or an MLflow URI."""
    from mahppo.marl_env.policies import make_baseline

    if spec in BASELINES or spec.startswith("fixed:"):
        return make_baseline(spec)
    if Path(spec).exists() or spec.startswith(("models:/", "runs:/", "mlflow-artifacts:/")):
        from mahppo.algorithms.acting.policy import load_policy

        return load_policy(spec)
    raise ValueError(f"--policy {spec!r}: not a baseline ({', '.join(BASELINES)}, fixed:B,C,P) "
                     "and no such directory")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number > 0")
    return value


def milliseconds(text: str) -> float:
    """A wait in milliseconds: a number in [0, 1000]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of milliseconds in [0, 1000]")
    return value


def add_signing_key_argument(p: argparse.ArgumentParser, writes: bool) -> None:
    """``--signing-key-file``: sign the checkpoints written (``writes``) and refuse any loaded checkpoint that
    is not signed by the key (``docs/serve-security.md``)."""
    what = "sign every checkpoint written with this key (HMAC-SHA256 of the sidecar and its digests) and " \
        if writes else ""
    p.add_argument("--signing-key-file", default=None, metavar="FILE",
                   help=f"{what}refuse any checkpoint not signed with it (default $MAHPPO_SIGNING_KEY_FILE)")


def apply_signing_key(explicit: str | None) -> None:
    """Check the signing key in force now (``--signing-key-file``, else ``$MAHPPO_SIGNING_KEY_FILE``): a bad
    or empty file is an error before any work; a given file is passed on to workers and replicas in
    ``$MAHPPO_SIGNING_KEY_FILE``."""
    import os

    from mahppo.runtime.keys import SIGNING_KEY_ENV, key_file_setting, signing_key

    path = key_file_setting(explicit, SIGNING_KEY_ENV)
    if path is None:
        return
    if explicit is not None:
        from mahppo.runtime.keys import read_key

        read_key(path, "--signing-key-file")
        os.environ[SIGNING_KEY_ENV] = path
    signing_key()


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number >= 0")
    return value
