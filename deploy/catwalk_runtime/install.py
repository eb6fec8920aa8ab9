"""``python -m catwalk_runtime.install``: install one MCP server into its own environment.

The install policy: dependencies as of the pinned version's release (``cutoff``), retried with later
cutoffs when nothing resolves; an installer's failure turned into one clear line, leaving nothing behind;
Node.js for a package whose engines.node refuses the image's (``node``); the system browser for a server
that drives one (``browser``). ``entrypoint.sh install`` runs it after checking its environment; the
marker it writes last is what ``entrypoint.sh serve`` looks for.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from . import browser, contract, node
from .cutoff import install_cutoff, widened_cutoffs
from .errors import InstallFailed, Unresolved, UsageError
from .launch import npm_name, resolve_argv

NOT_ON_NPM = re.compile(r"E404|404 Not Found|is not in this registry")
NOT_ON_PYPI = re.compile(r"not found in the package registry")
NO_RESOLUTION = re.compile(r"No matching version|No solution found|ETARGET")
# The dependency an installer says has no fitting release (uv: "Because there is no version of X" / "only X
# ... is available"; npm: "No matching version found for X").
BLOCKING_UV = re.compile(
    r".*Because (there is no version of|there are no versions of|only) ([A-Za-z0-9@][A-Za-z0-9_./@=<>!~-]*).*"
)
BLOCKING_NPM = re.compile(r".*No matching version found for ([^ ]*[^ .]).*")


def blocking_dependency(output: str) -> str:
    """The first dependency the installer's output names as having no fitting release; empty if none is named."""
    for line in output.splitlines():
        found = BLOCKING_UV.match(line)
        name = found.group(2) if found else None
        if name is None and (found := BLOCKING_NPM.match(line)):
            name = found.group(1)
        if name is not None:
            return "".join(c if " " <= c <= "~" else "?" for c in name)[:200]
    return ""


class Install:
    """One server's install: its spec, environment, cutoff, and the installers' runs."""

    def __init__(self, runtime: str, package: str, env_dir: Path, home: Path, environ: dict[str, str]) -> None:
        self.runtime, self.package, self.env_dir, self.home = runtime, package, env_dir, home
        self.environ = environ
        self.npm_name = npm_name(package)
        self.browser = environ.get(contract.BROWSER, "")
        self.needs_browser = environ.get(contract.NEEDS_BROWSER, "")
        self.wrapper = home / contract.BROWSER_WRAPPER
        self.browsers_dir = env_dir / contract.BROWSERS_DIR
        self.node_dir = env_dir / contract.NODE_DIR
        self.cutoff = ""
        self.widen = False  # the cutoff came from MCP_RESOLVED_AT: only then may "no resolution" move it later
        self.pending: list[str] | None = None  # widened cutoffs not tried yet, computed at the first need
        self.blocking = ""  # the dependency the installer named as having no release that fits
        self.node_version = ""  # set when a Node.js is installed for the server
        self.npm = ""

    @staticmethod
    def say(text: str) -> None:
        """A line of the install's log (stderr, as the installers' own output)."""
        print(text, file=sys.stderr, flush=True)

    # --- the installers ------------------------------------------------------------------------------------

    def run(self, what: str, argv: list[str], env: dict[str, str] | None = None, *, widen: bool = True) -> None:
        """Run an installer, show its output, and turn its failure into one clear reason."""
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, check=False)
            output, status = done.stdout, done.returncode
        except OSError as exc:
            output, status = f"{argv[0]}: {exc.strerror}\n".encode(), 127
        sys.stderr.flush()
        sys.stderr.buffer.write(output)
        sys.stderr.buffer.flush()
        if status == 0:
            return
        text = output.decode(errors="replace")
        if NOT_ON_NPM.search(text):
            raise InstallFailed(f"{self.package} was not found on the npm registry (404)")
        if NOT_ON_PYPI.search(text):
            raise InstallFailed(f"{self.package} was not found on the Python package index")
        if NO_RESOLUTION.search(text):
            if widen and self.widen and self.cutoff:
                self.blocking = blocking_dependency(text)
                raise Unresolved
            as_of = f" as of {self.cutoff}" if self.cutoff else ""
            raise InstallFailed(f"no version of {self.package} matches{as_of} (see the installer output above)")
        raise InstallFailed(f"{what} failed with exit code {status} (see its output above)")

    def env(self, **extra: str) -> dict[str, str]:
        return {**self.environ, **extra}

    def without_browser_download(self, env: dict[str, str]) -> dict[str, str]:
        """Every browser download skipped and the system browser's paths named (installs of a server whose
        browser is MCP_BROWSER)."""
        return {
            **env,
            "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
            "PUPPETEER_SKIP_DOWNLOAD": "1",
            "PLAYWRIGHT_BROWSERS_PATH": str(self.browsers_dir),
            "PUPPETEER_EXECUTABLE_PATH": str(self.wrapper),
        }

    def as_of(self) -> str:
        return f" (dependencies as of {self.cutoff})" if self.cutoff else ""

    def install_python(self) -> None:
        uv = self.environ.get("UV") or shutil.which("uv")
        if not uv:
            raise UsageError("uv was not found: install it or set UV")
        shutil.rmtree(self.env_dir, ignore_errors=True)
        (self.home / "python").mkdir(parents=True, exist_ok=True)
        self.say(f"Installing Python package {self.package} into {self.env_dir}{self.as_of()}")
        python = self.environ.get("MCP_PYTHON") or "python3"
        self.run("uv venv", [uv, "venv", "--quiet", "--python", python, str(self.env_dir)])
        argv = [uv, "pip", "install", "--python", str(self.env_dir / "bin" / "python"), "--compile-bytecode"]
        if self.cutoff:
            argv += ["--exclude-newer", self.cutoff]
        self.run("uv pip install", [*argv, self.package])

    def install_npm(self) -> None:
        npm = self.environ.get("NPM") or shutil.which("npm")
        if not npm:
            raise UsageError("npm was not found: install Node.js or set NPM")
        self.npm = npm
        shutil.rmtree(self.env_dir, ignore_errors=True)
        self.env_dir.mkdir(parents=True)
        self.say(f"Installing npm package {self.package} into {self.env_dir}{self.as_of()}")
        argv = [npm, "install", "--prefix", str(self.env_dir), "--no-audit", "--no-fund", "--no-update-notifier"]
        argv.append("--omit=dev")
        if self.cutoff:
            argv += ["--before", self.cutoff]
        if self.browser and self.needs_browser:
            argv.append("--ignore-scripts")  # run by browser.run_install_scripts, without browser downloads
        env = self.env()
        nodedir = node.headers_prefix(self.environ)
        if nodedir:
            self.say(f"Native modules build against the Node.js headers in {nodedir}/include/node")
            env["npm_config_nodedir"] = nodedir  # for this install only, never the server's env
        if self.browser:
            env = self.without_browser_download(env)
        self.run("npm install", [*argv, self.package], env)
        node.ensure_node(self)

    # --- the cutoff ------------------------------------------------------------------------------------------

    def compute_cutoff(self) -> None:
        """Dependencies no newer than the pinned version's release (or MCP_EXCLUDE_NEWER, or none)."""
        exclude = self.environ.get(contract.EXCLUDE_NEWER, "")
        resolved_at = self.environ.get(contract.RESOLVED_AT, "")
        if exclude:
            self.cutoff = "" if exclude == "none" else exclude
        elif resolved_at:
            self.cutoff = install_cutoff(resolved_at)
            self.widen = True
        else:
            self.say(
                "Warning: neither MCP_RESOLVED_AT nor MCP_EXCLUDE_NEWER is set: dependencies resolve to their "
                "newest versions (not reproducible; old servers may break)"
            )

    def widen_cutoff(self) -> None:
        """A dependency's fix often lands hours or days after the release that needs it: the next cutoff (fixed
        offsets from the release, so still reproducible), then none if MCP_CUTOFF_FALLBACK=none opts in."""
        if self.pending is None:
            self.pending = widened_cutoffs(self.environ[contract.RESOLVED_AT])
        tried = self.cutoff
        if self.pending:
            self.cutoff = self.pending.pop(0)
            self.say(f"No resolution of {self.package} as of {tried}; retrying with dependencies as of {self.cutoff}")
        elif self.environ.get(contract.CUTOFF_FALLBACK) == contract.CUTOFF_FALLBACK_NONE:  # the opt-in
            self.cutoff = ""
            self.say(
                f"WARNING: no resolution of {self.package} even as of {tried}: retrying WITHOUT a cutoff, with "
                "the newest\nWARNING: versions of every dependency (not reproducible; pin the fixed versions "
                "upstream)"
            )
        else:
            raise InstallFailed(
                f"nothing resolves even as of {tried}: {self.blocking or 'a dependency'} has no release that fits "
                f"by then (see the installer output above). Pin a release of {self.package} whose dependencies were "
                "out by then, or opt in to the newest dependencies with MCP_CUTOFF_FALLBACK=none (not reproducible)"
            )

    # --- the whole install -----------------------------------------------------------------------------------

    def install(self) -> None:
        browser.require_browser(self)
        self.compute_cutoff()
        while True:
            try:
                self.install_python() if self.runtime == "python" else self.install_npm()
                break
            except Unresolved:
                self.widen_cutoff()
        browser.install_browser(self)
        try:  # the launch must resolve in what was installed, or nothing is kept
            resolve_argv(self.runtime, self.env_dir, self.package, [], self.environ)
        except UsageError:
            shutil.rmtree(self.env_dir, ignore_errors=True)
            raise
        lines = [f"spec={self.package}", f"cutoff={self.cutoff}"]
        if self.node_version:
            lines.append(f"node={self.node_version}")
        # Written last, so a half-finished install never counts.
        (self.env_dir / contract.INSTALLED_MARKER).write_text("".join(f"{line}\n" for line in lines))


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catwalk_runtime.install", description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", required=True, choices=["npm", "python"])
    parser.add_argument("--package", required=True)
    parser.add_argument("--home", required=True, type=Path)
    opts = parser.parse_args(args)
    env_dir = Path(contract.env_dir(opts.home, opts.runtime, opts.package))
    job = Install(opts.runtime, opts.package, env_dir, opts.home, dict(os.environ))
    try:
        job.install()
    except InstallFailed as exc:
        shutil.rmtree(env_dir, ignore_errors=True)
        print(f"Error: install of {opts.package} failed: {exc}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
