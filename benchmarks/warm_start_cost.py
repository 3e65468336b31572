"""Wall time of the rotate teacher's warm start (``algorithms/acting/teacher.py``): the teacher's search, its
episodes and the two fits, for the cells docs/training.md reports (N = 3, N = 10, N in 2..10 with a DNN pool).

    python benchmarks/warm_start_cost.py
"""

from __future__ import annotations

from _harness import load_average, parse, parser, run, start_ray, timer

CELLS = (
    {"num_ues": 3, "warm_start": "rotate"},
    {"num_ues": 10},  # auto: warm-started from N = 5 on
    {"num_ues_range": [2, 10], "num_ues": 10, "dnn_pool": ["resnet18", "vgg11", "mobilenetv2"]},
)


def main() -> None:
    parse(parser(__doc__))
    from mahppo.algorithms.acting.teacher import warm_start
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.run import Run

    start_ray()
    print(f"load average {load_average()}")
    for flat in CELLS:
        run_ = Run(Experiment().with_flat({**flat, "steps": 50_000}))
        try:
            with timer() as t:
                stats = warm_start(run_.algo, run_.experiment)
        finally:
            run_.stop()
        print(f"{flat}: {t.wall:.1f} s, {stats['teacher_frames']:.0f} teacher frames, "
              f"teacher point {stats['teacher_point']:.0f} at {stats['teacher_power_w']:g} W, "
              f"losses: actor {stats['bc_loss']:.3f}, critic {stats['critic_loss']:.4f}", flush=True)
    print(f"load average {load_average()}")


if __name__ == "__main__":
    run(main)
