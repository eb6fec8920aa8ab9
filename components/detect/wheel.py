"""Read a Python distribution's launch facts (console scripts, modules, METADATA) from its files.

PyPI's JSON does not list console scripts: they live in the wheel's ``*.dist-info/entry_points.txt``.
A wheel is a zip whose index sits at its end, so ``RemoteZip`` reads it with HTTP range requests
(usually two small requests, whatever the wheel's size) and falls back to the whole file when the
server ignores ``Range``. Source-only releases are read from ``pyproject.toml``/``setup.cfg``/``setup.py``.
"""

from __future__ import annotations

import bz2
import configparser
import gzip
import io
import lzma
import re
import sys
import tarfile
import zipfile
from email.parser import HeaderParser

import requests

from components.detect.errors import RegistryError
from components.detect.http import TIMEOUT

MAX_DOWNLOAD = 64 * 1024 * 1024
BLOCK = 64 * 1024
# Decompression bounds: an archive can claim (or expand to) far more than it weighs, and detection only reads
# a few small build files. One member at most MAX_MEMBER bytes unpacked; a whole tar stream MAX_UNPACKED.
MAX_MEMBER = 4 * 1024 * 1024
MAX_UNPACKED = 256 * 1024 * 1024


def read_member(archive: zipfile.ZipFile, name: str, url: str) -> str:
    """One zip member as text, refused past MAX_MEMBER unpacked whatever size the index claims."""
    with archive.open(name) as handle:
        data = handle.read(MAX_MEMBER + 1)
    if len(data) > MAX_MEMBER:
        raise RegistryError(f"{url}: {name} unpacks to more than {MAX_MEMBER} bytes; not reading it", url=url)
    return data.decode("utf-8", "replace")


class BoundedReader(io.RawIOBase):
    """A decompressing stream that fails once more than `limit` bytes came out of it (a compression bomb)."""

    def __init__(self, stream: io.BufferedIOBase, limit: int, url: str) -> None:
        super().__init__()
        self.stream, self.limit, self.url, self.total = stream, limit, url, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.stream.read(len(buffer))
        self.total += len(data)
        if self.total > self.limit:
            raise RegistryError(f"{self.url} unpacks to more than {self.limit} bytes; not reading it", url=self.url)
        buffer[: len(data)] = data
        return len(data)


def unpacked(data: bytes, url: str) -> io.BufferedReader:
    """The archive's decompressed bytes as a bounded stream (gzip, bzip2, xz, or a plain tar)."""
    raw = io.BytesIO(data)
    if data[:2] == b"\x1f\x8b":
        stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw)
    elif data[:3] == b"BZh":
        stream = bz2.BZ2File(raw)
    elif data[:6] == b"\xfd7zXZ\x00":
        stream = lzma.LZMAFile(raw)  # noqa: SIM115 (returned; it reads memory, nothing to close)
    else:
        stream = io.BufferedReader(raw)
    return io.BufferedReader(BoundedReader(stream, MAX_UNPACKED, url), buffer_size=BLOCK)


class RemoteZip(io.RawIOBase):
    """A seekable read-only file over HTTP ranges, enough for ``zipfile`` to read a few members."""

    def __init__(self, session: requests.Session, url: str):
        self.session, self.url = session, url
        self.pos = 0
        self.blocks: dict[int, bytes] = {}
        self.requests = 0
        self.whole: bytes | None = None
        self.size = self._tail()

    def _tail(self) -> int:
        response = self._get({"Range": f"bytes=-{BLOCK}"})
        if response.status_code == 200:  # no range support: we got the whole file
            self.whole = response.content
            return len(self.whole)
        if response.status_code != 206:
            raise RegistryError(
                f"GET {self.url} answered HTTP {response.status_code}", url=self.url, status=response.status_code
            )
        total = int(response.headers.get("Content-Range", "*/0").rsplit("/", 1)[-1])
        start = total - len(response.content)
        self._store(start, response.content)
        return total

    def _get(self, headers: dict[str, str]) -> requests.Response:
        self.requests += 1
        try:
            response = self.session.get(self.url, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise RegistryError(f"cannot download {self.url}: {exc}", url=self.url) from exc
        if len(response.content) > MAX_DOWNLOAD:
            raise RegistryError(f"{self.url} is larger than {MAX_DOWNLOAD} bytes", url=self.url)
        return response

    def _store(self, start: int, data: bytes) -> None:
        self.blocks[start] = data

    def _find(self, pos: int, n: int) -> bytes | None:
        for start, data in self.blocks.items():
            if start <= pos and pos + n <= start + len(data):
                return data[pos - start : pos - start + n]
        return None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.pos
        n = max(0, min(n, self.size - self.pos))
        if self.whole is not None:
            data = self.whole[self.pos : self.pos + n]
        else:
            data = self._find(self.pos, n)
            if data is None:
                end = min(self.size, self.pos + max(n, BLOCK)) - 1
                response = self._get({"Range": f"bytes={self.pos}-{end}"})
                if response.status_code == 200:
                    self.whole = response.content
                    data = self.whole[self.pos : self.pos + n]
                else:
                    self._store(self.pos, response.content)
                    data = response.content[:n]
        self.pos += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def parse_entry_points(text: str) -> dict[str, str]:
    """``console_scripts`` of an ``entry_points.txt`` as {script: "module:attr"}."""
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # pyright: ignore[reportAttributeAccessIssue]  (script names are case-sensitive)
    try:
        parser.read_string(text)
    except configparser.Error:
        return {}
    if not parser.has_section("console_scripts"):
        return {}
    return {k.strip(): v.strip() for k, v in parser.items("console_scripts")}


def parse_metadata(text: str) -> dict:
    """The fields of a core-metadata file that detection uses."""
    message = HeaderParser().parsestr(text)
    return {
        "name": message.get("Name"),
        "version": message.get("Version"),
        "requires_python": message.get("Requires-Python"),
        "requires_dist": message.get_all("Requires-Dist") or [],
        "keywords": message.get("Keywords"),
    }


def _main_modules(names: list[str]) -> list[str]:
    """Top-level packages that ship ``__main__.py`` (runnable as ``python -m pkg``)."""
    found = []
    for name in names:
        parts = name.split("/")
        if parts[-1] == "__main__.py" and ".dist-info" not in name and ".data" not in parts[0]:
            module = ".".join(p for p in parts[:-1] if p != "src")
            if module and all(p.isidentifier() for p in module.split(".")):
                found.append(module)
    return sorted(found, key=lambda m: (m.count("."), m))


def wheel_facts(session: requests.Session, url: str) -> dict:
    """Console scripts, ``python -m`` modules and METADATA of one wheel, read with range requests."""
    remote = RemoteZip(session, url)
    try:
        archive = zipfile.ZipFile(remote)
    except zipfile.BadZipFile as exc:
        raise RegistryError(f"{url} is not a valid wheel: {exc}", url=url) from exc
    names = archive.namelist()
    dist_infos = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
    facts: dict = {"scripts": {}, "main_modules": _main_modules(names), "metadata": {}, "source": "wheel"}
    for info in sorted(dist_infos):
        if f"{info}/entry_points.txt" in names:
            facts["scripts"] = parse_entry_points(read_member(archive, f"{info}/entry_points.txt", url))
        if f"{info}/METADATA" in names:
            facts["metadata"] = parse_metadata(read_member(archive, f"{info}/METADATA", url))
    facts["requests"] = remote.requests
    return facts


def load_toml(text: str) -> dict:
    """Parse TOML (``tomllib``, or ``tomli`` on Python 3.10); unparseable text reads as empty."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        try:
            import tomli as tomllib  # pyright: ignore[reportMissingImports]
        except ModuleNotFoundError:
            return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


_SETUP_PY_SCRIPT = re.compile(r"""["']([A-Za-z0-9_.-]+)\s*=\s*([A-Za-z0-9_.]+:[A-Za-z0-9_.]+)["']""")


def source_scripts(files: dict[str, str]) -> dict[str, str]:
    """Console scripts declared by a source tree: ``pyproject.toml``, then ``setup.cfg``, then ``setup.py``."""
    if "pyproject.toml" in files:
        data = load_toml(files["pyproject.toml"])
        scripts = data.get("project", {}).get("scripts") or data.get("tool", {}).get("poetry", {}).get("scripts")
        if isinstance(scripts, dict) and scripts:
            return {k: v if isinstance(v, str) else str(v.get("reference", "")) for k, v in scripts.items()}
    if "setup.cfg" in files:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(files["setup.cfg"])
            text = parser.get("options.entry_points", "console_scripts", fallback="")
        except configparser.Error:
            text = ""
        scripts = dict(
            (k.strip(), v.strip()) for k, _, v in (line.partition("=") for line in text.splitlines()) if v.strip()
        )
        if scripts:
            return scripts
    if "setup.py" in files and "console_scripts" in files["setup.py"]:
        return dict(_SETUP_PY_SCRIPT.findall(files["setup.py"]))
    return {}


def sdist_facts(session: requests.Session, url: str) -> dict:
    """Console scripts of a source distribution (``.tar.gz``/``.zip``), from its build files."""
    try:
        response = session.get(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise RegistryError(f"cannot download {url}: {exc}", url=url) from exc
    if response.status_code != 200:
        raise RegistryError(f"GET {url} answered HTTP {response.status_code}", url=url, status=response.status_code)
    if len(response.content) > MAX_DOWNLOAD:
        raise RegistryError(f"{url} is larger than {MAX_DOWNLOAD} bytes", url=url)
    wanted = {"pyproject.toml", "setup.cfg", "setup.py", "PKG-INFO"}
    files: dict[str, str] = {}
    names: list[str] = []
    if url.split("?")[0].endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            names = archive.namelist()
            for name in names:
                if name.count("/") == 1 and name.split("/")[1] in wanted:
                    files[name.split("/")[1]] = read_member(archive, name, url)
    else:
        # Streamed (`r|`) through a bounded decompressor: never more than MAX_UNPACKED bytes unpacked.
        try:
            with tarfile.open(fileobj=unpacked(response.content, url), mode="r|") as archive:
                for member in archive:
                    names.append(member.name)
                    parts = member.name.split("/")
                    if len(parts) == 2 and parts[1] in wanted and member.isfile():
                        if member.size > MAX_MEMBER:
                            raise RegistryError(f"{url}: {member.name} is larger than {MAX_MEMBER} bytes", url=url)
                        handle = archive.extractfile(member)
                        if handle is not None:
                            files[parts[1]] = handle.read().decode("utf-8", "replace")
        except (tarfile.TarError, OSError, EOFError, lzma.LZMAError) as exc:
            raise RegistryError(f"{url} is not a readable source archive: {exc}", url=url) from exc
    stripped = ["/".join(n.split("/")[1:]) for n in names]
    return {
        "scripts": source_scripts(files),
        "main_modules": _main_modules(stripped),
        "metadata": parse_metadata(files["PKG-INFO"]) if "PKG-INFO" in files else {},
        "source": "sdist",
    }
