"""docs/python.md is a specification: every ```python block of the page runs, in order, in one session."""

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "python.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_python_page_has_examples_of_training_loading_and_the_rllib_config():
    code = "\n".join(python_blocks(PAGE.read_text()))
    for name in ("train(experiment", "load_policy(", "act_dict(", "MAHPPOConfig()", "Algorithm.from_checkpoint",
                 "RLModule.from_checkpoint"):
        assert name in code


@pytest.mark.slow
def test_every_python_block_of_the_page_runs(tmp_path, monkeypatch, ray_session):
    monkeypatch.chdir(tmp_path)
    session: dict = {"__name__": "__docs__"}
    for i, block in enumerate(python_blocks(PAGE.read_text())):
        try:
            exec(compile(block, f"{PAGE.name} block {i + 1}", "exec"), session)
        except Exception as exc:
            raise AssertionError(f"{PAGE.name} block {i + 1} failed: {exc!r}") from exc
    assert session["summary"]["env_steps"] >= 512
    assert session["algo"].iteration == 3  # two iterations of the run, one more after from_checkpoint
