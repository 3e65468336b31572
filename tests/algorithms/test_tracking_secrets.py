"""Tracking URIs: credentials never written or printed; a dead tracking store fails in seconds."""

from __future__ import annotations

import json
import pickle
import socket
import threading
import time

import pytest

from mahppo.algorithms.runs.tracking import REDACTED, check_reachable, redact_uri, remember_uri, tracking_uri

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize("uri, expected", [
    (f"http://alice:{SECRET}@mlflow.internal:5000", "http://alice:***@mlflow.internal:5000"),
    (f"https://alice:{SECRET}@mlflow.internal/prefix", "https://alice:***@mlflow.internal/prefix"),
    (f"https://{SECRET}@mlflow.internal", "https://***@mlflow.internal"),  # a bare token as user
    (f"postgresql://mlflow:{SECRET}@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
    (f"mysql+pymysql://u:p%40{SECRET}@db/mlflow", "mysql+pymysql://u:***@db/mlflow"),
    (f"postgresql://db/mlflow?sslmode=require&password={SECRET}",
     "postgresql://db/mlflow?sslmode=require&password=***"),
    ("sqlite:////home/me/mlflow.db", "sqlite:////home/me/mlflow.db"),
    ("http://mlflow.internal:5000", "http://mlflow.internal:5000"),
    ("databricks", "databricks"),
])
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected
    assert redact_uri(expected) == expected  # idempotent
    assert SECRET not in expected


def test_run_json_and_mlflow_params_hold_no_password():
    from mahppo.algorithms.experiment import Experiment

    exp = Experiment().with_flat({"mlflow_uri": f"http://alice:{SECRET}@127.0.0.1:5000", "mlflow": True})
    assert exp.run.mlflow_uri == f"http://alice:{SECRET}@127.0.0.1:5000"  # in memory only
    # what run.json, the checkpoint sidecar and the MLflow params are made of
    assert SECRET not in json.dumps(exp.to_dict()) and SECRET not in json.dumps(exp.flat())
    assert exp.to_dict()["run"]["mlflow_uri"] == "http://alice:***@127.0.0.1:5000"
    assert exp.with_flat({"seed": 3}).run.mlflow_uri == exp.run.mlflow_uri  # round trips keep it


def test_tune_state_and_printed_ui_command_hold_no_password():
    from mahppo.algorithms.runs.tracking import ui_command
    from mahppo.tune_configs.tracking import MlflowTrialCallback

    uri = f"http://alice:{SECRET}@127.0.0.1:5000"
    assert SECRET not in ui_command(uri)
    pickled = pickle.dumps(MlflowTrialCallback(uri, "tune-x"))  # what Tune writes into tuner.pkl
    assert SECRET.encode() not in pickled
    assert pickle.loads(pickled).uri == redact_uri(uri)


def test_a_redacted_uri_resolves_only_to_the_same_uri_given_again(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    full = f"http://bob:{SECRET}@10.1.2.3:5000"
    stored = redact_uri(full)
    with pytest.raises(ValueError, match=r"http://bob:\*\*\*@10.1.2.3:5000: its credentials are not stored"):
        tracking_uri(stored)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", full)
    assert tracking_uri(stored) == full  # e.g. `mahppo train --resume` with the env var set
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://other:pw@10.9.9.9:5000")
    remember_uri(full)  # e.g. `--mlflow-uri` given again
    assert tracking_uri(stored) == full
    assert REDACTED not in tracking_uri(None)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_listening_fails_in_seconds_naming_the_redacted_uri():
    uri = f"http://alice:{SECRET}@127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    with pytest.raises(ValueError) as exc:
        check_reachable(uri)
    assert time.monotonic() - t0 < 3
    msg = str(exc.value)
    assert msg.startswith(f"MLflow tracking store {redact_uri(uri)} cannot be reached") and SECRET not in msg
    assert "\n" not in msg


def test_a_server_that_never_answers_fails_within_the_probe_timeout():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)  # accepts TCP connections (kernel backlog) but never answers
    try:
        uri = f"http://127.0.0.1:{srv.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(ValueError, match="does not answer over HTTP"):
            check_reachable(uri, timeout_s=1.0)
        assert time.monotonic() - t0 < 3
    finally:
        srv.close()


def test_a_live_http_server_passes_the_probe():
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_error(404)

        def log_message(self, *args):
            pass

    srv = HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        check_reachable(f"http://user:{SECRET}@127.0.0.1:{srv.server_port}")  # a 404 is an answer
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("argv", [
    ["train", "--steps", "100", "--mlflow-uri"],
    ["tune", "--study", "beta", "--samples", "1", "--steps", "100", "--mlflow-uri"],
    ["tune", "report", "beta", "--mlflow-uri"],
])
def test_cli_fails_fast_with_one_line_and_no_password(argv, capsys, tmp_path, monkeypatch):
    from mahppo.cli import main

    monkeypatch.chdir(tmp_path)
    uri = f"http://alice:{SECRET}@127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    assert main([*argv, uri]) == 2
    assert time.monotonic() - t0 < 10  # before any Ray starts
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "cannot be reached" in captured.err and len(captured.err.strip().splitlines()) == 1
