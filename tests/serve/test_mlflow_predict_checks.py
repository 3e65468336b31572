"""The MLflow model's ``predict`` checks a body as the server does (issue 27): unknown top-level keys, NaN
in an optional field, a 5,000-deep ``ue_id`` refused with the server's message, the caller's dict never
changed. A pyfunc model saved to a folder: no tracking store, no Ray."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")


@pytest.fixture(scope="module")
def local_pyfunc(tmp_path_factory):
    """A pyfunc model saved to a folder (no tracking store) of an untrained shared policy."""
    import mlflow.pyfunc

    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.checkpoints import write_untrained_checkpoint
    from mahppo.serve.mlflow_model import save_decision_model

    out = tmp_path_factory.mktemp("pyfunc")
    ckpt = write_untrained_checkpoint(Experiment().with_flat({"num_ues": 3, "max_ues": 8, "actor": "shared"}),
                                      out / "ckpt")
    return mlflow.pyfunc.load_model(str(save_decision_model(ckpt, out / "model")))


def _ues(n=3, **change):
    ues = [{"ue_id": f"ue_{i}", "tasks_left": 150, "local_time_left_s": 0.0, "bits_left": 0.0, "distance_m": 50.0}
           for i in range(n)]
    ues[0].update(change)
    return ues


@pytest.mark.parametrize("body, field, message", [
    ({"ues": _ues(), "lookahaed": True}, "lookahaed", "Extra inputs are not permitted"),
    ({"ues": _ues(point_in_flight=float("nan"))}, "ues[0].point_in_flight", "valid integer"),
    ({"ues": _ues(), "deterministic": "false"}, "deterministic", "valid boolean"),
])
def test_predict_refuses_what_the_server_refuses_with_its_message(local_pyfunc, body, field, message):
    from mahppo.serve.schema import RequestError, parse_request

    with pytest.raises(RequestError) as err:
        local_pyfunc.predict(body)
    with pytest.raises(RequestError) as server:
        parse_request(json.dumps(body))  # the server's validation of the same bytes
    assert err.value.field == server.value.field == field and message in err.value.message


def test_predict_refuses_a_5000_deep_ue_id_without_recursion_error(local_pyfunc):
    from mahppo.serve.schema import RequestError

    deep = "x"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(RequestError) as err:
        local_pyfunc.predict({"ues": _ues(ue_id=deep)})
    assert err.value.status == 400 and "nested" in err.value.message


def test_predict_never_changes_the_callers_dict(local_pyfunc):
    import copy

    body = {"ues": _ues(), "lookahead": False}
    before = copy.deepcopy(body)
    reply = local_pyfunc.predict(body)
    assert body == before and [type(v) for v in body["ues"][0].values()] == [type(v) for v in before["ues"][0].values()]
    assert [d["ue_id"] for d in reply["decisions"]] == ["ue_0", "ue_1", "ue_2"]
