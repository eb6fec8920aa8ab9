"""A provider class defined in the program itself: dill pickles it by value into `__provider`, so
the harness must revive it without importing anything (as in `destroy`, which runs no program)."""

from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, ResourceProvider


class MarkerProvider(ResourceProvider):
    def create(self, props):
        path = Path(props["dir"]) / props["label"]
        path.write_text("here")
        return CreateResult(str(path), {"path": str(path)})

    def delete(self, _id, props):
        Path(props["path"]).unlink()


class Marker(pulumi.dynamic.Resource):
    path: pulumi.Output[str]

    def __init__(self, name, directory):
        super().__init__(MarkerProvider(), name, {"dir": directory, "label": name, "path": None})


marker = Marker("flag", pulumi.Config().require("dir"))
pulumi.export("path", marker.path)
