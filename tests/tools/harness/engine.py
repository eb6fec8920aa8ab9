"""Runs a Pulumi program against a mock monitor that routes every registration to a `Deployment`.

This is `pulumi.runtime.set_mocks` without its eagerly created root Stack: the program runs
through `run_in_stack(runpy.run_path(...))`, the Python language host's own entry point, so the
Stack resource is the program's and its `register_outputs` hands the monitor the stack outputs
exactly as the engine would receive them. Everything runs in a copied `contextvars` context
(the SDK keeps settings, config and the root resource in context variables), so runs in one
process do not see each other's settings; modules the program imports stay cached, though, so a
fresh process per run remains the safest choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import runpy
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import empty_pb2
from pulumi.runtime import configure, run_in_stack, set_all_config
from pulumi.runtime.mocks import MockEngine, MockMonitor, Mocks, MockSettings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.settings import set_root_resource

from .deployment import Deployment, Registration
from .values import from_struct, to_struct

STACK_TYPE = "pulumi:pulumi:Stack"


class _ReadMocks(Mocks):
    """For `Resource.get` reads and invokes, which catwalk's program does not use."""

    def new_resource(self, args):
        return args.resource_id, args.inputs

    def call(self, args):
        return {}, []


class HarnessMonitor(MockMonitor):
    def __init__(self, deployment: Deployment):
        super().__init__(_ReadMocks())
        self.deployment = deployment
        self.stack_urn = ""
        self.stack_outputs: dict[str, Any] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # The engine does not prefix the root stack's type onto its children's URNs.
        return super().make_urn("" if parent == self.stack_urn else parent, type_, name)

    def RegisterResource(self, request):
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == STACK_TYPE:
            self.stack_urn = urn
            return resource_pb2.RegisterResourceResponse(urn=urn)
        reg = Registration(
            urn=urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=request.parent,
            inputs=from_struct(request.object),
            additional_secret_outputs=list(request.additionalSecretOutputs),
            replace_on_changes=list(request.replaceOnChanges),
            ignore_changes=list(request.ignoreChanges),
            delete_before_replace=bool(request.deleteBeforeReplace),
        )
        id_, outputs = self.deployment.register(reg)
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, id_, outputs)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=to_struct(outputs))

    def RegisterResourceOutputs(self, request):
        if request.urn == self.stack_urn:
            self.stack_outputs = from_struct(request.outputs)
        return empty_pb2.Empty()


def run_program(
    main: Path,
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: set[str],
    deployment: Deployment,
    preview: bool,
    root: Path,
    logger: logging.Logger,
) -> dict[str, Any]:
    """Run the program once; returns its stack outputs. The program's stdout goes to stderr so
    the harness's own stdout stays a clean report."""
    monitor = HarnessMonitor(deployment)

    def body() -> None:
        set_all_config(dict(config), sorted(secret_keys))
        features = set(monitor.GetDeploymentInfo(empty_pb2.Empty()).supportedFeatures)
        # Settings are context variables; fresh pending-output set and lock (as `mocks.test` clears
        # them) and no root resource, so nothing from an earlier run in this process carries over.
        configure(
            MockSettings(
                monitor=monitor,
                monitor_features=features,
                engine=MockEngine(logger),
                project=project,
                stack=stack,
                dry_run=preview,
                organization="organization",
                root_directory=str(root),
                callbacks=None,
                outputs=set(),
                lock=threading.Lock(),
            )
        )
        set_root_resource(None)  # type: ignore[arg-type]
        loop = asyncio.new_event_loop()
        # A failed step rejects every output that depends on it; the harness reports the step's own
        # error once, so asyncio's "exception was never retrieved" echoes are only debug noise.
        loop.set_exception_handler(lambda _loop, ctx: logger.debug("asyncio: %s", ctx.get("message")))
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(run_in_stack(lambda: runpy.run_path(str(main), run_name="__main__")))
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            asyncio.set_event_loop(None)

    with program_directory(main), contextlib.redirect_stdout(sys.stderr):
        _in_worker_thread(contextvars.copy_context(), body)
    return monitor.stack_outputs


def _in_worker_thread(ctx: contextvars.Context, fn: Callable[[], None]) -> None:
    """Run `fn` in `ctx` on its own thread, so its event loop never replaces the caller's."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            ctx.run(fn)
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=target, name="harness-program")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


@contextlib.contextmanager
def program_directory(main: Path):
    """cwd and sys.path as the language host sets them: the program's directory."""
    directory = main if main.is_dir() else main.parent
    old_cwd, old_path, old_argv = os.getcwd(), list(sys.path), list(sys.argv)
    os.chdir(directory)
    sys.path.insert(0, str(directory))
    sys.argv = [str(main)]
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        sys.argv = old_argv
