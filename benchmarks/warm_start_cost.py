"""Wall time of the rotate teacher's warm start (``algorithms/acting/teacher.py``): the teacher's search, its
episodes and the two fits, for the cells docs/training.md reports (N = 3, N = 10, N in 2..10 with a DNN pool).

    python benchmarks/warm_start_cost.py
"""

from __future__ import annotations

import os
import sys
import time

CELLS = (
    {"num_ues": 3, "warm_start": "rotate"},
    {"num_ues": 10},  # auto: warm-started from N = 5 on
    {"num_ues_range": [2, 10], "num_ues": 10, "dnn_pool": ["resnet18", "vgg11", "mobilenetv2"]},
)


def main() -> None:
    from mahppo.algorithms.acting.teacher import warm_start
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.run import Run

    print(f"load average {os.getloadavg()[0]:.2f}")
    for flat in CELLS:
        run = Run(Experiment().with_flat({**flat, "steps": 50_000}))
        try:
            t0 = time.perf_counter()
            stats = warm_start(run.algo, run.experiment)
            wall = time.perf_counter() - t0
        finally:
            run.stop()
        print(f"{flat}: {wall:.1f} s, {stats['teacher_frames']:.0f} teacher frames, "
              f"teacher point {stats['teacher_point']:.0f} at {stats['teacher_power_w']:g} W, "
              f"losses: actor {stats['bc_loss']:.3f}, critic {stats['critic_loss']:.4f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    from mahppo.runtime.hashseed import restart_with_fixed_hash_seed

    restart_with_fixed_hash_seed(sys.argv)  # the same seed, the same run (runtime/hashseed.py)
    main()
