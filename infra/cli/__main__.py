"""`python -m infra.cli COMMAND ...`: the same commands as the `catwalk` console script."""

from __future__ import annotations

import sys

from infra.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m infra.cli"))
