"""``python -m tests.tools.harness``: the harness's command line (see ``cli``)."""

import sys

from tests.tools.harness.cli import main

sys.exit(main())
