"""Detection's modules import in any order: no module needs another to be half-initialised first."""

from __future__ import annotations

import itertools
import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import components.detect

PACKAGE_DIR = Path(components.detect.__file__).parent
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(PACKAGE_DIR)]))


def run_fresh(code: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("module", MODULES)
def test_each_detection_module_imports_first_in_a_fresh_interpreter(module):
    # The package's __init__ is replaced by an empty package, so `module` really is the first one loaded.
    done = run_fresh(
        f"""
        import importlib, sys, types
        package = types.ModuleType("components.detect")
        package.__path__ = [{str(PACKAGE_DIR)!r}]
        sys.modules["components.detect"] = package
        importlib.import_module("components.detect.{module}")
        """
    )
    assert done.returncode == 0, done.stderr


def test_the_package_imports_whatever_order_its_own_imports_are_in():
    source = (PACKAGE_DIR / "__init__.py").read_text()
    lines = source.splitlines()
    imports = [i for i, line in enumerate(lines) if line.startswith("from components.detect.")]
    assert len(imports) >= 3, "the package's __init__ no longer imports its modules one line each"
    orders = []
    for order in itertools.permutations(imports):
        reordered = list(lines)
        for slot, original in zip(imports, order, strict=True):
            reordered[slot] = lines[original]
        orders.append("\n".join(reordered))
    done = run_fresh(
        f"""
        import importlib.util, json, sys
        orders = json.load(sys.stdin)
        for source in orders:
            for name in [n for n in sys.modules if n == "components.detect" or n.startswith("components.detect.")]:
                del sys.modules[name]
            spec = importlib.util.spec_from_loader("components.detect", loader=None, is_package=True)
            package = importlib.util.module_from_spec(spec)
            package.__path__ = [{str(PACKAGE_DIR)!r}]
            sys.modules["components.detect"] = package
            exec(compile(source, "components/detect/__init__.py", "exec"), package.__dict__)
            assert callable(package.detect_many), source
        print(len(orders))
        """,
        stdin=json.dumps(orders),
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(orders)
