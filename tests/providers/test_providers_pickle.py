"""Each provider survives the trip through the state: pickled as the SDK does, unpickled elsewhere.

The engine's provider host (`python -m pulumi.dynamic`) starts in the program's virtualenv but not in
the program's directory, and unpickles `__provider` with dill. These tests do exactly that in a fresh
interpreter started from /tmp, then call `check` on the unpickled provider.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import dill
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from components.providers import FlyAppProvider, FlyIpProvider, FlyMachineProvider, FlySecretsProvider

GOOD = {
    FlyAppProvider: {"name": "catwalk-dev-memory", "org": "personal", "stack": "dev", "owner": "k3x9a2b1"},
    FlySecretsProvider: {"app": "catwalk-dev-memory", "values": {"API_KEY": "v"}},
    FlyIpProvider: {"app": "catwalk-dev-memory", "type": "v6"},
    FlyMachineProvider: {
        "app": "catwalk-dev-memory",
        "stack": "dev",
        "server": "memory",
        "region": "iad",
        "image": "registry.fly.io/catwalk-dev-memory:deployment-1",
    },
}

CHILD = """
import base64, json, sys
import dill
provider = dill.loads(base64.b64decode(sys.stdin.read()))
news = json.loads(sys.argv[1])
# As for a resource already in the state: a check before a create may read Fly (an app's owner), not here.
good = provider.check(dict(news), dict(news))
bad = provider.check(dict(news), {**news, "bogus": 1})
print(json.dumps({
    "type": f"{type(provider).__module__}.{type(provider).__qualname__}",
    "good_failures": [f.property for f in good.failures],
    "bad_failures": [f.property for f in bad.failures],
    "inputs": good.inputs,
}))
"""


@pytest.mark.parametrize("provider_class", list(GOOD), ids=lambda c: c.__name__)
def test_provider_unpickles_in_a_fresh_process_elsewhere_and_checks(provider_class, tmp_path):
    pickled = serialize_provider(provider_class())
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(GOOD[provider_class])],
        input=pickled,
        capture_output=True,
        text=True,
        cwd="/tmp",
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["type"] == f"{provider_class.__module__}.{provider_class.__qualname__}"
    assert out["good_failures"] == []
    assert out["bad_failures"] == ["bogus"]
    assert out["inputs"]["app" if "app" in GOOD[provider_class] else "name"] == "catwalk-dev-memory"


@pytest.mark.parametrize("provider_class", list(GOOD), ids=lambda c: c.__name__)
def test_provider_is_pickled_by_reference_and_holds_no_client(provider_class):
    """By reference: the pickle names the class and carries no code, session, socket or lock."""
    raw = base64.b64decode(serialize_provider(provider_class()))
    assert provider_class.__module__.encode() in raw
    assert len(raw) < 400, f"{len(raw)} bytes: the provider pickled more than a class reference"
    for forbidden in (b"requests", b"Session", b"socket", b"_thread", b"SSLContext", b"co_code"):
        assert forbidden not in raw
    assert type(dill.loads(raw)) is provider_class
