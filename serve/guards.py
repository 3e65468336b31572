"""What keeps the decision-maker safe to expose: a bearer key on every route but ``/healthz``, and the
health probe that turns a policy with non-finite outputs into a 503.

Pure ASGI / torch, no Ray: unit-testable on its own, used by ``serve.app``.
"""

from __future__ import annotations

import hmac
import math
import os
import stat
import threading
from pathlib import Path
from typing import Any

import numpy as np

from mahppo.runtime.keys import key_file_setting, read_key

API_KEY_ENV = "MAHPPO_API_KEY_FILE"  # the default of `--api-key-file` / `api_key_file`
OPEN_PATHS = frozenset({"/healthz"})  # answered without a key (load balancers, liveness probes)


def load_api_key(path: str | Path) -> str:
    """The key in ``path`` (surrounding whitespace stripped); ``ValueError`` naming the file otherwise (an
    empty path, an unreadable or empty file included: auth fails closed)."""
    return read_key(path, "--api-key-file")


def key_file_is_private(path: str | Path) -> bool:
    """False when group or others may read the key file."""
    return not (os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH))


def api_key_file(explicit: str | None, no_auth: bool = False) -> str | None:
    """The key file in force: ``explicit``, else ``$MAHPPO_API_KEY_FILE``, as an absolute path (the replica may
    run elsewhere). Given but empty (``--api-key-file ''``, ``MAHPPO_API_KEY_FILE=``) is ``''``, which
    ``load_api_key`` refuses: a deploy script with an unset variable must not serve everyone. ``no_auth``
    (``--no-auth``) is the one way to serve without a key, and contradicts an explicit key file."""
    if no_auth:
        if explicit is not None:
            raise ValueError(f"--no-auth with --api-key-file {explicit!r}: give one of them")
        return None
    return key_file_setting(explicit, API_KEY_ENV)


def route_path(scope: dict) -> str:
    """The path the app routes on: without the ``root_path`` (Serve's ``route_prefix``)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] or "/" if root and path.startswith(root) else path


def _json_response(status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> list[dict]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return [{"type": "http.response.start", "status": status, "headers": headers + (extra or [])},
            {"type": "http.response.body", "body": body}]


UNAUTHORIZED = (b'{"detail": "authorization: this route needs the header `Authorization: Bearer KEY`", '
                b'"field": "authorization", "errors": [{"field": "authorization", "message": '
                b'"missing or wrong bearer key"}]}')


class ApiKeyMiddleware:
    """ASGI middleware: 401 unless ``Authorization: Bearer <state.api_key>`` (when a key is set).

    ``/healthz`` stays open. The check runs before the body is read, in constant time."""

    def __init__(self, inner: Any, state: Any):
        self.inner = inner
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        key: str | None = getattr(self.state, "api_key", None)
        if key is None or scope["type"] not in ("http", "websocket") or route_path(scope) in OPEN_PATHS:
            await self.inner(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = token.strip()
                break
        if hmac.compare_digest(given, key.encode()):
            await self.inner(scope, receive, send)
            return
        for message in _json_response(401, UNAUTHORIZED, [(b"www-authenticate", b'Bearer realm="mahppo"')]):
            await send(message)


# Lookahead requests (seconds of rollouts each, in a worker thread): their own small limit, never a decision
# slot; each gets a time budget from its arrival, then the policy's own decisions (serve/planner.py)
DEFAULT_MAX_CONCURRENT_LOOKAHEAD = 1


class LookaheadGate:
    """Admission of ``"lookahead": true`` requests, apart from the plain decisions' slots: at most ``limit``
    in flight (a request counts until its worker thread has stopped, even after its client left), beyond
    which the replica answers 503 with ``Retry-After`` at once. Counters for ``/healthz``. Thread-safe."""

    def __init__(self, limit: int, budget_s: float):
        self.limit, self.budget_s = int(limit), float(budget_s)
        self.in_flight = self.rejected = self.fallbacks = self.cancelled = self.answered = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self.in_flight >= self.limit:
                self.rejected += 1
                return False
            self.in_flight += 1
            return True

    def reject(self) -> None:
        """Count a request turned away before ``try_enter`` (the replica's early check)."""
        with self._lock:
            self.rejected += 1

    def leave(self, fallback: str | None = None, cancelled: bool = False) -> None:
        with self._lock:
            self.in_flight -= 1
            self.cancelled += cancelled
            self.fallbacks += fallback is not None and not cancelled
            self.answered += not cancelled

    @property
    def retry_after_s(self) -> int:
        """When a rejected client may try again: one budget, whole seconds."""
        return max(1, math.ceil(self.budget_s))

    def health(self) -> dict[str, float | int]:
        return {"in_flight": self.in_flight, "limit": self.limit, "budget_s": self.budget_s,
                "answered": self.answered, "fallbacks": self.fallbacks, "cancelled": self.cancelled,
                "rejected": self.rejected}


def policy_problem(policy: Any, normalizer: Any, agents: list[str]) -> str | None:
    """Why ``policy`` cannot give finite decisions, or None when it can: non-finite weights, or a
    non-finite (or failing) action, mode or sampled, on probe state pools across the trained distances
    (every UE at d_min, midway, at d_max), put through the served normaliser."""
    import torch

    from mahppo.serve.schema import DecideRequest

    for agent, module in getattr(policy, "modules", {}).items():
        for name, p in module.named_parameters():
            if not bool(torch.isfinite(p).all()):
                return f"{agent}: non-finite weights in {name}"
    bounds = normalizer if hasattr(normalizer, "d_min_m") else normalizer.base  # per-UE or shared policy
    d_lo, d_hi = float(bounds.d_min_m), float(bounds.d_max_m)
    pools = [[{"ue_id": a, "tasks_left": 200, "local_time_left_s": 0.0, "bits_left": 0.0, "distance_m": d}
              for a in agents] for d in (d_lo, (d_lo + d_hi) / 2, d_hi)]
    for deterministic in (True, False):
        mode = "mode" if deterministic else "sampled"
        for pool in pools:
            x, _ = normalizer.inputs(DecideRequest.model_validate({"ues": pool}).ues)
            try:
                _, _, powers = policy.act_batch(x if getattr(policy, "shared", False) else x[None, :],
                                                deterministic=deterministic)
            except (RuntimeError, ValueError) as exc:  # e.g. sampling from NaN probabilities
                return f"the policy fails on a probe state ({mode}): {str(exc).splitlines()[0]}"
            if not np.all(np.isfinite(powers)):
                return f"non-finite transmit power on a probe state ({mode})"
    return None
