"""Fake HTTP sessions for detection tests: recorded registry responses, and one that refuses all traffic.

``RecordedSession`` serves the JSON files under ``tests/fixtures/registry/`` (made from real registry
responses by ``tests/fixtures/registry/record.py``); a URL with no recording fails the test, so a test
can never reach the network by accident. Range requests on recorded files are answered as a server
would (206 with ``Content-Range``), which exercises the wheel reader's range path.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import requests

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "registry"


def make_response(url: str, status: int, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.url = url
    response.headers.update(headers or {})
    response.encoding = "utf-8"
    return response


class NoNetworkSession(requests.Session):
    """Fails the test on any request: proves that a code path makes none."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        self.calls.append(url)
        raise AssertionError(f"unexpected network request: {method} {url}")


class RecordedSession(requests.Session):
    """Answers GETs from recorded fixtures; counts requests per URL."""

    def __init__(self, fixtures: Path = FIXTURES, *, ranges: bool = True):
        super().__init__()
        self.recordings: dict[str, list[dict]] = {}
        self.ranges = ranges
        self.calls: list[str] = []
        for path in sorted(fixtures.glob("*.json")):
            entry = json.loads(path.read_text())
            self.recordings.setdefault(entry["url"], []).append(entry)

    def add(
        self,
        url: str,
        status: int,
        body: bytes | str | dict,
        headers: dict[str, str] | None = None,
        accept: str | None = None,
    ) -> None:
        """Record one more answer by hand (for synthetic cases such as a mirror's relative URLs)."""
        if isinstance(body, dict):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        self.recordings.setdefault(url, []).insert(
            0,
            {
                "url": url,
                "status": status,
                "headers": headers or {},
                "accept": accept,
                "body_b64": base64.b64encode(data).decode(),
            },
        )

    def request(self, method, url, *args, headers=None, **kwargs):  # type: ignore[override]
        self.calls.append(url)
        if method.upper() != "GET":
            raise AssertionError(f"detection only GETs; got {method} {url}")
        accept = (headers or {}).get("Accept", "")
        entries = self.recordings.get(url)
        if not entries:
            raise AssertionError(f"no recorded response for {url}")
        entry = next((e for e in entries if not e.get("accept") or e["accept"] in accept), entries[0])
        body = base64.b64decode(entry["body_b64"]) if "body_b64" in entry else json.dumps(entry["body"]).encode()
        wanted = (headers or {}).get("Range")
        if wanted and self.ranges and entry["status"] == 200:
            return self._range(url, body, wanted, entry.get("headers"))
        return make_response(url, entry["status"], body, entry.get("headers"))

    @staticmethod
    def _range(url: str, body: bytes, wanted: str, headers) -> requests.Response:
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted)
        assert match, wanted
        first, last = match.groups()
        if first == "":
            start, end = max(0, len(body) - int(last)), len(body) - 1
        else:
            start, end = int(first), min(len(body) - 1, int(last) if last else len(body) - 1)
        part = body[start : end + 1]
        return make_response(url, 206, part, {**(headers or {}), "Content-Range": f"bytes {start}-{end}/{len(body)}"})
