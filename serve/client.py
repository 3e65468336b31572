"""A small Python client of the decision-maker (standard library only, keep-alive connections).

    from mahppo.serve.client import DecisionClient
    client = DecisionClient("http://127.0.0.1:8000")
    client.model()["num_ues"]
    client.decide([{"ue_id": "ue_0", "tasks_left": 120, "local_time_left_s": 0.01,
                    "bits_left": 50176, "distance_m": 50.0}, ...])

``RemotePolicy`` plugs the served policy into ``marl_env.evaluation`` (what ``mahppo simulate --via``
runs): every frame it reads the raw UE state from the env and asks the server for the decisions.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import numpy as np

DEFAULT_URL = "http://127.0.0.1:8000"


class DecisionError(RuntimeError):
    """The server answered 4xx/5xx; ``status``, ``field`` and ``detail`` come from its reply."""

    def __init__(self, status: int, detail: str, field: str | None = None):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.field = field


class DecisionClient:
    """HTTP client of ``/healthz``, ``/v1/model`` and ``/v1/decide``; one connection per thread."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = 10.0, api_key: str | None = None):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"url {url!r}: expected http://HOST:PORT")
        self.url = f"http://{parts.hostname}:{parts.port or 80}"
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._local = threading.local()

    def _conn(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        """Send one request; returns ``(status, parsed JSON or text)``. Retries once on a stale connection."""
        headers = {**self._auth, **({"Content-Type": "application/json"} if body is not None else {})}
        for attempt in (0, 1):
            conn = self._conn(fresh=attempt == 1)
            try:
                conn.request(method, self.prefix + path, body=body, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest,
                    http.client.BadStatusLine):
                conn.close()
                self._local.conn = None
                if attempt == 1:
                    raise
        try:
            data: Any = json.loads(raw)
        except ValueError:
            data = raw.decode("utf-8", "replace")
        return resp.status, data

    def _get_ok(self, method: str, path: str, body: bytes | None = None) -> Any:
        status, data = self.request(method, path, body)
        if status >= 400:
            detail = data.get("detail") if isinstance(data, dict) else data
            field = data.get("field") if isinstance(data, dict) else None
            raise DecisionError(status, str(detail), field)
        return data

    def health(self) -> dict[str, Any]:
        return self._get_ok("GET", "/healthz")

    def model(self) -> dict[str, Any]:
        return self._get_ok("GET", "/v1/model")

    def decide(self, ues: list[dict[str, Any]], deterministic: bool = True,
               lookahead: bool = False) -> list[dict[str, Any]]:
        """The decisions for a state pool (a list of per-UE dicts), in the order given; ``lookahead``: chosen by
        rollouts on a simulator of the cell (each busy UE's dict needs ``point_in_flight`` and
        ``channel_in_flight``)."""
        body = json.dumps({"ues": ues, "deterministic": deterministic,
                           **({"lookahead": True} if lookahead else {})}).encode()
        return self._get_ok("POST", "/v1/decide", body)["decisions"]

    def send(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``/v1/decide`` exactly as given; the whole reply (``DecideResponse``)."""
        return self._get_ok("POST", "/v1/decide", json.dumps(body).encode())

    def decide_arrays(self, tasks_left: Any, total_tasks: Any, local_time_left_s: Any, bits_left: Any,
                      distance_m: Any, deterministic: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Arrays over ue_0..ue_{N-1} in, ``(points, channels, powers)`` arrays out."""
        ues = state_pool(tasks_left, total_tasks, local_time_left_s, bits_left, distance_m)
        dec = self.decide(ues, deterministic)
        return (np.array([d["partition_point"] for d in dec], dtype=np.int64),
                np.array([d["channel"] for d in dec], dtype=np.int64),
                np.array([d["power_w"] for d in dec], dtype=np.float64))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def state_pool(tasks_left: Any, total_tasks: Any, local_time_left_s: Any, bits_left: Any,
               distance_m: Any) -> list[dict[str, Any]]:
    """Per-UE arrays (ue_0 first) -> the request's ``ues`` list."""
    return [{"ue_id": f"ue_{i}", "tasks_left": int(k), "total_tasks": int(kt), "local_time_left_s": float(t),
             "bits_left": float(b), "distance_m": float(d)}
            for i, (k, kt, t, b, d) in enumerate(zip(tasks_left, total_tasks, local_time_left_s, bits_left,
                                                     distance_m, strict=True))]


def view_pool(view: Any) -> list[dict[str, Any]]:
    """A ``marl_env`` view's state pool as a cell sends it: each UE's raw state and DNN, its fading gain (when
    not 1), and a busy UE's point and channel in flight (a server that simulates the cell needs them)."""
    ues = state_pool(view.tasks_left, view.total_tasks, view.time_left_s, view.bits_left, view.distance_m)
    fading = getattr(view, "fading", None)
    busy = (np.asarray(view.time_left_s) > 0) | (np.asarray(view.bits_left) > 0)
    for i, (ue, spec) in enumerate(zip(ues, view.config.specs, strict=True)):
        ue["dnn"] = spec.dnn
        if fading is not None and fading[i] != 1.0:
            ue["fading"] = float(fading[i])
        if busy[i]:
            ue["point_in_flight"] = int(view.point_in_flight[i])
            ue["channel_in_flight"] = int(view.channel_in_flight[i])
    return ues


def view_request(view: Any, deterministic: bool = True) -> dict[str, Any]:
    """The ``/v1/decide`` body a cell in ``view``'s state sends: ``view_pool`` and, on a cell with a horizon,
    the frame (a served rule and the lookahead price the horizon's charge)."""
    body: dict[str, Any] = {"ues": view_pool(view), "deterministic": deterministic}
    if view.config.dynamics.horizon_frames is not None:
        body["frame"] = int(view.frame)
    return body


class RemotePolicy:
    """A ``marl_env`` policy whose every decision is fetched from the served decision-maker."""

    def __init__(self, client: DecisionClient, deterministic: bool = True):
        self.client = client
        self.deterministic = deterministic
        self.info = client.model()
        self.name = str(self.info["policy_id"])
        self.agents = list(self.info["agents"])
        self.env: Any = None
        self.requests = 0

    @property
    def env_defaults(self) -> dict[str, Any]:
        return dict(self.info.get("env_config", {}))

    def reset(self, view: Any, seed: int | None = None) -> None:
        n, most = view.num_ues, self.info.get("max_ues")
        if most is None and n != len(self.agents):
            raise ValueError(f"the served policy {self.name} decides for {len(self.agents)} UEs; the cell has {n}")
        if most is not None and n > most:
            raise ValueError(f"the served policy {self.name} decides at most {most} UEs; the cell has {n}")

    def act(self, view: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sends the cell's state pool (``view_pool``), as a cell would, and returns the decisions."""
        self.requests += 1
        dec = self.client.send(view_request(view, self.deterministic))["decisions"]
        return (np.array([d["partition_point"] for d in dec], dtype=np.int64),
                np.array([d["channel"] for d in dec], dtype=np.int64),
                np.array([d["power_w"] for d in dec], dtype=np.float64))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now (for tests and local demos)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ValueError(f"--host {host} --port {port}: cannot bind ({exc.strerror or exc})") from None


def example_pool(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The test scenario's first state pool: every UE 50 m away with 200 tasks, nothing in flight."""
    from mahppo.marl_env.config import TEST_DISTANCE_M, TEST_NUM_TASKS

    return [{"ue_id": a, "tasks_left": TEST_NUM_TASKS, "total_tasks": TEST_NUM_TASKS, "local_time_left_s": 0.0,
             "bits_left": 0.0, "distance_m": TEST_DISTANCE_M} for a in info["agents"]]
