"""Device profiles: what a UE spends before it offloads, per partition point (Sec. 3.4, Eqs. 6-9).

A profile file is JSON: ``{"source": str, "models": {name: [point_0, ..., point_{B+1}]}}`` where each
point has ``raw_bits``, ``compression_rate`` (R of Eq. 3), ``front_latency_s`` (t_f + t_c),
``front_power_w`` and ``front_energy_j`` (e_f + e_c). Point 0 sends the raw input, point ``B + 1``
runs the whole model locally (nothing is sent). The bits sent at point ``b`` are
``round(raw_bits / compression_rate)`` (f_n of Eq. 6).

The default file holds the Jetson Nano measurements published by the paper's authors (Sec. 6.2).
The ``compression`` package writes files of the same schema.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

DEFAULT_PROFILE_FILE = "jetson_nano_profiles.json"
POINT_FIELDS = ("raw_bits", "compression_rate", "front_latency_s", "front_power_w", "front_energy_j")


@dataclass(frozen=True)
class DNNProfile:
    """One DNN's per-point costs on a UE; arrays are indexed by partition point ``b = 0..B+1``."""

    name: str
    bits: np.ndarray  # f_n: bits sent at each point (0 at the last point)
    front_latency_s: np.ndarray  # t_f + t_c
    front_power_w: np.ndarray  # average UE power while running the front part
    front_energy_j: np.ndarray  # e_f + e_c
    source: str = ""

    @property
    def num_points(self) -> int:
        """``B_n``: partition points strictly inside the model."""
        return len(self.bits) - 2

    @property
    def num_actions(self) -> int:
        """``B_n + 2`` choices of b: raw offload, the B_n splits, fully local."""
        return len(self.bits)

    @property
    def local_latency_s(self) -> float:
        return float(self.front_latency_s[-1])

    @property
    def local_energy_j(self) -> float:
        return float(self.front_energy_j[-1])


def same_profile(a: DNNProfile, b: DNNProfile) -> bool:
    """Whether two profiles give a UE the same costs at every point (name and numbers, not the source)."""
    return a.name == b.name and all(
        np.array_equal(getattr(a, f), getattr(b, f)) for f in ("bits", "front_latency_s", "front_power_w",
                                                               "front_energy_j"))


def _bad(path: str, field: str, value: object, why: str) -> ValueError:
    return ValueError(f"profile file {path}: field {field} = {value!r}: {why}")


def _number(path: str, field: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(path, field, value, "expected a number")
    x = float(value)
    if not math.isfinite(x) or x < 0 or (positive and x <= 0):
        raise _bad(path, field, value, "expected a finite number " + ("> 0" if positive else ">= 0"))
    return x


def parse_profiles(data: object, path: str = "<memory>") -> dict[str, DNNProfile]:
    """Validate a decoded profile document; every error names the file, the field and the value."""
    if not isinstance(data, dict):
        raise _bad(path, "<top level>", type(data).__name__, "expected a JSON object")
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise _bad(path, "models", models, "expected a non-empty object of model name -> points")
    source = str(data.get("source", ""))
    out: dict[str, DNNProfile] = {}
    for name, points in models.items():
        where = f"models.{name}"
        if not isinstance(points, list) or len(points) < 2:
            raise _bad(path, where, points, "expected a list of at least 2 points (raw offload, local)")
        cols: dict[str, list[float]] = {k: [] for k in POINT_FIELDS}
        for b, point in enumerate(points):
            if not isinstance(point, dict):
                raise _bad(path, f"{where}[{b}]", point, "expected an object")
            for key in POINT_FIELDS:
                if key not in point:
                    raise _bad(path, f"{where}[{b}].{key}", None, "missing")
                cols[key].append(
                    _number(path, f"{where}[{b}].{key}", point[key], positive=key == "compression_rate")
                )
        raw = np.asarray(cols["raw_bits"])
        bits = np.round(raw / np.asarray(cols["compression_rate"]))
        last = len(points) - 1
        if bits[last] != 0:
            raise _bad(path, f"{where}[{last}].raw_bits", cols["raw_bits"][last],
                       "the last point runs the model locally and sends nothing (expected 0)")
        for b in range(last):
            if bits[b] <= 0:
                raise _bad(path, f"{where}[{b}].raw_bits", cols["raw_bits"][b],
                           "an offloading point must send at least one bit")
        if cols["front_latency_s"][last] <= 0:
            raise _bad(path, f"{where}[{last}].front_latency_s", cols["front_latency_s"][last],
                       "a full local run must take time (> 0)")
        out[str(name)] = DNNProfile(
            name=str(name),
            bits=bits.astype(np.float64),
            front_latency_s=np.asarray(cols["front_latency_s"], dtype=np.float64),
            front_power_w=np.asarray(cols["front_power_w"], dtype=np.float64),
            front_energy_j=np.asarray(cols["front_energy_j"], dtype=np.float64),
            source=source,
        )
    return out


def load_profile_file(path: str | Path) -> dict[str, DNNProfile]:
    """Read and validate a profile JSON file (our own schema, also written by ``compression``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"profile file {path}: not found") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"profile file {path}: not valid JSON ({exc})") from None
    return parse_profiles(data, str(path))


@lru_cache(maxsize=1)
def default_profiles() -> dict[str, DNNProfile]:
    """The shipped Jetson Nano profiles for ResNet18, VGG11 and MobileNetV2."""
    ref = resources.files("mahppo.marl_env") / "data" / DEFAULT_PROFILE_FILE
    return parse_profiles(json.loads(ref.read_text()), f"marl_env/data/{DEFAULT_PROFILE_FILE}")


def resolve_profile(dnn: str, profile_file: str | Path | None = None) -> DNNProfile:
    """Look up ``dnn`` in ``profile_file`` (or in the defaults)."""
    table = load_profile_file(profile_file) if profile_file is not None else default_profiles()
    if dnn not in table:
        where = f"profile file {profile_file}" if profile_file is not None else "the default profiles"
        raise ValueError(f"dnn = {dnn!r} is not in {where} (known: {', '.join(sorted(table))})")
    return table[dnn]
