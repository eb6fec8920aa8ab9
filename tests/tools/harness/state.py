"""The harness's stack state: a JSON file of resources in creation order, secrets encrypted.

Decision: secret values (RandomPassword results, secret inputs such as config secrets, secret
outputs, and the pickled provider blobs, which the SDK always marks secret) are stored
*encrypted* with Fernet, never in plaintext and never masked. Masking would lose data the
engine feeds back: a RandomPassword must keep its value across runs, and a provider's diff /
update / delete gets its previous outputs. This mirrors Pulumi's passphrase secrets provider.
The key comes from `CATWALK_HARNESS_SECRETS_KEY` (a Fernet key) or else a `<state>.key` file
created with mode 0600 next to the state file (both under the git-ignored `.pulumi-state/`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from .values import UNKNOWN, Secret

KEY_ENV = "CATWALK_HARNESS_SECRETS_KEY"
STATE_VERSION = 1
_SECRET_TAG = "$secret"


class StateError(Exception):
    """The state file cannot be read or its secrets cannot be decrypted."""


@dataclass
class Entry:
    """One resource as last deployed. `delete` marks an old instance replaced create-before-delete
    whose deletion is still pending (the engine's `delete: true` state entries)."""

    urn: str
    type: str
    name: str
    custom: bool
    id: str = ""
    parent: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    provider: str | None = None
    delete: bool = False

    @property
    def dynamic(self) -> bool:
        return self.provider is not None


@dataclass
class State:
    project: str
    stack: str
    resources: list[Entry] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def live(self) -> dict[str, Entry]:
        return {e.urn: e for e in self.resources if not e.delete}


class SecretBox:
    """Encrypts secret values for the state file; the key is created on first use."""

    def __init__(self, key_file: Path):
        self.key_file = key_file
        self._fernet: Fernet | None = None

    def _get(self, create: bool) -> Fernet:
        if self._fernet is None:
            key = os.environ.get(KEY_ENV, "").encode()
            if not key:
                if self.key_file.exists():
                    key = self.key_file.read_bytes().strip()
                elif create:
                    key = Fernet.generate_key()
                    self.key_file.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(key + b"\n")
                else:
                    raise StateError(
                        f"the state holds secrets but the key is missing: set {KEY_ENV} or restore {self.key_file}"
                    )
            try:
                self._fernet = Fernet(key)
            except ValueError as exc:
                raise StateError(f"the secrets key is not a Fernet key ({KEY_ENV} or {self.key_file})") from exc
        return self._fernet

    def seal(self, value: Any) -> str:
        return self._get(create=True).encrypt(json.dumps(value).encode()).decode()

    def open(self, token: str) -> Any:
        try:
            return json.loads(self._get(create=False).decrypt(token.encode()))
        except InvalidToken as exc:
            raise StateError("cannot decrypt a secret in the state: wrong key") from exc


def provider_digest(blob: str) -> str:
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class StateFile:
    """Loads and atomically saves a `State`; provider blobs are stored once per distinct blob."""

    def __init__(self, path: Path):
        self.path = path
        self.box = SecretBox(path.with_name(path.name + ".key"))

    def load(self, project: str, stack: str) -> State:
        if not self.path.exists():
            return State(project=project, stack=stack)
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read state {self.path}: {exc}") from exc
        if raw.get("version") != STATE_VERSION:
            raise StateError(f"{self.path}: unsupported state version {raw.get('version')!r}")
        if raw.get("stack") != stack:
            raise StateError(f"{self.path} belongs to stack {raw.get('stack')!r}, not {stack!r}")
        providers = {d: self.box.open(tok) for d, tok in raw.get("providers", {}).items()}
        resources = []
        for r in raw.get("resources", []):
            r = dict(r)
            r["inputs"] = self._decode(r.get("inputs", {}))
            r["outputs"] = self._decode(r.get("outputs", {}))
            digest = r.pop("provider", None)
            r["provider"] = providers[digest] if digest else None
            resources.append(Entry(**r))
        return State(
            project=raw.get("project", project),
            stack=stack,
            resources=resources,
            outputs=self._decode(raw.get("outputs", {})),
        )

    def save(self, state: State) -> None:
        providers: dict[str, str] = {}
        resources = []
        for e in state.resources:
            row = asdict(e)
            row["inputs"] = self._encode(e.inputs)
            row["outputs"] = self._encode(e.outputs)
            if e.provider is not None:
                digest = provider_digest(e.provider)
                if digest not in providers:
                    providers[digest] = self.box.seal(e.provider)
                row["provider"] = digest
            resources.append(row)
        doc = {
            "version": STATE_VERSION,
            "project": state.project,
            "stack": state.stack,
            "resources": resources,
            "providers": providers,
            "outputs": self._encode(state.outputs),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
        os.replace(tmp, self.path)

    def _encode(self, value: Any) -> Any:
        if isinstance(value, Secret):
            return {_SECRET_TAG: self.box.seal(value.value)}
        if value is UNKNOWN:
            raise StateError("internal error: an unknown value reached the state")
        if isinstance(value, dict):
            return {k: self._encode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._encode(v) for v in value]
        return value

    def _decode(self, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {_SECRET_TAG}:
                return Secret(self.box.open(value[_SECRET_TAG]))
            return {k: self._decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._decode(v) for v in value]
        return value
