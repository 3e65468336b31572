"""Device profiles measured on this host, in the schema ``marl_env.profiles`` reads (Sec. 3.4, 6.2).

A profile file is ``{"source": str, "models": {name: [p_0, ..., p_5]}}`` where each point has
``raw_bits``, ``compression_rate`` (R, Eq. 3), ``front_latency_s``, ``front_power_w`` and
``front_energy_j``. Index 0 offloads the raw 3x224x224 uint8 input, 1..4 split at the partition
points (``raw_bits`` = the float32 feature; bits sent = ``round(raw_bits / R)``), 5 runs the full model
locally.

Latency is measured here (warm-up, then the median of repeats) at the paper's 3x224x224 input:
``head + encoder + quantizer`` for our method, ``head + 8-bit quantization + entropy coding`` for
JALAD, and the full model for index 5.

Power model: a host cannot measure a UE's power, so the power of index ``b`` comes from a per-device
table of average UE power per point. The default table is the Jetson Nano (5 W mode) figures the
paper's authors measured (``marl_env/data/jetson_nano_profiles.json``, Sec. 6.2, Fig. 7), copied in
:data:`JETSON_NANO_POWER_W`; energy = latency * power (e_f + e_c of Sec. 3.4). A different device's
table can be read from any profile file with :func:`power_table_from_file`.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from mahppo.compression.compressor import FLOAT_BITS, FeatureCompressor
from mahppo.compression.compressor import quantize as quantize_eq1
from mahppo.compression.models import POINTS, PROFILE_INPUT_SHAPE, model_name_of, split

RAW_INPUT_BITS = math.prod(PROFILE_INPUT_SHAPE) * 8  # the uint8 image at index 0

# Average UE power (W) per index 0..5, Jetson Nano 5 W mode, as published by the authors (Sec. 6.2).
JETSON_NANO_POWER_W: dict[str, tuple[float, ...]] = {
    "resnet18": (0.0, 2.2885, 2.6328, 2.8815, 3.013, 2.1454),
    "vgg11": (0.0, 2.204, 2.6344, 2.8618, 3.0338, 2.5795),
    "mobilenetv2": (0.0, 1.8811, 2.4805, 2.5565, 2.2014, 1.4797),
}


def power_table_from_file(path: str | Path) -> dict[str, tuple[float, ...]]:
    """Per-model ``front_power_w`` per index from any profile file of the same schema."""
    data = json.loads(Path(path).read_text())
    try:
        return {name: tuple(float(p["front_power_w"]) for p in pts) for name, pts in data["models"].items()}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"--power-file: {path} is not a profile file ({exc})") from None


def median_latency(fn: Callable[[], object], warmup: int = 2, repeats: int = 5) -> float:
    """Median wall-clock seconds of ``fn()`` after ``warmup`` untimed calls."""
    for _ in range(max(0, warmup)):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def jalad_encode(feature: torch.Tensor, level: int = 6) -> bytes:
    """JALAD (Sec. 6.1, [12]): 8-bit quantization (Eqs. 1-2, per-tensor min/max) + zlib entropy coding."""
    lo, hi = feature.min(), feature.max()
    codes = quantize_eq1(feature, lo, hi, 8).to(torch.uint8)
    return zlib.compress(codes.numpy().tobytes(), level)


def jalad_bits(feature: torch.Tensor, level: int = 6) -> int:
    """Bits JALAD sends for one feature: the coded bytes plus min and max as two float32."""
    return 8 * len(jalad_encode(feature, level)) + 2 * FLOAT_BITS


def _entry(raw_bits: int, rate: float, latency: float, power: float) -> dict:
    return {
        "raw_bits": int(raw_bits),
        "compression_rate": round(float(rate), 6),
        "front_latency_s": round(float(latency), 6),
        "front_power_w": round(float(power), 6),
        "front_energy_j": round(float(latency) * float(power), 6),
    }


@torch.no_grad()
def measure_profiles(model: nn.Module, compressors: dict[int, FeatureCompressor | None],
                     images: torch.Tensor, power: dict[str, tuple[float, ...]] | None = None,
                     warmup: int = 2, repeats: int = 5, jalad_level: int = 6) -> tuple[list[dict], list[dict], dict]:
    """Measure ``(ours, jalad, details)`` profile entries (6 each) for ``model`` at 3x224x224.

    ``compressors`` maps point -> the selected compressor, or ``None`` (sent uncompressed, R = 1).
    ``images`` is a batch of 3x224x224 inputs: latency uses the first one (batch 1, as a UE runs),
    JALAD's rate is averaged over all of them. ``details`` holds per-point timings for docs/compression.md.
    """
    name = model_name_of(model)
    power = power or JETSON_NANO_POWER_W
    if name not in power or len(power[name]) != len(POINTS) + 2:
        raise ValueError(f"--power-file: no {len(POINTS) + 2}-point power entry for model {name!r}")
    pw = power[name]
    model.eval()
    x = images[:1]
    ours = [_entry(RAW_INPUT_BITS, 1, 0.0, 0.0)]
    jalad = [_entry(RAW_INPUT_BITS, 1, 0.0, 0.0)]
    details: dict = {"points": {}}
    for b in POINTS:
        head, _ = split(model, b)
        head.eval()
        feat = head(x)
        raw_bits = feat[0].numel() * FLOAT_BITS
        comp = compressors.get(b)
        t_head = median_latency(lambda head=head: head(x), warmup, repeats)
        if comp is not None:
            comp.eval()
            t_ours = median_latency(lambda head=head, comp=comp: comp.encode(head(x)), warmup, repeats)
            rate = comp.rate
        else:
            t_ours, rate = t_head, 1.0
        ours.append(_entry(raw_bits, rate, t_ours, pw[b]))
        feats = head(images)
        jbits = statistics.mean(jalad_bits(f, jalad_level) for f in feats)
        t_jalad = median_latency(lambda head=head: jalad_encode(head(x)[0], jalad_level), warmup, repeats)
        t_coding = median_latency(lambda f=feat[0]: jalad_encode(f, jalad_level), warmup, repeats)
        jalad.append(_entry(raw_bits, raw_bits / jbits, t_jalad, pw[b]))
        details["points"][b] = {
            "head_s": t_head, "ours_s": t_ours, "jalad_s": t_jalad, "jalad_coding_s": t_coding, "ours_rate": rate,
            "jalad_rate": raw_bits / jbits, "raw_bits": raw_bits,
        }
    t_full = median_latency(lambda: model(x), warmup, repeats)
    details["full_s"] = t_full
    ours.append(_entry(0, 1, t_full, pw[-1]))
    jalad.append(_entry(0, 1, t_full, pw[-1]))
    return ours, jalad, details


def host_description() -> str:
    return f"{platform.machine()} {platform.processor() or platform.system()}, torch {torch.__version__}, " \
           f"{torch.get_num_threads()} thread(s)"


def write_profile_file(path: str | Path, models: dict[str, list[dict]], source: str) -> Path:
    """Write a profile JSON in the ``marl_env`` schema (``{"source", "models"}``)."""
    for name, entries in models.items():
        if len(entries) != len(POINTS) + 2:
            raise ValueError(f"profile: model {name!r} has {len(entries)} points, expected {len(POINTS) + 2}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"source": source, "models": models}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def jalad_on_device(device: list[dict], jalad: list[dict], details: dict) -> list[dict]:
    """JALAD's profile entries on the device that ``device`` describes (Sec. 6.1, 6.3.1 baseline).

    ``device``: a measured profile of our method (e.g. the authors' Jetson Nano points, 6 entries);
    ``jalad`` and ``details``: what :func:`measure_profiles` measured on this host. At each split point
    JALAD sends ``raw_bits / R_jalad`` (its rate measured here) and the UE spends the device's head time
    plus the quantization + entropy-coding time measured here (``jalad_coding_s``) scaled by the device/host speed
    ratio of the full model; power is the device's at that point, energy = latency * power (Sec. 3.4).
    The device's latency includes our encoder (a 1x1 conv, small next to the head): an approximation."""
    if not len(device) == len(jalad) == len(POINTS) + 2:
        raise ValueError(f"jalad_on_device: expected {len(POINTS) + 2} points, got {len(device)} and {len(jalad)}")
    speed = float(device[-1]["front_latency_s"]) / float(details["full_s"])  # device s per host s
    out = [dict(device[0])]
    for b in POINTS:
        d = details["points"].get(b, details["points"].get(str(b)))
        coding_s = float(d["jalad_coding_s"]) * speed
        out.append(_entry(device[b]["raw_bits"], jalad[b]["compression_rate"],
                          float(device[b]["front_latency_s"]) + coding_s, float(device[b]["front_power_w"])))
    out.append(dict(device[-1]))
    return out
