"""Pulumi dynamic providers for Fly: app, secrets, IP and machines (one resource per module)."""

from components.providers.app import FlyApp, FlyAppProvider
from components.providers.base import FlyProviderError
from components.providers.ip import FlyIp, FlyIpProvider
from components.providers.machine import FlyMachine, FlyMachineProvider
from components.providers.secrets import FlySecrets, FlySecretsProvider

__all__ = [
    "FlyApp",
    "FlyAppProvider",
    "FlyIp",
    "FlyIpProvider",
    "FlyMachine",
    "FlyMachineProvider",
    "FlyProviderError",
    "FlySecrets",
    "FlySecretsProvider",
]
