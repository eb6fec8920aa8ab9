"""What the engine does with a registration, given the provider's diff: pure decisions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CREATE, UPDATE, REPLACE, SAME, DELETE = "create", "update", "replace", "same", "delete"


@dataclass(frozen=True)
class Decision:
    op: str
    delete_before_replace: bool = False
    changed: list[str] = field(default_factory=list)


def changed_keys(olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    """Top-level input keys whose value differs: the engine's own diff when a provider has none."""
    return sorted(k for k in set(olds) | set(news) if olds.get(k) != news.get(k))


def decide(
    old_inputs: dict[str, Any] | None,
    news: dict[str, Any],
    diff: Any | None,
    replace_on_changes: list[str],
    delete_before_replace: bool,
) -> Decision:
    """Map a provider `DiffResult` (None for a new resource) to an operation.

    changes=None means the provider could not tell, so the engine compares inputs itself;
    any `replaces` (or a change to a `replace_on_changes` key) makes it a replacement, created
    before the old one is deleted unless the diff or the resource options say otherwise.
    """
    if old_inputs is None:
        return Decision(CREATE)
    changed = changed_keys(old_inputs, news)
    changes = getattr(diff, "changes", None)
    if changes is None:
        changes = bool(changed)
    if not changes:
        return Decision(SAME)
    replaces = list(getattr(diff, "replaces", None) or [])
    if "*" in replace_on_changes:
        replaces += changed
    else:
        replaces += [k for k in changed if k in replace_on_changes]
    if replaces:
        dbr = bool(getattr(diff, "delete_before_replace", None)) or delete_before_replace
        return Decision(REPLACE, delete_before_replace=dbr, changed=sorted(set(replaces)))
    return Decision(UPDATE, changed=changed)
