"""A toy stack: one Folder, then per configured note a Group component holding a RandomPassword
and a Note file (each note after the previous one); exports one object per note."""

import pulumi
import pulumi_random as random

from tests.harness_fixtures.toy_provider import Folder, Note

cfg = pulumi.Config()
folder = Folder(cfg.get("folder") or "box", root=cfg.require("dir"))
api_key = cfg.get_secret("apiKey")

previous = None
for spec in cfg.require_object("notes"):
    key = spec["key"]
    group = pulumi.ComponentResource("toy:index:Group", key)
    token = random.RandomPassword(f"{key}-token", length=24, special=False,
                                  opts=pulumi.ResourceOptions(parent=group))
    note = Note(key, {"folder": folder.path, "file": spec.get("file", f"{key}.txt"),
                      "content": spec["content"], "token": token.result,
                      "fail_create": bool(spec.get("fail_create", False)),
                      "exclusive": bool(spec.get("exclusive", False)), "delay": spec.get("delay", 0)},
                opts=pulumi.ResourceOptions(parent=group, depends_on=[previous] if previous and
                                            not spec.get("independent") else None))
    group.register_outputs({})
    previous = note
    pulumi.log.info(f"note {key} registered")
    pulumi.export(key, {"path": note.path, "content": note.content, "token": token.result,
                        "digest": note.token_digest})

if api_key is not None:
    keyed = Note("keyed", {"folder": folder.path, "file": "keyed.txt", "content": "uses the api key",
                           "token": api_key})
    pulumi.export("api_key_digest", keyed.token_digest)
    pulumi.export("api_key", api_key)
