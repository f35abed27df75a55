"""One generic name -> constructor registry, one instance per concept (STYLE rule 6).

        SDES = Registry("sde")

        @SDES.register("vp")
        class VP(...): ...

        SDES.get("vp")      # -> VP
        SDES.get("vpp")     # UnknownNameError: unknown sde 'vpp'; valid names: ...
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """Raised for a name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message.
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps config names to objects (functions, classes) of one concept."""

    def __init__(self, concept: str):
        self.concept = concept
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under `name` and returns it unchanged."""

        def decorate(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.concept} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        """Returns the entry for `name`, or raises `UnknownNameError` listing the valid names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(name), self._entries, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                    f"unknown {self.concept} {name!r}; valid names: {', '.join(self.names())}.{hint}"
            ) from None

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.concept!r}: {', '.join(self.names())})"
