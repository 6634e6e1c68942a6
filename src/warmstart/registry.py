"""Name → factory registries: a new objective, source, encoder or strategy is one registration line."""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from warmstart.errors import UserError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    """A small named registry with helpful lookup errors.

    >>> colours = Registry("colour")
    >>> @colours.register("red")
    ... def red(): return "#f00"
    >>> colours.get("red")()
    '#f00'
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise RuntimeError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UserError(
                f"unknown {self.kind} '{name}'{closest(name, self._entries)}; "
                f"choose one of: {', '.join(self.names())}"
            )
        return self._entries[name]

    def build(self, name: str, *args: object, **options: object) -> object:
        """Construct entry ``name`` with user ``options``, checked against its signature first.

        An unknown option or a value the constructor rejects becomes one ``UserError`` line.
        """
        factory = self.get(name)
        accepted = [
            p.name for p in list(inspect.signature(factory).parameters.values())[len(args):]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        for key in options:
            if key not in accepted:
                raise UserError(
                    f"{self.kind} '{name}' has no option '{key}'{closest(key, accepted)}; "
                    f"its options are: {', '.join(accepted) or 'none'}"
                )
        try:
            return factory(*args, **options)
        except (TypeError, ValueError) as err:
            if isinstance(err, UserError):
                raise
            raise UserError(f"{self.kind} '{name}': {err}") from err

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
