"""Figures and ``paper_vs_ours.md`` of ``mahppo reproduce`` from the recorded pieces (``tune_configs.reproduce``).

One PNG per panel in the paper's layout (Fig. 8: test reward vs env steps, JALAD's reward x 6 as Sec. 6.3.2
reads it; Figs. 9, 10, 13c-d: curves per value, mean over seeds with a +-1 std band; Figs. 11, 13e-f:
latency and energy per task vs N, MAHPPO, JALAD and Local; Fig. 12: latency and energy vs beta).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mahppo.tune_configs.paper import (
    BUDGETS,
    JALAD_FRAME_S,
    PANELS,
    PAPER,
    PAPER_FRAME_S,
    PIECES,
    Budget,
    StudyPiece,
    study_dict,
)

LAT, EN = "test_frame_latency_per_task_s", "test_energy_per_task_j"
JALAD_SCALE = JALAD_FRAME_S / PAPER_FRAME_S  # Sec. 6.3.2: JALAD's cumulative reward "shrunk by 6 times"


def _stat(vals: list[float]) -> tuple[float, float, int]:
    a = np.asarray([v for v in vals if v is not None and np.isfinite(v)], dtype=float)
    return (float(a.mean()), float(a.std()), len(a)) if len(a) else (float("nan"), float("nan"), 0)


def fmt(vals: list[float], digits: int = 4) -> str:
    """``mean ± std`` over seeds (the mean alone for one seed)."""
    m, s, n = _stat(vals)
    if n == 0:
        return "n/a"
    return f"{m:.{digits}g} ± {s:.2g}" if n > 1 else f"{m:.{digits}g}"


def finals(point: dict[str, Any], key: str, scale: float = 1.0) -> list[float]:
    return [s["final"][key] * scale for s in point["seeds"] if key in s["final"]]


def curve(point: dict[str, Any], key: str, scale: float = 1.0):
    from mahppo.tune_configs.report import mean_curve

    cs = [(np.asarray(s["curves"][key][0]), np.asarray(s["curves"][key][1]) * scale) for s in point["seeds"]
          if s["curves"].get(key) and len(s["curves"][key][0])]
    return mean_curve(cs)


def smooth(y: np.ndarray, k: int = 5) -> np.ndarray:
    """The paper's smoothing: the mean of the ``k`` nearest values at each point (Sec. 6.3.2)."""
    if len(y) < k:
        return y
    pad = np.pad(y, (k // 2, k - 1 - k // 2), mode="edge")
    return np.convolve(pad, np.ones(k) / k, mode="valid")


def _v(value: Any) -> str:
    """A swept value as the paper writes it (``3``, not ``3.0``)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _res(done: dict[str, dict], name: str) -> dict[str, Any]:
    return done[name]["result"]


def draw_panel(panel: str, done: dict[str, dict], out: Path, budget: Budget) -> Path:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    p = PANELS[panel]
    path = out / f"{panel}.png"
    tag = f" [SMOKE RUN: --budget {budget.name}]" if budget.smoke else f" [--budget {budget.name}]"
    if p.kind == "rates":
        from mahppo.compression.plots import plot_rates

        r = _res(done, p.pieces[0])
        return plot_rates(r["points"], r["ours_rate"], r["jalad_rate"], path,
                          title=f"{p.figure}: {p.title}\n{tag.strip()}\nthe authors' profile: R = "
                                f"{', '.join(f'{x:g}' for x in r['authors_rate'])}; ours on the {r['data']} data")
    two = p.kind in ("overhead", "tradeoff")
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(10.4 if two else 6.2, 4.0))
    axes = list(np.atleast_1d(axes))
    if p.kind == "convergence":
        ax = axes[0]
        for name, label, scale in (("fig8-mahppo", "MAHPPO (paper's per-UE actors, lr 1e-4)", 1.0),
                                   ("fig8-ours", "MAHPPO, our defaults (shared actor, warm start)", 1.0),
                                   ("fig8-jalad", f"JALAD, 3 s frame, reward x {JALAD_SCALE:g}", JALAD_SCALE)):
            if name not in done:
                continue
            pt = _res(done, name)["points"][0]
            mc = curve(pt, "test_reward", scale)
            if mc is not None:
                x, m, s = mc
                line = ax.plot(x, smooth(m), label=f"{label} ({len(pt['seeds'])} seed(s))",
                               marker="." if len(x) < 8 else None)
                ax.fill_between(x, smooth(m - s), smooth(m + s), alpha=0.2, color=line[0].get_color())
        local = _res(done, "fig8-mahppo")["points"][0]["local"]["test_reward"]
        ax.axhline(local, ls="--", color="gray", label="Local")
        ax.set_xlabel("env steps (frames)")
        ax.set_ylabel("test-scenario episode reward")
    elif p.kind == "curves":
        ax = axes[0]
        res = _res(done, p.pieces[0])
        cmap = plt.get_cmap("viridis", max(2, len(res["points"])))
        for i, pt in enumerate(res["points"]):
            mc = curve(pt, p.metric)
            if mc is None:
                continue
            x, m, s = mc
            ax.plot(x, m, color=cmap(i), label=f"{res['vary']}={_v(pt['value'])}", marker="." if len(x) < 8 else None)
            ax.fill_between(x, m - s, m + s, color=cmap(i), alpha=0.2)
        ax.set_xlabel("env steps (frames)")
        ax.set_ylabel("value loss (Eq. 16)" if p.metric == "vf_loss" else "test-scenario episode reward")
        if p.metric == "vf_loss":
            ax.set_yscale("log")
    else:
        res = _res(done, p.pieces[0])
        xs = [float(pt["value"]) for pt in res["points"]]
        for ax, key, label in ((axes[0], LAT, "latency per task (s)"), (axes[1], EN, "energy per task (J)")):
            series = [("MAHPPO", res, "o-")]
            if len(p.pieces) > 1 and p.pieces[1] in done:
                series.append(("JALAD (3 s frame)", _res(done, p.pieces[1]), "s-"))
            for label_, r, style in series:
                ms = np.array([_stat(finals(pt, key))[:2] for pt in r["points"]])
                rx = [float(pt["value"]) for pt in r["points"]]
                ax.plot(rx, ms[:, 0], style, label=label_)
                ax.fill_between(rx, ms[:, 0] - ms[:, 1], ms[:, 0] + ms[:, 1], alpha=0.2)
            ax.plot(xs, [pt["local"].get(key, np.nan) for pt in res["points"]], "k--", label="Local")
            ax.set_xlabel("beta" if p.kind == "tradeoff" else "number of UEs N")
            if p.kind == "tradeoff":
                ax.set_xscale("log")
            ax.set_ylabel(label)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{p.figure}: {p.title}\n{tag.strip()}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ratio(vals: list[float], ref: float) -> list[float]:
    return [v / ref for v in vals]


def _series(done: dict[str, dict], name: str) -> dict[float, dict[str, Any]]:
    return {float(pt["value"]): pt for pt in _res(done, name)["points"]} if name in done else {}


def measured(panel: str, done: dict[str, dict]) -> list[str]:
    """The panel's numbers as a markdown table (mean ± std over seeds)."""
    p = PANELS[panel]
    if p.kind == "rates":
        r = _res(done, p.pieces[0])
        lines = ["| point | ours: R | JALAD: R | the authors' profile: R |", "|---|---|---|---|"]
        lines += [f"| {b} | {o:g} | {j:.3g} | {a:g} |" for b, o, j, a in
                  zip(r["points"], r["ours_rate"], r["jalad_rate"], r["authors_rate"], strict=True)]
        return [*lines, "", f"Base accuracy {r['base_accuracy']:.3f} on the {r['data']} data; ours = the largest "
                "rate tried with under 2 % accuracy loss (R = 1: none)."]
    if p.kind == "convergence":
        lines = ["| curve | seeds | final test reward | as drawn |", "|---|---|---|---|"]
        for name, label, scale in (("fig8-mahppo", "MAHPPO (the paper's method)", 1.0),
                                   ("fig8-ours", "MAHPPO, our defaults", 1.0), ("fig8-jalad", "JALAD", JALAD_SCALE)):
            if name in done:
                pt = _res(done, name)["points"][0]
                lines.append(f"| {label} | {len(pt['seeds'])} | {fmt(finals(pt, 'test_reward'))} | "
                             f"{fmt(finals(pt, 'test_reward', scale))}{f' (x {scale:g})' if scale != 1 else ''} |")
        lines.append(f"| Local | - | {_res(done, 'fig8-mahppo')['points'][0]['local']['test_reward']:.4g} | |")
        if "fig8-jalad" in done:
            lj = _res(done, "fig8-jalad")["points"][0]["local"]["test_reward"]
            lines.append(f"| Local on JALAD's 3 s frame | - | {lj:.4g} | |")
        return lines
    if p.kind == "curves":
        res = _res(done, p.pieces[0])
        key = "value loss" if p.metric == "vf_loss" else "test reward"
        lines = [f"| {res['vary']} | seeds | final {key} | env steps |", "|---|---|---|---|"]
        lines += [f"| {_v(pt['value'])} | {len(pt['seeds'])} | {fmt(finals(pt, p.metric))} | "
                  f"{fmt(finals(pt, 'env_steps'), 6)} |" for pt in res["points"]]
        return lines
    name = "beta" if p.kind == "tradeoff" else "N"
    jal = _series(done, p.pieces[1]) if len(p.pieces) > 1 else {}
    lines = [f"| {name} | seeds | MAHPPO latency s (x Local) | MAHPPO energy J (x Local) | "
             + ("JALAD latency s (x Local) | JALAD energy J (x Local) | " if jal else "")
             + "Local latency s | Local energy J |", "|---" * (8 if jal else 6) + "|"]
    for pt in _res(done, p.pieces[0])["points"]:
        loc = pt["local"]
        srcs: list[Any] = [pt]
        if jal:
            srcs.append(jal.get(float(pt["value"])))
        cells = [_v(pt["value"]), str(len(pt["seeds"]))]
        for src in srcs:
            for key in (LAT, EN):
                cells.append("not run" if src is None else
                             f"{fmt(finals(src, key))} ({fmt(_ratio(finals(src, key), loc[key]), 3)})")
        cells += [f"{loc[LAT]:.4g}", f"{loc[EN]:.4g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def verdicts(panel: str, done: dict[str, dict]) -> dict[str, str]:
    """Ours, against each claim of ``PAPER[panel]`` (the claim's row label -> what we measured)."""
    p = PANELS[panel]
    out: dict[str, str] = {}
    if p.kind == "rates":
        r = _res(done, p.pieces[0])
        more = all(o > j for o, j in zip(r["ours_rate"], r["jalad_rate"], strict=True))
        rises = r["jalad_rate"][-1] > r["jalad_rate"][0]
        out["ours vs JALAD"] = (f"ours {'above' if more else 'not always above'} JALAD; JALAD's rate "
                                f"{'rises' if rises else 'does not rise'} from point 1 to 4 "
                                f"({r['jalad_rate'][0]:.3g} -> {r['jalad_rate'][-1]:.3g})")
        out["accuracy-loss bound"] = "the same rule (mahppo compress --max-loss 0.02)"
        out["rates"] = "table below"
    elif p.kind == "convergence":
        local = _res(done, "fig8-mahppo")["points"][0]["local"]["test_reward"]
        cands = {"Local": local}
        for name, label, scale in (("fig8-mahppo", "MAHPPO", 1.0), ("fig8-ours", "MAHPPO, our defaults", 1.0),
                                   ("fig8-jalad", "JALAD x 6", JALAD_SCALE)):
            if name in done:
                cands[label] = _stat(finals(_res(done, name)["points"][0], "test_reward", scale))[0]
        best = max(cands, key=lambda k: cands[k])
        out["best method"] = f"{best} ({', '.join(f'{k} {v:.3g}' for k, v in cands.items())})"
        if "JALAD x 6" in cands:
            side = "worse than Local" if cands["JALAD x 6"] < local else "better than Local"
            out["JALAD (reward x 6)"] = f"{side} ({cands['JALAD x 6']:.3g} vs {local:.3g})"
            mc = curve(_res(done, "fig8-jalad")["points"][0], "test_reward", JALAD_SCALE)
            mm = curve(_res(done, "fig8-mahppo")["points"][0], "test_reward")
            if mc is not None and mm is not None:
                out["JALAD curve"] = (f"std of the curve's points: JALAD x 6 {np.std(mc[1]):.3g}, "
                                      f"MAHPPO {np.std(mm[1]):.3g}")
    elif p.kind == "curves":
        res = _res(done, p.pieces[0])
        ranked = sorted(res["points"], key=lambda pt: -_stat(finals(pt, "test_reward"))[0])
        text = (f"best final reward at {res['vary']} = {_v(ranked[0]['value'])}; order "
                + " > ".join(_v(pt["value"]) for pt in ranked))
        for what, _ in PAPER.get(panel, []):
            out[what] = text if p.metric == "test_reward" else "see the figure and the table below"
    elif p.kind == "tradeoff":
        pts = _res(done, p.pieces[0])["points"]
        lat = [_stat(finals(pt, LAT))[0] for pt in pts]
        en = [_stat(finals(pt, EN))[0] for pt in pts]
        out["trend"] = (f"from beta = {_v(pts[0]['value'])} to {_v(pts[-1]['value'])}: latency {lat[0]:.3g} -> "
                        f"{lat[-1]:.3g} s, energy {en[0]:.3g} -> {en[-1]:.3g} J")
    else:
        pts = _res(done, p.pieces[0])["points"]
        jal = _series(done, p.pieces[1])
        below = [_v(pt["value"]) for pt in pts
                 if _stat(finals(pt, LAT))[0] < pt["local"][LAT] and _stat(finals(pt, EN))[0] < pt["local"][EN]]
        out["MAHPPO vs Local"] = (f"lower latency and energy than Local at N = {', '.join(below) or 'none'} "
                                  f"of {', '.join(_v(pt['value']) for pt in pts)}")
        for pt in pts:
            if float(pt["value"]) == 3.0:
                loc = pt["local"]
                saved_l = [100 * (1 - r) for r in _ratio(finals(pt, LAT), loc[LAT])]
                saved_e = [100 * (1 - r) for r in _ratio(finals(pt, EN), loc[EN])]
                out["latency saved at N = 3"] = fmt(saved_l, 3) + " %"
                out["energy saved at N = 3"] = fmt(saved_e, 3) + " %"
        if jal:
            loc = pts[0]["local"]
            worse = [_v(v) for v, j in jal.items()
                     if _stat(finals(j, LAT))[0] > loc[LAT] or _stat(finals(j, EN))[0] > loc[EN]]
            ratios = ", ".join(f"N = {_v(v)}: {_stat(finals(j, EN))[0] / loc[EN]:.3g}" for v, j in jal.items())
            out["JALAD vs Local"] = (f"worse than Local (latency or energy) at N = {', '.join(worse) or 'none'}; "
                                     f"JALAD energy x Local: {ratios}")
        else:
            out["JALAD vs Local"] = "not run"
    return out


def paper_estimate(done: dict[str, dict], panels: list[str]) -> str:
    """How long ``--budget paper`` takes, from the env steps per second the recorded trials ran at."""
    from mahppo.tune_configs.paper import pieces_for

    rates = [s["final"]["env_steps"] / s["final"]["time_s"] for rec in done.values()
             if rec["spec"].get("kind") == "study" for pt in rec["result"]["points"] for s in pt["seeds"]
             if s["final"].get("time_s") and s["final"].get("env_steps")]
    if not rates:
        return "no trial recorded: no estimate"
    paper, trials = BUDGETS["paper"], 0
    for name in pieces_for(panels):
        piece = PIECES[name]
        if isinstance(piece, StudyPiece):
            data = study_dict(piece, paper, "unused")
            points = len(data["points"]) if "points" in data else int(np.prod([len(v) for v in data["grid"].values()]))
            trials += points * paper.seeds
    rate = float(np.median(rates))
    cpu_s = trials * paper.steps / rate
    return (f"{trials} trials x {paper.steps} env steps at the median {rate:.0f} env steps/s per trial measured "
            f"here (training time, evaluations included, 1 CPU per trial, under this machine's load) = "
            f"{cpu_s / 3600:.1f} CPU-hours: about {cpu_s / 2 / 3600:.0f} h on this 2-core machine, "
            f"{cpu_s / 16 / 3600:.1f} h on a 16-core node through `--address` (one trial per CPU), plus "
            "the three compression runs (30 + 10 epochs each on the demo data: tens of minutes).")


def write_table(panels: list[str], done: dict[str, dict], out: Path, budget: Budget,
                overrides: dict[str, Any], command: str = "", machine: list[str] | None = None) -> Path:
    lines = ["# The paper's Sec. 6 evaluation, reproduced", "",
             f"Made by `{command or 'mahppo reproduce --budget ' + budget.name}`.", ""]
    if budget.smoke:
        lines += [f"**SMOKE RUN (`--budget {budget.name}`)**: {budget.seeds} seed(s), {budget.steps} env steps per "
                  f"trial, N in {list(budget.ues)}; the paper trains 5 seeds x 50K steps. The compressors train on a "
                  f"few batches ({budget.compress['max_batches']} per epoch, {budget.compress['base_epochs']} base "
                  "epoch), so the base models are near chance and the chosen rates mean "
                  "nothing. These numbers check that the pipeline runs end to end; they are not results and are "
                  "not comparable with the paper's.", ""]
    if machine:
        lines += ["Invocations that ran pieces (the record in `invocations.json`):", "",
                  *(f"- {m}" for m in machine), ""]
    lines += ["Columns: **paper** = what Sec. 6's text states (its plots' values are not printed); **authors' code** "
              "= the authors' implementation (github.com/Hao840/MAHPPO): not run here (no network access, and "
              "it is not part of this project), so every cell says so; **ours** = this project with the paper's "
              "method (per-UE actors, lr 1e-4 constant, K = 10, |M| = 1024, B = 256, Sec. 6.3.1), mean ± std over "
              "seeds (n = seeds), on the test scenario (d = 50 m, K = 200); **ours, our defaults** = the shared "
              "actor with our default learning rate and warm start, where run (Fig. 8).", "",
              "Latency is the authors' evaluation metric (frames used x T0 x N / tasks); JALAD runs on its own "
              f"{JALAD_FRAME_S:g} s frame (Sec. 6.3.1), with the profile `profiles/jalad_<dnn>.json` (JALAD's rate "
              "and entropy-coding time measured here, on the authors' Jetson Nano numbers). That metric counts whole "
              "frames, so a 3 s frame rounds up: Local itself scores more on it than on 0.5 s frames (e.g. 0.06 s "
              "against 0.0475 s per task at N = 3); every \"x Local\" is against Local on the paper's 0.5 s frame.", ""]
    for panel in panels:
        p = PANELS[panel]
        missing = [n for n in p.pieces if n not in done and not n.endswith("-ours")]
        lines += [f"## {p.figure}: {p.title}", "", f"![{p.figure}]({panel}.png)", ""]
        if missing:
            lines += [f"Not run: {', '.join(missing)}.", ""]
            continue
        ver = verdicts(panel, done)
        lines += ["| claim | paper (Sec. 6 text) | authors' code | ours |", "|---|---|---|---|"]
        lines += [f"| {what} | {claim} | not run | {ver.get(what, 'see the figure')} |"
                  for what, claim in PAPER.get(panel, [])]
        lines += ["", *measured(panel, done)]
        wall = ", ".join(f"{n} {done[n]['wall_s']:.0f} s" for n in p.pieces if n in done)
        lines += ["", f"Pieces (wall time when they ran): {wall}.", ""]
    lines += ["## How long `--budget paper` takes", "", paper_estimate(done, panels), ""]
    path = out / "paper_vs_ours.md"
    path.write_text("\n".join(lines) + "\n")
    return path
