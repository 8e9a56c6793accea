"""Checks of the user's input, each failing with a one-line ModelinvError that names the field or file:
pydantic validation of plain data, safe YAML reading, output directories, and a memory budget.

- `validate(schema, data)`: `schema.model_validate`, the first bad field named in one line.
- `read_yaml(path, what)`: one YAML (or JSON) document from a file, read safely: size-bounded, UTF-8 only,
  no duplicate keys, and alias expansion bounded *before* expansion (a 600-byte "billion laughs" document
  would otherwise expand to gigabytes when validated or dumped).
- `check_output_dir(path)`: a directory a command may write its results into, checked before any work, so a
  read-only path or a path that is a file never costs a finished experiment.
- `check_allocation(nbytes, what)`: refuse an array larger than the memory budget before allocating it.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from modelinv.errors import ModelinvError

M = TypeVar("M", bound=BaseModel)

MAX_YAML_BYTES = 4 * 2**20
"""Largest YAML file read (configs, parameter and schema files are a few KiB)."""
MAX_YAML_NODES = 100_000
"""Most nodes a YAML document may hold with every alias expanded (a large grid config has a few thousand)."""
MAX_YAML_ALIASES = 1_000
"""Most alias references (`*name`) in one YAML document."""
MAX_YAML_DEPTH = 64
"""Deepest nesting of a YAML document."""


def one_line(text: object) -> str:
    """`text` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


# --- pydantic -----------------------------------------------------------------------------------------------------


UNION_TAGS = re.compile(r"(int|float|str|bool|bytes|none|list|dict|tuple|set|literal|function-\w+|constrained-\w+)(\[.*\])?")
"""Names pydantic puts in an error's location for the member of a union that failed (`values.0.int`): not fields."""


def _location(err: dict[str, Any]) -> list[str]:
    return [str(p) for p in err["loc"] if not (isinstance(p, str) and UNION_TAGS.fullmatch(p))]


def _describe(errors: list[dict[str, Any]], schema: type[BaseModel], where: str) -> str:
    err = errors[0]
    loc = _location(err)
    field = ".".join([where, *loc] if where else loc) or "config"
    if err["type"] == "extra_forbidden":
        known = _fields_at(schema, loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; known fields: {', '.join(known)}" if known else "")
        return one_line(f"unknown field '{field}'{hint}")
    # a value no member of a union accepts: what each member wanted, once
    wanted = dict.fromkeys(e["msg"] for e in errors if _location(e) == loc and e["type"] != "extra_forbidden")
    return one_line(f"invalid '{field}': {'; or '.join(wanted)}")


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
        raise ModelinvError(_describe(exc.errors(), schema, where)) from None


# --- YAML ---------------------------------------------------------------------------------------------------------


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys in a mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):  # noqa: D102  (PyYAML's hook)
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` merges; its keys may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base constructor names it
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, f"found duplicate key {key!r} (first on line {first.line + 1})", key_node.start_mark
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a composed document whose aliases expand beyond the bounds, or refer to themselves, before expanding it.

    Composed nodes share structure (an alias is the same node object again), so the expanded size is
    computed per distinct node, in time linear in the document's text."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    aliases = 0
    stack: list[tuple[yaml.Node, bool, int]] = [(root, False, 0)]
    while stack:
        node, finished, depth = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_YAML_NODES:
                raise ValueError(f"it expands to more than {MAX_YAML_NODES:,} nodes (aliases of aliases?)")
            continue
        if key in sizes:
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                raise ValueError(f"it uses more than {MAX_YAML_ALIASES:,} aliases")
            continue
        if key in open_nodes:
            raise ValueError(f"an alias refers to a node that contains it (line {node.start_mark.line + 1})")
        if depth > MAX_YAML_DEPTH:
            raise ValueError(f"it is nested more than {MAX_YAML_DEPTH} levels deep")
        open_nodes.add(key)
        stack.append((node, True, depth))
        stack.extend((child, False, depth + 1) for child in reversed(_children(node)))


def parse_yaml(text: str, where: str) -> Any:
    """One YAML document from `text` (None if empty), safely; errors are one line starting with `where`."""
    loader = None
    try:
        loader = _SafeLoader(text)  # the reader checks the characters here
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ModelinvError(one_line(f"{where} is not valid YAML: {err.problem or err.context}{at}")) from None
    except yaml.YAMLError as err:
        raise ModelinvError(one_line(f"{where} is not valid YAML: {err}")) from None
    except RecursionError:
        raise ModelinvError(f"{where} is not valid YAML: it is nested too deeply") from None
    except (ValueError, TypeError, OverflowError, MemoryError) as err:  # our bounds; a timestamp or integer PyYAML cannot build
        raise ModelinvError(one_line(f"{where} is refused: {err or type(err).__name__}")) from None
    finally:
        if loader is not None:
            loader.dispose()


def read_text(path: Path, what: str, limit: int = MAX_YAML_BYTES) -> str:
    """The UTF-8 text of the file `path` (at most `limit` bytes); errors name `what` and the file."""
    path = Path(path)
    if path.is_dir():
        raise ModelinvError(f"{what} expected but {path} is a folder")
    if not path.is_file():
        raise ModelinvError(f"{what} not found: {path}")
    try:
        size = path.stat().st_size
        if size > limit:
            raise ModelinvError(f"{what} {path} is {size:,} bytes, more than the {limit:,} a {what} may have")
        raw = path.read_bytes()
    except OSError as err:
        raise ModelinvError(one_line(f"cannot read {what} {path}: {err.strerror or err}")) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ModelinvError(f"{what} {path} is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}): is it a binary file?") from None


def read_yaml(path: Path, what: str = "config file") -> Any:
    """The one YAML (or JSON) document in the file `path`, read by `read_text` and `parse_yaml`."""
    return parse_yaml(read_text(path, what), f"{what} {path}")


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML or JSON file holding a mapping; errors name the file."""
    raw = read_yaml(path, what)
    if not isinstance(raw, dict):
        raise ModelinvError(f"{what} {path} must hold a mapping of fields")
    return raw


# --- output directories -------------------------------------------------------------------------------------------


def check_output_dir(path: Path, what: str = "output directory") -> Path:
    """`path`, checked to be a directory this process can create or write into; nothing is left behind.

    Run before any work: a path that is a file, lies under a file, or is read-only fails now, not after
    the experiment ran. The check writes (and removes) a probe file in `path` or its nearest existing parent."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ModelinvError(f"{what} {path} is a file, not a directory")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ModelinvError(f"{what} {path} cannot be created: {existing} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".modelinv-probe-"):
            pass
    except OSError as err:
        where = path if existing == path else existing
        raise ModelinvError(one_line(f"{what} {path} is not writable: cannot write into {where} ({err.strerror or err})")) from None
    return path


# --- memory -------------------------------------------------------------------------------------------------------


def memory_budget() -> int:
    """Bytes one array may take: $MODELINV_MEMORY_BUDGET_GB if set, else half the machine's memory (8 GiB if unknown)."""
    given = os.environ.get("MODELINV_MEMORY_BUDGET_GB")
    if given:
        try:
            return int(float(given) * 2**30)
        except ValueError:
            raise ModelinvError(f"MODELINV_MEMORY_BUDGET_GB must be a number of GiB, not '{given}'") from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30


def check_allocation(nbytes: int, what: str) -> None:
    """Refuse, before allocating, an array of `nbytes` bytes larger than the memory budget; `what` describes it."""
    budget = memory_budget()
    if nbytes > budget:
        raise ModelinvError(
            f"{what} would take {nbytes / 2**30:,.1f} GiB, more than the memory budget of {budget / 2**30:,.1f} GiB (set MODELINV_MEMORY_BUDGET_GB to change it)"
        )
