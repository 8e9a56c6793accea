"""Name -> class registries, so the CLI, configs and reports find components by name."""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from modelinv.errors import ModelinvError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of components of one kind (datasets, models, attacks, ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **info: Any) -> Callable[[T], T]:
        """Decorator registering `obj` under `name`, with descriptive `info` for `modelinv list`."""

        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            if isinstance(obj, type):
                obj.name = name  # a registered class knows the name it is found by
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            self._info[name] = {"name": name, "summary": doc[0] if doc else "", **info}
            return obj

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise ModelinvError(f"unknown {self.kind} '{name}' (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def info(self, name: str) -> dict[str, Any]:
        self.get(name)
        return dict(self._info[name])

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(self.names())
