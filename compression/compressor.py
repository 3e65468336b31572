"""Lightweight autoencoder + quantization feature compressor (paper Sec. 2.2-2.3, Eqs. 1-3).

The encoder and the decoder are one 1x1 convolution each (``ch -> ch/R_c -> ch``). Between them the
encoded feature is quantized to ``c_q``-bit integers with a min/max range calibrated on a set of
features (Eq. 1) and dequantized on the edge (Eq. 2). Rounding uses a straight-through estimator in
training so that the gradient of Eq. 4 reaches the encoder.
"""

from __future__ import annotations

import torch
from torch import nn

FLOAT_BITS = 32


def overall_rate(channels: int, reduced_channels: int, bits: int = 8) -> float:
    """Overall compression rate, Eq. 3: ``R = R_c * R_q = ch * 32 / (ch' * c_q)``."""
    return channels * FLOAT_BITS / (reduced_channels * bits)


def channel_rate_for(rate: float, bits: int = 8) -> int:
    """The channel-reduction rate ``R_c`` that gives overall rate ``rate`` with ``c_q = bits`` (Eq. 3)."""
    r_c = float(rate) * bits / FLOAT_BITS
    if r_c < 1 or abs(r_c - round(r_c)) > 1e-9:
        raise ValueError(
            f"--rates: rate {rate:g} is not an integer multiple of R_q = 32/{bits} = {FLOAT_BITS / bits:g} "
            "(Eq. 3 needs an integer channel-reduction rate R_c >= 1)"
        )
    return int(round(r_c))


def reduced_channels_for(channels: int, rate: float, bits: int = 8, where: str = "") -> int:
    """``ch' = ch / R_c`` for overall rate ``rate``; raises ``ValueError`` when ``R_c`` does not divide ``ch``."""
    r_c = channel_rate_for(rate, bits)
    if channels % r_c:
        raise ValueError(
            f"--rates: rate {rate:g} (R_c = {r_c}) does not divide the {channels} channels{where}"
        )
    return channels // r_c


def quantize(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Eq. 1: ``y = round((2^c_q - 1)(x - min) / (max - min))``, clamped to ``[0, 2^c_q - 1]``."""
    levels = 2**bits - 1
    scale = torch.clamp(hi - lo, min=torch.finfo(torch.float32).tiny)
    return torch.clamp(torch.round(levels * (x - lo) / scale), 0, levels)


def dequantize(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Eq. 2: ``x' = y (max - min) / (2^c_q - 1) + min``."""
    return y.to(torch.float32) * (hi - lo) / (2**bits - 1) + lo


class Quantizer(nn.Module):
    """Eqs. 1-2 with a calibrated ``[min, max]`` range stored as buffers (saved with the weights)."""

    def __init__(self, bits: int = 8) -> None:
        super().__init__()
        if not 1 <= int(bits) <= 16:
            raise ValueError(f"--bits: quantization bit-width {bits!r} must be in 1..16")
        self.bits = int(bits)
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(1.0))
        self.register_buffer("calibrated", torch.tensor(False))

    @property
    def step(self) -> float:
        """Quantization step ``(max - min) / (2^c_q - 1)``."""
        return float((self.hi - self.lo) / (2**self.bits - 1))

    @torch.no_grad()
    def calibrate(self, features: torch.Tensor | list[torch.Tensor]) -> None:
        """Set ``min``/``max`` of Eq. 1 from a pre-collected set of features."""
        feats = features if isinstance(features, list) else [features]
        self.lo.fill_(min(float(f.min()) for f in feats))
        self.hi.fill_(max(float(f.max()) for f in feats))
        if float(self.hi) <= float(self.lo):
            self.hi.fill_(float(self.lo) + 1e-6)
        self.calibrated.fill_(True)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes (Eq. 1) as ``uint8`` (``int16`` above 8 bits): what the UE sends."""
        y = quantize(x, self.lo, self.hi, self.bits)
        return y.to(torch.uint8 if self.bits <= 8 else torch.int16)

    def dequantize(self, y: torch.Tensor) -> torch.Tensor:
        """Recovered values (Eq. 2)."""
        return dequantize(y, self.lo, self.hi, self.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize then dequantize; rounding passes the gradient straight through (STE)."""
        levels = 2**self.bits - 1
        scale = torch.clamp(self.hi - self.lo, min=torch.finfo(torch.float32).tiny)
        z = torch.clamp(levels * (x - self.lo) / scale, 0, levels)
        z = z + (torch.round(z) - z).detach()
        return z * scale / levels + self.lo


class FeatureCompressor(nn.Module):
    """Encoder (1x1 conv ``ch -> ch'``), quantizer, decoder (1x1 conv ``ch' -> ch``), Sec. 2.2-2.3."""

    def __init__(self, channels: int, rate: float, bits: int = 8, where: str = "") -> None:
        super().__init__()
        self.channels = int(channels)
        self.reduced = reduced_channels_for(self.channels, rate, bits, where)
        self.encoder = nn.Conv2d(self.channels, self.reduced, kernel_size=1)
        self.quantizer = Quantizer(bits)
        self.decoder = nn.Conv2d(self.reduced, self.channels, kernel_size=1)

    @property
    def bits(self) -> int:
        return self.quantizer.bits

    @property
    def channel_rate(self) -> float:
        """``R_c = ch / ch'``."""
        return self.channels / self.reduced

    @property
    def rate(self) -> float:
        """Overall rate ``R`` of Eq. 3."""
        return overall_rate(self.channels, self.reduced, self.bits)

    @torch.no_grad()
    def calibrate(self, features: torch.Tensor | list[torch.Tensor]) -> None:
        """Calibrate the quantizer on the *encoded* versions of ``features`` (head outputs)."""
        feats = features if isinstance(features, list) else [features]
        self.quantizer.calibrate([self.encoder(f) for f in feats])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """UE side: encoder then Eq. 1; returns the integer codes that are transmitted."""
        return self.quantizer.quantize(self.encoder(x))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Edge side: Eq. 2 then decoder."""
        return self.decoder(self.quantizer.dequantize(codes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable compress + restore (STE rounding) used in training and evaluation."""
        return self.decoder(self.quantizer(self.encoder(x)))


class CompressedModel(nn.Module):
    """``tail(decoder(dequantize(quantize(encoder(head(x))))))``: the split model with the compressor."""

    def __init__(self, head: nn.Module, compressor: FeatureCompressor, tail: nn.Module) -> None:
        super().__init__()
        self.head = head
        self.compressor = compressor
        self.tail = tail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.compressor(self.head(x)))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits plus the original (``T_i``) and recovered (``T_o``) features of Eq. 4."""
        t_i = self.head(x)
        t_o = self.compressor(t_i)
        return self.tail(t_o), t_i, t_o
