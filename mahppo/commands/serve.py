"""``mahppo serve`` (run the decision-maker), ``mahppo query`` (one state pool) and
``mahppo simulate --via URL`` (the test scenario with every decision fetched over HTTP)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from mahppo.commands._args import (
    add_env_arguments,
    add_signing_key_argument,
    cell_from_args,
    emit_json,
    env_updates,
    milliseconds,
    natural_int,
)
from mahppo.commands._args import positive_float as _positive_float
from mahppo.commands._args import positive_int as _positive_int
from mahppo.marl_env.lookahead import DEFAULT_BUDGET_S
from mahppo.marl_env.metrics import format_table
from mahppo.marl_env.policies import BASELINES
from mahppo.serve.client import check_port_free, example_pool
from mahppo.serve.guards import DEFAULT_MAX_CONCURRENT_LOOKAHEAD, load_api_key

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
APP_NAME = "mahppo"


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.baseline is not None:
        _baseline_name(args.baseline)  # before Ray and Serve are imported
    from mahppo.serve.app import QUIET_LOGGING, AppArgs, build_app
    from mahppo.serve.guards import api_key_file, key_file_is_private
    from mahppo.serve.lifecycle import preflight, run_app, start_reaper
    from mahppo.serve.proxy import enable_for_local_ray

    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port}: must be 1..65535")
    key_file = api_key_file(args.api_key_file, args.no_auth)
    if key_file is not None:
        load_api_key(key_file)  # fails closed, before anything starts: '' and empty or unreadable files are errors
    source: dict[str, Any] = {}
    if args.baseline is not None:
        source = {"baseline": _baseline_name(args.baseline), "env": cell_from_args(args).to_dict()}
    elif env_updates(args):
        raise ValueError(f"{', '.join(_given_cell_flags(args))}: the cell of a served rule (--baseline); a trained "
                         "policy serves the cell it was trained on")
    elif args.model_uri:
        from mahppo.algorithms.acting.policy import download_model

        if args.mlflow_uri:
            os.environ["MLFLOW_TRACKING_URI"] = args.mlflow_uri
        source["checkpoint"] = str(download_model(args.model_uri))  # fail here, not in the replica
    else:
        source["checkpoint"] = args.checkpoint
    app_args = _app_args(AppArgs, **source, no_auth=args.no_auth, max_batch_size=args.max_batch_size,
                         batch_wait_timeout_s=args.batch_wait_ms / 1000.0, num_replicas=args.replicas,
                         read_timeout_s=args.read_timeout, api_key_file=key_file,
                         max_concurrent_lookahead=args.max_lookahead, lookahead_budget_s=args.lookahead_budget)
    application = build_app(app_args)  # FileNotFoundError for a directory without a checkpoint
    check_port_free(args.host, args.port)
    if args.baseline is None:
        preflight(application._bound_deployment.init_args[0])  # the replica's load, here, in seconds
    if key_file is None and not _is_loopback(args.host):
        print(f"warning: serving on {args.host} without an API key{' (--no-auth)' if args.no_auth else ''}: anyone "
              "who reaches the port can ask for decisions", file=sys.stderr)
    elif key_file and not key_file_is_private(key_file):
        print(f"warning: {key_file} is readable by other users (chmod 600 it)", file=sys.stderr)

    import ray
    from ray import serve

    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    reaper = None
    if not args.address:  # our own Ray: harden its HTTP proxy, and take it down with us even on SIGKILL
        enable_for_local_ray(args.read_timeout)
        reaper = start_reaper()
    from mahppo.runtime.logs import ray_init_kwargs

    ray_options = {**ray_init_kwargs(), "log_to_driver": args.verbose or ray_init_kwargs()["log_to_driver"]}
    if args.address:
        from mahppo.runtime.cluster import connect

        connect(args.address, **ray_options)  # token authentication handled
    else:
        ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False, **ray_options)
    # after ray.init, which installs its own SIGTERM handler (it would kill us without a clean shutdown)
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve.start(http_options={"host": args.host, "port": args.port},
                    logging_config=None if args.access_log else QUIET_LOGGING)
        try:
            run_app(application, name=APP_NAME, route_prefix="/",
                    logging_config=None if args.access_log else QUIET_LOGGING)
        except RuntimeError as exc:
            raise ValueError(str(exc)) from None
        from mahppo.serve.client import DecisionClient

        client = DecisionClient(f"http://{_client_host(args.host)}:{args.port}",
                                api_key=load_api_key(key_file) if key_file is not None else None)
        info = client.model()
        print(f"serving {info['policy_id']} (N={info['num_ues']}, C={info['num_channels']}) on "
              f"http://{args.host}:{args.port}  docs: /docs  Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
        print("shutting down", flush=True)
    finally:
        try:
            if args.address:  # a cluster outlives us: take our Serve instance off it
                serve.shutdown()
            # a local Ray goes down with Serve on it; serve.shutdown() first would only add the raylet's
            # benign "graceful_shutdown failed ... / Failed to push error to driver" lines
        finally:
            ray.shutdown()
            for s, handler in old.items():
                signal.signal(s, handler)
            if reaper is not None:
                reaper.stdin.close()  # (it finds nothing left to stop)
    return 0


# AppArgs' fields -> the flags that set them (an out-of-range value is one line naming the flag)
_FLAGS = {"baseline": "--baseline", "max_batch_size": "--max-batch-size", "batch_wait_timeout_s": "--batch-wait-ms",
          "num_replicas": "--replicas",
          "read_timeout_s": "--read-timeout", "max_concurrent_lookahead": "--max-lookahead",
          "lookahead_budget_s": "--lookahead-budget", "api_key_file": "--api-key-file", "no_auth": "--no-auth"}


def _app_args(cls: Any, **values: Any) -> Any:
    """``AppArgs(**values)``; a value it refuses is a ``ValueError`` naming the flag, not pydantic's dump."""
    from pydantic import ValidationError

    try:
        return cls(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else ""
        flag = _FLAGS.get(field, field or "arguments")
        shown = values.get(field)
        if field == "batch_wait_timeout_s" and shown is not None:
            shown = shown * 1000.0
        given = f" {shown!r}" if field in values else ""
        raise ValueError(f"{flag}{given}: {first['msg']}") from None


def _baseline_name(name: str) -> str:
    """``--baseline``'s rule, checked: one line naming the flag and the known rules otherwise."""
    from mahppo.marl_env.policies import BASELINES, make_baseline

    if name not in BASELINES and not name.startswith("fixed:"):
        raise ValueError(f"--baseline {name!r}: not a rule (one of {', '.join(BASELINES)}, fixed:B,C,P[;...])")
    try:
        make_baseline(name)
    except ValueError as exc:
        raise ValueError(f"--baseline {name!r}: {exc}") from None
    return name


def _given_cell_flags(args: argparse.Namespace) -> list[str]:
    return [f"--{a.replace('_', '-')}" for a in ("scenario", "num_ues", "num_channels", "dnn", "one_dnn_share",
                                                  "profile", "beta", "max_ues") if getattr(args, a, None) is not None]


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)


def read_request(path: str, stochastic: bool = False) -> dict[str, Any]:
    """The ``/v1/decide`` body in ``path`` (``-``: stdin) exactly as the file holds it (a bare list of UE
    states is ``{"ues": [...]}``; ``stochastic``: ``"deterministic": false`` added), checked with the
    server's own schema (``serve.schema.parse_request``): errors name the file and the field."""
    from mahppo.serve.schema import RequestError, parse_request

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"--state-file {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"--state-file {path}: not a text file") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"--state-file {path}: not JSON ({str(exc)[:200]})") from None
    if isinstance(data, list):
        data = {"ues": data}
    if not isinstance(data, dict):
        raise ValueError(f"--state-file {path}: expected {{\"ues\": [...]}} or a list of UE states")
    if stochastic:
        if data.get("deterministic", False) is not False:
            raise ValueError(f"--state-file {path}: holds \"deterministic\": {json.dumps(data['deterministic'])}, "
                             "which --stochastic contradicts (drop one)")
        data = {**data, "deterministic": False}
    try:
        parse_request(data)
    except RequestError as exc:
        raise ValueError(f"--state-file {path}: {exc}") from None
    return data


def _client(url: str, key_file: str | None = None):
    from mahppo.serve.client import DecisionClient
    from mahppo.serve.guards import api_key_file

    key_file = api_key_file(key_file)
    return DecisionClient(url, api_key=load_api_key(key_file) if key_file is not None else None)


def _cmd_query(args: argparse.Namespace) -> int:
    from mahppo.serve.client import DecisionError

    body = read_request(args.state_file, args.stochastic) if args.state_file else None  # before any request
    client = _client(args.url, args.api_key_file)
    try:
        if body is None:
            body = {"ues": example_pool(client.model()), "deterministic": not args.stochastic}
        reply = client.send(body)
    except DecisionError as exc:
        raise ValueError(f"{args.url}: {exc}") from None
    except OSError as exc:
        raise ValueError(f"--url {args.url}: cannot reach the decision-maker ({exc})") from None
    decisions = reply["decisions"]
    if args.json:
        emit_json({"ues": body["ues"], **reply})
        return 0
    if reply.get("lookahead_fallback"):
        print(f"note: {reply['lookahead_fallback']}")
    print("| ue_id | partition_point | channel | power_w |\n|---|---|---|---|")
    for d in decisions:
        print(f"| {d['ue_id']} | {d['partition_point']} | {d['channel']} | {d['power_w']:.4g} |")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    import time

    from mahppo.marl_env.evaluation import evaluate
    from mahppo.serve.client import DecisionError, RemotePolicy

    try:
        remote = RemotePolicy(_client(args.via, args.api_key_file), deterministic=not args.stochastic)
        config = cell_from_args(args, remote.env_defaults)
        t0 = time.perf_counter()
        metrics = evaluate(remote, config, episodes=args.episodes, seed=args.seed)
        wall = time.perf_counter() - t0
    except DecisionError as exc:
        raise ValueError(f"{args.via}: {exc}") from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"--via {args.via}: cannot reach the decision-maker ({exc})") from None
    if args.json:
        emit_json({"policy": remote.name, "via": args.via, **metrics, "requests": remote.requests})
    else:
        print(format_table({f"{remote.name} via HTTP": metrics}))
        print(f"{remote.requests} decisions fetched in {wall:.1f} s "
              f"({1000 * wall / max(remote.requests, 1):.2f} ms per frame incl. the simulator)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a trained policy (or a classical rule) over HTTP with Ray Serve",
                       description="Run the edge decision-maker (POST /v1/decide, GET /v1/model, /healthz, "
                       "/docs) in the foreground until Ctrl-C or SIGTERM.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="DIR", help="a `mahppo train --out` dir or a checkpoint dir")
    src.add_argument("--model-uri", metavar="URI", help="an MLflow URI: models:/NAME/VER or runs:/ID/checkpoint")
    src.add_argument("--baseline", metavar="NAME", help=f"a classical rule instead of a trained policy: "
                     f"{' | '.join(BASELINES)} | fixed:B,C,P; it decides each request on a simulator of the cell "
                     "given by the cell options below (default: the default cell) (docs/serve.md)")
    p.add_argument("--mlflow-uri", default=None, help="MLflow tracking URI for --model-uri (default ./mlflow.db)")
    p.add_argument("--host", default=DEFAULT_HOST, help="bind address (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
    p.add_argument("--replicas", type=_positive_int, default=None, help="replicas of the deployment (1)")
    p.add_argument("--max-batch-size", type=_positive_int, default=32, help="requests per forward pass")
    p.add_argument("--batch-wait-ms", type=milliseconds, default=1.0,
                   help="how long a batch waits to fill, 0..1000 ms (default 1)")
    p.add_argument("--max-lookahead", type=natural_int, default=DEFAULT_MAX_CONCURRENT_LOOKAHEAD, metavar="N",
                   help="`\"lookahead\": true` requests in flight per replica, apart from the plain decisions' slots; "
                   f"beyond, 503 + Retry-After (0: lookahead off) (default {DEFAULT_MAX_CONCURRENT_LOOKAHEAD})")
    p.add_argument("--lookahead-budget", type=_positive_float, default=DEFAULT_BUDGET_S, metavar="S",
                   help="a lookahead request's time from its arrival; then the policy's own decisions, marked "
                   f"`lookahead_fallback` in the reply (default {DEFAULT_BUDGET_S:g})")
    p.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    p.add_argument("--verbose", action="store_true", help="show the replicas' logs")
    p.add_argument("--access-log", action="store_true", help="log every request (slower)")
    p.add_argument("--api-key-file", default=None, metavar="FILE",
                   help="every route but /healthz then needs `Authorization: Bearer KEY` (KEY: the file's one line; "
                   "default $MAHPPO_API_KEY_FILE); use it whenever --host is not loopback. An empty path or an "
                   "unreadable, empty or short file is an error at start (auth fails closed)")
    p.add_argument("--no-auth", action="store_true",
                   help="serve without an API key even when $MAHPPO_API_KEY_FILE is set (the only way to; never "
                   "with --api-key-file)")
    add_signing_key_argument(p, writes=False)
    p.add_argument("--read-timeout", type=_positive_float, default=10.0, metavar="S",
                   help="a client must send its whole request (headers and body) within S seconds, else 408 (10)")
    add_env_arguments(p)
    p.set_defaults(handler=_cmd_serve)

    q = sub.add_parser("query", help="send one state pool to a served policy and print the decisions",
                       description="POST a state pool to URL/v1/decide. Without --state-file, the test "
                       "scenario's first state pool for the served N.")
    q.add_argument("--url", default=f"http://{DEFAULT_HOST}:{DEFAULT_PORT}",
                   help=f"the decision-maker (default http://{DEFAULT_HOST}:{DEFAULT_PORT})")
    q.add_argument("--state-file", default=None, metavar="F",
                   help='the request body, sent as it is after the server\'s own checks: JSON {"ues": [{"ue_id": '
                   '"ue_0", "tasks_left": ..., ...}, ...], "deterministic": ..., "lookahead": ...} or the list alone; '
                   '- = stdin')
    q.add_argument("--stochastic", action="store_true", help="sample each branch instead of its mode")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.add_argument("--api-key-file", default=None, metavar="FILE", help="the server's bearer key (default "
                   "$MAHPPO_API_KEY_FILE)")
    q.set_defaults(handler=_cmd_query)

    s = sub.add_parser("simulate", help="run the env with every decision fetched from a served policy",
                       description="Run the test scenario (or --scenario train) with each frame's decisions "
                       "from URL/v1/decide and print the same metrics as `mahppo evaluate`.")
    s.add_argument("--via", required=True, metavar="URL", help="the decision-maker, e.g. http://127.0.0.1:8000")
    add_env_arguments(s)
    s.add_argument("--episodes", type=_positive_int, default=None,
                   help="episodes to average over (default 1; --scenario dynamic: its 32 evaluation episodes)")
    s.add_argument("--seed", type=natural_int, default=None,
                   help="seed of the first episode (default 0; --scenario dynamic: 1000000, its evaluation episodes)")
    s.add_argument("--stochastic", action="store_true", help="sampled decisions (no longer reproducible)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--api-key-file", default=None, metavar="FILE", help="the server's bearer key (default "
                   "$MAHPPO_API_KEY_FILE)")
    s.set_defaults(handler=_cmd_simulate)
