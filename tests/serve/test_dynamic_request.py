"""A dynamic cell's request: each UE's current fading gain is optional (default 1.0, no fading) and reaches the
shared policy's observation at the feature ``marl_env.observations`` names."""

import pytest
from pydantic import ValidationError

from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.observations import FADING, FEATURES
from mahppo.serve.schema import CellNormalizer, DecideRequest


def _ues(fading=None):
    out = [{"ue_id": f"phone-{i}", "tasks_left": 30 + i, "total_tasks": 60, "local_time_left_s": 0.0,
            "bits_left": 0.0, "distance_m": 20.0 + 10 * i} for i in range(3)]
    for ue, h in zip(out, fading or [], strict=False):
        ue["fading"] = h
    return out


def test_a_dynamic_request_with_fading_gains_is_accepted_and_observed():
    req = DecideRequest.model_validate({"ues": _ues([0.3, 1.0, 2.5])})
    obs, _ = CellNormalizer(EnvConfig(num_ues=3, dnn="resnet18").validated(), max_ues=8).inputs(req.ues)
    assert obs[:, FADING].tolist() == pytest.approx([0.3, 1.0, 2.5])
    assert FADING < FEATURES


def test_a_request_without_fading_observes_no_fading():
    req = DecideRequest.model_validate({"ues": _ues()})
    obs, _ = CellNormalizer(EnvConfig(num_ues=3, dnn="resnet18").validated(), max_ues=8).inputs(req.ues)
    assert obs[:, FADING].tolist() == [1.0, 1.0, 1.0]


def test_a_negative_fading_gain_is_refused_naming_the_field():
    with pytest.raises(ValidationError, match=r"ues\.1\.fading"):
        DecideRequest.model_validate({"ues": _ues([1.0, -0.5])})
