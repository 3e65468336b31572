"""Base-model training and the two-stage compressor training of Sec. 2.4 (Eq. 4).

Stage 1 trains only the autoencoder with ``L_ae = ||T_i - T_o||^2 + xi * CE(M(x), y)`` (Eq. 4; the l2
distance is taken as the mean squared error so that it does not scale with the feature size), with
the base model frozen. Stage 2 fine-tunes the whole model (base + autoencoder) with a small learning
rate on the cross-entropy. The quantizer's ``[min, max]`` is re-calibrated on encoder outputs before
every epoch and once more at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mahppo.compression.compressor import CompressedModel, FeatureCompressor
from mahppo.compression.models import check_model_name, check_point, split


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one compressor run (paper values in comments, Sec. 6.1)."""

    ae_epochs: int = 2  # paper: 30
    ft_epochs: int = 1  # paper: 10
    batch_size: int = 32  # paper: 128
    ae_lr: float = 1e-2  # paper: Adam, 0.1 (too large for our short runs)
    ft_lr: float = 1e-4  # paper: 1e-4
    xi: float = 0.1  # paper: 0.1
    bits: int = 8  # c_q
    max_batches: int | None = None  # cap per epoch (tests, smoke runs)
    calib_batches: int = 4
    threads: int = 1
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def set_threads(n: int) -> None:
    """Pin torch (and OpenMP) to ``n`` threads: the build machine has 2 shared cores."""
    n = max(1, int(n))
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)


def _batches(loader: DataLoader, max_batches: int | None):
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        yield batch


def make_loader(ds: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen, num_workers=0)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, max_batches: int | None = None,
             device: str = "cpu") -> float:
    """Top-1 accuracy in eval mode."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in _batches(loader, max_batches):
        x, y = x.to(device), y.to(device)
        correct += int((model(x).argmax(1) == y).sum())
        total += int(y.numel())
    model.train(was_training)
    return correct / max(total, 1)


def train_base(model: nn.Module, train_ds: Dataset, epochs: int = 4, lr: float = 1e-3, batch_size: int = 32,
               max_batches: int | None = None, seed: int = 0, device: str = "cpu",
               on_epoch: Callable[[int, float], None] | None = None) -> list[float]:
    """Train the base model with Adam + cross-entropy; returns the mean loss per epoch."""
    torch.manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = make_loader(train_ds, batch_size, True, seed)
    losses: list[float] = []
    for epoch in range(int(epochs)):
        total, n = 0.0, 0
        for x, y in _batches(loader, max_batches):
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(y)
            n += len(y)
        losses.append(total / max(n, 1))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    recompute_bn_stats(model, loader, max_batches, device)
    model.eval()
    return losses


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, loader: DataLoader, max_batches: int | None = None,
                       device: str = "cpu") -> None:
    """Re-estimate BatchNorm running statistics as exact averages over the training set.

    Short Adam runs leave running statistics that lag behind the weights; this pass (no gradients)
    makes the eval-mode model match what it learnt.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    for x, _ in _batches(loader, max_batches):
        model(x.to(device))
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    model.eval()


@torch.no_grad()
def calibrate(cmodel: CompressedModel, loader: DataLoader, batches: int, device: str = "cpu") -> None:
    """Calibrate the quantizer range (Eq. 1) on encoder outputs of ``batches`` training batches."""
    was_training = cmodel.training
    cmodel.eval()
    feats = [cmodel.head(x.to(device)) for x, _ in _batches(loader, max(1, batches))]
    cmodel.compressor.calibrate(feats)
    cmodel.train(was_training)


def _freeze_bn(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def train_compressor(model: nn.Module, point: int, rate: float, train_ds: Dataset, test_ds: Dataset,
                     cfg: TrainConfig, device: str = "cpu", model_name: str = "") -> tuple[CompressedModel, dict]:
    """Two-stage training (Sec. 2.4) of a compressor at ``point`` with overall rate ``rate`` (Eq. 3).

    ``model`` is modified in place by stage 2 (fine-tuning). Returns the compressed model and metrics.
    """
    point = check_point(point)
    torch.manual_seed(cfg.seed)
    model.to(device).eval()
    head, tail = split(model, point)
    with torch.no_grad():
        channels = int(head(train_ds[0][0][None].to(device)).shape[1])
    where = f" at {model_name or 'the model'} point {point}"
    comp = FeatureCompressor(channels, rate, cfg.bits, where).to(device)
    cmodel = CompressedModel(head, comp, tail)
    train_loader = make_loader(train_ds, cfg.batch_size, True, cfg.seed)
    test_loader = make_loader(test_ds, cfg.batch_size, False)
    t0 = time.perf_counter()

    # Stage 1: autoencoder only, base frozen (Eq. 4).
    for p in model.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(comp.parameters(), lr=cfg.ae_lr)
    stage1_losses: list[float] = []
    for _ in range(cfg.ae_epochs):
        calibrate(cmodel, train_loader, cfg.calib_batches, device)
        cmodel.eval()  # frozen base: BN uses its running statistics
        total, n = 0.0, 0
        for x, y in _batches(train_loader, cfg.max_batches):
            x, y = x.to(device), y.to(device)
            logits, t_i, t_o = cmodel.forward_with_features(x)
            loss = F.mse_loss(t_o, t_i) + cfg.xi * F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(y)
            n += len(y)
        stage1_losses.append(total / max(n, 1))
    calibrate(cmodel, train_loader, cfg.calib_batches, device)
    stage1_acc = evaluate(cmodel, test_loader, device=device)

    # Stage 2: fine-tune everything with a small learning rate.
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(cmodel.parameters(), lr=cfg.ft_lr)
    for _ in range(cfg.ft_epochs):
        calibrate(cmodel, train_loader, cfg.calib_batches, device)
        cmodel.train()
        _freeze_bn(cmodel)  # small batches: keep the base model's BN statistics
        for x, y in _batches(train_loader, cfg.max_batches):
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(cmodel(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    calibrate(cmodel, train_loader, cfg.calib_batches, device)
    cmodel.eval()
    acc = evaluate(cmodel, test_loader, device=device)
    metrics = {
        "model": check_model_name(model_name) if model_name else "",
        "point": point,
        "rate": comp.rate,
        "channel_rate": comp.channel_rate,
        "bits": comp.bits,
        "channels": channels,
        "reduced_channels": comp.reduced,
        "stage1_accuracy": stage1_acc,
        "accuracy": acc,
        "stage1_loss": stage1_losses[-1] if stage1_losses else float("nan"),
        "train_seconds": time.perf_counter() - t0,
    }
    return cmodel, metrics
