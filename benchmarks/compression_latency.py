"""Latency of the UE-side work per partition point at 3x224x224, for all three models (no training).

    .venv/bin/python benchmarks/compression_latency.py [--models resnet18,vgg11,mobilenetv2] [--rate 32]

Prints head / head + encoder + 8-bit quantizer (ours, Eqs. 1-3) / head + JALAD (8-bit + zlib) and the
full model, in milliseconds, single-threaded. Compressor weights are random: latency does not depend
on them. JALAD's rate on random-weight features is not meaningful and is not printed.
"""

from __future__ import annotations

import torch
from _harness import markdown_table, parse, parser, run, write_json, write_markdown

from mahppo.compression.compressor import FeatureCompressor
from mahppo.compression.models import POINTS, build_model, split
from mahppo.compression.profiles import jalad_encode, median_latency


def main() -> None:
    ap = parser(__doc__, out="bench_out/compression_latency", quick={"models": "mobilenetv2", "repeats": 1})
    ap.add_argument("--models", default="resnet18,vgg11,mobilenetv2")
    ap.add_argument("--rate", type=float, default=32.0)
    ap.add_argument("--repeats", type=int, default=5)
    args = parse(ap)
    torch.set_num_threads(1)
    x = torch.randn(1, 3, 224, 224)
    rows = []
    with torch.no_grad():
        for name in args.models.split(","):
            model = build_model(name, 101).eval()
            for p in POINTS:
                head, _ = split(model, p)
                feat = head(x)
                ch = feat.shape[1]
                rate = args.rate if ch % int(args.rate / 4) == 0 else 8.0
                comp = FeatureCompressor(ch, rate).eval()
                comp.calibrate(feat)
                rows.append({"model": name, "point": p,
                             "head_ms": 1e3 * median_latency(lambda head=head: head(x), 1, args.repeats),
                             "ours_ms": 1e3 * median_latency(lambda head=head, comp=comp: comp.encode(head(x)), 1,
                                                             args.repeats),
                             "jalad_ms": 1e3 * median_latency(lambda head=head: jalad_encode(head(x)[0]), 1,
                                                              args.repeats)})
            rows.append({"model": name, "point": "full",
                         "head_ms": 1e3 * median_latency(lambda model=model: model(x), 1, args.repeats)})
    write_markdown(f"{args.out}/compression_latency.md", markdown_table(
        ["model", "point", "head ms", "ours ms", "JALAD ms"],
        [[r["model"], r["point"], f"{r['head_ms']:.1f}", f"{r['ours_ms']:.1f}" if "ours_ms" in r else "",
          f"{r['jalad_ms']:.1f}" if "jalad_ms" in r else ""] for r in rows]))
    write_json(f"{args.out}/compression_latency.json", rows)


if __name__ == "__main__":
    run(main)
