"""The consent page: who asks, for which server, and the operator's passphrase to say yes.

The passphrase is compared as SHA-256 digests with ``hmac.compare_digest`` (constant time, whatever its
length). Wrong attempts are limited for the whole server, not per address (behind Fly's proxy every
browser may look alike): after ``MAX_FAILURES`` within ``WINDOW_S`` every attempt is refused until the
window has passed, so guessing is slow; the cost is that a flood of wrong guesses also locks the operator
out for those minutes, which fails closed.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping

MAX_FAILURES = 5
WINDOW_S = 300.0
# The authorization request's parameters the form carries back on submit (what authlib validates again).
CARRIED = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
           "code_challenge_method", "resource")  # fmt: skip


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


class Passphrase:
    """The operator's passphrase (kept as a digest) and the server-wide limit on wrong attempts."""

    def __init__(self, passphrase: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._digest = _digest(passphrase)
        self._clock = clock
        self._failures: deque[float] = deque()
        self._lock = threading.Lock()

    def locked_for(self) -> float:
        """Seconds until attempts are taken again (0: now)."""
        with self._lock:
            now = self._clock()
            while self._failures and now - self._failures[0] >= WINDOW_S:
                self._failures.popleft()
            if len(self._failures) < MAX_FAILURES:
                return 0.0
            return WINDOW_S - (now - self._failures[0])

    def check(self, given: str) -> bool:
        """Whether ``given`` is the passphrase; a wrong one counts towards the lock."""
        ok = hmac.compare_digest(_digest(given), self._digest)
        if not ok:
            with self._lock:
                self._failures.append(self._clock())
        return ok


def page(params: Mapping[str, str], client_name: str, resource: str, scope: str, error: str | None = None) -> bytes:
    """The consent form; submitting it POSTs the request's parameters back with the passphrase."""
    esc = html.escape
    redirect = urllib.parse.urlsplit(params.get("redirect_uri", ""))
    hidden = "\n".join(
        f'<input type="hidden" name="{name}" value="{esc(params[name])}">' for name in CARRIED if name in params
    )
    alert = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorize access - catwalk</title>
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}
code{{overflow-wrap:anywhere}}.error{{color:#b00020;font-weight:600}}button{{padding:.5rem 1.2rem}}</style></head>
<body><h1>Authorize access</h1>
<p><strong>{esc(client_name)}</strong> asks to use <code>{esc(resource)}</code>
with the scope <code>{esc(scope or "(none)")}</code>.</p>
<p>After you approve, your browser returns to <code>{esc(redirect.scheme)}://{esc(redirect.netloc)}</code>.</p>
{alert}
<form method="post" action="/authorize">
{hidden}
<label for="passphrase">Operator passphrase</label><br>
<input id="passphrase" name="passphrase" type="password" autocomplete="current-password" required autofocus><br><br>
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>
</form></body></html>
""".encode()
