"""Dynamic providers, revived from the `__provider` blob exactly as `python -m pulumi.dynamic` does."""

from __future__ import annotations

import base64
import threading
from typing import Any

import dill
from pulumi.dynamic import Config, ConfigureRequest, ResourceProvider
from pulumi.runtime._serialization import _deserialize

PROVIDER_KEY = "__provider"
DYNAMIC_TYPE_PREFIX = "pulumi-python:dynamic"


def is_dynamic(type_: str) -> bool:
    return type_ == f"{DYNAMIC_TYPE_PREFIX}:Resource" or type_.startswith(DYNAMIC_TYPE_PREFIX)


class Providers:
    """Unpickles and configures each distinct blob once, like the provider process's cache.

    `config` is the stack config with secrets revealed: what the engine sends to the dynamic
    provider's Configure (it declares acceptSecrets=False)."""

    def __init__(self, config: dict[str, Any], project: str):
        self._config = config
        self._project = project
        self._cache: dict[str, ResourceProvider] = {}
        self._lock = threading.Lock()

    def get(self, blob: str) -> ResourceProvider:
        with self._lock:
            provider = self._cache.get(blob)
            if provider is None:
                provider = _deserialize(lambda: dill.loads(base64.b64decode(blob)))
                provider.configure(
                    ConfigureRequest(config=Config(raw_config=dict(self._config), project_name=self._project))
                )
                self._cache[blob] = provider
            return provider
