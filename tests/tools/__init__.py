"""Test tools shared by the suite and by ``bench/``: the local engine harness, the Fly Machines API
emulator, a fake ``docker``, recorded registry sessions, the entrypoint's test environment and the
dynamic-provider host."""
