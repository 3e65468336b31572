"""The one experiment config: serialisation, validation that names the field, CLI defaults from it."""

import json

import pytest

from mahppo.algorithms.experiment import Experiment, RunSettings
from mahppo.marl_env.config import EnvConfig


def test_to_dict_and_from_dict_round_trip_through_json():
    e = Experiment().with_flat({"num_ues": 5, "dnn": "vgg11", "lr": 3e-4, "seed": 2, "clip_mode": "joint"})
    again = Experiment.from_dict(json.loads(json.dumps(e.to_dict())))
    assert again == e
    assert again.env.num_ues == 5 and again.algo.lr == 3e-4 and again.run.seed == 2


def test_a_shared_actor_cell_with_a_range_round_trips():
    e = Experiment().with_flat({"actor": "shared", "num_ues_range": (2, 10), "dnn_pool": ("resnet18", "vgg11")})
    assert e.env.obs_mode == "agent" and e.env.num_ues == 10
    assert Experiment.from_dict(json.loads(json.dumps(e.to_dict()))) == e


@pytest.mark.parametrize("data, message", [
    ({"env": {"num_ues": 0}}, "env.num_ues = 0 must be an integer >= 1"),
    ({"algo": {"lr": -1.0}}, "algo.lr = -1.0 must be a finite number > 0"),
    ({"algo": {"grad_clip": -1.0}}, "algo.grad_clip = -1.0"),
    ({"algo": {"normalize_advantages": "no"}}, "algo.normalize_advantages = 'no' must be true or false"),
    ({"run": {"steps": 0}}, "run.steps = 0 must be an integer >= 1"),
    ({"run": {"algo": "ppo"}}, "run.algo = 'ppo'"),
    ({"run": {"stepz": 1}}, "run: unknown field 'stepz'"),
    ({"model": {}}, "unknown section 'model'"),
    ({"algo": {"actor": "per-ue"}}, "algo.actor = 'per-ue' needs obs_mode = 'global'"),
])
def test_bad_values_are_rejected_naming_the_field(data, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Experiment.from_dict(data)


def test_a_flat_key_sets_the_field_of_its_section():
    e = Experiment().with_flat({"num_ues": 4, "clip_eps": 0.1, "reuse_time": 3, "steps": 99})
    assert (e.env.num_ues, e.algo.clip_eps, e.algo.reuse_time, e.run.steps) == (4, 0.1, 3, 99)
    assert e.flat()["env.num_ues"] == 4 and e.flat()["algo.reuse_time"] == 3 and e.flat()["run.steps"] == 99
    with pytest.raises(ValueError, match="unknown key 'render_mode'"):  # a viewer setting, not an experiment's
        Experiment().with_flat({"render_mode": "human"})


def test_train_help_shows_the_dataclass_defaults(capsys):
    from mahppo.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "N UEs, or a range drawn per episode (needs --actor shared) (default: 3)" in text
    assert ("learning rate of actors and critic (the paper: 1e-4) (default: 3e-4 with --actor per-ue, "
            "6e-4 with --actor shared, 3e-4 for a warm-started varying cell)") in text
    assert f"(default: {RunSettings().steps})" in text


def test_the_cli_builds_the_experiment_it_was_given():
    from mahppo.cli import build_parser
    from mahppo.commands.train import experiment_from_args

    args = build_parser().parse_args(["train", "--num-ues", "2-6", "--actor", "shared", "--dnn", "resnet18,vgg11",
                                      "--lr", "3e-4", "--no-normalize-advantages", "--seed", "4"])
    e = experiment_from_args(args)
    assert e.env.num_ues_range == (2, 6) and e.env.dnn_pool == ("resnet18", "vgg11")
    assert e.algo.actor == "shared" and e.algo.lr == 3e-4 and e.algo.normalize_advantages is False
    assert e.run.seed == 4 and e.run.steps == RunSettings().steps


def test_a_varying_training_cell_is_evaluated_on_its_fixed_nominal_cell():
    from mahppo.algorithms.runs.run import test_scenario

    e = Experiment().with_flat({"actor": "shared", "num_ues_range": (2, 5), "dnn_pool": ("resnet18", "vgg11")})
    cell = test_scenario(e.env)
    assert not cell.varies and cell.scenario == "test" and cell.max_frames is None
    assert [s.dnn for s in cell.specs] == ["resnet18", "vgg11", "resnet18", "vgg11", "resnet18"]


def test_an_unset_lr_is_the_actors_measured_default_and_an_explicit_one_wins():
    from mahppo.algorithms.rllib.mahppo import build_config

    per_ue, shared = Experiment().with_flat({"actor": "per-ue"}), Experiment()
    assert per_ue.algo.lr is None and per_ue.learning_rate == 3e-4  # 3e-4, decaying linearly
    assert shared.learning_rate == 6e-4  # the default (shared) actor's measured default
    assert shared.flat()["algo.lr"] == 6e-4  # MLflow params carry the rate in effect
    assert build_config(shared).lr == [[0, 6e-4], [shared.run.steps, pytest.approx(6e-6)]]
    pinned = shared.with_flat({"lr": 1e-4, "lr_schedule": "constant"})
    assert pinned.learning_rate == 1e-4 and build_config(pinned).lr == 1e-4
    assert Experiment.from_dict(json.loads(json.dumps(shared.to_dict()))).learning_rate == 6e-4


def test_the_builder_names_a_bad_actor():
    from mahppo.algorithms.rllib.mahppo import MAHPPOConfig

    with pytest.raises(ValueError, match=r"actor = 'per_ue' must be one of \('per-ue', 'shared'\)"):
        MAHPPOConfig().mahppo(actor="per_ue").validate()


def test_auto_warm_start_is_the_rotate_teacher_for_cells_that_vary_or_hold_five_ues_or_more():
    fixed = Experiment().with_flat({"num_ues": 3})
    varied = Experiment().with_flat({"num_ues_range": [2, 10], "num_ues": 10})
    assert fixed.algo.warm_start == varied.algo.warm_start == "auto"
    assert (fixed.warm_start, varied.warm_start) == ("none", "rotate")
    assert [fixed.with_flat({"num_ues": n}).warm_start for n in (4, 5, 10)] == ["none", "rotate", "rotate"]
    assert varied.with_flat({"warm_start": "none"}).warm_start == "none"
    assert fixed.with_flat({"warm_start": "rotate"}).warm_start == "rotate"
    assert fixed.with_flat({"num_ues": 10, "actor": "per-ue"}).warm_start == "none"  # only the shared actor


def test_a_warm_started_varying_cell_fine_tunes_at_3e_4_unless_lr_is_given():
    from mahppo.algorithms.rllib.mahppo import build_config

    varied = Experiment().with_flat({"num_ues_range": [2, 6], "num_ues": 6, "steps": 1000})
    assert varied.flat()["algo.lr"] == 3e-4 and build_config(varied).lr == [[0, 3e-4], [1000, pytest.approx(3e-6)]]
    cold = varied.with_flat({"warm_start": "none"})
    assert cold.flat()["algo.lr"] == 6e-4 and build_config(cold).lr[0] == [0, 6e-4]
    assert build_config(varied.with_flat({"lr": 1e-4})).lr[0] == [0, 1e-4]
    assert Experiment().with_flat({"num_ues": 10}).learning_rate == 6e-4  # a fixed cell keeps the actor's rate


@pytest.mark.parametrize("flat", [{"algo": "ippo"}, {"actor": "per-ue"}])
def test_only_the_shared_actor_takes_the_teacher_and_the_error_names_the_field(flat):
    with pytest.raises(ValueError, match="algo.warm_start = 'rotate' needs run.algo = 'mahppo' with algo.actor"):
        Experiment().with_flat({**flat, "warm_start": "rotate"})


@pytest.mark.parametrize("command", ["train", "evaluate", "simulate"])
def test_every_command_shows_the_one_default_cell(command, capsys):
    from mahppo.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    cell = Experiment().env
    assert f"(needs --actor shared) (default: {cell.num_ues})" in text and cell.num_ues == EnvConfig().num_ues == 3
    assert f"C channels (default: {cell.num_channels})" in text and f"(default: {cell.dnn})" in text
