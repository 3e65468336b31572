"""Commands do what they say (issue 27): `query` sends the file's request as the server would take it, a
resumed run is never rewritten under another --out, the --steps plan is printed, bad flags, URIs and files
are one line naming them, sidecars are checked by type and range and optionally signed, auth fails closed."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mahppo.cli import main

UE = {"ue_id": "ue_0", "tasks_left": 150, "local_time_left_s": 0.0, "bits_left": 0.0, "distance_m": 50.0}
KEY = "k" * 12 + "-test-key-0123"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


class Recorder(BaseHTTPRequestHandler):
    """A real HTTP endpoint that keeps every body POSTed to it and answers a one-UE decision."""

    bodies: list[bytes] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["content-length"]))
        Recorder.bodies.append(body)
        reply = json.dumps({"decisions": [{"ue_id": "ue_0", "partition_point": 1, "channel": 0, "power_w": 0.5}],
                            "policy_id": "p", "lookahead": json.loads(body).get("lookahead", False)}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    Recorder.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def state_file(tmp_path, body) -> str:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_query_sends_exactly_the_request_in_the_file_lookahead_included(tmp_path, recorder, capsys):
    body = {"ues": [UE], "lookahead": True}
    code, _, err = cli(capsys, "query", "--url", recorder, "--state-file", state_file(tmp_path, body))
    assert code == 0, err
    assert [json.loads(b) for b in Recorder.bodies] == [body]


@pytest.mark.parametrize("body, field", [
    ({"ues": [UE], "lookahaed": True}, "lookahaed: Extra inputs are not permitted"),
    ({"ues": [UE], "deterministic": "false"}, "deterministic: Input should be a valid boolean"),
    ({"ues": [{**UE, "point_in_flight": float("nan")}]}, "ues[0].point_in_flight"),
    ({"ues": [{**UE, "tasks_left": -1}]}, "ues[0].tasks_left"),
])
def test_query_refuses_what_the_server_refuses_naming_file_and_field(tmp_path, recorder, capsys, body, field):
    code, _, err = cli(capsys, "query", "--url", recorder, "--state-file", state_file(tmp_path, body))
    assert code == 2 and field in err and "state.json" in err and len(err.strip().splitlines()) == 1
    assert Recorder.bodies == []  # nothing sent


def test_query_with_a_missing_state_file_names_the_file_not_the_url(tmp_path, capsys):
    code, _, err = cli(capsys, "query", "--url", "http://127.0.0.1:9", "--state-file", str(tmp_path / "nope.json"))
    assert code == 2 and "--state-file" in err and "nope.json" in err and "--url" not in err


def test_query_stochastic_contradicting_the_file_is_refused(tmp_path, recorder, capsys):
    path = state_file(tmp_path, {"ues": [UE], "deterministic": True})
    code, _, err = cli(capsys, "query", "--url", recorder, "--state-file", path, "--stochastic")
    assert code == 2 and "--stochastic" in err and Recorder.bodies == []


def test_resume_with_another_out_is_refused_and_leaves_the_run_as_it_was(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "summary.json").write_text('{"mine": 1}')
    code, _, err = cli(capsys, "train", "--resume", str(run), "--out", str(tmp_path / "other"))
    assert code == 2 and "--out" in err and "--resume" in err and "cp -r" in err
    assert (run / "summary.json").read_text() == '{"mine": 1}' and not (tmp_path / "other").exists()


def test_the_plan_counts_the_warm_start_in_the_steps():
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.train import plan

    text = plan(Experiment().with_flat({"num_ues": 50, "max_ues": 50, "steps": 512, "actor": "shared"}))
    assert "warm start" in text and "200 training episodes" in text and "counted in the env steps" in text
    assert "memory_size = 1024" in text and "512 env steps" in text
    assert "warm start" not in plan(Experiment().with_flat({"warm_start": "none"}))


def test_steps_help_says_the_warm_start_counts():
    from dataclasses import fields

    from mahppo.algorithms.experiment import RunSettings

    text = next(f for f in fields(RunSettings) if f.name == "steps").metadata["help"]
    assert "warm start" in text and "plan" in text


def test_an_unknown_mlflow_scheme_is_one_line_naming_the_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "train", "--mlflow-uri", "garbage://x", "--steps", "1")
    assert code == 2 and "--mlflow-uri" in err and "'garbage'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, flag", [
    (["serve", "--checkpoint", "x", "--batch-wait-ms", "-1"], "--batch-wait-ms"),
    (["serve", "--checkpoint", "x", "--batch-wait-ms", "nan"], "--batch-wait-ms"),
    (["evaluate", "--policy", "local", "--seed", "-1"], "--seed"),
    (["simulate", "--via", "http://127.0.0.1:9", "--seed", "-1"], "--seed"),
])
def test_a_bad_flag_is_one_line_naming_it(capsys, argv, flag):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"argument {flag}" in err and "Traceback" not in err and "pydantic" not in err


@pytest.mark.parametrize("argv, flag", [
    (["--max-batch-size", "5000"], "--max-batch-size 5000: Input should be less than or equal to 1024"),
    (["--lookahead-budget", "100"], "--lookahead-budget 100.0: Input should be less than or equal to 60"),
    (["--max-lookahead", "100"], "--max-lookahead 100: Input should be less than or equal to 64"),
])
def test_serve_settings_out_of_range_are_one_line_naming_the_flag(tmp_path, capsys, argv, flag):
    code, _, err = cli(capsys, "serve", "--checkpoint", str(tmp_path), *argv)
    assert code == 2 and flag in err and len(err.strip().splitlines()) == 1 and "validation error" not in err


# -- sidecars: checked on load, optionally signed ------------------------------------------------

def untrained(out: Path) -> Path:
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.checkpoints import write_untrained_checkpoint

    return write_untrained_checkpoint(Experiment().with_flat({"num_ues": 3, "actor": "per-ue"}), out / "untrained-n3")


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return untrained(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture
def ckpt(ckpt_dir, tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(ckpt_dir, dst)
    return dst


def edit_sidecar(ckpt: Path, change) -> Path:
    side = ckpt / "mahppo_policy.json"
    meta = json.loads(side.read_text())
    change(meta)
    side.write_text(json.dumps(meta))
    return side


def test_evaluate_refuses_a_sidecar_with_d_max_1e300_naming_file_and_field(ckpt, capsys):
    edit_sidecar(ckpt, lambda m: m["experiment"]["env"].update(d_max_m=1e300))
    code, _, err = cli(capsys, "evaluate", "--policy", str(ckpt), "--num-ues", "3")
    assert code == 2 and "mahppo_policy.json" in err and "d_max_m = 1e+300" in err


def test_a_sidecar_iteration_that_is_not_an_integer_names_the_file(ckpt):
    from mahppo.algorithms.runs.checkpoints import read_meta

    side = edit_sidecar(ckpt, lambda m: m.update(iteration="eight"))
    with pytest.raises(ValueError, match=rf"{side}: iteration = 'eight' must be an integer"):
        read_meta(ckpt)


def test_serve_preflight_names_the_sidecar_not_the_request_schema(ckpt):
    from mahppo.serve.lifecycle import preflight

    edit_sidecar(ckpt, lambda m: m["experiment"]["env"].update(d_max_m=1e300))
    with pytest.raises(ValueError) as exc:
        preflight(str(ckpt))
    assert "mahppo_policy.json" in str(exc.value) and "d_max_m" in str(exc.value)
    assert "DecideRequest" not in str(exc.value)


@pytest.fixture
def signing_key(tmp_path, monkeypatch):
    key = tmp_path / "signing.key"
    key.write_text(KEY)
    monkeypatch.setenv("MAHPPO_SIGNING_KEY_FILE", str(key))
    return key


def test_a_signed_checkpoint_loads_with_its_key(tmp_path, signing_key):
    from mahppo.algorithms.acting.policy import load_policy

    ckpt = untrained(tmp_path)
    assert "signature" in json.loads((ckpt / "mahppo_policy.json").read_text())
    assert load_policy(ckpt).agents == ["ue_0", "ue_1", "ue_2"]


def test_with_a_key_a_swapped_weight_file_with_matching_digests_is_refused(tmp_path, signing_key, monkeypatch):
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.algorithms.runs.export import sha256_file

    ckpt = untrained(tmp_path / "a")
    monkeypatch.delenv("MAHPPO_SIGNING_KEY_FILE")
    other = untrained(tmp_path / "b")  # the attacker's weights, unsigned
    weights = ckpt / "policy" / "ue_0.safetensors"
    shutil.copy(other / "policy" / "ue_0.safetensors", weights)
    edit_sidecar(ckpt, lambda m: m["export"]["sha256"].update({"ue_0.safetensors": sha256_file(weights)}))
    load_policy(ckpt)  # without a key, digests that match are all there is to check
    monkeypatch.setenv("MAHPPO_SIGNING_KEY_FILE", str(signing_key))
    with pytest.raises(ValueError, match="signature does not match"):
        load_policy(ckpt)


def test_with_a_key_an_unsigned_checkpoint_is_refused(ckpt, signing_key, capsys):
    code, _, err = cli(capsys, "evaluate", "--policy", str(ckpt), "--num-ues", "3")
    assert code == 2 and "not signed" in err and "MAHPPO_SIGNING_KEY_FILE" in err


def test_an_empty_signing_key_setting_is_an_error_not_no_key(ckpt, monkeypatch, capsys):
    monkeypatch.setenv("MAHPPO_SIGNING_KEY_FILE", "")
    code, _, err = cli(capsys, "evaluate", "--policy", "local", "--num-ues", "2")
    assert code == 2 and "--signing-key-file" in err and "empty path" in err


# -- auth fails closed ---------------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["flag-empty", "env-empty", "empty-file", "missing-file"])
def test_serve_refuses_to_start_with_an_empty_or_unreadable_key(tmp_path, monkeypatch, capsys, setting):
    argv = ["serve", "--checkpoint", str(tmp_path / "none"), "--port", "1"]
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    monkeypatch.delenv("MAHPPO_API_KEY_FILE", raising=False)
    if setting == "flag-empty":
        argv += ["--api-key-file", ""]
    elif setting == "env-empty":
        monkeypatch.setenv("MAHPPO_API_KEY_FILE", "")
    elif setting == "empty-file":
        argv += ["--api-key-file", str(empty)]
    else:
        argv += ["--api-key-file", str(tmp_path / "nope.key")]
    code, _, err = cli(capsys, *argv)
    assert code == 2 and "--api-key-file" in err and len(err.strip().splitlines()) == 1


def test_no_auth_is_the_one_way_past_a_configured_key(tmp_path, monkeypatch):
    from mahppo.serve.guards import api_key_file

    monkeypatch.setenv("MAHPPO_API_KEY_FILE", "")
    assert api_key_file(None) == ""  # refused by load_api_key
    assert api_key_file(None, no_auth=True) is None
    with pytest.raises(ValueError, match="--no-auth with --api-key-file"):
        api_key_file(str(tmp_path / "k"), no_auth=True)
