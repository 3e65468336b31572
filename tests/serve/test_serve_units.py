"""serve/ without Ray: request validation, normalisation, the body limit, config.yaml, CLI errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi import FastAPI, Request
from pydantic import ValidationError

from mahppo.algorithms.runs.checkpoints import write_record
from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.core import MECSystem
from mahppo.marl_env.parallel import CollabInferenceEnv
from mahppo.serve.schema import DecideRequest, RequestError, StateNormalizer, format_loc

AGENTS = ["ue_0", "ue_1", "ue_2"]
ENV = EnvConfig.from_kwargs(num_ues=3, num_channels=2, dnn="resnet18", beta=0.47)
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")  # ray.serve's own

CONFIG_YAML = Path(__file__).resolve().parents[2] / "serve" / "config.yaml"


def _ues(n: int = 3) -> list[dict]:
    return [{"ue_id": f"ue_{i}", "tasks_left": 120, "local_time_left_s": 0.01, "bits_left": 50176,
             "distance_m": 50.0} for i in range(n)]


def _first_field(body: dict) -> str:
    with pytest.raises(ValidationError) as info:
        DecideRequest.model_validate(body)
    return format_loc(info.value.errors()[0]["loc"])


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b["ues"][0].pop("distance_m"), "ues[0].distance_m"),
    (lambda b: b.pop("ues"), "ues"),
    (lambda b: b["ues"][1].update(tasks_left=-1), "ues[1].tasks_left"),
    (lambda b: b["ues"][1].update(bits_left=-0.5), "ues[1].bits_left"),
    (lambda b: b["ues"][2].update(local_time_left_s=float("nan")), "ues[2].local_time_left_s"),
    (lambda b: b["ues"][2].update(distance_m=float("inf")), "ues[2].distance_m"),
    (lambda b: b["ues"][0].update(tasks_left="12"), "ues[0].tasks_left"),
    (lambda b: b["ues"][0].update(tasks_left=1.5), "ues[0].tasks_left"),
    (lambda b: b["ues"][0].update(tasks_left=True), "ues[0].tasks_left"),
    (lambda b: b["ues"][0].update(ue_id=0), "ues[0].ue_id"),
    (lambda b: b["ues"][0].update(distance_m="far"), "ues[0].distance_m"),
    (lambda b: b["ues"][0].update(distance_m=1e13), "ues[0].distance_m"),
    (lambda b: b["ues"][0].update(total_tasks=0), "ues[0].total_tasks"),
    (lambda b: b["ues"][0].update(colour="red"), "ues[0].colour"),
    (lambda b: b.update(deterministic="yes"), "deterministic"),
    (lambda b: b.update(ues={}), "ues"),
    (lambda b: b.update(ues=[]), "ues"),
])
def test_schema_names_the_bad_field(mutate, field):
    body = {"ues": _ues()}
    mutate(body)
    assert _first_field(body) == field


def test_schema_accepts_ints_for_floats_and_defaults():
    req = DecideRequest.model_validate({"ues": [dict(u, distance_m=50) for u in _ues()]})
    assert req.deterministic is True
    assert req.ues[0].total_tasks == 200 and req.ues[0].distance_m == 50.0


def test_normalizer_is_the_env_normalisation():
    norm = StateNormalizer.for_env(AGENTS, ENV)
    env = CollabInferenceEnv(ENV, scenario="test")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):  # a few frames in, so that k, l and n are all non-trivial
        env.step_arrays(rng.integers(0, 6, 3), rng.integers(0, 2, 3), rng.uniform(0.1, 1.0, 3))
    s = env.system
    ues = [{"ue_id": f"ue_{i}", "tasks_left": int(s.tasks_left[i]), "total_tasks": int(s.total_tasks[i]),
            "local_time_left_s": float(s.time_left[i]), "bits_left": float(s.bits_left[i]),
            "distance_m": float(s.distance[i])} for i in range(3)]
    req = DecideRequest.model_validate(json.loads(json.dumps({"ues": ues[::-1]})))  # any order
    state, pos = norm.state(req.ues)
    assert pos == [2, 1, 0]
    assert state.dtype == np.float32
    np.testing.assert_array_equal(state, env.state())


@pytest.mark.parametrize("ids, field", [
    (["ue_0", "ue_1"], "ues"),
    (["ue_0", "ue_1", "ue_2", "ue_3"], "ues[3].ue_id"),
    (["ue_0", "ue_7", "ue_2"], "ues[1].ue_id"),
    (["ue_0", "ue_1", "ue_0"], "ues[2].ue_id"),
])
def test_normalizer_checks_the_ues(ids, field):
    norm = StateNormalizer.for_env(AGENTS, ENV)
    req = DecideRequest.model_validate({"ues": [dict(_ues(1)[0], ue_id=i) for i in ids]})
    with pytest.raises(RequestError) as info:
        norm.state(req.ues)
    assert info.value.field == field and info.value.status == 422


def test_normalizer_rejects_more_tasks_left_than_total():
    norm = StateNormalizer.for_env(AGENTS, ENV)
    ues = _ues()
    ues[1].update(tasks_left=201)
    with pytest.raises(RequestError, match="total_tasks") as info:
        norm.state(DecideRequest.model_validate({"ues": ues}).ues)
    assert info.value.field == "ues[1].tasks_left"


def test_normalizer_scales_match_the_system():
    system = MECSystem(ENV)
    norm = StateNormalizer.for_env(AGENTS, ENV)
    np.testing.assert_array_equal(norm.l_scale, system.l_scale)
    np.testing.assert_array_equal(norm.n_scale, system.n_scale)
    with pytest.raises(ValueError, match="3 UEs"):
        StateNormalizer.for_env(AGENTS[:2], ENV)


def test_format_loc():
    assert format_loc(("body", "ues", 3, "bits_left")) == "ues[3].bits_left"
    assert format_loc(("body",)) == "body"


def test_body_limit_declared_and_streamed():
    import asyncio

    import httpx

    from mahppo.serve.app import BodyLimitMiddleware

    app = FastAPI()
    app.state.max_body_bytes = 1000

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"n": len(await request.body())}

    app.add_middleware(BodyLimitMiddleware, state=app.state)

    async def chunks():  # no Content-Length: counted while streaming
        for _ in range(5):
            yield b"y" * 300

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return [await c.post("/echo", content=b"x" * 1000), await c.post("/echo", content=b"x" * 1001),
                    await c.post("/echo", content=chunks()), await c.post("/echo", content=b"{}")]

    ok, declared, streamed, after = asyncio.run(run())
    assert ok.json() == {"n": 1000}
    assert declared.status_code == 413 and declared.json()["field"] == "body"
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413, streamed.text
    assert after.status_code == 200


def test_config_yaml_is_a_serve_deploy_config():
    from ray.serve.schema import ServeDeploySchema

    from mahppo.serve.app import DEPLOYMENT_NAME, AppArgs, DecisionMaker

    cfg = ServeDeploySchema.model_validate(yaml.safe_load(CONFIG_YAML.read_text()))
    assert cfg.http_options.host == "127.0.0.1"
    (app,) = cfg.applications
    assert app.import_path == "mahppo.serve.app:build_app"
    assert [d.name for d in app.deployments] == [DEPLOYMENT_NAME] == [DecisionMaker.name]
    args = AppArgs.model_validate(app.args)
    assert args.max_batch_size <= app.deployments[0].max_ongoing_requests


def tiny_checkpoint(ckpt):
    """An acting-only checkpoint (weights-only export + sidecar) of one untrained actor (N = 1)."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.rllib.mahppo import env_spaces
    from mahppo.algorithms.rllib.modules import HybridActorModule
    from mahppo.algorithms.runs.checkpoints import write_acting_checkpoint

    env = EnvConfig(num_ues=1).validated()
    _, _, obs, acts = env_spaces(env)
    actor = RLModuleSpec(module_class=HybridActorModule, observation_space=obs, action_space=acts["ue_0"],
                         model_config={"trunk": [8], "branch": 4}).build()
    return write_acting_checkpoint({"ue_0": actor}, ckpt, {"policy_id": "tiny",
                                                          "experiment": Experiment(env=env).to_dict()})


def test_build_app_args(tmp_path):
    from mahppo.serve.app import AppArgs, build_app

    with pytest.raises(ValidationError, match="exactly one"):
        AppArgs()
    with pytest.raises(ValidationError, match="exactly one"):
        AppArgs(checkpoint="a", model_uri="models:/x/1")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        build_app({"checkpoint": str(tmp_path)})
    ckpt = tiny_checkpoint(tmp_path / "checkpoints" / "iter_000001")
    write_record(tmp_path, [{"name": "iter_000001", "iteration": 1}])
    bound = build_app({"checkpoint": str(tmp_path), "max_batch_size": "8"})  # strings as from `serve run`
    assert bound._bound_deployment.init_args == (str(ckpt),)
    assert bound._bound_deployment.init_kwargs["max_batch_size"] == 8


def test_cli_user_errors(tmp_path, capsys):
    from mahppo.cli import main

    assert main(["serve", "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    tiny_checkpoint(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--checkpoint", str(tmp_path), "--port", str(port)]) == 2
        assert "cannot bind" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert main(["query", "--url", f"http://127.0.0.1:{closed}"]) == 2
    assert "cannot reach" in capsys.readouterr().err
    assert main(["simulate", "--via", f"http://127.0.0.1:{closed}"]) == 2
    bad = tmp_path / "pool.json"
    bad.write_text("{not json")
    assert main(["query", "--url", f"http://127.0.0.1:{closed}", "--state-file", str(bad)]) == 2
    assert "not JSON" in capsys.readouterr().err
