"""What the deployer (``components``) and the image (``entrypoint.sh`` and this package) must agree on.

Stated once, here: the environment the stack gives a machine, the package-spec grammar, the characters a
custom command may not hold, the argv limits, and where a server's environment lives in the image.
Standard library only, and nothing else of the runtime is imported: ``components`` imports this module.
``entrypoint.sh`` checks the same rules in shell; ``tests/entrypoint/test_contract_parity.py`` runs it
against this module so the two cannot drift.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

RUNTIMES = ("npm", "python", "custom")

# --- the environment the stack sets on a machine and a baked image's build ---------------------------------
RUNTIME = "MCP_RUNTIME"
PACKAGE = "MCP_PACKAGE"  # npm / python: the pinned spec
COMMAND = "MCP_COMMAND"  # custom: the command line, split on spaces
ARGS = "MCP_ARGS"  # JSON array of extra arguments
LAUNCH = "MCP_LAUNCH"  # JSON array: the server's argv inside its environment
RESOLVED_AT = "MCP_RESOLVED_AT"  # upload time of the pinned version: the install cutoff's origin
EXCLUDE_NEWER = "MCP_EXCLUDE_NEWER"  # an explicit cutoff (RFC 3339), or `none`
NEEDS_BROWSER = "MCP_NEEDS_BROWSER"  # `chromium` when detection found a browser-driving server
BROWSER = "MCP_BROWSER"  # absolute path of the system Chromium
AUTH_TOKEN = "MCP_AUTH_TOKEN"  # the gateway's bearer token (never passed to the server)
AUTH_FD = "MCP_AUTH_FD"  # the descriptor the entrypoint hands the token over on (docs/token-delivery.md)
AUTH = "MCP_AUTH"  # `off`: serve without a token, on purpose; without a token and this, nothing starts
AUTH_OFF = "off"
AUTH_MODE = "MCP_AUTH_MODE"  # `bearer` (default), `oauth`, or `both`: what the gateway accepts
AUTH_MODE_BEARER, AUTH_MODE_OAUTH, AUTH_MODE_BOTH = "bearer", "oauth", "both"
AUTH_MODES = (AUTH_MODE_BEARER, AUTH_MODE_OAUTH, AUTH_MODE_BOTH)
OAUTH_ISSUER = "MCP_OAUTH_ISSUER"  # the authorization server whose tokens are accepted (its `iss`)
OAUTH_RESOURCE = "MCP_OAUTH_RESOURCE"  # this server's canonical URL: the audience a token must name
OAUTH_JWKS_URI = "MCP_OAUTH_JWKS_URI"  # the issuer's key set; default: what the issuer's metadata names
OAUTH_SCOPES = "MCP_OAUTH_SCOPES"  # space-separated scopes a token must carry
OAUTH_ALLOWED_USERS = "MCP_OAUTH_ALLOWED_USERS"  # JSON list: a token's `sub` or `email` must be one (if set)
OAUTH_ALLOWED_GROUPS = "MCP_OAUTH_ALLOWED_GROUPS"  # JSON list: a token's `groups` must hold one (if set)
# The built-in authorization server (`entrypoint.sh authserver`, catwalk_runtime.authserver), one per stack:
AS_ISSUER = "CATWALK_AS_ISSUER"  # its public origin (https://<app>.fly.dev): the `iss` of its tokens
AS_SIGNING_SEED = "CATWALK_AS_SIGNING_SEED"  # secret, >= 32 characters: the Ed25519 signing key derives from it
AS_PASSPHRASE = "CATWALK_AS_PASSPHRASE"  # secret: what the operator types on the consent page
AS_RESOURCES = "CATWALK_AS_RESOURCES"  # JSON list of the servers' canonical URLs it mints tokens for (`aud`)
AS_STATE = "CATWALK_AS_STATE"  # directory of its sqlite db (clients, refresh tokens); unset: kept in memory
AS_SCOPES = "CATWALK_AS_SCOPES"  # space-separated scopes it offers (default `mcp`)
AS_SCOPES_DEFAULT = "mcp"
AS_SEED_MIN = 32
AS_PASSPHRASE_MIN = 12  # what the stack also asks of catwalk:oauthPassphrase
# Loopback client metadata documents (http or https on 127.0.0.1 / ::1 / localhost): tests only, never set by the stack.
AS_CIMD_LOOPBACK = "CATWALK_AS_ALLOW_LOOPBACK_CLIENTS"
AS_REQUIRED = (AS_ISSUER, AS_SIGNING_SEED, AS_PASSPHRASE, AS_RESOURCES)
CUTOFF_FALLBACK = "MCP_CUTOFF_FALLBACK"  # `none`: the install's last resort is no cutoff (opt-in)
CUTOFF_FALLBACK_NONE = "none"
HOST = "MCP_HOST"  # where to listen: all (default), loopback, or IP addresses
HOME = "MCP_HOME"  # root of the per-server environments
# What a baked image's build takes as build arguments: enough to install the server, nothing secret.
BAKED_ARGS = (RUNTIME, PACKAGE, LAUNCH, RESOLVED_AT)
# Checked for control characters by the entrypoint before anything else.
CHECKED_VARS = (PACKAGE, COMMAND, ARGS, LAUNCH, RESOLVED_AT, EXCLUDE_NEWER, BROWSER, NEEDS_BROWSER)


def issuer_metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be, in the order the MCP authorization spec has clients try them:
    RFC 8414's (the well-known path inserted before the issuer's path), then OpenID Connect's, inserted and
    appended. The gateway reads its key set's URL there; `pulumi up`'s check proves a connector can."""
    from urllib.parse import urlsplit

    parts = urlsplit(issuer)
    origin, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
    if not path:
        return [f"{origin}/.well-known/oauth-authorization-server", f"{origin}/.well-known/openid-configuration"]
    return [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}/.well-known/openid-configuration{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]


# --- package specs -------------------------------------------------------------------------------------------
PYTHON_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,200}[A-Za-z0-9])?"
NPM_NAME = r"(?:@[A-Za-z0-9][A-Za-z0-9._-]{0,100}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,150}"
VERSION = r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}"  # what the image accepts after == or @ (a version or a tag)
EXACT_VERSION = r"[0-9][A-Za-z0-9.+_-]{0,63}"  # what a baked image pins: a release number
# What MCP_PACKAGE may be at run time (name, or name and version)...
PYTHON_SPEC = re.compile(rf"^{PYTHON_NAME}(?:=={VERSION})?$")
NPM_SPEC = re.compile(rf"^{NPM_NAME}(?:@{VERSION})?$")
# ...and what a baked image takes: pinned to one release, a subset of the above.
PYTHON_PINNED = re.compile(rf"^{PYTHON_NAME}=={EXACT_VERSION}$")
NPM_PINNED = re.compile(rf"^{NPM_NAME}@{EXACT_VERSION}$")
SPEC_EXAMPLES = {"python": "mcp-server-git==2026.10.19", "npm": "@modelcontextprotocol/server-memory@2026.8.31"}


def spec_pattern(runtime: str, *, pinned: bool = False) -> re.Pattern[str]:
    """The grammar of ``runtime``'s package specs (npm or python)."""
    if runtime == "python":
        return PYTHON_PINNED if pinned else PYTHON_SPEC
    if runtime == "npm":
        return NPM_PINNED if pinned else NPM_SPEC
    raise ValueError(f"{runtime!r} servers have no package spec")


# --- custom commands and argv ------------------------------------------------------------------------------
# What a shell would interpret: refused in MCP_COMMAND, which is split on spaces and never evaluated.
COMMAND_META = frozenset("[];|&$`<>(){}*?!~\\'\"#")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # refused in every value the image reads
MAX_ARGS = 64  # words in MCP_LAUNCH, MCP_ARGS
MAX_ARG = 1024  # characters in one of them

# --- the install cutoff ----------------------------------------------------------------------------------
# What the stack writes into MCP_RESOLVED_AT (the image also takes a date alone, or a time without a zone).
RESOLVED_AT_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})$")

# --- where things live in the image --------------------------------------------------------------------------
IMAGE_HOME = "/opt/mcp"  # MCP_HOME in the unified image
INSTALLED_MARKER = ".catwalk-installed"  # written last in a server's environment: `spec=<spec>` first

# What an install at boot runs with (never the app's secrets, never the token or its descriptor): how to reach
# the registries (proxy, CA), home and temp, the locale, the installers' settings and the install's own
# contract. An image may name more in MCP_INSTALL_ENV. docs/env-allowlists.md says why each.
INSTALL_ENV_EXTRA = "MCP_INSTALL_ENV"
INSTALL_ENV = (
    "PATH HOME USER LOGNAME LANG LANGUAGE LC_ALL LC_CTYPE LC_MESSAGES TZ TMPDIR "
    "HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY http_proxy https_proxy all_proxy no_proxy "
    "SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS GIT_SSL_CAINFO UV_NATIVE_TLS "
    "UV_PYTHON_DOWNLOADS UV_NO_CACHE npm_config_cache NO_UPDATE_NOTIFIER PYTHONUNBUFFERED UV NPM "
    "npm_config_nodedir NPM_CONFIG_NODEDIR MCP_RUNTIME MCP_PACKAGE MCP_LAUNCH MCP_RESOLVED_AT MCP_EXCLUDE_NEWER "
    "MCP_CUTOFF_FALLBACK MCP_HOME MCP_PYTHON MCP_GATEWAY_PYTHON MCP_BROWSER MCP_NEEDS_BROWSER MCP_LOG_LEVEL "
    "MCP_INSTALL_ENV"
).split()
BROWSER_WRAPPER = ".browser/chromium"  # under MCP_HOME: what every expected browser path leads to
NODE_DIR = ".node"  # under a server's environment: the Node.js installed for its engines.node
BROWSERS_DIR = ".browsers"  # under a server's environment: its PLAYWRIGHT_BROWSERS_PATH


def env_dir(home: str | PurePosixPath, runtime: str, spec: str) -> PurePosixPath:
    """A server's own environment: one per runtime and spec (a scope's ``/`` becomes ``+``)."""
    return PurePosixPath(home) / runtime / spec.replace("/", "+")
