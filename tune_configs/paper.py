"""The paper's Sec. 6 evaluation as data: figure panel -> experiments (``mahppo reproduce``).

Three kinds of piece, each run through the project's own machinery by ``tune_configs.reproduce``:

- ``CompressPiece``: ``mahppo compress`` for one DNN (Ray tasks): the rates of Fig. 4 / 13a-b, and the
  JALAD baseline's profile on the authors' Jetson Nano (``compression.profiles.jalad_on_device``);
- ``StudyPiece``: a Tune study (``tune_configs.study``; the shipped ``studies/*.yaml`` where one exists),
  one trial per (point, seed), tracked in MLflow. The paper's per-UE actors and hyperparameters
  (``PAPER_LR``, K = 10, |M| = 1024, B = 256, Sec. 6.3.1) unless a piece says otherwise (``fig8-ours``:
  our defaults, labelled);
- the Local baseline is evaluated on each study's own test scenario when the figures are drawn.

``PAPER`` holds every number and claim Sec. 6 states in its text (the plots' values are not printed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mahppo.algorithms.params import PAPER_LR

DNNS = ("resnet18", "vgg11", "mobilenetv2")
JALAD_FRAME_S = 3.0  # "The time frame is relaxed to 3 second to help convergence" (Sec. 6.3.1)
PAPER_FRAME_S = 0.5  # T0 (Sec. 6.3.1)
# Sec. 6.3.1: N = 5, C = 2, ResNet18, beta = 0.47, lr 1e-4 constant (the studies' base adds per-UE actors).
PAPER_CELL: dict[str, Any] = {"num_channels": 2, "dnn": "resnet18", "beta": 0.47, **PAPER_LR}


@dataclass(frozen=True)
class Budget:
    """How much of the paper a run does: seeds, env steps per trial, the UE numbers of Figs. 10-11, 13."""

    name: str
    seeds: int
    steps: int
    ues: tuple[int, ...]
    eval_every: int
    compress: dict[str, Any]  # CompressJob / TrainConfig options
    smoke: bool
    ours_warm_start_episodes: int = 200  # our defaults' teacher (algorithms/acting/teacher.py)
    ours_warm_start_updates: int = 500

    def with_overrides(self, seeds: int | None = None, steps: int | None = None,
                       ues: tuple[int, ...] | None = None) -> Budget:
        """The budget with ``--seeds`` / ``--steps`` / ``--ues`` applied (what the study pieces use)."""
        from dataclasses import replace

        return replace(self, seeds=seeds or self.seeds, steps=steps or self.steps, ues=tuple(ues or self.ues))


BUDGETS = {
    # every panel, 1 seed, 2 iterations of |M| = 1024: a smoke run of the whole pipeline, not a result
    "quick": Budget("quick", seeds=1, steps=2048, ues=(3, 5, 10), eval_every=1, smoke=True,
                    compress={"rates": {"resnet18": [32.0], "vgg11": [32.0], "mobilenetv2": [32.0]},
                              "epochs": 1, "ft_epochs": 0, "base_epochs": 1, "max_batches": 4, "repeats": 2},
                    ours_warm_start_episodes=10, ours_warm_start_updates=50),
    # Sec. 6: 5 runs per setup, 50K steps, N = 3..10; compressors as far as the demo data allows
    "paper": Budget("paper", seeds=5, steps=50_000, ues=tuple(range(3, 11)), eval_every=2, smoke=False,
                    compress={"rates": {"resnet18": [16.0, 32.0, 64.0], "vgg11": [16.0, 32.0, 64.0, 128.0],
                                        "mobilenetv2": [16.0, 32.0]},
                              "epochs": 30, "ft_epochs": 10, "base_epochs": 10, "max_batches": None,
                              "repeats": 5}),
}


@dataclass(frozen=True)
class CompressPiece:
    """``mahppo compress`` for one DNN: our rates, JALAD's rates and JALAD's device profile."""

    name: str
    model: str

    def spec(self, budget: Budget) -> dict[str, Any]:
        c = dict(budget.compress)
        return {"kind": "compress", "model": self.model, **{k: v for k, v in c.items() if k != "rates"},
                "rates": c["rates"][self.model]}


@dataclass(frozen=True)
class StudyPiece:
    """A Tune study: a shipped study file (``study``) or grid/fixed keys here; ``ues`` sweeps the budget's
    UE numbers; ``jalad``: the DNN's JALAD profile with the 3 s frame (needs ``compress-<dnn>``)."""

    name: str
    study: str | None = None  # a shipped study (tune_configs/studies/NAME.yaml)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    ues: bool = False
    jalad: str | None = None  # the DNN whose JALAD profile this study trains on
    ours: bool = False  # our defaults (shared actor, default lr schedule, warm start), not the paper's

    @property
    def needs(self) -> tuple[str, ...]:
        return (f"compress-{self.jalad}",) if self.jalad else ()


@dataclass(frozen=True)
class Panel:
    """One figure panel: what it draws (``kind``) from which pieces."""

    figure: str
    title: str
    kind: str  # rates | convergence | curves | overhead | tradeoff
    pieces: tuple[str, ...]
    metric: str = "test_reward"
    dnn: str = "resnet18"


def _ues(dnn: str, jalad: bool = False) -> StudyPiece:
    fixed = {**PAPER_CELL, "dnn": dnn}
    return StudyPiece(f"ues-{'jalad-' if jalad else ''}{dnn}", fixed=fixed, ues=True, jalad=dnn if jalad else None)


PIECES: dict[str, CompressPiece | StudyPiece] = {p.name: p for p in (
    *(CompressPiece(f"compress-{d}", d) for d in DNNS),
    StudyPiece("fig8-mahppo", grid={"num_ues": [5]}, fixed=PAPER_CELL),
    StudyPiece("fig8-jalad", grid={"num_ues": [5]}, fixed=PAPER_CELL, jalad="resnet18"),
    StudyPiece("fig8-ours", grid={"num_ues": [5]}, fixed={"num_channels": 2, "dnn": "resnet18", "beta": 0.47,
                                                          "actor": "shared"}, ours=True),
    StudyPiece("lr", study="lr"),
    StudyPiece("reuse", study="reuse"),
    StudyPiece("memory", study="memory"),
    StudyPiece("beta", study="beta"),
    *(_ues(d, j) for d in DNNS for j in (False, True)),
)}

PANELS: dict[str, Panel] = {
    "fig4": Panel("Fig. 4", "Compression rate, ours vs JALAD, ResNet18", "rates", ("compress-resnet18",)),
    "fig8": Panel("Fig. 8", "Convergence: MAHPPO vs Local and JALAD (N = 5, ResNet18)", "convergence",
                  ("fig8-mahppo", "fig8-jalad", "fig8-ours")),
    "fig9a": Panel("Fig. 9a", "Learning rate", "curves", ("lr",)),
    "fig9b": Panel("Fig. 9b", "Sample reuse time K", "curves", ("reuse",)),
    "fig9c": Panel("Fig. 9c", "Memory size |M| (B = |M| / 4): reward", "curves", ("memory",)),
    "fig9d": Panel("Fig. 9d", "Memory size |M| (B = |M| / 4): value loss (Eq. 16)", "curves", ("memory",),
                   metric="vf_loss"),
    "fig10": Panel("Fig. 10", "Convergence by UE number N, ResNet18", "curves", ("ues-resnet18",)),
    "fig11": Panel("Fig. 11", "Inference overhead by UE number N, ResNet18", "overhead",
                   ("ues-resnet18", "ues-jalad-resnet18")),
    "fig12": Panel("Fig. 12", "Latency/energy balance beta (N = 5)", "tradeoff", ("beta",)),
    "fig13a": Panel("Fig. 13a", "Compression rate, VGG11", "rates", ("compress-vgg11",), dnn="vgg11"),
    "fig13b": Panel("Fig. 13b", "Compression rate, MobileNetV2", "rates", ("compress-mobilenetv2",),
                    dnn="mobilenetv2"),
    "fig13c": Panel("Fig. 13c", "Convergence by UE number N, VGG11", "curves", ("ues-vgg11",), dnn="vgg11"),
    "fig13d": Panel("Fig. 13d", "Convergence by UE number N, MobileNetV2", "curves", ("ues-mobilenetv2",),
                    dnn="mobilenetv2"),
    "fig13e": Panel("Fig. 13e", "Inference overhead by UE number N, VGG11", "overhead",
                    ("ues-vgg11", "ues-jalad-vgg11"), dnn="vgg11"),
    "fig13f": Panel("Fig. 13f", "Inference overhead by UE number N, MobileNetV2", "overhead",
                    ("ues-mobilenetv2", "ues-jalad-mobilenetv2"), dnn="mobilenetv2"),
}

# What Sec. 6's text reports (quotes or close paraphrases), per panel: (row, the paper's value).
PAPER: dict[str, list[tuple[str, str]]] = {
    "fig4": [("ours vs JALAD", "ours compresses much more; ours' rate falls and JALAD's rises deeper in the net "
                               "(Sec. 6.1)"),
             ("accuracy-loss bound", "largest rate under 2 % loss after fine-tuning")],
    "fig8": [("best method", "MAHPPO converges best (Sec. 6.3.2)"),
             ("JALAD (reward x 6)", "worse than Local once its 6x longer frame is accounted for"),
             ("JALAD curve", "large fluctuating range")],
    "fig9a": [("chosen lr", "1e-4; smaller converges slowly, larger is unstable")],
    "fig9b": [("chosen K", "20 (the setup paragraph says 10); small K slow and poor, K = 80 poor")],
    "fig9c": [("chosen |M|", "1024; small |M| converges faster to a poorer policy, large |M| poor")],
    "fig9d": [("value loss", "small |M| (and B) gives an unstable value-loss decrease")],
    "fig10": [("trend", "larger N converges slower and to a smaller (more negative) reward")],
    "fig11": [("latency saved at N = 3", "56 %"), ("energy saved at N = 3", "72 %"),
              ("MAHPPO vs Local", "always lower overhead; close to Local as N grows"),
              ("JALAD vs Local", "always worse than Local")],
    "fig12": [("trend", "latency rises and energy falls as beta grows; little change for beta < 0.1")],
    "fig13a": [("rates", "not stated in the text (the authors' profile holds them)")],
    "fig13b": [("rates", "not stated in the text (the authors' profile holds them)")],
    "fig13c": [("trend", "convergence similar to ResNet18")],
    "fig13d": [("trend", "convergence similar to ResNet18")],
    "fig13e": [("MAHPPO vs Local", "overhead saving similar to ResNet18"),
               ("JALAD vs Local", "JALAD better than Local on VGG11, especially in energy")],
    "fig13f": [("MAHPPO vs Local", "overhead saving similar to ResNet18")],
}


def select_panels(only: list[str] | None) -> list[str]:
    """The panels to draw (all by default); an unknown name is an error naming it."""
    if not only:
        return list(PANELS)
    for name in only:
        if name not in PANELS:
            raise ValueError(f"--only {name!r}: not a panel (known: {', '.join(PANELS)})")
    return [p for p in PANELS if p in only]


# The order pieces run in: the headline panels first (a run cut short still has them).
PRIORITY = ("fig4", "fig8", "fig11", "fig10", "fig12", "fig9a", "fig9b", "fig9c", "fig9d", "fig13a", "fig13c",
            "fig13e", "fig13b", "fig13d", "fig13f")


def pieces_for(panels: list[str]) -> list[str]:
    """The pieces the panels need in ``PRIORITY`` order, each after its dependencies (compression before JALAD)."""
    names: list[str] = []
    for panel in sorted(panels, key=PRIORITY.index):
        for name in PANELS[panel].pieces:
            piece = PIECES[name]
            for dep in getattr(piece, "needs", ()):
                if dep not in names:
                    names.append(dep)
            if name not in names:
                names.append(name)
    return names


def study_dict(piece: StudyPiece, budget: Budget, jalad_profile: str | None) -> dict[str, Any]:
    """A study file's mapping for ``piece`` under ``budget`` (``tune_configs.study.parse_study`` reads it)."""
    from mahppo.tune_configs.study import load_study

    if piece.study:
        s = load_study(piece.study)
        data: dict[str, Any] = {"points": s.points, "vary": s.vary, "fixed": dict(s.fixed), "plot": s.plot,
                                "title": s.title}
    else:
        grid = {"num_ues": list(budget.ues)} if piece.ues else dict(piece.grid)
        data = {"grid": grid, "fixed": dict(piece.fixed), "title": piece.name}
    if piece.jalad:
        data["fixed"].update({"dnn": f"{piece.jalad}-jalad", "profile_file": jalad_profile,
                              "frame_s": JALAD_FRAME_S})
    if piece.ours:
        data["fixed"].update({"warm_start_episodes": budget.ours_warm_start_episodes,
                              "warm_start_updates": budget.ours_warm_start_updates})
    data.update({"seeds": budget.seeds, "steps": budget.steps, "eval_every": budget.eval_every,
                 "checkpoint_every": 1000})
    return data
