"""The Tune winner as an MLflow pyfunc model: ``predict(body)`` is ``POST /v1/decide`` (a real Serve on
127.0.0.1 serving ``models:/NAME@champion``), with a signature, an input example and an idempotent alias."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mahppo.serve.client import free_port

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")]

N = 3
MODEL = "mahppo-pyfunc"


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A tiny trained policy registered as ``models:/mahppo-pyfunc@champion`` in a temporary SQLite store,
    and the same URI served by Ray Serve: (tracking uri, run id, checkpoint dir, serve url, registration)."""
    import ray
    from mlflow.tracking import MlflowClient
    from ray import serve

    from mahppo.algorithms.experiment import Experiment, RunSettings
    from mahppo.algorithms.params import MAHPPOParams
    from mahppo.algorithms.runs.train import train
    from mahppo.marl_env.config import EnvConfig
    from mahppo.serve.app import QUIET_LOGGING, build_app
    from mahppo.serve.mlflow_model import register_champion

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tmp = tmp_path_factory.mktemp("pyfunc")
    uri = f"sqlite:///{tmp / 'store' / 'mlflow.db'}"
    (tmp / "store").mkdir()
    own_ray = not ray.is_initialized()
    if own_ray:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp / "policy"
        experiment = Experiment(env=EnvConfig(num_ues=N, max_frames=60).validated(), algo=MAHPPOParams(actor="per-ue"),
                                run=RunSettings(steps=1100, eval_every=1, checkpoint_every=1))
        train(experiment, out, progress=False, final_eval=False)
        cl = MlflowClient(tracking_uri=uri)
        exp = cl.create_experiment("tune-pyfunc", artifact_location=str(tmp / "store" / "mlruns" / "tune-pyfunc"))
        run_id = cl.create_run(exp, run_name="winner").info.run_id
        reg = register_champion(uri, MODEL, run_id, out)
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=QUIET_LOGGING)
        serve.run(build_app({"model_uri": reg["model_uri"], "tracking_uri": uri}), name="pyfunc",
                  route_prefix="/", logging_config=QUIET_LOGGING)
        yield {"uri": uri, "run_id": run_id, "policy": out, "url": f"http://127.0.0.1:{port}", "reg": reg,
               "store": tmp / "store"}
    finally:
        serve.shutdown()
        if own_ray:
            ray.shutdown()


@pytest.fixture(scope="module")
def pyfunc(champion):
    import mlflow

    mlflow.set_tracking_uri(champion["uri"])
    return mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")


def _body(seed: int, ints: bool = False, with_total: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    total = rng.integers(1, 300, N)
    ues = []
    for i in range(N):
        ue = {"ue_id": f"ue_{i}", "tasks_left": int(rng.integers(0, total[i] + 1)),
              "local_time_left_s": float(rng.uniform(0, 0.045)), "bits_left": float(rng.uniform(0, 2e5)),
              "distance_m": float(rng.uniform(1, 100))}
        if ints:  # integers where the schema says float: the server accepts them
            ue["bits_left"], ue["distance_m"] = int(ue["bits_left"]), int(ue["distance_m"])
        if with_total:
            ue["total_tasks"] = int(total[i])
        else:
            ue["tasks_left"] = min(ue["tasks_left"], 200)
        ues.append(ue)
    return {"ues": ues[::-1] if seed % 2 else ues}  # any order of UEs


def _post(url: str, body: dict) -> dict:
    from mahppo.serve.client import DecisionClient

    client = DecisionClient(url)
    try:
        status, reply = client.request("POST", "/v1/decide", json.dumps(body).encode())
    finally:
        client.close()
    assert status == 200, reply
    return reply


@pytest.mark.parametrize("seed,ints,with_total", [(0, False, True), (1, False, True), (2, True, True),
                                                  (3, False, False), (4, True, False)])
def test_pyfunc_predict_equals_what_v1_decide_returns(champion, pyfunc, seed, ints, with_total):
    body = _body(seed, ints, with_total)
    served = _post(champion["url"], body)
    assert pyfunc.predict(json.loads(json.dumps(body))) == served
    assert [d["ue_id"] for d in served["decisions"]] == [u["ue_id"] for u in body["ues"]]


def test_pyfunc_predicts_the_input_example_of_the_test_scenario(champion, pyfunc):
    from mlflow.models import Model

    model = Model.load(f"models:/{MODEL}@champion")
    example = json.loads(json.dumps(_load_example(champion)))
    assert [u["ue_id"] for u in example["ues"]] == [f"ue_{i}" for i in range(N)]
    assert all(u["distance_m"] == 50.0 and u["tasks_left"] == 200 for u in example["ues"])
    served = _post(champion["url"], example)
    assert pyfunc.predict(example) == served
    assert model.saved_input_example_info is not None


def _load_example(champion) -> dict:
    import mlflow

    mlflow.set_tracking_uri(champion["uri"])
    path = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}@champion"))
    return json.loads((path / "input_example.json").read_text())


def test_signature_is_the_decide_request_and_response(pyfunc):
    from mlflow.types.schema import Schema

    sig = pyfunc.metadata.signature
    assert sig.inputs is None  # not enforced by MLflow (it would drop unknown keys): predict checks the body
    inputs = Schema.from_json(json.dumps(pyfunc.metadata.metadata["decide_request"]))
    assert inputs.input_names() == ["ues", "deterministic", "lookahead", "frame"]
    assert sig.outputs.input_names() == ["decisions", "policy_id", "lookahead", "lookahead_fallback"]
    ue = inputs.inputs[0].type.dtype
    props = {p.name: p.required for p in ue.properties}
    assert props == {"ue_id": True, "dnn": False, "tasks_left": True, "local_time_left_s": True, "bits_left": True,
                     "distance_m": True, "total_tasks": False, "fading": False, "point_in_flight": False,
                     "channel_in_flight": False}


def test_a_dataframe_of_ue_rows_is_one_state_pool(pyfunc):
    import pandas as pd

    body = _body(8)
    assert pyfunc.predict(pd.DataFrame(body["ues"])) == pyfunc.predict(body)


def test_mlflow_models_serve_answers_an_inputs_body(champion):
    """`mlflow models serve` with `--env-manager local` (the default, virtualenv, needs the network to build
    its environment: not available in the tests)."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": champion["uri"],
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    cmd = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion",
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow models serve did not start"
                time.sleep(1)
        body = _body(9)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps({"inputs": body}).encode(),
                                     {"content-type": "application/json"})
        reply = json.loads(urllib.request.urlopen(req, timeout=30).read())
        assert reply["predictions"] == _post(champion["url"], body)
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)


def test_a_model_saved_with_its_wheel_names_the_wheel_in_its_requirements(champion, tmp_path):
    from mahppo.runtime import pinned_requirements
    from mahppo.serve.mlflow_model import save_decision_model

    path = save_decision_model(champion["policy"], tmp_path / "model", wheel=True)
    lines = (path / "requirements.txt").read_text().split()
    wheels = [ln for ln in lines if ln.startswith("wheels/mahppo-")]
    assert len(wheels) == 1 and (path / wheels[0]).is_file()
    pins = [p for p in pinned_requirements()[1:] if "==" in p]  # (a dependency not installed here stays unpinned)
    assert set(pins) <= set(lines) and not any(ln.startswith("mahppo==") for ln in lines)


def test_several_bodies_give_a_list_of_replies(pyfunc):
    a, b = _body(5), _body(6)
    assert pyfunc.predict([a, b]) == [pyfunc.predict(a), pyfunc.predict(b)]


def test_a_bad_body_raises_naming_the_field_as_the_server_does(champion, pyfunc):
    from mahppo.serve.client import DecisionClient
    from mahppo.serve.schema import RequestError

    body = _body(7)
    body["ues"][1]["ue_id"] = "ue_9"
    with pytest.raises(RequestError) as err:
        pyfunc.predict(json.loads(json.dumps(body)))
    client = DecisionClient(champion["url"])
    status, reply = client.request("POST", "/v1/decide", json.dumps(body).encode())
    client.close()
    assert status == 422 and err.value.field == reply["field"] == "ues[1].ue_id"


def test_registering_the_same_run_again_adds_no_version(champion):
    from mlflow.tracking import MlflowClient

    from mahppo.serve.mlflow_model import register_champion

    again = register_champion(champion["uri"], MODEL, champion["run_id"], champion["policy"])
    cl = MlflowClient(tracking_uri=champion["uri"])
    assert again == champion["reg"] == {"model_uri": f"models:/{MODEL}@champion",
                                        "version_uri": f"models:/{MODEL}/1", "version": 1}
    assert len(cl.search_model_versions(f"name = '{MODEL}'")) == 1
    assert int(cl.get_model_version_by_alias(MODEL, "champion").version) == 1


def test_mahppo_serve_model_uri_resolves_the_champion_to_its_checkpoint(champion):
    from mahppo.algorithms.acting.policy import POLICY_META, download_model, find_checkpoint, load_policy

    os.environ["MLFLOW_TRACKING_URI"] = champion["uri"]
    try:
        local = download_model(f"models:/{MODEL}@champion")  # what `mahppo serve --model-uri` does first
        assert (local / "MLmodel").is_file()
        assert (find_checkpoint(local) / POLICY_META).is_file()
        assert load_policy(f"models:/{MODEL}@champion").agents == [f"ue_{i}" for i in range(N)]
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]


def test_the_model_artefacts_live_next_to_the_store(champion):
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=champion["uri"]).get_run(champion["run_id"])
    root = Path(run.info.artifact_uri)
    assert root.is_relative_to(champion["store"])
    assert (root / "model" / "MLmodel").is_file()


def test_the_trained_policy_refuses_a_cell_with_another_dnn_or_profile(champion, tmp_path):
    """(Uses this module's trained policy.) Same N, points and channels, but other costs: refused."""
    from importlib import resources

    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.marl_env.config import EnvConfig

    policy = load_policy(champion["policy"])
    policy.check_cell(EnvConfig.from_kwargs(num_ues=N))  # the cell it was trained on
    with pytest.raises(ValueError, match=r"ue_1 was trained on dnn 'resnet18'; the cell gives 'vgg11'"):
        policy.check_cell(EnvConfig.from_kwargs(dnn="resnet18,vgg11,resnet18"))
    table = json.loads((resources.files("mahppo.marl_env") / "data" / "jetson_nano_profiles.json").read_text())
    for point in table["models"]["resnet18"]:
        point["front_latency_s"] *= 2  # a slower device, same DNN name and shape
    slow = tmp_path / "slow_device.json"
    slow.write_text(json.dumps(table))
    with pytest.raises(ValueError, match=r"ue_0 was trained on the 'resnet18' profile of the shipped Jetson Nano "
                                         r"profiles; the cell's 'resnet18' profile \(.*slow_device.json\) has other"):
        policy.check_cell(EnvConfig.from_kwargs(num_ues=N, profile_file=str(slow)))
