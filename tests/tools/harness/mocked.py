"""Resources the harness simulates instead of calling a provider: components, pulumi_random's
password/string (real random values, kept stable through the state), and any other package
resource (outputs echo inputs), so a program using them still runs."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any

from .plan import CREATE, REPLACE, SAME, UPDATE
from .state import Entry
from .values import UNKNOWN, Secret, reveal

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
RANDOM_STRING = "random:index/randomString:RandomString"
_DEFAULT_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"


@dataclass
class Simulated:
    op: str
    id: str
    outputs: dict[str, Any]


def simulate(
    type_: str, name: str, custom: bool, inputs: dict[str, Any], old: Entry | None, preview: bool
) -> Simulated:
    if not custom:
        return Simulated(SAME if old else CREATE, "", {})
    if type_ in (RANDOM_PASSWORD, RANDOM_STRING):
        return _random(type_, inputs, old, preview)
    if old is None:
        return Simulated(CREATE, f"{name}-id", dict(inputs))
    op = SAME if reveal(old.inputs) == reveal(inputs) else UPDATE
    return Simulated(op, old.id, dict(inputs) if op == UPDATE else old.outputs)


def _random(type_: str, inputs: dict[str, Any], old: Entry | None, preview: bool) -> Simulated:
    # Every input of RandomPassword/RandomString (keepers included) forces a replacement.
    if old is not None and reveal(old.inputs) == reveal(inputs):
        return Simulated(SAME, old.id, old.outputs)
    op = REPLACE if old is not None else CREATE
    if preview or UNKNOWN in _leaves(inputs):
        result: Any = UNKNOWN
    else:
        value = random_string(reveal(inputs))
        result = Secret(value) if type_ == RANDOM_PASSWORD else value
    return Simulated(op, "none", {**inputs, "result": result})


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


def random_string(args: dict[str, Any]) -> str:
    """A value honouring pulumi_random's length / character-class / minimum-count arguments."""
    length = int(args["length"])
    classes = [
        (args.get("upper", True), string.ascii_uppercase, int(args.get("minUpper", 0))),
        (args.get("lower", True), string.ascii_lowercase, int(args.get("minLower", 0))),
        (args.get("numeric", args.get("number", True)), string.digits, int(args.get("minNumeric", 0))),
        (args.get("special", True), args.get("overrideSpecial") or _DEFAULT_SPECIAL, int(args.get("minSpecial", 0))),
    ]
    chars = [secrets.choice(pool) for on, pool, minimum in classes if on for _ in range(minimum)]
    alphabet = "".join(pool for on, pool, _ in classes if on)
    if not alphabet:
        raise ValueError("random string: every character class is turned off")
    chars += [secrets.choice(alphabet) for _ in range(max(0, length - len(chars)))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars[:length])
