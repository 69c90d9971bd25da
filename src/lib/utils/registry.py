"""Name -> class registries whose entries are imported on first use."""
from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

from utils.errors import UserError


class LazyRegistry(MutableMapping):
    """A dict of name -> class; a 'module:Class' string value is imported when the name is first looked up.

    A task or dataset whose module is missing or broken then fails only when asked for, and importing
    a registry stays cheap. An unknown name is a UserError that lists the choices.
    """

    def __init__(self, kind: str, entries: dict[str, object]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    def __getitem__(self, name: str):
        if name not in self._entries:
            raise UserError(f"{self.kind} '{name}' is unknown; choose one of {', '.join(self._entries)}")
        value = self._entries[name]
        if isinstance(value, str):
            module_name, _, attr = value.partition(":")
            value = self._entries[name] = getattr(importlib.import_module(module_name), attr)
        return value

    def __setitem__(self, name: str, value: object) -> None:
        self._entries[name] = value

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
