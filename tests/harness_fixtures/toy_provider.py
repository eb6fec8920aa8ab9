"""Toy dynamic providers with observable side effects: a Folder is a directory, a Note a file in
it. Every provider call that changes the world appends a line to `<root>/journal.log`, so tests
see exactly which create / update / delete calls the harness made, and in which order.

Pickled by reference (this module is importable), as catwalk's real providers in `components/` are.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult

JOURNAL = "journal.log"


def journal(root: str, line: str) -> None:
    with open(Path(root) / JOURNAL, "a") as fh:
        fh.write(line + "\n")


def read_journal(root: str | os.PathLike[str]) -> list[str]:
    path = Path(root) / JOURNAL
    return path.read_text().splitlines() if path.exists() else []


class FolderProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        path = Path(props["root"]) / props["name"]
        path.mkdir()
        journal(props["root"], f"create folder {props['name']}")
        return CreateResult(str(path), {"root": props["root"], "name": props["name"], "path": str(path)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in ("root", "name") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        os.rmdir(props["path"])  # fails while notes remain: proves dependents are deleted first
        journal(props["root"], f"delete folder {props['name']}")


class NoteProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        content = news.get("content")
        if isinstance(content, str) and "forbidden" in content:
            failures.append(CheckFailure("content", "must not contain the word 'forbidden'"))
        if "/" in str(news.get("file", "")):
            failures.append(CheckFailure("file", "must be a plain file name"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in ("folder", "file") if olds.get(k) != news.get(k)]
        changed = replaces + [k for k in ("content", "token") if olds.get(k) != news.get(k)]
        # an "exclusive" note cannot coexist with its replacement: delete it first
        return DiffResult(changes=bool(changed), replaces=replaces,
                          delete_before_replace=bool(news.get("exclusive")))

    def create(self, props: dict[str, Any]) -> CreateResult:
        if props.get("fail_create"):
            raise RuntimeError(f"toy disk is full, cannot write {props['file']}")
        if props.get("delay"):  # a slow create, to observe overlapping (parallel) steps
            journal(str(Path(props["folder"]).parent), f"begin note {props['file']}")
            time.sleep(float(props["delay"]))
        path = Path(props["folder"]) / props["file"]
        path.write_text(props["content"])
        journal(str(Path(props["folder"]).parent), f"create note {props['file']}")
        return CreateResult(str(path), self._outs(props, path))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        path = Path(news["folder"]) / news["file"]
        path.write_text(news["content"])
        journal(str(Path(news["folder"]).parent), f"update note {news['file']}")
        return UpdateResult(self._outs(news, path))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        os.remove(props["path"])
        journal(str(Path(props["folder"]).parent), f"delete note {props['file']}")

    @staticmethod
    def _outs(props: dict[str, Any], path: Path) -> dict[str, Any]:
        token = props.get("token") or ""
        return {"folder": props["folder"], "file": props["file"], "content": props["content"],
                "token": token, "token_digest": hashlib.sha256(token.encode()).hexdigest()[:12],
                "path": str(path)}


class Folder(pulumi.dynamic.Resource, module="toy", name="Folder"):
    path: pulumi.Output[str]

    def __init__(self, name: str, root: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__(FolderProvider(), name, {"root": root, "name": name, "path": None}, opts)


class Note(pulumi.dynamic.Resource, module="toy", name="Note"):
    path: pulumi.Output[str]
    content: pulumi.Output[str]
    token_digest: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(NoteProvider(), name, {**props, "path": None, "token_digest": None}, opts)
