"""MAHPPO's hyperparameters by the paper's names (Sec. 6.3.1); no Ray or torch import (fast CLI)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

CLIP_MODES = ("per_branch", "joint")
ACTORS = ("per-ue", "shared")
LR_SCHEDULES = ("constant", "linear")
MINIBATCH_UNITS = ("rows", "frames")
WARM_STARTS = ("auto", "none", "rotate", "expert")  # acting/teacher.py, acting/expert.py; auto: Experiment.warm_start
PAPER_LR = {"lr": 1e-4, "lr_schedule": "constant"}  # Sec. 6.3.1 as written (the defaults differ: see MAHPPOParams)
# the learning rate when ``lr`` is unset, by actor: measured by ``benchmarks/any_cell.py`` (docs/training.md)
ACTOR_LR = {"per-ue": 3e-4, "shared": 6e-4}
WARM_START_LR = 3e-4  # the rate when unset for a warm-started cell that varies (measured: docs/training.md)
AUTO_WARM_START_MIN_UES = 5  # warm_start "auto" also warm-starts a fixed cell of at least this many UEs


def _f(default: object, help: str, **extra: object) -> object:
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class MAHPPOParams:
    """MAHPPO's hyperparameters by the paper's names, its defaults (Sec. 6.3.1) except the learning rate:
    decaying linearly from ``ACTOR_LR`` (3e-4 for the per-UE actors, 6e-4 for the shared one), not a
    constant 1e-4 (``PAPER_LR`` restores it), and from ``WARM_START_LR`` (3e-4) for a varying cell after the
    teacher's warm start; the ``any_cell`` benchmark measured these better and steadier (docs/training.md, "Defaults").
    ``Experiment.learning_rate`` resolves the rate in effect."""

    lr: float | None = _f(None, "learning rate of actors and critic (the paper: 1e-4)",
                          default_help="3e-4 with --actor per-ue, 6e-4 with --actor shared, 3e-4 for a warm-started "
                                       "varying cell")
    lr_schedule: str = _f("linear", "linear: lr decays linearly to lr / 100 over the run's env steps; "
                          "constant: lr throughout (the paper)", choices=LR_SCHEDULES)
    memory_size: int = _f(1024, "|M|: transitions per update")
    batch_size: int = _f(256, "B: samples per minibatch update (see minibatch_unit)")
    minibatch_unit: str = _f("rows", "rows: B rows of each actor per update (the shared actor, holding every UE's "
                             "rows, makes N times the updates of a per-UE actor; the set critic takes its one row "
                             "per frame in proportion); frames: every module's rows of "
                             "B frames, K |M| / B updates for every actor (Alg. 1; faster, measured worse for "
                             "the mixed-N shared policy)", choices=MINIBATCH_UNITS)
    frame_ues: int = _f(16, "the shared actor's loss takes at most this many UEs of each frame per minibatch (drawn "
                        "at random; every UE still enters the others' pooled summary): bounds the learner's "
                        "cost per frame for large N (no effect up to this N)")
    reuse_time: int = _f(10, "K: sample reuse time; K * |M| / B minibatch updates per iteration")
    clip_eps: float = _f(0.2, "clipping epsilon of Eq. 19")
    clip_mode: str = _f("per_branch", "per_branch: one clipped ratio per branch (the authors'); joint: one",
                        choices=CLIP_MODES)
    zeta: float = _f(0.001, "entropy bonus per branch (Eq. 20)")
    gamma: float = _f(0.95, "discount factor (Eq. 15)")
    lam: float = _f(0.95, "lambda of GAE (Eq. 18)")
    normalize_advantages: bool = _f(True, "standardise advantages per update")
    grad_clip: float | None = _f(None, "global gradient-norm clip (the authors do not clip)")
    actor: str = _f("shared", "shared: one permutation-invariant actor for any cell (the default: it beats the per-UE "
                    "actors at N = 3, docs/results.md); per-ue: one actor per UE on the global state (the paper)",
                    choices=ACTORS)
    warm_start: str = _f("auto", "rotate: before PPO, the actors imitate the rotate rule and the critic learns its "
                         "returns on the training env (algorithms/acting/teacher.py); expert: expert iteration, the "
                         "decision-time lookahead as teacher on the actor's own states (DAgger, "
                         "algorithms/acting/expert.py); its frames count as env steps of --steps; "
                         "none: PPO from random weights; "
                         "auto: rotate when the training cell varies (--num-ues LO-HI or a DNN pool) or has N >= 5, "
                         "none below (measured: docs/training.md)",
                         choices=WARM_STARTS)
    warm_start_episodes: int = _f(200, "training-env episodes the teacher plays (they count as env steps)")
    warm_start_updates: int = _f(500, "minibatch updates of the actor and of the critic on the teacher's data")
    expert_iterations: int = _f(1, "expert iteration: times the actor plays its own episodes for the teacher to "
                                "label (after the teacher's own episodes)")
    expert_episodes: int = _f(64, "expert iteration: training-env episodes per iteration (they count as env steps)")
    expert_updates: int = _f(2000, "expert iteration: minibatch updates of the actor per fit, and of the critic")

    def validate(self) -> MAHPPOParams:
        """Reject bad values (by type and range) with a message naming the hyperparameter."""
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"{name} = {getattr(self, name)!r} {why}")

        def number(v: object) -> bool:
            return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)

        if self.lr is not None and (not number(self.lr) or self.lr <= 0):
            raise bad("lr", "must be a finite number > 0 (or null: the actor's default)")
        if not number(self.clip_eps) or self.clip_eps <= 0:
            raise bad("clip_eps", "must be a finite number > 0")
        for name in ("memory_size", "batch_size", "reuse_time", "frame_ues", "warm_start_episodes",
                     "warm_start_updates", "expert_episodes", "expert_updates"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise bad(name, "must be an integer > 0")
        v = self.expert_iterations
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad("expert_iterations", "must be an integer >= 0")
        if self.batch_size > self.memory_size:
            raise bad("batch_size", f"must be <= memory_size = {self.memory_size}")
        for name in ("gamma", "lam"):
            v = getattr(self, name)
            if not number(v) or not 0 <= v <= 1:
                raise bad(name, "must be a number in [0, 1]")
        if not number(self.zeta) or self.zeta < 0:
            raise bad("zeta", "must be a finite number >= 0")
        if not isinstance(self.normalize_advantages, bool):
            raise bad("normalize_advantages", "must be true or false")
        if self.grad_clip is not None and (not number(self.grad_clip) or self.grad_clip <= 0):
            raise bad("grad_clip", "must be a finite number > 0 (or null: no clipping)")
        if self.minibatch_unit not in MINIBATCH_UNITS:
            raise bad("minibatch_unit", f"must be one of {MINIBATCH_UNITS}")
        if self.clip_mode not in CLIP_MODES:
            raise bad("clip_mode", f"must be one of {CLIP_MODES}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", f"must be one of {LR_SCHEDULES}")
        if self.warm_start not in WARM_STARTS:
            raise bad("warm_start", f"must be one of {WARM_STARTS}")
        if self.actor not in ACTORS:
            raise bad("actor", f"must be one of {ACTORS}")
        return self

    @property
    def updates_per_iteration(self) -> int:
        return self.reuse_time * self.memory_size // self.batch_size
