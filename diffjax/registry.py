"""One generic name -> constructor registry, one instance per concept (STYLE rule 6), with the
metadata of each entry registered beside it (DESIGN.md, "Metadata lives with the registered thing").

        SDES = Registry("sde")

        @SDES.register("vp")
        class VP(...): ...

        @SAMPLERS.register("heun", nfe=stages_per_level(2), stochastic=False, order=2)
        def sample_heun(...): ...

        SDES.get("vp")              # -> VP
        SAMPLERS.meta("heun")       # -> {'nfe': ..., 'stochastic': False, 'order': 2}
        SDES.get("vpp")             # UnknownNameError: unknown sde 'vpp'; valid names: ...

Every `Registry` made anywhere is listed by `all_registries()`, so `diffjax.list_registries()`
cannot miss one.
"""
from __future__ import annotations

import difflib
import inspect
import types
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

T = TypeVar("T")
_ALL: list["Registry"] = []


class UnknownNameError(KeyError, ValueError):
    """Raised for a name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message.
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps config names to objects (functions, classes) of one concept, plus each one's metadata."""

    def __init__(self, concept: str, *, required_meta: tuple[str, ...] = ()):
        """`required_meta`: metadata keys every entry must register (e.g. a sampler's `nfe`)."""
        self.concept = concept
        self.required_meta = tuple(required_meta)
        self._entries: dict[str, T] = {}
        self._meta: dict[str, Mapping[str, Any]] = {}
        _ALL.append(self)

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator that registers its target under `name` with `meta`, and returns it unchanged."""
        missing = [k for k in self.required_meta if k not in meta]
        if missing:
            raise TypeError(f"{self.concept} {name!r}: register() needs the metadata {missing}")

        def decorate(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.concept} {name!r} is registered twice")
            self._entries[name] = obj
            self._meta[name] = types.MappingProxyType(dict(meta))
            return obj

        return decorate

    def unregister(self, name: str) -> None:
        """Removes `name` (for tests that register a temporary entry)."""
        self.get(name)
        del self._entries[name], self._meta[name]

    def _unknown(self, name: object) -> UnknownNameError:
        close = difflib.get_close_matches(str(name), self._entries, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return UnknownNameError(f"unknown {self.concept} {name!r}; valid names: {', '.join(self.names())}.{hint}")

    def get(self, name: str) -> T:
        """Returns the entry for `name`, or raises `UnknownNameError` listing the valid names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self._unknown(name) from None

    def meta(self, name: str) -> Mapping[str, Any]:
        """The metadata registered with `name` (read-only); an unknown name lists the valid ones."""
        try:
            return self._meta[name]
        except (KeyError, TypeError):
            raise self._unknown(name) from None

    def build(self, section: Mapping[str, Any], **context: Any) -> Any:
        """Calls the entry named `section["name"]` with the rest of `section` as keyword arguments.

        One config section serves every registered choice without silently dropping keys:
        - keys that hold a sub-section named after a registered entry (`data.folder.root`) are
          that entry's own keys; the chosen entry's sub-section is merged in, the others ignored;
        - every other key must be a parameter of the chosen entry, else an error names the entry
          and the keys it takes;
        - `context` (e.g. the data's `sample_rate`) is passed where the entry takes it.
        An entry whose builder takes `**overrides` declares its keys as the metadata `parameters`.
        """
        values = dict(section.to_dict() if callable(getattr(section, "to_dict", None)) else section)
        name = values.pop("name", None)
        builder = self.get(name)
        own = values.pop(name, None) or {}
        kwargs = {k: v for k, v in values.items() if not (k in self._entries and isinstance(v, Mapping))}
        kwargs.update(own)
        declared = self._meta[name].get("parameters")  # registered by builders that take **overrides
        accepted = set(declared) if declared is not None else accepted_parameters(builder)
        unknown = sorted(set(kwargs) - accepted) if accepted is not None else []
        if unknown:
            raise TypeError(f"{self.concept} {name!r} does not take {unknown}; it takes "
                            f"{sorted(accepted)}. Remove the key, or put keys of another {self.concept} "
                            f"under its own sub-section ({self.concept} section '{name}.<key>').")
        for key, value in context.items():
            if accepted is None or key in accepted:
                kwargs.setdefault(key, value)
        return builder(**kwargs)

    def names(self, **where: Any) -> list[str]:
        """The registered names, sorted; `where` keeps those whose metadata has these values."""
        return sorted(n for n in self._entries
                      if all(self._meta[n].get(k) == v for k, v in where.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.concept!r}: {', '.join(self.names())})"


def accepted_parameters(builder: Callable) -> set[str] | None:
    """The keyword parameters of `builder` (a class or function); None if it takes `**kwargs`."""
    parameters = inspect.signature(builder).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def all_registries() -> list[Registry]:
    """Every registry created so far (importing `diffjax` creates all of the library's)."""
    return list(_ALL)
