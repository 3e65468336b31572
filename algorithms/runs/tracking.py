"""MLflow tracking, one module for ``mahppo train``, ``mahppo tune`` and Serve.

The embedded default is a local SQLite store (``./mlflow.db``, no server). A ``Tracker`` is one MLflow
run driven through ``MlflowClient`` with an explicit run id (no global "active run"), so the training
loop and the Tune driver (many trials at once) log the same way: params once (flattened, within
MLflow's limits, batched), metrics per step in batches, artefacts at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MAX_PARAM_LEN = 500  # MLflow's limit on a param value (6000 on newer servers; stay safe)
MAX_KEY_LEN = 250
BATCH = 100  # MLflow takes at most 100 params per log_batch


def tracking_uri(explicit: str | None = None) -> str:
    """``explicit``, else ``$MLFLOW_TRACKING_URI``, else the local SQLite store ``./mlflow.db``;
    a relative ``sqlite:///file`` is made absolute (so it works from any directory, and in workers).

    A redacted URI (as stored in run.json) is matched with the same URI given again with its
    credentials (``--mlflow-uri`` / ``$MLFLOW_TRACKING_URI``); without one it is an error naming it."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    uri = resolved_uri(explicit or env or DEFAULT_TRACKING_URI)
    if redact_uri(uri) != uri or REDACTED not in uri:
        return uri
    if env and redact_uri(env) == uri:
        return env
    if uri in _FULL_URIS:
        return _FULL_URIS[uri]
    raise ValueError(f"tracking URI {uri}: its credentials are not stored; give the URI again with them "
                     "(--mlflow-uri or MLFLOW_TRACKING_URI), or keep them out of the URI with "
                     "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)")


REDACTED = "***"
SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "token", "secret", "key", "access_key", "secret_key",
                     "api_key", "apikey", "auth", "sig", "signature", "credential", "credentials")
PROBE_TIMEOUT_S = 5.0
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}
_FULL_URIS: dict[str, str] = {}  # redacted -> as given, for this process only (never written anywhere)
_REACHABLE: set[str] = set()


def redact_uri(uri: str | None) -> str | None:
    """``uri`` without its credentials: ``http://user:pass@host`` -> ``http://user:***@host``, a bare
    ``token@host`` -> ``***@host``, ``?password=x`` / ``?token=x`` -> ``=***``. Use it for everything
    written (run.json, MLflow params, winner.json) or printed; other strings come back unchanged."""
    if not uri or "://" not in uri:
        return uri
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, sep, _ = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{host}" if sep else f"{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode([(k, REDACTED if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs],
                              safe="*/:")
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def remember_uri(uri: str | None) -> str | None:
    """Keep ``uri`` (with its credentials) in memory so that its redacted form, read back from run.json
    or a Tune state file, resolves to it again in this process (``tracking_uri``)."""
    if uri:
        _FULL_URIS[redact_uri(uri)] = uri
    return uri


# the tracking stores MLflow knows (a scheme's "+driver" suffix aside); a plain path is a file store
STORE_SCHEMES = ("file", "sqlite", "postgresql", "postgres", "mysql", "mssql", "http", "https", "databricks",
                 "databricks-uc", "uc")


def check_reachable(uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast (``ValueError``, one line naming the redacted URI) when a remote tracking store does not
    answer: MLflow itself retries a dead HTTP server for minutes; an unknown scheme is refused at once.
    Local stores are not probed."""
    from urllib.parse import urlsplit

    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme and scheme not in STORE_SCHEMES:
        raise ValueError(f"--mlflow-uri / MLFLOW_TRACKING_URI {redact_uri(uri)}: unknown scheme {scheme!r} "
                         f"(MLflow stores: {', '.join(STORE_SCHEMES)}, or a path)")
    if scheme not in DEFAULT_PORTS or uri in _REACHABLE:
        return
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"tracking URI {redact_uri(uri)}: {exc}") from None
    if not host:
        return
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise ValueError(f"MLflow tracking store {redact_uri(uri)} cannot be reached ({host}:{port}: {why} "
                         f"within {timeout_s:g} s); start it or fix --mlflow-uri / MLFLOW_TRACKING_URI") from None
    if scheme in ("http", "https"):
        _probe_http(uri, timeout_s)
    _REACHABLE.add(uri)


def _probe_http(uri: str, timeout_s: float) -> None:
    """Any HTTP answer counts (401 and 404 included: MLflow reports those itself); silence does not."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(uri)
    host = p.netloc.rsplit("@", 1)[-1]  # credentials are MLflow's business, not the probe's
    url = urlunsplit((p.scheme, host, p.path.rstrip("/") + "/health", "", ""))
    try:
        urllib.request.urlopen(url, timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ValueError(f"MLflow tracking store {redact_uri(uri)} does not answer over HTTP ({reason}, "
                         f"{timeout_s:g} s); start it or fix --mlflow-uri / MLFLOW_TRACKING_URI") from None




def resolved_uri(uri: str) -> str:
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on this store (credentials redacted: it is printed)."""
    return f"mlflow ui --backend-store-uri {redact_uri(uri)}"


def client(uri: str | None = None) -> Any:
    """An ``MlflowClient``; a redacted ``uri`` resolves to the one given with credentials, and a remote
    store that does not answer fails in seconds (``check_reachable``)."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(uri)
    check_reachable(uri)
    return MlflowClient(tracking_uri=uri)


def experiment_id(cl: Any, name: str) -> str:
    """The id of experiment ``name`` (created, or restored if it was deleted). A new experiment in a
    local SQLite store keeps its artefacts next to the store (``<store dir>/mlruns/<name>``), not in
    the working directory's ``./mlruns``."""
    exp = cl.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            cl.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    return cl.create_experiment(name, artifact_location=artifact_location(cl.tracking_uri, name))


def artifact_location(uri: str, experiment: str) -> str | None:
    """``<dir of the SQLite file>/mlruns/<experiment>`` for a local SQLite store; None (the server's or
    MLflow's default) for any other store."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)
    return str(Path(uri[len(prefix):]).resolve().parent / "mlruns" / safe)


def provenance_tags() -> dict[str, str]:
    """What produced a run: the package version and, in a git checkout, the commit (MLflow's own
    ``mlflow.source.git.commit`` tag, shown in its UI)."""
    from mahppo.runtime import package_version

    tags = {"mahppo.version": package_version()}
    commit = _git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts -> ``a.b.c`` keys with string values trimmed to MLflow's length limits."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, prefix=f"{name}."))
            continue
        text = str(value)
        if len(text) > MAX_PARAM_LEN:
            text = text[: MAX_PARAM_LEN - 3] + "..."
        out[name[:MAX_KEY_LEN]] = text
    return out


class Tracker:
    """One MLflow run: params once, metrics per step, artefacts, then a final status."""

    def __init__(self, cl: Any, run_id: str):
        self.client = cl
        self.run_id = run_id

    @classmethod
    def start(cls, uri: str | None, experiment: str, run_name: str, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, str] | None = None, run_id: str | None = None) -> Tracker:
        """A new run (params logged), or the run ``run_id`` continued (``--resume``, a retried trial)."""
        cl = client(uri)
        if run_id is not None:
            cl.update_run(run_id, status="RUNNING")
            return cls(cl, run_id)
        run = cl.create_run(experiment_id(cl, experiment), run_name=run_name,
                            tags={**provenance_tags(), **dict(tags or {})})
        tracker = cls(cl, run.info.run_id)
        tracker.log_params(params or {})
        return tracker

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten_params(params).items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Numeric, finite-or-inf values only (NaN and non-numbers are skipped)."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, int(step)) for k, v in metrics.items()
                 if isinstance(v, int | float) and not isinstance(v, bool) and v == v]
        for i in range(0, len(batch), BATCH * 10):
            self.client.log_batch(self.run_id, metrics=batch[i:i + BATCH * 10])

    def log_artifacts(self, path: str | Path, artifact_path: str | None = None) -> None:
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(self.run_id, str(p), artifact_path=artifact_path)
        elif p.is_file():
            self.client.log_artifact(self.run_id, str(p), artifact_path=artifact_path)

    def set_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)
