"""A server's persistent volume and its files: where they go in the machine, and what `validate` warns about.

Pure rules shared by the config model, the program and the providers (no I/O but `read_sources`):

- A Fly volume belongs to one machine in one region, so a server with `volume` gets one volume per
  (region, index), named ``data_<region>_<index>``. The stable name lets a create that lost its answer, or a
  stack whose state was lost, find the volume (and its data) again instead of making an empty one.
- Files are written by Fly before the machine starts. A relative path lands in the image's working directory
  (``WORKDIR``, where the server starts); a secret file's contents go to the app's Fly secrets and the
  machine config names only that secret, so neither the config nor the plain state holds them.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# The image's working directory (deploy/Dockerfile `WORKDIR`): where the server starts.
WORKDIR = "/home/app"
# What the image itself holds (or the kernel provides): a volume mounted there would hide it, a file written
# there would overwrite it. /tmp holds the npm cache of unbaked installs.
IMAGE_ROOTS = ("/app", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/opt", "/proc", "/root", "/run")
IMAGE_ROOTS += ("/sbin", "/sys", "/usr", "/var")
MOUNT_REFUSED = (*IMAGE_ROOTS, "/tmp")
PATH_CHARS = re.compile(r"^[A-Za-z0-9._/@+-]+$")
MAX_PATH = 200
MAX_FILE_BYTES = 32 * 1024
MAX_FILES_BYTES = 128 * 1024
MAX_VOLUME_GB = 500
DEFAULT_FILE_MODE = 0o644  # Fly writes files as root: the image's user must be able to read them
SECRET_FILE_PREFIX = "CATWALK_FILE_"
# Env names that hold where a known server keeps its data; pointing them into the volume keeps that data.
KNOWN_DATA_ENV = {"@modelcontextprotocol/server-memory": ("MEMORY_FILE_PATH", "memory.json")}


def under(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or inside it (both absolute and clean)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def check_clean_path(value: str, what: str) -> None:
    if not value or len(value) > MAX_PATH:
        raise ValueError(f"{what} must be 1-{MAX_PATH} characters")
    if not PATH_CHARS.match(value):
        raise ValueError(f"{what} {value!r} may hold only letters, digits and . _ / @ + -")
    if posixpath.normpath(value) != value or ".." in value.split("/"):
        raise ValueError(f"{what} {value!r} is not a clean path (no '..', '//', './' or trailing '/')")


def check_mount_path(path: str) -> None:
    """A volume's mount path: an absolute directory of its own, hiding nothing of the image."""
    check_clean_path(path, "path")
    if not path.startswith("/") or path == "/":
        raise ValueError(f"path {path!r} must be an absolute directory other than / (e.g. /data)")
    hidden = next((root for root in MOUNT_REFUSED if under(path, root) or under(root, path)), None)
    if hidden is not None:
        raise ValueError(f"path {path!r} would hide or sit inside the image's {hidden}: use a directory such as /data")
    if under(WORKDIR, path):
        raise ValueError(f"path {path!r} would hide the working directory {WORKDIR}: use /data or {WORKDIR}/data")


def guest_path(path: str) -> str:
    """Where a file lands: a relative path is taken from the working directory."""
    return path if path.startswith("/") else posixpath.join(WORKDIR, path)


def check_file_path(path: str, mount: str | None) -> None:
    check_clean_path(path, "path")
    target = guest_path(path)
    if target == WORKDIR:
        raise ValueError(f"path {path!r} names the working directory, not a file in it")
    hidden = next((root for root in IMAGE_ROOTS if under(target, root)), None)
    if hidden is not None:
        raise ValueError(f"path {path!r} would overwrite the image's {hidden}: write into {WORKDIR} or /data")
    if mount is not None and under(target, mount):
        raise ValueError(
            f"path {path!r} is inside the volume ({mount}): files go to the machine's own disk and are written "
            "before the volume is mounted; put the file elsewhere"
        )


def parse_mode(value: Any) -> int:
    """A file mode: an int (YAML `0644` is octal 420) or an octal string such as "0600"."""
    if isinstance(value, bool):
        raise ValueError('must be an octal mode such as "0644"')
    if isinstance(value, str):
        if not re.fullmatch(r"0?[0-7]{3}", value):
            raise ValueError(f'{value!r} is not an octal mode such as "0644"')
        value = int(value, 8)
    if not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ValueError(f"{value!r} is not a file mode (0-0777)")
    if not value & 0o004:
        raise ValueError(f"{oct(value)} leaves the file unreadable to the server: Fly writes it as root")
    return value


def volume_name(region: str, index: int) -> str:
    """Fly volume names: at most 30 lowercase letters, digits and underscores; unique per (region, index)."""
    return f"data_{region}_{index}"


def secret_file_name(path: str) -> str:
    """The app secret that holds a secret file's contents (base64), named after its path."""
    return SECRET_FILE_PREFIX + hashlib.sha256(guest_path(path).encode()).hexdigest()[:12].upper()


def render_files(
    files: Iterable[Any], contents: Mapping[int, bytes], *, all_secret: bool = False
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(machine `files` entries, secret values by name) for the configured files and their contents.

    ``contents``: file index → bytes (the read source; inline text when left out). ``all_secret``: the server's
    config is secret as a whole (Pulumi encrypted it), so every file is.
    """
    entries, secrets = [], {}
    for i, f in enumerate(files):
        if i not in contents and f.source is not None:
            raise ValueError(f"files[{i}]: {f.source!r} was not read")
        data = contents[i] if i in contents else (f.content or "").encode()
        encoded = base64.b64encode(data).decode()
        entry: dict[str, Any] = {"guest_path": guest_path(f.path), "mode": f.mode}
        if f.secret or all_secret:
            name = secret_file_name(f.path)
            secrets[name] = encoded
            entry["secret_name"] = name
        else:
            entry["raw_value"] = encoded
        entries.append(entry)
    return entries, secrets


Contents = dict[str, dict[int, bytes]]


def read_sources(servers: Iterable[Any], base_dir: Path) -> tuple[Contents, list[tuple[str, str, str]]]:
    """Every file's contents by server name and index; problems as (server, field, error).

    A `source` is read relative to ``base_dir`` (the stack file's directory) and must stay inside it.
    """
    contents: Contents = {}
    problems = []
    base = base_dir.resolve()
    for server in servers:
        mine: dict[int, bytes] = {}
        for i, f in enumerate(server.files):
            field = f"files[{i}].source"
            if f.source is None:
                mine[i] = (f.content or "").encode()
                continue
            path = (base / f.source).resolve()
            if not path.is_relative_to(base):
                problems.append((server.name, field, f"{f.source!r} is outside the stack's directory"))
                continue
            try:
                data = path.read_bytes()
            except OSError as exc:
                problems.append((server.name, field, f"{f.source!r} cannot be read: {exc.strerror or exc}"))
                continue
            if len(data) > MAX_FILE_BYTES:
                too_big = f"{f.source!r} is {len(data)} bytes; the limit is {MAX_FILE_BYTES}"
                problems.append((server.name, field, too_big))
                continue
            if f.secret and not data:
                problems.append((server.name, field, f"{f.source!r} is empty: a secret file needs contents"))
                continue
            mine[i] = data
        total = sum(len(d) for d in mine.values())
        if total > MAX_FILES_BYTES:
            problems.append((server.name, "files", f"hold {total} bytes together; the limit is {MAX_FILES_BYTES}"))
        contents[server.name] = mine
    return contents, problems


def package_name(package: str | None) -> str | None:
    """The registry name of a package spec without its version (`@scope/name@1.2` → `@scope/name`)."""
    if not package:
        return None
    body = package.split(":", 1)[1] if package.split(":", 1)[0] in ("npm", "pypi") else package
    if body.startswith("@"):
        scope, _, rest = body[1:].partition("/")
        return "@" + scope + "/" + rest.split("@", 1)[0]
    return re.split(r"[@=<>!~]", body, maxsplit=1)[0]


def warnings(server: Any) -> list[tuple[str, str]]:
    """(field, warning) for a server config that runs but likely loses or splits its data."""
    found = []
    volume = server.volume
    if volume is None:
        return found
    if server.count > 1:
        found.append(
            (
                "count",
                f"{server.count} machines per region each get their own volume: each keeps its own copy of the "
                "data, and a client's requests may reach any of them; use count: 1 for one shared state",
            )
        )
    for name, value in sorted(server.env.items()):
        if value.startswith("/") and not under(value, volume.path) and not any(under(value, r) for r in IMAGE_ROOTS):
            found.append(
                (
                    f"env.{name}",
                    f"{value} is outside the volume ({volume.path}): what the server writes there is lost when "
                    f"the machine stops; point it into {volume.path}",
                )
            )
    known = KNOWN_DATA_ENV.get(package_name(server.package) or "")
    if known and known[0] not in server.env:
        env, file = known
        found.append(
            (
                "env",
                f"{server.package} keeps its data where {env} says (by default inside its package, outside the "
                f"volume): set {env}: {posixpath.join(volume.path, file)}",
            )
        )
    return found
