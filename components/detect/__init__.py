"""Runtime detection: which registry, which version, which launch argv, which env.

``detect(spec)`` resolves one package spec into a ``RuntimeSpec`` whose ``env()`` the entrypoint runs;
``detect_many(specs)`` does several with bounded concurrency. See ``core`` for the order of work.
"""

from components.detect.cache import DiskCache
from components.detect.core import Clients, detect, detect_many, detect_server
from components.detect.errors import DetectError, RegistryError
from components.detect.http import make_session
from components.detect.models import RuntimeSpec

__all__ = [
    "Clients",
    "DetectError",
    "DiskCache",
    "RegistryError",
    "RuntimeSpec",
    "detect",
    "detect_many",
    "detect_server",
    "make_session",
]
