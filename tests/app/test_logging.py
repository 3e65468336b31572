"""Logging: one level for our messages and the other libraries' (``--log-level``, ``$MAHPPO_LOG_LEVEL``), set
through their own options, and the same quiet output from Python as from the CLI (``runtime/logs.py``)."""

import logging

import pytest

from mahppo.runtime import logs


@pytest.fixture(autouse=True)
def _restore(monkeypatch):
    monkeypatch.delenv(logs.LEVEL_ENV, raising=False)
    yield
    logs.configure("INFO")


def test_level_comes_from_the_argument_then_the_environment_then_info(monkeypatch):
    assert logs.resolve_level(None) == logging.INFO
    monkeypatch.setenv(logs.LEVEL_ENV, "debug")
    assert logs.resolve_level(None) == logging.DEBUG
    assert logs.resolve_level("error") == logging.ERROR


def test_a_bad_level_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv(logs.LEVEL_ENV, "loud")
    with pytest.raises(ValueError, match=r"\$MAHPPO_LOG_LEVEL = 'loud' must be one of DEBUG, INFO"):
        logs.configure()


def test_the_cli_refuses_a_bad_log_level_by_name(capsys):
    from mahppo.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--log-level", "loud", "evaluate"])
    assert exit_.value.code == 2 and "--log-level: invalid choice: 'LOUD'" in capsys.readouterr().err


def test_ray_gets_its_own_level_and_worker_output_only_at_debug():
    logs.configure("INFO")
    assert logs.ray_init_kwargs() == {"logging_level": logging.WARNING, "log_to_driver": False}
    logs.configure("DEBUG")
    assert logs.ray_init_kwargs() == {"logging_level": logging.DEBUG, "log_to_driver": True}


def test_known_harmless_rllib_message_is_dropped_unless_debug(caplog):
    rllib = logging.getLogger("ray.rllib.algorithms.algorithm_config")
    logs.configure("INFO")
    with caplog.at_level(logging.WARNING, logger="ray.rllib.algorithms.algorithm_config"):
        rllib.warning("You are running MAHPPO on the new API stack! This is the new default")
        rllib.warning("another warning")
    assert "new API stack" not in caplog.text and "another warning" in caplog.text
    caplog.clear()
    logs.configure("DEBUG")
    rllib.warning("You are running MAHPPO on the new API stack! This is the new default")
    assert "new API stack" in caplog.text


def test_other_libraries_info_chatter_is_hidden_at_info_and_shown_at_debug(caplog):
    serve = logging.getLogger("ray.serve")
    logs.configure("INFO")
    serve.info("Started Serve in namespace")
    assert "Started Serve" not in caplog.text
    logs.configure("DEBUG")
    serve.info("Started Serve in namespace")
    assert "Started Serve" in caplog.text


def test_our_info_messages_show_at_info_and_not_at_warning(caplog):
    ours = logging.getLogger("mahppo.algorithms.runs.train")
    logs.configure("WARNING")
    ours.info("note: starting at iteration 1")
    assert "starting at iteration 1" not in caplog.text
    logs.configure("INFO")
    ours.info("note: starting at iteration 1")
    assert "starting at iteration 1" in caplog.text


def test_library_code_has_no_print_calls():
    """Library modules log (the ``mahppo`` command's own results are printed in ``mahppo/commands``)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    allowed = {("marl_env", "parallel.py")}  # render_mode="human" prints the frame, as Gymnasium defines it
    found = []
    for pkg in ("compression", "marl_env", "algorithms", "tune_configs", "serve", "runtime"):
        for f in (root / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
                        and (pkg, f.name) not in allowed):
                    found.append(f"{f.relative_to(root)}:{node.lineno}")
    assert not found, found
