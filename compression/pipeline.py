"""End-to-end jobs behind ``mahppo compress``: base model, Ray sweep, selection, profiles, table, plot."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from mahppo.compression.compressor import FeatureCompressor
from mahppo.compression.data import DataSpec, check_data_folder, make_datasets
from mahppo.compression.models import POINTS, build_model, check_model_name
from mahppo.compression.profiles import (
    JETSON_NANO_POWER_W,
    host_description,
    measure_profiles,
    power_table_from_file,
    write_profile_file,
)
from mahppo.compression.runner import run_sweep, select_rates, state_from_bytes, validate_sweep, write_table
from mahppo.compression.train import TrainConfig, evaluate, make_loader, set_threads, train_base

log = logging.getLogger(__name__)


def _log(msg: str) -> None:
    log.info(msg)


def data_spec_for(data: str | None, image_size: int | None = None, seed: int = 0) -> DataSpec:
    """Caltech-101 from ``data`` (checked), or the generated demo set when ``data`` is ``None``."""
    if data is None:
        return DataSpec(kind="synthetic", image_size=image_size or 32, seed=seed)
    check_data_folder(data)
    return DataSpec(kind="caltech101", root=str(Path(data).expanduser()), image_size=image_size or 224, seed=seed)


def load_checkpoint(path: str | Path, model_name: str, num_classes: int) -> tuple[torch.nn.Module, dict]:
    """Load a base model: our checkpoint dict (``state_dict`` + metadata) or a bare ``state_dict``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--base: checkpoint {str(path)!r} does not exist")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    meta: dict = {}
    if isinstance(blob, dict) and "state_dict" in blob:
        meta = {k: v for k, v in blob.items() if k != "state_dict"}
        if meta.get("model") and meta["model"] != model_name:
            raise ValueError(f"--base: checkpoint {str(path)!r} holds a {meta['model']}, not a {model_name}")
        num_classes = int(meta.get("num_classes", num_classes))
        blob = blob["state_dict"]
    model = build_model(model_name, num_classes)
    try:
        model.load_state_dict(blob)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ValueError(f"--base: checkpoint {str(path)!r} does not fit {model_name} "
                         f"with {num_classes} classes ({first})") from None
    return model.eval(), meta


def train_base_model(model_name: str, spec: DataSpec, epochs: int, out_dir: str | Path, *, lr: float = 1e-3,
                     batch_size: int = 32, max_batches: int | None = None, threads: int = 2,
                     log: Any = _log) -> tuple[Path, float]:
    """``mahppo compress train-base``: train, evaluate and save ``base_<model>.pt``."""
    name = check_model_name(model_name)
    set_threads(threads)
    train_ds, test_ds, num_classes = make_datasets(spec)
    model = build_model(name, num_classes)
    t0 = time.perf_counter()
    train_base(model, train_ds, epochs, lr, batch_size, max_batches, spec.seed,
               on_epoch=lambda e, loss: log(f"base {name} epoch {e + 1}/{epochs}: loss {loss:.4f} "
                                            f"({time.perf_counter() - t0:.0f} s)"))
    acc = evaluate(model, make_loader(test_ds, 64, False))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"base_{name}.pt"
    torch.save({"model": name, "num_classes": num_classes, "accuracy": acc, "data": spec.to_dict(),
                "state_dict": model.state_dict()}, path)
    log(f"base {name}: test accuracy {acc:.3f}, saved {path}")
    return path, acc


@dataclass
class CompressJob:
    """All options of one ``mahppo compress`` run."""

    model: str = "resnet18"
    points: list[int] = field(default_factory=lambda: list(POINTS))
    rates: list[float] = field(default_factory=lambda: [16.0, 32.0, 64.0])
    data: str | None = None
    image_size: int | None = None
    base: str | None = None
    base_epochs: int = 3
    train: TrainConfig = field(default_factory=TrainConfig)
    max_loss: float = 0.02
    address: str | None = None
    num_cpus: float = 1
    num_gpus: float = 0
    max_retries: int = 2
    local_cpus: int | None = None
    out: str = "out/compress"
    power_file: str | None = None
    profile_images: int = 4
    warmup: int = 2
    repeats: int = 5
    driver_threads: int = 1
    progress: bool = True


def run_compress(job: CompressJob, log: Any = _log) -> dict[str, Any]:
    """Run the whole job; returns paths and the rows. Validates every input before any work starts."""
    name, points, rates = validate_sweep(job.model, job.points, job.rates, job.train.bits)
    if not 0 <= job.max_loss < 1:
        raise ValueError(f"--max-loss: {job.max_loss!r} must be in [0, 1)")
    spec = data_spec_for(job.data, job.image_size, job.train.seed)
    if job.base and not Path(job.base).is_file():
        raise ValueError(f"--base: checkpoint {job.base!r} does not exist")
    power = power_table_from_file(job.power_file) if job.power_file else JETSON_NANO_POWER_W
    if name not in power:
        raise ValueError(f"--power-file: no power entry for model {name!r}")
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    set_threads(job.driver_threads)
    t_start = time.perf_counter()

    _, test_ds, num_classes = make_datasets(spec)
    if job.base:
        model, _ = load_checkpoint(job.base, name, num_classes)
        log(f"base {name}: loaded {job.base}")
    else:
        path, _ = train_base_model(name, spec, job.base_epochs, out, batch_size=job.train.batch_size,
                                   max_batches=job.train.max_batches, threads=job.driver_threads, log=log)
        model, _ = load_checkpoint(path, name, num_classes)
    num_classes = int(model.state_dict()[_classifier_key(name)].shape[0])
    base_acc = evaluate(model, make_loader(test_ds, 64, False))
    log(f"base {name}: test accuracy {base_acc:.3f}; training {len(points) * len(rates)} compressors "
        "as Ray tasks")

    rows = run_sweep(name, points, rates, spec, model.state_dict(), num_classes, base_acc, job.train,
                     address=job.address, num_cpus=job.num_cpus, num_gpus=job.num_gpus,
                     max_retries=job.max_retries, local_cpus=job.local_cpus, progress=job.progress)
    chosen = select_rates(rows, job.max_loss)
    set_threads(1)  # latency is measured single-threaded, like a small UE core
    compressors: dict[int, FeatureCompressor | None] = {}
    for p in POINTS:
        row = chosen.get(p)
        if row is None:
            compressors[p] = None
            continue
        comp = FeatureCompressor(row["channels"], row["rate"], row["bits"])
        comp.load_state_dict(state_from_bytes(row["compressor_state"]))
        compressors[p] = comp.eval()
    images = _profile_images(spec, job.profile_images)
    ours, jalad, details = measure_profiles(model, compressors, images, power, job.warmup, job.repeats)
    source = (f"mahppo compression: {name} measured on this host ({host_description()}) at 3x224x224, "
              f"median of {job.repeats} after {job.warmup} warm-up runs; rates chosen under "
              f"{job.max_loss:.0%} accuracy loss on {spec.kind} data; power from "
              f"{job.power_file or 'the Jetson Nano table (Sec. 6.2)'}; energy = latency * power. "
              f"Key '{name}-jalad': 8-bit quantization + zlib (JALAD baseline).")
    profile_path = write_profile_file(out / f"profile_{name}.json", {name: ours, f"{name}-jalad": jalad}, source)
    csv_path, md_path = write_table(rows, out)
    from mahppo.compression.plots import plot_rates

    plot_path = plot_rates(list(POINTS), [e["compression_rate"] for e in ours[1:-1]],
                           [e["compression_rate"] for e in jalad[1:-1]], out / f"rates_{name}.png",
                           title=f"{name}: overall rate per point (loss < {job.max_loss:.0%})")
    summary = {
        "model": name, "data": spec.to_dict(), "train": job.train.to_dict(), "base_accuracy": base_acc,
        "profile": details, "seconds": time.perf_counter() - t_start,
        "selected": {p: (r["rate"] if r else None) for p, r in chosen.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    log(md_path.read_text())
    log(f"wrote {csv_path}, {md_path}, {profile_path}, {plot_path} ({summary['seconds']:.0f} s)")
    return {"rows": rows, "profile": profile_path, "csv": csv_path, "markdown": md_path, "plot": plot_path,
            "summary": summary}


def _classifier_key(name: str) -> str:
    return {"resnet18": "fc.weight", "vgg11": "classifier.6.weight", "mobilenetv2": "classifier.1.weight"}[name]


def _profile_images(spec: DataSpec, n: int) -> torch.Tensor:
    """``n`` test images at the paper's 3x224x224 for the latency and JALAD measurements."""
    big = replace(spec, image_size=224, train_per_class=1, test_per_class=max(1, -(-n // spec.num_classes)))
    _, test_ds, _ = make_datasets(big)
    idx = torch.linspace(0, len(test_ds) - 1, max(1, n)).long().tolist()
    return torch.stack([test_ds[i][0] for i in idx])
