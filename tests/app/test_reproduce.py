"""``mahppo reproduce``: the paper's Sec. 6 plan, JALAD's profile, and a tiny resumable run through the CLI."""

from __future__ import annotations

import json

import pytest

from mahppo.cli import main
from mahppo.tune_configs.paper import PANELS, PIECES, StudyPiece, pieces_for, select_panels


def test_the_plan_has_every_panel_of_sec6():
    assert list(PANELS) == ["fig4", "fig8", "fig9a", "fig9b", "fig9c", "fig9d", "fig10", "fig11", "fig12",
                            "fig13a", "fig13b", "fig13c", "fig13d", "fig13e", "fig13f"]
    assert all(name in PIECES for p in PANELS.values() for name in p.pieces)


def test_jalad_studies_run_after_their_compression():
    order = pieces_for(["fig11", "fig13e"])
    assert order.index("compress-resnet18") < order.index("ues-jalad-resnet18")
    assert order.index("compress-vgg11") < order.index("ues-jalad-vgg11")
    assert order.count("ues-resnet18") == 1


def test_the_paper_pieces_use_the_papers_method():
    from mahppo.tune_configs.paper import BUDGETS, study_dict
    from mahppo.tune_configs.study import parse_study

    for name in ("fig8-mahppo", "ues-vgg11", "lr", "beta"):
        piece = PIECES[name]
        assert isinstance(piece, StudyPiece)
        study = parse_study({"name": "x", **study_dict(piece, BUDGETS["paper"], None)})
        exp = __import__("mahppo.tune_configs.study", fromlist=["trial_experiment"]).trial_experiment(
            study.trial_configs()[0])
        assert exp.algo.actor == "per-ue" and exp.algo.lr_schedule == "constant"
        assert exp.algo.reuse_time == 10 and exp.algo.memory_size == 1024 and exp.algo.batch_size == 256
        assert study.steps == 50_000 and len(study.seeds) == 5
        if name != "lr":
            assert exp.learning_rate == 1e-4


def test_unknown_panel_is_a_one_line_error(capsys):
    assert main(["reproduce", "--only", "fig99"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fig99" in err[0] and "fig13f" in err[0]
    with pytest.raises(ValueError, match="fig7"):
        select_panels(["fig7"])


def test_jalad_profile_drives_the_env_with_a_3s_frame(tmp_path):
    """JALAD measured here (8-bit + zlib) on the Jetson profile; the episode runs on 3 s frames."""
    import torch

    from mahppo.compression.models import POINTS, build_model
    from mahppo.compression.profiles import jalad_on_device, measure_profiles, write_profile_file
    from mahppo.marl_env.config import EnvConfig
    from mahppo.marl_env.evaluation import evaluate
    from mahppo.marl_env.policies import make_baseline
    from mahppo.marl_env.profiles import resolve_profile
    from mahppo.tune_configs.paper import JALAD_FRAME_S
    from mahppo.tune_configs.reproduce import device_profile

    torch.manual_seed(0)
    _, jalad, details = measure_profiles(build_model("resnet18", 10).eval(), dict.fromkeys(POINTS),
                                         torch.rand(1, 3, 224, 224), warmup=0, repeats=1)
    device = device_profile("resnet18")
    entries = jalad_on_device(device, jalad, details)
    path = write_profile_file(tmp_path / "jalad.json", {"resnet18-jalad": entries}, "test")
    prof = resolve_profile("resnet18-jalad", path)
    for b in POINTS:  # JALAD's bits, and the Jetson head plus the coding time
        assert prof.bits[b] == round(device[b]["raw_bits"] / jalad[b]["compression_rate"])
        assert prof.front_latency_s[b] > device[b]["front_latency_s"]
    assert prof.local_latency_s == device[-1]["front_latency_s"]

    cell = {"num_ues": 3, "dnn": "resnet18-jalad", "profile_file": str(path), "scenario": "test"}
    slow = EnvConfig.from_kwargs(**cell, frame_s=JALAD_FRAME_S)
    assert slow.frame_s == 3.0
    m3 = evaluate(make_baseline("fixed:2,0,0.5;2,1,0.5;5,0,0.1"), slow)
    assert m3["tasks_completed"] == 600  # every task of the test scenario finished
    local3 = evaluate(make_baseline("local"), slow)
    local05 = evaluate(make_baseline("local"), EnvConfig.from_kwargs(**cell))
    # 200 local tasks of 45.9 ms each: 4 frames of 3 s, against 19 of 0.5 s (frames x T0 x N / tasks)
    assert local3["frame_latency_per_task_s"] == pytest.approx(4 * 3.0 * 3 / 600)
    assert local05["frame_latency_per_task_s"] == pytest.approx(19 * 0.5 * 3 / 600)
    assert local3["reward"] > local05["reward"]  # fewer frames, a smaller cumulative cost (Sec. 6.3.2)


@pytest.mark.slow
def test_tiny_reproduce_writes_pngs_and_table_and_a_rerun_reruns_nothing(tmp_path, capsys):
    """Two panels, one seed, one iteration per trial through the CLI; the same --out again runs no piece."""
    import ray
    from mlflow.tracking import MlflowClient

    out, uri = tmp_path / "paper", f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["reproduce", "--only", "fig10,fig13d", "--seeds", "1", "--steps", "300", "--ues", "3", "--out", str(out),
            "--work", str(tmp_path / "work"), "--mlflow-uri", uri, "--no-progress", "--json"]
    try:
        assert main(argv) == 0
        first = json.loads(capsys.readouterr().out)
        assert first["ran"] == ["ues-resnet18", "ues-mobilenetv2"] and first["skipped"] == []
        assert sorted(p.name for p in out.glob("*.png")) == ["fig10.png", "fig13d.png"]
        table = (out / "paper_vs_ours.md").read_text()
        assert "## Fig. 10:" in table and "## Fig. 13d:" in table and "SMOKE RUN" in table
        assert "| num_ues | seeds | final test reward | env steps |" in table and "\n| 3 | 1 | " in table
        assert "mahppo reproduce --budget quick --only fig10,fig13d --seeds 1 --steps 300 --ues 3" in table
        recorded = {p.name: p.stat().st_mtime_ns for p in (out / "pieces").iterdir()}
        assert set(recorded) == {"ues-resnet18.json", "ues-mobilenetv2.json"}
        cl = MlflowClient(uri)
        runs_before = len(cl.search_runs([e.experiment_id for e in cl.search_experiments()]))

        assert main(argv) == 0
        second = json.loads(capsys.readouterr().out)
        assert second["ran"] == [] and second["skipped"] == ["ues-resnet18", "ues-mobilenetv2"]
        assert {p.name: p.stat().st_mtime_ns for p in (out / "pieces").iterdir()} == recorded
        runs_after = cl.search_runs([e.experiment_id for e in cl.search_experiments()])
        assert len(runs_after) == runs_before + 1  # only the new "reproduce" run: no trial ran again
    finally:
        ray.shutdown()
