"""Configuration keys match case-insensitively: environment variables lose their case
(`BACKGROUNDPROCESSING__A__MAXITEMSPERCYCLE`), .NET's configuration ignores it too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel


def find_value(section: Mapping[Any, Any], key: str) -> Any:
    """`section[key]`, the key matched ignoring case; None when there is none."""
    wanted = key.lower()
    return next((value for name, value in section.items() if str(name).lower() == wanted), None)


def with_field_keys(model: type[BaseModel], data: Any) -> Any:
    """`data` with every key that names a field of `model` (by alias or by name, in any case)
    spelt as the field's alias; other keys are left as they are, for the model to refuse."""
    if not isinstance(data, dict):
        return data
    known = {}
    for name, field in model.model_fields.items():
        alias = field.alias or name
        known[alias.lower()] = alias
        known[name.lower()] = alias
    return {known.get(str(key).lower(), key): value for key, value in data.items()}
