"""Session-wide test setup shared by every test module."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Tools installed with the project (mcp-proxy, uv, ruff, shellcheck, hadolint) live beside this
# interpreter; put them first on PATH even when pytest is started as `.venv/bin/pytest` directly.
_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _BIN:
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")
