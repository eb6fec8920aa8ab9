"""Allowlist checks shared by the stack config, detection and image rendering.

Every string a user writes can end up in an installer's argv, a Dockerfile or a machine's env, so each
one passes a narrow allowlist here first. The functions are pure and raise ``ValueError`` with a message
that says what is wrong with the value; callers add the server and field.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from catwalk_runtime import contract

MAX_NAME = 30
MAX_TEXT = 256
MAX_ARG = contract.MAX_ARG
MAX_ENV_VALUE = 4096

# Shell metacharacters and quoting: none of these belong in a package spec, version or name.
SHELL_META = set(";|&$`<>(){}[]*?!~\\'\"#") | {" ", "\t"}
CONTROL = contract.CONTROL

FLY_APP_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
SERVER_NAME = re.compile(r"^[a-z](?:[a-z0-9-]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Variables that change how the runtime, the dynamic loader or our own entrypoint behaves: a server's
# env must not override them (PATH hijack, LD_PRELOAD injection, installer redirection, our contract).
RESERVED_ENV = frozenset(
    {
        "PATH",
        "HOME",
        "SHELL",
        "IFS",
        "ENV",
        "BASH_ENV",
        "PORT",
        "USER",
        "HOSTNAME",
        "NODE_OPTIONS",
        "NODE_PATH",
        "NODE_EXTRA_CA_CERTS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
    }
)
RESERVED_ENV_PREFIXES = ("MCP_", "FLY_", "LD_", "PYTHON", "UV_", "PIP_", "NPM_CONFIG_", "DYLD_")

# Variables that redirect or weaken what the installers at boot fetch and trust (where from, through which
# proxy, with which CA, with which config file), or that load code into them. A server's plain env reaches
# the machine's environment, so one of these would steer every dependency install; the set and why each
# is in it: docs/env-allowlists.md. Compared upper-cased (http_proxy and npm_config_* too).
INSTALLER_ENV = frozenset(
    {
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "FTP_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "SSLKEYLOGFILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "NODE_TLS_REJECT_UNAUTHORIZED",
        "NODE_OPTIONS",
        "NODE_PATH",
        "OPENSSL_CONF",
        "XDG_CONFIG_HOME",
        "GIT_ASKPASS",
        "GIT_EXEC_PATH",
        "GIT_PROXY_COMMAND",
        "GIT_TEMPLATE_DIR",
    }
)
INSTALLER_ENV_PREFIXES = (
    "PIP_",
    "UV_",
    "NPM_CONFIG_",
    "YARN_",
    "PNPM_",
    "COREPACK_",
    "GIT_CONFIG",
    "GIT_SSH",
    "GIT_SSL_",
    "PYTHON",
    "LD_",
    "DYLD_",
)

# Names that say "I am a credential": plain env would put the value in state and machine config.
SECRET_LOOKING = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)$")

# Fly.io regions (https://fly.io/docs/reference/regions/). A typo fails at preview, not at deploy.
FLY_REGIONS = frozenset(
    "ams arn atl bog bom bos cdg den dfw ewr eze fra gdl gig gru hkg iad jnb lax lhr mad mia nrt ord "
    "otp phx qro scl sea sin sjc syd waw yul yyz".split()
)
# Fly's memory bounds per CPU: shared 256 MB..2 GB, performance 2 GB..8 GB.
MEMORY_PER_CPU = {"shared": (256, 2048), "performance": (2048, 8192)}
FLY_SIZES = frozenset([f"shared-cpu-{n}x" for n in (1, 2, 4, 8)] + [f"performance-{n}x" for n in (1, 2, 4, 8, 16)])


def check_no_control(value: str, what: str = "value") -> None:
    """Refuse NUL, newlines and other control characters (log forging, header and argv splitting)."""
    if CONTROL.search(value):
        raise ValueError(f"{what} contains a control character (NUL, newline or tab): {value!r}")


def check_length(value: str, limit: int, what: str = "value") -> None:
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters long; the limit is {limit}")


def check_plain_token(value: str, what: str = "value", limit: int = MAX_TEXT) -> None:
    """A single word with no shell meaning that cannot be read as an option."""
    if not value:
        raise ValueError(f"{what} is empty")
    check_no_control(value, what)
    check_length(value, limit, what)
    bad = sorted({c for c in value if c in SHELL_META})
    if bad:
        raise ValueError(f"{what} contains shell metacharacters {''.join(bad)!r}: {value!r}")
    if value.startswith("-"):
        raise ValueError(f"{what} starts with '-' and would be read as an option: {value!r}")
    if ".." in value.split("/") or value.startswith("/"):
        raise ValueError(f"{what} looks like a path traversal: {value!r}")


def check_server_name(name: str) -> None:
    if not name:
        raise ValueError("is empty")
    check_length(name, MAX_NAME, "name")
    if not SERVER_NAME.match(name) or "--" in name:
        raise ValueError(
            f"{name!r} is not a valid name: use lowercase letters, digits and single dashes, "
            "starting with a letter (it becomes part of the Fly app name)"
        )


def check_app_name(value: str) -> None:
    if not FLY_APP_NAME.match(value) or "--" in value:
        raise ValueError(f"{value!r} is not a Fly app name: use 1-63 lowercase letters, digits and single dashes")


def check_env_name(name: str, *, plain: bool) -> None:
    """Env names must be portable identifiers and must not override variables we or the OS own."""
    check_length(name, 128, "env name")
    if not ENV_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid environment variable name (letters, digits, _)")
    upper = name.upper()
    if upper in INSTALLER_ENV or upper.startswith(INSTALLER_ENV_PREFIXES):
        raise ValueError(
            f"{name!r} is reserved: it would redirect or weaken the package installs at boot (where they fetch "
            "from, their proxy, CA or config); the image sets what installs need (see docs/env-allowlists.md)"
        )
    if upper in RESERVED_ENV or upper.startswith(RESERVED_ENV_PREFIXES):
        raise ValueError(f"{name!r} is reserved: it would override the runtime or catwalk's own settings")
    if plain and SECRET_LOOKING.search(upper):
        raise ValueError(
            f"{name!r} looks like a credential: list it under 'secrets' and set its value with "
            f"`pulumi config set --secret {name} …` so it never lands in plain config or state"
        )


def check_env_value(value: str) -> None:
    check_no_control(value, "value")
    check_length(value, MAX_ENV_VALUE, "value")


def check_arg(value: str) -> None:
    """Server args are passed as argv (never through a shell), so only control characters are refused."""
    check_no_control(value, "arg")
    check_length(value, MAX_ARG, "arg")


def check_version(value: str) -> None:
    """An exact version or a range (npm or PEP 440), with no shell meaning."""
    check_no_control(value, "version")
    check_length(value, 64, "version")
    if not re.fullmatch(r"[0-9A-Za-z*][0-9A-Za-z.+\-*^~<>=!, ]*", value):
        raise ValueError(f"{value!r} is not a version or version range")
    if value.startswith("-"):
        raise ValueError(f"{value!r} starts with '-' and would be read as an option")


def check_region(region: str) -> None:
    if region not in FLY_REGIONS:
        import difflib

        close = difflib.get_close_matches(region, sorted(FLY_REGIONS), n=3, cutoff=0.3)
        hint = f"; did you mean {' or '.join(close)}?" if close else " (see `fly platform regions`)"
        raise ValueError(f"{region!r} is not a Fly.io region{hint}")


# Exactly the set deploy/entrypoint.sh refuses in MCP_COMMAND: what a shell would interpret.
COMMAND_META = contract.COMMAND_META


def parse_command(command: str | list[str]) -> list[str]:
    """Split a custom command into argv on whitespace; refuse what a shell would have evaluated.

    The command is exec'd directly (never through `sh -c`) and the entrypoint splits it the same way,
    so quotes, pipes, redirections, substitutions and separators are refused rather than half-honoured.
    Arguments that contain spaces belong in the server's `args` (passed as a JSON array).
    """
    words = command if isinstance(command, list) else None
    text = command if isinstance(command, str) else ""
    if words is not None:
        for i, word in enumerate(words):
            if not isinstance(word, str) or not word or any(c.isspace() for c in word):
                raise ValueError(f"word {i} must be a non-empty string without spaces (put such values in args)")
        text = " ".join(words)
    check_no_control(text, "command")
    check_length(text, 2048, "command")
    bad = sorted({c for c in text if c in COMMAND_META})
    if bad:
        raise ValueError(
            f"contains {''.join(bad)!r}: the command runs without a shell, so quotes, pipes, redirections, "
            "substitutions and separators are not allowed (put arguments with spaces in args, or wrap "
            "shell logic in a script in your image)"
        )
    argv = [word for word in text.split(" ") if word]  # as `set -- $MCP_COMMAND` splits it
    if not argv or not argv[0]:
        raise ValueError("is empty")
    if argv[0].startswith("-"):
        raise ValueError(f"starts with an option {argv[0]!r} instead of a program")
    return argv


# Nothing a package name, version or ref contains: shell meaning, quoting, globbing, list separators.
PACKAGE_META = set(";|&$`<>(){}[]*?!\\'\"#,%") | {" ", "\t"}
MAX_SPEC = 256


def check_package_text(value: str, what: str = "package spec") -> None:
    """First line of defence for a package spec: no shell meaning, no option, no control characters.

    The grammar (npm and PEP 508 names, `npm:`/`pypi:`/`github:` forms) is `components.spec`'s; this guard
    runs first there and in image rendering, and alone keeps a spec out of argv-injection and shell trouble.
    """
    if not value:
        raise ValueError(f"{what} is empty")
    check_no_control(value, what)
    check_length(value, MAX_SPEC, what)
    bad = sorted({c for c in value if c in PACKAGE_META})
    if bad:
        raise ValueError(f"{what} contains {''.join(bad)!r}, which no package name or version has: {value!r}")
    if value.startswith("-"):
        raise ValueError(f"{what} starts with '-' and would be read as an installer option: {value!r}")
    if ".." in re.split(r"[/:@]", value):
        raise ValueError(f"{what} contains a '..' path segment (path traversal): {value!r}")


IMAGE_REF = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def check_api_url(value: str) -> None:
    """The Fly API URL gets the Fly token in every request: https, or plain http to loopback only."""
    parsed = urlsplit(value)
    host = (parsed.hostname or "").lower()
    if parsed.scheme == "https" and host:
        return
    if parsed.scheme == "http" and (host in LOOPBACK_HOSTS or host.startswith("127.")):
        return
    raise ValueError(
        f"{value!r} must be an https:// URL (plain http only to a loopback host such as 127.0.0.1): "
        "the Fly token is sent with every request"
    )


def check_image_ref(value: str) -> None:
    """A container image reference (`registry/repo[:tag][@sha256:digest]`)."""
    check_no_control(value, "image")
    check_length(value, 512, "image")
    if not IMAGE_REF.match(value):
        raise ValueError(f"{value!r} is not an image reference like registry.fly.io/app:tag or repo@sha256:…")


def memory_range(size: str) -> tuple[int, int]:
    """The memory (MB) Fly allows for a guest size, e.g. shared-cpu-2x → (512, 4096)."""
    kind, _, cpus = size.rpartition("-")
    per_cpu = MEMORY_PER_CPU["shared" if kind == "shared-cpu" else "performance"]
    return per_cpu[0] * int(cpus.rstrip("x")), per_cpu[1] * int(cpus.rstrip("x"))


def check_memory_fits(size: str, memory: int) -> None:
    low, high = memory_range(size)
    if not low <= memory <= high or memory % 256:
        raise ValueError(f"{memory} MB does not fit size {size} (a multiple of 256 from {low} to {high} MB)")
