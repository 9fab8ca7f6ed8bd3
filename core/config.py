"""Configuration base: the frozen model every section derives from, storage and Ray settings, and
YAML loading with dotted overrides. Unknown keys and bad values fail with the key path and what is allowed."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(ValueError):
    """A configuration file is invalid; the message names the file, the key and what is allowed."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(Model):
    """Where S3 lives. Credentials come from the standard AWS chain (environment, profile, role)."""

    endpoint_url: str | None = None  # e.g. http://127.0.0.1:9000 for MinIO/moto
    region: str = "us-east-1"


class RayConfig(Model):
    address: str = "local"  # "local": an embedded cluster; "auto": the cluster of `ray job submit`
    num_cpus: int | None = 8  # logical CPUs of an embedded cluster
    object_store_memory: int | None = 1_000_000_000


M = TypeVar("M", bound=BaseModel)


def _format_error(err: dict[str, Any], root: type[BaseModel], source: str) -> str:
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc) or "<top level>"
    if err["type"] == "extra_forbidden":
        model = _model_at(root, err["loc"][:-1])
        allowed = ", ".join(model.model_fields) if model else "?"
        return f"{source}: unknown key `{key}`; allowed keys here: {allowed}"
    return f"{source}: `{key}`: {err['msg']} (got {err.get('input')!r})"


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """Follow a pydantic error location through nested models (list indices skipped)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        for cand in (ann, *get_args(ann), *(a for arg in get_args(ann) for a in get_args(arg))):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                model = cand
                break
        else:
            return None
    return model



def validate(model: type[M], data: dict[str, Any] | None, source: str = "<config>") -> M:
    """Validate a config mapping against `model`; raise ConfigError listing every bad key."""
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        lines = [_format_error(e, model, source) for e in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def read_yaml(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML mapping and apply dotted-key overrides ({"curate.num_user_buckets": 4})."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return data

