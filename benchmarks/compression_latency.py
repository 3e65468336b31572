"""Latency of the UE-side work per partition point at 3x224x224, for all three models (no training).

    .venv/bin/python benchmarks/compression_latency.py [--models resnet18,vgg11,mobilenetv2] [--rate 32]

Prints head / head + encoder + 8-bit quantizer (ours, Eqs. 1-3) / head + JALAD (8-bit + zlib) and the
full model, in milliseconds, single-threaded. Compressor weights are random: latency does not depend
on them. JALAD's rate on random-weight features is not meaningful and is not printed.
"""

from __future__ import annotations

import argparse

import torch

from mahppo.compression.compressor import FeatureCompressor
from mahppo.compression.models import POINTS, build_model, split
from mahppo.compression.profiles import jalad_encode, median_latency


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,vgg11,mobilenetv2")
    ap.add_argument("--rate", type=float, default=32.0)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    x = torch.randn(1, 3, 224, 224)
    print(f"{'model':<12} {'point':>5} {'head ms':>8} {'ours ms':>8} {'jalad ms':>9}")
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
                t_h = median_latency(lambda head=head: head(x), 1, args.repeats)
                t_o = median_latency(lambda head=head, comp=comp: comp.encode(head(x)), 1, args.repeats)
                t_j = median_latency(lambda head=head: jalad_encode(head(x)[0]), 1, args.repeats)
                print(f"{name:<12} {p:>5} {1e3 * t_h:8.1f} {1e3 * t_o:8.1f} {1e3 * t_j:9.1f}")
            t_full = median_latency(lambda model=model: model(x), 1, args.repeats)
            print(f"{name:<12} {'full':>5} {1e3 * t_full:8.1f}")


if __name__ == "__main__":
    main()
