"""A Fly app of the stack: owned by it, adopted only when the stack names it in `adoptApps`, and without an
explicit `appPrefix` keeping the name its state already holds (docs/ownership.md)."""

from __future__ import annotations

import pulumi

from components.config import StackConfig
from components.providers.app import FlyApp


def stack_app(
    resource_name: str,
    *,
    name: pulumi.Output[str],
    stack: StackConfig,
    stack_name: str,
    owner: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None = None,
) -> FlyApp:
    return FlyApp(
        resource_name,
        name=name,
        stack=stack_name,
        owner=owner,
        org=stack.org,
        adopt=name.apply(lambda n: n in stack.adopt_apps),
        keep_name=stack.app_prefix is None,  # an app in the state keeps its name (FlyApp)
        opts=opts,
    )
