"""Unit tests of compression/: split models, Eqs. 1-3, the compressor, the power table, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mahppo.compression.compressor import (
    FeatureCompressor,
    Quantizer,
    channel_rate_for,
    dequantize,
    overall_rate,
    quantize,
    reduced_channels_for,
)
from mahppo.compression.models import (
    MODEL_NAMES,
    POINTS,
    build_model,
    feature_channels,
    feature_shape,
    model_name_of,
    split,
)
from mahppo.compression.profiles import JETSON_NANO_POWER_W, jalad_bits, median_latency

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]

# Feature sizes at 3x224x224 from the authors' measured profile (raw_bits / 32).
PAPER_FEATURES = {
    "resnet18": [(64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)],
    "vgg11": [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14)],
    "mobilenetv2": [(16, 112, 112), (24, 56, 56), (32, 28, 28), (64, 14, 14)],
}


@pytest.fixture(scope="module", params=MODEL_NAMES)
def model(request):
    torch.manual_seed(0)
    return build_model(request.param, num_classes=7).eval()


@pytest.mark.parametrize("bits", [2, 4, 8, 12])
def test_quantize_round_trip_error_at_most_half_step(bits):
    gen = torch.Generator().manual_seed(bits)
    x = torch.randn(4, 8, 5, 5, generator=gen) * 3 + 1
    lo, hi = x.min(), x.max()
    y = quantize(x, lo, hi, bits)
    assert float(y.min()) >= 0 and float(y.max()) <= 2**bits - 1
    assert torch.equal(y, torch.round(y))
    step = float(hi - lo) / (2**bits - 1)
    err = (dequantize(y, lo, hi, bits) - x).abs().max()
    assert float(err) <= step / 2 * (1 + 1e-4)
    # the extremes are represented exactly (Eq. 1 maps min -> 0, max -> 2^c_q - 1)
    assert int(y.flatten()[x.flatten().argmin()]) == 0
    assert int(y.flatten()[x.flatten().argmax()]) == 2**bits - 1


def test_quantizer_module_calibrates_and_stores_range():
    q = Quantizer(8)
    feats = [torch.linspace(-2.0, 0.5, 100), torch.linspace(-1.0, 3.0, 50)]
    q.calibrate(feats)
    assert float(q.lo) == pytest.approx(-2.0) and float(q.hi) == pytest.approx(3.0)
    state = q.state_dict()
    assert {"lo", "hi", "calibrated"} <= set(state)
    q2 = Quantizer(8)
    q2.load_state_dict(state)
    x = torch.rand(1000) * 5 - 2
    codes = q2.quantize(x)
    assert codes.dtype == torch.uint8
    assert float((q2.dequantize(codes) - x).abs().max()) <= q2.step / 2 * (1 + 1e-4)
    # forward (train-time path) equals quantize -> dequantize exactly
    assert torch.allclose(q2(x), q2.dequantize(codes), atol=1e-6)


def test_straight_through_estimator_passes_gradient_to_encoder():
    comp = FeatureCompressor(16, rate=16, bits=8)
    x = torch.randn(2, 16, 4, 4)
    comp.calibrate(x)
    comp(x).square().sum().backward()
    assert comp.encoder.weight.grad is not None
    assert float(comp.encoder.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("ch, ch_red, bits, expected", [(64, 16, 8, 16.0), (512, 16, 8, 128.0),
                                                        (24, 2, 8, 48.0), (64, 64, 4, 8.0)])
def test_overall_rate_eq3(ch, ch_red, bits, expected):
    assert overall_rate(ch, ch_red, bits) == pytest.approx(expected)
    assert overall_rate(ch, ch_red, bits) == pytest.approx((ch / ch_red) * (32 / bits))


def test_rate_to_channels_and_back():
    for rate in (4, 8, 16, 32, 64, 128):
        r_c = channel_rate_for(rate, 8)
        assert r_c == rate // 4
        comp = FeatureCompressor(512, rate, 8)
        assert comp.reduced == 512 // r_c
        assert comp.rate == pytest.approx(rate)


def test_split_is_exact_for_every_point(model):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
        for point in POINTS:
            head, tail = split(model, point)
            assert not head.training and not tail.training
            assert torch.equal(tail(head(x)), expected), f"point {point}"


def test_split_shares_parameters(model):
    head, tail = split(model, 2)
    ids = {id(p) for p in model.parameters()}
    assert {id(p) for p in head.parameters()} | {id(p) for p in tail.parameters()} == ids


def test_feature_shapes_match_the_papers_points(model):
    key = model_name_of(model)
    for point, expected in zip(POINTS, PAPER_FEATURES[key], strict=True):
        assert feature_shape(model, point) == expected
        assert feature_channels(key, point) == expected[0]
    assert not model.training


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_encoder_decoder_shapes_every_point(name):
    torch.manual_seed(0)
    m = build_model(name, 5).eval()
    x = torch.randn(1, 3, 64, 64)
    for point in POINTS:
        head, tail = split(m, point)
        with torch.no_grad():
            feat = head(x)
            ch = feat.shape[1]
            rate = 16 if ch % 4 == 0 else 8  # mobilenetv2 point 2 has 24 channels
            comp = FeatureCompressor(ch, rate)
            comp.calibrate(feat)
            codes = comp.encode(feat)
            assert codes.shape == (1, ch // channel_rate_for(rate), *feat.shape[2:])
            assert codes.dtype == torch.uint8
            restored = comp.decode(codes)
            assert restored.shape == feat.shape
            assert torch.allclose(restored, comp(feat), atol=1e-5)
            assert tail(restored).shape == (1, 5)


def test_jetson_power_table_matches_shipped_profile():
    data = json.loads((REPO / "marl_env" / "data" / "jetson_nano_profiles.json").read_text())
    for name, entries in data["models"].items():
        assert JETSON_NANO_POWER_W[name] == tuple(float(e["front_power_w"]) for e in entries)


def test_jalad_bits_shrink_for_sparse_features():
    dense = torch.randn(64, 16, 16, generator=torch.Generator().manual_seed(0))
    sparse = torch.relu(dense - 1.5)
    raw = dense.numel() * 32
    assert raw / jalad_bits(dense) < raw / jalad_bits(sparse)
    assert raw / jalad_bits(dense) > 3  # 8-bit quantization alone gives ~4x


def test_median_latency_is_the_median_timed_call_after_the_warmup():
    import time

    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.05 if len(calls) == 4 else 0.002)  # one slow outlier among the 3 timed calls

    t = median_latency(fn, warmup=2, repeats=3)
    assert len(calls) == 5  # 2 untimed + 3 timed
    assert 0.002 <= t < 0.02  # the median, not the 0.05 s outlier nor the mean


@pytest.mark.parametrize("call, field", [
    (lambda: build_model("resnet50"), "--model"),
    (lambda: split(build_model("resnet18", 3), 5), "--points"),
    (lambda: reduced_channels_for(24, 64, 8), "--rates"),
    (lambda: channel_rate_for(10, 8), "--rates"),
    (lambda: Quantizer(0), "--bits"),
])
def test_bad_inputs_name_the_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()


def _cli(argv, capsys):
    from mahppo.cli import main

    rc = main(argv)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["compress", "--model", "alexnet"], "'alexnet'"),
    (["compress", "--points", "1,7"], "7"),
    (["compress", "--model", "mobilenetv2", "--rates", "64", "--points", "2"], "24 channels"),
    (["compress", "--data", "/nonexistent/caltech"], "/nonexistent/caltech"),
    (["compress", "train-base", "--data", "/nonexistent/caltech"], "/nonexistent/caltech"),
    (["compress", "--base", "/nonexistent/base.pt", "--points", "1", "--rates", "16"], "/nonexistent/base.pt"),
    (["compress", "--epochs", "0"], "--epochs"),
])
def test_cli_bad_input_is_one_line_and_exit_2(argv, needle, capsys, tmp_path):
    rc, err = _cli([*argv, "--out", str(tmp_path / "out")], capsys)
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("mahppo compress: error:") and needle in lines[0]
