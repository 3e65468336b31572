"""``--scenario dynamic`` on the command line: two commands evaluating the same policy see the same episodes."""

import json
import subprocess
import sys
from pathlib import Path

MAHPPO = str(Path(sys.executable).with_name("mahppo"))


def _evaluate(*extra: str) -> dict:
    out = subprocess.run([MAHPPO, "evaluate", "--policy", "maxweight", "--scenario", "dynamic", "--num-ues", "3",
                          "--episodes", "2", "--json", *extra], capture_output=True, text=True, check=True)
    return {k: v for k, v in json.loads(out.stdout).items() if not k.startswith("decision_ms")}  # timings vary


def test_two_commands_on_the_dynamic_scenario_evaluate_on_the_same_episodes():
    a, b = _evaluate(), _evaluate()
    assert a == b and a["episodes"] == 2.0
    assert _evaluate("--seed", "0")["reward"] != a["reward"]  # the evaluation seeds, not seed 0
