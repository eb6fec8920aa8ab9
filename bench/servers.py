"""A labelled set of real MCP server packages: what each spec must detect as, for benchmarks to share.

Each label was taken from the registries with their own clients, not from catwalk's detection: npm
labels from `npm view NAME name version bin` and npx's bin rule (the bin named after the unscoped
package, else the only one), Python labels from the console scripts of the wheel that
`pip download --no-deps --python-version 3.12 --only-binary=:all: NAME` fetched (2026-11-25).

Fields: ``spec`` as a user writes it; ``runtime`` (npm | python); ``launch`` the argv a machine runs
(None where detection must refuse); ``expect`` "ok" or the reason detection must refuse ("python>=3.13",
"not-found"); ``version`` the version current when labelled (for benchmarks that pin); ``args`` extra
arguments the server needs to start; ``needs`` what it needs beyond itself to start: None, "credentials",
"service" (a database or API endpoint), "system" (a binary such as a browser, pandoc, tesseract),
"config" (a path or setting), or "project" (a project's own files in its working directory, such as a
``panda.config.*``, which catwalk cannot ship beside a server today). ``python -m bench.servers`` prints
the set as JSON for other tools.
"""

from __future__ import annotations

import json
import sys
from typing import Literal, NamedTuple


class Server(NamedTuple):
    spec: str
    runtime: Literal["npm", "python"]
    launch: tuple[str, ...] | None
    version: str | None
    needs: str | None = None
    args: tuple[str, ...] = ()
    expect: str = "ok"
    note: str = ""


P, N = "python", "npm"

SERVERS: list[Server] = [
    # --- Python (PyPI) --------------------------------------------------------------------------------------
    Server("mcp-server-git", P, ("mcp-server-git",), "2026.10.19", note="also a held, empty name on npm"),
    Server("mcp-server-time", P, ("mcp-server-time",), "2026.10.19"),
    Server("mcp-server-fetch", P, ("mcp-server-fetch",), "2026.10.24"),
    Server(
        "mcp-server-sqlite", P, ("mcp-server-sqlite",), "2025.4.25", note="on both registries; PyPI's is the reference"
    ),
    Server("mcp-scholarly", P, ("mcp-scholarly",), "0.1.0", note="released before mcp 2.x"),
    Server("mcp-youtube-transcript", P, ("mcp-youtube-transcript",), "0.3.5"),
    Server("office-powerpoint-mcp-server", P, ("ppt_mcp_server",), "2.0.7", note="script differs from project"),
    Server("office-word-mcp-server", P, ("word_mcp_server",), "1.1.11", note="script differs from project"),
    Server(
        "awslabs.aws-documentation-mcp-server",
        P,
        ("awslabs.aws-documentation-mcp-server",),
        "1.2.3",
        note="dotted name",
    ),
    Server(
        "awslabs-aws-pricing-mcp-server",
        P,
        ("awslabs.aws-pricing-mcp-server",),
        "1.1.1",
        "credentials",
        note="script is the dotted spelling of the name",
    ),
    Server("mcp-server-motherduck", P, ("mcp-server-motherduck",), "1.1.0"),
    Server("duckduckgo-mcp-server", P, ("duckduckgo-mcp-server",), "0.7.0"),
    Server("arxiv-mcp-server", P, ("arxiv-mcp-server",), "0.8.2"),
    Server("markitdown-mcp", P, ("markitdown-mcp",), "0.0.1a8", note="only prereleases"),
    Server("chroma-mcp", P, ("chroma-mcp",), "0.2.6"),
    Server("mcp-clickhouse", P, ("mcp-clickhouse",), "0.7.0", "service"),
    Server("excel-mcp-server", P, ("excel-mcp-server",), "2.2.2", args=("stdio",)),
    Server("mcp-server-qdrant", P, ("mcp-server-qdrant",), "0.8.1", "service"),
    Server("mcp-server-duckdb", P, ("mcp-server-duckdb",), "1.1.0", "config"),
    Server("cli-mcp-server", P, ("cli-mcp-server",), "0.2.5", "config"),
    Server("pdf-tools-mcp", P, ("pdf-tools-mcp",), "0.1.4"),
    Server("mcp-yahoo-finance", P, ("mcp-yahoo-finance",), "0.2.0"),
    Server("dbt-mcp", P, ("dbt-mcp",), "2.8.0", "config"),
    Server("mcp-atlassian", P, ("mcp-atlassian",), "0.23.1", "credentials"),
    Server("postgres-mcp", P, ("postgres-mcp",), "0.3.0", "service"),
    Server("lean-lsp-mcp", P, ("lean-lsp-mcp",), "0.32.0", "system"),
    Server("mcp-ocr", P, ("mcp-ocr",), "0.2.0", "system"),
    Server("pymupdf4llm-mcp", P, ("pymupdf4llm-mcp",), "1.28.0"),
    Server("tilt-mcp", P, ("tilt-mcp",), "0.1.3", "system", note="two scripts for one entry point"),
    Server("mysql-mcp-server", P, ("mysql_mcp_server",), "0.4.4", "service", note="script differs from project"),
    Server("mcp-stata", P, ("mcp-stata",), "3.3.0", "system", note="platform wheels only"),
    Server("analytics-mcp", P, ("analytics-mcp",), "0.8.0", "credentials"),
    Server("pagerduty-mcp", P, ("pagerduty-mcp",), "1.1.0", "credentials"),
    Server("opensearch-mcp-server-py", P, ("opensearch-mcp-server-py",), "0.12.0", "service"),
    Server("mcp-neo4j-cypher", P, ("mcp-neo4j-cypher",), "0.6.0", "service"),
    Server("mcp-neo4j-memory", P, ("mcp-neo4j-memory",), "0.4.5", "service"),
    Server("basic-memory", P, ("basic-memory",), "0.24.1", args=("mcp",), note="two scripts: basic-memory, bm"),
    Server("mcp-server-calculator", P, ("mcp-server-calculator",), "0.2.1"),
    Server("wikipedia-mcp", P, ("wikipedia-mcp",), "2.0.1"),
    Server("mcp-pandoc", P, ("mcp-pandoc",), "0.11.1", "system"),
    Server("mcp-text-editor", P, None, "1.2.2", expect="python>=3.13", note="newest needs Python >=3.13"),
    Server("pypi:mcp-text-editor==1.0.2", P, ("mcp-text-editor",), "1.0.2", note="the release detection suggests"),
    Server("mcp-shell-server", P, ("mcp-shell-server",), "1.1.14", "config"),
    Server("mcp-server-tree-sitter", P, ("mcp-server-tree-sitter",), "0.7.0"),
    Server("mcp-obsidian", P, ("mcp-obsidian",), "0.2.3", "credentials"),
    Server("mcp-simple-arxiv", P, ("mcp-simple-arxiv",), "0.6.0"),
    Server("yfmcp", P, ("yfmcp",), "0.14.0"),
    Server(
        "pypi:mcp-server-kubernetes",
        P,
        ("mcp-server-kubernetes",),
        "0.1.6",
        "service",
        note="explicit: the bare name is npm's",
    ),
    Server("uvx://mcp-server-time", P, ("mcp-server-time",), "2026.10.19", note="ToolHive form"),
    Server("ha-mcp", P, None, "8.7.0", expect="python>=3.13", note="needs Python >=3.13; the image has 3.12"),
    # --- npm ------------------------------------------------------------------------------------------------
    Server("@modelcontextprotocol/server-memory", N, ("mcp-server-memory",), "2026.8.31"),
    Server("@modelcontextprotocol/server-filesystem", N, ("mcp-server-filesystem",), "2026.8.31", args=("/tmp",)),
    Server("@modelcontextprotocol/server-everything", N, ("mcp-server-everything",), "2026.8.31"),
    Server("@modelcontextprotocol/server-sequential-thinking", N, ("mcp-server-sequential-thinking",), "2026.8.31"),
    Server("@modelcontextprotocol/server-github", N, ("mcp-server-github",), "2025.4.8", "credentials"),
    Server("@modelcontextprotocol/server-postgres", N, ("mcp-server-postgres",), "0.6.2", "service"),
    Server("@modelcontextprotocol/server-puppeteer", N, ("mcp-server-puppeteer",), "2025.5.12", "system"),
    Server("@modelcontextprotocol/server-brave-search", N, ("mcp-server-brave-search",), "0.6.2", "credentials"),
    Server("@modelcontextprotocol/server-slack", N, ("mcp-server-slack",), "2025.4.25", "credentials"),
    Server("@modelcontextprotocol/server-google-maps", N, ("mcp-server-google-maps",), "0.6.2", "credentials"),
    Server("@playwright/mcp", N, ("playwright-mcp",), "0.0.83", "system", note="bundles the MCP SDK"),
    Server("chrome-devtools-mcp", N, ("chrome-devtools-mcp",), "1.11.0", "system", note="two bins"),
    Server("@upstash/context7-mcp", N, ("context7-mcp",), "4.1.1"),
    Server("@supabase/mcp-server-supabase", N, ("mcp-server-supabase",), "0.13.0", "credentials"),
    Server("@azure-devops/mcp", N, ("mcp-server-azuredevops",), "2.10.0", "credentials"),
    Server("@notionhq/notion-mcp-server", N, ("notion-mcp-server",), "2.5.2", "credentials"),
    Server("mongodb-mcp-server", N, ("mongodb-mcp-server",), "3.0.4", "service"),
    Server("tavily-mcp", N, ("tavily-mcp",), "0.2.22", "credentials"),
    Server("firecrawl-mcp", N, ("firecrawl-mcp",), "3.26.0", "credentials"),
    Server("@zereight/mcp-gitlab", N, ("mcp-gitlab",), "2.1.64", "credentials", note="two bins, one file"),
    Server("@wonderwhy-er/desktop-commander", N, ("desktop-commander",), "0.2.52", note="three bins"),
    Server("@sentry/mcp-server", N, ("sentry-mcp",), "0.39.0", "credentials"),
    Server("mcp-hello-world", N, ("mcp-hello-world",), "1.1.2"),
    Server("figma-developer-mcp", N, ("figma-developer-mcp",), "0.13.2", "credentials"),
    Server(
        "mcp-server-kubernetes",
        N,
        ("mcp-server-kubernetes",),
        "4.1.7",
        "service",
        note="on both registries; npm's is the established one",
    ),
    Server("npm:mcp-server-sqlite", N, ("mcp-server-sqlite",), "0.0.2", note="explicit: the bare name is PyPI's"),
    Server("@circleci/mcp-server-circleci", N, ("mcp-server-circleci",), "0.20.0", "credentials"),
    Server("next-devtools-mcp", N, ("next-devtools-mcp",), "0.4.0"),
    Server("nx-mcp", N, ("nx-mcp",), "0.25.0", "config", note="bin given as a string"),
    Server("n8n-mcp", N, ("n8n-mcp",), "2.87.0"),
    Server(
        "@pandacss/mcp",
        N,
        ("panda-mcp",),
        "1.12.1",
        "project",
        note="exits without panda.config.* in its cwd (or --config/--cwd pointing at one)",
    ),
    Server("cclsp", N, ("cclsp",), "0.7.0", "config"),
    Server("@launchdarkly/mcp-server", N, ("mcp",), "0.6.2", "credentials"),
    Server("@gongrzhe/server-gmail-autoauth-mcp", N, ("gmail-mcp",), "1.1.11", "credentials"),
    Server("npx://@modelcontextprotocol/server-memory", N, ("mcp-server-memory",), "2026.8.31", note="ToolHive form"),
    Server(
        "@alexarevalo.ai/mcp-server-ticktick",
        N,
        None,
        None,
        expect="not-found",
        note="the original design's TickTick server; unpublished",
    ),
]


def as_dicts() -> list[dict]:
    return [s._asdict() for s in SERVERS]


if __name__ == "__main__":
    json.dump(as_dicts(), sys.stdout, indent=1)
    print()
