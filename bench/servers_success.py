"""The servers of the success-rate benchmark: real, no-credential MCP servers, versions pinned.

Built on the labelled set in ``bench/servers.py`` (shared with the detection benchmark; not copied): every
labelled server that needs nothing to start (``needs`` None and ``expect`` "ok") is taken as it is, minus
the ToolHive spellings of a package already listed. ``CONFIGURED`` gives the labelled servers that only need
a path or a setting (``needs`` "config") what they need. ``EXTRA`` adds servers found on PyPI and npm for
this benchmark; their versions were resolved once with ``components.detect`` (2026-11-25) and recorded.

``{work}`` in an argument or an env value stands for the server's own scratch directory (made per run).
``python -m bench.servers_success`` prints the list as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Literal, NamedTuple

from bench.servers import SERVERS as LABELLED


class Case(NamedTuple):
    spec: str
    runtime: Literal["npm", "python"]
    version: str | None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    note: str = ""
    source: str = "extra"  # "labelled" (bench/servers.py) or "extra" (this file)


P, N = "python", "npm"

# Labelled servers that need only a path or setting to start (bench/servers.py says needs="config").
CONFIGURED: dict[str, dict] = {
    "mcp-server-duckdb": {"args": ("--db-path", "{work}/bench.duckdb")},
    "cli-mcp-server": {"env": (("ALLOWED_DIR", "{work}"),)},
    "mcp-shell-server": {"env": (("ALLOW_COMMANDS", "ls,cat,echo"),)},
}
# Arguments instead of the labelled ones: a directory of this machine becomes the scratch directory, and two
# servers labelled "needs nothing" turned out to need an argument to start (found by this benchmark's first
# run: pymupdf4llm-mcp exits with "Missing command." without `stdio`; mcp-server-motherduck with "In-memory
# databases require the --read-write flag.").
ARGS: dict[str, tuple[str, ...]] = {
    "@modelcontextprotocol/server-filesystem": ("{work}",),
    "mcp-server-sqlite": ("--db-path", "{work}/bench.sqlite"),
    "pymupdf4llm-mcp": ("stdio",),
    "mcp-server-motherduck": ("--read-write",),
}
# ToolHive spellings of packages already in the list: the same install, so not counted twice.
DUPLICATES = {"uvx://mcp-server-time", "npx://@modelcontextprotocol/server-memory"}

EXTRA: list[Case] = [
    # --- Python (PyPI) --------------------------------------------------------------------------------------
    Case("mcp-nixos", P, "3.1.0"),
    Case("mcp-server-pacman", P, "0.2.0"),
    Case("paper-search-mcp", P, "0.1.4"),
    Case("mcp-alchemy", P, "2026.10.15.202659", env=(("DB_URL", "sqlite:///{work}/bench.sqlite"),)),
    Case("mcp-weather-server", P, "0.6.1"),
    Case("mcp-server-reddit", P, "0.2.1"),
    Case("pubmedmcp", P, "0.1.4"),
    Case("web-forager", P, "4.0.0", args=("serve",)),
    Case("mcp-think-tool", P, "0.1.0"),
    Case("mcp-sequential-thinking", P, "0.7.0"),
    Case("mcp-server-rss", P, "0.1.0"),
    Case("mcp-hn", P, "0.1.0"),
    Case("pypi-query-mcp-server", P, "0.6.5"),
    Case("mcp-server-diff-python", P, "0.1.2"),
    Case("mcp-server-stats", P, "0.2.2"),
    Case("mcp-timeserver", P, "0.1.0"),
    Case("mcp-grep", P, "0.2.1"),
    Case("mcp-server-docy", P, "0.5.0"),
    Case("mcp-python-interpreter", P, "1.2.3"),
    Case("jcodemunch-mcp", P, "1.108.399"),
    Case("mcp-feedback-enhanced", P, "2.8.5"),
    Case("awslabs.aws-iac-mcp-server", P, "1.0.26"),
    # --- npm ------------------------------------------------------------------------------------------------
    Case("@openbnb/mcp-server-airbnb", N, "0.3.0"),
    Case("howtocook-mcp", N, "0.2.2"),
    Case("@antv/mcp-server-chart", N, "0.9.10"),
    Case("mcp-mermaid", N, "0.4.1"),
    Case("@jpisnice/shadcn-ui-mcp-server", N, "2.0.0"),
    Case("@browsermcp/mcp", N, "0.1.3"),
    Case("mcp-server-code-runner", N, "0.1.8"),
    Case("@kimtaeyoon83/mcp-server-youtube-transcript", N, "0.1.1"),
    Case("@cyanheads/git-mcp-server", N, "2.15.3"),
    Case("@mastra/mcp-docs-server", N, "1.2.27"),
    Case("@shopify/dev-mcp", N, "1.16.0"),
    Case("@mui/mcp", N, "0.1.6"),
    Case("@agent-infra/mcp-server-commands", N, "1.2.18"),
    Case("mcp-server-commands", N, "0.5.0"),
    Case("@kazuph/mcp-fetch", N, "1.6.3"),
    Case("@chakra-ui/react-mcp", N, "2.1.1"),
    Case("@playwright/mcp", N, "0.0.83", note="a browser is needed by its tools, not to start"),
    Case("chrome-devtools-mcp", N, "1.11.0", note="a browser is needed by its tools, not to start"),
]


def _from_labelled() -> list[Case]:
    cases = []
    for server in LABELLED:
        if server.expect != "ok" or server.spec in DUPLICATES:
            continue
        if server.needs is None:
            extra = {}
        elif server.needs == "config" and server.spec in CONFIGURED:
            extra = CONFIGURED[server.spec]
        else:
            continue
        args = ARGS.get(server.spec, extra.get("args", server.args))
        cases.append(Case(server.spec, server.runtime, server.version, tuple(args), tuple(extra.get("env", ())),
                          server.note, "labelled"))
    return cases


def cases() -> list[Case]:
    """The whole list: labelled servers first, then the extras; each spec once."""
    found = _from_labelled()
    seen = {c.spec for c in found}
    return found + [c for c in EXTRA if c.spec not in seen]


if __name__ == "__main__":
    json.dump([c._asdict() for c in cases()], sys.stdout, indent=1)
    print()
