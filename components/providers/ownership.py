"""Which Fly objects belong to this stack: the stack id, and how apps and machines carry it.

A stack's id is a random string kept in its state (a `pulumi_random` resource), never its name: two
checkouts of the same project with the same stack name have different ids. Fly offers machines their own
metadata, so a machine carries the id as `catwalk_owner`. Apps and IP assignments have no metadata or
labels in the Machines API; an app carries the id in the *name* of one app secret (names are listed
without any secret-reading privilege; a value or its digest could not be compared), and an IP belongs to
whoever owns its app. See docs/ownership.md for the alternatives weighed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MARKER_PREFIX = "CATWALK_OWNER_"
STACK_ID = re.compile(r"^[a-z0-9]{8,32}$")


def marker(owner: str) -> str:
    """The app secret whose name says which stack created the app."""
    return MARKER_PREFIX + owner.upper()


def owners(secret_names: Iterable[str]) -> list[str]:
    """The stack ids an app's secret names mark it with (lowercase, as the ids are)."""
    return sorted(n.removeprefix(MARKER_PREFIX).lower() for n in secret_names if n.startswith(MARKER_PREFIX))


def is_marker(name: str) -> bool:
    return name.startswith(MARKER_PREFIX)


def not_ours(app: str, found: list[str], owner: str) -> str:
    """Why catwalk stops before touching an app it did not create, and the two ways out."""
    who = f"by another catwalk stack (id {', '.join(found)})" if found else "outside this stack"
    return (
        f"Fly app {app!r} already exists and was created {who}, not by this stack (id {owner}); nothing was "
        f"changed. Either pick another prefix (`pulumi config set catwalk:appPrefix <prefix>`, or remove "
        f"catwalk:appPrefix for names unique to this stack), or take the app over deliberately: "
        f"`pulumi config set --path 'catwalk:adoptApps[0]' {app}` (this stack then manages it, and deletes it "
        f"on destroy)"
    )
