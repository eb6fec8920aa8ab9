"""The server's argv: ``MCP_LAUNCH`` (or the package's own console script / npm bin) found inside the
server's environment, then ``MCP_ARGS``. Never a path outside that environment, never a shell.

``python -m catwalk_runtime.launch --runtime R --env-dir D --package P [-- CUSTOM…]`` prints the argv as
JSON: the image build runs it to fail early on a wrong ``MCP_LAUNCH``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from .contract import ARGS, CONTROL, LAUNCH, MAX_ARG, MAX_ARGS
from .errors import UsageError, show

# A launch executable is a bare name looked up inside the server's own environment, never a path.
BARE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$")


def parse_json_argv(raw: str | None, field: str, *, allow_empty: bool) -> list[str]:
    """A JSON array of strings from an env var; refuses control characters and oversized input."""
    if raw is None or raw.strip() == "":
        return []
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{field} is not valid JSON ({exc.msg}); expected an array of strings") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{field} must be a JSON array of strings, got {show(raw)}")
    if not value and not allow_empty:
        raise UsageError(f"{field} is an empty array; it needs at least the executable")
    if len(value) > MAX_ARGS:
        raise UsageError(f"{field} has {len(value)} items; the limit is {MAX_ARGS}")
    for i, item in enumerate(value):
        if CONTROL.search(item):
            raise UsageError(f"{field}[{i}] contains a control character (newline, NUL, …): {show(item)}")
        if len(item) > MAX_ARG:
            raise UsageError(f"{field}[{i}] is {len(item)} characters long; the limit is {MAX_ARG}")
    return value


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_name(spec: str) -> str:
    """A Python spec's distribution name (``name==1.0`` -> ``name``)."""
    return spec.split("==", 1)[0]


def npm_name(spec: str) -> str:
    """An npm spec's package name, scope kept (``@scope/name@1.0`` -> ``@scope/name``)."""
    at = spec.find("@", 1)
    return spec if at == -1 else spec[:at]


def _site_packages(env_dir: Path) -> list[Path]:
    return sorted(env_dir.glob("lib/python3*/site-packages"))


def _dist_info(env_dir: Path, package: str) -> Path | None:
    want = _normalize(python_name(package))
    for site in _site_packages(env_dir):
        for info in site.glob("*.dist-info"):
            if _normalize(info.name[: -len(".dist-info")].rsplit("-", 1)[0]) == want:
                return info
    return None


def python_fallback(env_dir: Path, package: str) -> list[str]:
    """The package's console script (named like the package, else its only one), else ``python -m``."""
    name = python_name(package)
    info = _dist_info(env_dir, package)
    if info is None:
        raise UsageError(f"{name} is not installed in {env_dir}; run `entrypoint.sh install` first")
    scripts: list[str] = []
    entry_points = info / "entry_points.txt"
    if entry_points.is_file():
        import configparser

        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(entry_points, encoding="utf-8")
        if parser.has_section("console_scripts"):
            scripts = list(parser["console_scripts"])
    for script in scripts:
        if _normalize(script) == _normalize(name):
            return [script]
    if len(scripts) == 1:
        return [scripts[0]]
    mcp_scripts = [s for s in scripts if "mcp" in s.lower()]
    if len(mcp_scripts) == 1:  # as detection chooses: the one MCP script among several
        return mcp_scripts
    if scripts:
        raise UsageError(
            f"{name} has several console scripts ({', '.join(sorted(scripts))}) and none is named after "
            "the package; set MCP_LAUNCH to the one that starts the MCP server"
        )
    module = name.replace("-", "_").replace(".", "_")
    for site in _site_packages(env_dir):
        if (site / module).is_dir() or (site / f"{module}.py").is_file():
            return ["python", "-m", module]
    raise UsageError(
        f'{name} has no console script and no module named {module}; set MCP_LAUNCH (e.g. ["python","-m","<module>"])'
    )


def npm_fallback(env_dir: Path, package: str) -> list[str]:
    """The bin named after the package (unscoped), else the package's only bin."""
    name = npm_name(package)
    manifest = env_dir / "node_modules" / name / "package.json"
    if not manifest.is_file():
        raise UsageError(f"{name} is not installed in {env_dir}; run `entrypoint.sh install` first")
    data = json.loads(manifest.read_text(encoding="utf-8"))
    unscoped = name.rsplit("/", 1)[-1]
    bins = data.get("bin")
    if isinstance(bins, str):
        return [unscoped]
    if isinstance(bins, dict) and bins:
        if unscoped in bins:
            return [unscoped]
        if len(bins) == 1:
            return [next(iter(bins))]
        raise UsageError(
            f"{name} has several bins ({', '.join(sorted(bins))}) and none is named {unscoped}; "
            "set MCP_LAUNCH to the one that starts the MCP server"
        )
    raise UsageError(f"{name} declares no bin in its package.json; set MCP_LAUNCH")


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def _locate(runtime: str, env_dir: Path, exe: str) -> str:
    """Find a launch executable inside the server's environment (the npm runtime may also use node)."""
    if not BARE_NAME.match(exe):
        raise UsageError(f"MCP_LAUNCH[0] must be a bare executable name, not a path or option: {show(exe)}")
    candidates = [env_dir / "bin" / exe] if runtime == "python" else [env_dir / "node_modules" / ".bin" / exe]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    if runtime == "npm" and exe == "node" and (node := _which("node")):
        return node
    where = candidates[0].parent
    raise UsageError(f"launch executable {exe!r} was not found in {where}; check MCP_LAUNCH or reinstall")


def resolve_argv(
    runtime: str, env_dir: Path | None, package: str, custom: list[str], environ: dict[str, str]
) -> list[str]:
    """The server's full argv: the launch (MCP_LAUNCH or a fallback) resolved in its env, then MCP_ARGS."""
    extra = parse_json_argv(environ.get(ARGS), ARGS, allow_empty=True)
    if runtime == "custom":
        if not custom:
            raise UsageError("MCP_COMMAND is required when MCP_RUNTIME=custom")
        exe = custom[0]
        found = exe if "/" in exe else _which(exe)
        if not found or not os.access(found, os.X_OK):
            raise UsageError(f"custom command {exe!r} was not found or is not executable")
        return [found, *custom[1:], *extra]
    if env_dir is None:
        raise UsageError("--env-dir is required for the npm and python runtimes")
    # Absent or [] (detection found nothing better): the package's own console script / bin.
    launch = parse_json_argv(environ.get(LAUNCH), LAUNCH, allow_empty=True)
    if not launch:
        launch = python_fallback(env_dir, package) if runtime == "python" else npm_fallback(env_dir, package)
    return [_locate(runtime, env_dir, launch[0]), *launch[1:], *extra]


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The options naming the server, shared by ``launch`` and ``serve``."""
    parser.add_argument("--runtime", required=True, choices=["npm", "python", "custom"])
    parser.add_argument("--env-dir", type=Path)
    parser.add_argument("--package", default="")
    parser.add_argument("custom", nargs="*", help="custom runtime: the command's argv (after --)")


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catwalk_runtime.launch", description=__doc__.splitlines()[0])
    add_server_arguments(parser)
    opts = parser.parse_args(args)
    try:
        print(json.dumps(resolve_argv(opts.runtime, opts.env_dir, opts.package, opts.custom, dict(os.environ))))
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
