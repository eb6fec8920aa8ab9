"""Pulumi dynamic providers for Fly: app, secrets, IP and machines (one resource per module).

    app = FlyApp("memory", name="catwalk-dev-memory", stack="dev", owner=stack_id, org="personal", adopt=False)
    secrets = FlySecrets("memory-secrets", app=app.app_id, values={"API_KEY": secret})   # values: secret
    FlyIp("memory-ipv4", app=app.app_id, type="shared_v4")                              # or "v6"
    FlyMachine("memory-iad-0", app=app.app_id, stack="dev", owner=stack_id, server="memory", region="iad", index=0,
               image=ref, env={...}, size="shared-cpu-1x", memory=512, autostop="stop", autostart=True,
               min_machines_running=0, restart_policy="on-failure", secrets_version=secrets.version,
               mounts=[{"volume": volume.volume_id, "path": "/data"}], files=[{"guest_path": …, "raw_value": …}])
    volume = FlyVolume("memory-volume-iad-0", app=app.app_id, stack="dev", server="memory", region="iad",
                       index=0, size_gb=1, encrypted=True, snapshot_retention=None)

Outputs: FlyApp `app_id` (the app name, to pass as `app=`), `fly_id`, `status`; FlySecrets `names`,
`version` (and secret `digest`/`salt`); FlyIp `address`; FlyMachine `machine_id`, `name`, `version`,
`instance_id`, `state`, `private_ip`, `config` (the part of the machine config catwalk owns); FlyVolume
`volume_id`, `name`. Ids: app name, app name, IP address, machine id, volume id. Import: `<app>` / `<app>` /
`<app>/<address>` / `<app>/<machine_id>` / `<app>/<volume_id>` (or the bare id when the inputs carry `app`).
A volume is deleted only when the stack setting `catwalk:deleteVolumes` lists its server.
The Fly token comes from stack config `catwalk:flyApiToken` (secret) or `FLY_API_TOKEN`, never inputs.
"""

from components.providers.app import FlyApp, FlyAppProvider
from components.providers.base import FlyProviderError
from components.providers.ip import FlyIp, FlyIpProvider
from components.providers.machine import FlyMachine, FlyMachineProvider
from components.providers.secrets import FlySecrets, FlySecretsProvider
from components.providers.volume import FlyVolume, FlyVolumeProvider

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
    "FlyVolume",
    "FlyVolumeProvider",
]
