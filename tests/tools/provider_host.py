"""Drive the real dynamic-provider host (`python -m pulumi.dynamic`) over gRPC, as the engine does.

Shared by the Fly provider and image provider tests: start the host from a directory outside the project
(so it must import `components` from the installed package), then call Configure/Check/Diff/Create/
Update/Read/Delete with properties serialized exactly as the engine sends them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc


def struct(props: dict[str, Any]):
    """Properties as the engine puts them on the wire."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def props_of(message) -> dict[str, Any]:
    return rpc.deserialize_properties(message)


def host_env(**extra: str) -> dict[str, str]:
    """This environment without Fly or Pulumi settings: the token must come through Configure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLY_", "PULUMI_"))}
    env.update(extra)
    return env


class ProviderHost:
    """A running `python -m pulumi.dynamic` and a stub speaking the ResourceProvider protocol."""

    def __init__(self, env: dict[str, str], urn: str, cwd: str | Path = "/tmp"):
        self.urn = urn
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pulumi.dynamic"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        port = self.proc.stdout.readline().decode().strip()
        if not port.isdigit():
            self.proc.kill()
            raise RuntimeError(f"provider host did not start: {self.proc.stderr.read().decode()[-2000:]}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def close(self) -> str:
        """Stop the host; return what it wrote to stderr."""
        self.channel.close()
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode(errors="replace")

    def configure(self, config: dict[str, str]) -> provider_pb2.ConfigureResponse:
        return self.stub.Configure(provider_pb2.ConfigureRequest(args=struct(config), acceptSecrets=False))

    def check(self, olds: dict, news: dict) -> provider_pb2.CheckResponse:
        return self.stub.Check(provider_pb2.CheckRequest(urn=self.urn, olds=struct(olds), news=struct(news)))

    def diff(self, id_: str, olds: dict, news: dict) -> provider_pb2.DiffResponse:
        return self.stub.Diff(provider_pb2.DiffRequest(id=id_, urn=self.urn, olds=struct(olds), news=struct(news)))

    def create(self, props: dict) -> provider_pb2.CreateResponse:
        return self.stub.Create(provider_pb2.CreateRequest(urn=self.urn, properties=struct(props)))

    def update(self, id_: str, olds: dict, news: dict) -> provider_pb2.UpdateResponse:
        return self.stub.Update(provider_pb2.UpdateRequest(id=id_, urn=self.urn, olds=struct(olds), news=struct(news)))

    def read(self, id_: str, props: dict) -> provider_pb2.ReadResponse:
        return self.stub.Read(provider_pb2.ReadRequest(id=id_, urn=self.urn, properties=struct(props)))

    def delete(self, id_: str, props: dict) -> None:
        self.stub.Delete(provider_pb2.DeleteRequest(id=id_, urn=self.urn, properties=struct(props)))
