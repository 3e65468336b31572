"""PettingZoo's conventions: ``env()`` (AEC), ``parallel_env()``, ``raw_env``; per-UE DNNs; clear conflicts."""

import pytest
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.test import api_test, parallel_api_test

import mahppo.marl_env as marl_env
from mahppo.marl_env import EnvConfig, env, parallel_env, raw_env


def test_env_is_an_aec_env_that_passes_pettingzoos_api_test():
    aec = env(num_ues=3)
    assert isinstance(aec, AECEnv)
    api_test(aec, num_cycles=100)


def test_aec_env_with_mixed_dnns_passes_the_api_test():
    api_test(env(ue_specs=["resnet18", "vgg11", "mobilenetv2"], max_frames=20), num_cycles=60)


def test_parallel_env_passes_pettingzoos_parallel_api_test():
    par = parallel_env(num_ues=3, num_channels=2)
    assert isinstance(par, ParallelEnv)
    parallel_api_test(par, num_cycles=100)


def test_the_creators_are_functions_of_the_package():
    assert callable(marl_env.env) and callable(marl_env.parallel_env)
    assert env(num_ues=4).possible_agents == ["ue_0", "ue_1", "ue_2", "ue_3"]


def test_num_ues_that_contradicts_ue_specs_is_rejected_naming_both():
    with pytest.raises(ValueError, match=r"num_ues = 7 conflicts with ue_specs \(2 UEs\)"):
        parallel_env(num_ues=7, ue_specs=["resnet18", "vgg11"])


def test_num_ues_that_matches_ue_specs_is_accepted():
    assert len(parallel_env(num_ues=2, ue_specs=["resnet18", "vgg11"]).possible_agents) == 2


def test_with_updates_cannot_change_num_ues_under_fixed_specs():
    cfg = EnvConfig.from_kwargs(ue_specs=["resnet18", "vgg11"])
    with pytest.raises(ValueError, match="num_ues = 3 conflicts with ue_specs"):
        cfg.with_updates(num_ues=3)


def test_a_dnn_list_gives_one_dnn_per_ue_and_sets_n():
    cfg = EnvConfig.from_kwargs(dnn="resnet18,vgg11,mobilenetv2")
    assert cfg.num_ues == 3
    assert [s.dnn for s in cfg.specs] == ["resnet18", "vgg11", "mobilenetv2"]
    assert [p.num_actions for p in cfg.profiles] == [6, 6, 6]


def test_one_dnn_applies_to_every_ue():
    cfg = EnvConfig.from_kwargs(dnn="vgg11", num_ues=4)
    assert [s.dnn for s in cfg.specs] == ["vgg11"] * 4


def test_a_dnn_list_of_the_wrong_length_is_rejected():
    with pytest.raises(ValueError, match=r"dnn = 'resnet18,vgg11' names 2 DNNs for num_ues = 3"):
        EnvConfig.from_kwargs(dnn="resnet18,vgg11", num_ues=3)


def test_an_unknown_dnn_in_the_list_is_named():
    with pytest.raises(ValueError, match="dnn = 'alexnet' is not in the default profiles"):
        EnvConfig.from_kwargs(dnn="resnet18,alexnet")


def test_raw_env_is_the_aec_class_and_env_wraps_it_in_the_order_enforcing_wrapper():
    from pettingzoo.utils.wrappers import OrderEnforcingWrapper

    e = raw_env(num_ues=2, scenario="test")
    assert isinstance(e, AECEnv) and isinstance(e.unwrapped, marl_env.CollabInferenceEnv)
    assert e.possible_agents == ["ue_0", "ue_1"]
    wrapped = env(num_ues=2)
    assert isinstance(wrapped, OrderEnforcingWrapper) and isinstance(wrapped.env, raw_env)


def test_parallel_env_names_its_keywords_and_defaults_to_the_env_config_defaults():
    import inspect

    params = inspect.signature(parallel_env).parameters
    for name in ("num_ues", "num_channels", "dnn", "ue_specs", "beta", "scenario", "dynamics", "max_frames",
                 "obs_mode"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default == getattr(EnvConfig, name)
        assert f"{name}:" in parallel_env.__doc__
    assert parallel_env().config == EnvConfig.from_kwargs()


def test_parallel_env_rejects_an_unknown_option_by_name():
    with pytest.raises(ValueError, match="unknown env option 'num_ue'"):
        parallel_env(num_ue=3)


def test_reset_refuses_an_env_option_it_cannot_apply_instead_of_ignoring_it():
    par = parallel_env(num_ues=3)
    with pytest.raises(ValueError, match=r"ue_specs is fixed when the env is built; build a new env with "
                                         r"parallel_env\(ue_specs=...\)"):
        par.reset(seed=0, options={"ue_specs": ["vgg11"] * 3})
    obs, _ = par.reset(seed=0, options={"anything": 1})  # other keys: ignored, as Gymnasium does
    assert set(obs) == {"ue_0", "ue_1", "ue_2"}


def test_api_test_warns_only_that_the_hybrid_action_is_a_tuple():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api_test(env(num_ues=3, max_frames=20), num_cycles=20)
    messages = {str(w.message) for w in caught if "pettingzoo" in w.filename}
    assert messages <= {"Action space for each agent probably should be gymnasium.spaces.box or "
                        "gymnasium.spaces.discrete"}
