"""Explicit, loud registries: name -> class for tasks, backbones and strategies.

Entries register with a decorator in the module that defines them (the name equals the module
name). Third-party packages add entries through the ``nlptune.tasks``, ``nlptune.backbones`` and
``nlptune.strategies`` entry-point groups.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from nlptune.errors import ConfigError, did_you_mean

T = TypeVar("T")

_BUILTIN_MODULES = {
    "tasks": [
        "text_classification",
        "sentence_pair",
        "extractive_qa",
        "sequence_labelling",
        "word_sense",
        "text_to_text",
        "masked_lm",
    ],
    "backbones": ["hf_encoder", "hf_seq2seq", "static_vectors"],
    "strategies": ["full", "frozen", "last_k", "gradual", "lora"],
}


class Registry(Generic[T]):
    """A name -> class map that refuses duplicates and explains unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._broken: dict[str, str] = {}  # entry points that failed to import: name -> why
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name``; a second entry with that name is an error."""

        def add(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(
                    f"{self.kind} '{name}' is already registered by {self._entries[name]!r}; "
                    "pick another name for the new entry"
                )
            self._entries[name] = obj
            return obj

        return add

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in _BUILTIN_MODULES[self.kind]:
            importlib.import_module(f"nlptune.{self.kind}.{module}")
        self._load_entry_points()

    def refresh(self) -> None:
        """Scan the entry points again (a plugin installed after the first look)."""
        self._load()
        self._load_entry_points()

    def _load_entry_points(self) -> None:
        """Add the entries of installed packages. One that fails to import is remembered and
        named when asked for; one that takes a name already taken is a ConfigError."""
        for ep in entry_points(group=f"nlptune.{self.kind}"):
            try:
                obj = ep.load()
            except Exception as err:  # a third party's import error must not end nlptune
                self._broken[ep.name] = f"{ep.value} fails to import: {type(err).__name__}: {err}"
                continue
            try:
                self.register(ep.name)(obj)
            except ValueError as err:
                raise ConfigError(f"entry point nlptune.{self.kind}:{ep.name}: {err}") from None

    def get(self, name: str) -> T:
        """Return the entry called ``name`` or raise a ConfigError listing the known names."""
        self._load()
        one = "strategy" if self.kind == "strategies" else self.kind[:-1]
        if name in self._broken and name not in self._entries:
            raise ConfigError(f"{one} '{name}' is installed, but {self._broken[name]}")
        if name not in self._entries:
            raise ConfigError(
                f"unknown {one} "
                f"'{name}'{did_you_mean(name, self._entries)}; "
                f"known: {', '.join(sorted(self._entries))}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(sorted(self._entries.items()))


TASKS: Registry = Registry("tasks")
BACKBONES: Registry = Registry("backbones")
STRATEGIES: Registry = Registry("strategies")
