"""Start-up of the ``mahppo`` command: the PYTHONHASHSEED restart happens before the parser (and the env it
imports) is built, so it is not built twice."""

import os
import subprocess
import sys
from pathlib import Path

from mahppo.cli import command_of


def test_the_command_is_found_after_global_options():
    assert command_of(["--log-level", "debug", "train", "--steps", "5"]) == "train"
    assert command_of(["demo"]) == "demo" and command_of(["--version"]) is None and command_of([]) is None


def test_a_seeded_command_restarts_with_the_fixed_hash_seed_before_importing_the_env():
    # os.execv stands in for the restart: it reports what was imported by then and ends the process
    code = ("import os, sys\n"
            "def execv(path, args):\n"
            "    print(os.environ['PYTHONHASHSEED'], args[1:], 'mahppo.marl_env' in sys.modules, flush=True)\n"
            "    os._exit(0)\n"
            "os.execv = execv\n"
            "import mahppo.cli as c\n"
            "sys.argv = ['mahppo', '--log-level', 'info', 'train', '--steps', '5']\n"
            "c.main()\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout == "0 ['-m', 'mahppo', '--log-level', 'info', 'train', '--steps', '5'] False\n", out.stderr[-800:]
