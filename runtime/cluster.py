"""Connecting to a running Ray cluster (``--address``), token authentication included.

Since Ray 2.5x, ``ray start --head`` turns token authentication on whenever a token exists on the head
(``~/.ray/auth_token``, which any local ``ray.init()`` creates), but a driver given an explicit address
does not turn it on by itself: it fails after about 20 s with a bare ``ConnectionError``. ``connect``
turns it on when a token is at hand (``$RAY_AUTH_TOKEN``, ``$RAY_AUTH_TOKEN_PATH`` or
``~/.ray/auth_token``; an explicit ``$RAY_AUTH_MODE`` is respected), and checks the address first, so
a wrong address or a missing or wrong token fails in seconds with one line saying what to set.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

AUTH_MODE_ENV = "RAY_AUTH_MODE"
PROBE_TIMEOUT_S = 5.0
HOW_TO_SET = ("put the head node's token (`ray get-auth-token` prints it there) in ~/.ray/auth_token, or set "
              "RAY_AUTH_TOKEN_PATH=FILE or RAY_AUTH_TOKEN=TOKEN")


def token_source() -> str | None:
    """Where a Ray auth token is (the places Ray itself reads, in its order), or None."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "$RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return path if Path(path).expanduser().is_file() else None
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() else None


def enable_token_auth_if_available() -> str | None:
    """Token mode for this process and its children when a token exists and ``RAY_AUTH_MODE`` is unset;
    returns where the token is (None: none found, or the mode was set explicitly without one)."""
    source = token_source()
    if os.environ.get(AUTH_MODE_ENV) is None and source is not None:
        os.environ[AUTH_MODE_ENV] = "token"
        try:  # Ray caches its config per process: make this process see token mode too
            from ray._raylet import Config

            Config.initialize("")
        except (ImportError, AttributeError):
            pass
    return source


def _host_port(address: str) -> tuple[str, int] | None:
    if "://" in address or address in ("auto", "local"):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def check_cluster(address: str) -> None:
    """``ValueError`` in seconds when nothing answers at ``address`` or its GCS refuses our token."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise ValueError(f"--address {address}: no Ray cluster answers there ({why} within "
                         f"{PROBE_TIMEOUT_S:g} s); start one with `ray start --head` or fix the address") from None
    source = token_source()
    if os.environ.get(AUTH_MODE_ENV, "").lower() == "token" and source is None:
        return  # ray.init says itself that token mode has no token
    try:
        from ray._raylet import GcsClient
    except ImportError:
        return
    try:
        GcsClient(address=address)  # the GCS is up (the port answered): it accepts or refuses at once
    except Exception as exc:  # noqa: BLE001 - Ray raises RpcError / AuthenticationError here
        text = str(exc)
        if "InvalidAuthToken" in text or "Unauthenticated" in text or type(exc).__name__ == "AuthenticationError":
            mode = os.environ.get(AUTH_MODE_ENV, "").lower()
            found = ("RAY_AUTH_MODE is set to disabled here: unset it (or set it to token), then"
                     if mode and mode != "token" else
                     f"the token from {source} is not its token:" if source else "no token was found here:")
            raise ValueError(f"--address {address}: the cluster uses token authentication and {found} "
                             f"{HOW_TO_SET}") from None


def connect(address: str, **init_kwargs: Any) -> None:
    """``ray.init(address=...)`` to a running cluster, with token authentication handled."""
    import ray

    enable_token_auth_if_available()
    check_cluster(address)
    ray.init(address=address, **init_kwargs)
