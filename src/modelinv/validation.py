"""Validate plain data against pydantic schemas, turning errors into one line that names the field."""

from __future__ import annotations

import difflib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from modelinv.errors import ModelinvError

M = TypeVar("M", bound=BaseModel)


def _describe(err: dict[str, Any], schema: type[BaseModel], where: str) -> str:
    loc = [str(p) for p in err["loc"]]
    field = ".".join([where, *loc] if where else loc) or "config"
    if err["type"] == "extra_forbidden":
        known = _fields_at(schema, loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; known fields: {', '.join(known)}" if known else "")
        return f"unknown field '{field}'{hint}"
    return f"invalid '{field}': {err['msg']}"


def _fields_at(schema: type[BaseModel], path: list[str]) -> list[str]:
    """Field names of the nested schema at `path` (best effort: lists and dicts are skipped)."""
    current: Any = schema
    for part in path:
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return []
        current = info.annotation
    return sorted(getattr(current, "model_fields", {}))


def validate(schema: type[M], data: Any, where: str = "") -> M:
    """`schema.model_validate(data)`, raising ModelinvError naming the first bad field."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ModelinvError(_describe(exc.errors()[0], schema, where)) from None
