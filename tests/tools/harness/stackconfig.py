"""Stack config from `Pulumi.<stack>.yaml`, shaped the way the Pulumi engine hands it to a program.

The engine passes every value as a string: structured values (lists, maps) as JSON, scalars as
their YAML text. Secure values (`secure: v1:…`) are encrypted with a secrets provider the harness
does not have, so tests supply their plaintext instead, either as `--secret KEY=VALUE` /
`run(secrets={KEY: VALUE})` or as the environment variable `CATWALK_HARNESS_SECRET_<KEY>` where
<KEY> is the full key uppercased with every other character turned into `_`
(`catwalk:flyToken` → `CATWALK_HARNESS_SECRET_CATWALK_FLYTOKEN`). A secure value nested in
structured config is named by its Pulumi path (`catwalk:servers[0].env.API_KEY`). A key that
holds a secret anywhere is marked secret, so `Config.get_secret`/`require_object` see it secret.
A `--secret` for a key absent from the file adds it as secret config.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SECRET_ENV_PREFIX = "CATWALK_HARNESS_SECRET_"


class ConfigError(Exception):
    """The stack or project file is missing or malformed, or a secret was not supplied."""


@dataclass
class Project:
    name: str
    directory: Path
    main: Path  # the program: a directory holding __main__.py, or a .py file


@dataclass
class StackConfig:
    values: dict[str, str] = field(default_factory=dict)
    secret_keys: set[str] = field(default_factory=set)


def secret_env_name(key: str) -> str:
    return SECRET_ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", key.upper())


def load_project(directory: Path, program: Path | None) -> Project:
    """Project name from Pulumi.yaml; program = explicit path, else Pulumi.yaml `main`, else
    `infra/` (this repository's layout), else the project directory itself."""
    spec = directory / "Pulumi.yaml"
    if not spec.is_file():
        raise ConfigError(f"no Pulumi.yaml in {directory} (pass --project-dir)")
    try:
        doc = yaml.safe_load(spec.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{spec}: not valid YAML: {exc}") from exc
    name = doc.get("name") if isinstance(doc, dict) else None
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{spec}: `name` is required")
    if program is None:
        if doc.get("main"):
            program = directory / str(doc["main"])
        elif (directory / "infra" / "__main__.py").is_file():
            program = directory / "infra"
        else:
            program = directory
    program = program.resolve()
    entry = program / "__main__.py" if program.is_dir() else program
    if not entry.is_file():
        raise ConfigError(f"program not found: {entry}")
    return Project(name=name, directory=directory.resolve(), main=program)


def load_stack_config(path: Path, project: str, secrets: Mapping[str, str], environ: Mapping[str, str]) -> StackConfig:
    """Read `config:` from the stack file. Stacks exist here only as files, so a missing one is
    most likely a mistyped --stack and is refused."""
    if not path.is_file():
        raise ConfigError(f"no stack config {path} (check --stack, or pass --config-file)")
    try:
        doc: Any = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    raw = doc.get("config") if isinstance(doc, dict) else None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: `config` must be a map")

    supplied = {_qualify(k, project): v for k, v in secrets.items()}
    out = StackConfig()
    used: set[str] = set()
    for key, value in raw.items():
        full = _qualify(str(key), project)
        found: list[str] = []
        resolved = _resolve_secure(value, full, supplied, environ, found, path)
        if found:
            out.secret_keys.add(full)
            used.update(found)
        out.values[full] = _as_config_string(resolved)
    for full, value in supplied.items():
        if full not in used:  # absent from the file, or given plainly there: set it as a secret
            out.values[full] = value
            out.secret_keys.add(full)
    return out


def _qualify(key: str, project: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def _resolve_secure(
    value: Any, where: str, supplied: Mapping[str, str], environ: Mapping[str, str], found: list[str], path: Path
) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            found.append(where)
            if where in supplied:
                return supplied[where]
            env = secret_env_name(where)
            if env in environ:
                return environ[env]
            raise ConfigError(
                f"{path}: config {where} is a secure value the harness cannot decrypt; supply it "
                f"with --secret '{where}=VALUE' or the environment variable {env}"
            )
        return {k: _resolve_secure(v, f"{where}.{k}", supplied, environ, found, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_secure(v, f"{where}[{i}]", supplied, environ, found, path) for i, v in enumerate(value)]
    return value


def _as_config_string(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
