"""The HTTP session detection uses: retries with backoff on GETs, a timeout on every request.

Detection takes an injected ``requests.Session`` so tests hand in a fake and callers can share one;
``make_session`` builds the default. Only idempotent GETs are made, so retrying them is always safe.
"""

from __future__ import annotations

import re

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from components.detect.errors import RegistryError

TIMEOUT = (5.0, 15.0)  # connect, read (seconds)
USER_AGENT = "catwalk-detect/0.1 (+https://github.com/; runtime detection for MCP servers)"


_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")


def scrub(text: str) -> str:
    """Hide credentials in URLs (``https://user:token@mirror/simple``) before text reaches a user or a log."""
    return _USERINFO.sub("***@", text)


def make_session(pool: int = 16, retries: int = 3) -> requests.Session:
    """A session with a connection pool sized for ``detect_many`` and urllib3 ``Retry`` on GETs.

    Retries cover connection errors and 429/5xx (honouring ``Retry-After``) with exponential backoff;
    a 404 is an answer, not a failure, and is never retried.
    """
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=0.3,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def get(session: requests.Session, url: str, *, headers: dict[str, str] | None = None) -> requests.Response:
    """GET with the default timeout; network failures become ``RegistryError`` naming the URL."""
    try:
        return session.get(url, headers=headers or {}, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise RegistryError(f"cannot reach {url}: {exc.__class__.__name__}: {exc}", url=url) from exc
