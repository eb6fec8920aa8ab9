"""The local engine harness: `pulumi preview|up|destroy` for a Python Pulumi program, without the CLI.

``cli`` holds the command line and the Python API (``run``, ``run_subprocess``); the other modules are its
internals: values, stack config, state, planning, the mock monitor, reports.
"""

from tests.tools.harness.cli import COMMANDS, REPO_ROOT, Result, default_state_path, main, run, run_subprocess

__all__ = ["COMMANDS", "REPO_ROOT", "Result", "default_state_path", "main", "run", "run_subprocess"]
