"""End to end: train a tiny policy, ``serve.run`` it on 127.0.0.1, and talk HTTP to it."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from mahppo.serve.client import free_port

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")]

CONFIG_YAML = Path(__file__).resolve().parents[2] / "serve" / "config.yaml"
N = 3


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, checkpoint dir, in-process policy): one Ray + Serve for the module, shut down after."""
    import ray
    from ray import serve

    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.train import train
    from mahppo.serve.app import QUIET_LOGGING, build_app

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    own_ray = not ray.is_initialized()
    if own_ray:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    out = tmp_path_factory.mktemp("serve_policy")
    try:
        train(Experiment().with_flat({"actor": "per-ue", "num_ues": N, "steps": 1100, "eval_every": 1,
                                      "checkpoint_every": 1}), out, progress=False, final_eval=False)
        # a shared policy trained on cells of 2-4 UEs with a DNN mix, served beside it under /shared
        shared = out.parent / f"{out.name}_shared"
        from mahppo.cli import main

        assert main(["train", "--actor", "shared", "--num-ues", "2-4", "--dnn", "resnet18,vgg11", "--steps", "600",
                     "--memory-size", "256", "--batch-size", "64", "--reuse-time", "2",
                     "--num-envs-per-env-runner", "4", "--out", str(shared), "--json"]) == 0
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=QUIET_LOGGING)
        app_cfg = yaml.safe_load(CONFIG_YAML.read_text())["applications"][0]
        serve.run(build_app({**app_cfg["args"], "checkpoint": str(out)}), name=app_cfg["name"],
                  route_prefix=app_cfg["route_prefix"], logging_config=app_cfg["logging_config"])
        serve.run(build_app({"checkpoint": str(shared)}), name="shared", route_prefix="/shared",
                  logging_config=app_cfg["logging_config"])
        yield f"http://127.0.0.1:{port}", out, load_policy(out), shared
    finally:
        serve.shutdown()
        if own_ray:
            ray.shutdown()


@pytest.fixture
def client(served):
    from mahppo.serve.client import DecisionClient

    c = DecisionClient(served[0])
    yield c
    c.close()


def _pool(rng: np.random.Generator, n: int = N) -> list[dict]:
    total = rng.integers(1, 300, n)
    return [{"ue_id": f"ue_{i}", "tasks_left": int(rng.integers(0, total[i] + 1)), "total_tasks": int(total[i]),
             "local_time_left_s": float(rng.uniform(0, 0.045)), "bits_left": float(rng.uniform(0, 2e5)),
             "distance_m": float(rng.uniform(1, 100))} for i in range(n)]


def _in_process(policy, ues: list[dict], deterministic: bool = True):
    from mahppo.marl_env.core import normalize_state
    from mahppo.serve.schema import StateNormalizer

    norm = StateNormalizer.for_env(policy.agents, policy.env)
    by_id = {u["ue_id"]: u for u in ues}
    cols = [[by_id[a].get(k, 200) for a in policy.agents]
            for k in ("tasks_left", "total_tasks", "local_time_left_s", "bits_left", "distance_m")]
    state = normalize_state(*map(np.asarray, cols), norm.l_scale, norm.n_scale, norm.d_min_m, norm.d_max_m)
    pts, chs, pws = policy.act_batch(state[None, :], deterministic)
    return pts[0], chs[0], pws[0]


def test_healthz_model_docs(served, client):
    url, out, policy, _ = served
    h = client.health()
    assert h["status"] == "ok" and h["policy_id"] == policy.name and h["rss_bytes"] > 0
    m = client.model()
    assert m["policy_id"] == policy.name
    assert m["num_ues"] == N and m["agents"] == policy.agents and m["num_channels"] == 2
    assert m["dnn"] == ["resnet18"] * N and m["points_per_ue"] == [6] * N and m["beta"] == 0.47
    assert m["trained_at"] == policy.meta["trained_at"]
    status, page = client.request("GET", "/docs")  # self-contained: no script or style from elsewhere
    assert status == 200 and "openapi.json" in page and "v1/decide" in page
    assert "<script src" not in page and "<link" not in page and "cdn" not in page.lower()
    status, spec = client.request("GET", "/openapi.json")
    assert status == 200 and {"/v1/decide", "/v1/model", "/healthz"} <= set(spec["paths"])


def test_decide_valid_and_equal_to_in_process(served, client):
    _, _, policy, _ = served
    info = client.model()
    rng = np.random.default_rng(1)
    for trial in range(8):
        ues = _pool(rng)
        if trial % 2:
            ues = ues[::-1]  # any order; answers come back in the request's order
        if trial == 0:
            for u in ues:
                del u["total_tasks"]  # default: the test scenario's 200
                u["tasks_left"] = min(u["tasks_left"], 200)
        dec = client.decide(ues)
        assert [d["ue_id"] for d in dec] == [u["ue_id"] for u in ues]
        pts, chs, pws = _in_process(policy, ues)
        for d in dec:
            i = policy.agents.index(d["ue_id"])
            assert 0 <= d["partition_point"] < info["points_per_ue"][i]
            assert 0 <= d["channel"] < info["num_channels"]
            assert 0.0 <= d["power_w"] <= info["p_max_w"]
            assert (d["partition_point"], d["channel"], d["power_w"]) == (pts[i], chs[i], pws[i])
    sampled = client.decide(_pool(rng), deterministic=False)
    assert all(0 <= d["partition_point"] < 6 and 0 <= d["channel"] < 2 for d in sampled)


def _good(rng=None) -> bytes:
    return json.dumps({"ues": _pool(rng or np.random.default_rng(0))}).encode()


def _bad_cases() -> list[tuple[str, bytes, int, str]]:
    base = json.loads(_good())

    def edit(fn) -> bytes:
        body = json.loads(json.dumps(base))
        fn(body)
        return json.dumps(body).encode()

    extra = dict(base["ues"][0], ue_id="ue_3")
    return [
        ("too few UEs", edit(lambda b: b["ues"].pop()), 422, "ues"),
        ("too many UEs", edit(lambda b: b["ues"].append(extra)), 422, "ues[3].ue_id"),
        ("no UEs", b'{"ues": []}', 422, "ues"),
        ("unknown id", edit(lambda b: b["ues"][1].update(ue_id="cell7")), 422, "ues[1].ue_id"),
        ("duplicate id", edit(lambda b: b["ues"][2].update(ue_id="ue_0")), 422, "ues[2].ue_id"),
        ("missing field", edit(lambda b: b["ues"][1].pop("bits_left")), 422, "ues[1].bits_left"),
        ("missing ues", b'{"deterministic": true}', 422, "ues"),
        ("negative", edit(lambda b: b["ues"][0].update(distance_m=-3.0)), 422, "ues[0].distance_m"),
        ("negative count", edit(lambda b: b["ues"][2].update(tasks_left=-1)), 422, "ues[2].tasks_left"),
        ("NaN", _good().replace(b'"local_time_left_s": ', b'"local_time_left_s": NaN, "x": ', 1), 422,
         "ues[0].local_time_left_s"),
        ("Infinity", edit(lambda b: b["ues"][1].update(bits_left=float("inf"))), 422, "ues[1].bits_left"),
        ("overflow", _good().replace(b'"distance_m": ', b'"distance_m": 1e999, "y": ', 1), 422,
         "ues[0].distance_m"),
        ("string for int", edit(lambda b: b["ues"][0].update(tasks_left="7")), 422, "ues[0].tasks_left"),
        ("float for int", edit(lambda b: b["ues"][0].update(tasks_left=7.5)), 422, "ues[0].tasks_left"),
        ("int for id", edit(lambda b: b["ues"][0].update(ue_id=0)), 422, "ues[0].ue_id"),
        ("bad flag", edit(lambda b: b.update(deterministic="no")), 422, "deterministic"),
        ("ues not a list", b'{"ues": {"ue_0": {}}}', 422, "ues"),
        ("body not an object", b"[1, 2]", 422, "body"),
        ("unknown field", edit(lambda b: b["ues"][0].update(power=1)), 422, "ues[0].power"),
        ("more tasks than total", edit(lambda b: b["ues"][0].update(tasks_left=999, total_tasks=10)), 422,
         "ues[0].tasks_left"),
        ("not JSON", b'{"ues": [', 400, "body"),
        ("oversized body", b" " * (1 << 20) + b"{}", 413, "body"),
    ]


@pytest.mark.parametrize("name, body, status, field", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_request_then_good_one(served, client, name, body, status, field):
    got, reply = client.request("POST", "/v1/decide", body)
    assert got == status, reply
    assert reply["field"] == field, reply
    assert reply["detail"].startswith(field)
    assert len(client.decide(json.loads(_good())["ues"])) == N  # still serving


def test_concurrent_requests_are_batched(served, client):
    from mahppo.serve.client import DecisionClient

    _, _, policy, _ = served
    pools = [_pool(np.random.default_rng(100 + i)) for i in range(32)]
    before = client.health()
    results: list = [None] * len(pools)
    barrier = threading.Barrier(len(pools))

    def worker(i: int) -> None:
        c = DecisionClient(served[0])
        c.model()  # connect first
        barrier.wait()
        results[i] = c.decide(pools[i])
        c.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(pools))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    after = client.health()
    assert after["requests"] - before["requests"] == len(pools)
    assert after["batches"] - before["batches"] < len(pools)  # some requests shared a forward pass
    for ues, dec in zip(pools, results, strict=True):
        pts, chs, pws = _in_process(policy, ues)
        assert [d["partition_point"] for d in dec] == list(pts)
        assert [d["channel"] for d in dec] == list(chs)
        np.testing.assert_allclose([d["power_w"] for d in dec], pws, rtol=1e-6)


def test_simulate_via_http_equals_in_process_evaluate(served, capsys):
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.cli import main
    from mahppo.marl_env.evaluation import evaluate

    url, out, _, _ = served
    assert main(["simulate", "--via", url, "--json"]) == 0
    remote = json.loads(capsys.readouterr().out)
    policy = load_policy(out)
    local = evaluate(policy, policy.env.with_updates(scenario="test"))
    assert remote["requests"] > 0
    for key, value in local.items():
        assert remote[key] == value, key  # exactly: same state, same forward pass, JSON round-trips floats


def test_query_cli(served, capsys, tmp_path):
    from mahppo.cli import main

    url = served[0]
    assert main(["query", "--url", url]) == 0
    table = capsys.readouterr().out
    assert all(f"| ue_{i} |" in table for i in range(N))
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps({"ues": _pool(np.random.default_rng(5))}))
    assert main(["query", "--url", url, "--state-file", str(pool), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["decisions"]) == N
    pool.write_text(json.dumps(_pool(np.random.default_rng(5))[:2]))
    assert main(["query", "--url", url, "--state-file", str(pool)]) == 2
    assert "expected 3 UEs" in capsys.readouterr().err


def test_a_shared_policy_decides_a_cell_of_any_size_and_dnn_mix(served):
    """Trained on 2-4 UEs; asked for 6 UEs with any ids and mixed DNNs: same decisions as in process."""
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.serve.client import DecisionClient, DecisionError
    from mahppo.serve.schema import DecideRequest, normalizer_for

    url, _, _, shared = served
    client = DecisionClient(f"{url}/shared")
    info = client.model()
    assert info["actor"] == "shared" and info["max_ues"] == 256  # any N up to MAX_UES
    rng = np.random.default_rng(3)
    ues = [dict(u, ue_id=f"phone-{i}", dnn=["resnet18", "vgg11", "mobilenetv2"][i % 3])
           for i, u in enumerate(_pool(rng, 6))]
    dec = client.decide(ues)
    assert [d["ue_id"] for d in dec] == [u["ue_id"] for u in ues]
    policy = load_policy(shared)
    obs, _ = normalizer_for(policy).inputs(DecideRequest.model_validate({"ues": ues}).ues)
    pts, chs, pws = policy.act_batch(obs)
    for j, d in enumerate(dec):
        assert (d["partition_point"], d["channel"]) == (pts[j, 0], chs[j, 0])
        assert d["power_w"] == pytest.approx(min(max(pws[j, 0], 1e-10), 1.0), rel=1e-6)
        assert 0 <= d["partition_point"] < 6
    with pytest.raises(DecisionError) as exc:  # a DNN the policy's profile file does not hold
        client.decide([dict(ues[0], dnn="alexnet")])
    assert exc.value.status == 422 and exc.value.field == "ues[0].dnn"
    big = client.decide([dict(ues[0], ue_id=f"u{i}") for i in range(40)])  # no max_ues: 40 UEs are decided
    assert len(big) == 40
    with pytest.raises(DecisionError) as exc:  # more UEs than any cell has (MAX_UES = 256)
        client.decide([dict(ues[0], ue_id=f"u{i}") for i in range(257)])
    assert exc.value.status == 422 and exc.value.field == "ues"
    client.close()


def test_evaluate_a_shared_policy_on_a_cell_it_never_saw(served):
    from mahppo.cli import main

    shared = served[3]
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "mahppo", "evaluate", "--policy", str(shared), "--num-ues", "6",
                          "--dnn", "resnet18,vgg11,mobilenetv2,resnet18,vgg11,mobilenetv2", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["tasks_completed"] == 6 * 200
    assert main(["evaluate", "--policy", str(shared), "--num-ues", "17"]) == 0  # no max_ues: any N
    assert main(["evaluate", "--policy", str(shared), "--num-ues", "300"]) == 2  # above MAX_UES: a clear error
    # a --dnn list alone gives the cell (one UE per name), whatever N the policy was trained with
    assert main(["evaluate", "--policy", str(shared), "--dnn", "resnet18,vgg11,mobilenetv2,vgg11,resnet18"]) == 0


def test_the_served_lookahead_decides_as_the_env_s_lookahead_and_survives_bad_requests(served):
    """``"lookahead": true`` over HTTP: a mid-episode cell's state pool (with the busy UEs' point and channel
    in flight) gets the decisions ``Lookahead`` gives on the env itself; a per-UE policy and a busy UE with
    no point in flight are 422s naming the field, and the server keeps serving."""
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.marl_env.lookahead import Lookahead
    from mahppo.marl_env.observations import tokens_for
    from mahppo.marl_env.parallel import CollabInferenceEnv
    from mahppo.marl_env.policies import rotate_actions
    from mahppo.serve.client import DecisionClient, DecisionError

    url, _, _, shared = served
    policy = load_policy(shared)
    ids = ["phone-a", "cam-7", "phone-b"]
    env = CollabInferenceEnv(policy.env, ue_specs=["resnet18", "vgg11", "resnet18"], scenario="test")
    env.reset(seed=0)
    for _ in range(2):
        env.step_arrays(*rotate_actions(env.work_left_s(), env.system.num_actions, 2, 1, 0.5))
    s = env.system
    env.tokens = tokens_for(ids, s.distance)
    la = Lookahead(policy)
    la.reset(env.view())
    want = la.act(env.view())
    busy = (s.time_left > 0) | (s.bits_left > 0)
    ues = [{"ue_id": ids[i], "dnn": ["resnet18", "vgg11", "resnet18"][i], "tasks_left": int(s.tasks_left[i]),
            "local_time_left_s": float(s.time_left[i]), "bits_left": float(s.bits_left[i]),
            "distance_m": float(s.distance[i]),
            **({"point_in_flight": int(s.point[i]), "channel_in_flight": int(s.channel[i])} if busy[i] else {})}
           for i in range(3)]
    client = DecisionClient(f"{url}/shared")
    dec = client.decide(ues, lookahead=True)
    assert [(d["partition_point"], d["channel"]) for d in dec] == list(zip(want[0], want[1], strict=True))
    assert [d["power_w"] for d in dec] == pytest.approx(list(want[2]), rel=1e-6)
    k = int(np.flatnonzero(busy)[0])
    with pytest.raises(DecisionError) as exc:
        client.decide([{key: v for key, v in u.items() if key != "point_in_flight" or j != k}
                       for j, u in enumerate(ues)], lookahead=True)
    assert exc.value.status == 422 and exc.value.field == f"ues[{k}].point_in_flight"
    per_ue = DecisionClient(url)
    with pytest.raises(DecisionError) as exc:
        per_ue.decide(_pool(np.random.default_rng(0)), lookahead=True)
    assert exc.value.status == 422 and exc.value.field == "lookahead"
    assert client.decide(ues) and client.health()["status"] == "ok"  # still serving
    client.close()
    per_ue.close()
