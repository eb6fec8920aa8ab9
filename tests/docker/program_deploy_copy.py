"""catwalk's program with the unified image built from another copy of `deploy/` (CATWALK_TEST_DEPLOY_DIR).

The container-mode stack test changes `deploy/entrypoint.sh` between two `up`s; it does so in a copy, never in
the checkout. Everything else is `infra.program` as Pulumi runs it.
"""

import os
from pathlib import Path

from components.image import resources

resources.DEFAULT_CONTEXT = Path(os.environ["CATWALK_TEST_DEPLOY_DIR"])

from infra.program import main  # noqa: E402  (after the context is pointed at the copy)

main()
