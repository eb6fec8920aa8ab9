"""Detection reads a few small build files out of archives: it refuses ones that unpack without bound."""

from __future__ import annotations

import io
import tarfile
import time
import tracemalloc
import zipfile

import pytest

from components.detect import wheel
from components.detect.errors import RegistryError
from tests.tools.registry_fakes import RecordedSession

WHEEL_URL = "https://files.example/packages/bomb-1.0-py3-none-any.whl"
SDIST_URL = "https://files.example/packages/bomb-1.0.tar.gz"


class Zeros(io.RawIOBase):
    """`size` zero bytes without holding them: the body of a member that compresses to almost nothing."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def bomb_wheel(metadata_bytes: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("bomb-1.0.dist-info/entry_points.txt", "[console_scripts]\nbomb = bomb:main\n")
        with archive.open("bomb-1.0.dist-info/METADATA", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(metadata_bytes >> 20):
                member.write(chunk)
    return out.getvalue()


def bomb_sdist(filler_bytes: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as archive:
        info = tarfile.TarInfo("bomb-1.0/filler.bin")
        info.size = filler_bytes
        archive.addfile(info, Zeros(filler_bytes))
        text = b'[project]\nname = "bomb"\n[project.scripts]\nbomb = "bomb:main"\n'
        info = tarfile.TarInfo("bomb-1.0/pyproject.toml")
        info.size = len(text)
        archive.addfile(info, io.BytesIO(text))
    return out.getvalue()


def test_a_wheel_whose_metadata_unpacks_to_far_more_than_it_weighs_is_refused_within_bounded_memory():
    body = bomb_wheel(64 << 20)
    assert len(body) < 200_000, "small on the wire"
    session = RecordedSession(ranges=True)
    session.add(WHEEL_URL, 200, body, {"Content-Length": str(len(body)), "Accept-Ranges": "bytes"})
    tracemalloc.start()
    try:
        with pytest.raises(RegistryError, match="METADATA unpacks to more than"):
            wheel.wheel_facts(session, WHEEL_URL)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * wheel.MAX_MEMBER + len(body) * 4, f"peak {peak} bytes"


def test_an_sdist_that_unpacks_past_the_bound_is_refused(monkeypatch):
    monkeypatch.setattr(wheel, "MAX_UNPACKED", 8 << 20)
    body = bomb_sdist(32 << 20)
    session = RecordedSession()
    session.add(SDIST_URL, 200, body)
    started = time.monotonic()
    with pytest.raises(RegistryError, match="unpacks to more than 8388608 bytes"):
        wheel.sdist_facts(session, SDIST_URL)
    assert time.monotonic() - started < 10


def test_an_ordinary_sdist_still_gives_its_scripts():
    session = RecordedSession()
    session.add(SDIST_URL, 200, bomb_sdist(1024))
    assert wheel.sdist_facts(session, SDIST_URL)["scripts"] == {"bomb": "bomb:main"}
