"""Train every ``(model, point, rate)`` compressor as a Ray task and gather a results table (Sec. 6.1).

Each task rebuilds the data set from a picklable :class:`~compression.data.DataSpec`, loads the base
weights from the object store, runs the two-stage training of Sec. 2.4 and returns one table row plus
the trained compressor's weights. The driver shows a progress bar as tasks finish; on a cluster the
same call spreads over the nodes (``ray.init(address=...)``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from mahppo.compression.compressor import FLOAT_BITS, reduced_channels_for
from mahppo.compression.data import DataSpec, make_datasets
from mahppo.compression.models import PROFILE_INPUT_SHAPE, build_model, check_model_name, check_point, feature_channels
from mahppo.compression.train import TrainConfig, set_threads, train_compressor

TABLE_COLUMNS = (
    "model", "point", "rate", "channel_rate", "bits", "channels", "reduced_channels", "feature_shape_224",
    "raw_bits", "bits_sent", "base_accuracy", "stage1_accuracy", "accuracy", "accuracy_loss", "selected",
    "train_seconds",
)


def validate_sweep(model_name: str, points: Iterable[int], rates: Iterable[float], bits: int = 8,
                   ) -> tuple[str, list[int], list[float]]:
    """Check model, points and rates up front; every error names the field and the value."""
    name = check_model_name(model_name)
    pts = sorted({check_point(p) for p in points})
    if not pts:
        raise ValueError("--points: no partition point given")
    rts = sorted({float(r) for r in rates})
    if not rts:
        raise ValueError("--rates: no rate given")
    for r in rts:
        if not math.isfinite(r) or r <= 0:
            raise ValueError(f"--rates: rate {r:g} must be a positive number")
        for p in pts:
            reduced_channels_for(feature_channels(name, p), r, bits, f" at {name} point {p}")
    return name, pts, rts


def state_to_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def state_from_bytes(blob: bytes) -> dict[str, torch.Tensor]:
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


def compress_task(model_name: str, num_classes: int, base_state: bytes, point: int, rate: float,
                  data_spec: dict, cfg: dict, base_accuracy: float, use_gpu: bool = False) -> dict[str, Any]:
    """One ``(model, point, rate)`` run: two-stage training, then the table row (no Ray needed)."""
    config = TrainConfig(**cfg)
    set_threads(config.threads)
    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    train_ds, test_ds, _ = make_datasets(data_spec)
    model = build_model(model_name, num_classes)
    model.load_state_dict(state_from_bytes(base_state))
    cmodel, row = train_compressor(model, point, rate, train_ds, test_ds, config, device, model_name)
    cmodel.to("cpu")
    with torch.no_grad():
        was = model.training
        model.eval()
        shape = tuple(cmodel.head(torch.zeros(1, *PROFILE_INPUT_SHAPE)).shape[1:])
        model.train(was)
    raw_bits = int(math.prod(shape)) * FLOAT_BITS
    row.update({
        "feature_shape_224": "x".join(str(s) for s in shape),
        "raw_bits": raw_bits,
        "bits_sent": int(round(raw_bits / row["rate"])),
        "base_accuracy": base_accuracy,
        "accuracy_loss": base_accuracy - row["accuracy"],
        "selected": False,
    })
    row["compressor_state"] = state_to_bytes(cmodel.compressor.state_dict())
    return row


def select_rates(rows: list[dict], loss_bound: float = 0.02) -> dict[int, dict | None]:
    """Per point, the row with the largest rate whose accuracy loss is under ``loss_bound`` (Sec. 6.1).

    ``loss_bound`` is absolute (0.02 = 2 percentage points of top-1 accuracy). Marks the chosen rows
    ``selected = True``; a point where no rate qualifies maps to ``None``.
    """
    chosen: dict[int, dict | None] = {}
    for row in rows:
        p = int(row["point"])
        chosen.setdefault(p, None)
        if row["accuracy_loss"] < loss_bound:
            best = chosen[p]
            if best is None or row["rate"] > best["rate"]:
                chosen[p] = row
    for row in rows:
        row["selected"] = chosen.get(int(row["point"])) is row
    return chosen


def run_sweep(model_name: str, points: Iterable[int], rates: Iterable[float], data_spec: DataSpec,
              base_state: dict[str, torch.Tensor], num_classes: int, base_accuracy: float,
              cfg: TrainConfig, *, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0,
              max_retries: int = 2, local_cpus: int | None = None, progress: bool = True) -> list[dict]:
    """Train all ``(point, rate)`` pairs as Ray tasks; returns rows sorted by point then rate.

    Starts Ray when it is not running (``address`` for a cluster, else always a new local instance with
    ``local_cpus`` CPUs) and shuts down only an instance it started itself.
    """
    import ray
    from tqdm import tqdm

    name, pts, rts = validate_sweep(model_name, points, rates, cfg.bits)
    started = False
    if not ray.is_initialized():
        from mahppo.runtime.logs import ensure_configured, ray_init_kwargs

        ensure_configured()
        if address:
            from mahppo.runtime.cluster import connect

            connect(address, **ray_init_kwargs())  # token authentication handled
        else:
            ray.init(address="local", num_cpus=local_cpus, include_dashboard=False, **ray_init_kwargs())
        started = True
    try:
        remote = ray.remote(compress_task).options(
            num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries, retry_exceptions=False,
        )
        state_ref = ray.put(state_to_bytes(base_state))
        cfg_dict = cfg.to_dict()
        spec = data_spec.to_dict()
        pending = {
            remote.remote(name, num_classes, state_ref, p, r, spec, cfg_dict, base_accuracy, num_gpus > 0): (p, r)
            for p in pts for r in rts
        }
        rows: list[dict] = []
        with tqdm(total=len(pending), desc=f"compress {name}", unit="task", disable=not progress) as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    p, r = pending.pop(ref)
                    row = ray.get(ref)
                    rows.append(row)
                    bar.set_postfix_str(f"point {p} rate {r:g}: acc {row['accuracy']:.3f}")
                    bar.update(1)
    finally:
        if started:
            ray.shutdown()
    rows.sort(key=lambda row: (row["point"], row["rate"]))
    return rows


def write_table(rows: list[dict], out_dir: str | Path, stem: str = "results") -> tuple[Path, Path]:
    """Write the results table as CSV and Markdown; returns both paths."""
    import csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(TABLE_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k)) for k in TABLE_COLUMNS})
    md_path.write_text(markdown_table(rows))
    return csv_path, md_path


def markdown_table(rows: list[dict]) -> str:
    head = ("point", "rate R", "R_c", "feature @224", "bits sent", "base acc", "stage-1 acc", "acc",
            "loss vs base", "selected", "train s")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            str(r["point"]), f"{r['rate']:g}", f"{r['channel_rate']:g}", r["feature_shape_224"],
            f"{r['bits_sent']:,}", f"{r['base_accuracy']:.3f}", f"{r['stage1_accuracy']:.3f}",
            f"{r['accuracy']:.3f}", f"{r['accuracy_loss']:+.3f}", "yes" if r["selected"] else "",
            f"{r['train_seconds']:.0f}",
        ]) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v
