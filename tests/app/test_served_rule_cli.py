"""A classical rule behind Serve: ``mahppo serve --baseline NAME``, and ``mahppo simulate --via`` against it giving
what ``mahppo evaluate --policy NAME`` gives on the same cell and seeds."""

import json
import os

import pytest

from mahppo.cli import main
from mahppo.serve.client import free_port


def test_an_unknown_baseline_is_one_line_naming_the_flag_and_the_rules(capsys):
    assert main(["serve", "--baseline", "rotat", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--baseline 'rotat'" in err and "rotate" in err and "maxweight" in err and "myopic" in err


def test_cell_options_with_a_checkpoint_are_refused_naming_them(capsys, tmp_path):
    assert main(["serve", "--checkpoint", str(tmp_path), "--num-channels", "3"]) == 2
    assert "--num-channels: the cell of a served rule (--baseline)" in capsys.readouterr().err


@pytest.fixture(scope="module")
def served():
    """One Ray + Serve serving ``rotate`` on the default cell (the test scenario, N = 3)."""
    import ray
    from ray import serve

    from mahppo.serve.app import QUIET_LOGGING, build_app

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    own_ray = not ray.is_initialized()
    if own_ray:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=QUIET_LOGGING)
        serve.run(build_app({"baseline": "rotate", "no_auth": True}), name="rotate", route_prefix="/",
                  logging_config=QUIET_LOGGING)
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        if own_ray:
            ray.shutdown()


def _run(capsys, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    return {k: v for k, v in out.items() if not k.startswith("decision_ms") and k not in ("via", "requests",
                                                                                            "lookahead")}


@pytest.mark.slow
def test_simulate_via_a_served_rotate_gives_evaluate_s_episode(served, capsys):
    from mahppo.serve.client import DecisionClient

    info = DecisionClient(served).model()
    assert info["rule"] == info["policy_id"] == "rotate" and info["num_ues"] == 3
    via = _run(capsys, "simulate", "--via", served)
    local = _run(capsys, "evaluate", "--policy", "rotate")
    assert via == local and via["reward"] < 0  # exactly: the same decisions every frame
