"""Training on a tiny trained model: the compressed path changes logits only slightly (Sec. 2.4)."""

from __future__ import annotations

import pytest
import torch

from mahppo.compression.compressor import FeatureCompressor
from mahppo.compression.data import DataSpec, make_datasets
from mahppo.compression.models import build_model, split
from mahppo.compression.runner import select_rates
from mahppo.compression.train import TrainConfig, evaluate, make_loader, set_threads, train_base, train_compressor


@pytest.fixture(scope="module")
def trained():
    set_threads(1)
    spec = DataSpec(image_size=32, num_classes=4, train_per_class=40, test_per_class=15, seed=1)
    train_ds, test_ds, n = make_datasets(spec)
    torch.manual_seed(0)
    model = build_model("resnet18", n)
    losses = train_base(model, train_ds, epochs=4, batch_size=16)
    x = torch.stack([test_ds[i][0] for i in range(len(test_ds))])
    with torch.no_grad():
        logits = model(x)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    acc = evaluate(model, make_loader(test_ds, 64, False))
    return model, state, train_ds, test_ds, x, logits, losses, acc


def _change(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """Relative logit change and top-1 agreement."""
    return float((out - ref).norm() / ref.norm()), float((out.argmax(1) == ref.argmax(1)).float().mean())


@pytest.mark.slow  # the trained fixture
def test_base_training_learns(trained):
    model, _, _, _, _, _, losses, acc = trained
    assert losses[-1] < losses[0]
    assert acc > 0.4  # 4 classes: chance is 0.25
    assert not model.training


@pytest.mark.slow  # the trained fixture
@pytest.mark.parametrize("point", [1, 4])
def test_quantization_only_path_changes_logits_slightly(trained, point):
    """R = 4 (R_c = 1) with identity 1x1 convs: only the 8-bit rounding of Eqs. 1-2 remains."""
    model, state, _, _, x, logits, _, _ = trained
    model.load_state_dict(state)
    model.eval()
    head, tail = split(model, point)
    with torch.no_grad():
        feat = head(x)
        ch = feat.shape[1]
        comp = FeatureCompressor(ch, rate=4)
        eye = torch.eye(ch)[:, :, None, None]
        comp.encoder.weight.copy_(eye)
        comp.decoder.weight.copy_(eye)
        comp.encoder.bias.zero_()
        comp.decoder.bias.zero_()
        comp.calibrate(feat)
        out = tail(comp.decode(comp.encode(feat)))
    rel, agree = _change(out, logits)
    assert 0 < rel < 0.03
    assert agree >= 0.95


@pytest.mark.slow  # the trained fixture
def test_two_stage_training_brings_compressed_logits_close(trained):
    model, state, train_ds, test_ds, x, logits, _, base_acc = trained
    model.load_state_dict(state)
    model.eval()
    head, tail = split(model, 4)
    torch.manual_seed(0)
    with torch.no_grad():
        feat = head(x)
        untrained = FeatureCompressor(feat.shape[1], rate=16)
        untrained.calibrate(feat)
        rel_untrained, _ = _change(tail(untrained(feat)), logits)
    # stage 1 only: the base is frozen, so its logits are the reference
    cfg = TrainConfig(ae_epochs=3, ft_epochs=0, batch_size=16)
    cmodel, row = train_compressor(model, 4, 16, train_ds, test_ds, cfg, model_name="resnet18")
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        rel_trained, agree = _change(cmodel(x), logits)
    assert row["rate"] == 16 and row["channel_rate"] == 4 and row["reduced_channels"] == 128
    assert rel_trained < 0.5 * rel_untrained
    assert agree >= 0.7
    assert bool(cmodel.compressor.quantizer.calibrated)
    # stage 2 fine-tunes everything and keeps the accuracy near the base model's
    cfg = TrainConfig(ae_epochs=2, ft_epochs=1, batch_size=16)
    _, row = train_compressor(model, 4, 16, train_ds, test_ds, cfg, model_name="resnet18")
    assert any(not torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert row["accuracy"] >= base_acc - 0.15
    model.load_state_dict(state)


def test_select_rates_picks_largest_rate_under_the_bound():
    rows = [
        {"point": 1, "rate": 16.0, "accuracy_loss": 0.005},
        {"point": 1, "rate": 32.0, "accuracy_loss": 0.019},
        {"point": 1, "rate": 64.0, "accuracy_loss": 0.08},
        {"point": 2, "rate": 16.0, "accuracy_loss": 0.03},
        {"point": 3, "rate": 16.0, "accuracy_loss": -0.01},
        {"point": 3, "rate": 64.0, "accuracy_loss": 0.0},
    ]
    chosen = select_rates(rows, 0.02)
    assert chosen[1]["rate"] == 32.0 and chosen[2] is None and chosen[3]["rate"] == 64.0
    assert [r["selected"] for r in rows] == [False, True, False, False, False, True]
    assert select_rates(rows, 0.1)[1]["rate"] == 64.0
