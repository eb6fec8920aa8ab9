"""The servers of the success-rate benchmark: real, no-credential MCP servers, versions pinned.

Built on the labelled set in ``bench/servers.py`` (shared with the detection benchmark; not copied): every
labelled server that needs nothing to start (``needs`` None and ``expect`` "ok") is taken as it is, minus
the ToolHive spellings of a package already listed. ``CONFIGURED`` gives the labelled servers that only need
a path or a setting (``needs`` "config") what they need. ``EXTRA`` adds servers found on PyPI and npm for
this benchmark; their versions were resolved once with ``components.detect`` (2026-11-25) and recorded.

How the npm extras were chosen (rule written before any of them was run, 2026-11-25): the npm packages
with at least 8,000 downloads a month (npm's counts in a registry snapshot of 2026-11-25) whose name or
summary mentions MCP or Model Context Protocol, in order of downloads; each one whose README presents an
MCP server started with ``npx`` was taken, whatever its result, with the arguments its README gives
(``{work}`` for a directory), unless its README says it needs, to start, credentials or an account, a
running external service, a project's own files, or macOS. 25 new ones met the rule (21 of them above
10,000 downloads); the ones already listed stay. The npm extras above the "by the rule" marker were
picked by hand earlier (well-known servers); they stay too. Left out, by the README (not by a run):

- libraries, frameworks, SDKs, plugins, proxies, clients and inspectors, not servers: e.g. @orval/mcp,
  fastmcp, mcp-remote, mcp-proxy, supergateway, @storybook/mcp and @claude-flow/mcp (libraries, no bin),
  @primeuix/mcp (no bin), @storybook/addon-mcp, vite-plugin-mcp, @kubb/cli (its ``kubb mcp`` is
  @kubb/mcp, listed), platform binaries (@azure/mcp-linux-x64, ...), ``mcp`` (no README);
  @assistant-ui/mcp-docs-server too: its README says it "is a stdio proxy for the live hosted assistant-ui
  documentation MCP endpoint" and that HTTP clients "should connect to https://www.assistant-ui.com/mcp
  directly". It was listed by mistake on 2026-11-25 and taken out on review the same day, by this rule, after
  it had failed in a run (it could not reach www.assistant-ui.com from the benchmark machine);
- credentials or an account: @azure/mcp (``az login``), @stripe/mcp, @hubspot/mcp-server, @netlify/mcp,
  @microsoft/workiq, @salesforce/mcp, @apify/actors-mcp-server, @perplexity-ai/mcp-server, exa-mcp-server,
  @mapbox/mcp-server, flightradar-mcp-server, @prmichaelsen/remember-mcp and the other token-taking API
  servers;
- a running service: kubernetes-mcp-server (a cluster), argocd-mcp, mcp-searxng (SEARXNG_URL),
  @ivotoby/openapi-mcp-server (an API base URL), @agentdeskai/browser-tools-mcp (its own browser-tools
  server), vibe-kanban (its MCP mode talks to the running Vibe Kanban app);
- a project: expo-mcp (a dev dependency of an Expo project), @mizchi/lsmcp (a language server and a
  project), @kimuson/modular-mcp (a config file of upstream servers), @react-grab/mcp (a detached HTTP
  daemon beside a React app's dev server, not a stdio server), agentvibes (its npx bin is a TUI
  installer; the MCP server is another bin, set up by ``agentvibes install``), gitnexus (a repository
  indexed first with ``gitnexus analyze``);
- macOS: xcodebuildmcp, ios-simulator-mcp.

Labelled servers that need a project (``needs="project"``, e.g. @pandacss/mcp: it exits unless
``panda.config.*`` is in its working directory) are not "no-credential servers that start" and are left
out like the credential ones; so are nx-mcp and cclsp (``needs="config"``: a workspace, an LSP config).

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
# Arguments instead of the labelled ones: a local directory becomes the scratch directory, and two
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
    # --- npm, by the rule above (>= 8,000 downloads a month), most downloaded first ----------------------
    Case("agentdb", N, "1.6.1", args=("mcp", "start")),
    Case("@modelcontextprotocol/server-puppeteer", N, "2025.5.12", note="a browser is needed by its tools"),
    Case("@executeautomation/playwright-mcp-server", N, "1.0.12", note="a browser is needed by its tools"),
    Case("@eslint/mcp", N, "0.3.13"),
    Case("@claude-flow/cli", N, "3.42.5", args=("mcp", "start")),
    Case("@bytebase/dbhub", N, "1.4.0", args=("--demo",), note="--demo: its bundled sample SQLite database"),
    Case("@drawio/mcp", N, "1.6.1"),
    Case("@mobilenext/mobile-mcp", N, "1.0.4", note="a device or emulator is needed by its tools"),
    Case("@remotion/mcp", N, "4.0.527"),
    Case("agentation-mcp", N, "1.3.2", args=("server",)),
    Case("@sveltejs/mcp", N, "0.1.26"),
    Case("playwright-mcp", N, "0.0.19", note="a browser is needed by its tools"),
    Case("@pinecone-database/mcp", N, "0.3.0", note="without PINECONE_API_KEY: documentation search only"),
    Case("@openai/codex-shell-tool-mcp", N, "0.97.0"),
    Case("fetcher-mcp", N, "0.3.9", note="its postinstall downloads Chromium"),
    Case("mcp-deepwiki", N, "0.0.10"),
    Case("reddit-mcp-buddy", N, "1.1.14", note="anonymous mode"),
    Case("@agent-infra/mcp-server-filesystem", N, "1.2.29", args=("--allowed-directories", "{work}")),
    Case("@kubb/mcp", N, "5.2.0"),
    Case("@negokaz/excel-mcp-server", N, "0.12.0"),
    Case("@sylphx/pdf-reader-mcp", N, "2.4.0"),
    Case("typescript-mcp", N, "0.0.14"),
    Case("agentaudit", N, "3.14.0", args=("--stdio",)),
    Case("@primeng/mcp", N, "22.1.1"),
    Case("@googlemaps/code-assist-mcp", N, "0.2.1"),
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
        cases.append(
            Case(
                server.spec,
                server.runtime,
                server.version,
                tuple(args),
                tuple(extra.get("env", ())),
                server.note,
                "labelled",
            )
        )
    return cases


def cases() -> list[Case]:
    """The whole list: labelled servers first, then the extras; each spec once."""
    found = _from_labelled()
    seen = {c.spec for c in found}
    return found + [c for c in EXTRA if c.spec not in seen]


if __name__ == "__main__":
    json.dump([c._asdict() for c in cases()], sys.stdout, indent=1)
    print()
