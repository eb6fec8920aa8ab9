"""The install cutoff: dependencies resolve as of the pinned version's release, so installs reproduce.

``python -m catwalk_runtime.cutoff RESOLVED_AT`` prints the cutoff; ``--widened`` prints the later cutoffs
the installer retries with, one per line, when nothing resolves as of the release.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys

from .errors import UsageError, show

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
# Packages published together (a monorepo release, a package and its helper) land minutes apart: the
# cutoff sits this long after the pinned version's upload so they resolve too. Fixed, so reproducible.
CUTOFF_MARGIN = dt.timedelta(hours=1)
# When nothing resolves as of the release (a dependency's fix landed hours later), the installer retries with
# these later cutoffs, in order, before giving up on a cutoff. Fixed offsets from the release: reproducible.
CUTOFF_WIDENING = (dt.timedelta(days=1), dt.timedelta(days=7), dt.timedelta(days=30))


def install_cutoff(resolved_at: str, margin: dt.timedelta = CUTOFF_MARGIN) -> str:
    """``MCP_RESOLVED_AT`` (the pinned version's upload time) plus a fixed margin, as RFC 3339 UTC."""
    value = resolved_at.strip()
    if not ISO_UTC.match(value):
        raise UsageError(f"MCP_RESOLVED_AT is not an ISO-8601 time: {show(value)}")
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    cut = (moment + margin).astimezone(dt.timezone.utc).replace(microsecond=0)
    return cut.strftime("%Y-%m-%dT%H:%M:%SZ")


def widened_cutoffs(resolved_at: str) -> list[str]:
    """The retry cutoffs, in the order the installer tries them."""
    return [install_cutoff(resolved_at, margin) for margin in CUTOFF_WIDENING]


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catwalk_runtime.cutoff", description=__doc__.splitlines()[0])
    parser.add_argument("resolved_at")
    parser.add_argument("--widened", action="store_true", help="print the retry cutoffs instead, one per line")
    opts = parser.parse_args(args)
    try:
        cutoffs = widened_cutoffs(opts.resolved_at) if opts.widened else [install_cutoff(opts.resolved_at)]
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(cutoffs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
